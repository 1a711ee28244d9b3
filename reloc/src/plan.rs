//! The plan builder: from "these segments go to these destinations" to an argument block
//! the engine can run, with every check done before the point of no return.
//!
//! The EL1 stage uses it in three calls:
//!
//! 1. [`Planner::new`] with the machine's [`Layout`], then [`Planner::add_segment`] for each
//!    destination (kernel, initrd, ...). Each destination is checked before anything is
//!    written: page-aligned start, inside one RAM bank, clear of every protected range and
//!    of the other destinations.
//! 2. [`Planner::stage`] builds the free pool (RAM minus protected, busy and destination
//!    pages) and returns, per segment, the staging runs that receive its bytes. The caller
//!    fills them (DMA or copies).
//! 3. [`Planner::finish`] allocates, from the same pool, the control page (the engine's
//!    code), the page list, the digest array, the argument block and the EL2 page tables,
//!    writes them, walks the list back as the engine will, and returns a [`Ready`] with the
//!    block's address and the ranges to clean to the Point of Coherency
//!    ([`clean_for_engine`]) before the HVC.
//!
//! A segment added with [`Planner::add_segment_in_place`] has no staging: its bytes are
//! written straight into its destination (fw_cfg DMA) and the engine copies nothing for it,
//! but still checks its digest, which [`Planner::finish`] computes over the destination. Its
//! destination must also be clear of the busy ranges (the EL1 stage still runs there), and
//! like every destination it is never in the pool, so no source page, list page, table or
//! block lies in it and no copy of another segment lands on it.
//!
//! A segment added with [`Planner::add_segment_from`] names where its bytes already are (a
//! FIT's page-aligned external data): [`Planner::stage`] makes those pages its staging, so
//! nothing is copied at EL1 and the engine copies straight from them, provided they lie in
//! one RAM bank, clear of every protected range and of every destination (its own
//! included). Otherwise the segment gets staging from the pool like any other and the
//! caller copies its bytes there. The source pages are taken out of the pool either way,
//! so nothing the planner allocates lands on them.
//!
//! Because every page the engine reads (staging, list, tables, block, its own code) comes
//! from the pool, or is a source the planner checked to be clear of every destination,
//! none lies in a destination: the copy, in list order, never overwrites
//! anything it has yet to read (the "safe pages" rule of Linux's kexec). Busy pages (the EL1
//! stage's own RAM) may be destinations, as the EL1 stage is gone by the time the engine
//! writes them, but never hold anything the engine reads.

mod idmap;
mod pool;

use alloc::vec::Vec;
use core::ops::Range;

use aarch64_paging::MapError;
use thiserror::Error;

pub use idmap::{tcr, MAIR, VA_BITS};

use crate::args::{self, ArgBlock, ArgError, Digest, FLAG_MMU, FLAG_PSCI_STOP};
use crate::digest::Hash64;
use crate::list::{self, ListError, ListWriter};
use crate::mem::{self, Memory};
use crate::PAGE_SIZE;
use pool::Pool;

/// What the machine's memory looks like to the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// RAM banks (physical ranges). Overlapping or touching banks are merged; a destination
    /// must lie inside one (merged) bank.
    pub ram: Vec<Range<u64>>,
    /// Ranges nothing may touch, with a name for messages: firmware, the stub's resident
    /// RAM, the DTB, spin tables, reserved memory. No destination may overlap one, and the
    /// pool never hands out their pages.
    pub protected: Vec<(Range<u64>, &'static str)>,
    /// Ranges the EL1 stage uses right now (code, data, stack, heap). They may be
    /// destinations (the engine overwrites them after the EL1 stage is gone) but never hold
    /// staging pages or anything else the engine reads.
    pub busy: Vec<Range<u64>>,
    /// Physical address of the UART the engine may print on (a PL011 unless
    /// `console_mini_uart`); its page is mapped as device memory at EL2. That page must not
    /// overlap a RAM bank or a protected range: the identity map maps RAM as normal memory
    /// and the pool hands out its pages, so [`Planner::new`] refuses such a console
    /// ([`PlanError::ConsoleInMemory`]).
    pub console: Option<u64>,
    /// The console is a BCM2835 mini-UART ([`args::FLAG_CONSOLE_MINI_UART`]).
    pub console_mini_uart: bool,
    /// The CPU's physical address bits (ID_AA64MMFR0_EL1.PARange): 32, 36, 40, 42, 44, 48
    /// or 52. It sets TCR_EL2.PS and bounds the RAM banks.
    pub pa_bits: u32,
}

/// What [`Planner::finish`] needs besides the segments.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    /// Where the payload is entered; must lie inside a destination.
    pub entry: u64,
    /// x0..x3 for the payload.
    pub regs: [u64; 4],
    /// The exception level to enter the payload at: 1 or 2.
    pub el: u64,
    /// Copy with the EL2 MMU and caches on ([`args::FLAG_MMU`]): builds the identity map.
    pub mmu: bool,
    /// Have the engine check a digest ([`crate::digest::Hash64`]) of each destination
    /// before entering.
    pub digests: bool,
    /// On a failure, the engine powers off with PSCI SYSTEM_OFF ([`args::FLAG_PSCI_STOP`]).
    pub psci_stop: bool,
    /// The engine's position-independent code, copied to the start of the control page
    /// and entered there; at most 4096 bytes.
    pub engine: &'a [u8],
}

