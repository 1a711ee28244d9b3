//! `reloc::list`: the kexec page list the engine walks.
//!
//! Input: a mode byte, then either
//! - *walk*: a head entry, a step limit and up to eight list pages (an address and up to 64
//!   entries each; the rest of memory reads as zero), walked by `list::walk`; or
//! - *write*: up to eight list pages' addresses and up to eight segments (a destination
//!   page and a count of source pages), written with `ListWriter` and walked back.
//!
//! Checked: every list `walk` accepts is read by the engine's own loop (the pseudo-code in
//! `reloc::list`'s documentation, which tests the flag bits one at a time and masks the
//! address with `!0xfff`) as the same copies, each destination non-zero and page aligned,
//! and `walk` never reads outside one page per access (the `Memory` contract); a refusal
//! names an entry the engine would misread; `ListWriter` refuses unaligned pages, page 0, the
//! last page of the address space and a wrong page count, and what it writes walks back to
//! exactly the entries pushed.

use reloc::list::{self, ListError, ListWriter, IND_DESTINATION, IND_DONE, IND_INDIRECTION};
use reloc::IND_SOURCE;

use crate::input::{Reader, Writer};
use crate::mem::SparseMem;
use crate::seeds::{Inputs, Seeds};

/// The engine's loop, as `reloc::list` documents it, for at most `max_steps` entries: the
/// copies it makes, or `None` if it would not stop (or would read from address 0).
fn engine(mem: &SparseMem, head: u64, max_steps: usize) -> Option<Vec<(u64, u64)>> {
    let (mut entry, mut ptr, mut dest) = (head, 0u64, 0u64);
    let mut copies = Vec::new();
    for _ in 0..max_steps {
        let addr = entry & !0xfff;
        if entry & IND_DONE != 0 {
            return Some(copies);
        } else if entry & IND_DESTINATION != 0 {
            dest = addr;
        } else if entry & IND_INDIRECTION != 0 {
            ptr = addr;
        } else if entry & IND_SOURCE != 0 {
            copies.push((dest, addr));
            dest = dest.wrapping_add(4096);
        }
        if ptr == 0 {
            return None;
        }
        entry = mem.u64(ptr);
        ptr = ptr.wrapping_add(8);
    }
    None
}

fn page(r: &mut Reader<'_>) -> u64 {
    r.u64() & !0xfff
}

fn walk_mode(r: &mut Reader<'_>) {
    let head = r.u64();
    let max_steps = usize::from(r.u16() % 2048);
    let mut mem = SparseMem::default();
    for _ in 0..r.u8() % 9 {
        let at = page(r);
        let n = usize::from(r.u8() % 65);
        let entries: Vec<u8> = (0..n).flat_map(|_| r.u64().to_le_bytes()).collect();
        mem.write(at, &entries);
    }
    match list::walk(&mem, head, max_steps) {
        Ok(copies) => {
            assert!(copies.len() < max_steps.max(1));
            for &(d, s) in &copies {
                assert!(
                    d != 0 && d % 4096 == 0 && s % 4096 == 0,
                    "copy {d:#x} <- {s:#x}"
                );
            }
            let seen = engine(&mem, head, max_steps);
            assert!(
                seen.as_ref() == Some(&copies),
                "the engine reads this list otherwise"
            );
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match e {
                ListError::BadFlags { entry, .. } => {
                    assert_ne!((entry & 0xf).count_ones(), 1)
                }
                ListError::Unaligned { entry, .. } => assert_ne!(entry & 0xff0, 0),
                ListError::SourceBeforeDestination { entry, .. } => {
                    assert_eq!(entry & 0xf, IND_SOURCE)
                }
                ListError::NoIndirection { .. }
                | ListError::Overflow { .. }
                | ListError::NoEnd { .. } => {}
                other => panic!("walk gave a writer's error: {other}"),
            }
        }
    }
}

