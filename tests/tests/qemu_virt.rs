//! hypstub on QEMU `virt` (EL2 entry, `-bios` flash image): the built-in demo (relocated
//! and entered at EL2), the ABI client payload at EL1, an EL2 fault, and bad input
//! that must be rejected before the point of no return. The EL2 payloads (el2-client, the
//! bench payload, a corrupt staging copy) are in `el2_entry.rs`.
//!
//! Every test checks both QEMU's exit status and the serial log, using the console
//! markers of docs/CONTRACTS.md. Each test boots its own machine; none depends on another.

use std::path::PathBuf;

use hypstub_tests::{
    abi_client, bench_payload_256mib, boot, machine, pseudo_random_bytes, write_asset, ImageHeader,
    IMAGE_MAGIC,
};
use xtask::runner::{Cpu, Gic, QemuRun};

/// Where tests write the inputs they make (cargo's per-package scratch directory).
fn asset_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu_virt")
}

// ---- the built-in demo (no -kernel) ----

/// The demo runs its checks at EL1, then the firmware relocates the demo payload, which
/// reports what it was entered with (booting.rst's contract) and powers off.
/// (Only at EL2: QEMU takes `-append`, and with it `hypstub.el=1`, only with `-kernel`,
/// which replaces the demo.)
fn demo(name: &str, gic: Gic) {
    boot(name, &machine().gic(gic))
        .assert_success()
        .assert_contains("hypstub ")
        .assert_contains("qemu-virt")
        .assert_contains("el2-stub: EL2 set up")
        .assert_contains("el1: MMU and caches on")
        .assert_contains("demo: CurrentEL=1")
        .assert_contains("demo: PASS")
        .assert_relocated()
        .assert_contains("demo payload: entered at EL2")
        .assert_contains("x1..x3 zero: yes")
        .assert_contains("MMU and D-cache off: yes")
        .assert_contains("DAIF masked: yes")
        .assert_contains("x0 points at an FDT: yes")
        .assert_contains("demo payload: powering off");
}

#[test]
fn demo_gic3() {
    demo("demo_gic3", Gic::V3);
}

#[test]
fn demo_gic2() {
    demo("demo_gic2", Gic::V2);
}

// ---- the ABI client at EL1 ----

fn abi_client_machine() -> QemuRun {
    machine().kernel(abi_client())
}

/// The ABI client is an EL1 payload (`hypstub.el=1`): relocated by the engine at EL2,
/// entered at EL1 by its `eret`, with the stub staying at EL2 to answer it.
fn abi_client_passes(name: &str, run: QemuRun) {
    boot(name, &run.append("hypstub.el=1"))
        .assert_success()
        .assert_relocated()
        .assert_contains("abi-client: PASS")
        .assert_lacks("abi-client: FAIL");
}

#[test]
fn abi_client_smp4_gic3() {
    abi_client_passes(
        "abi_client_smp4_gic3",
        abi_client_machine().smp(4).gic(Gic::V3),
    );
}

#[test]
fn abi_client_smp4_gic2() {
    abi_client_passes(
        "abi_client_smp4_gic2",
        abi_client_machine().smp(4).gic(Gic::V2),
    );
}

/// The Raspberry Pi 4's core with a GICv2, as on the Pi's GIC-400, but on `virt`.
#[test]
fn abi_client_cortex_a72() {
    abi_client_passes(
        "abi_client_cortex_a72",
        abi_client_machine().cpu(Cpu::CortexA72).smp(4).gic(Gic::V2),
    );
}

/// An exception taken to EL2 is reported with its registers and the machine stops in a
/// defined way (docs/hyp-abi.md), never a silent hang.
#[test]
fn abi_client_el2_fault_is_reported() {
    boot(
        "abi_client_el2_fault",
        &abi_client_machine().append("hypstub.el=1 abi.fault=el2"),
    )
    .assert_success()
    .assert_contains("abi-client: faulting at EL2 on purpose")
    .assert_contains("EL2 fault:")
    .assert_contains("ESR_EL2=")
    .assert_contains("ELR_EL2=")
    .assert_contains("FAR_EL2=")
    .assert_contains("SPSR_EL2=")
    .assert_contains("hypstub: system stopped");
}