/// A finished plan: everything is in memory; clean it and make the HVC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Physical address of the argument block (HVC_SOFT_RESTART x2, the engine's x0).
    pub args: u64,
    /// Physical address of the engine's entry, the start of the control page
    /// (HVC_SOFT_RESTART x1).
    pub engine_entry: u64,
    /// Every range the EL1 CPU wrote that the engine reads with its MMU off or through its
    /// table walks, in this order: the control page, the list pages, the digest array, the
    /// table pages, the argument block page. Clean them to the PoC before the HVC
    /// ([`clean_for_engine`]).
    pub clean: Vec<Range<u64>>,
    /// The destinations of the segments loaded in place (name, destination), in the order
    /// they were added: the engine copies nothing for them, only checks their digests.
    pub in_place: Vec<(&'static str, Range<u64>)>,
    /// The segments the engine copies straight from where their bytes were
    /// ([`Planner::add_segment_from`]), as (name, source pages), in the order they were
    /// added. Not in `staging` and not cleaned: nothing at EL1 wrote them (a caller
    /// copying with the MMU off, whose engine reads memory, cleans them if its CPU did).
    pub from_source: Vec<(&'static str, Range<u64>)>,
    /// The staging runs of every segment. They are not in `clean`, which assumes they were
    /// filled by DMA; a caller that filled them with CPU stores must clean them too (pass
    /// them as `extra` to [`clean_for_engine`]).
    pub staging: Vec<Range<u64>>,
    /// Pages of EL2 translation tables (0 without the MMU).
    pub table_pages: usize,
    /// Staging pages.
    pub staging_pages: usize,
    /// Page-list pages.
    pub list_pages: usize,
    /// Bytes of payload (the segments' lengths, not rounded), in place ones included.
    pub bytes: u64,
    /// The argument block as written at `args`.
    pub block: ArgBlock,
}

/// Why a plan cannot be made. Every case names the values involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// `pa_bits` is not a physical address size the architecture defines.
    #[error("physical address size of {bits} bits is not one of 32, 36, 40, 42, 44, 48, 52")]
    PaBits {
        /// [`Layout::pa_bits`].
        bits: u32,
    },
    /// A range ends before it starts.
    #[error("{what} {start:#x}..{end:#x} ends before it starts")]
    BadRange {
        /// Which range: "RAM bank", "busy range", or the protected range's name.
        what: &'static str,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
    },
    /// A RAM bank reaches beyond the CPU's physical address size.
    #[error(
        "RAM bank {start:#x}..{end:#x} reaches beyond the {pa_bits}-bit physical address space"
    )]
    RamBeyondPa {
        /// The bank's start.
        start: u64,
        /// The bank's end.
        end: u64,
        /// [`Layout::pa_bits`].
        pa_bits: u32,
    },
    /// The planner's calls came in the wrong order.
    #[error("plan calls out of order: {call}")]
    OutOfOrder {
        /// What was called when it may not be.
        call: &'static str,
    },
    /// A segment has no bytes.
    #[error("segment {name}: destination {start:#x}..{end:#x} is empty")]
    EmptySegment {
        /// The segment's name.
        name: &'static str,
        /// Destination start.
        start: u64,
        /// Destination end.
        end: u64,
    },
    /// A source ([`Planner::add_segment_from`]) that does not start on a 4 KiB boundary.
    #[error("segment {name}: source {start:#x} is not 4 KiB aligned")]
    UnalignedSource {
        /// The segment.
        name: &'static str,
        /// Its source.
        start: u64,
    },
    /// A destination does not start on a 4 KiB boundary.
    #[error("segment {name}: destination {start:#x} is not 4 KiB aligned")]
    UnalignedDest {
        /// The segment's name.
        name: &'static str,
        /// Destination start.
        start: u64,
    },
    /// A destination starts at physical address 0, which the engine's list walk reads as
    /// "no destination yet".
    #[error(
        "segment {name}: destination starts at physical address 0, which the engine cannot copy to"
    )]
    DestAtZero {
        /// The segment's name.
        name: &'static str,
    },
    /// A destination (its last page rounded up) is not inside one RAM bank.
    #[error(
        "segment {name}: destination {start:#x}..{end:#x} (whole pages) is not inside one RAM bank"
    )]
    DestOutsideRam {
        /// The segment's name.
        name: &'static str,
        /// Destination start.
        start: u64,
        /// Destination end, rounded up to a page (the engine copies whole pages).
        end: u64,
    },
    /// A destination overlaps a protected range.
    #[error("segment {name}: destination {start:#x}..{end:#x} (whole pages) overlaps the {what} at {what_start:#x}..{what_end:#x}")]
    DestProtected {
        /// The segment's name.
        name: &'static str,
        /// Destination start.
        start: u64,
        /// Destination end, rounded up to a page.
        end: u64,
        /// The protected range's name.
        what: &'static str,
        /// Its start.
        what_start: u64,
        /// Its end.
        what_end: u64,
    },
    /// Two destinations overlap.
    #[error("segment {name}: destination {start:#x}..{end:#x} (whole pages) overlaps segment {other} at {other_start:#x}..{other_end:#x}")]
    DestOverlap {
        /// The segment's name.
        name: &'static str,
        /// Destination start.
        start: u64,
        /// Destination end, rounded up to a page.
        end: u64,
        /// The other segment's name.
        other: &'static str,
        /// Its start.
        other_start: u64,
        /// Its end, rounded up to a page.
        other_end: u64,
    },
    /// A destination to be loaded in place overlaps a busy range: the EL1 stage still uses
    /// that memory, so nothing may be written there before the engine runs.
    #[error("segment {name}: destination {start:#x}..{end:#x} (whole pages) overlaps the busy range {busy_start:#x}..{busy_end:#x}, so it cannot be loaded in place")]
    InPlaceBusy {
        /// The segment's name.
        name: &'static str,
        /// Destination start.
        start: u64,
        /// Destination end, rounded up to a page.
        end: u64,
        /// The busy range's start.
        busy_start: u64,
        /// Its end.
        busy_end: u64,
    },
    /// The payload needs more staging than there is free memory.
    #[error("payload needs {needed:#x} bytes of staging but only {free:#x} bytes of RAM are free (RAM minus protected, busy and destination pages)")]
    TooLarge {
        /// Staging bytes needed (whole pages).
        needed: u64,
        /// Free bytes.
        free: u64,
    },
    /// The pool has no room left for something the engine needs.
    #[error("no free memory for the {what}: it needs {pages} x 4 KiB and {free} x 4 KiB are left")]
    OutOfPages {
        /// What could not be allocated.
        what: &'static str,
        /// Pages it needs.
        pages: u64,
        /// Pages left in the pool.
        free: u64,
    },
    /// The pool ran dry while building the EL2 page tables.
    #[error("the EL2 page tables need {tables} pages but only {got} were free")]
    TablesExhausted {
        /// Table pages the identity map needs.
        tables: u64,
        /// Table pages the pool could give.
        got: u64,
    },
    /// aarch64-paging refused a range of the identity map.
    #[error("EL2 identity map of {start:#x}..{end:#x} failed: {error}")]
    Map {
        /// Start of the range.
        start: u64,
        /// End of the range.
        end: u64,
        /// aarch64-paging's reason.
        error: MapError,
    },
    /// The console's page overlaps a RAM bank or a protected range, which cannot also be
    /// mapped as device memory.
    #[error("console {console:#x}: its page overlaps the {what} at {start:#x}..{end:#x}; a UART is device memory, not RAM")]
    ConsoleInMemory {
        /// The console's address.
        console: u64,
        /// "RAM bank" or the protected range's name.
        what: &'static str,
        /// Start of the range it overlaps.
        start: u64,
        /// End of the range it overlaps.
        end: u64,
    },
    /// The entry point is not inside any destination.
    #[error("entry point {entry:#x} is not inside any segment's destination")]
    EntryOutside {
        /// The entry point.
        entry: u64,
    },
    /// The engine's code does not fit the control page.
    #[error("engine code of {len} bytes does not fit the control page (1 to 4096 bytes)")]
    EngineSize {
        /// Its length.
        len: usize,
    },
    /// Something the identity map must cover is beyond its 39-bit virtual address space.
    #[error("{what} {start:#x}..{end:#x} is above the EL2 identity map's 39-bit limit {:#x}; copy with the MMU off (hypstub.copy=nommu)", 1u64 << VA_BITS)]
    AboveVaLimit {
        /// "RAM bank" or "console".
        what: &'static str,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
    },
    /// The written list does not walk to the expected copies.
    #[error("page list check: copy {index} is {found_dest:#x} <- {found_src:#x}, expected {expected_dest:#x} <- {expected_src:#x}")]
    ListMismatch {
        /// Position of the first differing copy.
        index: usize,
        /// Expected destination page.
        expected_dest: u64,
        /// Expected source page.
        expected_src: u64,
        /// Destination page the list gives.
        found_dest: u64,
        /// Source page the list gives.
        found_src: u64,
    },
    /// The written list walks to a different number of copies.
    #[error("page list check: the list makes {found} copies, expected {expected}")]
    ListLength {
        /// Copies expected.
        expected: usize,
        /// Copies the list makes.
        found: usize,
    },
    /// The page list could not be written or walked.
    #[error(transparent)]
    List(#[from] ListError),
    /// The argument block fails [`crate::args::validate`].
    #[error(transparent)]
    Args(#[from] ArgError),
}

/// One destination and where its bytes are staged.
#[derive(Debug, Clone)]
struct Segment {
    name: &'static str,
    dest: Range<u64>,
    /// Staging runs (byte addresses), filled in by `stage`; none when `in_place`.
    staging: Vec<Range<u64>>,
    /// Loaded straight into `dest`: no staging, no copy, only the digest check.
    in_place: bool,
    /// Where its bytes already are (page-aligned), if the caller named it.
    source: Option<u64>,
    /// `stage` made the source's pages its staging: nothing to fill.
    from_source: bool,
}

impl Segment {
    /// The destination in whole pages: the engine copies whole pages.
    fn pages(&self) -> Range<u64> {
        self.dest.start..page_end(self.dest.end)
    }

    fn page_count(&self) -> u64 {
        (self.pages().end - self.pages().start) / PAGE_SIZE
    }

    /// Pages the engine copies for it: none when loaded in place.
    fn copied_pages(&self) -> u64 {
        if self.in_place {
            0
        } else {
            self.page_count()
        }
    }

    /// The pages its source spans (as many as the destination's), if it names one.
    fn source_pages(&self) -> Option<Range<u64>> {
        let start = self.source?;
        let len = self.pages().end - self.pages().start;
        Some(start..start.saturating_add(len))
    }
}

/// Builds a relocation plan in the memory `M` (see the [module documentation](self)).
pub struct Planner<M: Memory> {
    mem: M,
    /// Merged, sorted RAM banks.
    ram: Vec<Range<u64>>,
    protected: Vec<(Range<u64>, &'static str)>,
    busy: Vec<Range<u64>>,
    console: Option<u64>,
    console_mini_uart: bool,
    pa_bits: u32,
    segments: Vec<Segment>,
    /// The free pool, once `stage` has run.
    pool: Option<Pool>,
}

impl<M: Memory> Planner<M> {
    /// A planner for `layout`, writing through `mem`.
    ///
    /// # Errors
    /// An unknown `pa_bits`, a range that ends before it starts, a RAM bank beyond the
    /// physical address size, or a console whose page overlaps a RAM bank or a protected
    /// range.
    pub fn new(layout: Layout, mem: M) -> Result<Self, PlanError> {
        let Layout {
            mut ram,
            protected,
            busy,
            console,
            console_mini_uart,
            pa_bits,
        } = layout;
        if idmap::ps(pa_bits).is_none() {
            return Err(PlanError::PaBits { bits: pa_bits });
        }
        for r in &ram {
            if r.start > r.end {
                return Err(bad_range("RAM bank", r));
            }
            if r.end > 1 << pa_bits {
                return Err(PlanError::RamBeyondPa {
                    start: r.start,
                    end: r.end,
                    pa_bits,
                });
            }
        }
        if let Some((r, name)) = protected.iter().find(|(r, _)| r.start > r.end) {
            return Err(bad_range(name, r));
        }
        if let Some(r) = busy.iter().find(|r| r.start > r.end) {
            return Err(bad_range("busy range", r));
        }
        ram.retain(|r| r.start < r.end);
        ram.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ram.len());
        for r in ram {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        if let Some(c) = console {
            let page = c - c % PAGE_SIZE;
            let page = page..page.saturating_add(PAGE_SIZE);
            let overlaps =
                |r: &Range<u64>| r.start < r.end && r.start < page.end && page.start < r.end;
            let hit = merged
                .iter()
                .map(|r| (r, "RAM bank"))
                .chain(protected.iter().map(|(r, name)| (r, *name)))
                .find(|(r, _)| overlaps(r));
            if let Some((r, what)) = hit {
                return Err(PlanError::ConsoleInMemory {
                    console: c,
                    what,
                    start: r.start,
                    end: r.end,
                });
            }
        }
        Ok(Self {
            mem,
            ram: merged,
            protected,
            busy,
            console,
            console_mini_uart,
            pa_bits,
            segments: Vec::new(),
            pool: None,
        })
    }

    /// The memory the plan is written in, e.g. to fill the staging runs.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The memory the plan is written in, to write.
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Adds a segment whose bytes go to `dest` and returns its index. `dest.end` may be
    /// unaligned: the engine copies the last page whole, so the checks use `dest.end`
    /// rounded up to a page.
    ///
    /// # Errors
    /// An empty or unaligned destination, one at address 0, one not inside one RAM bank, one
    /// overlapping a protected range (named) or another segment, or a call after
    /// [`stage`](Self::stage).
    pub fn add_segment(
        &mut self,
        name: &'static str,
        dest: Range<u64>,
    ) -> Result<usize, PlanError> {
        self.add(name, dest, false, None)
    }

    /// Adds a segment whose bytes go to `dest` and are now at `source` (page-aligned, as
    /// many bytes as `dest` holds; the engine reads the last page whole), and returns its
    /// index. [`stage`](Self::stage) decides: the engine copies straight from `source`
    /// (no staging, nothing to fill) when its pages lie inside one RAM bank, clear of every
    /// protected range and of every segment's destination; otherwise the segment is
    /// staged like one from [`add_segment`](Self::add_segment). The source's pages are
    /// kept out of the pool either way.
    ///
    /// # Errors
    /// Those of [`add_segment`](Self::add_segment), and [`PlanError::UnalignedSource`]
    /// for a source not on a page.
    pub fn add_segment_from(
        &mut self,
        name: &'static str,
        dest: Range<u64>,
        source: u64,
    ) -> Result<usize, PlanError> {
        if !source.is_multiple_of(PAGE_SIZE) {
            return Err(PlanError::UnalignedSource {
                name,
                start: source,
            });
        }
        self.add(name, dest, false, Some(source))
    }

    /// Whether `dest` could be loaded in place: it is clear of every busy range (the
    /// [`add_segment`](Self::add_segment) checks come on top).
    #[must_use]
    pub fn fits_in_place(&self, dest: &Range<u64>) -> bool {
        let pages = dest.start..page_end(dest.end);
        !self.busy.iter().any(|b| overlaps(b, &pages))
    }

    /// Adds a segment whose bytes the caller writes straight into `dest` (after
    /// [`stage`](Self::stage), which returns `dest`'s pages as its one run) and returns its
    /// index. The engine copies nothing for it; with digests it checks the digest that
    /// [`finish`](Self::finish) computes over `dest`, after all copies.
    ///
    /// # Errors
    /// Those of [`add_segment`](Self::add_segment), and [`PlanError::InPlaceBusy`] when
    /// `dest` overlaps a busy range (see [`fits_in_place`](Self::fits_in_place)).
    pub fn add_segment_in_place(
        &mut self,
        name: &'static str,
        dest: Range<u64>,
    ) -> Result<usize, PlanError> {
        self.add(name, dest, true, None)
    }

    fn add(
        &mut self,
        name: &'static str,
        dest: Range<u64>,
        in_place: bool,
        source: Option<u64>,
    ) -> Result<usize, PlanError> {
        if self.pool.is_some() {
            return Err(PlanError::OutOfOrder {
                call: "add_segment after stage",
            });
        }
        if dest.start >= dest.end {
            return Err(PlanError::EmptySegment {
                name,
                start: dest.start,
                end: dest.end,
            });
        }
        if !dest.start.is_multiple_of(PAGE_SIZE) {
            return Err(PlanError::UnalignedDest {
                name,
                start: dest.start,
            });
        }
        if dest.start == 0 {
            return Err(PlanError::DestAtZero { name });
        }
        let seg = Segment {
            name,
            dest,
            staging: Vec::new(),
            in_place,
            source,
            from_source: false,
        };
        let pages = seg.pages();
        if !self
            .ram
            .iter()
            .any(|b| b.start <= pages.start && pages.end <= b.end)
        {
            return Err(PlanError::DestOutsideRam {
                name,
                start: pages.start,
                end: pages.end,
            });
        }
        if let Some((p, what)) = self.protected.iter().find(|(p, _)| overlaps(p, &pages)) {
            return Err(PlanError::DestProtected {
                name,
                start: pages.start,
                end: pages.end,
                what,
                what_start: p.start,
                what_end: p.end,
            });
        }
        if let Some(other) = self.segments.iter().find(|s| overlaps(&s.pages(), &pages)) {
            return Err(PlanError::DestOverlap {
                name,
                start: pages.start,
                end: pages.end,
                other: other.name,
                other_start: other.pages().start,
                other_end: other.pages().end,
            });
        }
        if in_place {
            if let Some(b) = self.busy.iter().find(|b| overlaps(b, &pages)) {
                return Err(PlanError::InPlaceBusy {
                    name,
                    start: pages.start,
                    end: pages.end,
                    busy_start: b.start,
                    busy_end: b.end,
                });
            }
        }
        self.segments.push(seg);
        Ok(self.segments.len() - 1)
    }

    /// Builds the free pool (RAM minus protected, busy and destination pages, and minus page
    /// 0, as a zero address means "none" to the engine) and allocates
    /// each segment's staging: runs of pages, in order, whose concatenation receives the
    /// segment's bytes (its length rounded up to whole pages). Large power-of-two blocks are
    /// taken first, so the runs are few and long. Returns the runs per segment, in the order
    /// the segments were added; a segment loaded in place gets its destination's pages as
    /// its one run, to be filled directly, and one the engine copies from its source
    /// ([`add_segment_from`](Self::add_segment_from)) no runs: nothing to fill.
    ///
    /// # Errors
    /// [`PlanError::TooLarge`] when the segments need more pages than are free, or a call
    /// after `stage` already ran.
    pub fn stage(&mut self) -> Result<Vec<Vec<Range<u64>>>, PlanError> {
        if self.pool.is_some() {
            return Err(PlanError::OutOfOrder {
                call: "stage called twice",
            });
        }
        // Page numbers from here on. RAM shrinks to whole pages; everything taken away grows
        // to whole pages.
        let mut free: Vec<Range<u64>> = self
            .ram
            .iter()
            .map(|r| r.start.div_ceil(PAGE_SIZE)..r.end / PAGE_SIZE)
            .filter(|r| r.start < r.end)
            .collect();
        // Which sources the engine can read where they are: inside one RAM bank, clear of
        // every protected range and every destination. The rest are staged.
        let readable: Vec<bool> = self
            .segments
            .iter()
            .map(|seg| {
                seg.source_pages().is_some_and(|src| {
                    self.ram
                        .iter()
                        .any(|b| b.start <= src.start && src.end <= b.end)
                        && !self.protected.iter().any(|(p, _)| overlaps(p, &src))
                        && !self.segments.iter().any(|s| overlaps(&s.pages(), &src))
                })
            })
            .collect();
        let taken = self
            .protected
            .iter()
            .map(|(r, _)| r.clone())
            .chain(self.busy.iter().cloned())
            .chain(self.segments.iter().map(Segment::pages))
            .chain(self.segments.iter().filter_map(Segment::source_pages));
        for r in taken {
            pool::subtract(&mut free, r.start / PAGE_SIZE..r.end.div_ceil(PAGE_SIZE));
        }
        // Page 0 never: a zero address means "none" to the engine (its list pointer) and in
        // the block (ttbr0, digests).
        pool::subtract(&mut free, 0..1);
        let mut pool = Pool::new(&free);

        for (seg, &ok) in self.segments.iter_mut().zip(&readable) {
            if let (true, Some(src)) = (ok, seg.source_pages()) {
                seg.staging = alloc::vec![src];
                seg.from_source = true;
            }
        }
        let needed: u64 = self
            .segments
            .iter()
            .filter(|s| !s.from_source)
            .map(Segment::copied_pages)
            .sum();
        if needed > pool.free_pages() {
            return Err(PlanError::TooLarge {
                needed: needed * PAGE_SIZE,
                free: pool.free_pages() * PAGE_SIZE,
            });
        }
        for seg in self
            .segments
            .iter_mut()
            .filter(|s| !s.in_place && !s.from_source)
        {
            let pages = seg.page_count();
            let runs = pool.alloc_runs(pages).ok_or(PlanError::OutOfPages {
                what: "staging",
                pages,
                free: pool.free_pages(),
            })?;
            seg.staging = runs
                .into_iter()
                .map(|r| r.start * PAGE_SIZE..r.end * PAGE_SIZE)
                .collect();
        }
        self.pool = Some(pool);
        Ok(self
            .segments
            .iter()
            .map(|s| {
                if s.in_place {
                    alloc::vec![s.pages()]
                } else if s.from_source {
                    Vec::new()
                } else {
                    s.staging.clone()
                }
            })
            .collect())
    }

    /// Writes everything the engine reads and checks it (see the
    /// [module documentation](self)). Allocates, from the pool, in this order: the control
    /// page, the list pages, the digest array, the argument block page, the EL2 tables.
    ///
    /// # Errors
    /// A bad `el` or `entry` (as the engine would reject them), an entry outside the
    /// destinations, engine code that does not fit a page, RAM or the console above the
    /// 39-bit identity map (with `mmu`), a pool too small for any of the pages above, a list
    /// that does not walk back to the expected copies, or a call before
    /// [`stage`](Self::stage).
    pub fn finish(mut self, req: Finish<'_>) -> Result<Ready, PlanError> {
        let Some(mut pool) = self.pool.take() else {
            return Err(PlanError::OutOfOrder {
                call: "finish before stage",
            });
        };
        let mem = &mut self.mem;

        // Every check on the request comes before any allocation or write.
        args::validate(&ArgBlock {
            entry: req.entry,
            el: req.el,
            ..ArgBlock::new()
        })?;
        if !self.segments.iter().any(|s| s.dest.contains(&req.entry)) {
            return Err(PlanError::EntryOutside { entry: req.entry });
        }
        if req.engine.is_empty() || req.engine.len() > PAGE_SIZE as usize {
            return Err(PlanError::EngineSize {
                len: req.engine.len(),
            });
        }
        let ram: Vec<Range<u64>> = self
            .ram
            .iter()
            .map(|r| r.start.div_ceil(PAGE_SIZE) * PAGE_SIZE..r.end / PAGE_SIZE * PAGE_SIZE)
            .filter(|r| r.start < r.end)
            .collect();
        if req.mmu {
            let limit = 1u64 << VA_BITS;
            let console = self.console.map(|c| {
                let page = c - c % PAGE_SIZE;
                page..page.saturating_add(PAGE_SIZE)
            });
            if let Some(r) = ram.iter().find(|r| r.end > limit) {
                return Err(above_va("RAM bank", r));
            }
            if let Some(r) = console.filter(|r| r.end > limit) {
                return Err(above_va("console", &r));
            }
        }

        // Allocations: nothing in a destination, busy or protected range.
        let mut take = |what: &'static str, pages: u64| {
            pool.alloc(pages)
                .map(|p| p * PAGE_SIZE)
                .ok_or(PlanError::OutOfPages {
                    what,
                    pages,
                    free: pool.free_pages(),
                })
        };
        let control = take("control page", 1)?;
        let entries: usize = self
            .segments
            .iter()
            .filter(|s| !s.in_place)
            .map(|s| 1 + s.page_count() as usize)
            .sum();
        // One page at a time (the list pages need not be contiguous), reporting them all.
        let list_count = list::pages_needed(entries) as u64;
        let list_pages = (0..list_count)
            .map(|_| take("page list", 1))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| match e {
                PlanError::OutOfPages { what, free, .. } => PlanError::OutOfPages {
                    what,
                    pages: list_count,
                    free,
                },
                e => e,
            })?;
        let digest_count = if req.digests { self.segments.len() } else { 0 };
        let digest_bytes = (digest_count * args::offsets::DIGEST_SIZE) as u64;
        let digests = match digest_bytes.div_ceil(PAGE_SIZE) {
            0 => None,
            pages => {
                let at = take("digest array", pages)?;
                Some(at..at + pages * PAGE_SIZE)
            }
        };
        let block_page = take("argument block", 1)?;

        // The control page: the engine's code, then zeros.
        let mut page = [0; PAGE_SIZE as usize];
        page[..req.engine.len()].copy_from_slice(req.engine);
        mem::write(mem, control, &page);

        // The page list: per staged segment one IND_DESTINATION, then one IND_SOURCE per
        // staging page in order; nothing for a segment loaded in place.
        let mut writer = ListWriter::new(list_pages.clone())?;
        for seg in self.segments.iter().filter(|s| !s.in_place) {
            writer.push(mem, list::destination(seg.dest.start))?;
            for src in staging_pages(&seg.staging) {
                writer.push(mem, list::source(src))?;
            }
        }
        let head = writer.finish(mem)?;

        // The digests: Hash64 of each segment's staged bytes (its real length), or of its
        // destination when it was loaded in place (the engine checks it after every copy:
        // nothing may have clobbered it).
        if let Some(at) = &digests {
            let mut bytes = Vec::with_capacity(digest_bytes as usize);
            for seg in &self.segments {
                bytes.extend_from_slice(&segment_digest(mem, seg).to_bytes());
            }
            mem::write(mem, at.start, &bytes);
        }

        // The EL2 identity map.
        let tables = if req.mmu {
            Some(idmap::build(&mut pool, mem, &ram, control, self.console)?)
        } else {
            None
        };

        let mut flags = 0;
        if req.mmu {
            flags |= FLAG_MMU;
        }
        if req.psci_stop {
            flags |= FLAG_PSCI_STOP;
        }
        if self.console_mini_uart && self.console.is_some() {
            flags |= args::FLAG_CONSOLE_MINI_UART;
        }
        let block = ArgBlock {
            head,
            entry: req.entry,
            regs: req.regs,
            el: req.el,
            flags,
            ttbr0: tables.as_ref().map_or(0, |t| t.root),
            tcr: if req.mmu {
                tcr(self.pa_bits).unwrap_or(0)
            } else {
                0
            },
            mair: if req.mmu { MAIR } else { 0 },
            console: self.console.unwrap_or(0),
            digests: digests.as_ref().map_or(0, |d| d.start),
            digest_count: digest_count as u64,
            ..ArgBlock::new()
        };
        args::validate(&block)?;
        let mut page = [0; PAGE_SIZE as usize];
        page[..args::offsets::BLOCK_SIZE].copy_from_slice(&block.to_bytes());
        mem::write(mem, block_page, &page);

        // Read the list back as the engine will and compare it with what was meant.
        let mut check = PairCheck::new(expected_copies(&self.segments));
        let max_steps = entries + list_pages.len() + 1;
        list::walk_each(mem, head, max_steps, |d, s| check.found(d, s))?;
        check.end()?;

        let table_pages = tables.map_or_else(Vec::new, |t| t.pages);
        let mut clean = Vec::new();
        push_merged(&mut clean, control..control + PAGE_SIZE);
        for &p in &list_pages {
            push_merged(&mut clean, p..p + PAGE_SIZE);
        }
        if let Some(at) = &digests {
            push_merged(&mut clean, at.clone());
        }
        for &p in &table_pages {
            push_merged(&mut clean, p..p + PAGE_SIZE);
        }
        push_merged(&mut clean, block_page..block_page + PAGE_SIZE);

        let staging: Vec<Range<u64>> = self
            .segments
            .iter()
            .filter(|s| !s.from_source)
            .flat_map(|s| s.staging.iter().cloned())
            .collect();
        Ok(Ready {
            args: block_page,
            engine_entry: control,
            clean,
            in_place: self
                .segments
                .iter()
                .filter(|s| s.in_place)
                .map(|s| (s.name, s.dest.clone()))
                .collect(),
            from_source: self
                .segments
                .iter()
                .filter(|s| s.from_source)
                .flat_map(|s| s.staging.iter().map(move |r| (s.name, r.clone())))
                .collect(),
            staging_pages: staging
                .iter()
                .map(|r| ((r.end - r.start) / PAGE_SIZE) as usize)
                .sum(),
            staging,
            table_pages: table_pages.len(),
            list_pages: list_pages.len(),
            bytes: self
                .segments
                .iter()
                .map(|s| s.dest.end - s.dest.start)
                .sum(),
            block,
        })
    }
}

