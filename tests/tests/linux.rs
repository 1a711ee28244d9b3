//! Debian 12's arm64 Linux (the kernel of `linux-image-arm64`) booted by hypstub on QEMU
//! `virt` with 4 CPUs and 1 GiB, with the test initramfs (xtask/src/assets/initramfs.rs),
//! whose `/init` reports what Linux found and powers off:
//!
//! - at EL2 (the default), on both GICs and both CPU models: every CPU started at EL2,
//!   KVM initialised (VHE on `max`, which has it; nVHE "Hyp mode" on `cortex-a72`, which
//!   has not), `/dev/kvm` there;
//! - at EL1 (`hypstub.el=1`) under the resident stub: every CPU started at EL1, no KVM,
//!   the stub's RAM reserved, and with `initramfs.stress=1` most of RAM written and CPU 1
//!   taken offline and back (PSCI CPU_OFF and CPU_ON through the stub).
//!
//! Every boot must also show the command line without hypstub's own words, reach
//! `INITRAMFS MARKER DONE` and end with QEMU's exit status 0 (PSCI SYSTEM_OFF). The
//! assets come from the cache `cargo xtask test` fills before running these
//! (docs/linux.md).

use hypstub_tests::{boot_within, firmware, linux_assets, qemu, Boot, LINUX_BOOT_TIMEOUT};
use xtask::linux::{self, InitReport, MARKER_DONE, STRESS_OPTION};
use xtask::runner::{Cpu, Gic, QemuRun};

/// The EL2 stub's console banner and the engine's last word: the boot went through
/// hypstub, not around it.
const HYPSTUB_BANNER: &str = "hypstub ";
const DIGESTS_MATCH: &str = "reloc: digests of every destination range match";

/// A 4-CPU Linux machine through hypstub, with the command line
/// `console=ttyAMA0 hypstub.log=info panic=-1` and `extra` words after it.
fn machine(gic: Gic, cpu: Cpu, extra: &[&str]) -> QemuRun {
    qemu();
    let words = ["hypstub.log=info", "panic=-1"]
        .iter()
        .chain(extra)
        .copied();
    linux::through_hypstub(firmware(), linux_assets(), &linux::command_line(words))
        .smp(4)
        .gic(gic)
        .cpu(cpu)
}

/// Boots `run`, checks what every Linux boot must show, and returns the boot and what
/// `/init` reported.
fn boot_linux(name: &str, run: &QemuRun) -> (Boot, InitReport) {
    let boot = boot_within(name, run, LINUX_BOOT_TIMEOUT);
    let report = InitReport::parse(boot.log());
    let append = run.append.as_deref().unwrap_or_default();
    let want_cmdline = linux::seen_by_linux(append);
    boot.assert_success()
        .assert_contains(HYPSTUB_BANNER)
        .assert_contains(DIGESTS_MATCH)
        .assert_that(
            report.cmdline.as_deref() == Some(want_cmdline.as_str()),
            &format!(
                "`INITRAMFS: cmdline: {want_cmdline}` (the -append without hypstub.*), got {:?}",
                report.cmdline
            ),
        )
        .assert_that(
            report
                .dmesg_line("SMP: Total of 4 processors activated")
                .is_some(),
            "`SMP: Total of 4 processors activated` among the kernel lines /init reports",
        )
        .assert_that(
            report.cpus_online.as_deref() == Some("0-3"),
            &format!(
                "`INITRAMFS: cpus online: 0-3`, got {:?}",
                report.cpus_online
            ),
        )
        .assert_that(report.done, &format!("`{MARKER_DONE}`"));
    (boot, report)
}

/// Linux entered at EL2 on every CPU, with KVM.
fn at_el2(name: &str, gic: Gic, cpu: Cpu) {
    let (boot, report) = boot_linux(name, &machine(gic, cpu, &[]));
    loaded_in_place(&boot);
    // QEMU's `max` has FEAT_VHE, so KVM runs the host kernel at EL2 (VHE); the
    // Cortex-A72 has not, so KVM installs its nVHE hypervisor ("Hyp mode").
    let kvm = match cpu {
        Cpu::Max => "kvm [1]: VHE mode initialized successfully",
        Cpu::CortexA72 => "kvm [1]: Hyp mode initialized successfully",
    };
    boot.assert_that(
        report
            .dmesg_line("CPU: All CPU(s) started at EL2")
            .is_some(),
        "`CPU: All CPU(s) started at EL2` among the kernel lines /init reports",
    )
    .assert_that(
        report.dmesg_line(kvm).is_some(),
        &format!("`{kvm}` among the kernel lines /init reports"),
    )
    .assert_that(report.kvm == Some(true), "`INITRAMFS: /dev/kvm present`");
}

