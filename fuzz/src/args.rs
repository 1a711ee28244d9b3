//! `hypstub_abi::reloc_args`: the argument block the engine reads, and the digests it checks.
//!
//! Input: a 128-byte block as it lies in memory (zeros past the input's end), then bytes to
//! digest.
//!
//! Checked: the block decodes and encodes back to the same bytes; `validate` accepts
//! exactly the blocks docs/reloc-args.md describes and names the first field that is wrong;
//! a digest encodes at the `DIGEST_*` offsets; the CRC-32C the engine compares agrees with
//! its definition, whole or in pieces.

use hypstub_abi::reloc_args::{
    self, offsets, ArgBlock, ArgError, Digest, FLAG_MMU, MAGIC, SIZE, VERSION,
};
use reloc::digest;

use crate::input::Reader;
use crate::seeds::{Inputs, Seeds};

/// The first check of docs/reloc-args.md that `b` fails, by the document's order.
fn expected(b: &ArgBlock) -> Result<(), ArgError> {
    if b.magic != MAGIC {
        Err(ArgError::BadMagic { found: b.magic })
    } else if b.version != VERSION {
        Err(ArgError::BadVersion { found: b.version })
    } else if b.size != SIZE {
        Err(ArgError::BadSize { found: b.size })
    } else if b.el != 1 && b.el != 2 {
        Err(ArgError::BadEl { el: b.el })
    } else if b.entry == 0 || !b.entry.is_multiple_of(4) {
        Err(ArgError::BadEntry { entry: b.entry })
    } else if b.flags & FLAG_MMU != 0 && (b.ttbr0 == 0 || !b.ttbr0.is_multiple_of(4096)) {
        Err(ArgError::BadTtbr0 { ttbr0: b.ttbr0 })
    } else {
        Ok(())
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut raw = [0u8; offsets::BLOCK_SIZE];
    let given = r.bytes(offsets::BLOCK_SIZE);
    raw[..given.len()].copy_from_slice(given);
    let block = ArgBlock::from_bytes(&raw);
    assert_eq!(
        block.to_bytes(),
        raw,
        "the block does not encode back to its bytes"
    );
    assert_eq!(ArgBlock::from_bytes(&block.to_bytes()), block);
    let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default());
    assert_eq!(block.head, u64_at(offsets::HEAD));
    assert_eq!(block.digests, u64_at(offsets::DIGESTS));
    assert_eq!(block.regs[3], u64_at(offsets::REGS + 24));
    let verdict = reloc_args::validate(&block);
    assert_eq!(verdict, expected(&block));
    if let Err(e) = verdict {
        assert!(!e.to_string().is_empty());
    }

    let d = Digest {
        start: block.head,
        len: block.entry,
        hash64: block.el,
    };
    let b = d.to_bytes();
    assert_eq!(b[offsets::DIGEST_START..][..8], d.start.to_le_bytes());
    assert_eq!(b[offsets::DIGEST_LEN..][..8], d.len.to_le_bytes());
    assert_eq!(b[offsets::DIGEST_HASH64..][..8], d.hash64.to_le_bytes());

    let bytes = r.rest();
    let whole = digest::hash64(bytes);
    let cut = usize::from(raw[0]).min(bytes.len());
    let (a, b) = bytes.split_at(cut);
    let mut s = digest::Hash64::new();
    s.update(a);
    s.update(b);
    assert_eq!(s.finish(), whole);
}

/// The argument blocks the planner writes for the real layouts ([`crate::plan::real_cases`]),
/// with and without the MMU and digests.
pub fn seeds(_: &Inputs) -> Seeds {
    crate::plan::real_plans()
        .into_iter()
        .map(|(name, ready, _)| {
            let mut b = ready.block.to_bytes().to_vec();
            b.extend_from_slice(b"123456789");
            (name, b)
        })
        .collect()
}