/// Cache maintenance by virtual address, as the EL1 stage does it before the HVC (with its
/// identity map, VA = PA).
pub trait Cache {
    /// Cleans `r` to the Point of Coherency (`dc cvac` over each line, then `dsb sy`), so
    /// the engine, reading with its MMU off or walking tables with the caches not yet on,
    /// sees what the CPU wrote.
    fn clean(&mut self, r: Range<u64>);
    /// Invalidates the instruction cache to the Point of Unification (`ic iallu`, `dsb`,
    /// `isb`): the engine runs from a page just written as data.
    fn invalidate_icache(&mut self);
}

/// Cleans `ready.clean`, then `extra` (the DTB the EL1 stage patched, staging filled with
/// CPU stores: [`Ready::staging`]), in order, then invalidates the I-cache.
pub fn clean_for_engine<C: Cache>(ready: &Ready, extra: &[Range<u64>], cache: &mut C) {
    for r in ready.clean.iter().chain(extra) {
        cache.clean(r.clone());
    }
    cache.invalidate_icache();
}

/// Compares the copies a list makes with the ones expected, one at a time, keeping the first
/// difference.
struct PairCheck<I> {
    expected: I,
    index: usize,
    expected_len: usize,
    error: Option<PlanError>,
}

impl<I: ExactSizeIterator<Item = (u64, u64)>> PairCheck<I> {
    fn new(expected: I) -> Self {
        Self {
            expected_len: expected.len(),
            expected,
            index: 0,
            error: None,
        }
    }

