//! Memory shared between Rust and code that is not Rust: the EL2 routines in `entry.S`
//! (which run at EL2, outside the compiler's view) and the secondary CPUs.
//!
//! Every access is one aligned 64-bit volatile load or store. With the MMU off these are
//! Device-nGnRnE accesses, which are single-copy atomic and bypass the caches, so no cache
//! maintenance or atomics are needed (and exclusives would not work on Device memory).
//! The layouts are word indices; `entry.S` gets them as byte offsets from `start.rs`.

use core::cell::UnsafeCell;

/// The most CPUs the client drives with PSCI CPU_ON (QEMU virt with `-smp` up to 8).
pub const MAX_CPUS: usize = 8;

/// `N` 64-bit words written by one side and read by the other.
#[repr(C, align(16))]
pub struct SharedWords<const N: usize>(UnsafeCell<[u64; N]>);

// SAFETY: the only accesses are the volatile single-word loads and stores below, which
// cannot tear (aligned 64-bit accesses are single-copy atomic: Arm ARM, "Single-copy
// atomicity"); who writes which word when is the protocol documented next to each static.
unsafe impl<const N: usize> Sync for SharedWords<N> {}

impl<const N: usize> SharedWords<N> {
    /// All words zero (so the static lives in .bss, which `entry.S` zeroes).
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }

    /// Address of word 0, for code that is not Rust.
    pub fn as_ptr(&self) -> *mut u64 {
        self.0.get().cast()
    }

    /// Reads word `index`.
    pub fn read(&self, index: usize) -> u64 {
        assert!(index < N, "shared word {index} out of range");
        // SAFETY: `index < N`, so the pointer is inside the array, aligned for u64 and valid
        // for reads; other writers only ever store whole words.
        unsafe { self.as_ptr().add(index).read_volatile() }
    }

    /// Writes word `index`.
    pub fn write(&self, index: usize, value: u64) {
        assert!(index < N, "shared word {index} out of range");
        // SAFETY: as in `read`; no Rust reference to the contents ever exists, so the store
        // aliases nothing.
        unsafe { self.as_ptr().add(index).write_volatile(value) }
    }
}

/// Word indices of [`EL2_RECORD`].
pub mod rec {
    /// Set to 1 by `abi_el2_record_entry`: the soft restart really ran it.
    pub const RAN: usize = 0;
    /// CurrentEL at the entry (the raw register: EL in bits 3:2).
    pub const CURRENT_EL: usize = 1;
    /// x0 at the entry.
    pub const X0: usize = 2;
    /// x1 at the entry.
    pub const X1: usize = 3;
    /// x2 at the entry.
    pub const X2: usize = 4;
    /// SCTLR_EL2 at the entry.
    pub const SCTLR_EL2: usize = 5;
    /// DAIF at the entry.
    pub const DAIF: usize = 6;
    /// VBAR_EL2 at the entry: the stub's own vector table.
    pub const VBAR_EL2: usize = 7;
    /// Written by the caller before the HVC: where EL2 code returns to at EL1.
    pub const RESUME: usize = 8;
    /// Number of words.
    pub const WORDS: usize = 9;
}

/// What the EL2 routines of `entry.S` saw and where they return to. The boot CPU writes
/// `RESUME` and clears the rest before `HVC_SOFT_RESTART`; the EL2 routine writes the rest.
pub static EL2_RECORD: SharedWords<{ rec::WORDS }> = SharedWords::new();

/// Word indices inside one CPU's mailbox in [`MAILBOXES`].
pub mod mailbox {
    /// Written last (after DSB) with 1: the other words are valid.
    pub const ARRIVED: usize = 0;
    /// CurrentEL at the secondary entry (raw register).
    pub const CURRENT_EL: usize = 1;
    /// x0 at the secondary entry: the CPU_ON context id.
    pub const X0: usize = 2;
    /// MPIDR_EL1 of the CPU that arrived.
    pub const MPIDR: usize = 3;
    /// Words per mailbox; a power of two so that `entry.S` can index with a shift.
    pub const WORDS: usize = 4;
    /// log2 of a mailbox's size in bytes.
    pub const SHIFT: u32 = (WORDS * 8).trailing_zeros();
}

/// Mailbox slot a secondary uses when its context id is not one the client passed.
pub const STRAY_SLOT: usize = MAX_CPUS;

const MAILBOX_SLOTS: usize = MAX_CPUS + 1;

/// One mailbox per secondary slot (the CPU_ON context id minus its base) plus
/// [`STRAY_SLOT`]. The boot CPU clears a slot before CPU_ON; the secondary fills it and sets
/// `ARRIVED` last; the boot CPU only reads it after seeing `ARRIVED`.
pub static MAILBOXES: SharedWords<{ MAILBOX_SLOTS * mailbox::WORDS }> = SharedWords::new();

/// Reads `word` of mailbox `slot`.
pub fn mailbox_read(slot: usize, word: usize) -> u64 {
    MAILBOXES.read(slot * mailbox::WORDS + word)
}

/// Clears mailbox `slot`.
pub fn mailbox_clear(slot: usize) {
    for word in 0..mailbox::WORDS {
        MAILBOXES.write(slot * mailbox::WORDS + word, 0);
    }
}

/// Set by the first unexpected EL1 exception, so that a fault inside the report stops
/// quietly instead of recursing.
pub static FAULTING: SharedWords<1> = SharedWords::new();

const _: () = assert!(1 << mailbox::SHIFT == mailbox::WORDS * 8);
