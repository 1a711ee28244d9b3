//! Linux's kexec page list (arch/arm64/kernel/relocate_kernel.S, kernel/kexec_core.c): how
//! the engine learns which staged page goes where.
//!
//! An entry is a 64-bit little-endian word: a 4 KiB-aligned physical address with one flag in
//! its low 4 bits. The engine interprets it like this, testing the flags in this order:
//!
//! ```text
//! entry = head
//! loop {
//!     if entry & IND_DONE:        stop
//!     if entry & IND_DESTINATION: dest = addr
//!     else if entry & IND_INDIRECTION: ptr = addr
//!     else if entry & IND_SOURCE: copy 4096 bytes addr -> dest; dest += 4096
//!     entry = *ptr; ptr += 8
//! }
//! ```
//!
//! where `addr = entry & !0xfff`. The head is normally an IND_INDIRECTION to the first list
//! page. `dest` and `ptr` start at 0, and the engine takes 0 to mean "not set yet": an
//! IND_SOURCE with `dest == 0` or a next entry with `ptr == 0` is a malformed list, so no
//! destination or list page may be at physical address 0. [`ListWriter`] fills each list page with 511 entries and ends it with an
//! IND_INDIRECTION to the next list page; the last page holds IND_DONE instead. [`walk`]
//! interprets a list as the engine does and rejects anything the engine would misread.

use alloc::vec::Vec;

use thiserror::Error;

use crate::mem::{self, Memory};
use crate::PAGE_SIZE;

/// A page-list entry that sets the destination cursor to its page address.
pub const IND_DESTINATION: u64 = 1 << 0;
/// A page-list entry that continues reading entries from its page.
pub const IND_INDIRECTION: u64 = 1 << 1;
/// The last page-list entry.
pub const IND_DONE: u64 = 1 << 2;
/// A page-list entry whose page is copied to the cursor, which then advances one page.
pub const IND_SOURCE: u64 = 1 << 3;

/// The bits of an entry that hold its flag.
pub const FLAG_MASK: u64 = 0xf;

/// Entries in one list page, the final link included.
pub const ENTRIES_PER_PAGE: usize = (PAGE_SIZE / 8) as usize;

/// Entries in one list page before its final IND_INDIRECTION link.
pub const USABLE_PER_PAGE: usize = ENTRIES_PER_PAGE - 1;

/// An IND_DESTINATION entry for the page at `pa`.
pub const fn destination(pa: u64) -> u64 {
    pa | IND_DESTINATION
}

/// An IND_SOURCE entry for the page at `pa`.
pub const fn source(pa: u64) -> u64 {
    pa | IND_SOURCE
}

/// An IND_INDIRECTION entry for the list page at `pa`.
pub const fn indirection(pa: u64) -> u64 {
    pa | IND_INDIRECTION
}

/// How many list pages hold `entries` entries plus the final IND_DONE.
pub const fn pages_needed(entries: usize) -> usize {
    (entries + 1).div_ceil(USABLE_PER_PAGE)
}

