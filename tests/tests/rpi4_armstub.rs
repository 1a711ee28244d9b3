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
//! - the whole Pi chain, as with `armstub=armstub8-hypstub.bin` and hypstub's SD-card
//!   folder: the armstub at EL3, hypstub's `kernel8.img` at EL2 with its payload.itb, Linux
//!   at EL2 with its secondaries released from the armstub's spin table;
//! - the handshake missing: the armstub's message on both UARTs, nothing else run.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hypstub_tests::{
    boot_to_marker, linux_assets, qemu, rpi4_armstub, rpi4_folder, Boot, BOOT_TIMEOUT,
    LINUX_BOOT_TIMEOUT,
};
use loader::dt::{Dtb, Edits};
use xtask::armstub::{Machine, NO_HANDSHAKE_MESSAGE};
use xtask::assets::LinuxAssets;
use xtask::linux::{El, InitReport, MARKER_DONE};
use xtask::rpi4::{self, Console};

/// Where the kernel goes: the Pi firmware puts an arm64 Image with a header at 2 MiB
/// (booting.rst: a 2 MiB-aligned base plus text_offset, which is 0).
const KERNEL_AT: u64 = 0x20_0000;
/// The DTB, past the kernel's 33 MiB image_size.
const DTB_AT: u64 = 0x0400_0000;
/// The initramfs, after the DTB's 1 MiB.
const INITRD_AT: u64 = 0x0410_0000;
/// RAM as a 2 GiB Pi 4's firmware describes it: the first GiB below the VideoCore's part
/// (QEMU's model puts 64 MiB of it at the top), and the second GiB. (QEMU's own `-dtb`
/// boot describes only the first bank.)
const RAM: [Range<u64>; 2] = [0..0x3c00_0000, 0x4000_0000..0x8000_0000];
/// Besides `rpi4::QEMU_DISABLED_NODES` (which `rpi4::prepare_qemu_dtb` disables; with the
/// first of them enabled, `brcmstb_l2_driver_init` faults and init dies), the nodes QEMU
/// removes itself when it loads a DTB for `-dtb` (hw/arm/raspi4b.c), which it does not for
/// an ELF `-kernel`. A real Pi needs none of this.
const QEMU_REMOVES: [&str; 4] = [
    "/scb/pcie@7d500000",
    "/scb/ethernet@7d580000",
    "/soc/rng@7e104000",
    "/soc/avs-monitor@7d5d2000/thermal",
];
/// The kernel command line: the PL011 console (QEMU's first serial port; early output too,
/// for a boot that hangs), clocks QEMU does not model left alone.
const BOOTARGS: &str =
    "console=ttyAMA0 clk_ignore_unused panic=-1 earlycon=pl011,mmio32,0xfe201000";

/// The Linux boot's kernel Image (Debian's `vmlinuz` as it is, or its decompressed copy if
/// it is gzip: `rpi4::qemu_kernel`) and edited DTB (written to
/// `target/hypstub/rpi4-armstub-test/<name>.dtb`: each test its own, as they run in
/// parallel).
fn linux_files(name: &str, assets: &LinuxAssets) -> (PathBuf, PathBuf) {
    let kernel = rpi4::qemu_kernel(&assets.kernel)
        .unwrap_or_else(|e| panic!("the kernel for QEMU raspi4b: {e:#}"));
    let initrd_size = fs::metadata(&assets.initramfs)
        .unwrap_or_else(|e| panic!("{}: {e}", assets.initramfs.display()))
        .len();
    let dtb = qemu_dtb(BOOTARGS, INITRD_AT..INITRD_AT + initrd_size);
    (kernel, write_dtb(name, &dtb))
}

