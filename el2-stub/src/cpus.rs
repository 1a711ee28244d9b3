//! Per-CPU state of the stub: EL2 stacks and the CPU_ON mailboxes.
//!
//! Lives in `.bss.stub.*` sections, which the board's linker script places in the resident
//! stub memory that the payload is told not to use. It is only ever accessed at EL2 with the
//! MMU off (Device memory), so no atomics or locks: each mailbox is written by the CPU that
//! issues CPU_ON, before the platform starts the target, and read by the target afterwards.

use core::cell::UnsafeCell;

/// CPUs the stub can start and give a stack (slots 0..MAX_CPUS).
pub const MAX_CPUS: usize = 8;
/// Bytes of EL2 stack per CPU: 3.5 KiB, so that the 8 stacks and the mailboxes fit in the
/// 32 KiB of resident RAM (issue 12, target 3). The deepest use measured on QEMU virt, by
/// reading the (zeroed at boot) stacks back after the run, is 1,440 bytes: the boot CPU's
/// report of a payload's EL1 fault (abi-client `abi.fault=el1`); the refusal lines of
/// abi-client's bad calls take 1,328, a secondary's fault report 1,360, soak-client's 200
/// restarts with CPU_ON/OFF and Linux at EL1 on 4 CPUs at most 752 (docs/memory-map.md).
pub const STACK_SIZE: usize = 3584;

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

/// Where a CPU started through the stub goes at EL1. An entry of 0 (never a valid one: the
/// stub refuses it) marks a free slot: no CPU_ON is pending for it.
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

/// Records where the CPU of `slot` goes once started; [`Target::default`] frees the slot.
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

/// Where the CPU of `slot` goes, taken out of the mailbox (which is then free again), or
/// `None` if no CPU_ON is pending for it.
#[must_use]
pub fn take_target(slot: usize) -> Option<Target> {
    let t = target(slot).filter(|t| t.entry != 0)?;
    set_target(slot, Target::default());
    Some(t)
}

/// Whether a CPU_ON for `slot` was recorded and its CPU has not taken it yet.
#[must_use]
pub fn pending(slot: usize) -> bool {
    target(slot).is_some_and(|t| t.entry != 0)
}

/// Per slot: 1 while the stub handles an exception on that CPU (a second one is then the
/// stub's own fault).
#[repr(C)]
struct Handling(UnsafeCell<[u64; MAX_CPUS]>);

// SAFETY: each CPU touches only its own slot, with volatile accesses at EL2, MMU off.
unsafe impl Sync for Handling {}

#[unsafe(link_section = ".bss.stub.handling")]
static HANDLING: Handling = Handling(UnsafeCell::new([0; MAX_CPUS]));

/// Marks the CPU of `slot` as handling an exception; returns whether it already was.
pub fn enter_handler(slot: usize) -> bool {
    if slot >= MAX_CPUS {
        return false;
    }
    let p = HANDLING.0.get() as *mut u64;
    // SAFETY: in bounds; only this CPU uses its slot.
    unsafe {
        let was = p.add(slot).read_volatile() != 0;
        p.add(slot).write_volatile(1);
        was
    }
}

/// Marks the CPU of `slot` as back in the EL1 world.
pub fn leave_handler(slot: usize) {
    if slot < MAX_CPUS {
        // SAFETY: in bounds; only this CPU uses its slot.
        unsafe { (HANDLING.0.get() as *mut u64).add(slot).write_volatile(0) };
    }
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
        assert!(!pending(2));
        set_target(2, t);
        assert!(pending(2));
        assert_eq!(target(2), Some(t));
        assert_eq!(take_target(2), Some(t));
        assert!(!pending(2), "taking the target frees the slot");
        assert_eq!(take_target(2), None);
        assert_eq!(target(MAX_CPUS), None);
    }

    #[test]
    fn nested_handling_is_seen() {
        assert!(!enter_handler(3));
        assert!(enter_handler(3));
        leave_handler(3);
        assert!(!enter_handler(3));
        leave_handler(3);
        assert!(!enter_handler(MAX_CPUS));
    }
}
