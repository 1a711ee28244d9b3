//! `loader::image`: the arm64 Image header and the choice of a load address.
//!
//! Input: the file's first bytes (the 64-byte header), then the placement's parameters:
//! the file length, RAM, up to four ranges to avoid and the lowest base.
//!
//! Checked: a parsed header holds the bytes at booting.rst's offsets and passed every check
//! `parse` documents, and only the header is looked at; `check_file_len` is exactly its
//! documented predicate; a placement is a 2 MiB-aligned base plus `text_offset`, inside RAM,
//! at or above the lowest base, below 48 bits, clear of every range to avoid, and the lowest
//! such; a refusal is right (no base works), by a search one base at a time when the bases
//! are few enough to try them all.

use core::ops::Range;

use loader::image::{self, ImageError, ImageHeader, PlaceError, BASE_ALIGN, HEADER_SIZE, MAGIC};

use crate::input::{overlaps, Reader, Writer};
use crate::seeds::{Inputs, Seeds};

/// Bases the reference search tries at most.
const MAX_BASES: u64 = 1 << 12;

fn le(b: &[u8], at: usize, n: usize) -> u64 {
    b[at..at + n]
        .iter()
        .rev()
        .fold(0, |a, &x| (a << 8) | u64::from(x))
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let parsed = ImageHeader::parse(data);
    let Some(h) = data.get(..HEADER_SIZE) else {
        assert_eq!(
            parsed,
            Err(ImageError::TooShort {
                len: data.len() as u64
            })
        );
        return;
    };
    assert_eq!(parsed, ImageHeader::parse(h), "parse looks past the header");
    let header = match parsed {
        Ok(header) => header,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if let ImageError::BadMagic { found } = e {
                assert_eq!(u64::from(found), le(h, 0x38, 4));
                assert_ne!(found, MAGIC);
            }
            return;
        }
    };
    assert_eq!(le(h, 0x38, 4), u64::from(MAGIC));
    assert_eq!(header.text_offset, le(h, 0x08, 8));
    assert_eq!(header.image_size, le(h, 0x10, 8));
    assert_eq!(header.flags, le(h, 0x18, 8));
    assert_eq!(header.flags & 1, 0, "a big-endian kernel was accepted");
    if header.image_size != 0 {
        assert!(header.text_offset % 8 == 0 && header.text_offset < BASE_ALIGN);
    }
    assert_eq!(header.reserved_flags(), header.flags & !0xf);

    let mut r = Reader::new(&data[HEADER_SIZE..]);
    let file_len = match r.u8() % 3 {
        0 => data.len() as u64,
        1 => u64::from(r.u32()),
        _ => r.u64(),
    };
    let ram = r.range();
    let avoid: Vec<Range<u64>> = (0..r.u8() % 5).map(|_| r.range()).collect();
    let lowest_base = r.u64();

    let len_ok =
        file_len >= HEADER_SIZE as u64 && (header.image_size == 0 || header.image_size >= file_len);
    assert_eq!(header.check_file_len(file_len).is_ok(), len_ok);

    let placed = image::place(&header, file_len, ram.clone(), &avoid, lowest_base);
    let offset = header.effective_text_offset();
    let size = header.effective_size(file_len);
    if let Ok(p) = &placed {
        assert!(len_ok);
        assert_eq!(
            p.end - p.start,
            size,
            "the placement is not the image's size"
        );
        let base = p.start - offset;
        assert_eq!(base % BASE_ALIGN, 0, "base {base:#x} is not 2 MiB aligned");
        assert!(base >= lowest_base && p.start >= ram.start && p.end <= ram.end);
        assert!(p.end <= image::PHYS_LIMIT_48);
        for a in avoid.iter().filter(|a| a.start < a.end) {
            assert!(
                !overlaps(a, p),
                "{p:x?} overlaps {a:x?}, which was to be avoided"
            );
        }
    }
    if !len_ok {
        assert!(matches!(placed, Err(PlaceError::Image(_))));
        return;
    }
    // The reference: every base from the first allowed one, in turn.
    let Some(first) = ram
        .start
        .max(lowest_base)
        .checked_next_multiple_of(BASE_ALIGN)
    else {
        assert!(placed.is_err());
        return;
    };
    let mut base = first;
    for _ in 0..MAX_BASES {
        // Some(answer): the search ends here (Some(None): nothing fits); None: blocked.
        let found = match base
            .checked_add(offset)
            .and_then(|s| Some(s..s.checked_add(size)?))
        {
            None => Some(None),
            Some(p) if p.end > ram.end || p.end > image::PHYS_LIMIT_48 => Some(None),
            Some(p) if avoid.iter().all(|a| a.start >= a.end || !overlaps(a, &p)) => Some(Some(p)),
            Some(_) => None,
        };
        match found {
            Some(expected) => {
                assert_eq!(
                    placed.ok(),
                    expected,
                    "base {base:#x}: place disagrees with the search"
                );
                return;
            }
            None => match base.checked_add(BASE_ALIGN) {
                Some(next) => base = next,
                None => {
                    assert!(placed.is_err(), "a placement beyond the last base");
                    return;
                }
            },
        }
    }
}

/// Headers of the kernels in the inputs, placed as QEMU virt (1 GiB, the stub's RAM
/// avoided) and the Pi 4 (RAM from 0, the spin table and firmware avoided) place them.
pub fn seeds(inputs: &Inputs) -> Seeds {
    let mut out = Vec::new();
    for (name, bytes) in &inputs.kernel {
        let Some(h) = bytes.get(..HEADER_SIZE) else {
            continue;
        };
        let virt = Writer::default()
            .bytes(h)
            .u8(0)
            .range(0x4000_0000..0x8000_0000)
            .u8(1)
            .range(0x4010_0000..0x4012_0000)
            .u64(0)
            .done();
        let pi = Writer::default()
            .bytes(h)
            .u8(2)
            .u64(32 << 20)
            .range(0..0x3b40_0000)
            .u8(2)
            .range(0..0x1000)
            .range(0x8_0000..0x20_0000)
            .u64(0x20_0000)
            .done();
        out.push((format!("{name}-virt"), virt));
        out.push((format!("{name}-rpi4"), pi));
    }
    out
}
