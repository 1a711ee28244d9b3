//! Sparse physical memory for the `reloc` targets that checks the `reloc::mem::Memory`
//! contract on every access (a range inside one 4 KiB page) and records the pages written.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use reloc::mem::Memory;

const PAGE: u64 = 4096;

/// Pages written so far hold bytes; every other address reads as zero.
#[derive(Default)]
pub struct SparseMem {
    pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
    /// Pages read, in order of first read.
    reads: RefCell<BTreeSet<u64>>,
    /// Whether reads are recorded.
    recording: Cell<bool>,
}

static ZERO: [u8; PAGE as usize] = [0; PAGE as usize];

fn check(pa: u64, len: usize) -> (u64, usize) {
    let off = (pa % PAGE) as usize;
    assert!(
        off + len <= PAGE as usize,
        "Memory contract broken: {pa:#x} + {len:#x} crosses a page boundary"
    );
    (pa - off as u64, off)
}

impl SparseMem {
    /// Every page written, in address order.
    pub fn written(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.keys().copied()
    }

    /// Starts or stops recording the pages read.
    pub fn record_reads(&self, on: bool) {
        self.recording.set(on);
    }

    /// Forgets the pages read so far and returns them.
    pub fn take_reads(&self) -> BTreeSet<u64> {
        core::mem::take(&mut self.reads.borrow_mut())
    }

    /// Writes `data` at `pa` (any length).
    pub fn write(&mut self, mut pa: u64, mut data: &[u8]) {
        while !data.is_empty() {
            let n = data.len().min((PAGE - pa % PAGE) as usize);
            self.bytes_mut(pa, n).copy_from_slice(&data[..n]);
            data = &data[n..];
            pa += n as u64;
        }
    }

    /// Reads `len` bytes at `pa` (any length).
    pub fn read(&self, mut pa: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let n = (len - out.len()).min((PAGE - pa % PAGE) as usize);
            out.extend_from_slice(self.bytes(pa, n));
            pa += n as u64;
        }
        out
    }

    /// The little-endian `u64` at `pa`.
    pub fn u64(&self, pa: u64) -> u64 {
        let mut b = [0; 8];
        b.copy_from_slice(self.bytes(pa, 8));
        u64::from_le_bytes(b)
    }
}

impl Memory for SparseMem {
    fn bytes(&self, pa: u64, len: usize) -> &[u8] {
        let (page, off) = check(pa, len);
        if self.recording.get() {
            self.reads.borrow_mut().insert(page);
        }
        let p = self.pages.get(&page).map_or(&ZERO, |p| &**p);
        &p[off..off + len]
    }

    fn bytes_mut(&mut self, pa: u64, len: usize) -> &mut [u8] {
        let (page, off) = check(pa, len);
        let p = self
            .pages
            .entry(page)
            .or_insert_with(|| Box::new([0; PAGE as usize]));
        &mut p[off..off + len]
    }
}
