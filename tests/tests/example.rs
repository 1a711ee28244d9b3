//! The example custom bootloader (`examples/pflash-boot`, docs/embedding.md), built only
//! on the public API of hypstub's crates: it boots Debian's kernel and the test initramfs
//! from a FIT in QEMU virt's second flash bank, at EL2 through the stub and the engine,
//! with KVM; without a FIT it runs the built-in demo.

use hypstub_tests::LINUX_BOOT_TIMEOUT;
use hypstub_tests::{boot_within, example_bootloader, linux_assets, qemu, BOOT_TIMEOUT};
use xtask::example;
use xtask::linux::{self, InitReport, MARKER_DONE};
use xtask::output_dir;

const BANNER: &str = "pflash-boot: on hypstub's crates";

#[test]
fn example_boots_linux_at_el2_from_the_second_flash() {
    qemu();
    let files = linux_assets();
    let flash = output_dir().join("tests").join("pflash-boot-linux.img");
    example::write_flash(&files.kernel, Some(&files.initramfs), &flash).unwrap();
    // No -append: QEMU takes it only with -kernel. Linux finds its console in the DTB's
    // stdout-path.
    let run = example::machine(example_bootloader(), &flash)
        .mem(linux::MEM)
        .smp(2);
    let boot = boot_within("example-linux", &run, LINUX_BOOT_TIMEOUT);
    let report = InitReport::parse(boot.log());
    boot.assert_success()
        .assert_contains(BANNER)
        .assert_contains("fit: sha256 of all 2 images verified")
        .assert_contains("payload: entering at EL2 through the engine")
        .assert_contains("reloc: digests of every destination range match")
        .assert_contains(MARKER_DONE)
        .assert_that(
            report
                .dmesg_line("CPU: All CPU(s) started at EL2")
                .is_some(),
            "`CPU: All CPU(s) started at EL2` among the kernel lines /init reports",
        )
        .assert_that(report.kvm == Some(true), "`INITRAMFS: /dev/kvm present`");
}

#[test]
fn example_without_a_fit_runs_the_demo() {
    qemu();
    let flash = output_dir().join("tests").join("pflash-boot-empty.img");
    std::fs::create_dir_all(flash.parent().unwrap()).unwrap();
    std::fs::write(&flash, vec![0u8; example::FLASH_BANK_SIZE]).unwrap();
    let run = example::machine(example_bootloader(), &flash);
    boot_within("example-demo", &run, BOOT_TIMEOUT)
        .assert_success()
        .assert_contains(BANNER)
        .assert_contains("pflash-boot: no FIT at 0x4000000")
        .assert_contains("demo: PASS")
        .assert_contains("demo payload: entered at EL2");
}
