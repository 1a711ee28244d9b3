//! `reloc::plan::Planner`: from destinations to an argument block the engine can run.
//!
//! Input ([`Case::decode`]): the physical address size, up to four RAM banks, protected and
//! busy ranges, the console, up to four segments (a destination and a length of up to
//! 2.5 MiB) and the `Finish` request (entry, registers, EL, MMU, digests, engine size).
//!
//! Checked, on every input:
//! - `Planner::new` (which refuses a console page in RAM or a protected range) and each
//!   `add_segment` accept exactly what their documentation says, and a refusal is the first
//!   documented check that fails;
//! - `stage` refuses only when the free pages (computed here from RAM minus everything
//!   taken) are too few; its runs give each segment exactly its pages, all in RAM, none on
//!   page 0, in a protected or busy range or a destination, none shared;
//! - every page the planner writes, whatever the outcome, is such a free page;
//! - an accepted plan: the block at `args` is the one returned and passes `validate`; the
//!   engine's code is at `engine_entry`; the pages to clean cover everything the planner
//!   wrote and are disjoint from the staging and every destination; the list, walked as the
//!   engine walks it, copies staging page *i* of each segment to its page *i*, reads only
//!   pages in `clean`, and never reads from a page a copy writes (kexec's "safe pages"
//!   rule); the digests are CRC-32C of the staged bytes; with the MMU, the identity map in
//!   `ttbr0` maps every RAM page the engine touches as normal memory (the engine's page
//!   executable and read-only, the rest execute-never) and the console as a device.

use core::ops::Range;

use hypstub_abi::reloc_args::{self, ArgBlock, FLAG_CONSOLE_MINI_UART, FLAG_MMU, FLAG_PSCI_STOP};
use reloc::list;
use reloc::plan::{Finish, Layout, PlanError, Planner, Ready, MAIR, VA_BITS};

use crate::input::{merged, overlaps, Reader, Writer};
use crate::mem::SparseMem;
use crate::seeds::{Inputs, Seeds};

const PAGE: u64 = 4096;
const PA_BITS: [u32; 7] = [32, 36, 40, 42, 44, 48, 52];
const PROTECTED: [&str; 4] = ["protected 0", "protected 1", "protected 2", "protected 3"];
const SEGMENTS: [&str; 4] = ["payload", "initrd", "dtb", "extra"];
/// The longest segment: more than 511 pages, so that a list needs two pages.
const MAX_LEN: u32 = 5 << 19;

/// One planner run, decoded from a fuzz input.
#[derive(Debug, Clone)]
pub struct Case {
    /// The machine.
    pub layout: Layout,
    /// The destinations, in order.
    pub segments: Vec<Range<u64>>,
    /// Where the payload is entered.
    pub entry: u64,
    /// x0..x3.
    pub regs: [u64; 4],
    /// The EL field.
    pub el: u64,
    /// Copy with the MMU on.
    pub mmu: bool,
    /// Digests.
    pub digests: bool,
    /// PSCI stop.
    pub psci_stop: bool,
    /// Bytes of engine code.
    pub engine_len: usize,
}

impl Case {
    /// Decodes an input (every input decodes).
    pub fn decode(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let b = r.u8();
        let pa_bits = if b >= 0xf0 {
            u32::from(b & 0x3f)
        } else {
            PA_BITS[usize::from(b % 7)]
        };
        let ram = (0..r.u8() % 4 + 1).map(|_| r.range()).collect();
        let protected = (0..r.u8() % 5)
            .map(|i| (r.range(), PROTECTED[usize::from(i)]))
            .collect();
        let busy = (0..r.u8() % 5).map(|_| r.range()).collect();
        let console = r.bool().then(|| r.u64());
        let console_mini_uart = r.bool();
        let segments = (0..r.u8() % 4 + 1)
            .map(|_| {
                let start = r.u64();
                start..start.saturating_add(u64::from(r.u32() % MAX_LEN + 1))
            })
            .collect::<Vec<_>>();
        let entry = match r.u8() {
            0 => segments[0].start.saturating_add(u64::from(r.u16() & !3)),
            _ => r.u64(),
        };
        Self {
            layout: Layout {
                ram,
                protected,
                busy,
                console,
                console_mini_uart,
                pa_bits,
            },
            segments,
            entry,
            regs: [r.u64(), r.u64(), r.u64(), r.u64()],
            el: u64::from(r.u8()),
            mmu: r.bool(),
            digests: r.bool(),
            psci_stop: r.bool(),
            engine_len: usize::from(r.u16() % 4098),
        }
    }