    fn found(&mut self, dest: u64, src: u64) {
        if self.error.is_none() {
            match self.expected.next() {
                Some((ed, es)) if (ed, es) != (dest, src) => {
                    self.error = Some(PlanError::ListMismatch {
                        index: self.index,
                        expected_dest: ed,
                        expected_src: es,
                        found_dest: dest,
                        found_src: src,
                    });
                }
                Some(_) => {}
                None => {
                    self.error = Some(PlanError::ListLength {
                        expected: self.expected_len,
                        found: self.index + 1,
                    });
                }
            }
        }
        self.index += 1;
    }

    fn end(mut self) -> Result<(), PlanError> {
        if let Some(e) = self.error {
            return Err(match e {
                PlanError::ListLength { expected, .. } => PlanError::ListLength {
                    expected,
                    found: self.index,
                },
                e => e,
            });
        }
        if self.expected.next().is_some() {
            return Err(PlanError::ListLength {
                expected: self.expected_len,
                found: self.index,
            });
        }
        Ok(())
    }
}

/// Checks that `found` is exactly `expected`, as `finish` checks the walked list.
#[cfg(test)]
fn compare_copies(expected: &[(u64, u64)], found: &[(u64, u64)]) -> Result<(), PlanError> {
    let mut check = PairCheck::new(expected.iter().copied());
    for &(d, s) in found {
        check.found(d, s);
    }
    check.end()
}