/// Why a page list cannot be written, or would not be read as meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ListError {
    /// The list did not reach IND_DONE within the number of entries allowed.
    #[error("page list does not end: no IND_DONE within {max_steps} entries")]
    NoEnd {
        /// The limit given to [`walk`].
        max_steps: usize,
    },
    /// An entry has no flag, several, or an unknown one.
    #[error(
        "page-list entry {step} ({entry:#x}) has flag bits {flags:#x}: exactly one of \
         IND_DESTINATION, IND_INDIRECTION, IND_DONE, IND_SOURCE must be set",
        flags = .entry & FLAG_MASK
    )]
    BadFlags {
        /// The entry's position in the walk (0 = the head).
        step: usize,
        /// The entry.
        entry: u64,
    },
    /// An entry's address is not 4 KiB aligned (bits 11:4 are not zero).
    #[error("page-list entry {step} ({entry:#x}) has an address that is not 4 KiB aligned")]
    Unaligned {
        /// The entry's position in the walk (0 = the head).
        step: usize,
        /// The entry.
        entry: u64,
    },
    /// An IND_SOURCE came while the destination cursor is 0: before any IND_DESTINATION, or
    /// after an IND_DESTINATION of address 0.
    #[error(
        "page-list entry {step} ({entry:#x}) is an IND_SOURCE while the destination cursor \
         is 0 (no IND_DESTINATION yet)"
    )]
    SourceBeforeDestination {
        /// The entry's position in the walk.
        step: usize,
        /// The entry.
        entry: u64,
    },
    /// The next entry would be read from address 0: no IND_INDIRECTION said where from, or
    /// one said 0.
    #[error(
        "page-list entry {step} ({entry:#x}) is not IND_DONE, but no IND_INDIRECTION has said \
         where the next entry is (the head must be an IND_INDIRECTION to a non-zero page)"
    )]
    NoIndirection {
        /// The entry's position in the walk.
        step: usize,
        /// The entry.
        entry: u64,
    },
    /// The destination cursor or the entry pointer ran past the top of the address space.
    #[error(
        "page-list entry {step} ({entry:#x}) moves a cursor past the top of the address space"
    )]
    Overflow {
        /// The entry's position in the walk.
        step: usize,
        /// The entry.
        entry: u64,
    },
    /// A list page given to [`ListWriter::new`] is not 4 KiB aligned.
    #[error("page-list page {pa:#x} is not 4 KiB aligned")]
    UnalignedPage {
        /// The page's address.
        pa: u64,
    },
    /// A list page given to [`ListWriter::new`] is at address 0, which the engine takes to
    /// mean "no IND_INDIRECTION yet".
    #[error("page-list page 0x0 is at address 0, which the engine reads as \"not set\"")]
    ZeroPage,
    /// A list page given to [`ListWriter::new`] is the last page of the address space: the
    /// engine's entry pointer would wrap past its end.
    #[error("page-list page {pa:#x} ends at the top of the address space (the entry pointer would wrap)")]
    PageWraps {
        /// The page's address.
        pa: u64,
    },
    /// [`ListWriter`] was given a different number of pages than the entries need.
    #[error("page list of {entries} entries needs {needed} pages, but {given} were given")]
    PageCount {
        /// Entries written, IND_DONE included.
        entries: usize,
        /// Pages those need.
        needed: usize,
        /// Pages given.
        given: usize,
    },
}

/// Writes a page list into the list pages it is given, a page at a time.
///
/// Give it exactly [`pages_needed`]`(entries)` pages, then [`push`](Self::push) each
/// IND_DESTINATION and IND_SOURCE entry and call [`finish`](Self::finish), which appends
/// IND_DONE and returns the head.
pub struct ListWriter {
    pages: Vec<u64>,
    /// Index in `pages` of the page being filled.
    page: usize,
    /// Entries in the page being filled.
    fill: usize,
    /// Entries pushed so far.
    entries: usize,
    buf: [u8; PAGE_SIZE as usize],
}

impl ListWriter {
    /// A writer that fills `pages` in order.
    ///
    /// # Errors
    /// [`ListError::UnalignedPage`] for a page that is not 4 KiB aligned,
    /// [`ListError::ZeroPage`] for a page at address 0, [`ListError::PageWraps`] for the last
    /// page of the address space (its end, where the engine's entry pointer goes after the
    /// last entry, wraps to 0), and [`ListError::PageCount`] when no page is given.
    pub fn new(pages: Vec<u64>) -> Result<Self, ListError> {
        if let Some(&pa) = pages.iter().find(|&&pa| !pa.is_multiple_of(PAGE_SIZE)) {
            return Err(ListError::UnalignedPage { pa });
        }
        if pages.contains(&0) {
            return Err(ListError::ZeroPage);
        }
        if let Some(&pa) = pages
            .iter()
            .find(|&&pa| pa.checked_add(PAGE_SIZE).is_none())
        {
            return Err(ListError::PageWraps { pa });
        }
        if pages.is_empty() {
            return Err(ListError::PageCount {
                entries: 1,
                needed: 1,
                given: 0,
            });
        }
        Ok(Self {
            pages,
            page: 0,
            fill: 0,
            entries: 0,
            buf: [0; PAGE_SIZE as usize],
        })
    }

