//! The image digest soak-client checks itself against: a CRC32C of its loaded bytes,
//! embedded at build time by xtask in the last 8 bytes of the raw image.
//!
//! soak-client's linker script puts an 8-byte record last among the loaded bytes (after
//! `.data`): [`PLACEHOLDER`] as linked, then, once xtask has run [`embed`] on the raw image
//! (`llvm-objcopy -O binary`), [`EMBEDDED`] followed by the CRC32C of every byte before the
//! record. At run time the client computes the CRC32C of the same range in memory and
//! compares: a byte of its code, read-only data or initialised data changed since the build
//! shows as a mismatch.

use core::fmt;

use crate::crc32c;

/// The record's size in bytes.
pub const RECORD_LEN: usize = 8;
/// Bytes 0..4 of the record as linked ("DIG?", little-endian), bytes 4..8 zero.
pub const PLACEHOLDER: u32 = u32::from_le_bytes(*b"DIG?");
/// Bytes 0..4 of the record once a digest is embedded ("DIG="); bytes 4..8 hold it.
pub const EMBEDDED: u32 = u32::from_le_bytes(*b"DIG=");

/// Why [`embed`] refused an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedError {
    /// The image is shorter than the record.
    TooShort(usize),
    /// The last 8 bytes are neither the placeholder nor an embedded digest: the linker
    /// script did not put the record last.
    NoRecord,
    /// A digest is already embedded and does not match the bytes before it.
    Mismatch {
        /// The embedded value.
        embedded: u32,
        /// The CRC32C of the bytes before the record.
        computed: u32,
    },
}

impl fmt::Display for EmbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(len) => write!(f, "the image is {len} bytes, shorter than the digest record"),
            Self::NoRecord => f.write_str(
                "the image does not end with the digest record (\"DIG?\" and 4 zero bytes): check link.ld",
            ),
            Self::Mismatch { embedded, computed } => write!(
                f,
                "the embedded digest {embedded:#010x} does not match the image's CRC32C {computed:#010x}"
            ),
        }
    }
}

/// The record a digest of `crc` makes.
pub fn record(crc: u32) -> [u8; RECORD_LEN] {
    let mut out = [0; RECORD_LEN];
    out[..4].copy_from_slice(&EMBEDDED.to_le_bytes());
    out[4..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Embeds the CRC32C of everything before the record in the last 8 bytes of the raw
/// `image` and returns it. An image whose digest is already embedded (a build that changed
/// nothing) is accepted when the digest is right.
pub fn embed(image: &mut [u8]) -> Result<u32, EmbedError> {
    let len = image.len();
    let body_len = len
        .checked_sub(RECORD_LEN)
        .ok_or(EmbedError::TooShort(len))?;
    let (body, tail) = image.split_at_mut(body_len);
    let magic = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let value = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
    let computed = crc32c::crc32c(body);
    match (magic, value) {
        (PLACEHOLDER, 0) => {
            tail.copy_from_slice(&record(computed));
            Ok(computed)
        }
        (EMBEDDED, embedded) if embedded == computed => Ok(computed),
        (EMBEDDED, embedded) => Err(EmbedError::Mismatch { embedded, computed }),
        _ => Err(EmbedError::NoRecord),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(b"DIG?\0\0\0\0");
        v
    }

    #[test]
    fn embeds_the_crc_of_the_body() {
        let mut img = image(b"123456789");
        assert_eq!(embed(&mut img), Ok(0xe306_9283));
        assert_eq!(&img[9..13], b"DIG=");
        assert_eq!(&img[13..], &0xe306_9283u32.to_le_bytes());
        // Again: already embedded and right.
        assert_eq!(embed(&mut img), Ok(0xe306_9283));
    }

    #[test]
    fn refuses_what_is_not_the_record() {
        assert_eq!(embed(&mut [0; 7]), Err(EmbedError::TooShort(7)));
        assert_eq!(embed(&mut [0; 16]), Err(EmbedError::NoRecord));
        let mut img = image(b"abc");
        img[4] = 1; // a placeholder with a non-zero value
        assert_eq!(embed(&mut img), Err(EmbedError::NoRecord));
        let mut img = image(b"abc");
        embed(&mut img).unwrap();
        img[0] ^= 1;
        assert!(matches!(embed(&mut img), Err(EmbedError::Mismatch { .. })));
        assert!(EmbedError::NoRecord.to_string().contains("link.ld"));
    }
}
