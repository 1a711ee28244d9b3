//! The hypstub EL2 stub: it owns EL2, sets it up for an EL1 guest, and serves Linux's
//! hyp-stub ABI (Documentation/virt/kvm/arm/hyp-abi.rst) plus SMCCC/PSCI calls from EL1.
//!
//! - [`abi`]: what each call does, as plain Rust decisions (host-tested).
//! - [`esr`]: exception syndrome decoding for fault reports (host-tested).
//! - [`cpus`]: per-CPU EL2 stacks and the CPU_ON mailboxes.
//! - [`console`]: lock-free timestamped console lines.
//! - `regs`, `handler` and `vectors.S` (aarch64 only): EL2 register set-up, the vector
//!   table, and the handling of each exception.
//!
//! The stub runs with the EL2 MMU off, as Linux's own stub does, so it never uses locks,
//! atomics or the heap, and it is built for `aarch64-unknown-none-softfloat` so that it
//! never touches EL1's FP/SIMD registers. A board plugs in through the [`Platform`] trait and
//! the [`platform!`] macro. This crate depends on no board.

#![cfg_attr(not(test), no_std)]

pub mod abi;
pub mod console;
pub mod cpus;
pub mod esr;
#[cfg(target_arch = "aarch64")]
pub mod handler;
pub mod regs;

/// The registers x0..x30 of the interrupted context, as `vectors.S` saves them on SP_EL2.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Frame {
    /// x0..x30.
    pub x: [u64; 31],
    _pad: u64,
}

/// What a board provides to the stub.
///
/// # Safety
///
/// Every function is called at EL2 with the MMU off, from the vector table or the secondary
/// CPU entry, on the stub's per-CPU stack, with interrupts masked. Implementations must not
/// use locks, atomics or the heap (memory is Device memory, where exclusive accesses are not
/// guaranteed to work), must not touch FP/SIMD registers, and must not write memory outside
/// the device registers they drive: the rest belongs to the EL1 world.
pub unsafe trait Platform {
    /// Whether the platform has PSCI for the stub to forward calls to.
    const HAS_PSCI: bool;
    /// Puts `s` on the console, waiting for room, without locks.
    fn console_write(s: &str);
    /// Makes the SMCCC call in `args[0]` (x0..x17) to the platform's PSCI; returns x0..x3.
    fn psci(args: [u64; 18]) -> [u64; 4];
    /// Stops the machine for good: powers it off if it can, else parks this CPU.
    fn stop() -> !;
}

/// Generates the functions `vectors.S` calls, bound to the board's [`Platform`] type:
/// `hypstub_el2_exception` and `hypstub_el2_secondary`. A board invokes it once.
#[macro_export]
macro_rules! platform {
    ($p:ty) => {
        /// Called by the stub's vectors with the saved frame and the vector slot.
        ///
        /// # Safety
        /// Only `vectors.S` calls this, with `frame` pointing at the frame it just saved.
        #[unsafe(no_mangle)]
        unsafe extern "C" fn hypstub_el2_exception(frame: *mut $crate::Frame, slot: u64) {
            // SAFETY: vectors.S passes its own, exclusively owned, saved frame.
            let frame = unsafe { &mut *frame };
            $crate::handler::handle::<$p>(frame, slot);
        }

        /// Called by the stub's secondary CPU entry with the CPU's slot.
        #[unsafe(no_mangle)]
        extern "C" fn hypstub_el2_secondary(slot: u64) -> u64 {
            $crate::handler::secondary::<$p>(slot)
        }
    };
}

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    include_str!("vectors.S"),
    FRAME_SIZE = const core::mem::size_of::<Frame>(),
    STACK_SIZE = const cpus::STACK_SIZE,
    MAX_CPUS = const cpus::MAX_CPUS,
    SCTLR_EL2_MMU_OFF = const regs::SCTLR_EL2_MMU_OFF,
);

const _: () = assert!(
    core::mem::size_of::<Frame>() == 256,
    "vectors.S saves 32 words"
);
