//! The EL2 identity map the engine copies with, built with aarch64-paging.
//!
//! The tables are built in heap copies and written to their physical pages (taken from the
//! free pool, so never in a destination) through [`Memory`] once complete, with
//! `PageTable::write_to`. Building in place would need [`Memory`] to promise that the bytes
//! it returns stay at one address for as long as aarch64-paging holds pointers to them; the
//! copy keeps [`Memory`] a plain safe trait, for the price of a few heap pages.
//!
//! The map is never activated here: the engine loads TTBR0_EL2, TCR_EL2 and MAIR_EL2 itself
//! with the MMU off, so dropping the `Mapping` afterwards only frees the heap copies.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::Cell;
use core::ops::Range;
use core::ptr::NonNull;

use aarch64_paging::descriptor::{El23Attributes, PhysicalAddress};
use aarch64_paging::mair::{Mair, MairAttribute, NormalMemory};
use aarch64_paging::paging::{Constraints, El2, MemoryRegion, PageTable, Translation};
use aarch64_paging::Mapping;

use super::pool::Pool;
use super::PlanError;
use crate::mem::{self, Memory};
use crate::PAGE_SIZE;

/// The translation table's root level: with T0SZ = 25 (39-bit VA) and 4 KiB granules the
/// walk starts at level 1 (Arm ARM D8.2.7, "Translation table walk start level").
const ROOT_LEVEL: usize = 1;

/// Virtual address bits: TCR_EL2.T0SZ = 64 - 39.
pub const VA_BITS: u32 = 39;

/// MAIR_EL2 for the copy: Attr0 = Device-nGnRE (the console), Attr1 = Normal memory,
/// inner and outer write-back non-transient read/write-allocate (RAM).
pub const MAIR: u64 = Mair::EMPTY
    .with_attribute(0, MairAttribute::DEVICE_NGNRE)
    .with_attribute(
        1,
        MairAttribute::normal(
            NormalMemory::WriteBackNonTransientReadWriteAllocate,
            NormalMemory::WriteBackNonTransientReadWriteAllocate,
        ),
    )
    .0;
const _: () = assert!(MAIR == 0xff_04);

/// Leaf attributes shared by every mapping: valid, accessed (no Access flag faults: the
/// engine has no handler), and AP[1], which is RES1 in the EL2 regime (Arm ARM D8.4.1,
/// "Data access permissions": regimes with one privilege level).
const LEAF: El23Attributes = El23Attributes::VALID
    .union(El23Attributes::ACCESSED)
    .union(El23Attributes::USER_RES1);

/// RAM: Normal write-back (MAIR index 1), inner shareable, read/write, execute-never.
pub(super) const RAM: El23Attributes = LEAF
    .union(El23Attributes::ATTRIBUTE_INDEX_1)
    .union(El23Attributes::INNER_SHAREABLE)
    .union(El23Attributes::XN);

/// The control page: like RAM, but read-only and executable (the engine runs from it).
pub(super) const CODE: El23Attributes = LEAF
    .union(El23Attributes::ATTRIBUTE_INDEX_1)
    .union(El23Attributes::INNER_SHAREABLE)
    .union(El23Attributes::READ_ONLY);

/// The console: Device-nGnRE (MAIR index 0), execute-never.
pub(super) const DEVICE: El23Attributes = LEAF
    .union(El23Attributes::ATTRIBUTE_INDEX_0)
    .union(El23Attributes::XN);

/// TCR_EL2.PS for `pa_bits` physical address bits (Arm ARM D19.2, TCR_EL2 bits [18:16]).
pub(super) fn ps(pa_bits: u32) -> Option<u64> {
    Some(match pa_bits {
        32 => 0,
        36 => 1,
        40 => 2,
        42 => 3,
        44 => 4,
        48 => 5,
        52 => 6,
        _ => return None,
    })
}