    /// Encodes it as [`decode`](Self::decode) reads it (`pa_bits` one of the seven, at most
    /// four of each list, segment lengths up to 2.5 MiB, entry inside the first segment).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let l = &self.layout;
        w.u8(PA_BITS.iter().position(|&b| b == l.pa_bits).unwrap_or(0) as u8);
        w.u8(l.ram.len() as u8 - 1);
        for r in &l.ram {
            w.range(r.clone());
        }
        w.u8(l.protected.len() as u8);
        for (r, _) in &l.protected {
            w.range(r.clone());
        }
        w.u8(l.busy.len() as u8);
        for r in &l.busy {
            w.range(r.clone());
        }
        w.bool(l.console.is_some())
            .u64(l.console.unwrap_or(0))
            .bool(l.console_mini_uart);
        w.u8(self.segments.len() as u8 - 1);
        for s in &self.segments {
            w.u64(s.start).u32((s.end - s.start - 1) as u32);
        }
        w.u8(0).u16((self.entry - self.segments[0].start) as u16);
        for &r in &self.regs {
            w.u64(r);
        }
        w.u8(self.el as u8)
            .bool(self.mmu)
            .bool(self.digests)
            .bool(self.psci_stop);
        w.u16(self.engine_len as u16);
        w.done()
    }
}

fn page_end(end: u64) -> u64 {
    end.div_ceil(PAGE).saturating_mul(PAGE)
}

fn pages(r: &Range<u64>) -> Range<u64> {
    r.start..page_end(r.end)
}

/// Page numbers of `ram` (whole pages) minus `holes` (grown to whole pages) and page 0.
fn free_pages(ram: &[Range<u64>], holes: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut free: Vec<Range<u64>> = ram
        .iter()
        .map(|r| r.start.div_ceil(PAGE)..r.end / PAGE)
        .filter(|r| r.start < r.end)
        .collect();
    let holes = holes
        .iter()
        .map(|h| h.start / PAGE..h.end.div_ceil(PAGE))
        .chain(core::iter::once(0..1));
    for h in holes {
        if h.start >= h.end {
            continue;
        }
        free = free
            .into_iter()
            .flat_map(|r| {
                if !overlaps(&r, &h) {
                    return vec![r];
                }
                [r.start..h.start, h.end..r.end]
                    .into_iter()
                    .filter(|x| x.start < x.end)
                    .collect()
            })
            .collect();
    }
    free
}

/// The pages a table walk from `ttbr0` translates `va` through: the output address and the
/// leaf descriptor (4 KiB granule, 39-bit VA, walks from level 1).
fn translate(mem: &SparseMem, ttbr0: u64, va: u64) -> Option<(u64, u64)> {
    if va >> VA_BITS != 0 {
        return None;
    }
    const OA: u64 = 0x0000_ffff_ffff_f000;
    let mut table = ttbr0;
    for level in 1..=3u32 {
        let shift = 12 + 9 * (3 - level);
        let desc = mem.u64(table + ((va >> shift) & 0x1ff) * 8);
        if desc & 1 == 0 {
            return None;
        }
        if level < 3 && desc & 2 != 0 {
            table = desc & OA;
            continue;
        }
        if level == 3 && desc & 2 == 0 {
            return None;
        }
        let size = 1u64 << shift;
        return Some(((desc & OA & !(size - 1)) + (va & (size - 1)), desc));
    }
    None
}

