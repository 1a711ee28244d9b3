//! Data cache maintenance by virtual address, to the Point of Coherency.
//!
//! What a later reader with its MMU off (the stub, the payload, a DMA master) must see is
//! cleaned to PoC; what a DMA master wrote is invalidated before the CPU reads it. Always by
//! VA over the ranges concerned, never by set/way (Arm ARM D7.4.9: set/way operations are
//! not for this). [`Cache`] lets host tests record the order and ranges of maintenance.

use core::ops::Range;

/// Cache maintenance as the firmware uses it.
pub trait Cache {
    /// `dc cvac` over `r`, then `dsb sy`: dirty lines reach memory.
    fn clean(&mut self, r: Range<u64>);
    /// `dc ivac` over `r`, then `dsb sy`: the next read comes from memory.
    fn invalidate(&mut self, r: Range<u64>);
    /// `dc civac` over `r`, then `dsb sy`.
    fn clean_invalidate(&mut self, r: Range<u64>);
}

/// The CPU's own caches.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuCache;

#[cfg(target_arch = "aarch64")]
fn line_size() -> u64 {
    let ctr: u64;
    // SAFETY: reads CTR_EL0, which EL1 may always read (SCTLR_EL1.UCT only matters at EL0).
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    // CTR_EL0.DminLine, bits 19:16: log2 of the smallest data cache line in words.
    4 << ((ctr >> 16) & 0xf)
}

#[cfg(target_arch = "aarch64")]
macro_rules! by_va {
    ($op:literal, $r:expr) => {{
        let r = $r;
        let line = line_size();
        let mut va = r.start & !(line - 1);
        while va < r.end {
            // SAFETY: data cache maintenance by VA on an address the caller has mapped. A
            // clean changes no data; an invalidate discards dirty lines, so callers
            // invalidate only memory whose current contents are in memory or do not matter
            // (DMA buffers they own whole, per fw_cfg's bounce buffers).
            unsafe { core::arch::asm!(concat!("dc ", $op, ", {}"), in(reg) va, options(nostack)) };
            va += line;
        }
        // SAFETY: a barrier; completes the maintenance before what follows (Arm ARM D7.5.9).
        unsafe { core::arch::asm!("dsb sy", options(nostack)) };
    }};
}

#[cfg(target_arch = "aarch64")]
impl Cache for CpuCache {
    fn clean(&mut self, r: Range<u64>) {
        by_va!("cvac", r);
    }
    fn invalidate(&mut self, r: Range<u64>) {
        by_va!("ivac", r);
    }
    fn clean_invalidate(&mut self, r: Range<u64>) {
        by_va!("civac", r);
    }
}

/// A fake that records every operation, for host tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Recorder(pub std::vec::Vec<Op>);

/// One recorded operation.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A clean.
    Clean(Range<u64>),
    /// An invalidate.
    Invalidate(Range<u64>),
    /// A clean and invalidate.
    CleanInvalidate(Range<u64>),
    /// Something else the code under test did, named.
    Event(&'static str),
}

#[cfg(test)]
impl Cache for Recorder {
    fn clean(&mut self, r: Range<u64>) {
        self.0.push(Op::Clean(r));
    }
    fn invalidate(&mut self, r: Range<u64>) {
        self.0.push(Op::Invalidate(r));
    }
    fn clean_invalidate(&mut self, r: Range<u64>) {
        self.0.push(Op::CleanInvalidate(r));
    }
}

#[cfg(target_arch = "aarch64")]
impl reloc::plan::Cache for CpuCache {
    fn clean(&mut self, r: Range<u64>) {
        Cache::clean(self, r);
    }

    fn invalidate_icache(&mut self) {
        // SAFETY: invalidates all instruction caches to PoU (Arm ARM D7.5.9); `dsb` and `isb`
        // complete it before anything runs from the pages just written.
        unsafe { core::arch::asm!("ic iallu", "dsb nsh", "isb", options(nostack)) };
    }
}
