//! What build.rs generated for this build (`layout.rs` in OUT_DIR: addresses, the block's
//! size and CRC32C) and the block itself: 4 MiB of pseudo-random bytes that make the client
//! a "several MiB" image, placed by `link.ld` last among the loaded bytes.

include!(concat!(env!("OUT_DIR"), "/layout.rs"));

/// The pseudo-random block, in its own section (see `link.ld`).
#[cfg_attr(target_os = "none", unsafe(link_section = ".el2c_blob"))]
pub static BLOB: [u8; BLOB_SIZE] = *include_bytes!(concat!(env!("OUT_DIR"), "/blob.bin"));

#[cfg(test)]
mod tests {
    use super::*;
    use client_support::crc32c;

    #[test]
    fn generated_layout_is_consistent() {
        assert_eq!(LINK_BASE, RAM_BASE + TEXT_OFFSET);
        assert!(TEXT_OFFSET >= 0x1000 && TEXT_OFFSET.is_multiple_of(0x1000));
        assert_eq!(BLOB.len(), 4 << 20);
        assert_eq!(crc32c::crc32c(&BLOB), BLOB_CRC32C);
        // Not all zeros or a short repeating pattern: a truncated load must show.
        assert_ne!(BLOB[..4096], BLOB[4096..8192]);
    }
}
