//! QEMU `-M raspi4b` booting Debian's arm64 kernel **directly** (QEMU loads the Image at
//! 0x200000, the initramfs at 0x0800_0000 and the DTB after it, and enters the kernel at
//! EL2): no hypstub. This proves what hypstub's Pi 4 runs build on (the machine arguments,
//! Debian's DTB as prepared for QEMU, the cmdline.txt words with each console) and is the
//! baseline they are compared with.
//!
//! Each boot must show all four CPUs up at EL2, KVM's nVHE hypervisor installed (the
//! Cortex-A72 has no VHE), the command line as given, the console on the UART chosen, and
//! reach `INITRAMFS MARKER DONE`, where QEMU is stopped (raspi4b cannot power off). The
//! assets come from the cache `cargo xtask test` fills (docs/linux.md); with `CI=true` a
//! missing one is a failure, as everywhere.

use hypstub_tests::{boot_to_marker, rpi4_direct, Boot, LINUX_BOOT_TIMEOUT};
use xtask::linux::{InitReport, MARKER_DONE};
use xtask::rpi4::Console;

/// What Linux says when the mini-UART (Debian's DTB: `serial1`) registers: its name is
/// `ttyS1`.
const MINI_UART_IS_TTYS1: &str = "fe215040.serial: ttyS1 at MMIO 0xfe215040";

/// Boots Linux directly with `console` and checks what every such boot must show.
fn direct(name: &str, console: Console) -> (Boot, InitReport) {
    let run = rpi4_direct(console, &[]);
    let boot = boot_to_marker(name, &run, MARKER_DONE, LINUX_BOOT_TIMEOUT);
    let report = InitReport::parse(boot.log());
    let append = run.append.clone().unwrap_or_default();
    eprintln!(
        "[{name}] reached the marker after {:.1} s",
        boot.outcome.elapsed.as_secs_f32()
    );
    boot.assert_stopped_at_marker()
        .assert_contains("Machine model: Raspberry Pi 4 Model B")
        .assert_contains("SMP: Total of 4 processors activated")
        .assert_contains("CPU: All CPU(s) started at EL2")
        .assert_contains("kvm [1]: Hyp mode initialized successfully")
        .assert_contains(MINI_UART_IS_TTYS1)
        .assert_that(
            report.cmdline.as_deref() == Some(append.as_str()),
            &format!("`INITRAMFS: cmdline: {append}`, got {:?}", report.cmdline),
        )
        .assert_that(
            report.cpus_online.as_deref() == Some("0-3"),
            &format!(
                "`INITRAMFS: cpus online: 0-3`, got {:?}",
                report.cpus_online
            ),
        )
        .assert_that(report.kvm == Some(true), "`INITRAMFS: /dev/kvm present`")
        .assert_that(report.done, &format!("`{MARKER_DONE}`"));
    (boot, report)
}

/// Debian's DTB as it is (stdout-path `serial1`, the mini-UART) and `console=ttyS1`:
/// Linux's console is the mini-UART, and on QEMU the PL011 after it carries
/// `/dev/console` (QEMU's mini-UART cannot be an interrupt-driven tty).
#[test]
fn rpi4_direct_mini_uart() {
    let (boot, _) = direct("rpi4_direct_mini_uart", Console::MiniUart);
    boot.assert_contains("Kernel command line: console=ttyS1,115200 clk_ignore_unused")
        .assert_contains("printk: console [ttyS1] enabled")
        .assert_contains("printk: console [ttyAMA0] enabled");
}

/// stdout-path `serial0` (the PL011) and `console=ttyAMA0`: everything on the PL011, and
/// the mini-UART is no console at all.
#[test]
fn rpi4_direct_pl011() {
    let (boot, _) = direct("rpi4_direct_pl011", Console::Pl011);
    boot.assert_contains("Kernel command line: console=ttyAMA0,115200 clk_ignore_unused")
        .assert_contains("printk: console [ttyAMA0] enabled")
        .assert_lacks("printk: console [ttyS1] enabled");
}
