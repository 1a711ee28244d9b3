//! Payloads entered at EL2 after relocation (`hypstub.el=2`, the default): el2-client,
//! which checks booting.rst's contract and its initrd from the inside, on both GICs and
//! both CPU models, copied with the EL2 MMU on and off; el2-client linked over the
//! firmware's own EL1 stage; a 256 MiB payload; and a corrupted staging copy, which the
//! engine must refuse after the point of no return.
//!
//! Every test checks QEMU's exit status and the serial log (docs/CONTRACTS.md, and the
//! el2-client's lines from tests/el2-client/README.md).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use hypstub_tests::{
    bench_payload_256mib, boot, boot_within, corrupt_staging_firmware, crc32c, el2_client,
    el2_client_over_firmware, machine, pseudo_random_bytes, write_asset, Boot,
    BENCH_PAYLOAD_MARKER,
};
use xtask::bench::console;
use xtask::runner::{Cpu, Gic, QemuRun};

/// Size of the pseudo-random initrd.
const INITRD_SIZE: usize = 3 << 20;

/// The initrd (3 MiB of pseudo-random bytes) and its CRC32C, written once per test binary.
fn initrd() -> &'static (PathBuf, u32) {
    static INITRD: OnceLock<(PathBuf, u32)> = OnceLock::new();
    INITRD.get_or_init(|| {
        let bytes = pseudo_random_bytes(INITRD_SIZE, 0x1417_2d00);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("el2_entry");
        (write_asset(&dir, "initrd-3MiB.bin", &bytes), crc32c(&bytes))
    })
}

/// A 2-CPU, 1 GiB machine booting `client` with the initrd, asking it to check the
/// initrd's CRC32C, with `options` (hypstub.* words) first on the command line.
fn client_machine(firmware: Option<&Path>, client: &Path, options: &str) -> QemuRun {
    let (initrd, crc) = initrd();
    let run = match firmware {
        Some(image) => QemuRun::new(image),
        None => machine(),
    };
    run.smp(2).mem("1G").kernel(client).initrd(initrd).append(
        format!("{options} client.initrd_crc={crc:#010x}")
            .trim_start()
            .to_owned(),
    )
}

/// el2-client entered at EL2 passed every check, after a verified relocation.
fn client_passes(name: &str, run: &QemuRun) -> Boot {
    let booted = boot(name, run);
    booted
        .assert_success()
        .assert_relocated()
        .assert_contains("el2-client: entered at EL2")
        .assert_contains("el2-client: ok initrd_intact")
        .assert_contains("el2-client: PASS")
        .assert_lacks("el2-client: FAIL");
    booted
}

fn el2_client_case(name: &str, gic: Gic, cpu: Cpu, copy: &str) {
    let run = client_machine(None, el2_client(), copy).gic(gic).cpu(cpu);
    client_passes(name, &run);
}

// ---- el2-client, copied with the EL2 MMU and caches on (the default) ----

#[test]
fn el2_client_gic3_max() {
    el2_client_case("el2_client_gic3_max", Gic::V3, Cpu::Max, "");
}

#[test]
fn el2_client_gic2_max() {
    el2_client_case("el2_client_gic2_max", Gic::V2, Cpu::Max, "");
}

#[test]
fn el2_client_gic3_cortex_a72() {
    el2_client_case("el2_client_gic3_cortex_a72", Gic::V3, Cpu::CortexA72, "");
}

#[test]
fn el2_client_gic2_cortex_a72() {
    el2_client_case("el2_client_gic2_cortex_a72", Gic::V2, Cpu::CortexA72, "");
}

// ---- the same with the MMU off: both copies give the same, checked, bytes ----

#[test]
fn el2_client_nommu_gic3_max() {
    el2_client_case(
        "el2_client_nommu_gic3_max",
        Gic::V3,
        Cpu::Max,
        "hypstub.copy=nommu",
    );
}

#[test]
fn el2_client_nommu_gic2_max() {
    el2_client_case(
        "el2_client_nommu_gic2_max",
        Gic::V2,
        Cpu::Max,
        "hypstub.copy=nommu",
    );
}

