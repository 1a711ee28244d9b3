//! CRC-32C (Castagnoli), the digest the engine checks over each destination range.
//!
//! The standard CRC-32C: reflected, polynomial 0x82F63B78 (0x1EDC6F41 bit-reversed), the
//! register starts at 0xFFFF_FFFF and the result is the register XOR 0xFFFF_FFFF, so
//! `crc32c(0, b"123456789") == 0xE306_9283`. [`crc32c`] follows zlib's convention for
//! `crc32()`: it takes a previous result (0 to start) and returns the new one, so the bytes
//! of one segment can be fed in several pieces (its staging runs). [`Crc32c`] is the same as
//! a streaming state.
//!
//! The engine computes the same value with the Armv8 CRC32 instructions: `w = 0xFFFF_FFFF`,
//! then `crc32cx w, w, x` over each 8 bytes of the range in address order (a little-endian
//! load: the instruction consumes the least significant byte first, which is the byte at the
//! lowest address) and `crc32cb w, w, w_byte` over the 0..7 bytes left, then
//! `w ^ 0xFFFF_FFFF`; it compares that with the low 32 bits of [`Digest::crc32c`].
//!
//! [`Digest::crc32c`]: crate::args::Digest::crc32c

/// The reflected CRC-32C polynomial.
pub const POLY: u32 = 0x82F6_3B78;

/// The value of CRC-32C over no bytes, and the start value of [`crc32c`].
pub const INIT: u32 = 0;

/// Slicing-by-8 tables: `TABLE[0]` is the byte-at-a-time table, `TABLE[k][b]` the effect of
/// byte `b` followed by `k` zero bytes.
static TABLE: [[u32; 256]; 8] = tables();

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

/// The CRC-32C of `data` continuing from `crc`, the result over the bytes before (0 to
/// start): `crc32c(crc32c(0, a), b) == crc32c(0, a ++ b)`. Portable (table-driven).
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    !update_sw(!crc, data)
}

/// [`crc32c`], using the Armv8 CRC32 instructions when `hw` is true, the code runs on
/// aarch64 and the CPU has them (ID_AA64ISAR0_EL1.CRC32, checked here, so a wrong `hw`
/// costs speed, never correctness). The result is the same either way.
pub fn crc32c_with(hw: bool, crc: u32, data: &[u8]) -> u32 {
    let mut c = Crc32c::resume(hw, crc);
    c.update(data);
    c.finish()
}

/// A CRC-32C computation fed in pieces.
#[derive(Debug, Clone, Copy)]
pub struct Crc32c {
    /// The CRC register (not yet inverted).
    reg: u32,
    /// Whether the CRC32 instructions are used.
    hw: bool,
}

impl Crc32c {
    /// A new computation; `hw` asks for the CRC32 instructions as in [`crc32c_with`].
    pub fn new(hw: bool) -> Self {
        Self::resume(hw, INIT)
    }

    /// A computation continuing from `crc`, the result over the bytes before.
    pub fn resume(hw: bool, crc: u32) -> Self {
        Self {
            reg: !crc,
            hw: hw && hw::available(),
        }
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.reg = if self.hw {
            hw::update(self.reg, data)
        } else {
            update_sw(self.reg, data)
        };
    }

    /// The CRC-32C of the bytes fed so far.
    pub fn finish(&self) -> u32 {
        !self.reg
    }
}

/// Slicing-by-8 over the raw register.
fn update_sw(mut reg: u32, data: &[u8]) -> u32 {
    let t = &TABLE;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ reg;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        reg = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        reg = t[0][((reg ^ u32::from(b)) & 0xff) as usize] ^ (reg >> 8);
    }
    reg
}

#[cfg(target_arch = "aarch64")]
mod hw {
    use core::arch::aarch64::{__crc32cb, __crc32cd};

