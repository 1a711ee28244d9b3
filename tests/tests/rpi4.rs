//! hypstub's Raspberry Pi 4 firmware (`kernel8.img`) on QEMU `-M raspi4b`, booted as the Pi
//! firmware would boot an SD card made by `cargo xtask build --board rpi4`: kernel8.img at
//! 0x8_0000 entered at EL2 with x0 = DTB, payload.itb as the initrd, the cmdline.txt words
//! as the command line, Debian's Pi 4 DTB prepared for QEMU (docs/rpi4.md).
//!
//! - Linux at EL2 (4 CPUs released by Linux from the spin table, KVM) and at EL1 with
//!   `hypstub.el=1` (4 CPUs through the stub's mailboxes), one on each console;
//! - the built-in demo on each console, ending in the PM block's power-off (QEMU exits 0);
//! - a FIT whose kernel hash does not match, refused before anything is loaded.
//!
//! Linux runs end at the initramfs marker: QEMU's raspi4b does not power off on Linux's
//! request. With `CI=true` a missing asset is a failure.

use std::path::Path;

use hypstub_tests::{
    boot, boot_to_marker, el2_client, fit_without_kernel, linux_assets, pseudo_random_bytes,
    qemu_dumped_dtb, rpi4_folder, rpi4_machine, Boot, LINUX_BOOT_TIMEOUT,
};
use xtask::linux::{El, InitReport, MARKER_DONE};
use xtask::memory_map::rpi4::{IMAGE_BASE, RESIDENT, SHARED};
use xtask::rpi4::{Console, PAYLOAD_FILE};

/// The firmware's own lines every boot with a payload shows.
fn assert_firmware(boot: &Boot, console: Console, el: u32) {
    let console_line = match console {
        Console::MiniUart => "console mini-UART at 0xfe215040",
        Console::Pl011 => "console PL011 at 0xfe201000",
    };
    boot.assert_contains("hypstub 0.1.0 on rpi4")
        .assert_contains(console_line)
        .assert_contains("timer: CNTFRQ_EL0 = 62500000 Hz")
        .assert_contains("; 4 CPUs; reserved 0x0..0x1000")
        .assert_contains("fit: crc32 of all 2 images verified in ")
        .assert_contains("reloc: payload not staged: the engine copies it from ")
        .assert_contains("reloc: initrd not staged: the engine copies it from ")
        .assert_contains(&format!("payload: entering at EL{el} through the engine"))
        .assert_contains("reloc: digests of every destination range match");
}

fn linux(name: &str, el: El, console: Console) -> (Boot, InitReport) {
    let assets = linux_assets();
    let folder = rpi4_folder(
        name,
        Some((&assets.kernel, Some(&assets.initramfs))),
        el,
        console,
        &[],
    );
    let run = rpi4_machine(&folder, console);
    let boot = boot_to_marker(name, &run, MARKER_DONE, LINUX_BOOT_TIMEOUT);
    let report = InitReport::parse(boot.log());
    boot.assert_stopped_at_marker()
        .assert_contains("Machine model: Raspberry Pi 4 Model B")
        .assert_contains("SMP: Total of 4 processors activated")
        .assert_that(
            report.cpus_online.as_deref() == Some("0-3"),
            &format!(
                "`INITRAMFS: cpus online: 0-3`, got {:?}",
                report.cpus_online
            ),
        )
        .assert_that(
            report
                .cmdline
                .as_deref()
                .is_some_and(|c| !c.contains("hypstub.")),
            &format!(
                "a command line without hypstub.* options, got {:?}",
                report.cmdline
            ),
        )
        .assert_that(report.done, &format!("`{MARKER_DONE}`"));
    (boot, report)
}

/// Linux at EL2 with the firmware on the mini-UART (Debian's DTB as it is): the kernel
/// releases its secondaries from the spin table itself, and KVM installs its hypervisor.
#[test]
fn rpi4_linux_at_el2_mini_uart() {
    let (boot, report) = linux("rpi4_linux_el2", El::El2, Console::MiniUart);
    assert_firmware(&boot, Console::MiniUart, 2);
    boot.assert_contains("CPU: All CPU(s) started at EL2")
        .assert_contains("kvm [1]: Hyp mode initialized successfully")
        .assert_that(report.kvm == Some(true), "`INITRAMFS: /dev/kvm present`")
        .assert_that(
            report.iomem_reserves(0, 0x1000),
            &format!(
                "page 0 (the spin table) reserved in /proc/iomem, got {:x?}",
                report.iomem_reserved
            ),
        );
}