/// Every `(destination, source)` page copy the list must make, in order.
fn expected_copies(segments: &[Segment]) -> impl ExactSizeIterator<Item = (u64, u64)> + '_ {
    let total: usize = segments.iter().map(|s| s.copied_pages() as usize).sum();
    let it = segments.iter().flat_map(|s| {
        staging_pages(&s.staging)
            .enumerate()
            .map(move |(i, src)| (s.dest.start + i as u64 * PAGE_SIZE, src))
    });
    Exact { it, left: total }
}

/// An iterator with a known length (`flat_map` does not say).
struct Exact<I> {
    it: I,
    left: usize,
}

impl<I: Iterator> Iterator for Exact<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let x = self.it.next()?;
        self.left = self.left.saturating_sub(1);
        Some(x)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Exact<I> {}

/// The page addresses of `runs`, in order.
fn staging_pages(runs: &[Range<u64>]) -> impl Iterator<Item = u64> + '_ {
    runs.iter()
        .flat_map(|r| r.clone().step_by(PAGE_SIZE as usize))
}

/// The digest of `seg`'s destination: Hash64 over its staged bytes (its real length), or
/// over the destination itself when it was loaded in place.
fn segment_digest<M: Memory + ?Sized>(mem: &M, seg: &Segment) -> Digest {
    let len = seg.dest.end - seg.dest.start;
    let mut hash = Hash64::new();
    let mut left = len;
    let in_place = [seg.dest.clone()];
    let runs: &[Range<u64>] = if seg.in_place {
        &in_place
    } else {
        &seg.staging
    };
    for run in runs {
        let n = left.min(run.end - run.start);
        mem::read_each(mem, run.start, n, |b| hash.update(b));
        left -= n;
    }
    Digest {
        start: seg.dest.start,
        len,
        hash64: hash.finish(),
    }
}

