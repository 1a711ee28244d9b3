//! The hypstub EL2 stub: it owns EL2, sets it up for an EL1 guest, and serves Linux's
//! hyp-stub ABI (Documentation/virt/kvm/arm/hyp-abi.rst) plus SMCCC/PSCI calls from EL1.
//!
//! - [`abi`]: what each call does, as plain Rust decisions (host-tested).
//! - [`esr`]: exception syndrome decoding for fault reports (host-tested).
//! - [`cpus`]: per-CPU EL2 stacks and the CPU_ON mailboxes.
//! - [`memory`]: the RAM banks the EL1 stage reported, and whether the hand-off happened.
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
pub mod memory;
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
    /// The stub's slot (below [`cpus::MAX_CPUS`]) for the CPU whose affinity is `mpidr`, or
    /// `None` if the stub cannot start it: the board's CPU numbering. By default
    /// [`cpus::slot_of`]: Aff0, with Aff1..Aff3 zero (QEMU virt, the Pi 4).
    fn cpu_slot(mpidr: u64) -> Option<usize> {
        cpus::slot_of(mpidr)
    }
    /// The memory the stub itself occupies, which no call may make it run or use as a
    /// vector table: its resident RAM (`.bss.stub.*`: stacks, mailboxes, what it
    /// remembers) and, where it runs from RAM, its code. An unused entry is empty (`0..0`).
    fn stub_memory() -> [core::ops::Range<u64>; 2];
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

/// The assembler macros `vector_table`, `save_frame_rest` and `restore_frame` that lay out a
/// vector table and save and restore a [`Frame`] on the stack, for vector tables (the stub's
/// and the boards' EL1 ones): put `el2_stub::frame_macros!()` in front of the assembly in a
/// `concat!`, and `.purgem` all three at its end. The assembly must supply `FRAME_SIZE`.
#[macro_export]
macro_rules! frame_macros {
    () => {
        concat!(
            "// The exception frame shared by hypstub's vector tables: x0..x30 as el2_stub::Frame lays\n",
            "// them out (32 words, x0 at the lowest address). Defined here, purged at the end of each\n",
            "// file that uses them, so that every global_asm! block can include them.\n",
            "\n",
            "// Saves x2..x30 into the frame at sp (the vector slot has already saved x0 and x1).\n",
            ".macro save_frame_rest\n",
            "    stp     x2, x3, [sp, #16 * 1]\n",
            "    stp     x4, x5, [sp, #16 * 2]\n",
            "    stp     x6, x7, [sp, #16 * 3]\n",
            "    stp     x8, x9, [sp, #16 * 4]\n",
            "    stp     x10, x11, [sp, #16 * 5]\n",
            "    stp     x12, x13, [sp, #16 * 6]\n",
            "    stp     x14, x15, [sp, #16 * 7]\n",
            "    stp     x16, x17, [sp, #16 * 8]\n",
            "    stp     x18, x19, [sp, #16 * 9]\n",
            "    stp     x20, x21, [sp, #16 * 10]\n",
            "    stp     x22, x23, [sp, #16 * 11]\n",
            "    stp     x24, x25, [sp, #16 * 12]\n",
            "    stp     x26, x27, [sp, #16 * 13]\n",
            "    stp     x28, x29, [sp, #16 * 14]\n",
            "    str     x30, [sp, #16 * 15]\n",
            ".endm\n",
            "\n",
            "// Restores x0..x30 from the frame at sp.\n",
            ".macro restore_frame\n",
            "    ldp     x2, x3, [sp, #16 * 1]\n",
            "    ldp     x4, x5, [sp, #16 * 2]\n",
            "    ldp     x6, x7, [sp, #16 * 3]\n",
            "    ldp     x8, x9, [sp, #16 * 4]\n",
            "    ldp     x10, x11, [sp, #16 * 5]\n",
            "    ldp     x12, x13, [sp, #16 * 6]\n",
            "    ldp     x14, x15, [sp, #16 * 7]\n",
            "    ldp     x16, x17, [sp, #16 * 8]\n",
            "    ldp     x18, x19, [sp, #16 * 9]\n",
            "    ldp     x20, x21, [sp, #16 * 10]\n",
            "    ldp     x22, x23, [sp, #16 * 11]\n",
            "    ldp     x24, x25, [sp, #16 * 12]\n",
            "    ldp     x26, x27, [sp, #16 * 13]\n",
            "    ldp     x28, x29, [sp, #16 * 14]\n",
            "    ldr     x30, [sp, #16 * 15]\n",
            "    ldp     x0, x1, [sp]\n",
            ".endm\n",
            "\n",
            "// Sixteen slots of 0x80 bytes (Arm ARM D1.3.1), each reserving a Frame on the stack,\n",
            "// saving x0/x1 and branching to `handler` with x1 = the slot's index. `.org` fails to\n",
            "// assemble if a slot outgrows its 32 instructions; the bytes after the branch are\n",
            "// never executed.\n",
            ".macro vector_table handler\n",
            "    .irp idx, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15\n",
            "    .balign 0x80\n",
            "9000:\n",
            "    sub     sp, sp, #{FRAME_SIZE}\n",
            "    stp     x0, x1, [sp]\n",
            "    mov     x1, #\\idx\n",
            "    b       \\handler\n",
            "    .org 9000b + 0x80\n",
            "    .endr\n",
            ".endm\n",
        )
    };
}

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    concat!(frame_macros!(), include_str!("vectors.S")),
    FRAME_SIZE = const core::mem::size_of::<Frame>(),
    STACK_SIZE = const cpus::STACK_SIZE,
    MAX_CPUS = const cpus::MAX_CPUS,
    SCTLR_EL2_MMU_OFF = const regs::SCTLR_EL2_MMU_OFF,
    PAYLOAD_FAULT_HVC = const abi::PAYLOAD_FAULT_HVC,
);

const _: () = assert!(
    core::mem::size_of::<Frame>() == 256,
    "vectors.S saves 32 words"
);
