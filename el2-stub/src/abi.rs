//! The decisions of the hyp-stub ABI and of the SMCCC calls that EL1 makes to the stub.
//!
//! Plain Rust with no register access, so every decision is tested on the host. The vector
//! code (`handler`) reads the caller's registers, asks [`decide`] what to do and carries the
//! [`Action`] out.
//!
//! Sources: Linux `Documentation/virt/kvm/arm/hyp-abi.rst` (function ids 0..=4 and
//! HVC_STUB_ERR), Arm DEN0028 SMC Calling Convention (bit 31 marks an SMCCC function id;
//! unknown ids return NOT_SUPPORTED), Arm DEN0022 PSCI (CPU_ON, PSCI_FEATURES).

use smccc::arch::{SMCCC_ARCH_FEATURES, SMCCC_VERSION};
use smccc::psci::{
    PSCI_CPU_DEFAULT_SUSPEND_32, PSCI_CPU_DEFAULT_SUSPEND_64, PSCI_CPU_ON_32, PSCI_CPU_ON_64,
    PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES, PSCI_SYSTEM_SUSPEND_32,
    PSCI_SYSTEM_SUSPEND_64,
};

/// `HVC_SET_VECTORS`: x1 = physical address of a new EL2 vector table.
pub const HVC_SET_VECTORS: u64 = 0;
/// `HVC_SOFT_RESTART`: x1 = entry, x2..x4 = the entry's x0..x2; entered at EL2.
pub const HVC_SOFT_RESTART: u64 = 1;
/// `HVC_RESET_VECTORS`: put the stub's own vectors back.
pub const HVC_RESET_VECTORS: u64 = 2;
/// `HVC_FINALISE_EL2` (`HVC_VHE_RESTART` before Linux 6.0): not implemented by hypstub.
pub const HVC_FINALISE_EL2: u64 = 3;
/// `HVC_GET_ICH_VTR_EL2`: x1 = ICH_VTR_EL2 where a GICv3 CPU interface exists.
pub const HVC_GET_ICH_VTR_EL2: u64 = 4;
/// The answer to any hyp-stub call the stub does not implement.
pub const HVC_STUB_ERR: u64 = 0x0bad_ca11;

/// SMCCC NOT_SUPPORTED (-1), as the 64-bit register value an SMC64/HVC64 caller sees.
pub const SMCCC_NOT_SUPPORTED: u64 = u64::MAX;
/// PSCI INVALID_PARAMETERS (-2).
pub const PSCI_INVALID_PARAMETERS: u64 = -2i64 as u64;
/// The SMCCC version the stub implements, v1.1 (major in bits 30:16, minor in 15:0).
pub const STUB_SMCCC_VERSION: u64 = 0x1_0001;

/// Required alignment of an EL2 vector table: VBAR_EL2 bits 10:0 are RES0
/// (Arm ARM D19.2, VBAR_EL2), so the table is 2 KiB aligned.
pub const VECTOR_TABLE_ALIGN: u64 = 0x800;

/// How the call reached the stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc #0` from EL1.
    Hvc,
    /// `smc #0` from EL1, trapped to EL2 because HCR_EL2.TSC is set.
    Smc,
}

/// What the stub does for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write x0 (and x1 when given) back to the caller and return.
    Reply {
        /// The caller's new x0.
        x0: u64,
        /// The caller's new x1, if the call defines one.
        x1: Option<u64>,
    },
    /// Install `vbar` as VBAR_EL2, then reply x0 = 0.
    SetVectors {
        /// The new vector table.
        vbar: u64,
    },
    /// Install the stub's own vectors, then reply x0 = 0.
    ResetVectors,
    /// Enter `entry` at EL2, MMU and caches off, DAIF masked, with these x0..x2.
    SoftRestart {
        /// Where to go.
        entry: u64,
        /// The entry's x0, x1, x2 (the caller's x2, x3, x4).
        args: [u64; 3],
    },
    /// Reply x0 = 0, x1 = ICH_VTR_EL2.
    GetIchVtr,
    /// Pass the call, x0..x17 unchanged, to the platform's PSCI and return its x0..x3.
    ForwardPsci,
    /// PSCI CPU_ON, redirected: start `target` in the stub, which then enters `entry` at
    /// EL1 with x0 = `context_id`.
    CpuOn {
        /// MPIDR affinity fields of the CPU to start.
        target: u64,
        /// Where the new CPU enters at EL1.
        entry: u64,
        /// The new CPU's x0.
        context_id: u64,
    },
}