/// Appends `r` to `ranges`, extending the last range when `r` continues it.
fn push_merged(ranges: &mut Vec<Range<u64>>, r: Range<u64>) {
    match ranges.last_mut() {
        Some(last) if last.end == r.start => last.end = r.end,
        _ => ranges.push(r),
    }
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// `end` rounded up to a page, saturating at the last page of the address space.
fn page_end(end: u64) -> u64 {
    end.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE)
}

fn bad_range(what: &'static str, r: &Range<u64>) -> PlanError {
    PlanError::BadRange {
        what,
        start: r.start,
        end: r.end,
    }
}

fn above_va(what: &'static str, r: &Range<u64>) -> PlanError {
    PlanError::AboveVaLimit {
        what,
        start: r.start,
        end: r.end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_compare_exactly() {
        let a = [(0x4000_0000, 0x5000_0000), (0x4000_1000, 0x5000_3000)];
        assert_eq!(compare_copies(&a, &a), Ok(()));
        assert_eq!(
            compare_copies(&a, &[a[0], (0x4000_1000, 0x5000_4000)]),
            Err(PlanError::ListMismatch {
                index: 1,
                expected_dest: 0x4000_1000,
                expected_src: 0x5000_3000,
                found_dest: 0x4000_1000,
                found_src: 0x5000_4000,
            })
        );
        assert_eq!(
            compare_copies(&a, &a[..1]),
            Err(PlanError::ListLength {
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            compare_copies(&a[..1], &a),
            Err(PlanError::ListLength {
                expected: 1,
                found: 2
            })
        );
        // The first difference wins.
        assert!(matches!(
            compare_copies(&a, &[(0, 0), (0, 0), (0, 0)]),
            Err(PlanError::ListMismatch { index: 0, .. })
        ));
        let msg = compare_copies(&a, &[(0x4000_0000, 0x5000_1000), a[1]])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("0x50001000") && msg.contains("0x50000000"),
            "{msg}"
        );
    }

    #[test]
    fn merged_ranges() {
        let mut v = Vec::new();
        push_merged(&mut v, 0x1000..0x2000);
        push_merged(&mut v, 0x2000..0x3000);
        push_merged(&mut v, 0x5000..0x6000);
        assert_eq!(v, vec![0x1000..0x3000, 0x5000..0x6000]);
    }
}
