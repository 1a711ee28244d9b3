//! Decoding ESR_ELx for fault reports (Arm ARM D19.2, ESR_EL2: the EC field is bits 31:26,
//! IL bit 25, ISS bits 24:0).

/// The exception class field of an ESR value.
#[must_use]
pub fn exception_class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// The name of an exception class, as the Arm ARM names it.
#[must_use]
pub fn class_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "trapped WFI/WFE",
        0x07 => "trapped SVE/SIMD/FP access",
        0x0e => "illegal execution state",
        0x15 => "SVC from AArch64",
        0x16 => "HVC from AArch64",
        0x17 => "SMC from AArch64",
        0x18 => "trapped MSR/MRS/system instruction",
        0x19 => "trapped SVE access",
        0x1c => "pointer authentication failure",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort at the same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort at the same EL",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x30 => "breakpoint from a lower EL",
        0x31 => "breakpoint at the same EL",
        0x32 => "software step from a lower EL",
        0x33 => "software step at the same EL",
        0x34 => "watchpoint from a lower EL",
        0x35 => "watchpoint at the same EL",
        0x3c => "BRK instruction",
        _ => "unrecognised exception class",
    }
}

/// Which of the 16 vector table slots an exception came through (Arm ARM D1.3.1, Table
/// D1-7: four groups of four, 0x80 bytes each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Synchronous, current EL with SP_EL0.
    CurrentSp0Sync,
    /// IRQ, current EL with SP_EL0.
    CurrentSp0Irq,
    /// FIQ, current EL with SP_EL0.
    CurrentSp0Fiq,
    /// SError, current EL with SP_EL0.
    CurrentSp0SError,
    /// Synchronous, current EL with SP_ELx.
    CurrentSpxSync,
    /// IRQ, current EL with SP_ELx.
    CurrentSpxIrq,
    /// FIQ, current EL with SP_ELx.
    CurrentSpxFiq,
    /// SError, current EL with SP_ELx.
    CurrentSpxSError,
    /// Synchronous, lower EL using AArch64.
    LowerA64Sync,
    /// IRQ, lower EL using AArch64.
    LowerA64Irq,
    /// FIQ, lower EL using AArch64.
    LowerA64Fiq,
    /// SError, lower EL using AArch64.
    LowerA64SError,
    /// Any exception from a lower EL using AArch32.
    LowerA32,
}

impl Slot {
    /// The slot for a vector table offset divided by 0x80.
    #[must_use]
    pub fn from_index(index: u64) -> Self {
        match index {
            0 => Self::CurrentSp0Sync,
            1 => Self::CurrentSp0Irq,
            2 => Self::CurrentSp0Fiq,
            3 => Self::CurrentSp0SError,
            4 => Self::CurrentSpxSync,
            5 => Self::CurrentSpxIrq,
            6 => Self::CurrentSpxFiq,
            7 => Self::CurrentSpxSError,
            8 => Self::LowerA64Sync,
            9 => Self::LowerA64Irq,
            10 => Self::LowerA64Fiq,
            11 => Self::LowerA64SError,
            _ => Self::LowerA32,
        }
    }

    /// A short description for the report.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::CurrentSp0Sync => "synchronous, current EL, SP_EL0",
            Self::CurrentSp0Irq => "IRQ, current EL, SP_EL0",
            Self::CurrentSp0Fiq => "FIQ, current EL, SP_EL0",
            Self::CurrentSp0SError => "SError, current EL, SP_EL0",
            Self::CurrentSpxSync => "synchronous, current EL",
            Self::CurrentSpxIrq => "IRQ, current EL",
            Self::CurrentSpxFiq => "FIQ, current EL",
            Self::CurrentSpxSError => "SError, current EL",
            Self::LowerA64Sync => "synchronous, lower EL (AArch64)",
            Self::LowerA64Irq => "IRQ, lower EL (AArch64)",
            Self::LowerA64Fiq => "FIQ, lower EL (AArch64)",
            Self::LowerA64SError => "SError, lower EL (AArch64)",
            Self::LowerA32 => "lower EL (AArch32)",
        }
    }

    /// Whether ESR/FAR describe this exception (they do for synchronous ones and SErrors,
    /// not for IRQ/FIQ).
    #[must_use]
    pub fn has_syndrome(self) -> bool {
        !matches!(
            self,
            Self::CurrentSp0Irq
                | Self::CurrentSp0Fiq
                | Self::CurrentSpxIrq
                | Self::CurrentSpxFiq
                | Self::LowerA64Irq
                | Self::LowerA64Fiq
        )
    }
}

/// The name of the exception, taking IRQ/FIQ slots (whose ESR is stale) into account.
#[must_use]
pub fn describe(slot: Slot, esr: u64) -> &'static str {
    match slot {
        Slot::CurrentSp0Irq | Slot::CurrentSpxIrq | Slot::LowerA64Irq => "IRQ",
        Slot::CurrentSp0Fiq | Slot::CurrentSpxFiq | Slot::LowerA64Fiq => "FIQ",
        _ => class_name(exception_class(esr)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_classes() {
        // udf #0 at EL2: EC 0, IL 1.
        assert_eq!(exception_class(0x0200_0000), 0);
        assert!(class_name(0).contains("undefined"));
        // A data abort at the same EL.
        assert_eq!(exception_class(0x9600_0010), 0x25);
        assert_eq!(class_name(0x25), "data abort at the same EL");
        assert_eq!(class_name(0x3f), "unrecognised exception class");
    }

    #[test]
    fn slots() {
        assert_eq!(Slot::from_index(4), Slot::CurrentSpxSync);
        assert_eq!(Slot::from_index(8), Slot::LowerA64Sync);
        assert_eq!(Slot::from_index(15), Slot::LowerA32);
        assert_eq!(describe(Slot::CurrentSpxIrq, 0x5600_0000), "IRQ");
        assert!(!Slot::LowerA64Irq.has_syndrome());
        assert!(Slot::CurrentSpxSError.has_syndrome());
    }
}