/// TCR_EL2 (non-VHE layout, Arm ARM D19.2) for the identity map on a CPU with `pa_bits`
/// physical address bits, or `None` for a PA size the architecture does not define.
///
/// T0SZ = 25 (39-bit VA, walks start at level 1), IRGN0 = ORGN0 = 0b01 (walks are
/// write-back read/write-allocate cacheable), SH0 = 0b11 (inner shareable), TG0 = 0b00
/// (4 KiB granule), PS from `pa_bits`, and the RES1 bits 31 and 23.
pub fn tcr(pa_bits: u32) -> Option<u64> {
    const T0SZ: u64 = 64 - VA_BITS as u64;
    const IRGN0_WBWA: u64 = 0b01 << 8;
    const ORGN0_WBWA: u64 = 0b01 << 10;
    const SH0_INNER: u64 = 0b11 << 12;
    const TG0_4K: u64 = 0b00 << 14;
    const RES1: u64 = (1 << 31) | (1 << 23);
    Some(T0SZ | IRGN0_WBWA | ORGN0_WBWA | SH0_INNER | TG0_4K | (ps(pa_bits)? << 16) | RES1)
}

type Table = PageTable<El23Attributes>;

/// Physical addresses given to tables when the pool has run dry: above every RAM page
/// (RAM is below 2^39 when the map is built), inside the descriptors' 48-bit output address
/// field, so they never collide with a real table and round-trip through the descriptors.
const SCRATCH_BASE: u64 = 1 << 47;

/// aarch64-paging's view of the tables: pages from the pool, built in heap copies.
struct PoolTables<'p> {
    pool: &'p mut Pool,
    /// Each table's physical address and its heap copy (from `Box::leak`, owned here).
    tables: BTreeMap<u64, NonNull<Table>>,
    /// Scratch tables handed out after the pool ran dry.
    scratch: u64,
    /// Answer for a physical address no table has (aarch64-paging never asks for one).
    void: NonNull<Table>,
    /// Set when `void` was handed out.
    lost: Cell<bool>,
}

impl<'p> PoolTables<'p> {
    fn new(pool: &'p mut Pool) -> Self {
        Self {
            pool,
            tables: BTreeMap::new(),
            scratch: 0,
            void: NonNull::from(Box::leak(Box::new(Table::EMPTY))),
            lost: Cell::new(false),
        }
    }
}

impl Translation<El23Attributes> for PoolTables<'_> {
    fn allocate_table(&mut self) -> (NonNull<Table>, PhysicalAddress) {
        // `allocate_table` cannot fail: when the pool is dry, hand out a scratch table and let
        // `build` turn `scratch != 0` into a clean error before anything is written.
        let pa = match self.pool.alloc(1) {
            Some(page) => page * PAGE_SIZE,
            None => {
                self.scratch += 1;
                SCRATCH_BASE + self.scratch * PAGE_SIZE
            }
        };
        let table = NonNull::from(Box::leak(Box::new(Table::EMPTY)));
        self.tables.insert(pa, table);
        (table, PhysicalAddress(pa as usize))
    }

    unsafe fn deallocate_table(&mut self, page_table: NonNull<Table>) {
        // Only the heap copy is freed: a table page that was allocated stays out of the pool,
        // because a dropped `Mapping` frees every table while the engine still needs the
        // pages written from them.
        self.tables.retain(|_, t| *t != page_table);
        // SAFETY: aarch64-paging only frees tables it got from `allocate_table`, which leaked
        // them from a `Box`, and frees each once; it was just removed from `tables`, so no
        // other pointer to it is used again.
        drop(unsafe { Box::from_raw(page_table.as_ptr()) });
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<Table> {
        self.tables.get(&(pa.0 as u64)).copied().unwrap_or_else(|| {
            self.lost.set(true);
            self.void
        })
    }
}

impl Drop for PoolTables<'_> {
    fn drop(&mut self) {
        for (_, table) in core::mem::take(&mut self.tables) {
            // SAFETY: every pointer in `tables` came from `Box::leak` and has not been freed
            // (`deallocate_table` removes what it frees); the `Mapping` that used them is
            // being dropped, so nothing uses them after this.
            drop(unsafe { Box::from_raw(table.as_ptr()) });
        }
        // SAFETY: `void` came from `Box::leak` in `new` and is freed only here.
        drop(unsafe { Box::from_raw(self.void.as_ptr()) });
    }
}

/// The identity map as written to memory.
pub(super) struct IdMap {
    /// Physical address of the root (level 1) table: TTBR0_EL2.
    pub(super) root: u64,
    /// Physical address of every table page, ascending.
    pub(super) pages: Vec<u64>,
}

