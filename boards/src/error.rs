//! Everything that can stop a boot before the point of no return, each with its message.

use thiserror::Error;

/// Why the EL1 stage cannot hand over to the payload.
#[derive(Debug, Error)]
pub enum BootError {
    /// fw_cfg (QEMU) could not provide the payload or command line.
    #[error(transparent)]
    FwCfg(#[from] crate::qemu_virt::fw_cfg::FwCfgError),
    /// A `hypstub.*` option or the command line is wrong.
    #[error(transparent)]
    Option(#[from] loader::options::OptionError),
    /// The payload is not a usable arm64 Image.
    #[error("payload: {0}")]
    Image(#[from] loader::image::ImageError),
    /// The payload cannot be placed in RAM.
    #[error("payload: {0}")]
    Place(#[from] loader::image::PlaceError),
    /// The DTB is malformed, does not describe what the board needs (RAM, console, CPUs,
    /// reservations), or cannot take the edits.
    #[error("DTB: {0}")]
    Dt(#[from] loader::dt::DtError),
    /// The payload FIT is malformed, incomplete or fails its hashes.
    #[error("fit: {0}")]
    Fit(#[from] loader::fit::FitError),
    /// The FIT given as `-kernel` is larger than the free RAM (QEMU virt).
    #[error("fit: the FIT given as -kernel is {size} bytes; no free range of RAM {:#x}..{:#x} above the firmware's holds it (give the machine more RAM, -m)", ram.start, ram.end)]
    FitTooLarge {
        /// The FIT's size.
        size: u64,
        /// The RAM.
        ram: core::ops::Range<u64>,
    },
    /// The FIT has a ramdisk and QEMU was given an `-initrd` too (QEMU virt).
    #[error("fit: the FIT given as -kernel has a ramdisk, and QEMU was also given -initrd ({initrd} bytes): pass the initrd once, in the FIT or with -initrd")]
    FitAndInitrd {
        /// The size of the `-initrd` file.
        initrd: u32,
    },
    /// The FIT's DTB does not fit where the firmware edits the DTB (QEMU virt).
    #[error("fit: the FIT's fdt is {size} bytes, more than the {room}-byte DTB area where the firmware edits it")]
    FitFdtTooLarge {
        /// The fdt's size.
        size: usize,
        /// The room.
        room: usize,
    },
    /// The initrd does not fit in the payload's RAM after the image.
    #[error("initrd: {what} is {} and does not fit in RAM {:#x}..{:#x} ({}) after the kernel, which ends at {after:#x}, clear of reserved memory: give the machine more RAM or use a smaller initrd", human(*.size), .ram.start, .ram.end, mib(.ram.end - .ram.start))]
    InitrdDoesNotFit {
        /// What the user gave: "the -initrd file", "the FIT's ramdisk".
        what: &'static str,
        /// Its size.
        size: u64,
        /// Where the image ends.
        after: u64,
        /// The RAM bank the payload goes to.
        ram: core::ops::Range<u64>,
    },
    /// The payload's DTB does not fit in the payload's RAM after the image and initrd.
    #[error("dtb: the payload's DTB is {} and does not fit in RAM {:#x}..{:#x} ({}) after the kernel and initrd, which end at {after:#x}, clear of reserved memory: give the machine more RAM or use a smaller initrd", human(*.size), .ram.start, .ram.end, mib(.ram.end - .ram.start))]
    DtbDoesNotFit {
        /// Its size, with the firmware's edits.
        size: u64,
        /// Where the image, or the initrd, ends.
        after: u64,
        /// The RAM bank the payload goes to.
        ram: core::ops::Range<u64>,
    },
    /// A board-specific problem, described in full.
    #[error("{0}")]
    Board(alloc::string::String),
    /// The DTB describes no RAM the firmware can use.
    #[error("DTB: no /memory range contains {0:#x}, where this board's RAM starts")]
    NoRam(u64),
    /// The DTB is too large for the heap the edits need.
    #[error("DTB: {size} bytes of nodes and strings is too large to edit in the firmware's {heap}-byte heap (at most about a tenth of it)")]
    DtbTooLarge {
        /// The DTB's size.
        size: usize,
        /// The heap's size.
        heap: usize,
    },
    /// A board asked for its DTB twice (a bug in the board's hooks).
    #[error("DTB: the board's device tree was already handed to the payload")]
    DtbTaken,
    /// The built-in demo saw wrong answers from the stub.
    #[error("demo: the stub's answers were wrong (see above); not relocating the demo payload")]
    DemoFailed,
    /// The EL1 stage could not map RAM.
    #[error(transparent)]
    Map(#[from] crate::el1::map::MapError),
    /// The relocation plan was refused.
    #[error("reloc: {0}")]
    Plan(#[from] reloc::plan::PlanError),
}

/// A size for a person: bytes, with KiB or MiB when it is that large.
#[must_use]
pub fn human(bytes: u64) -> alloc::string::String {
    match bytes {
        0..1024 => alloc::format!("{bytes} bytes"),
        1024..0x10_0000 => alloc::format!("{bytes} bytes ({} KiB)", bytes.div_ceil(1024)),
        _ => alloc::format!("{bytes} bytes ({} MiB)", Mib(bytes, 1)),
    }
}

/// An amount of RAM in MiB, with two decimals when it is not whole.
#[must_use]
pub fn mib(bytes: u64) -> alloc::string::String {
    if bytes.is_multiple_of(1 << 20) {
        alloc::format!("{} MiB", bytes >> 20)
    } else {
        alloc::format!("{} MiB", Mib(bytes, 2))
    }
}

/// `self.0` bytes in MiB with `self.1` decimals (1 or 2), rounded half to even as `{:.N}` of the
/// `f64` quotient would, in integers: no float formatting code in the firmware.
struct Mib(u64, u32);

impl core::fmt::Display for Mib {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let scale = 10u128.pow(self.1);
        let scaled = u128::from(self.0) * scale;
        let (mut q, r) = (scaled >> 20, scaled & 0xf_ffff);
        if r > 0x8_0000 || (r == 0x8_0000 && q & 1 == 1) {
            q += 1;
        }
        let width = self.1 as usize;
        write!(f, "{}.{:0width$}", q / scale, q % scale)
    }
}

#[cfg(test)]
mod tests {
    use super::{human, mib};

    #[test]
    fn sizes_read_as_the_float_formatting_did() {
        assert_eq!(human(1023), "1023 bytes");
        assert_eq!(human(1025), "1025 bytes (2 KiB)");
        assert_eq!(human(40 << 20), "41943040 bytes (40.0 MiB)");
        assert_eq!(human(512 << 20), "536870912 bytes (512.0 MiB)");
        assert_eq!(mib(32 << 20), "32 MiB");
        for bytes in [
            0x10_0000u64,
            0x10_0001,
            0x10_cccc,
            0x10_cccd,
            0x11_8000,
            0x12_8000,
            0x1f_ffff,
            0x7fff_ffff,
            0x1234_5678,
            (1 << 20) * 3 / 2,
            (1 << 20) + (1 << 20) / 20,
            (1 << 20) + (1 << 20) / 40,
            (3 << 20) + (3 << 20) / 40,
            u64::from(u32::MAX) * 3,
        ] {
            let f = bytes as f64 / f64::from(1u32 << 20);
            assert_eq!(
                human(bytes),
                format!("{bytes} bytes ({f:.1} MiB)"),
                "{bytes:#x}"
            );
            if !bytes.is_multiple_of(1 << 20) {
                assert_eq!(mib(bytes), format!("{f:.2} MiB"), "{bytes:#x}");
            }
        }
    }
}
