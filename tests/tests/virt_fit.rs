//! A FIT given to QEMU `virt` as `-kernel payload.itb`: the firmware reads it whole from
//! fw_cfg into free RAM, checks every SHA-256 of its default configuration, and stages its
//! kernel, ramdisk and fdt as it would an arm64 Image with `-initrd`:
//!
//! - el2-client in a FIT with a ramdisk and QEMU's own DTB entered at EL2, the ramdisk
//!   intact; in a FIT with only a kernel, with QEMU's `-initrd`; abi-client in a FIT at EL1;
//! - Debian's Linux and the test initramfs as one FIT, without `-initrd`, at EL2;
//! - bad FITs refused before anything is staged: a wrong hash, no kernel, a kernel that is
//!   not an arm64 Image, and a FIT with a ramdisk given together with `-initrd`.
//!
//! The FITs are written at test time with `xtask::fit::write_fit` (the writer
//! `cargo xtask build --board rpi4` uses), into this package's scratch directory.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hypstub_tests::{
    abi_client, boot, boot_within, crc32c, el2_client, firmware, fit_without_kernel, linux_assets,
    machine, pseudo_random_bytes, qemu, write_asset, Boot, LINUX_BOOT_TIMEOUT,
};
use xtask::fit::write_fit;
use xtask::linux::{self, InitReport, MARKER_DONE};
use xtask::runner::QemuRun;

/// What the firmware prints when `-kernel` is a FIT, before and after checking it.
const FIT_READ: &str = "fw_cfg: -kernel is a FIT";
const FIT_VERIFIED: &str = "fit: sha256 of all";

/// Where tests write the FITs they make.
fn asset_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("virt_fit")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Writes a FIT of `kernel` and the optional `ramdisk` and `fdt` to `name`.
fn fit(name: &str, kernel: &[u8], ramdisk: Option<&[u8]>, fdt: Option<&[u8]>) -> PathBuf {
    write_asset(
        &asset_dir(),
        name,
        &write_fit(kernel, ramdisk, fdt, &format!("hypstub test {name}")),
    )
}

/// The DTB QEMU writes for `run`'s machine, compacted.
fn qemu_dtb(run: &QemuRun, name: &str) -> Vec<u8> {
    std::fs::create_dir_all(asset_dir()).unwrap();
    hypstub_tests::qemu_dumped_dtb(run, &asset_dir().join(name))
}

/// The 3 MiB pseudo-random ramdisk and its CRC32C.
fn ramdisk() -> &'static (Vec<u8>, u32) {
    static RAMDISK: OnceLock<(Vec<u8>, u32)> = OnceLock::new();
    RAMDISK.get_or_init(|| {
        let bytes = pseudo_random_bytes(3 << 20, 0xf17_d15c);
        let crc = crc32c(&bytes);
        (bytes, crc)
    })
}

/// el2-client entered at EL2 from a FIT of `images` images passed every check, its initrd
/// intact.
fn el2_client_passes(name: &str, run: &QemuRun, images: usize) -> Boot {
    let booted = boot(name, run);
    booted
        .assert_success()
        .assert_contains(FIT_READ)
        .assert_contains("; configuration conf-1 (hypstub test ")
        .assert_contains(&format!("{FIT_VERIFIED} {images} images verified in "))
        .assert_relocated()
        .assert_contains("el2-client: entered at EL2")
        .assert_contains("el2-client: ok initrd_intact")
        .assert_contains("el2-client: PASS")
        .assert_lacks("el2-client: FAIL");
    booted
}

// ---- payloads that boot ----

/// Kernel, ramdisk and fdt from the FIT: the ramdisk arrives intact and is named in the
/// FIT's DTB, which the firmware edited (bootargs, initrd) like QEMU's.
#[test]
fn fit_el2_client_with_ramdisk_and_fdt() {
    let base = machine().smp(2).mem("1G");
    let dtb = qemu_dtb(&base, "qemu-virt-smp2-1G.dtb");
    let (bytes, crc) = ramdisk();
    let itb = fit(
        "el2-client-ramdisk-fdt.itb",
        &read(el2_client()),
        Some(bytes),
        Some(&dtb),
    );
    let run = base
        .kernel(itb)
        .append(format!("client.initrd_crc={crc:#010x}"));
    // The DTB the payload got is the FIT's (QEMU's, rewritten compactly, is a few KiB;
    // the one QEMU gives the firmware is 1 MiB).
    el2_client_passes("fit_el2_client_with_ramdisk_and_fdt", &run, 3).assert_contains(&format!(
        "dtb: using the FIT's device tree ({} bytes)",
        dtb.len()
    ));
}

/// A FIT with only a kernel takes QEMU's `-initrd`.
#[test]
fn fit_el2_client_with_qemu_initrd() {
    let (bytes, crc) = ramdisk();
    let initrd = write_asset(&asset_dir(), "ramdisk-3MiB.bin", bytes);
    let itb = fit("el2-client.itb", &read(el2_client()), None, None);
    let run = machine()
        .smp(2)
        .mem("1G")
        .kernel(itb)
        .initrd(initrd)
        .append(format!("client.initrd_crc={crc:#010x}"));
    el2_client_passes("fit_el2_client_with_qemu_initrd", &run, 1);
}