/// Builds the EL2 identity map of `ram` (page-aligned banks, below 2^39) as normal memory,
/// `control` (one page) as read-only executable and `console` (one page) as device memory,
/// with tables from `pool`, and writes the tables to `mem`.
///
/// # Errors
/// [`PlanError::TablesExhausted`] when the pool ran dry, [`PlanError::Map`] if
/// aarch64-paging refuses a range (out of the 39-bit VA).
pub(super) fn build<M: Memory + ?Sized>(
    pool: &mut Pool,
    mem: &mut M,
    ram: &[Range<u64>],
    control: u64,
    console: Option<u64>,
) -> Result<IdMap, PlanError> {
    let mut map = Mapping::new(PoolTables::new(pool), ROOT_LEVEL, El2);
    // Block mappings wherever alignment allows: 1 GiB and 2 MiB blocks keep the number of
    // tables independent of the payload's size.
    map_one(&mut map, ram.iter().cloned(), RAM)?;
    // Mapping the control page again splits the block around it into smaller tables.
    map_one(
        &mut map,
        core::iter::once(control..control + PAGE_SIZE),
        CODE,
    )?;
    if let Some(console) = console {
        let page = console - console % PAGE_SIZE;
        map_one(&mut map, core::iter::once(page..page + PAGE_SIZE), DEVICE)?;
    }

    let t = map.translation();
    let root = map.root_address().0 as u64;
    if t.scratch != 0 || t.lost.get() {
        return Err(PlanError::TablesExhausted {
            tables: t.tables.len() as u64,
            got: t.tables.len() as u64 - t.scratch,
        });
    }
    let mut pages = Vec::with_capacity(t.tables.len());
    for (&pa, table) in &t.tables {
        // SAFETY: the pointer came from `Box::leak` in `allocate_table` and is still owned by
        // `t.tables`; `map` is only borrowed shared here, so aarch64-paging is not writing
        // the table while it is read.
        let table = unsafe { table.as_ref() };
        let mut page = [0; PAGE_SIZE as usize];
        // `write_to` only fails for a slice that is not one table long; this one is.
        if table.write_to(&mut page).is_ok() {
            mem::write(mem, pa, &page);
        }
        pages.push(pa);
    }
    // Never activated, so dropping `map` is allowed; it frees the heap copies only.
    drop(map);
    Ok(IdMap { root, pages })
}

/// Maps each range in `ranges` to itself with `flags`.
fn map_one(
    map: &mut Mapping<PoolTables<'_>, El2>,
    ranges: impl IntoIterator<Item = Range<u64>>,
    flags: El23Attributes,
) -> Result<(), PlanError> {
    for r in ranges {
        let region = MemoryRegion::new(r.start as usize, r.end as usize);
        map.map_range(
            &region,
            PhysicalAddress(r.start as usize),
            flags,
            Constraints::empty(),
        )
        .map_err(|error| PlanError::Map {
            start: r.start,
            end: r.end,
            error,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcr_fields() {
        let t = tcr(40).unwrap();
        assert_eq!(t & 0x3f, 25, "T0SZ");
        assert_eq!((t >> 8) & 3, 1, "IRGN0");
        assert_eq!((t >> 10) & 3, 1, "ORGN0");
        assert_eq!((t >> 12) & 3, 3, "SH0");
        assert_eq!((t >> 14) & 3, 0, "TG0");
        assert_eq!((t >> 16) & 7, 2, "PS");
        assert_eq!(t & (1 << 23 | 1 << 31), 1 << 23 | 1 << 31, "RES1");
        assert_eq!(t, 0x8082_3519);
        let ps: Vec<u64> = [32, 36, 40, 42, 44, 48, 52]
            .iter()
            .map(|&b| (tcr(b).unwrap() >> 16) & 7)
            .collect();
        assert_eq!(ps, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(tcr(39), None);
    }

    #[test]
    fn attributes() {
        assert_eq!(RAM.bits(), 1 | 1 << 2 | 1 << 6 | 3 << 8 | 1 << 10 | 1 << 54);
        assert_eq!(CODE.bits(), 1 | 1 << 2 | 1 << 6 | 1 << 7 | 3 << 8 | 1 << 10);
        assert_eq!(DEVICE.bits(), 1 | 1 << 6 | 1 << 10 | 1 << 54);
    }
}
