//! The planner against realistic layouts, through its public API only: every validation
//! error, where pages go, the list, the digests, the EL2 identity map as written to memory,
//! and the cache maintenance before the HVC.

// Layouts are lists of ranges, and one RAM bank or one busy range is the common case.
#![allow(clippy::single_range_in_vec_init)]

use std::ops::Range;

use reloc::args::{self, ArgBlock, FLAG_MMU, FLAG_PSCI_STOP};
use reloc::digest::hash64;
use reloc::list::{self, IND_DONE, IND_INDIRECTION};
use reloc::mem::{FakeMemory, Memory};
use reloc::plan::{clean_for_engine, Cache, Finish, Layout, PlanError, Planner, Ready};
use reloc::PAGE_SIZE;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// QEMU virt with 1 GiB: RAM at 0x4000_0000, the DTB at its start, the stub's resident RAM
/// at its top, and the EL1 stage just below it.
fn virt_1g() -> Layout {
    Layout {
        ram: vec![0x4000_0000..0x8000_0000],
        protected: vec![
            (0x4000_0000..0x4010_0000, "DTB"),
            (0x7fe0_0000..0x7fe4_0000, "EL2 stub"),
        ],
        busy: vec![0x7f00_0000..0x7fe0_0000],
        console: Some(0x0900_0000),
        console_mini_uart: false,
        pa_bits: 40,
    }
}

/// Memory covering every RAM bank of `layout`.
fn fake(layout: &Layout) -> FakeMemory {
    let lo = layout.ram.iter().map(|r| r.start).min().unwrap_or(0);
    let hi = layout.ram.iter().map(|r| r.end).max().unwrap_or(0);
    FakeMemory::new(lo..hi)
}

/// A few `nop`s and a `b .`: the engine's code is opaque to the planner.
const ENGINE: [u8; 12] = [
    0x1f, 0x20, 0x03, 0xd5, 0x1f, 0x20, 0x03, 0xd5, 0x00, 0x00, 0x00, 0x14,
];

fn req(entry: u64) -> Finish<'static> {
    Finish {
        entry,
        regs: [0x4000_0000, 0, 0, 0],
        el: 2,
        mmu: true,
        digests: true,
        psci_stop: true,
        engine: &ENGINE,
    }
}

