//! The EL1 stage's early translation tables: described at compile time as a few runs of
//! entries ([`Run`]), written at boot into zeroed `.bss` tables ([`EarlyTables`]) by a few
//! lines of assembly (`el1.S`, `hypstub_el1_early_map`), and switched on by a few more
//! (`hypstub_el1_mmu_on`) before any Rust code runs at EL1. No Rust code runs with the MMU
//! off to make them, and the image holds a few hundred bytes of runs instead of 16 KiB of
//! tables.
//!
//! 4 KiB granule, 32-bit VA (T0SZ = 32, walks start at level 1; Arm ARM D8.2), identity
//! mapped. `aarch64-paging` builds tables at run time with the heap, which needs the MMU on
//! first; these few tables are what lets it be on.

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

/// One translation table entry's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Descriptor(u64);

impl Descriptor {
    /// Faults on access.
    pub const INVALID: Self = Self(0);

    /// A level 1 or 2 block descriptor for `pa` (aligned to the block size).
    #[must_use]
    pub const fn block(pa: u64, kind: Kind) -> Self {
        Self(pa | attrs(kind) | VALID)
    }

    /// A level 3 page descriptor for `pa` (4 KiB aligned).
    #[must_use]
    pub const fn page(pa: u64, kind: Kind) -> Self {
        Self(pa | attrs(kind) | TABLE_OR_PAGE | VALID)
    }

    /// The descriptor's bits.
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }
}

/// Entries in one table.
pub const ENTRIES: usize = 512;

/// `N` translation tables, each 512 entries and 4 KiB aligned (Arm ARM D8.2.5), zero (every
/// entry invalid) until `hypstub_el1_early_map` writes the runs. Table 0 is the root.
#[repr(C, align(4096))]
pub struct EarlyTables<const N: usize>(pub [[u64; ENTRIES]; N]);

impl<const N: usize> EarlyTables<N> {
    /// Every entry invalid; in `.bss`, so the image holds none of it.
    pub const ZERO: Self = Self([[0; ENTRIES]; N]);
}

/// A run of `count` consecutive entries of the early map, from entry `first` of table
/// `table`: the first is `desc`, each next one `step` more. With `link` set, `desc` is an
/// offset from the tables' own address (a table descriptor for one of them), added at boot.
/// The layout is `hypstub_el1_early_map`'s (el1.S): 32 bytes, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Run {
    /// The entry's index from the first table's first entry (`table * 512 + first`).
    pub at: u32,
    /// How many entries.
    pub count: u32,
    /// The first entry's bits (an offset from the tables' address with `link`).
    pub desc: u64,
    /// What each next entry adds.
    pub step: u64,
    /// 1: add the tables' address to `desc`; 0: do not.
    pub link: u64,
}

impl Run {
    /// Entries `first..first + count` of `table`: `kind` blocks of `size` bytes from `pa`.
    const fn blocks(
        table: usize,
        first: usize,
        count: usize,
        pa: u64,
        size: u64,
        kind: Kind,
    ) -> Self {
        assert!(first + count <= ENTRIES && pa.is_multiple_of(size));
        Self {
            at: (table * ENTRIES + first) as u32,
            count: count as u32,
            desc: if size == 4096 {
                Descriptor::page(pa, kind).bits()
            } else {
                Descriptor::block(pa, kind).bits()
            },
            step: size,
            link: 0,
        }
    }

    /// Level 3 entries `first..first + count` of `table`: `kind` pages from `pa`.
    #[must_use]
    pub const fn pages(table: usize, first: usize, count: usize, pa: u64, kind: Kind) -> Self {
        Self::blocks(table, first, count, pa, 4096, kind)
    }

    /// Level 2 entries `first..first + count` of `table`: `kind` 2 MiB blocks from `pa`.
    #[must_use]
    pub const fn blocks_2m(table: usize, first: usize, count: usize, pa: u64, kind: Kind) -> Self {
        Self::blocks(table, first, count, pa, 2 << 20, kind)
    }

    /// Entry `entry` of `table`: a table descriptor for table `next`.
    #[must_use]
    pub const fn table(table: usize, entry: usize, next: usize) -> Self {
        assert!(entry < ENTRIES);
        Self {
            at: (table * ENTRIES + entry) as u32,
            count: 1,
            desc: (next as u64 * 4096) | TABLE_OR_PAGE | VALID,
            step: 0,
            link: 1,
        }
    }
}

/// What `hypstub_el1_early_map` writes: `runs` applied to zeroed tables at `base`. The
/// boards' tests check their early maps with it; the assembly does the same walk.
#[cfg(test)]
#[must_use]
pub fn apply<const N: usize>(runs: &[Run], base: u64) -> alloc::boxed::Box<EarlyTables<N>> {
    let mut t = alloc::boxed::Box::new(EarlyTables::<N>::ZERO);
    for r in runs {
        let mut d = r.desc + if r.link != 0 { base } else { 0 };
        for k in 0..r.count as usize {
            let i = r.at as usize + k;
            assert_eq!(
                t.0[i / ENTRIES][i % ENTRIES],
                0,
                "runs overlap at entry {i}"
            );
            t.0[i / ENTRIES][i % ENTRIES] = d;
            d += r.step;
        }
    }
    t
}

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
    fn runs() {
        assert_eq!(core::mem::size_of::<Run>(), 32, "el1.S reads 32-byte runs");
        let runs = [
            Run::table(0, 1, 1),
            Run::blocks_2m(1, 510, 2, 0x7fc0_0000, Kind::Device),
            Run::pages(1, 0, 3, 0x4000_0000, Kind::Data),
        ];
        let t = apply::<2>(&runs, 0x9000_0000);
        assert_eq!(t.0[0][1], 0x9000_1003, "a table descriptor for table 1");
        assert_eq!(t.0[0][0], 0);
        assert_eq!(
            t.0[1][511],
            Descriptor::block(0x7fe0_0000, Kind::Device).bits()
        );
        assert_eq!(t.0[1][2], Descriptor::page(0x4000_2000, Kind::Data).bits());
        assert_eq!(t.0[1][3], 0);
    }

    #[test]
    fn register_values() {
        assert_eq!(TCR_EL1 & 0x3f, 32);
        assert_eq!((TCR_EL1 >> 14) & 3, 0, "4 KiB granule");
        assert_eq!(SCTLR_EL1_MMU_ON & 0b1101, 0b1101);
        assert_eq!(SCTLR_EL1_MMU_ON & (1 << 12), 1 << 12);
    }
}