/// The first check of `add_segment`'s documentation that `dest` fails.
fn add_verdict(
    dest: &Range<u64>,
    ram: &[Range<u64>],
    protected: &[(Range<u64>, &str)],
    added: &[Range<u64>],
) -> Result<(), &'static str> {
    let p = pages(dest);
    if dest.start >= dest.end {
        Err("empty")
    } else if !dest.start.is_multiple_of(PAGE) {
        Err("unaligned")
    } else if dest.start == 0 {
        Err("at zero")
    } else if !ram.iter().any(|b| b.start <= p.start && p.end <= b.end) {
        Err("outside RAM")
    } else if protected.iter().any(|(r, _)| overlaps(r, &p)) {
        Err("protected")
    } else if added.iter().any(|a| overlaps(&pages(a), &p)) {
        Err("overlap")
    } else {
        Ok(())
    }
}

fn add_error_kind(e: &PlanError) -> &'static str {
    match e {
        PlanError::EmptySegment { .. } => "empty",
        PlanError::UnalignedDest { .. } => "unaligned",
        PlanError::DestAtZero { .. } => "at zero",
        PlanError::DestOutsideRam { .. } => "outside RAM",
        PlanError::DestProtected { .. } => "protected",
        PlanError::DestOverlap { .. } => "overlap",
        _ => "other",
    }
}

/// The 8 bytes written at the start of staging page `i` of segment `s`.
fn marker(s: usize, i: u64) -> [u8; 8] {
    (0x5eed_0000_0000_0000 | (s as u64) << 32 | i).to_le_bytes()
}

/// Plans `case`, checking everything on the way; the plan if one was made.
pub fn check(case: &Case) -> Option<(Ready, SparseMem)> {
    let l = &case.layout;
    let new_ok = PA_BITS.contains(&l.pa_bits)
        && l.ram
            .iter()
            .all(|r| r.start <= r.end && r.end <= 1u64 << l.pa_bits.min(63))
        && l.protected.iter().all(|(r, _)| r.start <= r.end)
        && l.busy.iter().all(|r| r.start <= r.end)
        && l.console.is_none_or(|c| {
            let page = c & !0xfff;
            let end = page.saturating_add(4096);
            l.ram
                .iter()
                .chain(l.protected.iter().map(|(r, _)| r))
                .all(|r| r.start >= r.end || r.end <= page || end <= r.start)
        });
    let mut mem = SparseMem::default();
    let planner = Planner::new(l.clone(), &mut mem);
    assert_eq!(
        planner.is_ok(),
        new_ok,
        "Planner::new: {:?}",
        planner.as_ref().err()
    );
    let mut planner = planner.ok()?;
    let ram = merged(&l.ram);

    let mut added: Vec<(usize, Range<u64>)> = Vec::new();
    for (i, dest) in case.segments.iter().enumerate() {
        let others: Vec<Range<u64>> = added.iter().map(|(_, d)| d.clone()).collect();
        let expected = add_verdict(dest, &ram, &l.protected, &others);
        match planner.add_segment(SEGMENTS[i], dest.clone()) {
            Ok(index) => {
                assert_eq!(expected, Ok(()), "add_segment accepted {dest:#x?}");
                assert_eq!(index, added.len());
                added.push((i, dest.clone()));
            }
            Err(e) => assert_eq!(Err(add_error_kind(&e)), expected, "{e}"),
        }
    }
    if added.is_empty() {
        return None;
    }
    let dests: Vec<Range<u64>> = added.iter().map(|(_, d)| pages(d)).collect();
    let mut holes: Vec<Range<u64>> = l.protected.iter().map(|(r, _)| r.clone()).collect();
    holes.extend(l.busy.iter().cloned());
    holes.extend(dests.iter().cloned());
    let free = free_pages(&ram, &holes);
    let free_count: u64 = free.iter().map(|r| r.end - r.start).sum();
    let is_free = |p: u64| free.iter().any(|r| r.contains(&(p / PAGE)));
    let needed: u64 = dests.iter().map(|d| (d.end - d.start) / PAGE).sum();

    let runs = match planner.stage() {
        Ok(runs) => {
            assert!(
                needed <= free_count,
                "staged {needed} pages with {free_count} free"
            );
            runs
        }
        Err(e) => {
            assert!(
                matches!(e, PlanError::TooLarge { .. }) && needed > free_count,
                "stage: {e} ({needed} pages needed, {free_count} free)"
            );
            return None;
        }
    };
    assert_eq!(runs.len(), added.len());
    let mut staged: Vec<u64> = Vec::new();
    for (runs, dest) in runs.iter().zip(&dests) {
        let mut n = 0;
        for r in runs {
            assert!(
                r.start % PAGE == 0 && r.end % PAGE == 0 && r.start < r.end,
                "{r:#x?}"
            );
            for p in r.clone().step_by(PAGE as usize) {
                assert!(is_free(p), "staging page {p:#x} is not free");
                staged.push(p);
            }
            n += (r.end - r.start) / PAGE;
        }
        assert_eq!(
            n,
            (dest.end - dest.start) / PAGE,
            "a segment's staging is not its size"
        );
    }
    let mut sorted = staged.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), staged.len(), "a staging page is given twice");
    for (s, runs) in runs.iter().enumerate() {
        for (i, p) in runs
            .iter()
            .flat_map(|r| r.clone().step_by(PAGE as usize))
            .enumerate()
        {
            planner.memory_mut().write(p, &marker(s, i as u64));
        }
    }
    let staged_set: std::collections::BTreeSet<u64> = staged.iter().copied().collect();

    let engine: Vec<u8> = (0..case.engine_len).map(|i| (i * 7 + 1) as u8).collect();
    let req = Finish {
        entry: case.entry,
        regs: case.regs,
        el: case.el,
        mmu: case.mmu,
        digests: case.digests,
        psci_stop: case.psci_stop,
        engine: &engine,
    };
    let ready = match planner.finish(req) {
        Ok(ready) => ready,
        Err(e) => {
            for p in mem.written().filter(|p| !staged_set.contains(p)) {
                assert!(
                    is_free(p),
                    "after {e}: the planner wrote page {p:#x}, which is not free"
                );
            }
            let valid = reloc_args::validate(&ArgBlock {
                entry: case.entry,
                el: case.el,
                ..ArgBlock::new()
            });
            let inside = added.iter().any(|(_, d)| d.contains(&case.entry));
            match &e {
                PlanError::Args(a) => assert_eq!(valid, Err(*a)),
                PlanError::EntryOutside { .. } => assert!(valid.is_ok() && !inside),
                PlanError::EngineSize { len } => assert!(*len == 0 || *len > 4096),
                PlanError::AboveVaLimit { .. } => assert!(case.mmu),
                PlanError::OutOfPages { .. } | PlanError::TablesExhausted { .. } => {}
                other => panic!("finish: unexpected {other}"),
            }
            return None;
        }
    };
    check_ready(case, &ready, &mem, &added, &staged_set, &is_free, &engine);
    Some((ready, mem))
}