/// Linux at EL1 with `hypstub.el=1` and the firmware on the PL011: hypstub takes the three
/// secondaries over, each gets the stub and parks on the stub's mailbox, and Linux releases
/// them from there, at EL1.
#[test]
fn rpi4_linux_at_el1_pl011() {
    let (boot, report) = linux("rpi4_linux_el1", El::El1, Console::Pl011);
    assert_firmware(&boot, Console::Pl011, 1);
    boot.assert_contains("cpus: 3 secondary CPUs have the stub and are parked at EL1")
        .assert_contains("CPU: All CPU(s) started at EL1")
        .assert_contains("kvm [1]: HYP mode not available")
        .assert_that(report.kvm == Some(false), "`INITRAMFS: /dev/kvm absent`")
        .assert_that(
            report.iomem_reserves(SHARED.start, SHARED.end)
                && report.iomem_reserves(RESIDENT.start, RESIDENT.end),
            &format!(
                "the stub's shared page {SHARED:#x?} and its RAM {RESIDENT:#x?} (no-map) \
                 reserved in /proc/iomem, got {:x?}",
                report.iomem_reserved
            ),
        )
        .assert_that(
            report.iomem_reserves(IMAGE_BASE, IMAGE_BASE + 0x1000),
            &format!(
                "kernel8.img's code (from {IMAGE_BASE:#x}) reserved in /proc/iomem, got {:x?}",
                report.iomem_reserved
            ),
        );
}

/// A FIT that carries its own DTB (Debian's, whose /memory the Pi firmware would fill in):
/// hypstub boots with it, sets its /memory from the firmware's DTB, and Linux finds all
/// four CPUs and its RAM.
#[test]
fn rpi4_linux_with_the_fits_dtb() {
    let name = "rpi4_fit_dtb";
    let assets = linux_assets();
    let console = Console::MiniUart;
    let folder = rpi4_folder(
        name,
        Some((&assets.kernel, Some(&assets.initramfs))),
        El::El2,
        console,
        &[],
    );
    let kernel = std::fs::read(xtask::rpi4::qemu_kernel(&assets.kernel).unwrap()).unwrap();
    let initrd = std::fs::read(&assets.initramfs).unwrap();
    // The DTB QEMU passes (QEMU disables the devices it does not model in it), with a wrong
    // /memory (256 MiB) that the firmware must replace by the board's.
    let mut dtb = qemu_dumped_dtb(
        &rpi4_machine(&folder, console),
        &folder.path("qemu-dump.dtb"),
    );
    dtb.resize(dtb.len() + 4096, 0);
    let mut edited = loader::dt::Dtb::new(&mut dtb).unwrap();
    let wrong = 0..0x1000_0000;
    edited
        .apply(&loader::dt::Edits::new().memory(core::slice::from_ref(&wrong)))
        .unwrap();
    let dtb = edited.as_bytes().to_vec();
    let fit = xtask::fit::write_fit(&kernel, Some(&initrd), Some(&dtb), "with its DTB");
    std::fs::write(folder.path(PAYLOAD_FILE), fit).unwrap();
    let boot = boot_to_marker(
        name,
        &rpi4_machine(&folder, console),
        MARKER_DONE,
        LINUX_BOOT_TIMEOUT,
    );
    boot.assert_stopped_at_marker()
        .assert_contains("fit: sha256 of all 3 images verified in ")
        .assert_contains("dtb: using the FIT's device tree")
        .assert_contains("node   0: [mem 0x0000000000000000-0x000000003bffffff]")
        .assert_contains("SMP: Total of 4 processors activated")
        .assert_contains("CPU: All CPU(s) started at EL2")
        .assert_contains(MARKER_DONE);
}

/// No payload: the demo asks the stub what it answers (no PSCI on the Pi), then relocates
/// the demo payload, which reports its entry on the DTB's console and powers the board off
/// through the PM block: QEMU exits 0.
fn demo(name: &str, console: Console) -> Boot {
    let folder = rpi4_folder(name, None, El::El2, console, &[]);
    let b = boot(name, &rpi4_machine(&folder, console));
    b.assert_success()
        .assert_contains("demo: PSCI_VERSION -> NOT_SUPPORTED (this board has no PSCI)")
        .assert_contains("demo: PASS")
        .assert_contains(
            "demo payload: entered at EL2 with x0=0x0000000000201000; x1..x3 zero: yes; MMU and D-cache off: yes; DAIF masked: yes; x0 points at an FDT: yes",
        )
        .assert_contains("demo payload: powering off");
    b
}

