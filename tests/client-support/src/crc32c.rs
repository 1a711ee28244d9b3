//! CRC32C (Castagnoli; RFC 3720 appendix B.4): polynomial 0x1EDC6F41, reflected, initial
//! value and final XOR 0xFFFF_FFFF, so `crc32c(b"123456789") == 0xE306_9283`.
//!
//! One table-driven implementation serves el2-client's `build.rs` (which includes this file
//! to compute the expected CRC of the image's block), xtask (which embeds soak-client's
//! image digest), the host tests, and the clients when the CPU lacks the CRC32
//! instructions. el2-client's fast path uses those instructions (FEAT_CRC32,
//! `crc32cb`/`crc32cx`): they compute the same function, one byte or one little-endian
//! doubleword at a time.
//!
//! A running CRC is passed around in its "state" form (before the final XOR), so a long
//! range can be fed in pieces: `finish(update(START, a + b)) == finish(update(update(START,
//! a), b))`.

/// The reflected form of the Castagnoli polynomial 0x1EDC6F41.
const POLY_REFLECTED: u32 = 0x82f6_3b78;

/// The state a CRC32C starts from.
pub const START: u32 = 0xffff_ffff;

/// The byte-at-a-time table, computed at compile time (it lands in .rodata, so the client
/// needs no writable table while its MMU is off).
const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Feeds `bytes` into the running state `state`, one table lookup per byte.
pub fn update(mut state: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        state = TABLE[((state ^ u32::from(byte)) & 0xff) as usize] ^ (state >> 8);
    }
    state
}

/// The CRC32C value of a finished running state.
pub fn finish(state: u32) -> u32 {
    !state
}

/// The CRC32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    finish(update(START, bytes))
}

/// Feeds `bytes` into the running state `state` with the CRC32C instructions: single bytes up
/// to the first 8-byte boundary, then aligned doublewords (the client runs with the MMU off,
/// where memory is Device memory and unaligned loads fault), then the remaining bytes.
///
/// # Safety
///
/// The CPU must implement FEAT_CRC32 (ID_AA64ISAR0_EL1.CRC32 != 0): the function is
/// compiled with the `crc` target feature.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[target_feature(enable = "crc")]
pub fn update_hw(mut state: u32, bytes: &[u8]) -> u32 {
    use core::arch::aarch64::{__crc32cb, __crc32cd};

    // SAFETY: every bit pattern is a valid u64, and align_to only splits the slice at
    // 8-byte boundaries; it reads nothing.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    for &byte in head {
        state = __crc32cb(state, byte);
    }
    // CRC32CX takes the doubleword least significant byte first, which is memory order on
    // this little-endian target: the same bytes in the same order as the byte loop.
    for &word in words {
        state = __crc32cd(state, word);
    }
    for &byte in tail {
        state = __crc32cb(state, byte);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The "check" value of the CRC-32C catalogue entry, and the empty input.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn rfc3720_vectors() {
        // RFC 3720 appendix B.4: 32 bytes of zeros, of ones, and ascending.
        assert_eq!(crc32c(&[0; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xff; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
    }

    #[test]
    fn pieces_compose() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let (a, b) = data.split_at(333);
        assert_eq!(finish(update(update(START, a), b)), crc32c(&data));
    }
}
