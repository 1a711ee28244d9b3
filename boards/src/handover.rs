//! The end of every board's EL1 stage, the same on each: map all RAM, stage the payload's
//! segments with the relocation planner, finish and clean the plan, and make the point of no
//! return (HVC_SOFT_RESTART); or, on an error before it, say so and stop.

extern crate alloc;

use alloc::vec::Vec;
use core::ops::Range;

use loader::options::{CopyMode, El};
#[cfg(target_arch = "aarch64")]
use log::{error, info};
#[cfg(target_arch = "aarch64")]
use reloc::plan::{Finish, Layout, Planner};

#[cfg(target_arch = "aarch64")]
use crate::boot::copy_into;
#[cfg(target_arch = "aarch64")]
use crate::el1::{self, cache::CpuCache, IdentityMemory};
use crate::error::BootError;
#[cfg(target_arch = "aarch64")]
use crate::flow::Written;

/// Where a segment's bytes come from.
pub enum Bytes<'a> {
    /// These bytes, which the CPU copies into the staging pages (and which are then cleaned).
    Copy(&'a [u8]),
    /// A device fills the staging pages itself (fw_cfg DMA), through the `load` callback of
    /// `relocate`, with its own cache maintenance; or, with [`PayloadEntry::in_place`] and
    /// a destination clear of the firmware's RAM, the destination itself (no staging, no
    /// copy: the engine only checks its digest).
    Device,
}

/// One part of the payload: a name for messages, its destination, its bytes.
pub struct Segment<'a> {
    /// "payload", "initrd", "dtb".
    pub name: &'static str,
    /// Where the engine copies it.
    pub dest: Range<u64>,
    /// Its bytes.
    pub bytes: Bytes<'a>,
}

/// How to enter the payload.
pub struct PayloadEntry {
    /// Its entry point (inside the first segment's destination).
    pub pc: u64,
    /// x0..x3.
    pub regs: [u64; 4],
    /// The EL to enter it at (`hypstub.el`).
    pub el: El,
    /// `hypstub.copy`.
    pub copy: CopyMode,
    /// `hypstub.verify`.
    pub verify: bool,
    /// `hypstub.inplace`: a [`Bytes::Device`] segment whose destination the planner finds
    /// clear of the firmware's RAM is loaded straight into it
    /// ([`reloc::plan::Planner::add_segment_in_place`]).
    pub in_place: bool,
    /// The engine may power off with PSCI on a failure (the platform has PSCI).
    pub psci_stop: bool,
}

/// Fills a [`Bytes::Device`] segment: given the segment's index and its staging runs.
pub type Load<'a> = dyn FnMut(usize, &[Range<u64>]) -> Result<(), BootError> + 'a;

/// Test images only: changes staged pages after planning (given the first segment's runs)
/// and adds what it wrote to the ranges to clean.
pub type Tamper = dyn Fn(&[Range<u64>], &mut Vec<Range<u64>>);

/// What the point of no return needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The engine's entry (HVC_SOFT_RESTART x1).
    pub engine: u64,
    /// The argument block (x2).
    pub args: u64,
    /// The EL the payload is entered at.
    pub el: El,
    /// The RAM banks the stub is told of (`HYPSTUB_ADD_RAM`) before the hand-off.
    pub ram: Vec<Range<u64>>,
}