    /// The head entry: an IND_INDIRECTION to the first list page.
    pub fn head(&self) -> u64 {
        indirection(self.pages[0])
    }

    /// Appends `entry`, moving to the next page (and linking to it) when this one is full.
    ///
    /// # Errors
    /// [`ListError::PageCount`] when the pages run out.
    pub fn push<M: Memory + ?Sized>(&mut self, mem: &mut M, entry: u64) -> Result<(), ListError> {
        if self.fill == USABLE_PER_PAGE {
            let Some(&next) = self.pages.get(self.page + 1) else {
                return Err(ListError::PageCount {
                    entries: self.entries + 1,
                    needed: pages_needed(self.entries + 1),
                    given: self.pages.len(),
                });
            };
            self.put(USABLE_PER_PAGE, indirection(next));
            mem::write(mem, self.pages[self.page], &self.buf);
            self.buf = [0; PAGE_SIZE as usize];
            self.page += 1;
            self.fill = 0;
        }
        self.put(self.fill, entry);
        self.fill += 1;
        self.entries += 1;
        Ok(())
    }

    /// Appends IND_DONE, writes the last page and returns the head entry.
    ///
    /// # Errors
    /// [`ListError::PageCount`] unless the pages given were exactly the ones needed.
    pub fn finish<M: Memory + ?Sized>(mut self, mem: &mut M) -> Result<u64, ListError> {
        self.push(mem, IND_DONE)?;
        if self.page + 1 != self.pages.len() {
            return Err(ListError::PageCount {
                entries: self.entries,
                needed: self.page + 1,
                given: self.pages.len(),
            });
        }
        mem::write(mem, self.pages[self.page], &self.buf);
        Ok(self.head())
    }

    fn put(&mut self, slot: usize, entry: u64) {
        self.buf[slot * 8..slot * 8 + 8].copy_from_slice(&entry.to_le_bytes());
    }
}

/// Interprets the list starting at `head` exactly as the engine does and returns every copy
/// it would make, as `(destination, source)` page addresses in order.
///
/// # Errors
/// Anything the engine would reject or misread: no IND_DONE within `max_steps` entries (head
/// and links included), an entry without exactly one flag (the engine would act on the
/// first it tests), an address with bits 11:4 set (the engine would drop them), an
/// IND_SOURCE while the cursor is 0, a next entry to be read from address 0, or a cursor
/// past 2^64.
pub fn walk<M: Memory + ?Sized>(
    mem: &M,
    head: u64,
    max_steps: usize,
) -> Result<Vec<(u64, u64)>, ListError> {
    let mut copies = Vec::new();
    walk_each(mem, head, max_steps, |dest, src| copies.push((dest, src)))?;
    Ok(copies)
}