fn write_mode(r: &mut Reader<'_>) {
    let pages: Vec<u64> = (0..r.u8() % 9).map(|_| r.u64() & !0x7).collect();
    let segments: Vec<(u64, u64)> = (0..r.u8() % 9)
        .map(|_| (page(r).max(4096), u64::from(r.u16() % 700)))
        .collect();
    let entries: usize = segments.iter().map(|&(_, n)| 1 + n as usize).sum();
    let mut mem = SparseMem::default();
    let writer = match ListWriter::new(pages.clone()) {
        Ok(w) => w,
        Err(e) => {
            assert!(
                pages.is_empty()
                    || pages
                        .iter()
                        .any(|&p| p % 4096 != 0 || p == 0 || p.checked_add(4096).is_none()),
                "{e}"
            );
            return;
        }
    };
    let distinct = {
        let mut p = pages.clone();
        p.sort_unstable();
        p.dedup();
        p.len() == pages.len()
    };
    let mut w = writer;
    let mut expected = Vec::new();
    let mut pushed = Ok(());
    for &(dest, n) in &segments {
        pushed = pushed.and_then(|()| w.push(&mut mem, list::destination(dest)));
        for i in 0..n {
            let src = 0x1_0000_0000 + (expected.len() as u64) * 4096;
            pushed = pushed.and_then(|()| w.push(&mut mem, list::source(src)));
            expected.push((dest.wrapping_add(i * 4096), src));
        }
    }
    let needed = list::pages_needed(entries);
    let head = match pushed.and_then(|()| w.finish(&mut mem)) {
        Ok(head) => {
            assert_eq!(
                needed,
                pages.len(),
                "the writer took the wrong number of pages"
            );
            head
        }
        Err(e) => {
            assert!(matches!(e, ListError::PageCount { .. }), "{e}");
            assert_ne!(
                needed,
                pages.len(),
                "refused the right number of pages: {e}"
            );
            return;
        }
    };
    // Page 0 and the last pages of the address space cannot hold a list the engine reads
    // (a zero pointer means "none"; the pointer may not wrap): the planner never uses them.
    let unusable = pages.iter().any(|&p| p == 0 || p > u64::MAX - 0x2000);
    if !distinct || unusable || expected.iter().any(|&(d, _)| d.checked_add(4096).is_none()) {
        return;
    }
    assert_eq!(head, list::indirection(pages[0]));
    let max_steps = entries + pages.len() + 1;
    let walked = list::walk(&mem, head, max_steps);
    assert!(
        walked.as_ref() == Ok(&expected),
        "the list written walks back otherwise: {:?}",
        walked.err()
    );
    assert!(
        engine(&mem, head, max_steps) == Some(expected),
        "the engine reads the list otherwise"
    );
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    if r.bool() {
        write_mode(&mut r);
    } else {
        walk_mode(&mut r);
    }
}

/// The page lists the planner writes for the real layouts, as walk inputs, and writer
/// inputs of their shape.
pub fn seeds(_: &Inputs) -> Seeds {
    let mut out = Vec::new();
    for (name, ready, mem) in crate::plan::real_plans() {
        let mut w = Writer::default();
        w.u8(0).u64(ready.block.head).u16(2047);
        let pages: Vec<u64> = mem.written().collect();
        let lists: Vec<u64> = pages
            .iter()
            .copied()
            .filter(|&p| ready.clean.iter().any(|c| c.contains(&p)))
            .take(8)
            .collect();
        w.u8(lists.len() as u8);
        for p in lists {
            w.u64(p).u8(64);
            for i in 0..64 {
                w.u64(mem.u64(p + i * 8));
            }
        }
        out.push((format!("{name}-walk"), w.done()));
        let mut w = Writer::default();
        w.u8(1)
            .u8(2)
            .u64(ready.engine_entry + 0x1000)
            .u64(ready.engine_entry + 0x3000);
        w.u8(3)
            .u64(0x4020_0000)
            .u16(600)
            .u64(0x4400_0000)
            .u16(300)
            .u64(0x4800_0000)
            .u16(1);
        out.push((format!("{name}-write"), w.done()));
    }
    out
}
