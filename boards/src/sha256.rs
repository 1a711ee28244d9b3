//! SHA-256 of a FIT's images with the Armv8 SHA-256 instructions when
//! ID_AA64ISAR0_EL1.SHA2 says the CPU has them, with `sha2`'s portable code otherwise
//! ([`compressor`], for `loader::fit::verify_all_with`).
//!
//! Which CPUs get which:
//!
//! - QEMU's `cortex-a72` and `max` models implement FEAT_SHA256: the instructions (a few
//!   guest instructions per byte instead of about 33, docs/bench.md).
//! - A real Raspberry Pi 4 (BCM2711) has no Armv8 cryptographic extension: the portable
//!   code, always.
//!
//! `sha2` cannot choose for itself on this target: its run-time detection (`cpufeatures`)
//! reads the operating system's hardware capabilities and answers "no" on bare metal, and
//! its compile-time backend choice would fault on a Pi. So this module reads the ID
//! register and checks the instructions against the portable code on one message before
//! trusting them.

use loader::sha256::{compress_portable, Compress};
#[cfg(target_arch = "aarch64")]
use loader::sha256::{digest_with, sha256_portable};

/// The compression function for this CPU: the instructions' when the CPU has them and they
/// pass the check, else `sha2`'s portable one (always off aarch64).
#[must_use]
pub fn compressor() -> Compress {
    #[cfg(target_arch = "aarch64")]
    if usable() {
        return compress;
    }
    compress_portable
}

#[cfg(target_arch = "aarch64")]
/// The round constants K (FIPS 180-4, 4.2.2).
static K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

// x0 = the state (8 words, A..H), x1 = the blocks, x2 = how many (at least 1), x3 = K.
// Four rounds per sha256h/sha256h2 pair; sha256su0/su1 extend the message schedule
// (Arm ARM C7.2: SHA256H, SHA256H2, SHA256SU0, SHA256SU1). Uses v0..v7, v16, v17 only
// (none of them callee-saved) and no memory but its arguments.
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    r#"
.section .text.hypstub_sha256_blocks, "ax"
.arch_extension simd
.arch_extension sha2
// Four rounds with w0 = the next four schedule words, then w0 becomes the four after w3.
.macro HYPSTUB_SHA256_ROUNDS4 w0, w1, w2, w3
ld1     {{v16.4s}}, [x4], #16
add     v16.4s, v16.4s, \w0\().4s
sha256su0 \w0\().4s, \w1\().4s
mov     v17.16b, v0.16b
sha256h q0, q1, v16.4s
sha256h2 q1, q17, v16.4s
sha256su1 \w0\().4s, \w2\().4s, \w3\().4s
.endm

// The last sixteen rounds need no more schedule words.
.macro HYPSTUB_SHA256_LAST4 w0
ld1     {{v16.4s}}, [x4], #16
add     v16.4s, v16.4s, \w0\().4s
mov     v17.16b, v0.16b
sha256h q0, q1, v16.4s
sha256h2 q1, q17, v16.4s
.endm

.balign 4
.global hypstub_sha256_blocks
hypstub_sha256_blocks:
ld1     {{v0.4s, v1.4s}}, [x0]
1:  ld1     {{v4.16b, v5.16b, v6.16b, v7.16b}}, [x1], #64
rev32   v4.16b, v4.16b
rev32   v5.16b, v5.16b
rev32   v6.16b, v6.16b
rev32   v7.16b, v7.16b
mov     v2.16b, v0.16b
mov     v3.16b, v1.16b
mov     x4, x3
.irp    r, 0, 1, 2
HYPSTUB_SHA256_ROUNDS4 v4, v5, v6, v7
HYPSTUB_SHA256_ROUNDS4 v5, v6, v7, v4
HYPSTUB_SHA256_ROUNDS4 v6, v7, v4, v5
HYPSTUB_SHA256_ROUNDS4 v7, v4, v5, v6
.endr
HYPSTUB_SHA256_LAST4   v4
HYPSTUB_SHA256_LAST4   v5
HYPSTUB_SHA256_LAST4   v6
HYPSTUB_SHA256_LAST4   v7
add     v0.4s, v0.4s, v2.4s
add     v1.4s, v1.4s, v3.4s
subs    x2, x2, #1
b.ne    1b
st1     {{v0.4s, v1.4s}}, [x0]
ret

"#
);

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    fn hypstub_sha256_blocks(state: *mut u32, blocks: *const u8, n: usize, k: *const u32);
}

#[cfg(target_arch = "aarch64")]
static PROBE: crate::boot::Probe = crate::boot::Probe::new();

#[cfg(target_arch = "aarch64")]
/// The CPU has FEAT_SHA256 (ID_AA64ISAR0_EL1.SHA2, bits 15:12: SHA256H, SHA256H2,
/// SHA256SU0/1) and the instructions agree with the portable code on a block.
fn usable() -> bool {
    PROBE.usable("sha256", crate::boot::isar0_has(12), || {
        let block: [u8; 100] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        digest_with(compress, &block) == sha256_portable(&block)
    })
}

#[cfg(target_arch = "aarch64")]
/// The instructions' compression, with FP/SIMD enabled at EL1 for the call only
/// (CPACR_EL1.FPEN, bits 21:20 = 0b11; the firmware is soft-float and leaves it as it
/// found it). Call only when the CPU has them ([`usable`]).
fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    if blocks.is_empty() {
        return;
    }
    let old: u64;
    // SAFETY: CPACR_EL1 is the EL1 stage's own register; enabling FP/SIMD access changes
    // nothing else, and the `isb` makes it take effect before the first SIMD instruction.
    unsafe {
        core::arch::asm!("mrs {}, cpacr_el1", out(reg) old, options(nomem, nostack, preserves_flags));
        core::arch::asm!("msr cpacr_el1, {}", "isb", in(reg) old | (3 << 20), options(nostack, preserves_flags));
    }
    // SAFETY: `state` is 8 words and `blocks` `blocks.len()` whole 64-byte blocks, both
    // valid for the call; the routine writes only the state and touches only v0..v7,
    // v16, v17 (not callee-saved, unused by this soft-float code) and x0..x4.
    unsafe {
        hypstub_sha256_blocks(
            state.as_mut_ptr(),
            blocks.as_ptr().cast(),
            blocks.len(),
            K.as_ptr(),
        )
    };
    // SAFETY: as above: puts back what the EL1 stage had.
    unsafe {
        core::arch::asm!("msr cpacr_el1, {}", "isb", in(reg) old, options(nostack, preserves_flags));
    }
}
