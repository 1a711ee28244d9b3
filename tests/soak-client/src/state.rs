//! What survives a restart ([`STATE`], in `.soak_state`), the secondaries' mailboxes, and
//! the two records in the image the client checks itself with: the digest record xtask
//! fills in and the canary `soak.corrupt` flips.
//!
//! Every access is one aligned 64-bit volatile load or store ([`SharedWords`]): the client
//! runs with the MMU off, so no cache maintenance is needed for a word written at EL2 or on
//! another CPU, or before HVC_SOFT_RESTART.

use client_support::image_digest;
use client_support::shared::SharedWords;

/// The most CPUs the client drives (QEMU virt numbers up to 8 the way the stub's slots do).
pub const MAX_CPUS: usize = 8;

/// Word indices of [`STATE`].
pub mod st {
    /// HVC_SOFT_RESTARTs made so far; written by the client just before each one.
    pub const RESTARTS: usize = 0;
    /// Restarts the run makes (`soak.cycles`).
    pub const TOTAL: usize = 1;
    /// The restart count at whose entry the canary is flipped (`soak.corrupt`), or
    /// `u64::MAX`.
    pub const CORRUPT_AT: usize = 2;
    /// Failed checks so far.
    pub const FAILURES: usize = 3;
    /// CNTPCT_EL0 at the first entry.
    pub const START: usize = 4;
    /// The DTB address of the first entry, which every restart must pass again.
    pub const DTB: usize = 5;
    /// CPUs in the DTB at the first entry.
    pub const CPUS: usize = 6;
    /// VBAR_EL2 at the first restart: the stub's vectors, which no restart may change.
    pub const FIRST_VBAR: usize = 7;
    /// Incremented by `entry.S` at every EL2 entry with the restart token.
    pub const EL2_ENTRIES: usize = 8;
    /// CurrentEL (raw) at the last EL2 entry, written by `entry.S`.
    pub const EL2_CURRENT_EL: usize = 9;
    /// SCTLR_EL2 at the last EL2 entry, written by `entry.S`.
    pub const EL2_SCTLR: usize = 10;
    /// DAIF at the last EL2 entry, written by `entry.S`.
    pub const EL2_DAIF: usize = 11;
    /// VBAR_EL2 at the last EL2 entry, written by `entry.S`.
    pub const EL2_VBAR: usize = 12;
    /// Secondary CPU starts (CPU_ON answered 0 and the CPU reported in and went off).
    pub const CPU_CYCLES: usize = 13;
    /// Number of words.
    pub const WORDS: usize = 14;
}

/// The state that carries over from one entry to the next. Zeroed by the client at its first
/// entry (the boot loader leaves `image_size` free, not zeroed), then written by the boot CPU
/// at EL1 and by `entry.S` at EL2; never by a secondary.
#[cfg_attr(target_os = "none", unsafe(link_section = ".soak_state"))]
pub static STATE: SharedWords<{ st::WORDS }> = SharedWords::new();

/// Word indices inside one CPU's mailbox in [`MAILBOXES`].
pub mod mailbox {
    /// Written last (after DSB) with the CPU_ON context id (never 0): the rest is valid.
    pub const ARRIVED: usize = 0;
    /// CurrentEL at the secondary entry (raw register).
    pub const CURRENT_EL: usize = 1;
    /// MPIDR_EL1 of the CPU that arrived.
    pub const MPIDR: usize = 2;
    /// What PSCI CPU_OFF returned, if it ever did (it must not).
    pub const OFF_RETURNED: usize = 3;
    /// Words per mailbox; a power of two so that `entry.S` can index with a shift.
    pub const WORDS: usize = 4;
    /// log2 of a mailbox's size in bytes.
    pub const SHIFT: u32 = (WORDS * 8).trailing_zeros();
}

/// Mailbox slot a secondary uses when its context id names no slot.
pub const STRAY_SLOT: usize = MAX_CPUS;

/// One mailbox per CPU slot (the slot is the CPU's index in the DTB, the context id's low
/// byte) plus [`STRAY_SLOT`]. In .bss, zeroed at every entry; the boot CPU clears a slot
/// before CPU_ON, the secondary fills it and writes `ARRIVED` last, the boot CPU reads it
/// only after seeing `ARRIVED`. Every secondary is off again (AFFINITY_INFO) before the boot
/// CPU restarts, so no CPU writes a mailbox while .bss is zeroed.
pub static MAILBOXES: SharedWords<{ (MAX_CPUS + 1) * mailbox::WORDS }> = SharedWords::new();

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

/// The digest record, last among the loaded bytes (link.ld): [`image_digest::PLACEHOLDER`]
/// as linked, the CRC32C of everything before it once xtask has embedded it. Read only
/// through volatile loads, so that the compiler cannot fold in the value it was linked with.
#[repr(C, align(8))]
pub struct DigestRecord([u32; 2]);

/// See [`DigestRecord`].
#[cfg_attr(target_os = "none", unsafe(link_section = ".soak_digest"))]
#[used]
pub static DIGEST: DigestRecord = DigestRecord([image_digest::PLACEHOLDER, 0]);

impl DigestRecord {
    /// The record's two words as they are in memory: (magic, CRC32C).
    pub fn read(&self) -> (u32, u32) {
        let p = self.0.as_ptr();
        // SAFETY: both words are inside the static; volatile because the bytes in memory
        // (patched after linking) differ from the initialiser the compiler knows.
        unsafe { (p.read_volatile(), p.add(1).read_volatile()) }
    }

    /// The record's address: the end of the digested range.
    pub fn addr(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

/// The canary: one initialised word inside the digested range (.data) that `soak.corrupt`
/// flips, to show that the digest check catches a changed byte. Nothing else writes it.
pub static CANARY: SharedWords<1> = SharedWords::with(0x5a5a_5a5a_5a5a_5a5a);

const _: () = assert!(1 << mailbox::SHIFT == mailbox::WORDS * 8);
