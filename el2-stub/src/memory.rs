//! What the stub remembers about memory and the boot: the RAM banks the EL1 stage reported
//! (`HYPSTUB_ADD_RAM`), and whether the hand-off to the payload has happened.
//!
//! Lives in `.bss.stub.*` (the stub's resident RAM, zeroed at reset, unmapped at EL1 and
//! reserved `no-map` for a payload at EL1), accessed only at EL2 with the MMU off, so with
//! volatile accesses and no atomics or locks: the banks are written by the boot CPU before
//! the hand-off, while it is the only CPU that makes calls to the stub (secondaries are off,
//! or parked by the stub at EL1 on the Pi), and only read afterwards.

use core::cell::UnsafeCell;

use crate::abi::MAX_RAM_BANKS;

/// The recorded state.
#[repr(C)]
struct State {
    /// 1 once the EL1 stage's HVC_SOFT_RESTART to the payload (through the engine) was
    /// accepted.
    handed_off: u64,
    /// Valid entries of `banks`.
    count: u64,
    /// `(start, end)` of each bank.
    banks: [(u64, u64); MAX_RAM_BANKS],
}

/// The state, in the stub's resident RAM.
struct Shared(UnsafeCell<State>);

// SAFETY: see the module docs: one writer (the boot CPU, before the hand-off), readers only
// afterwards; every access is volatile at EL2 with the MMU off.
unsafe impl Sync for Shared {}

#[unsafe(link_section = ".bss.stub.memory")]
static STATE: Shared = Shared(UnsafeCell::new(State {
    handed_off: 0,
    count: 0,
    banks: [(0, 0); MAX_RAM_BANKS],
}));

/// Whether the hand-off to the payload has happened.
#[must_use]
pub fn handed_off() -> bool {
    // SAFETY: an aligned field of the static; see the Sync impl.
    unsafe { core::ptr::addr_of!((*STATE.0.get()).handed_off).read_volatile() != 0 }
}

/// Records that the hand-off happened: `HYPSTUB_ADD_RAM` is refused from now on.
pub fn set_handed_off() {
    // SAFETY: as in `handed_off`.
    unsafe { core::ptr::addr_of_mut!((*STATE.0.get()).handed_off).write_volatile(1) };
}

/// Records a RAM bank; false if there is no room left.
pub fn add_bank(bank: (u64, u64)) -> bool {
    let state = STATE.0.get();
    // SAFETY: fields of the static, indices in bounds; see the Sync impl.
    unsafe {
        let count = core::ptr::addr_of!((*state).count).read_volatile() as usize;
        if count >= MAX_RAM_BANKS {
            return false;
        }
        core::ptr::addr_of_mut!((*state).banks[count]).write_volatile(bank);
        core::ptr::addr_of_mut!((*state).count).write_volatile(count as u64 + 1);
    }
    true
}

/// The RAM banks recorded so far (none: the stub was not told, and does not check RAM).
#[must_use]
pub fn banks() -> &'static [(u64, u64)] {
    let state = STATE.0.get();
    // SAFETY: the first `count` banks are written (count only grows, after its bank is
    // written) and never change again; see the Sync impl. With the MMU off every load goes
    // to memory, so the slice reads what the writer stored.
    unsafe {
        let count =
            (core::ptr::addr_of!((*state).count).read_volatile() as usize).min(MAX_RAM_BANKS);
        core::slice::from_raw_parts(core::ptr::addr_of!((*state).banks).cast(), count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_and_hand_off() {
        assert!(banks().is_empty());
        assert!(add_bank((0x4000_0000, 0x6000_0000)));
        assert_eq!(banks(), &[(0x4000_0000, 0x6000_0000)]);
        for i in 1..MAX_RAM_BANKS as u64 {
            assert!(add_bank((i << 32, (i << 32) + 0x1000)));
        }
        assert!(!add_bank((0, 0x1000)), "the table is full");
        assert!(!handed_off());
        set_handed_off();
        assert!(handed_off());
    }
}