/// Writes `dtb` to `target/hypstub/rpi4-armstub-test/<name>.dtb` (each test its own file,
/// as they run in parallel) and returns the path.
fn write_dtb(name: &str, dtb: &[u8]) -> PathBuf {
    let dir = xtask::output_dir().join("rpi4-armstub-test");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let path = dir.join(format!("{name}.dtb"));
    fs::write(&path, dtb).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// Debian's Pi 4 DTB prepared for QEMU raspi4b with the PL011 console
/// (`rpi4::prepare_qemu_dtb`), the nodes [`QEMU_REMOVES`] disabled, and what the firmware
/// would have filled in: RAM, the command line (cmdline.txt's), the initrd.
fn qemu_dtb(bootargs: &str, initrd: Range<u64>) -> Vec<u8> {
    let Some(pi_dtb) = &linux_assets().rpi4_dtb else {
        panic!(
            "the kernel package in the asset cache has no bcm2711-rpi-4-b.dtb; run \
             `cargo xtask assets --refresh`"
        );
    };
    let pi_dtb: &Path = pi_dtb;
    let bytes = fs::read(pi_dtb).unwrap_or_else(|e| panic!("{}: {e}", pi_dtb.display()));
    let mut buf = rpi4::prepare_qemu_dtb(&bytes, Console::Pl011)
        .unwrap_or_else(|e| panic!("{}: {e}", pi_dtb.display()));
    buf.resize(buf.len() + 16 * 1024, 0);
    let mut dtb = Dtb::new(&mut buf).unwrap_or_else(|e| panic!("{}: {e}", pi_dtb.display()));
    let edits = QEMU_REMOVES.into_iter().fold(
        Edits::new()
            .memory(&RAM)
            .bootargs(bootargs)
            .initrd(initrd.start, initrd.end),
        Edits::disable,
    );
    dtb.apply(&edits)
        .unwrap_or_else(|e| panic!("editing {}: {e}", pi_dtb.display()));
    assert_eq!(dtb.memory().ok().as_deref(), Some(&RAM[..]));
    dtb.as_bytes().to_vec()
}

fn machine() -> Machine {
    qemu();
    Machine::new(&rpi4_armstub().elf)
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
    let boot = boot_to_marker(name, &m.run(), MARKER_DONE, LINUX_BOOT_TIMEOUT);
    let report = InitReport::parse(boot.log());
    assert_linux(&boot, &report);
    boot.assert_that(
        report.cmdline.as_deref() == Some(BOOTARGS),
        &format!(
            "`INITRAMFS: cmdline: {BOOTARGS}` (the DTB's bootargs), got {:?}",
            report.cmdline
        ),
    );
}

/// What every Linux boot through the armstub must show: the initramfs's marker, Debian's Pi
/// 4 DTB, 4 CPUs at EL2, KVM, no armstub message.
fn assert_linux(boot: &Boot, report: &InitReport) {
    let kernel_line = |needle: &str| report.dmesg_line(needle).is_some();
    boot.assert_that(
        boot.outcome.stopped_at_marker,
        &format!("`{MARKER_DONE}` from the initramfs"),
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
    .assert_lacks(NO_HANDSHAKE_MESSAGE);
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

/// The Pi's whole chain: the armstub at EL3, hypstub's kernel8.img (the rpi4 firmware) at
/// EL2 with its payload.itb (Linux and the initramfs) where `initramfs ... followkernel`
/// would put it, then Linux at EL2 with every CPU, the secondaries still waiting in the
/// armstub's spin loop until Linux releases them.
#[test]
fn kernel8_through_the_armstub_boots_linux_at_el2() {
    let name = "rpi4_armstub_kernel8";
    let assets = linux_assets();
    let folder = rpi4_folder(
        name,
        Some((&assets.kernel, Some(&assets.initramfs))),
        El::El2,
        Console::Pl011,
        &[],
    );
    let cmdline_path = folder.path(rpi4::CMDLINE_FILE);
    let cmdline = fs::read_to_string(&cmdline_path)
        .unwrap_or_else(|e| panic!("{}: {e}", cmdline_path.display()));
    let payload = folder.path(rpi4::PAYLOAD_FILE);
    let payload_size = fs::metadata(&payload)
        .unwrap_or_else(|e| panic!("{}: {e}", payload.display()))
        .len();
    // Where QEMU's own raspi4b boot puts an initrd and the DTB after it (docs/xtask.md).
    let payload_at = 0x0800_0000;
    let dtb_at = (payload_at + payload_size).next_multiple_of(2 << 20);
    let dtb = qemu_dtb(cmdline.trim(), payload_at..payload_at + payload_size);
    let mut m = machine();
    m.files = vec![
        (folder.path(rpi4::KERNEL_FILE), rpi4::KERNEL_ADDRESS),
        (payload, payload_at),
        (write_dtb(name, &dtb), dtb_at),
    ];
    m.handshake = Some((dtb_at as u32, rpi4::KERNEL_ADDRESS as u32));
    let boot = boot_to_marker(name, &m.run(), MARKER_DONE, LINUX_BOOT_TIMEOUT);
    let report = InitReport::parse(boot.log());
    assert_linux(&boot, &report);
    boot.assert_contains("hypstub 0.1.0 on rpi4")
        .assert_contains("timer: CNTFRQ_EL0 = 54000000 Hz")
        .assert_contains("payload: entering at EL2 through the engine")
        .assert_contains("reloc: digests of every destination range match");
}

#[test]
fn missing_handshake_is_reported_and_nothing_runs() {
    let name = "rpi4_armstub_no_handshake";
    // A kernel where the firmware would put it, but no handshake: the armstub must not
    // enter it (nor jump to 0).
    let mut m = machine();
    m.files = vec![(linux_assets().kernel.clone(), KERNEL_AT)];
    // Both serial ports go to the one log, the mini UART's copy first, then the PL011's:
    // stop once both are there.
    let both = format!("{NO_HANDSHAKE_MESSAGE}\r\n\r\n{NO_HANDSHAKE_MESSAGE}");
    let boot = boot_to_marker(name, &m.run(), &both, BOOT_TIMEOUT);
    boot.assert_that(
        boot.outcome.stopped_at_marker,
        "the message on the mini UART, then on the PL011",
    )
    .assert_lacks("Booting Linux");
}
