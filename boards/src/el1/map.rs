//! The EL1 stage's full identity map, built with `aarch64-paging` once the early tables have
//! the MMU on and the heap works: every RAM bank the DTB lists (minus the stub's resident
//! RAM), the firmware's code, and the board's device range. The relocation planner writes
//! anywhere in RAM, so the early map's first 2 MiB are not enough.

use core::ops::Range;

use aarch64_paging::descriptor::El1Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El1And0, MemoryRegion};

/// Root level 1 with a 4 KiB granule: a 39-bit VA, T0SZ = 25 (Arm ARM D8.2.7).
pub const ROOT_LEVEL: usize = 1;
/// TCR_EL1 for the full map: as the early one ([`super::mmu::TCR_EL1`]) but T0SZ = 25.
pub const TCR_EL1: u64 = (super::mmu::TCR_EL1 & !0x3f) | 25;

const NORMAL: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_1)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(El1Attributes::ACCESSED);
const DATA: El1Attributes = NORMAL.union(El1Attributes::PXN).union(El1Attributes::UXN);
const CODE: El1Attributes = NORMAL
    .union(El1Attributes::READ_ONLY)
    .union(El1Attributes::UXN);
const DEVICE: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_0)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::PXN)
    .union(El1Attributes::UXN);

/// Why the map could not be built.
#[derive(Debug, thiserror::Error)]
#[error("EL1 map: cannot map {what} {start:#x}..{end:#x}: {error}")]
pub struct MapError {
    what: &'static str,
    start: u64,
    end: u64,
    error: aarch64_paging::MapError,
}

fn map(
    m: &mut IdMap<El1And0>,
    what: &'static str,
    r: &Range<u64>,
    flags: El1Attributes,
) -> Result<(), MapError> {
    m.map_range(&MemoryRegion::new(r.start as usize, r.end as usize), flags)
        .map_err(|error| MapError {
            what,
            start: r.start,
            end: r.end,
            error,
        })
}

/// The RAM ranges of `ram` with `hole` taken out.
#[must_use]
pub fn without(ram: &[Range<u64>], hole: &Range<u64>) -> alloc::vec::Vec<Range<u64>> {
    let mut out = alloc::vec::Vec::new();
    for r in ram {
        if hole.end <= r.start || hole.start >= r.end {
            out.push(r.clone());
            continue;
        }
        if r.start < hole.start {
            out.push(r.start..hole.start);
        }
        if hole.end < r.end {
            out.push(hole.end..r.end);
        }
    }
    out
}

/// Builds the map: `ram` as data except `holes` (the stub's resident RAM, left unmapped) and
/// `code`, then `code` as read-only executable, `devices` as Device-nGnRE. The tables come
/// from the heap (the EL1 stage's RAM).
///
/// # Errors
/// A range aarch64-paging cannot map (beyond the 39-bit VA, for instance).
pub fn build(
    ram: &[Range<u64>],
    holes: &[Range<u64>],
    code: &Range<u64>,
    devices: &Range<u64>,
) -> Result<IdMap<El1And0>, MapError> {
    let mut m = IdMap::with_asid(0, ROOT_LEVEL, El1And0);
    let mut data = without(ram, code);
    for hole in holes {
        data = without(&data, hole);
    }
    for r in data {
        map(&mut m, "RAM", &r, DATA)?;
    }
    map(&mut m, "the firmware's code", code, CODE)?;
    map(&mut m, "devices", devices, DEVICE)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes() {
        let ram = [0x4000_0000..0x6000_0000, 0x8000_0000..0x9000_0000];
        assert_eq!(
            without(&ram, &(0x4010_0000..0x4010_8000)),
            [
                0x4000_0000..0x4010_0000,
                0x4010_8000..0x6000_0000,
                0x8000_0000..0x9000_0000
            ]
        );
        assert_eq!(without(&ram, &(0x1000..0x2000)), ram);
    }

    #[test]
    fn builds_on_the_host() {
        let m = build(
            core::slice::from_ref(&(0x4000_0000..0x8000_0000)),
            core::slice::from_ref(&(0x4010_0000..0x4010_8000)),
            &(0..0x0800_0000),
            &(0x0800_0000..0x4000_0000),
        );
        assert!(m.is_ok());
        assert_eq!(TCR_EL1 & 0x3f, 25);
    }
}
