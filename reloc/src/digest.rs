//! Hash64, the digest the engine checks over each destination range (argument block version
//! 3, docs/reloc-args.md), and the planner computes over the staged bytes. Versions 1 and 2
//! used CRC-32C, whose `crc32cx` QEMU's TCG runs as a call into a byte-table helper: the
//! EL1 stage's pass and the engine's over a 35 MB Linux boot cost more than 100 ms of host
//! time there (docs/bench.md).

/// The first multiplier of the step (see [`Hash64`]); odd.
pub const HASH64_K1: u64 = 0x9E37_79B9_7F4A_7C15;
/// The second multiplier of [`HASH64_K1`]'s step (both are odd).
pub const HASH64_K2: u64 = 0xBF58_476D_1CE4_E5B9;
/// The four lanes' start values (the first hexadecimal digits of pi).
pub const HASH64_IV: [u64; 4] = [
    0x243F_6A88_85A3_08D3,
    0x1319_8A2E_0370_7344,
    0xA409_3822_299F_31D0,
    0x082E_FA98_EC4E_6C89,
];

/// One step of Hash64 (see [`Hash64`]).
#[inline(always)]
fn step(h: u64, w: u64) -> u64 {
    let m = (h ^ w).wrapping_mul(HASH64_K1);
    (m ^ (m >> 32)).wrapping_mul(HASH64_K2)
}

/// The Hash64 digest of `data` (see [`Hash64`]).
pub fn hash64(data: &[u8]) -> u64 {
    let mut h = Hash64::new();
    h.update(data);
    h.finish()
}

/// A Hash64 computation fed in pieces: the same result however the bytes are split.
///
/// Plain 64-bit integer work, 4 instructions per 8 bytes (`eor`, `mul`, `eor` with a shifted
/// operand, `mul`) in four independent lanes: under QEMU's TCG that is ordinary inline host
/// code (the `crc32cx` of CRC-32C is a call into a byte-table helper), and on a Cortex-A72 the
/// lanes keep the multiplier busy without waiting on each other.
///
/// The definition, every word little-endian:
///
/// - `step(h, w) = m2 * K2` where `m1 = (h ^ w) * K1` and `m2 = m1 ^ (m1 >> 32)` (wrapping
///   arithmetic; `K1`, `K2` odd, so each part, and the step for a fixed `w`, is a
///   bijection of `h`);
/// - the bytes are read as words `w[0..n]`, `n = ceil(len / 8)`, the last one zero-padded;
/// - four lanes start at [`HASH64_IV`]; each whole 32-byte block `k` updates lane `i` with
///   `w[4k + i]`; the 0 to 3 words after the last whole block (the last possibly partial)
///   update lane 0, in order;
/// - the result is `f` after `f = len`, then `f = step(f, lane[i])` for `i` = 0, 1, 2, 3.
///
/// What it catches: since every step is a bijection of the lane for a fixed word and the
/// final combine is a bijection of each lane, any change confined to one 8-byte word (every
/// single-bit error, every burst within one aligned word) always changes the digest, and a
/// change of length always does. Other changes (two words apart, a whole page copied to the
/// wrong place) go unnoticed with a probability of about 2^-64 rather than CRC-32C's 2^-32:
/// the multiply after the shift spreads a one-bit difference over about half the lane
/// before the next word can meet it. It is a check against accidents (a bad copy, a stray
/// DMA, a missing cache clean), not against an adversary, like the CRC-32C it replaces.
#[derive(Debug, Clone)]
pub struct Hash64 {
    lanes: [u64; 4],
    /// The bytes of an incomplete 32-byte block.
    buf: [u8; 32],
    /// How many bytes of `buf` are in use.
    held: usize,
    /// Bytes fed so far.
    len: u64,
}

