//! The Raspberry Pi 4 armstub (`boards/src/rpi4/armstub.S`, docs/armstub.md): its build
//! checks, the layout the Pi's firmware and the tests rely on, and the QEMU `raspi4b` machine
//! that boots a kernel through it.
//!
//! `cargo xtask build --board rpi4-armstub` builds the ELF (for QEMU's `-kernel`, which
//! starts all four cores at its entry at EL3) and writes the raw image for an SD card,
//! `target/hypstub/rpi4/armstub8-hypstub.bin` ([`image_path`]); [`check`] refuses an image
//! whose layout drifted from the handshake.

use std::ffi::OsString;
use std::fs;
use std::ops::Range;
use std::path::PathBuf;

use anyhow::{bail, ensure, Context as _};

use crate::image::Built;
use crate::output_dir;
use crate::runner::QemuRun;

/// The raw image's file name, for `armstub=` in config.txt.
pub const IMAGE_FILE: &str = "armstub8-hypstub.bin";

/// Where the firmware's own armstubs and this one keep the magic word (then spin_cpu3).
pub const STUB_MAGIC_AT: u64 = 0xf0;
/// The magic by which the firmware recognises an armstub that wants the handshake.
pub const STUB_MAGIC: u32 = 0x5afe_570b;
/// Where the firmware writes the DTB's address (32 bits).
pub const DTB_PTR32: u64 = 0xf8;
/// Where the firmware writes the kernel's entry (32 bits).
pub const KERNEL_ENTRY32: u64 = 0xfc;
/// The spin table: core n's release word is at `SPIN_TABLE.start + 8 * n` (the Pi DTB's
/// `cpu-release-addr` values).
pub const SPIN_TABLE: Range<u64> = 0xd8..0xf8;
/// The bytes the firmware writes (the handshake's answers): in no loadable segment of the
/// ELF, zeros in the raw image.
pub const HANDSHAKE_ANSWERS: Range<u64> = DTB_PTR32..0x100;
/// The image must stay below this: the Pi DTB reserves page 0 (`/memreserve/ 0 0x1000`).
pub const MAX_END: u64 = 0x1000;

/// What the armstub writes on both UARTs when the firmware left no kernel entry or DTB
/// address (`boards/src/rpi4/armstub.S`; [`check`] finds it in the image), between `\r\n`s.
pub const NO_HANDSHAKE_MESSAGE: &str = "hypstub armstub: no kernel entry or DTB address from \
     the firmware (0xfc/0xf8 are 0): not booting. Check config.txt (arm_64bit=1, kernel=) and \
     the firmware's armstub handshake (magic 0x5afe570b at 0xf0). Halted.";

/// `<target>/hypstub/rpi4/armstub8-hypstub.bin`.
pub fn image_path() -> PathBuf {
    output_dir().join("rpi4").join(IMAGE_FILE)
}

