//! CRC-32 of a FIT's images (U-Boot's `crc32`, zlib's CRC-32/ISO-HDLC) with the Armv8
//! CRC32 instructions when ID_AA64ISAR0_EL1.CRC32 says the CPU has them, with the `crc`
//! crate's table-driven code otherwise (`loader::fit::crc32_portable`; [`updater`], for
//! `loader::fit::Hashers`).
//!
//! The Raspberry Pi 4's Cortex-A72 implements them (the CRC32 instructions are optional in
//! Armv8.0 and the A72 has them, unlike the cryptographic extension), and so do QEMU's
//! `cortex-a72` and `max` models: `crc32x` takes eight bytes per instruction, so a pass
//! costs about 0.22 instructions per byte (four `ldp` and eight `crc32x` per 64 bytes)
//! against a few instructions per byte for the portable code (docs/bench.md).
//!
//! No crate chooses for itself on this target: `crc32fast`'s run-time detection needs the
//! operating system (and its aarch64 code enables `aes`, that is NEON, which is unsound on
//! the soft-float target), and a compile-time choice would need `target-feature=+crc` for
//! the whole firmware. So this module reads the ID register and checks the instructions
//! against the portable code on one message before trusting them, as [`crate::sha256`]
//! does.

use loader::fit::crc32_portable;

/// The CRC-32 update for this CPU: the instructions' when the CPU has them and they pass
/// the check, else the portable one (always off aarch64).
#[must_use]
pub fn updater() -> fn(u32, &[u8]) -> u32 {
    #[cfg(target_arch = "aarch64")]
    if usable() {
        return update;
    }
    crc32_portable
}

// w0 = the running register value (the CRC's complement), x1 = the bytes, x2 = how many.
// Single bytes up to an 8-byte boundary, then 64 bytes per round (four ldp, eight crc32x:
// Arm ARM C6.2, CRC32B/CRC32X, polynomial 0x04C11DB7, bit-reflected as zlib's), then
// words, then bytes. Returns the register value in w0. Uses x0..x10 only, no memory but
// the bytes.
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    r#"
.section .text.hypstub_crc32_update, "ax"
.arch_extension crc
.balign 4
.global hypstub_crc32_update
hypstub_crc32_update:
1:  cbz     x2, 9f
    tst     x1, #7
    b.eq    2f
    ldrb    w3, [x1], #1
    crc32b  w0, w0, w3
    sub     x2, x2, #1
    b       1b
2:  cmp     x2, #64
    b.lo    4f
3:  ldp     x3, x4, [x1], #16
    ldp     x5, x6, [x1], #16
    ldp     x7, x8, [x1], #16
    ldp     x9, x10, [x1], #16
    crc32x  w0, w0, x3
    crc32x  w0, w0, x4
    crc32x  w0, w0, x5
    crc32x  w0, w0, x6
    crc32x  w0, w0, x7
    crc32x  w0, w0, x8
    crc32x  w0, w0, x9
    crc32x  w0, w0, x10
    sub     x2, x2, #64
    cmp     x2, #64
    b.hs    3b
4:  cmp     x2, #8
    b.lo    5f
    ldr     x3, [x1], #8
    crc32x  w0, w0, x3
    sub     x2, x2, #8
    b       4b
5:  cbz     x2, 9f
    ldrb    w3, [x1], #1
    crc32b  w0, w0, w3
    sub     x2, x2, #1
    b       5b
9:  ret
"#
);

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    fn hypstub_crc32_update(reg: u32, bytes: *const u8, len: usize) -> u32;
}

#[cfg(target_arch = "aarch64")]
static PROBE: crate::boot::Probe = crate::boot::Probe::new();

#[cfg(target_arch = "aarch64")]
/// The CPU has the CRC32 instructions (ID_AA64ISAR0_EL1.CRC32, bits 19:16: CRC32B/H/W/X
/// and CRC32CB/H/W/X) and they agree with the portable code on a message that takes every
/// path (bytes before an 8-byte boundary, whole 64-byte rounds, words, bytes after).
fn usable() -> bool {
    PROBE.usable("crc32", crate::boot::isar0_has(16), || {
        let msg: [u8; 160] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        let (a, b) = msg.split_at(3);
        update(0, &msg) == crc32_portable(0, &msg)
            && update(update(0, a), &b[..150]) == crc32_portable(0, &msg[..153])
    })
}

#[cfg(target_arch = "aarch64")]
/// The instructions' CRC-32 of `data` after `crc` (finished values, as
/// [`crc32_portable`]). Call only when the CPU has them.
fn update(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is valid for `data.len()` bytes of reads; the routine reads nothing
    // else, writes no memory and uses only x0..x10 (caller-saved).
    !unsafe { hypstub_crc32_update(!crc, data.as_ptr(), data.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_aarch64_the_portable_code() {
        assert_eq!(updater()(0, b"123456789"), 0xcbf4_3926);
    }
}