impl Default for Hash64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Hash64 {
    /// A new computation.
    #[must_use]
    pub fn new() -> Self {
        Self {
            lanes: HASH64_IV,
            buf: [0; 32],
            held: 0,
            len: 0,
        }
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.held > 0 {
            let n = data.len().min(32 - self.held);
            self.buf[self.held..self.held + n].copy_from_slice(&data[..n]);
            self.held += n;
            data = &data[n..];
            if self.held < 32 {
                return;
            }
            let b = self.buf;
            self.block(&b);
            self.held = 0;
        }
        // Aligned word loads where the slice allows (the target has strict alignment: an
        // unaligned u64 would be built from eight byte loads).
        // SAFETY: every bit pattern is a valid [u64; 4]; `align_to` only splits the slice.
        let (head, blocks, _) = unsafe { data.align_to::<[u64; 4]>() };
        let aligned = if head.is_empty() { blocks } else { &[] };
        let [mut l0, mut l1, mut l2, mut l3] = self.lanes;
        for b in aligned {
            l0 = step(l0, u64::from_le(b[0]));
            l1 = step(l1, u64::from_le(b[1]));
            l2 = step(l2, u64::from_le(b[2]));
            l3 = step(l3, u64::from_le(b[3]));
        }
        self.lanes = [l0, l1, l2, l3];
        data = &data[aligned.len() * 32..];
        let mut chunks = data.chunks_exact(32);
        for c in &mut chunks {
            let mut b = [0; 32];
            b.copy_from_slice(c);
            self.block(&b);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.held = rest.len();
    }

    fn block(&mut self, b: &[u8; 32]) {
        for (i, l) in self.lanes.iter_mut().enumerate() {
            *l = step(*l, word(&b[8 * i..]));
        }
    }

    /// The digest of the bytes fed so far.
    #[must_use]
    pub fn finish(&self) -> u64 {
        let mut lanes = self.lanes;
        for w in self.buf[..self.held].chunks(8) {
            lanes[0] = step(lanes[0], word(w));
        }
        lanes.iter().fold(self.len, |f, &l| step(f, l))
    }
}

/// The little-endian word of up to 8 bytes, zero-padded.
fn word(b: &[u8]) -> u64 {
    let mut w = [0; 8];
    let n = b.len().min(8);
    w[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word by word, straight from the definition.
    fn reference(data: &[u8]) -> u64 {
        let words: Vec<u64> = data.chunks(8).map(word).collect();
        let mut lanes = HASH64_IV;
        let whole = data.len() / 32 * 4;
        for (j, &w) in words[..whole].iter().enumerate() {
            lanes[j % 4] = step(lanes[j % 4], w);
        }
        for &w in &words[whole..] {
            lanes[0] = step(lanes[0], w);
        }
        lanes.iter().fold(data.len() as u64, |f, &l| step(f, l))
    }

    #[test]
    fn known_values() {
        // Pinned: the engine (engine.S) computes the same function; a change here is an
        // ABI change (docs/reloc-args.md).
        // The same values from an independent script of the definition (docs/reloc-args.md).
        assert_eq!(hash64(b""), 0x266a_3b47_34ba_6e3d);
        assert_eq!(hash64(b"123456789"), 0xa191_52a5_6614_dad8);
        let inc: Vec<u8> = (0..64).collect();
        assert_eq!(hash64(&inc), 0xe1e3_490b_7bd9_068e);
        assert_ne!(hash64(b"a"), hash64(b"a\0"), "the length counts");
    }

    #[test]
    fn matches_the_definition_at_every_length_and_alignment() {
        let data: Vec<u8> = (0u32..300).map(|i| (i * 7 + i / 13) as u8).collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(hash64(&data[start..end]), reference(&data[start..end]));
            }
        }
    }

    #[test]
    fn streams_in_pieces() {
        let data: Vec<u8> = (0u32..10_000).map(|i| (i ^ (i >> 5)) as u8).collect();
        let whole = hash64(&data);
        for cut in [0, 1, 7, 8, 31, 32, 33, 4095, 4096, 9999] {
            let (a, b) = data.split_at(cut);
            let mut h = Hash64::new();
            h.update(a);
            h.update(b);
            assert_eq!(h.finish(), whole, "cut at {cut}");
        }
        let mut h = Hash64::new();
        for c in data.chunks(3) {
            h.update(c);
        }
        assert_eq!(h.finish(), whole);
    }

    #[test]
    fn every_single_bit_and_word_change_is_caught() {
        let data: Vec<u8> = (0u32..4096 + 77).map(|i| (i * 31) as u8).collect();
        let good = hash64(&data);
        let mut d = data.clone();
        for i in 0..d.len() {
            for bit in [0, 3, 7] {
                d[i] ^= 1 << bit;
                assert_ne!(hash64(&d), good, "bit {bit} of byte {i}");
                d[i] ^= 1 << bit;
            }
        }
        // Two bits in the same lane, one block apart, the pattern a multiply-only step would
        // miss for certain (bit 63 of a word, then the bit a 32-bit shift moves it to).
        let mut d = data.clone();
        d[7] ^= 0x80;
        d[32 + 3] ^= 0x80;
        d[32 + 7] ^= 0x80;
        assert_ne!(hash64(&d), good);
        // A page's worth of bytes shifted by one word.
        let mut d = data.clone();
        d.copy_within(0..4096, 8);
        assert_ne!(hash64(&d), good);
    }
}
