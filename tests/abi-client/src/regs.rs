//! The few system registers the client reads, and a timeout on the generic timer.
//!
//! Raw `mrs` on purpose: the client checks hypstub from the outside and shares no code with
//! it, register crates included (see Cargo.toml).

use core::arch::asm;

/// Reads a system register by its assembler name.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: an MRS of this register has no side effects and is allowed at EL1 (and at
        // EL2, where the client only runs when started without a stub).
        unsafe {
            asm!(concat!("mrs {value}, ", $name), value = out(reg) value,
                 options(nomem, nostack, preserves_flags))
        };
        value
    }};
}

/// The current exception level (CurrentEL bits 3:2).
pub fn current_el() -> u64 {
    el_of(read_sysreg!("CurrentEL"))
}

/// The exception level in a raw CurrentEL value.
pub fn el_of(current_el: u64) -> u64 {
    (current_el >> 2) & 0b11
}

/// PSTATE.{D,A,I,F} as the DAIF register shows them (bits 9:6).
pub fn daif() -> u64 {
    read_sysreg!("daif")
}

/// SCTLR_EL1.
pub fn sctlr_el1() -> u64 {
    read_sysreg!("sctlr_el1")
}

/// MPIDR_EL1.
pub fn mpidr_el1() -> u64 {
    read_sysreg!("mpidr_el1")
}

/// ID_AA64PFR0_EL1.
pub fn id_aa64pfr0_el1() -> u64 {
    read_sysreg!("id_aa64pfr0_el1")
}

/// A point in time on the physical counter (CNTPCT_EL0), which booting.rst requires EL2 to
/// let EL1 read (CNTHCTL_EL2.EL1PCTEN).
pub struct Deadline(u64);

impl Deadline {
    /// `ms` milliseconds from now, at the frequency in CNTFRQ_EL0.
    pub fn after_ms(ms: u64) -> Self {
        let mut freq = read_sysreg!("cntfrq_el0");
        if freq == 0 {
            // booting.rst says the firmware programs CNTFRQ; if it did not, wait longer
            // rather than not at all.
            freq = 1_000_000_000;
        }
        Self(counter().saturating_add(freq.saturating_mul(ms) / 1000))
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        counter() >= self.0
    }
}

fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading CNTPCT_EL0 has no side effects. The ISB keeps the read from being taken
    // early: the Arm ARM lets counter reads run out of order without one.
    unsafe {
        asm!("isb", "mrs {value}, cntpct_el0", value = out(reg) value,
             options(nomem, nostack, preserves_flags))
    };
    value
}