/// What the stub knows about the machine when it decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// A GICv3 CPU interface with system registers exists (ID_AA64PFR0_EL1.GIC != 0).
    pub gicv3_sysregs: bool,
    /// The platform has PSCI to forward calls to.
    pub psci: bool,
}

/// Decides what to do with a call whose registers x0..x4 are `x`.
#[must_use]
pub fn decide(x: &[u64; 5], conduit: Conduit, features: Features) -> Action {
    let reply = |x0| Action::Reply { x0, x1: None };
    let id = x[0];
    if id & (1 << 31) == 0 || id >> 32 != 0 {
        // A hyp-stub call (hyp-abi.rst): only `hvc` reaches it; an SMC with such an id is an
        // SMCCC call that does not exist.
        if conduit == Conduit::Smc {
            return reply(SMCCC_NOT_SUPPORTED);
        }
        return match id {
            HVC_SET_VECTORS if is_vector_table_address(x[1]) => Action::SetVectors { vbar: x[1] },
            HVC_SOFT_RESTART if is_entry_address(x[1]) => Action::SoftRestart {
                entry: x[1],
                args: [x[2], x[3], x[4]],
            },
            HVC_RESET_VECTORS => Action::ResetVectors,
            HVC_GET_ICH_VTR_EL2 if features.gicv3_sysregs => Action::GetIchVtr,
            _ => reply(HVC_STUB_ERR),
        };
    }
    // An SMCCC function id (DEN0028 2.5): w0 only, bits 63:32 zero.
    let function = id as u32;
    match function {
        SMCCC_VERSION => reply(STUB_SMCCC_VERSION),
        // SMCCC_ARCH_FEATURES: the stub offers nothing beyond SMCCC_VERSION itself.
        SMCCC_ARCH_FEATURES => reply(SMCCC_NOT_SUPPORTED),
        PSCI_CPU_ON_64 | PSCI_CPU_ON_32 if features.psci => {
            let (target, entry, context_id) = if function == PSCI_CPU_ON_32 {
                (x[1] & 0xffff_ffff, x[2] & 0xffff_ffff, x[3] & 0xffff_ffff)
            } else {
                (x[1], x[2], x[3])
            };
            if !is_entry_address(entry) {
                return reply(PSCI_INVALID_PARAMETERS);
            }
            Action::CpuOn {
                target,
                entry,
                context_id,
            }
        }
        // Linux asks PSCI_FEATURES(SMCCC_VERSION) before it calls SMCCC_VERSION; the platform's
        // PSCI may not know that the stub answers it.
        PSCI_FEATURES if features.psci && x[1] as u32 == SMCCC_VERSION => reply(0),
        // Calls that resume a CPU at an entry point would bring it back at EL2 with nothing
        // set up; only CPU_ON is redirected through the stub, the rest are not offered.
        PSCI_FEATURES if features.psci && resumes_at_entry(x[1] as u32) => {
            reply(SMCCC_NOT_SUPPORTED)
        }
        f if resumes_at_entry(f) => reply(SMCCC_NOT_SUPPORTED),
        f if features.psci && is_psci(f) => Action::ForwardPsci,
        _ => reply(SMCCC_NOT_SUPPORTED),
    }
}