#[test]
fn rpi4_demo_mini_uart() {
    demo("rpi4_demo_mini", Console::MiniUart)
        .assert_contains("console mini-UART at 0xfe215040")
        .assert_contains("MiB/s with the MMU and caches on");
}

#[test]
fn rpi4_demo_pl011() {
    demo("rpi4_demo_pl011", Console::Pl011).assert_contains("console PL011 at 0xfe201000");
}

/// The index of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A FIT whose kernel no longer matches its crc32 (the folder's FIT has crc32 hashes) is
/// refused before anything is staged;
/// the firmware says which image and both digests, then powers off (QEMU exits 0).
#[test]
fn rpi4_fit_with_a_bad_hash_is_refused() {
    let name = "rpi4_bad_hash";
    let kernel: &Path = el2_client();
    let folder = rpi4_folder(name, Some((kernel, None)), El::El2, Console::MiniUart, &[]);
    let itb = folder.path(PAYLOAD_FILE);
    let mut fit = std::fs::read(&itb).unwrap();
    let bytes = std::fs::read(kernel).unwrap();
    let at = find(&fit, &bytes[..256]).expect("the kernel's bytes are embedded in the FIT");
    fit[at + 4096] ^= 0x40;
    std::fs::write(&itb, &fit).unwrap();
    boot(name, &rpi4_machine(&folder, Console::MiniUart))
        .assert_success()
        .assert_contains("fit: FIT image kernel hash-1: crc32 mismatch: expected ")
        .assert_contains("hypstub: stopping: nothing was loaded")
        .assert_lacks("reloc: HVC_SOFT_RESTART");
}

/// Boots a folder whose payload.itb is replaced by `fit`, expecting a refusal with `phrase`
/// before anything is loaded.
fn refused(name: &str, fit: &[u8], phrase: &str) {
    let folder = rpi4_folder(
        name,
        Some((el2_client(), None)),
        El::El2,
        Console::Pl011,
        &[],
    );
    std::fs::write(folder.path(PAYLOAD_FILE), fit).unwrap();
    boot(name, &rpi4_machine(&folder, Console::Pl011))
        .assert_success()
        .assert_contains(phrase)
        .assert_contains("hypstub: stopping: nothing was loaded")
        .assert_lacks("reloc: HVC_SOFT_RESTART");
}

/// A FIT whose configuration names no kernel.
#[test]
fn rpi4_fit_without_a_kernel_is_refused() {
    refused(
        "rpi4_no_kernel",
        &fit_without_kernel(),
        "fit: FIT has no kernel: /configurations/conf-1 has no kernel property",
    );
}

/// A FIT whose kernel is not an arm64 Image: its hash matches, its header does not.
#[test]
fn rpi4_fit_kernel_without_arm64_header_is_refused() {
    let junk = pseudo_random_bytes(64 << 10, 0x9e4);
    refused(
        "rpi4_junk_kernel",
        &xtask::fit::write_fit(&junk, None, None, "junk"),
        "payload: not an arm64 Image",
    );
}

/// The initrd the firmware loaded is not a FIT at all (a plain initramfs, say).
#[test]
fn rpi4_initrd_that_is_not_a_fit_is_refused() {
    refused(
        "rpi4_not_a_fit",
        &pseudo_random_bytes(4096, 7),
        "fit: not a FIT: bad magic",
    );
}

/// kernel8.img loaded somewhere other than 0x80000 (a Pi firmware ignoring config.txt's
/// `kernel_address`): it says so on both UARTs instead of running off into the void.
#[test]
fn rpi4_loaded_at_the_wrong_address_says_so() {
    let mut run = xtask::runner::QemuRun::raspi4b(hypstub_tests::rpi4_firmware());
    run.kernel = None;
    let run = run.arg("-device").arg(format!(
        "loader,file={},addr=0x200000,cpu-num=0,force-raw=on",
        hypstub_tests::rpi4_firmware().display()
    ));
    boot_to_marker(
        "rpi4_wrong_place",
        &run,
        "put kernel_address=0x80000 in config.txt; stopping",
        std::time::Duration::from_secs(30),
    )
    .assert_stopped_at_marker()
    .assert_lacks("hypstub 0.1.0 on rpi4");
}