#[test]
fn linux_el2_gic3_max() {
    at_el2("linux_el2_gic3_max", Gic::V3, Cpu::Max);
}

#[test]
fn linux_el2_gic2_cortex_a72() {
    at_el2("linux_el2_gic2_cortex_a72", Gic::V2, Cpu::CortexA72);
}

#[test]
fn linux_el2_gic3_cortex_a72() {
    at_el2("linux_el2_gic3_cortex_a72", Gic::V3, Cpu::CortexA72);
}

#[test]
fn linux_el2_gic2_max() {
    at_el2("linux_el2_gic2_max", Gic::V2, Cpu::Max);
}

/// The kernel and the initrd went by fw_cfg DMA straight to their destinations (free RAM):
/// the engine copied only the DTB's page(s), and still checked every digest.
fn loaded_in_place(boot: &Boot) {
    let copied = xtask::bench::console::engine_line(boot.log()).map(|e| e.bytes);
    boot.assert_contains("reloc: payload loaded in place at 0x40200000..")
        .assert_contains("reloc: initrd loaded in place at ")
        .assert_that(
            copied.is_some_and(|b| b > 0 && b < 1 << 20),
            &format!("the engine copies only the DTB (under 1 MiB), copied {copied:?} bytes"),
        );
}

/// `hypstub.inplace=off`: the kernel and the initrd are staged and copied like the DTB.
#[test]
fn linux_el2_staged_with_inplace_off() {
    let (boot, _) = boot_linux(
        "linux_el2_staged_with_inplace_off",
        &machine(Gic::V3, Cpu::CortexA72, &["hypstub.inplace=off"]),
    );
    let copied = xtask::bench::console::engine_line(boot.log()).map(|e| e.bytes);
    boot.assert_lacks("loaded in place").assert_that(
        copied.is_some_and(|b| b > 32 << 20),
        &format!("the engine copies the kernel and the initrd, copied {copied:?} bytes"),
    );
}

/// Linux entered at EL1 on every CPU, under the resident stub, whose RAM it must leave
/// alone.
fn at_el1(name: &str, gic: Gic, cpu: Cpu, extra: &[&str]) -> (Boot, InitReport) {
    let words: Vec<&str> = ["hypstub.el=1"].iter().chain(extra).copied().collect();
    let (boot, report) = boot_linux(name, &machine(gic, cpu, &words));
    boot.assert_that(
        report
            .dmesg_line("CPU: All CPU(s) started at EL1")
            .is_some(),
        "`CPU: All CPU(s) started at EL1` among the kernel lines /init reports",
    )
    .assert_that(
        report.kvm == Some(false),
        "`INITRAMFS: /dev/kvm absent` (no EL2 for KVM)",
    )
    .assert_that(
        report.stub_ram_reserved(),
        "`INITRAMFS: reserved: <start>-<end>` covering 40100000-40107fff (the stub's RAM, \
         a /memreserve/ of the firmware)",
    );
    (boot, report)
}

#[test]
fn linux_el1_gic3_max() {
    at_el1("linux_el1_gic3_max", Gic::V3, Cpu::Max, &[]);
}

/// The Raspberry Pi 4's CPU and GIC version, at EL1.
#[test]
fn linux_el1_gic2_cortex_a72() {
    at_el1("linux_el1_gic2_cortex_a72", Gic::V2, Cpu::CortexA72, &[]);
}

/// Most of RAM written (a page of the stub's RAM handed to Linux would overwrite the
/// stub), then CPU 1 offline and online again: CPU_OFF and CPU_ON go through the stub.
#[test]
fn linux_el1_gic3_max_stress() {
    let (boot, report) = at_el1(
        "linux_el1_gic3_max_stress",
        Gic::V3,
        Cpu::Max,
        &[STRESS_OPTION],
    );
    boot.assert_that(
        report
            .stress
            .iter()
            .any(|l| l == "cpu1 offline, cpus online: 0,2-3"),
        "`INITRAMFS: stress: cpu1 offline, cpus online: 0,2-3`",
    )
    .assert_that(
        report.stress_done.as_deref() == Some("0-3"),
        &format!(
            "`INITRAMFS: stress done, cpus online: 0-3`, got {:?}",
            report.stress_done
        ),
    );
}