#[test]
fn el2_client_nommu_gic3_cortex_a72() {
    el2_client_case(
        "el2_client_nommu_gic3_cortex_a72",
        Gic::V3,
        Cpu::CortexA72,
        "hypstub.copy=nommu",
    );
}

#[test]
fn el2_client_nommu_gic2_cortex_a72() {
    el2_client_case(
        "el2_client_nommu_gic2_cortex_a72",
        Gic::V2,
        Cpu::CortexA72,
        "hypstub.copy=nommu",
    );
}

// ---- a destination over the firmware's own EL1 stage ----

/// el2-client at text_offset 0x108000 runs at 0x4010_8000, inside the EL1 stage's RAM
/// (0x4010_8000..0x4020_0000) that planned the copy: everything the engine reads must
/// have been staged elsewhere. It is not loaded in place either: the EL1 stage still runs
/// there while fw_cfg reads it.
#[test]
fn el2_client_over_the_el1_stage() {
    let run = client_machine(None, el2_client_over_firmware(), "");
    client_passes("el2_client_over_the_el1_stage", &run)
        .assert_lacks("reloc: payload loaded in place");
}

#[test]
fn el2_client_over_the_el1_stage_nommu() {
    let run = client_machine(None, el2_client_over_firmware(), "hypstub.copy=nommu");
    client_passes("el2_client_over_the_el1_stage_nommu", &run);
}

// ---- a large payload ----

/// The 256 MiB bench payload on a 1 GiB machine, staged (`hypstub.inplace=off`): every page
/// copied (the payload plus the DTB's page(s)), the digests checked, the payload entered.
#[test]
fn bench_payload_256mib_is_copied_and_entered() {
    let run = machine()
        .mem("1G")
        .kernel(bench_payload_256mib())
        .append("hypstub.inplace=off");
    let booted = boot_within("bench_payload_256mib", &run, Duration::from_secs(120));
    booted
        .assert_success()
        .assert_relocated()
        .assert_contains(BENCH_PAYLOAD_MARKER);
    let copied = console::engine_line(booted.log()).map(|e| e.bytes);
    assert!(
        copied.is_some_and(|bytes| bytes > 256 << 20),
        "{}: the engine line says {copied:?} bytes, expected more than 256 MiB",
        booted.name
    );
}

// ---- after the point of no return ----

/// The test-corrupt-staging firmware changes a staged byte after the digests were taken:
/// the engine copies, finds the mismatch, refuses to enter, and powers off.
#[test]
fn corrupt_staging_is_refused() {
    let run = client_machine(Some(corrupt_staging_firmware()), el2_client(), "");
    boot("corrupt_staging_is_refused", &run)
        .assert_success()
        .assert_contains("reloc: digest mismatch")
        .assert_contains("refusing to enter a corrupt payload")
        .assert_contains("hypstub: system stopped")
        .assert_lacks("el2-client: entered")
        .assert_lacks("reloc: digests of every destination range match");
}

/// Building the variant never replaces the normal firmware (each has its own target
/// directory and image file).
#[test]
fn corrupt_staging_image_is_a_separate_build() {
    let variant = corrupt_staging_firmware();
    let normal = hypstub_tests::firmware();
    assert_ne!(variant, normal);
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_ne!(
        read(variant),
        read(normal),
        "the two images are the same bytes"
    );
}

/// A fault in the firmware's own EL1 stage is reported with its syndrome, then the machine
/// stops (the test image reads the stub's RAM, which the EL1 stage leaves unmapped, when
/// the command line has `test.el1_fault`).
#[test]
fn el1_stage_fault_is_reported() {
    let run = client_machine(
        Some(corrupt_staging_firmware()),
        el2_client(),
        "test.el1_fault",
    );
    boot("el1_stage_fault_is_reported", &run)
        .assert_success()
        .assert_contains("EL1 fault: data abort at the same EL")
        .assert_contains("ESR_EL1=")
        .assert_contains("FAR_EL1=0x0000000040100000")
        .assert_contains("hypstub: system stopped")
        .assert_lacks("reloc: copied")
        .assert_lacks("el2-client: entered");
}
