//! The free pool: RAM minus everything the plan must not put pages in, handed out by a buddy
//! allocator in page numbers (physical address / 4096).

use alloc::vec::Vec;
use core::ops::Range;

use buddy_system_allocator::FrameAllocator;

/// `FrameAllocator` orders: blocks of up to 2^31 pages (8 TiB), far beyond any RAM bank.
const ORDER: usize = 32;

/// `ranges` (in page numbers, sorted, disjoint) minus `hole`.
pub(super) fn subtract(ranges: &mut Vec<Range<u64>>, hole: Range<u64>) {
    if hole.start >= hole.end {
        return;
    }
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for r in ranges.drain(..) {
        if r.end <= hole.start || hole.end <= r.start {
            out.push(r);
            continue;
        }
        if r.start < hole.start {
            out.push(r.start..hole.start);
        }
        if hole.end < r.end {
            out.push(hole.end..r.end);
        }
    }
    *ranges = out;
}

/// Free pages, allocated in naturally aligned power-of-two blocks.
pub(super) struct Pool {
    frames: FrameAllocator<ORDER>,
    free: u64,
}

impl Pool {
    /// A pool of the pages in `ranges` (page numbers, disjoint).
    pub(super) fn new(ranges: &[Range<u64>]) -> Self {
        let mut frames = FrameAllocator::new();
        let mut free = 0;
        for r in ranges.iter().filter(|r| r.start < r.end) {
            frames.insert(r.start as usize..r.end as usize);
            free += r.end - r.start;
        }
        Self { frames, free }
    }

    /// Pages left.
    pub(super) fn free_pages(&self) -> u64 {
        self.free
    }

    /// `pages` contiguous pages; returns the first page number. The unused tail of the
    /// power-of-two block the buddy allocator hands out goes back to the pool.
    pub(super) fn alloc(&mut self, pages: u64) -> Option<u64> {
        if pages == 0 || pages > 1 << (ORDER - 1) {
            return None;
        }
        let block = pages.next_power_of_two();
        let first = self.frames.alloc(block as usize)? as u64;
        // `first` is aligned to `block`, so the tail splits into aligned power-of-two blocks.
        let (mut at, end) = (first + pages, first + block);
        while at < end {
            let mut size = 1u64 << at.trailing_zeros().min(63);
            while at + size > end {
                size /= 2;
            }
            self.frames.dealloc(at as usize, size as usize);
            at += size;
        }
        self.free -= pages;
        Some(first)
    }

    /// `pages` pages as few runs as the pool allows: the largest power-of-two block that
    /// still fits first, then smaller ones. Returns the runs in allocation order (page
    /// numbers), with touching runs merged.
    pub(super) fn alloc_runs(&mut self, mut pages: u64) -> Option<Vec<Range<u64>>> {
        if pages > self.free {
            return None;
        }
        let mut runs: Vec<Range<u64>> = Vec::new();
        while pages > 0 {
            let mut order = (63 - pages.leading_zeros()).min(ORDER as u32 - 1);
            let first = loop {
                if let Some(f) = self.frames.alloc(1 << order) {
                    break f as u64;
                }
                // Every free page is in some block of order 0 or more, so `pages <= free`
                // guarantees success at order 0 at the latest.
                order = order.checked_sub(1)?;
            };
            let size = 1u64 << order;
            match runs.last_mut() {
                Some(last) if last.end == first => last.end += size,
                _ => runs.push(first..first + size),
            }
            pages -= size;
            self.free -= size;
        }
        Some(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_cuts_holes() {
        let mut r = vec![0..100, 200..300];
        subtract(&mut r, 50..60);
        subtract(&mut r, 90..210);
        subtract(&mut r, 290..400);
        subtract(&mut r, 5..5);
        assert_eq!(r, vec![0..50, 60..90, 210..290]);
        subtract(&mut r, 0..1000);
        assert!(r.is_empty());
    }

    #[test]
    fn runs_are_few_and_long() {
        // 1 GiB at 0x4000_0000: 256 Ki pages in one block.
        let mut p = Pool::new(core::slice::from_ref(&(0x40000..0x80000)));
        let runs = p.alloc_runs(65536 + 3).unwrap();
        assert_eq!(runs, vec![0x40000..0x50003]);
        assert_eq!(p.free_pages(), 0x40000 - 65539);
    }

    #[test]
    fn runs_fall_back_to_small_blocks() {
        // Three scattered pieces: 5 pages, 3 pages, 4 pages.
        let mut p = Pool::new(&[10..15, 20..23, 40..44]);
        let runs = p.alloc_runs(12).unwrap();
        let total: u64 = runs.iter().map(|r| r.end - r.start).sum();
        assert_eq!(total, 12);
        assert_eq!(p.free_pages(), 0);
        assert_eq!(p.alloc(1), None);
        assert_eq!(p.alloc_runs(1), None);
    }

    #[test]
    fn exact_allocations_return_the_tail() {
        let mut p = Pool::new(core::slice::from_ref(&(0x100..0x110)));
        let a = p.alloc(3).unwrap();
        assert_eq!(a % 4, 0);
        assert_eq!(p.free_pages(), 13);
        // The fourth page of that block is free again, and so are the other twelve.
        let mut got = vec![];
        while let Some(x) = p.alloc(1) {
            got.push(x);
        }
        assert_eq!(got.len(), 13);
        assert!(got.iter().all(|&x| !(a..a + 3).contains(&x)));
    }
}