/// PSCI calls other than CPU_ON that return to the caller at an entry point it gives:
/// CPU_SUSPEND and CPU_DEFAULT_SUSPEND (power-down states), SYSTEM_SUSPEND (DEN0022 5.4,
/// 5.20, 5.19).
#[must_use]
pub fn resumes_at_entry(function: u32) -> bool {
    matches!(
        function,
        PSCI_CPU_SUSPEND_32
            | PSCI_CPU_SUSPEND_64
            | PSCI_CPU_DEFAULT_SUSPEND_32
            | PSCI_CPU_DEFAULT_SUSPEND_64
            | PSCI_SYSTEM_SUSPEND_32
            | PSCI_SYSTEM_SUSPEND_64
    )
}

/// PSCI function ids: owning entity 4 (standard secure service), function numbers 0..=0x1f,
/// as SMC32 (0x8400_00xx) or SMC64 (0xC400_00xx) fast calls (DEN0022 5.1).
#[must_use]
pub fn is_psci(function: u32) -> bool {
    matches!(function & !0x4000_001f, 0x8400_0000)
}

/// A usable vector table address: non-zero and 2 KiB aligned.
#[must_use]
pub fn is_vector_table_address(vbar: u64) -> bool {
    vbar != 0 && vbar.is_multiple_of(VECTOR_TABLE_ALIGN)
}

