//! The decisions of the hyp-stub ABI and of the SMCCC calls that EL1 makes to the stub.
//!
//! Plain Rust with no register access, so every decision is tested on the host. The vector
//! code (`handler`) reads the caller's registers, asks [`decide`] what to do and carries the
//! [`Action`] out.
//!
//! Sources: Linux `Documentation/virt/kvm/arm/hyp-abi.rst` (function ids 0..=4 and
//! HVC_STUB_ERR), Arm DEN0028 SMC Calling Convention (bit 31 marks an SMCCC function id;
//! unknown ids return NOT_SUPPORTED), Arm DEN0022 PSCI (CPU_ON, PSCI_FEATURES).

use core::fmt;
use core::ops::Range;

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
/// The answer to any hyp-stub call the stub does not implement or refuses.
pub const HVC_STUB_ERR: u64 = 0x0bad_ca11;

/// `HYPSTUB_ADD_RAM`, hypstub's own call (SMCCC fast call, SMC64, owning entity 6: vendor
/// specific hypervisor service, DEN0028 6.2): x1 = base, x2 = size of one RAM bank. The EL1
/// stage reports every bank it found before the hand-off; refused afterwards.
pub const HYPSTUB_ADD_RAM: u32 = 0xC600_0001;
/// The RAM banks the stub can record.
pub const MAX_RAM_BANKS: usize = 16;

/// SMCCC NOT_SUPPORTED (-1), as the 64-bit register value an SMC64/HVC64 caller sees.
pub const SMCCC_NOT_SUPPORTED: u64 = u64::MAX;
/// SMCCC INVALID_PARAMETER (-3).
pub const SMCCC_INVALID_PARAMETER: u64 = -3i64 as u64;
/// PSCI INVALID_PARAMETERS (-2).
pub const PSCI_INVALID_PARAMETERS: u64 = -2i64 as u64;
/// PSCI ON_PENDING (-5).
pub const PSCI_ON_PENDING: u64 = -5i64 as u64;
/// PSCI INVALID_ADDRESS (-9): an entry point the caller may not use (DEN0022 5.6).
pub const PSCI_INVALID_ADDRESS: u64 = -9i64 as u64;
/// The SMCCC version the stub implements, v1.1 (major in bits 30:16, minor in 15:0).
pub const STUB_SMCCC_VERSION: u64 = 0x1_0001;

/// Required alignment of an EL2 vector table: VBAR_EL2 bits 10:0 are RES0
/// (Arm ARM D19.2, VBAR_EL2), so the table is 2 KiB aligned.
pub const VECTOR_TABLE_ALIGN: u64 = 0x800;
/// The size of a vector table: 16 slots of 0x80 bytes (Arm ARM D1.3.1).
pub const VECTOR_TABLE_SIZE: u64 = 0x800;
/// The offset of the slot that every `hvc` from AArch64 EL1 goes through (synchronous,
/// lower EL using AArch64): the word the stub reads to refuse a table of zeros.
pub const LOWER_A64_SYNC_OFFSET: u64 = 0x400;
/// `udf #0`, the encoding of a zero word: what a table that was never written holds.
pub const UDF_0: u32 = 0;

/// The first of the 16 HVC immediates (one per slot) of the stub's EL1 vectors for a
/// payload (`hypstub_el1_payload_vectors`); only an HVC from inside that table counts.
pub const PAYLOAD_FAULT_HVC: u16 = 0x4800;

/// SMCCC function id bit 30: SMC64/HVC64 (set) or SMC32/HVC32 (clear) (DEN0028 2.5).
const SMC64_BIT: u32 = 1 << 30;

/// How the call reached the stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc #0` from EL1.
    Hvc,
    /// `smc #0` from EL1, trapped to EL2 because HCR_EL2.TSC is set.
    Smc,
}

/// The calls whose address argument the stub checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// `HVC_SET_VECTORS` (x1).
    SetVectors,
    /// `HVC_SOFT_RESTART` (x1).
    SoftRestart,
    /// PSCI `CPU_ON` (the entry point), for the CPU with this MPIDR.
    CpuOn(u64),
}