#[cfg(target_arch = "aarch64")]
/// Stages `segments` with a planner over `layout`, fills them (`load` for
/// [`Bytes::Device`] segments, given the segment's index and its staging runs, or its
/// destination when it is loaded in place), finishes the plan and cleans everything the
/// engine reads to PoC. `tamper`, for test images only, may
/// change staged pages after planning (it adds what it wrote to the list to clean).
///
/// # Errors
/// The planner's, or `load`'s.
pub fn relocate(
    layout: Layout,
    segments: &[Segment<'_>],
    entry: &PayloadEntry,
    load: &mut Load<'_>,
    tamper: Option<&Tamper>,
) -> Result<Handoff, BootError> {
    let ram = layout.ram.clone();
    // SAFETY: the caller's full map is active (every board maps all RAM before planning);
    // the planner is the only user.
    let mut planner = Planner::new(layout, unsafe { IdentityMemory::new() })?;
    let mut ids = Vec::with_capacity(segments.len());
    for s in segments {
        let direct =
            entry.in_place && matches!(s.bytes, Bytes::Device) && planner.fits_in_place(&s.dest);
        ids.push(match s.bytes {
            _ if direct => planner.add_segment_in_place(s.name, s.dest.clone())?,
            // Bytes on a page (a FIT's page-aligned external data): the planner lets the
            // engine copy straight from them when nothing is put there first.
            Bytes::Copy(b) if (b.as_ptr() as u64).is_multiple_of(reloc::PAGE_SIZE) => {
                planner.add_segment_from(s.name, s.dest.clone(), b.as_ptr() as u64)?
            }
            _ => planner.add_segment(s.name, s.dest.clone())?,
        });
    }
    let runs = planner.stage()?;
    let mut written: Vec<Range<u64>> = Vec::new();
    let mut from_source = 0;
    for (i, (s, id)) in segments.iter().zip(&ids).enumerate() {
        match s.bytes {
            // Read from where it is by the engine: nothing to copy.
            Bytes::Copy(_) if runs[*id].is_empty() => from_source += s.dest.end - s.dest.start,
            Bytes::Copy(bytes) => {
                // SAFETY: staging runs the planner allocated for this segment.
                unsafe { copy_into(&runs[*id], bytes) };
                written.extend(runs[*id].iter().cloned());
            }
            // Before any CPU write to free RAM (the copies, the planner's pages in
            // `finish`): `Board::load` may rely on the runs having no dirty line.
            Bytes::Device => load(i, &runs[*id])?,
        }
    }
    let ready = planner.finish(Finish {
        entry: entry.pc,
        regs: entry.regs,
        el: el_number(entry.el),
        mmu: entry.copy == CopyMode::Mmu,
        digests: entry.verify,
        psci_stop: entry.psci_stop,
        engine: reloc::engine::code(),
    })?;
    if let (Some(tamper), Some(first)) = (tamper, ids.first()) {
        tamper(&runs[*first], &mut written);
    }
    info!(
        "reloc: {} bytes staged in {} pages; {} list pages, {} page-table pages; engine at {:#x}, argument block at {:#x}; copy with the MMU {}",
        ready.bytes - from_source - ready.in_place.iter().map(|(_, r)| r.end - r.start).sum::<u64>(),
        ready.staging_pages,
        ready.list_pages,
        ready.table_pages,
        ready.engine_entry,
        ready.args,
        if entry.copy == CopyMode::Mmu { "and caches on" } else { "off" }
    );
    for (name, r) in &ready.from_source {
        info!(
            "reloc: {name} not staged: the engine copies it from {:#x}..{:#x}, where it is",
            r.start, r.end
        );
    }
    if entry.copy != CopyMode::Mmu {
        // The engine reads them with its MMU off, from memory: whatever this CPU wrote
        // there (a DTB, a demo payload in the heap) must have reached it.
        written.extend(ready.from_source.iter().map(|(_, r)| r.clone()));
    }
    for (name, r) in &ready.in_place {
        info!(
            "reloc: {name} loaded in place at {:#x}..{:#x}: not staged, not copied; the engine checks its digest",
            r.start, r.end
        );
    }
    #[cfg(feature = "test-skip-args-clean")]
    let ready = skip_args_clean(ready);
    // What the engine reads with its MMU off, or copies, must be in memory.
    #[cfg(not(feature = "test-skip-icache-invalidate"))]
    reloc::plan::clean_for_engine(&ready, &written, &mut CpuCache);
    #[cfg(feature = "test-skip-icache-invalidate")]
    reloc::plan::clean_for_engine(&ready, &written, &mut NoIcacheInvalidate);
    Ok(Handoff {
        engine: ready.engine_entry,
        args: ready.args,
        el: entry.el,
        ram,
    })
}

/// The `test-skip-icache-invalidate` mutant: the CPU's cache maintenance without the
/// instruction-cache invalidate after the engine's page was written as data.
#[cfg(feature = "test-skip-icache-invalidate")]
struct NoIcacheInvalidate;

#[cfg(feature = "test-skip-icache-invalidate")]
impl reloc::plan::Cache for NoIcacheInvalidate {
    fn clean(&mut self, r: Range<u64>) {
        reloc::plan::Cache::clean(&mut CpuCache, r);
    }

    fn invalidate_icache(&mut self) {
        log::warn!("test-skip-icache-invalidate: the I-cache is not invalidated");
    }
}

/// The `test-skip-args-clean` mutant: `ready` with the argument block's page taken out of
/// the ranges cleaned before the HVC (QEMU has no caches, so only `cargo xtask
/// cachecheck` can tell).
#[cfg(feature = "test-skip-args-clean")]
fn skip_args_clean(mut ready: reloc::plan::Ready) -> reloc::plan::Ready {
    let page = ready.args & !0xfff..(ready.args & !0xfff) + 0x1000;
    let mut kept = Vec::with_capacity(ready.clean.len() + 1);
    for r in ready.clean.drain(..) {
        if r.end <= page.start || r.start >= page.end {
            kept.push(r);
            continue;
        }
        if r.start < page.start {
            kept.push(r.start..page.start);
        }
        if r.end > page.end {
            kept.push(page.end..r.end);
        }
    }
    ready.clean = kept;
    log::warn!("test-skip-args-clean: the argument block's page is not cleaned");
    ready
}

#[cfg(target_arch = "aarch64")]
/// Maps every RAM bank as data (minus `holes`), `code` as read-only executable and
/// `devices` as Device memory with `aarch64-paging`, and switches to that map: the
/// relocation writes anywhere in RAM, which the early tables do not all cover.
///
/// # Errors
/// A range the map cannot hold.
pub fn map_all_ram(
    ram: &[Range<u64>],
    holes: &[Range<u64>],
    code: &Range<u64>,
    devices: &Range<u64>,
) -> Result<(), BootError> {
    let map = el1::map::build(ram, holes, code, devices)?;
    let root = map.root_address().0 as u64;
    // The tables must outlive the EL1 stage; an active aarch64-paging map must never be
    // dropped.
    core::mem::forget(map);
    // SAFETY: the new map covers everything the early one did that is still used (code,
    // devices, the EL1 stage's RAM, the DTB, the payload) with the same attributes, so
    // execution continues unchanged.
    unsafe { el1::hypstub_el1_switch_tables(root, el1::map::TCR_EL1) };
    info!("el1: all RAM mapped (tables at {root:#x})");
    Ok(())
}

/// 1 or 2, as the argument block and the console say it.
#[must_use]
pub fn el_number(el: El) -> u64 {
    match el {
        El::One => 1,
        El::Two => 2,
    }
}

#[cfg(target_arch = "aarch64")]
/// The point of no return: cleans and invalidates `written` (the EL1 stage's RAM and
/// whatever else it wrote that a destination may cover) to PoC, then HVC_SOFT_RESTART runs
/// the engine at EL2 with x0 = the block. Returns only if the stub refuses; then `stop`.
pub fn enter(h: &Handoff, written: &Written, stop: fn() -> !) -> ! {
    info!(
        "payload: entering at EL{} through the engine{}",
        el_number(h.el),
        if h.el == El::One {
            "; the stub stays at EL2"
        } else {
            ""
        }
    );
    info!(
        "reloc: HVC_SOFT_RESTART to the engine at {:#x} with the block at {:#x}",
        h.engine, h.args
    );
    tell_stub_ram(&h.ram, stop);
    let (a, b) = (&written.stage, &written.work);
    // SAFETY: the plan is checked and cleaned to PoC; the ranges are mapped as data (the
    // caller's); on success this never returns.
    let r =
        unsafe { el1::hypstub_el1_soft_restart(h.engine, h.args, a.start, a.end, b.start, b.end) };
    // Only a refused call returns (the stub checks the entry).
    error!(
        "reloc: the stub refused HVC_SOFT_RESTART to {:#x} (x0 = {r:#x})",
        h.engine
    );
    stop()
}

#[cfg(target_arch = "aarch64")]
/// Tells the stub every RAM bank (`HYPSTUB_ADD_RAM`, docs/hyp-abi.md), so that it can refuse
/// a vector table or entry point outside RAM; the stub accepts these only before the
/// hand-off. A refusal stops here, before the point of no return (its console line says why).
fn tell_stub_ram(ram: &[Range<u64>], stop: fn() -> !) {
    for bank in ram {
        let mut args = [0u64; 17];
        args[0] = bank.start;
        args[1] = bank.end - bank.start;
        let r = smccc::hvc64(el2_stub::abi::HYPSTUB_ADD_RAM, args)[0];
        if r != 0 {
            error!(
                "hypstub: the stub refused RAM bank {:#x}..{:#x} (x0 = {r:#x}); stopping: nothing was loaded",
                bank.start, bank.end
            );
            stop();
        }
    }
}

#[cfg(target_arch = "aarch64")]
/// An error before the point of no return: say it, say that nothing was loaded, `stop`.
pub fn stop_with(e: &BootError, stop: fn() -> !) -> ! {
    error!("{e}");
    error!("hypstub: stopping: nothing was loaded; fix the above and boot again");
    stop()
}