/// Plans `segments` in `layout` up to `finish`.
fn plan(
    layout: Layout,
    segments: &[(&'static str, Range<u64>)],
    finish: impl FnOnce(u64) -> Finish<'static>,
) -> Result<(Ready, FakeMemory), PlanError> {
    let mut mem = fake(&layout);
    let mut p = Planner::new(layout, &mut mem)?;
    for (name, dest) in segments {
        p.add_segment(name, dest.clone())?;
    }
    p.stage()?;
    let ready = p.finish(finish(segments[0].1.start))?;
    Ok((ready, mem))
}

fn add_err(layout: Layout, segments: &[(&'static str, Range<u64>)]) -> PlanError {
    let mut mem = fake(&layout);
    let mut p = Planner::new(layout, &mut mem).unwrap();
    let (last, first) = segments.split_last().unwrap();
    for (name, dest) in first {
        p.add_segment(name, dest.clone()).unwrap();
    }
    p.add_segment(last.0, last.1.clone()).unwrap_err()
}

fn read_u64(mem: &FakeMemory, pa: u64) -> u64 {
    u64::from_le_bytes(mem.bytes(pa, 8).try_into().unwrap())
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

// ---------------------------------------------------------------------------------------
// Validation: one test per error.

#[test]
fn destination_outside_ram() {
    let e = add_err(virt_1g(), &[("kernel", 0x7ff0_0000..0x8010_0000)]);
    assert_eq!(
        e,
        PlanError::DestOutsideRam {
            name: "kernel",
            start: 0x7ff0_0000,
            end: 0x8010_0000
        }
    );
    assert!(e.to_string().contains("0x7ff00000..0x80100000"), "{e}");
    // The last page counts whole: one byte into the next page is one page too far.
    let e = add_err(virt_1g(), &[("initrd", 0x7fff_f000..0x8000_0001)]);
    assert!(matches!(
        e,
        PlanError::DestOutsideRam {
            end: 0x8000_1000,
            ..
        }
    ));
    // Below RAM.
    let e = add_err(virt_1g(), &[("kernel", 0x3000_0000..0x3010_0000)]);
    assert!(matches!(e, PlanError::DestOutsideRam { .. }));
}

/// Found by the `plan` fuzz target: a console inside RAM had its page mapped as device
/// memory while the same page was RAM the map also calls normal and the pool hands out.
#[test]
fn console_inside_ram_or_protected_is_refused() {
    let layout = Layout {
        ram: vec![0..0x10000],
        protected: vec![],
        busy: vec![],
        console: Some(0x4000),
        ..virt_1g()
    };
    let e = Planner::new(layout, FakeMemory::new(0..0x10000))
        .err()
        .unwrap();
    assert_eq!(
        e,
        PlanError::ConsoleInMemory {
            console: 0x4000,
            what: "RAM bank",
            start: 0,
            end: 0x10000
        }
    );
    let msg = e.to_string();
    assert!(msg.contains("0x4000") && msg.contains("RAM bank"), "{msg}");

    // An unaligned console whose page reaches into the DTB range (not RAM here).
    let layout = Layout {
        protected: vec![(0x0900_0000..0x0900_1000, "DTB")],
        console: Some(0x0900_0040),
        ..virt_1g()
    };
    let e = Planner::new(layout.clone(), fake(&layout)).err().unwrap();
    assert!(
        matches!(e, PlanError::ConsoleInMemory { what: "DTB", .. }),
        "{e}"
    );

    // Next to RAM but not in it is fine.
    let layout = Layout {
        console: Some(0x3fff_f000),
        ..virt_1g()
    };
    assert!(Planner::new(layout.clone(), fake(&layout)).is_ok());
}

#[test]
fn destination_across_two_banks_is_outside_ram() {
    let layout = Layout {
        ram: vec![0x4000_0000..0x5000_0000, 0x6000_0000..0x7000_0000],
        ..virt_1g()
    };
    let e = add_err(layout, &[("kernel", 0x4ff0_0000..0x6010_0000)]);
    assert!(matches!(e, PlanError::DestOutsideRam { .. }));
}

#[test]
fn destination_overlapping_protected_names_it() {
    let e = add_err(virt_1g(), &[("initrd", 0x7fd0_0000..0x7fe0_1000)]);
    assert_eq!(
        e,
        PlanError::DestProtected {
            name: "initrd",
            start: 0x7fd0_0000,
            end: 0x7fe0_1000,
            what: "EL2 stub",
            what_start: 0x7fe0_0000,
            what_end: 0x7fe4_0000
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("EL2 stub") && msg.contains("0x7fe00000"),
        "{msg}"
    );
    // A partial last page that reaches into the DTB's first page is caught too.
    let layout = Layout {
        protected: vec![(0x4400_0800..0x4400_1000, "spin table")],
        ..virt_1g()
    };
    let e = add_err(layout, &[("kernel", 0x4300_0000..0x4400_0001)]);
    assert!(matches!(
        e,
        PlanError::DestProtected {
            what: "spin table",
            ..
        }
    ));
}

#[test]
fn overlapping_destinations() {
    let e = add_err(
        virt_1g(),
        &[
            ("kernel", 0x4020_0000..0x4220_0800),
            ("initrd", 0x4220_0000..0x4300_0000),
        ],
    );
    assert_eq!(
        e,
        PlanError::DestOverlap {
            name: "initrd",
            start: 0x4220_0000,
            end: 0x4300_0000,
            other: "kernel",
            other_start: 0x4020_0000,
            other_end: 0x4220_1000
        }
    );
    assert!(e.to_string().contains("kernel"));
}

#[test]
fn unaligned_destination() {
    let e = add_err(virt_1g(), &[("kernel", 0x4020_0800..0x4030_0000)]);
    assert_eq!(
        e,
        PlanError::UnalignedDest {
            name: "kernel",
            start: 0x4020_0800
        }
    );
    assert!(e.to_string().contains("0x40200800"));
}

#[test]
fn empty_segment() {
    let e = add_err(virt_1g(), &[("initrd", 0x4800_0000..0x4800_0000)]);
    assert_eq!(
        e,
        PlanError::EmptySegment {
            name: "initrd",
            start: 0x4800_0000,
            end: 0x4800_0000
        }
    );
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 0x4800_1000..0x4800_0000;
    let e = add_err(virt_1g(), &[("initrd", reversed)]);
    assert!(matches!(e, PlanError::EmptySegment { .. }));
}

#[test]
fn entry_outside_the_destinations() {
    let segs = [("kernel", 0x4020_0000..0x4220_0000)];
    let e = plan(virt_1g(), &segs, |_| req(0x4220_0000)).unwrap_err();
    assert_eq!(e, PlanError::EntryOutside { entry: 0x4220_0000 });
    assert!(e.to_string().contains("0x42200000"));
    // An entry the engine itself would reject is reported as the engine would.
    let e = plan(virt_1g(), &segs, |_| req(0x4020_0002)).unwrap_err();
    assert_eq!(
        e,
        PlanError::Args(args::ArgError::BadEntry { entry: 0x4020_0002 })
    );
    let e = plan(virt_1g(), &segs, |s| Finish { el: 3, ..req(s) }).unwrap_err();
    assert_eq!(e, PlanError::Args(args::ArgError::BadEl { el: 3 }));
}

#[test]
fn payload_larger_than_free_memory() {
    // 1 GiB of RAM: a 256 MiB segment fits, a 768 MiB one leaves no room for its staging.
    let nodigest = |s| Finish {
        digests: false,
        ..req(s)
    };
    let ok = plan(virt_1g(), &[("initrd", 0x4020_0000..0x5020_0000)], nodigest);
    let (ready, _) = ok.unwrap();
    assert_eq!(ready.staging_pages as u64, 256 * MIB / PAGE_SIZE);

    let e = plan(virt_1g(), &[("initrd", 0x4020_0000..0x7020_0000)], req).unwrap_err();
    // Free: 1 GiB - DTB (1 MiB) - stub (256 KiB) - busy (14 MiB) - 768 MiB.
    let free = GIB - MIB - 256 * 1024 - 14 * MIB - 768 * MIB;
    assert_eq!(
        e,
        PlanError::TooLarge {
            needed: 768 * MIB,
            free
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("0x30000000") && msg.contains(&format!("{free:#x}")),
        "{msg}"
    );

    // A 1.5 GiB segment does not even fit in 1 GiB of RAM; with 2 GiB it fits, but cannot
    // be staged in the half GiB left.
    let big = [("rootfs", 0x4020_0000..0x4020_0000 + 3 * GIB / 2)];
    let e = add_err(virt_1g(), &big);
    assert!(matches!(e, PlanError::DestOutsideRam { .. }));
    let layout = Layout {
        ram: vec![0x4000_0000..0xc000_0000],
        protected: vec![
            (0x4000_0000..0x4010_0000, "DTB"),
            (0xbfe0_0000..0xbfe4_0000, "EL2 stub"),
        ],
        busy: vec![0xbf00_0000..0xbfe0_0000],
        ..virt_1g()
    };
    let e = plan(layout, &big, nodigest).unwrap_err();
    assert_eq!(
        e,
        PlanError::TooLarge {
            needed: 3 * GIB / 2,
            free: GIB / 2 - MIB - 256 * 1024 - 14 * MIB
        }
    );
}

/// A small bank: 16 destination pages, 16 staging pages and `spare` pages more.
fn tight(spare: u64) -> Layout {
    Layout {
        ram: vec![0x4000_0000..0x4000_0000 + (32 + spare) * PAGE_SIZE],
        protected: vec![],
        busy: vec![],
        console: Some(0x0900_0000),
        console_mini_uart: false,
        pa_bits: 40,
    }
}

const TIGHT_SEG: [(&str, Range<u64>); 1] = [("kernel", 0x4000_0000..0x4001_0000)];

#[test]
fn allocation_failure_for_control_list_and_block_pages() {
    let nodigest = |s| Finish {
        digests: false,
        ..req(s)
    };
    let e = plan(tight(0), &TIGHT_SEG, nodigest).unwrap_err();
    assert_eq!(
        e,
        PlanError::OutOfPages {
            what: "control page",
            pages: 1,
            free: 0
        }
    );
    assert!(e.to_string().contains("control page"));
    let e = plan(tight(1), &TIGHT_SEG, nodigest).unwrap_err();
    assert!(matches!(
        e,
        PlanError::OutOfPages {
            what: "page list",
            ..
        }
    ));
    let e = plan(tight(2), &TIGHT_SEG, req).unwrap_err();
    assert!(matches!(
        e,
        PlanError::OutOfPages {
            what: "digest array",
            ..
        }
    ));
    let e = plan(tight(2), &TIGHT_SEG, nodigest).unwrap_err();
    assert!(matches!(
        e,
        PlanError::OutOfPages {
            what: "argument block",
            ..
        }
    ));
}

#[test]
fn tables_exhausted() {
    let nodigest = |s| Finish {
        digests: false,
        ..req(s)
    };
    // Room for the control page, the list and the block, none for tables.
    let e = plan(tight(3), &TIGHT_SEG, nodigest).unwrap_err();
    // Root, then a level 2 and a level 3 table for RAM (not 2 MiB aligned at its end) and
    // the control page, and a level 2 and a level 3 table for the console.
    assert_eq!(e, PlanError::TablesExhausted { tables: 5, got: 0 });
    assert!(e.to_string().contains("5 pages"));
    // Two tables are not enough either; five are.
    let e = plan(tight(5), &TIGHT_SEG, nodigest).unwrap_err();
    assert_eq!(e, PlanError::TablesExhausted { tables: 5, got: 2 });
    let (ready, _) = plan(tight(8), &TIGHT_SEG, nodigest).unwrap();
    assert_eq!(ready.table_pages, 5);
    // Without the MMU no tables are needed.
    let (ready, _) = plan(tight(3), &TIGHT_SEG, |s| Finish {
        mmu: false,
        ..nodigest(s)
    })
    .unwrap();
    assert_eq!(ready.table_pages, 0);
}

#[test]
fn engine_larger_than_a_page() {
    static BIG: [u8; 4097] = [0; 4097];
    let segs = [("kernel", 0x4020_0000..0x4220_0000)];
    let e = plan(virt_1g(), &segs, |s| Finish {
        engine: &BIG,
        ..req(s)
    })
    .unwrap_err();
    assert_eq!(e, PlanError::EngineSize { len: 4097 });
    assert!(e.to_string().contains("4097"));
    let e = plan(virt_1g(), &segs, |s| Finish {
        engine: &[],
        ..req(s)
    })
    .unwrap_err();
    assert_eq!(e, PlanError::EngineSize { len: 0 });
    // Exactly one page is fine.
    assert!(plan(virt_1g(), &segs, |s| Finish {
        engine: &BIG[..4096],
        ..req(s)
    })
    .is_ok());
}

#[test]
fn ram_above_the_39_bit_va() {
    let layout = Layout {
        ram: vec![0x4000_0000..0x8000_0000, 0x80_0000_0000..0x80_4000_0000],
        ..virt_1g()
    };
    let segs = [("kernel", 0x4020_0000..0x4220_0000)];
    let e = plan(layout.clone(), &segs, req).unwrap_err();
    assert_eq!(
        e,
        PlanError::AboveVaLimit {
            what: "RAM bank",
            start: 0x80_0000_0000,
            end: 0x80_4000_0000
        }
    );
    assert!(e.to_string().contains("0x8000000000"), "{e}");
    // With the MMU off the same RAM is fine.
    let (ready, _) = plan(layout, &segs, |s| Finish {
        mmu: false,
        ..req(s)
    })
    .unwrap();
    assert_eq!(ready.block.flags & FLAG_MMU, 0);

    // A console above the limit cannot be mapped either.
    let layout = Layout {
        console: Some(0x90_0000_0000),
        console_mini_uart: false,
        ..virt_1g()
    };
    let e = plan(layout, &segs, req).unwrap_err();
    assert!(matches!(
        e,
        PlanError::AboveVaLimit {
            what: "console",
            ..
        }
    ));
}

#[test]
fn bad_layouts() {
    let mut mem = FakeMemory::new(0..1);
    let l = Layout {
        pa_bits: 39,
        ..virt_1g()
    };
    assert_eq!(
        Planner::new(l, &mut mem).err(),
        Some(PlanError::PaBits { bits: 39 })
    );
    #[allow(clippy::reversed_empty_ranges)]
    let l = Layout {
        protected: vec![(0x5000_0000..0x4000_0000, "DTB")],
        ..virt_1g()
    };
    assert_eq!(
        Planner::new(l, &mut mem).err(),
        Some(PlanError::BadRange {
            what: "DTB",
            start: 0x5000_0000,
            end: 0x4000_0000
        })
    );
    let l = Layout {
        ram: vec![0xff_c000_0000..0x100_4000_0000],
        ..virt_1g()
    };
    assert!(matches!(
        Planner::new(l, &mut mem).err(),
        Some(PlanError::RamBeyondPa { pa_bits: 40, .. })
    ));
}

#[test]
fn calls_out_of_order() {
    let mut mem = fake(&virt_1g());
    let mut p = Planner::new(virt_1g(), &mut mem).unwrap();
    p.add_segment("kernel", 0x4020_0000..0x4220_0000).unwrap();
    p.stage().unwrap();
    assert!(matches!(p.stage(), Err(PlanError::OutOfOrder { .. })));
    assert!(matches!(
        p.add_segment("initrd", 0x4800_0000..0x4900_0000),
        Err(PlanError::OutOfOrder { .. })
    ));
    let mut mem = fake(&virt_1g());
    let p = Planner::new(virt_1g(), &mut mem).unwrap();
    assert!(matches!(
        p.finish(req(0x4020_0000)),
        Err(PlanError::OutOfOrder { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// What a successful plan looks like.

/// A kernel, an initrd whose last page is partial, and a DTB copy.
fn linux_segments() -> [(&'static str, Range<u64>); 3] {
    [
        ("kernel", 0x4020_0000..0x40a0_0000),
        ("initrd", 0x4800_0000..0x4830_0123),
        ("dtb", 0x4400_0000..0x4400_2000),
    ]
}

#[test]
fn list_walks_to_exactly_the_expected_copies() {
    let mut mem = fake(&virt_1g());
    let mut p = Planner::new(virt_1g(), &mut mem).unwrap();
    let segs = linux_segments();
    for (name, dest) in &segs {
        p.add_segment(name, dest.clone()).unwrap();
    }
    let staging = p.stage().unwrap();
    let ready = p.finish(req(0x4020_0000)).unwrap();

    let mut expected = vec![];
    for ((_, dest), runs) in segs.iter().zip(&staging) {
        let pages: Vec<u64> = runs
            .iter()
            .flat_map(|r| r.clone().step_by(PAGE_SIZE as usize))
            .collect();
        assert_eq!(
            pages.len() as u64,
            (dest.end - dest.start).div_ceil(PAGE_SIZE)
        );
        for (i, src) in pages.into_iter().enumerate() {
            expected.push((dest.start + i as u64 * PAGE_SIZE, src));
        }
    }
    assert_eq!(ready.block.head & 0xf, IND_INDIRECTION);
    let walked = list::walk(&mem, ready.block.head, 100_000).unwrap();
    assert_eq!(walked, expected);
    assert_eq!(ready.staging_pages, expected.len());
    assert_eq!(ready.list_pages, list::pages_needed(3 + expected.len()));
    assert_eq!(ready.bytes, 0x80_0000 + 0x30_0123 + 0x2000);
}

#[test]
fn block_control_page_and_flags_are_in_memory() {
    let segs = linux_segments();
    let (ready, mem) = plan(virt_1g(), &segs, req).unwrap();
    let bytes: [u8; 0x80] = mem.bytes(ready.args, 0x80).try_into().unwrap();
    let block = ArgBlock::from_bytes(&bytes);
    assert_eq!(block, ready.block);
    assert_eq!(args::validate(&block), Ok(()));
    assert_eq!(block.entry, 0x4020_0000);
    assert_eq!(block.regs, [0x4000_0000, 0, 0, 0]);
    assert_eq!(block.el, 2);
    assert_eq!(block.flags, FLAG_MMU | FLAG_PSCI_STOP);
    assert_eq!(block.mair, 0xff04);
    assert_eq!(block.tcr, reloc::plan::tcr(40).unwrap());
    assert_eq!(block.console, 0x0900_0000);
    assert_eq!(block.digest_count, 3);
    assert_eq!(mem.bytes(ready.engine_entry, ENGINE.len()), ENGINE);
    assert!(mem
        .bytes(ready.engine_entry + 12, 4084)
        .iter()
        .all(|&b| b == 0));

    let (ready, _) = plan(virt_1g(), &segs, |s| Finish {
        mmu: false,
        digests: false,
        psci_stop: false,
        el: 1,
        ..req(s)
    })
    .unwrap();
    let b = ready.block;
    assert_eq!((b.flags, b.ttbr0, b.tcr, b.mair), (0, 0, 0, 0));
    assert_eq!((b.digests, b.digest_count, b.el), (0, 0, 1));
}

/// Fills `runs` with `data` (the caller's part: DMA or copies) and garbage after it.
fn fill(mem: &mut FakeMemory, runs: &[Range<u64>], data: &[u8]) {
    let mut rest = data;
    for r in runs {
        let n = (rest.len() as u64).min(r.end - r.start) as usize;
        mem.write(r.start, &rest[..n]);
        let tail = vec![0xa5; (r.end - r.start) as usize - n];
        mem.write(r.start + n as u64, &tail);
        rest = &rest[n..];
    }
}

#[test]
fn digest_is_hash64_of_the_segment() {
    let segs = linux_segments();
    let mut mem = fake(&virt_1g());
    let mut p = Planner::new(virt_1g(), &mut mem).unwrap();
    for (name, dest) in &segs {
        p.add_segment(name, dest.clone()).unwrap();
    }
    let staging = p.stage().unwrap();
    let payloads: Vec<Vec<u8>> = segs
        .iter()
        .enumerate()
        .map(|(k, (_, d))| {
            (0..d.end - d.start)
                .map(|i| (i.wrapping_mul(2654435761) >> (k + 3)) as u8)
                .collect()
        })
        .collect();
    for (runs, data) in staging.iter().zip(&payloads) {
        fill(p.memory_mut(), runs, data);
    }
    let ready = p.finish(req(0x4020_0000)).unwrap();
    check_digests(&mem, ready.block.digests, &segs, &payloads);
}

/// The digest array at `at` holds, per segment, its destination, its length and the
/// Hash64 of its bytes.
fn check_digests(
    mem: &FakeMemory,
    at: u64,
    segs: &[(&'static str, Range<u64>)],
    payloads: &[Vec<u8>],
) {
    for (i, ((_, dest), data)) in segs.iter().zip(payloads).enumerate() {
        let d = at + i as u64 * args::offsets::DIGEST_SIZE as u64;
        assert_eq!(
            read_u64(mem, d + args::offsets::DIGEST_START as u64),
            dest.start
        );
        assert_eq!(
            read_u64(mem, d + args::offsets::DIGEST_LEN as u64),
            dest.end - dest.start
        );
        assert_eq!(
            read_u64(mem, d + args::offsets::DIGEST_HASH64 as u64),
            hash64(data),
            "segment {i}"
        );
    }
}

/// One step of a stage 1 walk: the descriptor for `va`, its level, and the output address.
fn translate(mem: &FakeMemory, ttbr0: u64, va: u64) -> Option<(u64, usize, u64)> {
    const OA: u64 = 0x0000_ffff_ffff_f000;
    let mut table = ttbr0;
    for level in 1..=3usize {
        let shift = 12 + 9 * (3 - level);
        let desc = read_u64(mem, table + ((va >> shift) & 511) * 8);
        if desc & 1 == 0 {
            return None;
        }
        if level < 3 && desc & 2 != 0 {
            table = desc & OA;
            continue;
        }
        assert!(level == 3 || desc & 2 == 0);
        let mask = (1u64 << shift) - 1;
        return Some((desc, level, (desc & OA & !mask) | (va & mask)));
    }
    unreachable!()
}

#[test]
fn identity_map_as_written_to_memory() {
    let (ready, mem) = plan(virt_1g(), &linux_segments(), req).unwrap();
    let ttbr0 = ready.block.ttbr0;
    let attr = |d: u64| (d >> 2) & 7;
    let (xn, ro, af, sh) = (1u64 << 54, 1u64 << 7, 1u64 << 10, 3u64 << 8);

    // RAM, including the destinations and the busy range: normal, inner shareable,
    // writable, execute-never, identity.
    for va in [
        0x4000_0000,
        0x4020_0000,
        0x4830_0000,
        0x7f00_0123,
        0x7fff_fff8,
    ] {
        let (d, level, pa) = translate(&mem, ttbr0, va).unwrap();
        assert_eq!(pa, va);
        assert_eq!(attr(d), 1);
        assert_eq!(d & (xn | ro | af | sh), xn | af | sh, "{va:#x}: {d:#x}");
        assert!(level <= 3);
    }
    // Far from the control page, RAM is mapped with 2 MiB blocks or larger.
    let far = if ready.engine_entry < 0x6000_0000 {
        0x7000_0000
    } else {
        0x4800_0000
    };
    assert!(translate(&mem, ttbr0, far).unwrap().1 <= 2);
    // The control page: read-only, executable.
    let (d, level, pa) = translate(&mem, ttbr0, ready.engine_entry + 8).unwrap();
    assert_eq!((pa, level, attr(d)), (ready.engine_entry + 8, 3, 1));
    assert_eq!(d & (xn | ro), ro);
    // The console: device, execute-never.
    let (d, level, pa) = translate(&mem, ttbr0, 0x0900_0018).unwrap();
    assert_eq!((pa, level, attr(d)), (0x0900_0018, 3, 0));
    assert_eq!(d & xn, xn);
    // Nothing else.
    for va in [
        0,
        0x0800_0000,
        0x0900_1000,
        0x3fff_f000,
        0x8000_0000,
        0x40_0000_0000,
    ] {
        assert_eq!(translate(&mem, ttbr0, va), None, "{va:#x}");
    }
}

#[test]
fn table_overhead_is_independent_of_payload_size() {
    let small = plan(virt_1g(), &[("initrd", 0x4800_0000..0x4900_0000)], req).unwrap();
    let large = plan(virt_1g(), &[("initrd", 0x4800_0000..0x5800_0000)], |s| {
        Finish {
            digests: false,
            ..req(s)
        }
    })
    .unwrap();
    assert_eq!(small.0.staging_pages, 4096);
    assert_eq!(large.0.staging_pages, 65536);
    assert_eq!(small.0.table_pages, large.0.table_pages);
    // Root; level 2 and 3 around the control page; level 2 and 3 for the console.
    assert_eq!(large.0.table_pages, 5);
    // Staging runs are few and long: 256 MiB in at most a handful of runs.
    assert!(large.0.staging.len() <= 4, "{:?}", large.0.staging);
}

/// Every page the engine reads, found the way the engine finds it: the control page, the
/// list pages (following the IND_INDIRECTION links), the digest array, the tables (walking
/// from TTBR0) and the block.
fn engine_reads(ready: &Ready, mem: &FakeMemory) -> Vec<u64> {
    let mut pages = vec![ready.engine_entry, ready.args];
    // The head is an IND_INDIRECTION; each list page ends in one, or holds IND_DONE.
    let mut entry = ready.block.head;
    while entry & 0xf == IND_INDIRECTION {
        let page = entry & !0xfff;
        pages.push(page);
        entry = (0..512)
            .map(|i| read_u64(mem, page + i * 8))
            .find(|e| e & 0xf == IND_INDIRECTION || e & 0xf == IND_DONE)
            .expect("a list page with neither a link nor the end");
    }
    assert_eq!(entry & 0xf, IND_DONE);
    let b = &ready.block;
    let digest_end = b.digests + b.digest_count * args::offsets::DIGEST_SIZE as u64;
    pages.extend(
        (b.digests..digest_end)
            .step_by(PAGE_SIZE as usize)
            .map(|a| a & !0xfff),
    );
    if b.ttbr0 != 0 {
        let mut tables = vec![(b.ttbr0, 1)];
        while let Some((t, level)) = tables.pop() {
            pages.push(t);
            if level < 3 {
                for i in 0..512 {
                    let d = read_u64(mem, t + i * 8);
                    if d & 3 == 3 {
                        tables.push((d & 0x0000_ffff_ffff_f000, level + 1));
                    }
                }
            }
        }
    }
    pages
}

/// A small deterministic generator for the layouts below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A layout with one to three RAM banks, a few protected and busy ranges, and segments
/// inside the banks, one of them covering a busy range (the EL1 stage's own RAM).
fn random_case(rng: &mut Rng) -> (Layout, Vec<(&'static str, Range<u64>)>) {
    const NAMES: [&str; 6] = ["kernel", "initrd", "dtb", "blob", "rootfs", "extra"];
    let mut ram = vec![];
    let mut base = 0x4000_0000 + rng.below(4) * 0x1000_0000;
    for _ in 0..1 + rng.below(3) {
        let size = (16 + rng.below(112)) * MIB + rng.below(256) * PAGE_SIZE;
        ram.push(base..base + size);
        base += size + (1 + rng.below(64)) * MIB;
    }
    let pick = |rng: &mut Rng, max: u64| {
        let bank = &ram[rng.below(ram.len() as u64) as usize];
        let len = 1 + rng.below(max);
        let start = bank.start + rng.below((bank.end - bank.start) / PAGE_SIZE) * PAGE_SIZE;
        start..(start + len).min(bank.end)
    };
    let protected: Vec<(Range<u64>, &'static str)> = (0..rng.below(4))
        .map(|i| {
            (
                pick(rng, 2 * MIB),
                ["DTB", "stub", "spin table"][i as usize % 3],
            )
        })
        .collect();
    let busy: Vec<Range<u64>> = (0..1 + rng.below(3)).map(|_| pick(rng, 4 * MIB)).collect();
    let mut segs = vec![];
    // The first segment covers the first busy range, when the protected ranges allow.
    let b = &busy[0];
    let around = (b.start & !(2 * MIB - 1))
        .max(ram.iter().find(|r| r.contains(&b.start)).unwrap().start)..b.end;
    segs.push(("el1-stage", around));
    for i in 0..rng.below(5) {
        let r = pick(rng, 8 * MIB);
        segs.push((NAMES[i as usize], r.start & !0xfff..r.end));
    }
    let layout = Layout {
        ram,
        protected,
        busy,
        console: Some(0x0900_0000),
        console_mini_uart: false,
        pa_bits: 40,
    };
    (layout, segs)
}

#[test]
fn engine_pages_never_lie_in_destinations_busy_or_protected_ranges() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut planned = 0;
    let mut covered_busy = 0;
    for case in 0..60 {
        let (layout, segs) = random_case(&mut rng);
        let mut mem = fake(&layout);
        let mut p = Planner::new(layout.clone(), &mut mem).unwrap();
        let mut dests = vec![];
        for (name, dest) in &segs {
            // Random segments may collide; the planner's refusals are tested above.
            if p.add_segment(name, dest.clone()).is_ok() {
                dests.push(dest.start..dest.end.div_ceil(PAGE_SIZE) * PAGE_SIZE);
            }
        }
        let Some(first) = dests.first().cloned() else {
            continue;
        };
        if p.stage().is_err() {
            continue;
        }
        let mmu = case % 3 != 0;
        let ready = match p.finish(Finish {
            mmu,
            digests: case % 2 == 0,
            ..req(first.start)
        }) {
            Ok(r) => r,
            Err(PlanError::OutOfPages { .. } | PlanError::TablesExhausted { .. }) => continue,
            Err(e) => panic!("case {case}: {e}"),
        };
        planned += 1;
        if dests
            .iter()
            .any(|d| layout.busy.iter().any(|b| overlaps(d, b)))
        {
            covered_busy += 1;
        }
        let avoid: Vec<(Range<u64>, &str)> = dests
            .iter()
            .map(|d| (d.clone(), "destination"))
            .chain(layout.busy.iter().map(|b| (b.clone(), "busy")))
            .chain(layout.protected.iter().cloned())
            .collect();
        let mut pages: Vec<u64> = engine_reads(&ready, &mem);
        pages.extend(
            ready
                .staging
                .iter()
                .flat_map(|r| r.clone().step_by(PAGE_SIZE as usize)),
        );
        assert_eq!(
            pages.len(),
            ready.staging_pages
                + ready.list_pages
                + ready.table_pages
                + 2
                + usize::from(ready.block.digest_count > 0),
            "case {case}"
        );
        for &pa in &pages {
            let page = pa..pa + PAGE_SIZE;
            assert!(
                layout
                    .ram
                    .iter()
                    .any(|r| r.start <= pa && page.end <= r.end),
                "case {case}: {pa:#x} outside RAM"
            );
            for (r, what) in &avoid {
                assert!(
                    !overlaps(&page, r),
                    "case {case}: page {pa:#x} in {what} {r:x?}"
                );
            }
        }
        // No page is handed out twice.
        let mut sorted = pages.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), pages.len(), "case {case}");
        // And the list still walks to what was meant (finish checked it; check again here).
        assert_eq!(
            list::walk(&mem, ready.block.head, 1 << 20).unwrap().len(),
            ready.staging_pages
        );
    }
    assert!(planned >= 30, "only {planned} of 60 random layouts planned");
    assert!(
        covered_busy >= 10,
        "only {covered_busy} plans had a destination over busy RAM"
    );
}

// ---------------------------------------------------------------------------------------
// Cache maintenance before the HVC.

#[derive(Debug, PartialEq)]
enum Op {
    Clean(Range<u64>),
    InvalidateIcache,
}

#[derive(Default)]
struct Recorder(Vec<Op>);

impl Cache for Recorder {
    fn clean(&mut self, r: Range<u64>) {
        self.0.push(Op::Clean(r));
    }

    fn invalidate_icache(&mut self) {
        self.0.push(Op::InvalidateIcache);
    }
}

#[test]
fn everything_the_engine_reads_is_cleaned_before_the_icache_invalidate() {
    let (ready, mem) = plan(virt_1g(), &linux_segments(), req).unwrap();
    let dtb = 0x4000_0000..0x4000_2000;
    let mut rec = Recorder::default();
    clean_for_engine(&ready, core::slice::from_ref(&dtb), &mut rec);

    let (last, cleans) = rec.0.split_last().unwrap();
    assert_eq!(*last, Op::InvalidateIcache);
    let cleaned: Vec<Range<u64>> = cleans
        .iter()
        .map(|op| match op {
            Op::Clean(r) => r.clone(),
            Op::InvalidateIcache => panic!("I-cache invalidated before every clean"),
        })
        .collect();
    for pa in engine_reads(&ready, &mem) {
        assert!(
            cleaned
                .iter()
                .any(|r| r.start <= pa && pa + PAGE_SIZE <= r.end),
            "page {pa:#x} not cleaned"
        );
    }
    // In order: the control page first, the block page last before the extras.
    assert_eq!(cleaned[0].start, ready.engine_entry);
    assert_eq!(
        cleaned[cleaned.len() - 2],
        ready.args..ready.args + PAGE_SIZE
    );
    assert_eq!(cleaned[cleaned.len() - 1], dtb);
    // Staging is not cleaned unless asked for.
    for r in &ready.staging {
        assert!(!cleaned.iter().any(|c| overlaps(c, r)));
    }
}

// ---------------------------------------------------------------------------------------
// RAM at physical address 0 (the Raspberry Pi 4).

fn pi4_like() -> Layout {
    Layout {
        ram: vec![0..0x3b40_0000],
        protected: vec![(0x1000..0x2000, "spin table")],
        busy: vec![0x0020_0000..0x0100_0000],
        console: Some(0xfe20_1000),
        console_mini_uart: false,
        pa_bits: 36,
    }
}

#[test]
fn destination_at_zero() {
    let e = add_err(pi4_like(), &[("kernel", 0..0x1000)]);
    assert_eq!(e, PlanError::DestAtZero { name: "kernel" });
    assert!(e.to_string().contains("kernel"));
}

#[test]
fn page_zero_is_never_handed_out() {
    // Only page 0 and the staging's own pages are free: page 0 must not become the control
    // page (or a list or table page, which the engine would read as "none").
    let layout = Layout {
        ram: vec![0..0x4_0000],
        protected: vec![(0x2_0000..0x4_0000, "firmware")],
        busy: vec![],
        console: None,
        console_mini_uart: false,
        pa_bits: 36,
    };
    let segs = [("kernel", 0x1_0000..0x1_8000)];
    let e = plan(layout, &segs, |s| Finish {
        digests: false,
        mmu: false,
        ..req(s)
    });
    // Pages 1..0x10 hold staging (8 pages) and 7 more; page 0 is not among them.
    let (ready, _) = e.unwrap();
    for pa in [ready.engine_entry, ready.args, ready.block.head & !0xfff] {
        assert_ne!(pa, 0);
    }
    assert!(ready.staging.iter().all(|r| r.start != 0));
    // A full plan with RAM from 0 keeps clear of page 0 throughout.
    let (ready, mem) = plan(pi4_like(), &[("kernel", 0x0020_0000..0x0220_0000)], req).unwrap();
    assert!(engine_reads(&ready, &mem).iter().all(|&pa| pa != 0));
    assert_eq!(
        list::walk(&mem, ready.block.head, 1 << 20).unwrap().len(),
        0x2000
    );
}

#[test]
fn absurd_addresses_are_errors_not_panics() {
    let segs = [("kernel", 0x4020_0000..0x4220_0000)];
    let layout = Layout {
        console: Some(u64::MAX),
        console_mini_uart: false,
        ..virt_1g()
    };
    let e = plan(layout, &segs, req).unwrap_err();
    assert!(matches!(
        e,
        PlanError::AboveVaLimit {
            what: "console",
            ..
        }
    ));
    let e = add_err(virt_1g(), &[("kernel", 0x4000_0000..u64::MAX)]);
    assert!(matches!(
        e,
        PlanError::DestProtected { .. } | PlanError::DestOutsideRam { .. }
    ));
    let e = add_err(virt_1g(), &[("kernel", u64::MAX - 0xfff..u64::MAX)]);
    assert!(matches!(e, PlanError::DestOutsideRam { .. }));
    let layout = Layout {
        protected: vec![(u64::MAX - 5..u64::MAX, "top")],
        busy: vec![u64::MAX - 1..u64::MAX],
        ..virt_1g()
    };
    assert!(plan(layout, &segs, req).is_ok());
    let e = plan(virt_1g(), &segs, |_| req(u64::MAX - 3)).unwrap_err();
    assert_eq!(
        e,
        PlanError::EntryOutside {
            entry: u64::MAX - 3
        }
    );
    let e = plan(virt_1g(), &segs, |_| req(u64::MAX)).unwrap_err();
    assert!(matches!(e, PlanError::Args(_)));
}

// ---------------------------------------------------------------------------------------
// Segments loaded in place: a destination with no staging and no copy, only a digest.

/// A finished plan, its memory, the runs `stage` gave, the segments.
type InPlacePlan = (
    Ready,
    FakeMemory,
    Vec<Vec<Range<u64>>>,
    [(&'static str, Range<u64>); 3],
);

/// The kernel and the initrd in place, the DTB staged, in [`virt_1g`].
fn in_place_plan(payloads: &[Vec<u8>; 3]) -> InPlacePlan {
    let segs = linux_segments();
    let mut mem = fake(&virt_1g());
    let mut p = Planner::new(virt_1g(), &mut mem).unwrap();
    for (i, (name, dest)) in segs.iter().enumerate() {
        let id = if i < 2 {
            assert!(p.fits_in_place(dest));
            p.add_segment_in_place(name, dest.clone()).unwrap()
        } else {
            p.add_segment(name, dest.clone()).unwrap()
        };
        assert_eq!(id, i);
    }
    let runs = p.stage().unwrap();
    for (r, data) in runs.iter().zip(payloads) {
        fill(p.memory_mut(), r, data);
    }
    let ready = p.finish(req(0x4020_0000)).unwrap();
    (ready, mem, runs, segs)
}

fn in_place_payloads() -> [Vec<u8>; 3] {
    let segs = linux_segments();
    core::array::from_fn(|k| {
        let d = &segs[k].1;
        (0..d.end - d.start)
            .map(|i| (i.wrapping_mul(2654435761) >> (k + 5)) as u8)
            .collect()
    })
}

#[test]
fn in_place_segments_are_their_own_run_and_get_no_copy() {
    let payloads = in_place_payloads();
    let (ready, mem, runs, segs) = in_place_plan(&payloads);
    // The in-place segments' one run is their destination, in whole pages.
    assert_eq!(runs[0], vec![0x4020_0000..0x40a0_0000]);
    assert_eq!(runs[1], vec![0x4800_0000..0x4830_1000]);
    assert_eq!(
        ready.in_place,
        vec![
            ("kernel", 0x4020_0000..0x40a0_0000),
            ("initrd", 0x4800_0000..0x4830_0123)
        ]
    );
    // Only the DTB is staged and copied.
    assert_eq!(ready.staging, runs[2]);
    assert_eq!(ready.staging_pages, 2);
    let walked = list::walk(&mem, ready.block.head, 100).unwrap();
    let src: Vec<u64> = runs[2]
        .iter()
        .flat_map(|r| r.clone().step_by(PAGE_SIZE as usize))
        .collect();
    assert_eq!(walked, vec![(0x4400_0000, src[0]), (0x4400_1000, src[1])]);
    assert_eq!(ready.list_pages, 1);
    // Nothing the engine reads lies in an in-place destination.
    for r in ready.clean.iter().chain(&ready.staging) {
        for (_, d) in &segs[..2] {
            assert!(!overlaps(r, d), "{r:x?} in {d:x?}");
        }
    }
    assert_eq!(ready.bytes, 0x80_0000 + 0x30_0123 + 0x2000);
}

#[test]
fn in_place_digests_are_of_the_destination() {
    let payloads = in_place_payloads();
    let (ready, mem, _, segs) = in_place_plan(&payloads);
    assert_eq!(ready.block.digest_count, 3);
    check_digests(&mem, ready.block.digests, &segs, &payloads);
    // An in-place destination holds what was hashed (the DTB's is written by the engine).
    for ((_, dest), data) in segs.iter().zip(&payloads).take(2) {
        for (k, chunk) in data.chunks(PAGE_SIZE as usize).enumerate() {
            let at = dest.start + k as u64 * PAGE_SIZE;
            assert!(mem.bytes(at, chunk.len()) == chunk, "at {at:#x}");
        }
    }
}

#[test]
fn in_place_destination_is_checked_like_any_other() {
    let layout = virt_1g();
    let mut mem = fake(&layout);
    let mut p = Planner::new(layout, &mut mem).unwrap();
    // Busy (the EL1 stage is still there): refused, and `fits_in_place` says so first.
    let busy = 0x7eff_f000..0x7f00_1000;
    assert!(!p.fits_in_place(&busy));
    assert_eq!(
        p.add_segment_in_place("kernel", busy.clone()).unwrap_err(),
        PlanError::InPlaceBusy {
            name: "kernel",
            start: 0x7eff_f000,
            end: 0x7f00_1000,
            busy_start: 0x7f00_0000,
            busy_end: 0x7fe0_0000
        }
    );
    // The last page counts whole: one byte into a busy page is too much.
    assert!(!p.fits_in_place(&(0x7efff000..0x7f00_0001)));
    assert!(p.fits_in_place(&(0x7efff000..0x7f00_0000)));
    // A staged segment may still go there (the engine writes it after the EL1 stage).
    p.add_segment("kernel", busy).unwrap();
    // Protected, outside RAM, overlapping another destination: the same errors as staged.
    assert!(matches!(
        p.add_segment_in_place("initrd", 0x400f_f000..0x4010_1000)
            .unwrap_err(),
        PlanError::DestProtected { what: "DTB", .. }
    ));
    assert!(matches!(
        p.add_segment_in_place("initrd", 0x7fff_0000..0x8000_1000)
            .unwrap_err(),
        PlanError::DestOutsideRam { .. }
    ));
    assert!(matches!(
        p.add_segment_in_place("initrd", 0x7f00_0000..0x7f00_1000)
            .unwrap_err(),
        PlanError::DestOverlap {
            other: "kernel",
            ..
        }
    ));
    assert!(matches!(
        p.add_segment_in_place("initrd", 0x4020_0001..0x4020_1000)
            .unwrap_err(),
        PlanError::UnalignedDest { .. }
    ));
    // A staged segment may not land on an in-place one either.
    p.add_segment_in_place("initrd", 0x4800_0000..0x4810_0000)
        .unwrap();
    assert!(matches!(
        p.add_segment("dtb", 0x480f_f000..0x4810_1000).unwrap_err(),
        PlanError::DestOverlap {
            other: "initrd",
            ..
        }
    ));
}

#[test]
fn in_place_pages_are_never_staging_or_engine_pages() {
    // RAM so tight that the pool is only what the in-place destination does not take:
    // every page the engine reads must come from outside it.
    let layout = Layout {
        ram: vec![0x4000_0000..0x4040_0000],
        protected: vec![(0x4000_0000..0x4010_0000, "DTB")],
        busy: vec![0x4010_0000..0x4020_0000],
        console: Some(0x0900_0000),
        console_mini_uart: false,
        pa_bits: 40,
    };
    let kernel = 0x4020_0000..0x403f_0000;
    let mut mem = fake(&layout);
    let mut p = Planner::new(layout.clone(), &mut mem).unwrap();
    p.add_segment_in_place("kernel", kernel.clone()).unwrap();
    p.add_segment("dtb", 0x403f_0000..0x403f_1000).unwrap();
    let runs = p.stage().unwrap();
    let ready = p.finish(req(0x4020_0000)).unwrap();
    for r in ready.clean.iter().chain(&ready.staging).chain(&runs[1]) {
        assert!(!overlaps(r, &kernel), "{r:x?}");
        assert!(r.start >= 0x403f_1000, "{r:x?}");
    }
    // Staged, the same kernel needs staging the pool does not have.
    let mut mem = fake(&layout);
    let mut p = Planner::new(layout, &mut mem).unwrap();
    p.add_segment("kernel", kernel).unwrap();
    p.add_segment("dtb", 0x403f_0000..0x403f_1000).unwrap();
    assert!(matches!(p.stage().unwrap_err(), PlanError::TooLarge { .. }));
}

// ---------------------------------------------------------------------------------------
// Segments copied straight from where their bytes are (`add_segment_from`).

/// A FIT's external data at 0x5000_0000 (busy, as the boot flow marks it): the kernel's
/// bytes on its first page, the initrd's on the page after the kernel's last.
const FIT_KERNEL: u64 = 0x5000_0000;
const FIT_INITRD: u64 = 0x5080_0000;

/// Plans the Linux segments with the kernel and initrd from `sources` (written there
/// first), the DTB staged.
fn from_source_plan(
    layout: Layout,
    sources: [u64; 2],
    payloads: &[Vec<u8>; 3],
) -> Result<InPlacePlan, PlanError> {
    let segs = linux_segments();
    let mut mem = fake(&layout);
    for (src, data) in sources.iter().zip(payloads) {
        fill(&mut mem, &[*src..*src + data.len() as u64], data);
    }
    let mut p = Planner::new(layout, &mut mem)?;
    for (i, (name, dest)) in segs.iter().enumerate() {
        if i < 2 {
            p.add_segment_from(name, dest.clone(), sources[i])?;
        } else {
            p.add_segment(name, dest.clone())?;
        }
    }
    let runs = p.stage()?;
    for (r, data) in runs.iter().zip(payloads) {
        fill(p.memory_mut(), r, data);
    }
    let ready = p.finish(req(0x4020_0000))?;
    Ok((ready, mem, runs, segs))
}

fn with_fit_busy() -> Layout {
    let mut l = virt_1g();
    l.busy.push(0x5000_0000..0x5100_0000);
    l
}

#[test]
fn from_source_segments_are_copied_from_their_pages() {
    let payloads = in_place_payloads();
    let (ready, mem, runs, segs) =
        from_source_plan(with_fit_busy(), [FIT_KERNEL, FIT_INITRD], &payloads).unwrap();
    // Nothing to fill for the kernel and the initrd; the DTB is staged.
    assert!(runs[0].is_empty() && runs[1].is_empty());
    assert_eq!(runs[2].len(), 1);
    assert_eq!(ready.staging, runs[2]);
    assert_eq!(ready.staging_pages, 2);
    assert_eq!(
        ready.from_source,
        vec![
            ("kernel", FIT_KERNEL..FIT_KERNEL + 0x80_0000),
            ("initrd", FIT_INITRD..FIT_INITRD + 0x30_1000)
        ]
    );
    // The list copies the source pages, in order, then the staged DTB.
    let walked = list::walk(&mem, ready.block.head, 10_000).unwrap();
    let mut want: Vec<(u64, u64)> = Vec::new();
    for (k, src) in [FIT_KERNEL, FIT_INITRD].into_iter().enumerate() {
        let d = &segs[k].1;
        let pages = (d.end - d.start).div_ceil(PAGE_SIZE);
        want.extend((0..pages).map(|i| (d.start + i * PAGE_SIZE, src + i * PAGE_SIZE)));
    }
    want.push((0x4400_0000, runs[2][0].start));
    want.push((0x4400_1000, runs[2][0].start + PAGE_SIZE));
    assert_eq!(walked, want);
    // The digests are of the source bytes, which are what the destinations will hold.
    check_digests(&mem, ready.block.digests, &segs, &payloads);
    // Nothing the planner allocated lies on the sources or in a destination.
    for r in ready.clean.iter().chain(&ready.staging) {
        for (_, src) in &ready.from_source {
            assert!(!overlaps(r, src), "{r:x?} on the source {src:x?}");
        }
        for (_, d) in &segs {
            assert!(!overlaps(r, d), "{r:x?} in {d:x?}");
        }
    }
}

#[test]
fn a_source_under_a_destination_is_staged_instead() {
    let payloads = in_place_payloads();
    // The initrd's bytes sit where the DTB goes: the engine could overwrite them before
    // reading them, so the initrd is staged; the kernel's source is clear and read in place.
    let (ready, mem, runs, segs) =
        from_source_plan(with_fit_busy(), [FIT_KERNEL, 0x4400_0000], &payloads).unwrap();
    assert!(runs[0].is_empty());
    assert!(!runs[1].is_empty(), "the initrd is staged");
    assert_eq!(
        ready.from_source,
        vec![("kernel", FIT_KERNEL..FIT_KERNEL + 0x80_0000)]
    );
    check_digests(&mem, ready.block.digests, &segs, &payloads);
    // Its own destination counts too.
    let (ready, _, runs, _) =
        from_source_plan(with_fit_busy(), [0x4030_0000, FIT_INITRD], &payloads).unwrap();
    assert!(
        !runs[0].is_empty(),
        "the kernel's bytes overlap its destination: staged"
    );
    assert_eq!(ready.from_source.len(), 1);
}

#[test]
fn a_source_outside_ram_or_protected_is_staged_instead() {
    let payloads = in_place_payloads();
    // Across the end of RAM.
    let mut layout = with_fit_busy();
    layout.ram = vec![0x4000_0000..0x5040_0000];
    layout.busy = vec![0x7f00_0000..0x7fe0_0000];
    layout.protected.retain(|(r, _)| r.end <= 0x5040_0000);
    let mut mem = fake(&virt_1g());
    for (src, data) in [FIT_KERNEL, FIT_INITRD].iter().zip(&payloads) {
        fill(&mut mem, &[*src..*src + data.len() as u64], data);
    }
    let mut p = Planner::new(layout, &mut mem).unwrap();
    p.add_segment_from("kernel", 0x4020_0000..0x40a0_0000, FIT_KERNEL)
        .unwrap();
    let runs = p.stage().unwrap();
    assert!(!runs[0].is_empty());
    // On a protected range.
    let mut layout = with_fit_busy();
    layout
        .protected
        .push((0x5000_0000..0x5000_1000, "firmware"));
    let (ready, _, runs, _) =
        from_source_plan(layout, [FIT_KERNEL, FIT_INITRD], &payloads).unwrap();
    assert!(!runs[0].is_empty());
    assert!(runs[1].is_empty());
    assert_eq!(ready.from_source.len(), 1);
}

#[test]
fn an_unaligned_source_is_refused() {
    let layout = virt_1g();
    let mut mem = fake(&layout);
    let mut p = Planner::new(layout, &mut mem).unwrap();
    let e = p
        .add_segment_from("kernel", 0x4020_0000..0x40a0_0000, 0x5000_0800)
        .unwrap_err();
    assert_eq!(
        e,
        PlanError::UnalignedSource {
            name: "kernel",
            start: 0x5000_0800
        }
    );
    assert!(e
        .to_string()
        .contains("source 0x50000800 is not 4 KiB aligned"));
}