/// Checks a built armstub against the handshake layout: the raw image is under
/// [`MAX_END`], has the magic and version 0 at [`STUB_MAGIC_AT`], an empty spin table and
/// zeros at [`HANDSHAKE_ANSWERS`] and holds [`NO_HANDSHAKE_MESSAGE`]; the ELF starts at 0
/// and none of its loadable segments covers [`HANDSHAKE_ANSWERS`].
pub fn check(built: &Built) -> anyhow::Result<()> {
    let bin =
        fs::read(&built.image).with_context(|| format!("reading {}", built.image.display()))?;
    let word = |at: u64| -> u32 {
        let at = at as usize;
        bin.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    ensure!(
        (bin.len() as u64) < MAX_END,
        "{}: {} bytes; the armstub must stay in page 0 (below {MAX_END:#x})",
        built.image.display(),
        bin.len()
    );
    ensure!(
        word(STUB_MAGIC_AT) == STUB_MAGIC && word(STUB_MAGIC_AT + 4) == 0,
        "{}: no magic {STUB_MAGIC:#x} and version 0 at {STUB_MAGIC_AT:#x}",
        built.image.display()
    );
    let zero = |r: Range<u64>| {
        bin.get(r.start as usize..r.end as usize)
            .is_some_and(|b| b.iter().all(|&x| x == 0))
    };
    ensure!(
        zero(SPIN_TABLE.start..STUB_MAGIC_AT) && zero(HANDSHAKE_ANSWERS),
        "{}: the spin table or the handshake words are not zero",
        built.image.display()
    );
    ensure!(
        bin.windows(NO_HANDSHAKE_MESSAGE.len())
            .any(|w| w == NO_HANDSHAKE_MESSAGE.as_bytes()),
        "{}: the message for a missing handshake is not xtask::armstub::NO_HANDSHAKE_MESSAGE",
        built.image.display()
    );
    let elf = fs::read(&built.elf).with_context(|| format!("reading {}", built.elf.display()))?;
    let (entry, loads) =
        elf_loads(&elf).with_context(|| format!("reading {}", built.elf.display()))?;
    ensure!(
        entry == 0,
        "{}: entry {entry:#x}, not 0",
        built.elf.display()
    );
    if let Some(load) = loads
        .iter()
        .find(|l| l.start < HANDSHAKE_ANSWERS.end && HANDSHAKE_ANSWERS.start < l.end)
    {
        bail!(
            "{}: the loadable segment {:#x}..{:#x} covers the handshake words {:#x}..{:#x}, \
             which QEMU tests must be able to write",
            built.elf.display(),
            load.start,
            load.end,
            HANDSHAKE_ANSWERS.start,
            HANDSHAKE_ANSWERS.end
        );
    }
    Ok(())
}

/// The entry point and the address ranges of the `PT_LOAD` segments of a little-endian
/// ELF64 file.
fn elf_loads(elf: &[u8]) -> anyhow::Result<(u64, Vec<Range<u64>>)> {
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    ensure!(
        elf.starts_with(b"\x7fELF\x02\x01"),
        "not a little-endian ELF64 file"
    );
    let short = || anyhow::anyhow!("ELF file cut short");
    let entry = u64_at(0x18).ok_or_else(short)?;
    let phoff = usize::try_from(u64_at(0x20).ok_or_else(short)?)?;
    let phentsize = usize::from(u16_at(0x36).ok_or_else(short)?);
    let phnum = usize::from(u16_at(0x38).ok_or_else(short)?);
    let mut loads = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        const PT_LOAD: u32 = 1;
        if u32_at(ph).ok_or_else(short)? == PT_LOAD {
            let vaddr = u64_at(ph + 0x10).ok_or_else(short)?;
            let memsz = u64_at(ph + 0x28).ok_or_else(short)?;
            loads.push(vaddr..vaddr.saturating_add(memsz));
        }
    }
    Ok((entry, loads))
}

/// QEMU `-M raspi4b` booting a kernel through the armstub the way the Pi's firmware would:
/// the ELF as `-kernel` (QEMU starts all four cores at its entry at EL3), the files where
/// the firmware would put them (`-device loader`), the handshake answered. QEMU neither
/// loads nor edits a DTB in this mode (an ELF `-kernel` is not a Linux boot): give one with
/// RAM, command line and initrd filled in among the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The armstub ELF.
    pub armstub: PathBuf,
    /// Files loaded raw at an address (`-device loader,file=...,addr=...,force-raw=on`).
    pub files: Vec<(PathBuf, u64)>,
    /// The firmware's side of the handshake, `(dtb, kernel entry)`: dtb_ptr32 and
    /// kernel_entry32 written. `None` leaves the image as loaded, as a firmware that does
    /// not know the handshake would.
    pub handshake: Option<(u32, u32)>,
    /// Give QEMU's GIC-400 the Security Extensions the real one has (`-global
    /// arm_gic.has-security-extensions=on`). QEMU's raspi4b model leaves them out: without
    /// this, every access sees the one view of a GIC without them, and the armstub skips
    /// its secure-side set-up (it reads GICD_TYPER.SecurityExtn).
    pub gic_security_extensions: bool,
}

