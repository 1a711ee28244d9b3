//! The EL1 stage's translation tables: built at compile time (so no Rust code runs with the
//! MMU off to make them) and switched on by a few lines of assembly (`el1.S`,
//! `hypstub_el1_mmu_on`) before any Rust code runs at EL1.
//!
//! 4 KiB granule, 32-bit VA (T0SZ = 32, walks start at level 1; Arm ARM D8.2), identity
//! mapped. `aarch64-paging` builds tables at run time with the heap, which needs the MMU on
//! first; these few static tables are what lets it be on.

/// MAIR_EL1: Attr0 = Device-nGnRE (0x04), Attr1 = Normal, inner/outer write-back
/// read/write-allocate (0xff). Arm ARM D19.2 MAIR_EL1.
pub const MAIR_EL1: u64 = 0xff_04;
const ATTR_DEVICE: u64 = 0;
const ATTR_NORMAL: u64 = 1;

/// TCR_EL1: T0SZ = 32 (4 GiB), inner and outer write-back write-allocate walks (IRGN0 =
/// ORGN0 = 0b01), inner shareable (SH0 = 0b11), 4 KiB granule (TG0 = 0), no TTBR1 walks
/// (EPD1), 40-bit IPS. Arm ARM D19.2 TCR_EL1.
pub const TCR_EL1: u64 = 32 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (1 << 23) | (0b010 << 32);

/// SCTLR_EL1 with the MMU (M), data cache (C), SP alignment check (SA) and instruction
/// cache (I) on (by field name in `hypstub-abi`).
pub const SCTLR_EL1_MMU_ON: u64 = hypstub_abi::regs::SCTLR_EL1_MMU_ON;

/// How a range is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Normal cacheable, read-only, executable at EL1: the firmware's code.
    Code,
    /// Normal cacheable, read/write, never executable.
    Data,
    /// Device-nGnRE, read/write, never executable.
    Device,
}

const VALID: u64 = 1;
const TABLE_OR_PAGE: u64 = 1 << 1;
const AP_RO: u64 = 0b10 << 6;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

const fn attrs(kind: Kind) -> u64 {
    match kind {
        Kind::Code => (ATTR_NORMAL << 2) | AP_RO | SH_INNER | AF | UXN,
        Kind::Data => (ATTR_NORMAL << 2) | SH_INNER | AF | PXN | UXN,
        Kind::Device => (ATTR_DEVICE << 2) | AF | PXN | UXN,
    }
}

/// One translation table entry. A pointer so that a table entry can hold the address of
/// another static table, which the linker fills in.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub struct Descriptor(*const u8);

impl Descriptor {
    /// Faults on access.
    pub const INVALID: Self = Self(core::ptr::null());

    /// A level 1 or 2 block descriptor for `pa` (aligned to the block size).
    #[must_use]
    pub const fn block(pa: u64, kind: Kind) -> Self {
        Self(core::ptr::without_provenance(
            (pa | attrs(kind) | VALID) as usize,
        ))
    }

    /// A level 3 page descriptor for `pa` (4 KiB aligned).
    #[must_use]
    pub const fn page(pa: u64, kind: Kind) -> Self {
        Self(core::ptr::without_provenance(
            (pa | attrs(kind) | TABLE_OR_PAGE | VALID) as usize,
        ))
    }

    /// A table descriptor pointing at `next` (4 KiB aligned, so the low bits are free).
    #[must_use]
    pub const fn table(next: &'static Table) -> Self {
        Self(
            next.0
                .as_ptr()
                .cast::<u8>()
                .wrapping_add((TABLE_OR_PAGE | VALID) as usize),
        )
    }

    /// The descriptor's bits, for tests (only meaningful for blocks and pages).
    #[must_use]
    pub fn bits(self) -> u64 {
        self.0 as u64
    }
}

/// A translation table: 512 entries, 4 KiB aligned (Arm ARM D8.2.5).
#[repr(C, align(4096))]
pub struct Table(pub [Descriptor; 512]);

// SAFETY: tables are immutable statics in read-only memory; the entries are addresses and
// bits, never dereferenced by Rust.
unsafe impl Sync for Table {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors() {
        let d = Descriptor::block(0x4000_0000, Kind::Data).bits();
        assert_eq!(d & 0b11, 0b01, "block");
        assert_eq!(d & 0xffff_f000_0000, 0x4000_0000);
        assert_eq!((d >> 2) & 7, 1, "normal memory");
        assert_ne!(d & (1 << 54), 0, "not executable");
        let c = Descriptor::block(0, Kind::Code).bits();
        assert_eq!(c & (1 << 53), 0, "EL1 may execute code");
        assert_eq!((c >> 6) & 3, 0b10, "code is read-only");
        let p = Descriptor::page(0x4012_0000, Kind::Device).bits();
        assert_eq!(p & 0b11, 0b11, "page");
        assert_eq!((p >> 2) & 7, 0, "device memory");
    }

    #[test]
    fn register_values() {
        assert_eq!(TCR_EL1 & 0x3f, 32);
        assert_eq!((TCR_EL1 >> 14) & 3, 0, "4 KiB granule");
        assert_eq!(SCTLR_EL1_MMU_ON & 0b1101, 0b1101);
        assert_eq!(SCTLR_EL1_MMU_ON & (1 << 12), 1 << 12);
    }
}
