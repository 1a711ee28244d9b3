//! SHA-256 (FIPS 180-4) over a [`Compress`] function: the padding and the output here, the
//! compression of whole blocks by `sha2`'s portable code (`sha2::block_api::compress256`)
//! or by one a board passes in (`hypstub_boards::sha256`: the Armv8 SHA-256 instructions
//! when the CPU has them; that needs assembly, which this crate does not have).

/// `sha2`'s portable compression function.
pub use sha2::block_api::compress256 as compress_portable;

/// The initial hash value H(0) (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A SHA-256 compression function: the state after `blocks`.
pub type Compress = fn(&mut [u32; 8], &[[u8; 64]]);

/// The SHA-256 digest of `data` with the portable code.
#[must_use]
pub fn sha256_portable(data: &[u8]) -> [u8; 32] {
    digest_with(compress_portable, data)
}

/// The SHA-256 digest of `data`, whole blocks compressed by `compress`.
#[must_use]
pub fn digest_with(compress: Compress, data: &[u8]) -> [u8; 32] {
    let mut state = H0;
    let (blocks, rest) = data.as_chunks::<64>();
    compress(&mut state, blocks);
    // Padding (FIPS 180-4, 5.1.1): 0x80, zeros, the length in bits as a big-endian u64, to
    // a whole block: one more block, or two when fewer than 9 bytes of the last are free.
    let mut last = [0u8; 128];
    last[..rest.len()].copy_from_slice(rest);
    last[rest.len()] = 0x80;
    let n = if rest.len() < 56 { 64 } else { 128 };
    let bits = (data.len() as u64).wrapping_mul(8);
    last[n - 8..n].copy_from_slice(&bits.to_be_bytes());
    let (tail, _) = last[..n].as_chunks::<64>();
    compress(&mut state, tail);
    let mut out = [0u8; 32];
    for (o, s) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&s.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    #[test]
    fn known_answers() {
        // FIPS 180-4 examples ("abc", the 448-bit message).
        assert_eq!(sha256_portable(b"abc")[..4], [0xba, 0x78, 0x16, 0xbf],);
        assert_eq!(
            sha256_portable(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")[28..],
            [0x19, 0xdb, 0x06, 0xc1],
        );
    }

    #[test]
    fn matches_sha2_at_every_length_near_the_block_edges() {
        let data: alloc::vec::Vec<u8> = (0u32..1000).map(|i| (i * 131 + i / 7) as u8).collect();
        for len in (0..200).chain([447, 448, 511, 512, 999, 1000]) {
            let want: [u8; 32] = Sha256::digest(&data[..len]).into();
            assert_eq!(sha256_portable(&data[..len]), want, "length {len}");
        }
    }
}