/// What `finish` promises of an accepted plan.
fn check_ready(
    case: &Case,
    ready: &Ready,
    mem: &SparseMem,
    added: &[(usize, Range<u64>)],
    staged: &std::collections::BTreeSet<u64>,
    is_free: &dyn Fn(u64) -> bool,
    engine: &[u8],
) {
    assert!(reloc_args::validate(&ready.block).is_ok());
    let raw: [u8; 128] = mem.read(ready.args, 128).try_into().unwrap_or([0; 128]);
    assert_eq!(
        ArgBlock::from_bytes(&raw),
        ready.block,
        "the block in memory differs"
    );
    let b = &ready.block;
    assert_eq!((b.entry, b.regs, b.el), (case.entry, case.regs, case.el));
    assert_eq!(b.flags & FLAG_MMU != 0, case.mmu);
    assert_eq!(b.flags & FLAG_PSCI_STOP != 0, case.psci_stop);
    let mini = case.layout.console_mini_uart && case.layout.console.is_some();
    assert_eq!(b.flags & FLAG_CONSOLE_MINI_UART != 0, mini);
    assert_eq!(b.console, case.layout.console.unwrap_or(0));
    assert_eq!(mem.read(ready.engine_entry, engine.len()), engine);

    let clean_pages: Vec<u64> = ready
        .clean
        .iter()
        .flat_map(|r| {
            assert!(r.start % PAGE == 0 && r.end % PAGE == 0);
            r.clone().step_by(PAGE as usize)
        })
        .collect();
    let in_clean = |p: u64| ready.clean.iter().any(|r| r.contains(&p));
    assert!(in_clean(ready.engine_entry) && in_clean(ready.args));
    for &p in &clean_pages {
        assert!(
            is_free(p) && !staged.contains(&p),
            "page {p:#x} to clean is not a free page"
        );
    }
    for p in mem.written().filter(|p| !staged.contains(p)) {
        assert!(
            in_clean(p),
            "the planner wrote page {p:#x} but does not clean it"
        );
    }
    let mut all = clean_pages.clone();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        clean_pages.len(),
        "a page to clean is listed twice"
    );
    let staging: Vec<u64> = ready
        .staging
        .iter()
        .flat_map(|r| r.clone().step_by(PAGE as usize))
        .collect();
    assert_eq!(
        staging
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        *staged
    );

    // The list, as the engine reads it.
    let mut expected = Vec::new();
    let mut at = ready
        .staging
        .iter()
        .flat_map(|r| r.clone().step_by(PAGE as usize));
    for (_, d) in added {
        for p in pages(d).step_by(PAGE as usize) {
            expected.push((p, at.next().unwrap_or(0)));
        }
    }
    let reads = {
        mem.record_reads(true);
        let walk = list::walk(mem, b.head, usize::MAX >> 1);
        assert!(
            walk.as_ref() == Ok(&expected),
            "the list does not make the planned copies"
        );
        mem.record_reads(false);
        mem.take_reads()
    };
    let dests: Vec<Range<u64>> = added.iter().map(|(_, d)| pages(d)).collect();
    for p in reads {
        assert!(
            in_clean(p),
            "the list is read from page {p:#x}, which is not cleaned"
        );
        assert!(
            dests.iter().all(|d| !d.contains(&p)),
            "list page {p:#x} in a destination"
        );
    }
    for (d, s) in &expected {
        assert!(dests.iter().any(|x| x.contains(d)));
        assert!(
            dests.iter().all(|x| !x.contains(s)),
            "source {s:#x} lies in a destination"
        );
        let i = (d - dests.iter().find(|x| x.contains(d)).map_or(0, |x| x.start)) / PAGE;
        let seg = dests.iter().position(|x| x.contains(d)).unwrap_or(0);
        assert_eq!(
            mem.read(*s, 8),
            marker(seg, i),
            "copy {d:#x} <- {s:#x} takes another page"
        );
    }

    // Digests.
    if case.digests {
        assert_eq!(b.digest_count, added.len() as u64);
        assert!(in_clean(b.digests));
        for (k, (_, d)) in added.iter().enumerate() {
            let at = b.digests + 24 * k as u64;
            let (start, len, hash) = (mem.u64(at), mem.u64(at + 8), mem.u64(at + 16));
            assert_eq!((start, len), (d.start, d.end - d.start));
            let mut bytes = Vec::with_capacity(len as usize);
            let mut left = len;
            for p in ready
                .staging
                .iter()
                .flat_map(|r| r.clone().step_by(PAGE as usize))
                .skip(
                    dests[..k]
                        .iter()
                        .map(|x| ((x.end - x.start) / PAGE) as usize)
                        .sum(),
                )
            {
                if left == 0 {
                    break;
                }
                let n = left.min(PAGE);
                bytes.extend_from_slice(&mem.read(p, n as usize));
                left -= n;
            }
            let want = reloc::digest::hash64(&bytes);
            assert_eq!(hash, want, "digest of segment {k}");
        }
    } else {
        assert_eq!((b.digests, b.digest_count), (0, 0));
    }

    // The identity map.
    if !case.mmu {
        assert_eq!((b.ttbr0, b.tcr, b.mair), (0, 0, 0));
        return;
    }
    assert!(
        in_clean(b.ttbr0),
        "ttbr0 {:#x} is not a cleaned table page",
        b.ttbr0
    );
    assert_eq!(Some(b.tcr), reloc::plan::tcr(case.layout.pa_bits));
    assert_eq!(b.mair, MAIR);
    let normal = |p: u64, code: bool| {
        let Some((pa, desc)) = translate(mem, b.ttbr0, p) else {
            panic!("page {p:#x} is not mapped");
        };
        assert_eq!(pa, p, "page {p:#x} is not identity mapped");
        assert_eq!((desc >> 2) & 7, 1, "page {p:#x} is not normal memory");
        assert_eq!(
            desc & (1 << 54) == 0,
            code,
            "page {p:#x}: execute permission"
        );
        if code {
            assert_ne!(desc & (1 << 7), 0, "the engine's page is writable");
        } else {
            assert_eq!(desc & (1 << 7), 0, "page {p:#x} is read-only");
        }
    };
    normal(ready.engine_entry, true);
    for &p in clean_pages.iter().filter(|&&p| p != ready.engine_entry) {
        normal(p, false);
    }
    for r in ready.staging.iter().chain(&dests) {
        normal(r.start, false);
        normal(r.end - PAGE, false);
    }
    if let Some(c) = case.layout.console {
        let (pa, desc) = translate(mem, b.ttbr0, c).expect("the console is not mapped");
        assert_eq!(pa, c);
        assert_eq!((desc >> 2) & 7, 0, "the console is not device memory");
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    check(&Case::decode(data));
}

