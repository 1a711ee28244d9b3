//! The few system registers the client reads, and the generic timer.
//!
//! Raw `mrs` on purpose: the client checks hypstub from the outside and shares no code with
//! it, register crates included.

use core::arch::asm;

/// Reads a system register by its assembler name.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: an MRS of this register has no side effects and is allowed at EL1 (and at
        // EL2, where the client only runs to say that it was not started by a stub).
        unsafe {
            asm!(concat!("mrs {value}, ", $name), value = out(reg) value,
                 options(nomem, nostack, preserves_flags))
        };
        value
    }};
}

/// The current exception level (CurrentEL bits 3:2).
pub fn current_el() -> u64 {
    (read_sysreg!("CurrentEL") >> 2) & 0b11
}

/// MPIDR_EL1.
pub fn mpidr_el1() -> u64 {
    read_sysreg!("mpidr_el1")
}

/// CNTFRQ_EL0, or 1 GHz if the firmware left it zero (booting.rst says it sets it).
pub fn counter_hz() -> u64 {
    match read_sysreg!("cntfrq_el0") {
        0 => 1_000_000_000,
        hz => hz,
    }
}

/// CNTPCT_EL0, which booting.rst requires EL2 to let EL1 read (CNTHCTL_EL2.EL1PCTEN).
pub fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading CNTPCT_EL0 has no side effects. The ISB keeps the read from being
    // taken early: the Arm ARM lets counter reads run out of order without one.
    unsafe {
        asm!("isb", "mrs {value}, cntpct_el0", value = out(reg) value,
             options(nomem, nostack, preserves_flags))
    };
    value
}

/// A point in time on the physical counter.
pub struct Deadline(u64);

impl Deadline {
    /// `ms` milliseconds from now.
    pub fn after_ms(ms: u64) -> Self {
        Self(counter().saturating_add(counter_hz().saturating_mul(ms) / 1000))
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        counter() >= self.0
    }
}
