//! Per-CPU state of the stub: EL2 stacks and the CPU_ON mailboxes.
//!
//! Lives in `.bss.stub.*` sections, which the board's linker script places in the resident
//! stub memory that the payload is told not to use. It is only ever accessed at EL2 with the
//! MMU off (Device memory), so no atomics or locks: each mailbox is written by the CPU that
//! issues CPU_ON, before the platform starts the target, and read by the target afterwards.

use core::cell::UnsafeCell;

/// CPUs the stub can start and give a stack (slots 0..MAX_CPUS).
pub const MAX_CPUS: usize = 8;
/// Bytes of EL2 stack per CPU.
pub const STACK_SIZE: usize = 8192;

/// The EL2 stacks, one per slot; the assembly takes slot `n`'s stack top as
/// `HYPSTUB_EL2_STACKS + (n + 1) * STACK_SIZE`.
#[repr(C, align(16))]
pub struct Stacks(UnsafeCell<[[u8; STACK_SIZE]; MAX_CPUS]>);

// SAFETY: the stacks are only used by the assembly as SP values, one slot per CPU; Rust
// never reads or writes them through this type.
unsafe impl Sync for Stacks {}

/// The EL2 stacks.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".bss.stub.stacks")]
pub static HYPSTUB_EL2_STACKS: Stacks = Stacks(UnsafeCell::new([[0; STACK_SIZE]; MAX_CPUS]));

/// Where a CPU started through the stub goes at EL1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The caller's entry point, entered at EL1.
    pub entry: u64,
    /// The caller's context id, the new CPU's x0.
    pub context_id: u64,
}

/// One mailbox per slot.
#[repr(C)]
pub struct Mailboxes(UnsafeCell<[Target; MAX_CPUS]>);

// SAFETY: a slot is written only by the CPU that is about to ask the platform to start that
// slot's CPU, and read only by that CPU once started (the platform's CPU_ON orders the two,
// and the writer issues `dsb sy` before the call). Both run with the MMU off, so they access
// memory directly; nothing ever writes this RAM through a cacheable mapping (the EL1 stage
// does not map it, the engine does not write it, a payload at EL1 is told it is reserved),
// so no dirty line can hide what is in memory. Two CPUs calling CPU_ON for the same target
// at once could race on its slot; PSCI answers the loser ALREADY_ON or ON_PENDING.
unsafe impl Sync for Mailboxes {}

#[unsafe(link_section = ".bss.stub.mailboxes")]
static MAILBOXES: Mailboxes = Mailboxes(UnsafeCell::new(
    [Target {
        entry: 0,
        context_id: 0,
    }; MAX_CPUS],
));

/// The slot of the CPU with affinity `mpidr`, if the stub can start it: Aff0 below
/// [`MAX_CPUS`] and Aff1..Aff3 zero (QEMU virt numbers up to 8 CPUs this way).
#[must_use]
pub fn slot_of(mpidr: u64) -> Option<usize> {
    let aff0 = (mpidr & 0xff) as usize;
    let upper = mpidr & 0xff_00ff_ff00;
    (upper == 0 && aff0 < MAX_CPUS).then_some(aff0)
}

/// Records where the CPU of `slot` goes once started.
pub fn set_target(slot: usize, target: Target) {
    if slot < MAX_CPUS {
        // SAFETY: in bounds; see the Sync impl for why no other CPU accesses this slot now.
        unsafe {
            (MAILBOXES.0.get() as *mut Target)
                .add(slot)
                .write_volatile(target)
        };
    }
}

/// Where the CPU of `slot` goes.
#[must_use]
pub fn target(slot: usize) -> Option<Target> {
    // SAFETY: in bounds; see the Sync impl.
    (slot < MAX_CPUS).then(|| unsafe {
        (MAILBOXES.0.get() as *const Target)
            .add(slot)
            .read_volatile()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_aff0() {
        assert_eq!(slot_of(0), Some(0));
        assert_eq!(slot_of(3), Some(3));
        assert_eq!(slot_of(0x8000_0003), Some(3), "MPIDR bit 31 (RES1) ignored");
        assert_eq!(slot_of(8), None);
        assert_eq!(slot_of(0x100), None);
        assert_eq!(slot_of(0xff), None);
        assert_eq!(slot_of(0x1_0000_0000), None);
    }

    #[test]
    fn mailbox_round_trip() {
        let t = Target {
            entry: 0x4020_1000,
            context_id: 7,
        };
        set_target(2, t);
        assert_eq!(target(2), Some(t));
        assert_eq!(target(MAX_CPUS), None);
    }
}