    /// Whether this CPU implements the CRC32 instructions (FEAT_CRC32).
    pub(super) fn available() -> bool {
        let isar0: u64;
        // SAFETY: ID_AA64ISAR0_EL1 is readable at EL1 and EL2 (and Linux emulates the read for
        // EL0); reading it has no side effects and touches no memory.
        unsafe {
            core::arch::asm!(
                "mrs {}, ID_AA64ISAR0_EL1",
                out(reg) isar0,
                options(nomem, nostack, preserves_flags)
            );
        }
        // Arm ARM D19.2 ID_AA64ISAR0_EL1: CRC32, bits [19:16], non-zero when implemented.
        (isar0 >> 16) & 0xf != 0
    }

    /// The CRC register after `data`; call only when [`available`] said yes.
    pub(super) fn update(reg: u32, data: &[u8]) -> u32 {
        // SAFETY: `Crc32c` sets `hw` only after `available()` found FEAT_CRC32 on this CPU, so
        // the "crc" target feature `update_crc` is compiled for is present.
        unsafe { update_crc(reg, data) }
    }

    /// `crc32cb` up to the first 8-byte boundary, `crc32cx` over each aligned 8 bytes (a
    /// little-endian load, as the engine does), then `crc32cb` over the rest. Aligned word
    /// loads matter: the target has strict alignment, so an unaligned `u64` would be built
    /// from eight byte loads.
    #[target_feature(enable = "crc")]
    fn update_crc(mut reg: u32, data: &[u8]) -> u32 {
        // SAFETY: every bit pattern is a valid u64; `align_to` only splits the slice.
        let (head, words, tail) = unsafe { data.align_to::<u64>() };
        for &b in head {
            reg = __crc32cb(reg, b);
        }
        for &w in words {
            reg = __crc32cd(reg, u64::from_le(w));
        }
        for &b in tail {
            reg = __crc32cb(reg, b);
        }
        reg
    }
}

#[cfg(not(target_arch = "aarch64"))]
mod hw {
    /// No CRC32 instructions off aarch64.
    pub(super) fn available() -> bool {
        false
    }

    /// Never called: [`available`] is false.
    pub(super) fn update(reg: u32, data: &[u8]) -> u32 {
        super::update_sw(reg, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time reference, straight from the definition.
    fn reference(data: &[u8]) -> u32 {
        let mut reg = 0xFFFF_FFFFu32;
        for &b in data {
            reg ^= u32::from(b);
            for _ in 0..8 {
                reg = if reg & 1 != 0 {
                    (reg >> 1) ^ POLY
                } else {
                    reg >> 1
                };
            }
        }
        reg ^ 0xFFFF_FFFF
    }

    #[test]
    fn check_value() {
        assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(0, b""), 0);
    }

    #[test]
    fn rfc3720_vectors() {
        // RFC 3720 (iSCSI) appendix B.4.
        assert_eq!(crc32c(0, &[0; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(0, &[0xff; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(0, &inc), 0x46DD_794E);
        let dec: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(0, &dec), 0x113F_DB5C);
    }

    #[test]
    fn matches_the_definition_at_every_length_and_alignment() {
        let data: Vec<u8> = (0u32..300).map(|i| (i * 7 + i / 13) as u8).collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(crc32c(0, &data[start..end]), reference(&data[start..end]));
            }
        }
    }

    #[test]
    fn streams_in_pieces() {
        let data: Vec<u8> = (0u32..10_000).map(|i| (i ^ (i >> 5)) as u8).collect();
        let whole = crc32c(0, &data);
        for cut in [0, 1, 7, 8, 4095, 4096, 9999] {
            let (a, b) = data.split_at(cut);
            assert_eq!(crc32c(crc32c(0, a), b), whole);
            let mut s = Crc32c::new(true);
            s.update(a);
            s.update(b);
            assert_eq!(s.finish(), whole);
            assert_eq!(crc32c_with(true, crc32c_with(false, 0, a), b), whole);
        }
    }
}
