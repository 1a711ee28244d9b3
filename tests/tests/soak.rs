//! The soak (tests/soak-client): 1000 consecutive HVC_SOFT_RESTARTs through the stub by one
//! EL1 payload (`hypstub.el=1`) that checks its own image against the CRC32C embedded at
//! build time at every entry, with PSCI CPU_ON/OFF of the three secondaries of a 4-CPU
//! machine between two restarts; and the runs that show its checks can fail.
//!
//! 1000 cycles take about half a second of guest time under TCG (one boot is a few seconds
//! in all), so the full soak is part of `cargo xtask test`. Every test checks QEMU's exit
//! status and the serial log (tests/soak-client/README.md has the lines).

use std::path::PathBuf;

use client_support::image_digest;
use hypstub_tests::{boot, machine, soak_client, write_asset};
use xtask::runner::{Cpu, Gic, QemuRun};

fn soak_machine() -> QemuRun {
    machine().kernel(soak_client()).smp(4)
}

/// The soak of `cycles` restarts on 4 CPUs passed: every progress line, the final count,
/// no failure.
fn soak_passes(name: &str, run: QemuRun, cycles: u64) {
    let log = boot(
        name,
        &run.append(format!("hypstub.el=1 soak.cycles={cycles}")),
    );
    log.assert_success()
        .assert_relocated()
        .assert_contains("payload: entering at EL1 through the engine")
        .assert_contains(&format!(
            "soak-client: {cycles} HVC_SOFT_RESTART cycles on 4 CPUs"
        ))
        .assert_contains(&format!(
            "soak-client: PASS {cycles} cycles, 0 failures (4 CPUs, {} secondary CPU_ON/OFF, {} image digests)",
            3 * cycles,
            cycles + 1
        ))
        .assert_lacks("soak-client: FAIL")
        .assert_lacks("EL2 fault");
    for n in (100..cycles).step_by(100) {
        log.assert_contains(&format!("soak-client: {n} of {cycles} cycles, 0 failures"));
    }
}

#[test]
fn soak_1000_cycles_smp4_max_gic3() {
    soak_passes(
        "soak_1000_cycles_smp4_max_gic3",
        soak_machine().cpu(Cpu::Max).gic(Gic::V3),
        1000,
    );
}

#[test]
fn soak_1000_cycles_smp4_cortex_a72_gic2() {
    soak_passes(
        "soak_1000_cycles_smp4_cortex_a72_gic2",
        soak_machine().cpu(Cpu::CortexA72).gic(Gic::V2),
        1000,
    );
}

/// `soak.corrupt=40` flips one word inside the digested image at the entry after 40
/// restarts: that entry and the 10 after it must fail the digest check, and the run must
/// end FAILED (the check can fail).
#[test]
fn soak_detects_a_changed_image() {
    boot(
        "soak_detects_a_changed_image",
        &soak_machine().append("hypstub.el=1 soak.cycles=50 soak.corrupt=40"),
    )
    .assert_success()
    .assert_contains("soak-client: soak.corrupt: flipping the canary")
    .assert_lacks("soak-client: FAIL after 39 restarts")
    .assert_contains("soak-client: FAIL after 40 restarts: image digest: CRC32C")
    .assert_contains("soak-client: FAIL after 50 restarts: image digest")
    .assert_contains("soak-client: FAILED after 50 of 50 cycles, 11 failures")
    .assert_lacks("soak-client: PASS");
}

/// The same image with the digest record as linked (no digest embedded) refuses to soak.
#[test]
fn soak_without_embedded_digest_fails() {
    let mut bytes = std::fs::read(soak_client()).expect("reading the soak-client image");
    let at = bytes.len() - image_digest::RECORD_LEN;
    bytes[at..at + 4].copy_from_slice(&image_digest::PLACEHOLDER.to_le_bytes());
    bytes[at + 4..].fill(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soak");
    let image = write_asset(&dir, "soak-client-no-digest.bin", &bytes);
    boot(
        "soak_without_embedded_digest_fails",
        &machine()
            .kernel(&image)
            .smp(2)
            .append("hypstub.el=1 soak.cycles=5"),
    )
    .assert_success()
    .assert_contains("soak-client: FAIL after 0 restarts: no image digest embedded")
    .assert_contains("soak-client: FAILED")
    .assert_lacks("soak-client: PASS");
}

/// Entered at EL2 (hypstub's default), there is no stub below the client to soak: it says
/// so and powers off instead of misreading its entry as a restart.
#[test]
fn soak_at_el2_says_there_is_no_stub() {
    boot(
        "soak_at_el2_says_there_is_no_stub",
        &soak_machine().append("soak.cycles=5"),
    )
    .assert_success()
    .assert_contains("payload: entering at EL2 through the engine")
    .assert_contains("soak-client: FAIL entered at EL2, not at EL1 under a stub")
    .assert_lacks("soak-client: PASS");
}

/// A bad option is refused with a message naming it, before any restart.
#[test]
fn soak_refuses_a_bad_option() {
    boot(
        "soak_refuses_a_bad_option",
        &soak_machine().append("hypstub.el=1 soak.cycles=0x10"),
    )
    .assert_success()
    .assert_contains("soak-client: FAIL after 0 restarts: bad value in `soak.cycles=0x10`")
    .assert_contains("soak-client: FAILED before the soak started")
    .assert_lacks("soak-client: PASS");
}