/// Why an address was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Zero.
    Zero,
    /// Not aligned to `align` bytes.
    Misaligned {
        /// The alignment the call needs.
        align: u64,
    },
    /// At or above 2^`pa_bits`, the CPU's physical address range (ID_AA64MMFR0_EL1.PARange).
    BeyondPa {
        /// The CPU's physical address size.
        pa_bits: u32,
    },
    /// Inside memory the stub itself occupies.
    InStub {
        /// That memory.
        stub: (u64, u64),
    },
    /// Not inside one RAM bank the EL1 stage reported.
    OutsideRam,
    /// The table's lower-EL AArch64 synchronous slot holds `udf #0`: a table never written.
    Udf,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zero => write!(f, "the address is zero"),
            Self::Misaligned { align } => write!(f, "not {align}-byte aligned"),
            Self::BeyondPa { pa_bits } => write!(
                f,
                "beyond the CPU's {pa_bits}-bit physical address range (ID_AA64MMFR0_EL1.PARange)"
            ),
            Self::InStub { stub } => write!(
                f,
                "inside the stub's own memory {:#x}..{:#x}",
                stub.0, stub.1
            ),
            Self::OutsideRam => write!(f, "not inside RAM"),
            Self::Udf => write!(
                f,
                "its lower-EL synchronous slot (offset {LOWER_A64_SYNC_OFFSET:#x}) is udf #0: no vector table was written there"
            ),
        }
    }
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
    /// Refuse `call` for its address `addr`: say why on the console, reply x0 = `x0`.
    Refuse {
        /// The call.
        call: Checked,
        /// The address refused.
        addr: u64,
        /// Why.
        why: Refusal,
        /// The caller's new x0 (HVC_STUB_ERR, or a PSCI error).
        x0: u64,
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
    /// Pass the call to the platform's PSCI with these x0..x3 (the function id as W0, a
    /// 32-bit call's arguments as W1..W3) and the caller's x4..x17, and return its x0..x3.
    ForwardPsci {
        /// x0..x3 as SMCCC reads them.
        args: [u64; 4],
    },
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
    /// `HYPSTUB_ADD_RAM`: record this bank if the hand-off has not happened yet.
    AddRam {
        /// The bank, checked.
        bank: Result<(u64, u64), Refusal>,
    },
}

/// What the stub knows of memory: the CPU's physical address size, what it occupies
/// itself, and the RAM banks the EL1 stage reported (none: not told, so not checked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bounds<'a> {
    /// The CPU's physical address size in bits.
    pub pa_bits: u32,
    /// The stub's own memory (`Platform::stub_memory`).
    pub stub: &'a [Range<u64>],
    /// The RAM banks, as `(start, end)`.
    pub ram: &'a [(u64, u64)],
}

impl Bounds<'_> {
    /// Whether `[start, start + len)` may hold something the caller gives the stub to run:
    /// below the PA limit, clear of the stub, inside one RAM bank (when the stub knows RAM).
    ///
    /// # Errors
    /// Why it may not.
    pub fn check(&self, start: u64, len: u64) -> Result<(), Refusal> {
        let limit = 1u64.checked_shl(self.pa_bits).unwrap_or(u64::MAX);
        let end = start.checked_add(len).filter(|&e| e <= limit);
        let Some(end) = end else {
            return Err(Refusal::BeyondPa {
                pa_bits: self.pa_bits,
            });
        };
        if let Some(s) = self.stub.iter().find(|s| s.start < end && start < s.end) {
            return Err(Refusal::InStub {
                stub: (s.start, s.end),
            });
        }
        if !self.ram.is_empty() && !self.ram.iter().any(|&(b, e)| b <= start && end <= e) {
            return Err(Refusal::OutsideRam);
        }
        Ok(())
    }
}

/// What the stub knows about the machine when it decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features<'a> {
    /// A GICv3 CPU interface with system registers exists (ID_AA64PFR0_EL1.GIC != 0).
    pub gicv3_sysregs: bool,
    /// The platform has PSCI to forward calls to.
    pub psci: bool,
    /// What the stub knows of memory.
    pub memory: Bounds<'a>,
}