/// A usable entry point: non-zero and 4-byte aligned (A64 instructions are 4 bytes; a
/// misaligned PC faults on the first fetch, Arm ARM D1.3.5).
#[must_use]
pub fn is_entry_address(entry: u64) -> bool {
    entry != 0 && entry.is_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Features = Features {
        gicv3_sysregs: true,
        psci: true,
    };

    fn hvc(x: [u64; 5]) -> Action {
        decide(&x, Conduit::Hvc, ALL)
    }

    fn err() -> Action {
        Action::Reply {
            x0: HVC_STUB_ERR,
            x1: None,
        }
    }

    #[test]
    fn set_vectors_needs_a_2k_aligned_address() {
        assert_eq!(
            hvc([0, 0x4020_0800, 0, 0, 0]),
            Action::SetVectors { vbar: 0x4020_0800 }
        );
        assert_eq!(hvc([0, 0x4020_0900, 0, 0, 0]), err());
        assert_eq!(hvc([0, 0x4020_0004, 0, 0, 0]), err());
        assert_eq!(hvc([0, 0, 0, 0, 0]), err());
    }

    #[test]
    fn soft_restart_moves_x2_x4_to_x0_x2() {
        assert_eq!(
            hvc([1, 0x4020_0000, 7, 8, 9]),
            Action::SoftRestart {
                entry: 0x4020_0000,
                args: [7, 8, 9]
            }
        );
        assert_eq!(hvc([1, 0x4020_0002, 7, 8, 9]), err());
        assert_eq!(hvc([1, 0, 7, 8, 9]), err());
    }

    #[test]
    fn reset_finalise_and_unknown_ids() {
        assert_eq!(hvc([2, 0, 0, 0, 0]), Action::ResetVectors);
        assert_eq!(hvc([HVC_FINALISE_EL2, 0, 0, 0, 0]), err());
        for id in [5, 6, 0x1234, 0x7fff_ffff, 0x1_0000_0000, u64::MAX] {
            assert_eq!(hvc([id, 0, 0, 0, 0]), err(), "id {id:#x}");
        }
    }

    #[test]
    fn ich_vtr_only_with_gicv3_sysregs() {
        assert_eq!(hvc([4, 0, 0, 0, 0]), Action::GetIchVtr);
        let v2 = Features {
            gicv3_sysregs: false,
            psci: true,
        };
        assert_eq!(decide(&[4, 0, 0, 0, 0], Conduit::Hvc, v2), err());
    }

    #[test]
    fn smccc_version_on_both_conduits() {
        for c in [Conduit::Hvc, Conduit::Smc] {
            assert_eq!(
                decide(&[0x8000_0000, 0, 0, 0, 0], c, ALL),
                Action::Reply {
                    x0: 0x1_0001,
                    x1: None
                }
            );
        }
    }

    #[test]
    fn unknown_smccc_ids_are_not_supported() {
        let ns = Action::Reply {
            x0: u64::MAX,
            x1: None,
        };
        for id in [
            0x8000_0001,
            0x8000_8000,
            0xC200_0001,
            0x8600_0001,
            0x8600_ff01,
        ] {
            assert_eq!(decide(&[id, 0, 0, 0, 0], Conduit::Smc, ALL), ns, "{id:#x}");
            assert_eq!(decide(&[id, 0, 0, 0, 0], Conduit::Hvc, ALL), ns, "{id:#x}");
        }
        // A hyp-stub id through SMC is not a hyp-stub call.
        assert_eq!(decide(&[0, 0x800, 0, 0, 0], Conduit::Smc, ALL), ns);
    }

    #[test]
    fn psci_is_forwarded_except_cpu_on_and_smccc_feature_query() {
        for id in [
            0x8400_0000u64,
            0x8400_0002,
            0x8400_0008,
            0xC400_0004,
            0x8400_001f,
        ] {
            assert_eq!(
                decide(&[id, 0, 0, 0, 0], Conduit::Smc, ALL),
                Action::ForwardPsci
            );
        }
        assert_eq!(
            decide(&[0x8400_000A, 0x8000_0000, 0, 0, 0], Conduit::Smc, ALL),
            Action::Reply { x0: 0, x1: None }
        );
        assert_eq!(
            decide(&[0x8400_000A, 0x8400_0000, 0, 0, 0], Conduit::Smc, ALL),
            Action::ForwardPsci
        );
        assert_eq!(
            decide(&[0xC400_0003, 1, 0x4020_1000, 0xc0de, 0], Conduit::Smc, ALL),
            Action::CpuOn {
                target: 1,
                entry: 0x4020_1000,
                context_id: 0xc0de
            }
        );
        // SMC32 CPU_ON uses only the low 32 bits of each argument.
        assert_eq!(
            decide(
                &[0x8400_0003, 0xffff_0000_0000_0002, 0x4020_1000, 5, 0],
                Conduit::Hvc,
                ALL
            ),
            Action::CpuOn {
                target: 2,
                entry: 0x4020_1000,
                context_id: 5
            }
        );
        assert_eq!(
            decide(&[0xC400_0003, 1, 0x4020_1002, 0, 0], Conduit::Smc, ALL),
            Action::Reply {
                x0: PSCI_INVALID_PARAMETERS,
                x1: None
            }
        );
        assert!(!is_psci(0x8400_0020));
        assert!(!is_psci(0x8500_0000));
    }

    #[test]
    fn suspend_calls_that_resume_at_an_entry_are_not_offered() {
        let ns = Action::Reply {
            x0: u64::MAX,
            x1: None,
        };
        for id in [
            0xC400_0001u64,
            0x8400_0001,
            0xC400_000C,
            0xC400_000E,
            0x8400_000E,
        ] {
            assert_eq!(
                decide(&[id, 0, 0x4020_0000, 0, 0], Conduit::Smc, ALL),
                ns,
                "{id:#x}"
            );
            assert_eq!(
                decide(&[0x8400_000A, id, 0, 0, 0], Conduit::Smc, ALL),
                ns,
                "features {id:#x}"
            );
        }
    }

    #[test]
    fn without_psci_everything_psci_is_not_supported() {
        let none = Features::default();
        for id in [0x8400_0000u64, 0xC400_0003, 0x8400_000A] {
            assert_eq!(
                decide(&[id, 0x8000_0000, 0, 0, 0], Conduit::Smc, none),
                Action::Reply {
                    x0: u64::MAX,
                    x1: None
                }
            );
        }
    }
}