/// The layouts the firmware plans on QEMU virt (1 GiB; a demo-sized and a 2.5 MiB kernel,
/// initrd, DTB, at EL2 and EL1) and the Raspberry Pi 4 (two banks, the spin table, the
/// mini-UART).
pub fn real_cases() -> Vec<(String, Case)> {
    let virt = |el1: bool, mmu: bool, kernel: u64| Case {
        layout: Layout {
            ram: vec![0x4000_0000..0x8000_0000],
            protected: if el1 {
                vec![(0x4010_0000..0x4012_0000, PROTECTED[0])]
            } else {
                vec![]
            },
            busy: vec![
                0x4000_0000..0x4010_0000,
                0x4012_0000..0x4020_0000,
                0x4020_0000..0x4020_0000 + kernel,
            ],
            console: Some(0x0900_0000),
            console_mini_uart: false,
            pa_bits: 40,
        },
        segments: vec![
            0x4020_0000..0x4020_0000 + kernel,
            0x4060_0000..0x4062_0000,
            0x4070_0000..0x4070_2000,
        ],
        entry: 0x4020_0000,
        regs: [0x4070_0000, 0, 0, 0],
        el: if el1 { 1 } else { 2 },
        mmu,
        digests: true,
        psci_stop: true,
        engine_len: 1200,
    };
    let pi = Case {
        layout: Layout {
            ram: vec![0..0x3b40_0000, 0x4000_0000..0x8000_0000],
            protected: vec![(0..0x1000, PROTECTED[0]), (0x2000..0x2_2000, PROTECTED[1])],
            busy: vec![0x2_2000..0x20_0000, 0x0800_0000..0x0801_0000],
            console: Some(0xfe21_5040),
            console_mini_uart: true,
            pa_bits: 40,
        },
        segments: vec![0x20_0000..0x22_8000, 0x2000_0000..0x2000_3000],
        entry: 0x20_0000,
        regs: [0x2000_0000, 0, 0, 0],
        el: 2,
        mmu: true,
        digests: true,
        psci_stop: false,
        engine_len: 1200,
    };
    vec![
        ("virt-el2".into(), virt(false, true, 0x2d8)),
        ("virt-el1".into(), virt(true, true, 0x28_0000)),
        ("virt-nommu".into(), virt(false, false, 0x1_0000)),
        ("rpi4".into(), pi),
    ]
}

/// [`real_cases`], planned: name, plan and memory.
pub fn real_plans() -> Vec<(String, Ready, SparseMem)> {
    real_cases()
        .into_iter()
        .filter_map(|(name, case)| check(&case).map(|(ready, mem)| (name, ready, mem)))
        .collect()
}

/// [`real_cases`], encoded.
pub fn seeds(_: &Inputs) -> Seeds {
    real_cases()
        .into_iter()
        .map(|(n, c)| (n, c.encode()))
        .collect()
}
