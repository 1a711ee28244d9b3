//! The Raspberry Pi 4 armstub (docs/armstub.md) on QEMU `-M raspi4b`, whose ELF `-kernel`
//! starts all four Cortex-A72 cores at its entry at EL3, as the Pi's firmware starts them
//! at an armstub:
//!
//! - Debian 12's arm64 Linux booted directly through it, with the test initramfs: the files
//!   where the firmware would put them, the handshake answered as the firmware answers it,
//!   and Debian's own Pi 4 DTB (edited on the host for what the firmware and QEMU would
//!   do). Linux must find every CPU at EL2 (the boot core entered through the handshake,
//!   the others released from the spin table), start KVM, and reach
//!   `INITRAMFS MARKER DONE`;
//! - the handshake missing: the armstub's message on both UARTs, nothing else run.
//!
//! No hypstub kernel8.img is involved: this checks the armstub alone.

use std::fs;
use std::io::Read as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hypstub_tests::{boot_raspi4b, linux_assets, rpi4_armstub, Boot, LINUX_BOOT_TIMEOUT};
use loader::fdt::{Dtb, Edits};
use xtask::armstub::Raspi4b;
use xtask::assets::LinuxAssets;
use xtask::linux::{InitReport, MARKER_DONE};

/// Where the kernel goes: the Pi firmware puts an arm64 Image with a header at 2 MiB
/// (booting.rst: a 2 MiB-aligned base plus text_offset, which is 0).
const KERNEL_AT: u64 = 0x20_0000;
/// The DTB, past the kernel's 33 MiB image_size.
const DTB_AT: u64 = 0x0400_0000;
/// The initramfs, after the DTB's 1 MiB.
const INITRD_AT: u64 = 0x0410_0000;
/// RAM as QEMU's raspi4b describes it with 2 GiB when it edits a DTB itself: below the
/// VideoCore's 64 MiB at the top of the first GiB, and the second GiB.
const RAM: [Range<u64>; 2] = [0..0x3c00_0000, 0x4000_0000..0x8000_0000];
/// Nodes of Debian's Pi 4 DTB that QEMU does not emulate well enough for Linux 6.1: the
/// first three fail the boot (with the first enabled, `brcmstb_l2_driver_init` faults and
/// init dies), the other four are the ones QEMU removes itself when it loads a DTB
/// (hw/arm/raspi4b.c), which it does not for an ELF. A real Pi needs none of this.
const QEMU_DISABLED: [&str; 7] = [
    "/soc/interrupt-controller@7ef00100",
    "/soc/i2c@7ef04500",
    "/soc/i2c@7ef09500",
    "/scb/pcie@7d500000",
    "/scb/ethernet@7d580000",
    "/soc/rng@7e104000",
    "/soc/avs-monitor@7d5d2000/thermal",
];
/// The kernel command line: the PL011 console (the first serial port), clocks QEMU does
/// not model left alone.
const BOOTARGS: &str =
    "console=ttyAMA0 clk_ignore_unused panic=-1 earlycon=pl011,mmio32,0xfe201000";

/// What the armstub prints when the handshake is missing.
const NO_HANDSHAKE: &str = "hypstub armstub: no kernel entry or DTB address from the firmware";

/// The Linux boot's kernel Image (Debian's `vmlinuz` as it is, or decompressed to
/// `target/hypstub/rpi4-armstub-test/<name>.Image` if it is gzip) and edited DTB (there, as
/// `<name>.dtb`: each test writes its own files, as tests run in parallel).
fn linux_files(name: &str, assets: &LinuxAssets) -> (PathBuf, PathBuf) {
    let dir = xtask::output_dir().join("rpi4-armstub-test");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let kernel = kernel_image(&assets.kernel, &dir.join(format!("{name}.Image")));
    let initrd_size = fs::metadata(&assets.initramfs)
        .unwrap_or_else(|e| panic!("{}: {e}", assets.initramfs.display()))
        .len();
    let Some(pi_dtb) = &assets.rpi4_dtb else {
        panic!(
            "the kernel package in the asset cache has no bcm2711-rpi-4-b.dtb; run \
             `cargo xtask assets --refresh`"
        );
    };
    let dtb = qemu_dtb(pi_dtb, INITRD_AT..INITRD_AT + initrd_size);
    let dtb_path = dir.join(format!("{name}.dtb"));
    fs::write(&dtb_path, dtb).unwrap_or_else(|e| panic!("{}: {e}", dtb_path.display()));
    (kernel, dtb_path)
}

/// The kernel as an arm64 Image: Debian 12's `vmlinuz` already is one (with an EFI stub);
/// a gzip-compressed one is decompressed to `unzipped`, as the Pi's firmware would.
fn kernel_image(vmlinuz: &Path, unzipped: &Path) -> PathBuf {
    let bytes = fs::read(vmlinuz).unwrap_or_else(|e| panic!("{}: {e}", vmlinuz.display()));
    let image = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("decompressing {}: {e}", vmlinuz.display()));
        fs::write(unzipped, &out).unwrap_or_else(|e| panic!("{}: {e}", unzipped.display()));
        (out, unzipped.to_owned())
    } else {
        (bytes, vmlinuz.to_owned())
    };
    assert_eq!(
        image.0.get(0x38..0x3c),
        Some(&b"ARM\x64"[..]),
        "{} is not an arm64 Image (booting.rst magic at 0x38)",
        vmlinuz.display()
    );
    assert_eq!(
        image.0.get(0x08..0x10),
        Some(&[0u8; 8][..]),
        "{}: text_offset is not 0; KERNEL_AT assumes it",
        vmlinuz.display()
    );
    image.1
}