impl Machine {
    /// The armstub alone, with a GIC-400 with the Security Extensions as on the Pi.
    pub fn new(armstub: impl Into<PathBuf>) -> Self {
        Machine {
            armstub: armstub.into(),
            files: Vec::new(),
            handshake: None,
            gic_security_extensions: true,
        }
    }

    /// The QEMU run: [`QemuRun::raspi4b`] (both serial ports in one log) with the
    /// armstub as `-kernel`, no `-dtb`, and the loads above.
    pub fn run(&self) -> QemuRun {
        let mut run = QemuRun::raspi4b(&self.armstub);
        if self.gic_security_extensions {
            run = run.arg("-global").arg("arm_gic.has-security-extensions=on");
        }
        for (file, addr) in &self.files {
            let mut device = OsString::from("loader,file=");
            device.push(file);
            device.push(format!(",addr={addr:#x},force-raw=on"));
            run = run.arg("-device").arg(device);
        }
        if let Some((dtb, entry)) = self.handshake {
            // The firmware's answers: two 32-bit words, written as one 8-byte little-endian
            // value. The generic loader writes at reset, before QEMU copies the ELF's
            // segments into RAM, so the ELF leaves 0xf8..0x100 out of its segments
            // (linker/rpi4-armstub.ld). The firmware also zeroes the magic's 8 bytes (then
            // spin_cpu3); QEMU cannot, the ELF's first segment is copied over anything
            // written there, so the magic stays and the armstub's spin loop ignores it.
            let answers = u64::from(dtb) | (u64::from(entry) << 32);
            run = run.arg("-device").arg(format!(
                "loader,addr={DTB_PTR32:#x},data={answers:#x},data-len=8"
            ));
        }
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_agrees_with_the_pi_dtb() {
        // cpu-release-addr of cpu@0..3 in bcm2711-rpi-4-b.dtb.
        let release: Vec<u64> = (0..4).map(|n| SPIN_TABLE.start + 8 * n).collect();
        assert_eq!(release, [0xd8, 0xe0, 0xe8, 0xf0]);
        assert_eq!(SPIN_TABLE.end, DTB_PTR32);
        assert_eq!(KERNEL_ENTRY32, DTB_PTR32 + 4);
        assert!(image_path().ends_with("hypstub/rpi4/armstub8-hypstub.bin"));
    }

    #[test]
    fn machine_arguments() {
        let mut m = Machine::new("/a/rpi4-armstub");
        m.files.push(("/k/Image".into(), 0x20_0000));
        m.handshake = Some((0x0800_0000, 0x20_0000));
        let args: Vec<String> = m
            .run()
            .machine_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "-M raspi4b -m 2G -kernel /a/rpi4-armstub \
             -global arm_gic.has-security-extensions=on \
             -device loader,file=/k/Image,addr=0x200000,force-raw=on \
             -device loader,addr=0xf8,data=0x20000008000000,data-len=8"
        );
    }

    fn elf64(entry: u64, loads: &[(u64, u64)]) -> Vec<u8> {
        let mut e = vec![0u8; 0x40 + 0x38 * loads.len()];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[0x18..0x20].copy_from_slice(&entry.to_le_bytes());
        e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&(loads.len() as u16).to_le_bytes());
        for (i, &(vaddr, memsz)) in loads.iter().enumerate() {
            let ph = 0x40 + 0x38 * i;
            e[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
            e[ph + 0x10..ph + 0x18].copy_from_slice(&vaddr.to_le_bytes());
            e[ph + 0x28..ph + 0x30].copy_from_slice(&memsz.to_le_bytes());
        }
        e
    }

    #[test]
    fn reads_load_segments() {
        let (entry, loads) = elf_loads(&elf64(0, &[(0, 0xf8), (0x100, 0x2a8)])).unwrap();
        assert_eq!(entry, 0);
        assert_eq!(loads, [0..0xf8, 0x100..0x3a8]);
        assert!(elf_loads(b"\x7fELF\x01\x01").is_err());
        assert!(elf_loads(&elf64(0, &[(0, 1)])[..0x50]).is_err());
    }
}
