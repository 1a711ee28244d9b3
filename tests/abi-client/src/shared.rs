//! Memory shared between Rust and code that is not Rust: the EL2 routines in `entry.S`
//! (which run at EL2, outside the compiler's view) and the secondary CPUs.
//!
//! Every access is one aligned 64-bit volatile load or store through
//! [`SharedWords`] (client-support): with the MMU off no cache maintenance or atomics are
//! needed. The layouts are word indices; `entry.S` gets them as byte offsets from
//! `start.rs`.

pub use client_support::shared::SharedWords;

/// The most CPUs the client drives with PSCI CPU_ON (QEMU virt with `-smp` up to 8).
pub const MAX_CPUS: usize = 8;

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
    /// VBAR_EL1 at the secondary entry, before the client set its own.
    pub const VBAR_EL1: usize = 4;
    /// Words per mailbox; a power of two so that `entry.S` can index with a shift.
    pub const WORDS: usize = 8;
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

/// VBAR_EL1 as the boot CPU found it at its entry (written by `entry.S` before it installs
/// the client's own vectors).
pub static ENTRY_VBAR_EL1: SharedWords<1> = SharedWords::new();

/// A 2 KiB-aligned vector table's worth of zeros (`udf #0` in every slot): never written.
#[repr(C, align(2048))]
pub struct ZeroTable(pub [u64; 256]);

/// The zero table HVC_SET_VECTORS must refuse.
pub static ZERO_TABLE: ZeroTable = ZeroTable([0; 256]);

/// Set by the first unexpected EL1 exception, so that a fault inside the report stops
/// quietly instead of recursing.
pub static FAULTING: SharedWords<1> = SharedWords::new();

const _: () = assert!(1 << mailbox::SHIFT == mailbox::WORDS * 8);