/// Debian's Pi 4 DTB with what the firmware would have filled in (RAM, command line,
/// initrd) and the nodes QEMU cannot run disabled.
fn qemu_dtb(pi_dtb: &Path, initrd: Range<u64>) -> Vec<u8> {
    let mut buf = fs::read(pi_dtb).unwrap_or_else(|e| panic!("{}: {e}", pi_dtb.display()));
    buf.resize(buf.len() + 16 * 1024, 0);
    let mut dtb = Dtb::new(&mut buf).unwrap_or_else(|e| panic!("{}: {e}", pi_dtb.display()));
    let mut edits = Edits::new()
        .memory(&RAM)
        .bootargs(BOOTARGS)
        .initrd(initrd.start, initrd.end);
    for node in QEMU_DISABLED {
        edits = edits.disable(node);
    }
    dtb.apply(&edits)
        .unwrap_or_else(|e| panic!("editing {}: {e}", pi_dtb.display()));
    assert_eq!(dtb.memory().ok().as_deref(), Some(&RAM[..]));
    dtb.as_bytes().to_vec()
}

fn machine() -> Raspi4b {
    Raspi4b::new(&rpi4_armstub().elf)
}

/// Boots Linux through the armstub and checks what every such boot must show.
fn boot_linux(name: &str, gic_security_extensions: bool) {
    let assets = linux_assets();
    let (kernel, dtb) = linux_files(name, assets);
    let mut m = machine();
    m.gic_security_extensions = gic_security_extensions;
    m.files = vec![
        (kernel, KERNEL_AT),
        (dtb, DTB_AT),
        (assets.initramfs.clone(), INITRD_AT),
    ];
    m.handshake = Some((DTB_AT as u32, KERNEL_AT as u32));
    let boot = boot_raspi4b(name, &m, MARKER_DONE, LINUX_BOOT_TIMEOUT);
    let report = InitReport::parse(boot.log());
    let kernel_line = |needle: &str| report.dmesg_line(needle).is_some();
    boot.assert_that(
        boot.outcome.stopped_at_marker,
        &format!("`{MARKER_DONE}` from the initramfs"),
    )
    .assert_that(
        report.cmdline.as_deref() == Some(BOOTARGS),
        &format!(
            "`INITRAMFS: cmdline: {BOOTARGS}` (the DTB's bootargs), got {:?}",
            report.cmdline
        ),
    )
    .assert_that(
        kernel_line("Machine model: Raspberry Pi 4 Model B"),
        "`Machine model: Raspberry Pi 4 Model B` (Debian's Pi 4 DTB)",
    )
    .assert_that(
        kernel_line("SMP: Total of 4 processors activated"),
        "`SMP: Total of 4 processors activated` (three released from the spin table)",
    )
    .assert_that(
        report.cpus_online.as_deref() == Some("0-3"),
        &format!(
            "`INITRAMFS: cpus online: 0-3`, got {:?}",
            report.cpus_online
        ),
    )
    .assert_that(
        kernel_line("CPU: All CPU(s) started at EL2"),
        "`CPU: All CPU(s) started at EL2`",
    )
    // The Cortex-A72 has no VHE: KVM installs its nVHE hypervisor at EL2.
    .assert_that(
        kernel_line("kvm [1]: Hyp mode initialized successfully"),
        "`kvm [1]: Hyp mode initialized successfully`",
    )
    .assert_that(report.kvm == Some(true), "`INITRAMFS: /dev/kvm present`")
    .assert_lacks(NO_HANDSHAKE);
}

/// The Pi's GIC-400, with the Security Extensions: the armstub's secure-side set-up puts
/// every interrupt in group 1 for Linux.
#[test]
fn linux_through_the_armstub_at_el2_with_kvm_on_4_cpus() {
    boot_linux("rpi4_armstub_linux", true);
}

/// QEMU's default raspi4b GIC, without the Security Extensions: the armstub sees that in
/// GICD_TYPER and leaves the GIC as it is (group 0 is then Linux's).
#[test]
fn linux_through_the_armstub_on_a_gic_without_security_extensions() {
    boot_linux("rpi4_armstub_linux_gic_no_security", false);
}

#[test]
fn missing_handshake_is_reported_and_nothing_runs() {
    let name = "rpi4_armstub_no_handshake";
    let dir = xtask::output_dir().join("rpi4-armstub-test");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let mini_uart = dir.join("no-handshake-mini-uart.log");
    let _ = fs::remove_file(&mini_uart);
    // A kernel where the firmware would put it, but no handshake: the armstub must not
    // enter it (nor jump to 0).
    let mut m = machine();
    m.files = vec![(linux_assets().kernel.clone(), KERNEL_AT)];
    m.mini_uart = Some(mini_uart.clone());
    let boot: Boot = boot_raspi4b(name, &m, "Halted.", hypstub_tests::BOOT_TIMEOUT);
    let mini = fs::read_to_string(&mini_uart).unwrap_or_default();
    boot.assert_that(boot.outcome.stopped_at_marker, "the message on the PL011")
        .assert_contains(NO_HANDSHAKE)
        .assert_that(
            mini.contains(NO_HANDSHAKE),
            &format!("the message on the mini UART too; it has {mini:?}"),
        )
        .assert_lacks("Booting Linux");
}
