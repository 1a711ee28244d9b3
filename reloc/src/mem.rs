//! Physical memory as the builder writes it.
//!
//! On the target the firmware implements [`Memory`] over its identity map (VA = PA), so a
//! physical address is a pointer. On the host, tests use [`FakeMemory`], which holds only the
//! pages that were written, so a plan over a gigabyte of RAM costs a few hundred kilobytes.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ops::Range;

use crate::PAGE_SIZE;

/// Physical memory as the builder writes it (the page list, the tables, the block) and reads
/// it (staged bytes for digests, the list it checks).
///
/// This crate only ever asks for a range inside one 4 KiB page (`pa % 4096 + len <= 4096`),
/// so an implementation may keep pages apart (as [`FakeMemory`] does). Each call returns
/// exactly `len` bytes: the bytes at `pa..pa + len` as they are now. An implementation
/// decides what an address it cannot give means (the firmware's covers its whole RAM);
/// [`Planner`](crate::plan::Planner) only touches pages it allocated from the RAM banks of
/// its [`Layout`](crate::plan::Layout).
pub trait Memory {
    /// The `len` bytes at physical address `pa`.
    fn bytes(&self, pa: u64, len: usize) -> &[u8];
    /// The `len` bytes at physical address `pa`, to write.
    fn bytes_mut(&mut self, pa: u64, len: usize) -> &mut [u8];
}

impl<M: Memory + ?Sized> Memory for &mut M {
    fn bytes(&self, pa: u64, len: usize) -> &[u8] {
        (**self).bytes(pa, len)
    }

    fn bytes_mut(&mut self, pa: u64, len: usize) -> &mut [u8] {
        (**self).bytes_mut(pa, len)
    }
}

/// Copies `data` to physical address `pa`, one page-bounded piece at a time.
///
/// The address only advances when another piece follows, so data ending at the top of the
/// address space (the page at 0xffff_ffff_ffff_f000) does not overflow it; data that would
/// run past the top is a bug in the caller and panics.
pub(crate) fn write<M: Memory + ?Sized>(mem: &mut M, mut pa: u64, mut data: &[u8]) {
    while !data.is_empty() {
        let n = data.len().min(room(pa));
        let (now, rest) = data.split_at(n);
        mem.bytes_mut(pa, n).copy_from_slice(now);
        data = rest;
        if !data.is_empty() {
            pa = pa
                .checked_add(n as u64)
                .expect("write runs past the top of the address space");
        }
    }
}

/// Calls `f` with the `len` bytes at `pa`, one page-bounded piece at a time, in order.
///
/// Like [`write`], the address only advances when another piece follows.
pub(crate) fn read_each<M: Memory + ?Sized>(
    mem: &M,
    mut pa: u64,
    mut len: u64,
    mut f: impl FnMut(&[u8]),
) {
    while len > 0 {
        let n = len.min(room(pa) as u64);
        f(mem.bytes(pa, n as usize));
        len -= n;
        if len > 0 {
            pa = pa
                .checked_add(n)
                .expect("read runs past the top of the address space");
        }
    }
}

/// Reads the little-endian `u64` at the 8-byte aligned address `pa`.
pub(crate) fn read_u64<M: Memory + ?Sized>(mem: &M, pa: u64) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(mem.bytes(pa, 8));
    u64::from_le_bytes(v)
}

/// Bytes from `pa` to the end of its page.
fn room(pa: u64) -> usize {
    (PAGE_SIZE - pa % PAGE_SIZE) as usize
}

/// One page of [`FakeMemory`], aligned like a page.
#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE as usize]);

/// Read for pages never written.
static ZERO_PAGE: Page = Page([0; PAGE_SIZE as usize]);

/// Sparse fake physical memory for host tests: pages are allocated (zeroed) on their first
/// write, and pages never written read as zeros.
///
/// It panics on an access outside the range it was created for, or crossing a page
/// boundary (which [`Memory`] rules out): that is a bug in the code under test.
pub struct FakeMemory {
    range: Range<u64>,
    pages: BTreeMap<u64, Box<Page>>,
}

impl FakeMemory {
    /// Memory that answers for physical addresses in `range` (typically all RAM banks).
    pub fn new(range: Range<u64>) -> Self {
        Self {
            range,
            pages: BTreeMap::new(),
        }
    }

    /// Number of pages written so far.
    pub fn pages_written(&self) -> usize {
        self.pages.len()
    }

    /// Copies `data` to `pa` (any length, any alignment).
    pub fn write(&mut self, pa: u64, data: &[u8]) {
        write(self, pa, data);
    }

    /// The `len` bytes at `pa` (any length, any alignment).
    pub fn read(&self, pa: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        read_each(self, pa, len, |b| out.extend_from_slice(b));
        out
    }

    /// The page index and offset of `pa..pa + len`, checked.
    fn locate(&self, pa: u64, len: usize) -> (u64, usize) {
        let end = pa.checked_add(len as u64);
        assert!(
            pa >= self.range.start && end.is_some_and(|e| e <= self.range.end),
            "FakeMemory: {pa:#x} + {len:#x} is outside {:#x}..{:#x}",
            self.range.start,
            self.range.end
        );
        let off = (pa % PAGE_SIZE) as usize;
        assert!(
            off + len <= PAGE_SIZE as usize,
            "FakeMemory: {pa:#x} + {len:#x} crosses a page boundary"
        );
        (pa - pa % PAGE_SIZE, off)
    }
}

impl core::fmt::Debug for FakeMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeMemory")
            .field(
                "range",
                &format_args!("{:#x}..{:#x}", self.range.start, self.range.end),
            )
            .field("pages_written", &self.pages.len())
            .finish()
    }
}

impl Memory for FakeMemory {
    fn bytes(&self, pa: u64, len: usize) -> &[u8] {
        let (page, off) = self.locate(pa, len);
        let page = self.pages.get(&page).map_or(&ZERO_PAGE, |p| &**p);
        &page.0[off..off + len]
    }

    fn bytes_mut(&mut self, pa: u64, len: usize) -> &mut [u8] {
        let (page, off) = self.locate(pa, len);
        let page = self
            .pages
            .entry(page)
            .or_insert_with(|| Box::new(Page([0; PAGE_SIZE as usize])));
        &mut page.0[off..off + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_pages_read_zero_until_written() {
        let mut m = FakeMemory::new(0x4000_0000..0x8000_0000);
        assert_eq!(m.read(0x7fff_f000, 16), [0; 16]);
        assert_eq!(m.pages_written(), 0);
        m.write(0x4000_0ffc, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(m.pages_written(), 2);
        assert_eq!(
            m.read(0x4000_0ffa, 12),
            [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0]
        );
        assert_eq!(
            read_u64(&m, 0x4000_1000),
            u64::from_le_bytes([5, 6, 7, 8, 0, 0, 0, 0])
        );
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_range_panics() {
        let m = FakeMemory::new(0x4000_0000..0x4000_2000);
        m.bytes(0x4000_2000, 1);
    }

    #[test]
    #[should_panic(expected = "crosses a page boundary")]
    fn page_crossing_panics() {
        let mut m = FakeMemory::new(0x4000_0000..0x4000_2000);
        m.bytes_mut(0x4000_0ff8, 16);
    }
}
