//! `examples/pflash-boot`, the example custom bootloader (docs/embedding.md): its image,
//! the second-flash image it boots (a FIT), and its QEMU virt machine.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::output_dir;
use crate::runner::QemuRun;

/// The package and binary.
pub const PACKAGE: &str = "pflash-boot";
/// QEMU virt's flash banks are 64 MiB each; a pflash drive must be exactly that.
pub const FLASH_BANK_SIZE: usize = crate::memory_map::qemu_virt::FLASH_BANK_SIZE as usize;

/// The raw image xtask writes: `target/hypstub/pflash-boot.bin` (`-bios`).
pub fn image_path() -> PathBuf {
    output_dir().join("pflash-boot.bin")
}

/// Writes the second flash bank's image to `out`: a FIT of `kernel` and `initrd` (as
/// `cargo xtask build --board rpi4` writes one), zero-padded to [`FLASH_BANK_SIZE`].
///
/// # Errors
/// The files cannot be read, or the FIT is larger than the bank.
pub fn write_flash(kernel: &Path, initrd: Option<&Path>, out: &Path) -> anyhow::Result<()> {
    let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));
    let kernel = read(kernel)?;
    let initrd = initrd.map(read).transpose()?;
    let mut fit = crate::fit::write_fit(&kernel, initrd.as_deref(), None, "pflash-boot payload");
    if fit.len() > FLASH_BANK_SIZE {
        bail!(
            "the payload FIT is {} bytes, more than QEMU virt's {FLASH_BANK_SIZE}-byte flash bank",
            fit.len()
        );
    }
    fit.resize(FLASH_BANK_SIZE, 0);
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(out, fit).with_context(|| format!("writing {}", out.display()))
}

/// QEMU virt with the example as `-bios` and `flash` as the second flash bank.
pub fn machine(bios: &Path, flash: &Path) -> QemuRun {
    let mut drive = std::ffi::OsString::from("if=pflash,unit=1,format=raw,readonly=on,file=");
    drive.push(flash);
    QemuRun::new(bios).arg("-drive").arg(drive)
}