/// abi-client from a FIT, entered at EL1 under the resident stub.
#[test]
fn fit_abi_client_at_el1() {
    let itb = fit("abi-client.itb", &read(abi_client()), None, None);
    boot(
        "fit_abi_client_at_el1",
        &machine().smp(4).kernel(itb).append("hypstub.el=1"),
    )
    .assert_success()
    .assert_contains(FIT_READ)
    .assert_contains(&format!("{FIT_VERIFIED} 1 images verified in "))
    .assert_relocated()
    .assert_contains("abi-client: PASS")
    .assert_lacks("abi-client: FAIL");
}

/// Debian's kernel and the test initramfs as one FIT, no `-initrd`: Linux at EL2 with KVM
/// runs the initramfs to its end.
#[test]
fn fit_linux_el2() {
    qemu();
    let assets = linux_assets();
    let itb = fit(
        "linux-initramfs.itb",
        &read(&assets.kernel),
        Some(&read(&assets.initramfs)),
        None,
    );
    let append = linux::command_line(["hypstub.log=info", "panic=-1"]);
    let run = QemuRun::new(firmware())
        .mem(linux::MEM)
        .smp(4)
        .kernel(itb)
        .append(&append);
    let booted = boot_within("fit_linux_el2", &run, LINUX_BOOT_TIMEOUT);
    let report = InitReport::parse(booted.log());
    let want_cmdline = linux::seen_by_linux(&append);
    booted
        .assert_success()
        .assert_contains(FIT_READ)
        .assert_contains(&format!("{FIT_VERIFIED} 2 images verified in "))
        .assert_relocated()
        .assert_that(
            report.cmdline.as_deref() == Some(want_cmdline.as_str()),
            &format!(
                "`INITRAMFS: cmdline: {want_cmdline}`, got {:?}",
                report.cmdline
            ),
        )
        .assert_that(
            report
                .dmesg_line("CPU: All CPU(s) started at EL2")
                .is_some(),
            "`CPU: All CPU(s) started at EL2` among the kernel lines /init reports",
        )
        .assert_that(report.kvm == Some(true), "`INITRAMFS: /dev/kvm present`")
        .assert_that(report.done, &format!("`{MARKER_DONE}`"));
}

// ---- bad FITs: refused before anything is staged (docs/architecture.md, "What bad input gets") ----

/// One byte of the kernel changed after the FIT was written.
#[test]
fn fit_with_wrong_kernel_hash_is_refused() {
    let kernel = read(el2_client());
    let mut itb = write_fit(&kernel, None, None, "corrupted");
    // The kernel's data is embedded whole; change a byte past its header.
    let at = itb
        .windows(kernel.len())
        .position(|w| w == kernel.as_slice())
        .expect("the kernel is in the FIT");
    itb[at + 0x100] ^= 0xff;
    let path = write_asset(&asset_dir(), "wrong-hash.itb", &itb);
    boot(
        "fit_with_wrong_kernel_hash_is_refused",
        &machine().kernel(path),
    )
    .assert_rejected("fit: FIT image kernel hash-1: sha256 mismatch: expected ")
    .assert_contains(FIT_READ)
    .assert_lacks(FIT_VERIFIED);
}

/// A configuration that names no kernel.
#[test]
fn fit_without_kernel_is_refused() {
    let path = write_asset(&asset_dir(), "no-kernel.itb", &fit_without_kernel());
    boot("fit_without_kernel_is_refused", &machine().kernel(path))
        .assert_rejected("fit: FIT has no kernel: /configurations/conf-1 has no kernel property");
}

/// A FIT whose kernel is not an arm64 Image (no magic at 0x38).
#[test]
fn fit_kernel_without_image_header_is_refused() {
    let junk = pseudo_random_bytes(64 << 10, 0xbad_c0de);
    let path = fit("junk-kernel.itb", &junk, None, None);
    boot(
        "fit_kernel_without_image_header_is_refused",
        &machine().kernel(path),
    )
    .assert_rejected("not an arm64 Image")
    .assert_contains(&format!("{FIT_VERIFIED} 1 images verified in "));
}

/// A FIT with a ramdisk and QEMU's `-initrd` too: which one is meant is not guessed.
#[test]
fn fit_ramdisk_and_qemu_initrd_are_refused() {
    let (bytes, _) = ramdisk();
    let initrd = write_asset(&asset_dir(), "ramdisk-3MiB-too.bin", bytes);
    let itb = fit(
        "el2-client-ramdisk.itb",
        &read(el2_client()),
        Some(bytes),
        None,
    );
    boot(
        "fit_ramdisk_and_qemu_initrd_are_refused",
        &machine().mem("1G").kernel(itb).initrd(initrd),
    )
    .assert_rejected("the FIT given as -kernel has a ramdisk, and QEMU was also given -initrd");
}