/// Checks the address `addr` of `call`, needing `align` and `len` bytes.
fn check_address(addr: u64, align: u64, len: u64, bounds: &Bounds<'_>) -> Result<(), Refusal> {
    if addr == 0 {
        return Err(Refusal::Zero);
    }
    if !addr.is_multiple_of(align) {
        return Err(Refusal::Misaligned { align });
    }
    bounds.check(addr, len)
}

/// Decides what to do with a call whose registers x0..x4 are `x`.
///
/// A hyp-stub call is x0 below 0x8000_0000 as hyp-abi.rst numbers them, compared in full
/// as Linux's stub does; anything with W0 bit 31 set is an SMCCC call, whose function id is
/// W0 alone (DEN0028 2.5: bits 63:32 of X0 are not part of it). An SMC32/HVC32 call (bit 30
/// clear) takes its arguments from W1..W3 only; an SMC64/HVC64 call from all of X1..X3.
#[must_use]
pub fn decide(x: &[u64; 5], conduit: Conduit, features: Features<'_>) -> Action {
    let reply = |x0| Action::Reply { x0, x1: None };
    let function = x[0] as u32;
    if function & (1 << 31) == 0 {
        // A hyp-stub call (hyp-abi.rst): only `hvc` reaches it; an SMC with such an id is an
        // SMCCC call that does not exist.
        if conduit == Conduit::Smc {
            return reply(SMCCC_NOT_SUPPORTED);
        }
        let mem = &features.memory;
        let refuse = |call, why| Action::Refuse {
            call,
            addr: x[1],
            why,
            x0: HVC_STUB_ERR,
        };
        return match x[0] {
            HVC_SET_VECTORS => {
                match check_address(x[1], VECTOR_TABLE_ALIGN, VECTOR_TABLE_SIZE, mem) {
                    Ok(()) => Action::SetVectors { vbar: x[1] },
                    Err(why) => refuse(Checked::SetVectors, why),
                }
            }
            HVC_SOFT_RESTART => match check_address(x[1], 4, 4, mem) {
                Ok(()) => Action::SoftRestart {
                    entry: x[1],
                    args: [x[2], x[3], x[4]],
                },
                Err(why) => refuse(Checked::SoftRestart, why),
            },
            HVC_RESET_VECTORS => Action::ResetVectors,
            HVC_GET_ICH_VTR_EL2 if features.gicv3_sysregs => Action::GetIchVtr,
            _ => reply(HVC_STUB_ERR),
        };
    }
    // SMCCC (DEN0028 2.5, 2.6): W0 is the function id; a 32-bit call's arguments are W1..W3.
    let a = if function & SMC64_BIT == 0 {
        [x[1] & 0xffff_ffff, x[2] & 0xffff_ffff, x[3] & 0xffff_ffff]
    } else {
        [x[1], x[2], x[3]]
    };
    match function {
        SMCCC_VERSION => reply(STUB_SMCCC_VERSION),
        // SMCCC_ARCH_FEATURES: the stub offers nothing beyond SMCCC_VERSION itself.
        SMCCC_ARCH_FEATURES => reply(SMCCC_NOT_SUPPORTED),
        HYPSTUB_ADD_RAM if conduit == Conduit::Hvc => Action::AddRam {
            bank: ram_bank(a[0], a[1], features.memory.pa_bits),
        },
        PSCI_CPU_ON_64 | PSCI_CPU_ON_32 if features.psci => {
            let (target, entry, context_id) = (a[0], a[1], a[2]);
            if let Err(why) = check_address(entry, 4, 4, &features.memory) {
                return Action::Refuse {
                    call: Checked::CpuOn(target),
                    addr: entry,
                    why,
                    x0: PSCI_INVALID_ADDRESS,
                };
            }
            Action::CpuOn {
                target,
                entry,
                context_id,
            }
        }
        // Linux asks PSCI_FEATURES(SMCCC_VERSION) before it calls SMCCC_VERSION; the platform's
        // PSCI may not know that the stub answers it.
        PSCI_FEATURES if features.psci && a[0] as u32 == SMCCC_VERSION => reply(0),
        // Calls that resume a CPU at an entry point would bring it back at EL2 with nothing
        // set up; only CPU_ON is redirected through the stub, the rest are not offered.
        PSCI_FEATURES if features.psci && resumes_at_entry(a[0] as u32) => {
            reply(SMCCC_NOT_SUPPORTED)
        }
        f if resumes_at_entry(f) => reply(SMCCC_NOT_SUPPORTED),
        f if features.psci && is_psci(f) => Action::ForwardPsci {
            args: [u64::from(f), a[0], a[1], a[2]],
        },
        _ => reply(SMCCC_NOT_SUPPORTED),
    }
}