/// [`walk`], handing each `(destination, source)` copy to `copy` instead of collecting them.
///
/// # Errors
/// As [`walk`].
pub fn walk_each<M: Memory + ?Sized>(
    mem: &M,
    head: u64,
    max_steps: usize,
    mut copy: impl FnMut(u64, u64),
) -> Result<(), ListError> {
    // Zero means "not set yet", as in the engine, which tests its registers against zero.
    let mut entry = head;
    let mut ptr = 0;
    let mut dest = 0;
    for step in 0..max_steps {
        let flags = entry & FLAG_MASK;
        if !matches!(
            flags,
            IND_DESTINATION | IND_INDIRECTION | IND_DONE | IND_SOURCE
        ) {
            return Err(ListError::BadFlags { step, entry });
        }
        if flags == IND_DONE {
            return Ok(());
        }
        let addr = entry & !FLAG_MASK;
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(ListError::Unaligned { step, entry });
        }
        match flags {
            IND_DESTINATION => dest = addr,
            IND_INDIRECTION => ptr = addr,
            _ => {
                if dest == 0 {
                    return Err(ListError::SourceBeforeDestination { step, entry });
                }
                copy(dest, addr);
                dest = dest
                    .checked_add(PAGE_SIZE)
                    .ok_or(ListError::Overflow { step, entry })?;
            }
        }
        if ptr == 0 {
            return Err(ListError::NoIndirection { step, entry });
        }
        entry = mem::read_u64(mem, ptr);
        ptr = ptr
            .checked_add(8)
            .ok_or(ListError::Overflow { step, entry })?;
    }
    Err(ListError::NoEnd { max_steps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FakeMemory;

    const RAM: core::ops::Range<u64> = 0x4000_0000..0x4100_0000;

    fn write_list(mem: &mut FakeMemory, pages: &[u64], entries: &[u64]) -> u64 {
        let mut w = ListWriter::new(pages.to_vec()).unwrap();
        for &e in entries {
            w.push(mem, e).unwrap();
        }
        w.finish(mem).unwrap()
    }

    /// Found by the `list` fuzz target: a list page at 0xffff_ffff_ffff_f000 was accepted, and
    /// writing it overflowed the address after the copy. Such a page (and page 0) is refused.
    #[test]
    fn refuses_page_zero_and_the_last_page() {
        let top = u64::MAX - (PAGE_SIZE - 1);
        assert_eq!(
            ListWriter::new(vec![RAM.start, top]).err(),
            Some(ListError::PageWraps { pa: top })
        );
        assert_eq!(
            ListWriter::new(vec![0, RAM.start]).err(),
            Some(ListError::ZeroPage)
        );
        assert!(ListWriter::new(vec![top - PAGE_SIZE]).is_ok());
    }

    #[test]
    fn page_count() {
        assert_eq!(pages_needed(0), 1);
        assert_eq!(pages_needed(510), 1);
        assert_eq!(pages_needed(511), 2);
        assert_eq!(pages_needed(1021), 2);
        assert_eq!(pages_needed(1022), 3);
    }

    #[test]
    fn writes_and_walks_across_pages() {
        let mut mem = FakeMemory::new(RAM);
        // 1200 sources in two segments: three list pages.
        let mut entries = vec![destination(0x4000_0000)];
        let mut expected = Vec::new();
        for i in 0..700 {
            entries.push(source(0x4080_0000 + i * 4096));
            expected.push((0x4000_0000 + i * 4096, 0x4080_0000 + i * 4096));
        }
        entries.push(destination(0x4040_0000));
        for i in 0..500 {
            entries.push(source(0x40c0_0000 + i * 4096));
            expected.push((0x4040_0000 + i * 4096, 0x40c0_0000 + i * 4096));
        }
        let pages = [0x40ff_0000, 0x40fe_0000, 0x40fd_0000];
        assert_eq!(pages_needed(entries.len()), 3);
        let head = write_list(&mut mem, &pages, &entries);
        assert_eq!(head, 0x40ff_0000 | IND_INDIRECTION);
        // The first page ends with a link to the second, like Linux's kimage_add_entry.
        assert_eq!(
            crate::mem::read_u64(&mem, 0x40ff_0000 + 511 * 8),
            0x40fe_0000 | IND_INDIRECTION
        );
        assert_eq!(walk(&mem, head, 10_000), Ok(expected));
    }

    #[test]
    fn wrong_page_counts() {
        let mut mem = FakeMemory::new(RAM);
        let mut w = ListWriter::new(vec![0x4000_0000]).unwrap();
        // 510 entries and IND_DONE fill one page exactly; 511 do not.
        for i in 0..511 {
            w.push(&mut mem, source(i * 4096)).unwrap();
        }
        assert!(matches!(
            w.finish(&mut mem),
            Err(ListError::PageCount { given: 1, .. })
        ));
        let w = ListWriter::new(vec![0x4000_0000, 0x4000_1000]).unwrap();
        assert!(matches!(
            w.finish(&mut mem),
            Err(ListError::PageCount {
                needed: 1,
                given: 2,
                ..
            })
        ));
        assert!(matches!(
            ListWriter::new(vec![0x4000_0010]),
            Err(ListError::UnalignedPage { pa: 0x4000_0010 })
        ));
    }

    /// A list page at 0x4000_0000 holding `entries`, and its head.
    fn raw(entries: &[u64]) -> (FakeMemory, u64) {
        let mut mem = FakeMemory::new(RAM);
        for (i, e) in entries.iter().enumerate() {
            mem.write(0x4000_0000 + 8 * i as u64, &e.to_le_bytes());
        }
        (mem, indirection(0x4000_0000))
    }

    #[test]
    fn rejects_what_the_engine_would_misread() {
        let (mem, head) = raw(&[destination(0x4010_0000), 0x4020_0000]);
        assert_eq!(
            walk(&mem, head, 100),
            Err(ListError::BadFlags {
                step: 2,
                entry: 0x4020_0000
            })
        );
        let (mem, head) = raw(&[0x4020_0000 | IND_SOURCE | IND_DESTINATION]);
        assert!(matches!(
            walk(&mem, head, 100),
            Err(ListError::BadFlags { step: 1, .. })
        ));
        let (mem, head) = raw(&[destination(0x4010_0000), 0x4020_0010 | IND_SOURCE]);
        assert_eq!(
            walk(&mem, head, 100),
            Err(ListError::Unaligned {
                step: 2,
                entry: 0x4020_0018
            })
        );
        let (mem, head) = raw(&[source(0x4020_0000)]);
        assert!(matches!(
            walk(&mem, head, 100),
            Err(ListError::SourceBeforeDestination { step: 1, .. })
        ));
        // A list that loops back to its own page never ends.
        let (mem, head) = raw(&[destination(0x4010_0000), indirection(0x4000_0000)]);
        assert_eq!(
            walk(&mem, head, 1000),
            Err(ListError::NoEnd { max_steps: 1000 })
        );
        // A head that is not an IND_INDIRECTION leaves the engine's entry pointer unset.
        let (mem, _) = raw(&[IND_DONE]);
        assert!(matches!(
            walk(&mem, destination(0x4010_0000), 100),
            Err(ListError::NoIndirection { step: 0, .. })
        ));
        // Zero is "not set" to the engine: a destination or a list page at address 0.
        let (mem, head) = raw(&[destination(0), source(0x4020_0000)]);
        assert!(matches!(
            walk(&mem, head, 100),
            Err(ListError::SourceBeforeDestination { step: 2, .. })
        ));
        let (mem, head) = raw(&[indirection(0)]);
        assert!(matches!(
            walk(&mem, head, 100),
            Err(ListError::NoIndirection { step: 1, .. })
        ));
        // A head of IND_DONE is an empty list.
        assert_eq!(walk(&mem, IND_DONE, 1), Ok(vec![]));
        // Unwritten memory reads as zero: an entry with no flag.
        let (mem, head) = raw(&[]);
        assert!(matches!(
            walk(&mem, head, 100),
            Err(ListError::BadFlags { step: 1, entry: 0 })
        ));
    }

    #[test]
    fn destination_cursor_advances_per_source() {
        let (mem, head) = raw(&[
            destination(0x4010_0000),
            source(0x4020_0000),
            source(0x4030_0000),
            destination(0x4050_0000),
            source(0x4040_0000),
            IND_DONE,
        ]);
        assert_eq!(
            walk(&mem, head, 7),
            Ok(vec![
                (0x4010_0000, 0x4020_0000),
                (0x4010_1000, 0x4030_0000),
                (0x4050_0000, 0x4040_0000)
            ])
        );
        // Seven steps: the head, five entries, IND_DONE; six are not enough.
        assert_eq!(walk(&mem, head, 6), Err(ListError::NoEnd { max_steps: 6 }));
    }
}