// ---- bad input: rejected before the point of no return (docs/architecture.md, "What bad input gets") ----

#[test]
fn rejects_kernel_without_image_header() {
    let junk = pseudo_random_bytes(1 << 20, 0x5eed);
    assert_ne!(
        &junk[0x38..0x3c],
        &IMAGE_MAGIC.to_le_bytes(),
        "the junk must not carry the magic"
    );
    let kernel = write_asset(&asset_dir(), "junk-1MiB.bin", &junk);
    boot(
        "rejects_kernel_without_image_header",
        &machine().kernel(kernel).append("hypstub.el=1"),
    )
    .assert_rejected("not an arm64 Image");
}

#[test]
fn rejects_kernel_that_does_not_fit_in_ram() {
    let header = ImageHeader {
        // `b 0x40`: branch past the header, as a real image's code0 would.
        code0: 0x1400_0010,
        code1: 0,
        text_offset: 0,
        image_size: 1 << 30,
        // 4 KiB pages, may be placed anywhere in RAM.
        flags: 0b1010,
    };
    let mut image = vec![0u8; 4096];
    image[..64].copy_from_slice(&header.to_bytes());
    let kernel = write_asset(&asset_dir(), "header-1GiB.bin", &image);
    boot(
        "rejects_kernel_that_does_not_fit_in_ram",
        &machine().mem("256M").kernel(kernel).append("hypstub.el=1"),
    )
    .assert_rejected("does not fit in RAM");
}

#[test]
fn rejects_unknown_hypstub_option() {
    boot(
        "rejects_unknown_hypstub_option",
        &abi_client_machine().append("hypstub.el=1 hypstub.frobnicate=1"),
    )
    .assert_rejected("unknown option hypstub.frobnicate");
}

#[test]
fn rejects_too_long_command_line() {
    let append = format!("hypstub.el=1 {}", "x".repeat(3000));
    boot(
        "rejects_too_long_command_line",
        &abi_client_machine().append(append),
    )
    .assert_rejected("command line too long");
}

/// A payload larger than RAM, through the EL2 path (`hypstub.el=2`, the default): the
/// 256 MiB bench payload on a 256 MiB machine is refused while placing it.
#[test]
fn rejects_payload_larger_than_ram() {
    boot(
        "rejects_payload_larger_than_ram",
        &machine().mem("256M").kernel(bench_payload_256mib()),
    )
    .assert_rejected("does not fit in RAM")
    .assert_lacks("bench payload: entered");
}

/// A payload that fits in RAM once but not twice, staged (`hypstub.inplace=off`): its
/// destination fits, but the planner finds no room to stage the copy the engine would read,
/// and says so before the HVC.
#[test]
fn rejects_payload_without_room_to_stage() {
    boot(
        "rejects_payload_without_room_to_stage",
        &machine()
            .mem("384M")
            .kernel(bench_payload_256mib())
            .append("hypstub.inplace=off"),
    )
    .assert_rejected("reloc: ")
    .assert_lacks("bench payload: entered");
}

/// The same payload on the same machine by default: fw_cfg DMA loads it in place, so it
/// needs no staging room; the engine copies only the DTB, checks the payload's digest and
/// enters it.
#[test]
fn payload_that_fits_once_is_loaded_in_place() {
    let booted = boot(
        "payload_that_fits_once_is_loaded_in_place",
        &machine().mem("384M").kernel(bench_payload_256mib()),
    );
    let copied = xtask::bench::console::engine_line(booted.log()).map(|e| e.bytes);
    booted
        .assert_success()
        .assert_relocated()
        .assert_contains("reloc: payload loaded in place at 0x40200000..")
        .assert_that(
            copied.is_some_and(|b| b > 0 && b < 1 << 20),
            &format!("the engine copies only the DTB (under 1 MiB), copied {copied:?} bytes"),
        )
        .assert_contains("bench payload: entered");
}