/// A RAM bank `HYPSTUB_ADD_RAM` may record: non-empty, page aligned, below the PA limit.
///
/// # Errors
/// Why not.
pub fn ram_bank(base: u64, size: u64, pa_bits: u32) -> Result<(u64, u64), Refusal> {
    if size == 0 {
        return Err(Refusal::Zero);
    }
    if !base.is_multiple_of(4096) || !size.is_multiple_of(4096) {
        return Err(Refusal::Misaligned { align: 4096 });
    }
    let limit = 1u64.checked_shl(pa_bits).unwrap_or(u64::MAX);
    match base.checked_add(size) {
        Some(end) if end <= limit => Ok((base, end)),
        _ => Err(Refusal::BeyondPa { pa_bits }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(
        clippy::single_range_in_vec_init,
        reason = "one stub range, as on QEMU virt"
    )]
    const STUB: [Range<u64>; 1] = [0x4010_0000..0x4010_8000];
    const RAM: [(u64, u64); 1] = [(0x4000_0000, 0x6000_0000)];
    const ALL: Features = Features {
        gicv3_sysregs: true,
        psci: true,
        memory: Bounds {
            pa_bits: 40,
            stub: &STUB,
            ram: &RAM,
        },
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

    /// The refusal of a hyp-stub call, checking that it answers HVC_STUB_ERR.
    fn refusal(a: Action) -> Option<Refusal> {
        match a {
            Action::Refuse { why, x0, .. } => {
                assert_eq!(x0, HVC_STUB_ERR);
                Some(why)
            }
            _ => None,
        }
    }

    #[test]
    fn set_vectors_needs_a_2k_aligned_table_in_ram_outside_the_stub() {
        assert_eq!(
            hvc([0, 0x4020_0800, 0, 0, 0]),
            Action::SetVectors { vbar: 0x4020_0800 }
        );
        let misaligned = Some(Refusal::Misaligned { align: 0x800 });
        assert_eq!(refusal(hvc([0, 0x4020_0900, 0, 0, 0])), misaligned);
        assert_eq!(refusal(hvc([0, 0x4020_0004, 0, 0, 0])), misaligned);
        assert_eq!(refusal(hvc([0, 0, 0, 0, 0])), Some(Refusal::Zero));
        let beyond = Some(Refusal::BeyondPa { pa_bits: 40 });
        assert_eq!(refusal(hvc([0, 1 << 40, 0, 0, 0])), beyond);
        assert_eq!(
            refusal(hvc([0, (1 << 40) - 0x800, 0, 0, 0])),
            Some(Refusal::OutsideRam)
        );
        assert_eq!(refusal(hvc([0, !0x7ffu64, 0, 0, 0])), beyond);
        let stub = Some(Refusal::InStub {
            stub: (0x4010_0000, 0x4010_8000),
        });
        assert_eq!(refusal(hvc([0, 0x4010_0000, 0, 0, 0])), stub);
        assert_eq!(refusal(hvc([0, 0x4010_7800, 0, 0, 0])), stub);
        assert_eq!(
            hvc([0, 0x4010_8000, 0, 0, 0]),
            Action::SetVectors { vbar: 0x4010_8000 }
        );
        // In flash, and a table that would run past the end of RAM.
        assert_eq!(refusal(hvc([0, 0x800, 0, 0, 0])), Some(Refusal::OutsideRam));
        assert_eq!(
            refusal(hvc([0, 0x6000_0000, 0, 0, 0])),
            Some(Refusal::OutsideRam)
        );
        assert_eq!(
            hvc([0, 0x5fff_f800, 0, 0, 0]),
            Action::SetVectors { vbar: 0x5fff_f800 }
        );
    }

    #[test]
    fn without_ram_reported_only_pa_range_and_stub_are_checked() {
        let f = Features {
            memory: Bounds {
                ram: &[],
                ..ALL.memory
            },
            ..ALL
        };
        assert_eq!(
            decide(&[0, 0x800, 0, 0, 0], Conduit::Hvc, f),
            Action::SetVectors { vbar: 0x800 }
        );
        assert_eq!(
            refusal(decide(&[1, 0x4010_0000, 0, 0, 0], Conduit::Hvc, f)),
            Some(Refusal::InStub {
                stub: (0x4010_0000, 0x4010_8000)
            })
        );
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
        assert_eq!(
            refusal(hvc([1, 0x4020_0002, 7, 8, 9])),
            Some(Refusal::Misaligned { align: 4 })
        );
        assert_eq!(refusal(hvc([1, 0, 7, 8, 9])), Some(Refusal::Zero));
        assert_eq!(refusal(hvc([1, 0x800, 7, 8, 9])), Some(Refusal::OutsideRam));
        assert_eq!(
            refusal(hvc([1, 0x4010_0800, 7, 8, 9])),
            Some(Refusal::InStub {
                stub: (0x4010_0000, 0x4010_8000)
            })
        );
        assert_eq!(
            refusal(hvc([1, 1 << 52, 7, 8, 9])),
            Some(Refusal::BeyondPa { pa_bits: 40 })
        );
        // The last word of RAM is still an entry.
        assert!(matches!(
            hvc([1, 0x5fff_fffc, 0, 0, 0]),
            Action::SoftRestart { .. }
        ));
    }

    #[test]
    fn cpu_on_entries_are_checked_like_soft_restart() {
        for (entry, why) in [
            (
                0x4010_0000,
                Refusal::InStub {
                    stub: (0x4010_0000, 0x4010_8000),
                },
            ),
            (0x1000, Refusal::OutsideRam),
            (1 << 48, Refusal::BeyondPa { pa_bits: 40 }),
            (0, Refusal::Zero),
        ] {
            assert_eq!(
                decide(&[0xC400_0003, 1, entry, 0, 0], Conduit::Smc, ALL),
                Action::Refuse {
                    call: Checked::CpuOn(1),
                    addr: entry,
                    why,
                    x0: PSCI_INVALID_ADDRESS
                },
                "{entry:#x}"
            );
        }
    }

    #[test]
    fn smccc_function_ids_are_w0() {
        // Bits 63:32 of x0 are not part of an SMCCC function id.
        assert_eq!(
            decide(&[0xffff_ffff_8000_0000, 0, 0, 0, 0], Conduit::Hvc, ALL),
            Action::Reply {
                x0: STUB_SMCCC_VERSION,
                x1: None
            }
        );
        assert_eq!(
            decide(
                &[
                    0x1_8400_0003,
                    0x1_0000_0001,
                    0x1_4020_1000,
                    0x1_0000_0005,
                    0
                ],
                Conduit::Smc,
                ALL
            ),
            Action::CpuOn {
                target: 1,
                entry: 0x4020_1000,
                context_id: 5
            }
        );
        // SMC64 CPU_ON keeps all 64 bits, so this entry is past the end of RAM.
        assert!(matches!(
            decide(&[0x1_C400_0003, 1, 0x1_4020_1000, 5, 0], Conduit::Smc, ALL),
            Action::Refuse {
                why: Refusal::OutsideRam,
                ..
            }
        ));
        // A forwarded 32-bit call gets W0..W3; a 64-bit one X1..X3 in full.
        for (regs, args) in [
            (
                [0xdead_0000_8400_0002, 0xffff_ffff_0000_0001, 0, 0, 0],
                [0x8400_0002, 1, 0, 0],
            ),
            (
                [0xC400_0004, 0xffff_ffff_0000_0001, 2, 3, 0],
                [0xC400_0004, 0xffff_ffff_0000_0001, 2, 3],
            ),
        ] {
            assert_eq!(
                decide(&regs, Conduit::Smc, ALL),
                Action::ForwardPsci { args },
                "{regs:#x?}"
            );
        }
        assert_eq!(
            decide(&[u64::MAX, 0, 0, 0, 0], Conduit::Hvc, ALL),
            Action::Reply {
                x0: SMCCC_NOT_SUPPORTED,
                x1: None
            }
        );
    }

    #[test]
    fn add_ram_only_by_hvc_and_checked() {
        assert_eq!(
            hvc([0xC600_0001, 0x4000_0000, 0x2000_0000, 0, 0]),
            Action::AddRam {
                bank: Ok((0x4000_0000, 0x6000_0000))
            }
        );
        assert_eq!(
            hvc([0xC600_0001, 0x4000_0000, 0, 0, 0]),
            Action::AddRam {
                bank: Err(Refusal::Zero)
            }
        );
        assert_eq!(
            hvc([0xC600_0001, 0x4000_0100, 0x1000, 0, 0]),
            Action::AddRam {
                bank: Err(Refusal::Misaligned { align: 4096 })
            }
        );
        assert_eq!(
            hvc([0xC600_0001, 0xff_ffff_f000, 0x2000, 0, 0]),
            Action::AddRam {
                bank: Err(Refusal::BeyondPa { pa_bits: 40 })
            }
        );
        assert_eq!(
            decide(&[0xC600_0001, 0x4000_0000, 0x1000, 0, 0], Conduit::Smc, ALL),
            Action::Reply {
                x0: SMCCC_NOT_SUPPORTED,
                x1: None
            }
        );
    }

    #[test]
    fn refusals_say_why() {
        extern crate std;
        use std::string::ToString;
        assert!(Refusal::BeyondPa { pa_bits: 40 }
            .to_string()
            .contains("40-bit physical address range"));
        assert_eq!(
            Refusal::InStub {
                stub: (0x4010_0000, 0x4010_8000)
            }
            .to_string(),
            "inside the stub's own memory 0x40100000..0x40108000"
        );
        assert!(Refusal::Udf.to_string().contains("udf #0"));
    }

    #[test]
    fn reset_finalise_and_unknown_ids() {
        assert_eq!(hvc([2, 0, 0, 0, 0]), Action::ResetVectors);
        assert_eq!(hvc([HVC_FINALISE_EL2, 0, 0, 0, 0]), err());
        for id in [
            5,
            6,
            0x1234,
            0x7fff_ffff,
            0x1_0000_0000,
            0xffff_ffff_0000_0001,
        ] {
            assert_eq!(hvc([id, 0, 0, 0, 0]), err(), "id {id:#x}");
        }
    }

    #[test]
    fn ich_vtr_only_with_gicv3_sysregs() {
        assert_eq!(hvc([4, 0, 0, 0, 0]), Action::GetIchVtr);
        let v2 = Features {
            gicv3_sysregs: false,
            ..ALL
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
                Action::ForwardPsci {
                    args: [id, 0, 0, 0]
                }
            );
        }
        assert_eq!(
            decide(&[0x8400_000A, 0x8000_0000, 0, 0, 0], Conduit::Smc, ALL),
            Action::Reply { x0: 0, x1: None }
        );
        assert_eq!(
            decide(&[0x8400_000A, 0x8400_0000, 0, 0, 0], Conduit::Smc, ALL),
            Action::ForwardPsci {
                args: [0x8400_000A, 0x8400_0000, 0, 0]
            }
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
            Action::Refuse {
                call: Checked::CpuOn(1),
                addr: 0x4020_1002,
                why: Refusal::Misaligned { align: 4 },
                x0: PSCI_INVALID_ADDRESS
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
