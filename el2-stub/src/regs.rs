//! EL2 register set-up for an EL1 guest, and the drop to EL1.
//!
//! Each value follows Documentation/arch/arm64/booting.rst ("Entering the kernel at EL1 with
//! EL2 present") and the Arm ARM register descriptions cited beside it. Only this module and
//! the assembly write EL2 system registers.

#[cfg(target_arch = "aarch64")]
use aarch64_cpu::asm::barrier;
#[cfg(target_arch = "aarch64")]
use aarch64_cpu::registers::*;

/// SCTLR_EL2 with every RES1 bit of the non-VHE layout (bits 29:28, 23:22, 18, 16, 11, 5:4;
/// Arm ARM D19.2 SCTLR_EL2) and M = C = I = 0: MMU, data and instruction caches off,
/// little-endian.
pub const SCTLR_EL2_MMU_OFF: u64 =
    (0b11 << 28) | (0b11 << 22) | (1 << 18) | (1 << 16) | (1 << 11) | (0b11 << 4);

/// SCTLR_EL1 with its RES1 bits (29:28, 23:22, 20, 11; Arm ARM D19.2 SCTLR_EL1) and the MMU,
/// caches and alignment checks off: the "MMU off" state booting.rst asks for.
pub const SCTLR_EL1_MMU_OFF: u64 = (0b11 << 28) | (0b11 << 22) | (1 << 20) | (1 << 11);

/// SPSR value for an `eret` to EL1h (SP_EL1) with D, A, I and F masked.
pub const SPSR_EL1H_DAIF: u64 = 0x3c5;
/// SPSR value for an `eret` to EL2h (SP_EL2) with D, A, I and F masked.
pub const SPSR_EL2H_DAIF: u64 = 0x3c9;

/// CPTR_EL2 (non-VHE layout): bits 13:12 and 9:0 are RES1 where the features that own
/// some of them are absent (Arm ARM D19.2 CPTR_EL2); TFP (10), TTA (20), TAM (30) and
/// TCPAC (31) stay 0 so nothing FP/SIMD, trace, AMU or CPACR related traps.
const CPTR_EL2_RES1: u64 = (0b11 << 12) | 0x3ff;
/// CPTR_EL2.TZ: traps SVE. A RES1 bit when SVE is absent.
const CPTR_EL2_TZ: u64 = 1 << 8;
/// CPTR_EL2.TSM: traps SME. A RES1 bit when SME is absent.
const CPTR_EL2_TSM: u64 = 1 << 12;

/// CPTR_EL2 for an EL1 guest on a CPU with features `f`: nothing trapped.
#[must_use]
pub fn cptr_el2(f: &CpuFeatures) -> u64 {
    let mut cptr = CPTR_EL2_RES1;
    if f.sve {
        cptr &= !CPTR_EL2_TZ;
    }
    if f.sme {
        cptr &= !CPTR_EL2_TSM;
    }
    cptr
}

/// What this CPU implements, from its ID registers, as far as the set-up depends on it.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuFeatures {
    /// GICv3 system register interface (ID_AA64PFR0_EL1.GIC).
    pub gicv3_sysregs: bool,
    /// SVE (ID_AA64PFR0_EL1.SVE).
    pub sve: bool,
    /// SME (ID_AA64PFR1_EL1.SME).
    pub sme: bool,
    /// Pointer authentication (ID_AA64ISAR1_EL1 APA/API, ID_AA64ISAR2_EL1 APA3).
    pub pauth: bool,
    /// Fine-grained traps (ID_AA64MMFR0_EL1.FGT).
    pub fgt: bool,
    /// HCRX_EL2 (ID_AA64MMFR1_EL1.HCX).
    pub hcx: bool,
    /// Memory copy and set instructions (ID_AA64ISAR2_EL1.MOPS).
    pub mops: bool,
    /// PMUv3, and so PMCR_EL0.N (ID_AA64DFR0_EL1.PMUVer not 0 and not 0xf).
    pub pmu: bool,
}

#[cfg(target_arch = "aarch64")]
fn field(reg: u64, shift: u32) -> u64 {
    (reg >> shift) & 0xf
}

#[cfg(target_arch = "aarch64")]
impl CpuFeatures {
    /// Reads the ID registers of the running CPU.
    #[must_use]
    pub fn read() -> Self {
        let pfr0 = ID_AA64PFR0_EL1.get();
        let pfr1 = ID_AA64PFR1_EL1.get();
        let isar1 = ID_AA64ISAR1_EL1.get();
        let isar2: u64;
        // SAFETY: reads ID_AA64ISAR2_EL1 (S3_0_C0_C6_2), an ID register that reads as zero
        // where it is not implemented (Arm ARM D17.3.1: reserved ID space is RAZ); no side
        // effects.
        unsafe {
            core::arch::asm!("mrs {}, S3_0_C0_C6_2", out(reg) isar2, options(nomem, nostack))
        };
        let mmfr0 = ID_AA64MMFR0_EL1.get();
        let mmfr1 = ID_AA64MMFR1_EL1.get();
        let dfr0 = ID_AA64DFR0_EL1.get();
        let pmuver = field(dfr0, 8);
        Self {
            gicv3_sysregs: field(pfr0, 24) != 0,
            sve: field(pfr0, 32) != 0,
            sme: field(pfr1, 24) != 0,
            pauth: field(isar1, 4) != 0 || field(isar1, 8) != 0 || field(isar2, 12) != 0,
            fgt: field(mmfr0, 56) != 0,
            hcx: field(mmfr1, 40) != 0,
            mops: field(isar2, 16) != 0,
            pmu: pmuver != 0 && pmuver != 0xf,
        }
    }
}

#[cfg(target_arch = "aarch64")]
/// Puts this CPU's EL2 in the state an EL1 guest (the firmware's EL1 stage, or a payload
/// entered at EL1) needs. Runs at EL2 with the MMU off; touches no memory.
pub fn init_el2_for_el1(f: &CpuFeatures) {
    // EL1 is AArch64 (RW); SMCs from EL1 trap to the stub (TSC) so PSCI calls can be
    // answered or redirected; no stage 2 (VM = 0), interrupts routed to EL1 (IMO/FMO/AMO =
    // 0), non-VHE (E2H = 0). With pointer authentication, API/APK stop EL1's PAuth
    // instructions and key registers from trapping (booting.rst).
    let mut hcr = HCR_EL2::RW::EL1IsAarch64 + HCR_EL2::TSC::EnableTrapEl1SmcToEl2;
    if f.pauth {
        hcr += HCR_EL2::API::DisableTrapPointerAuthInstToEl2
            + HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2;
    }
    HCR_EL2.write(hcr);

    // booting.rst: EL1 must be able to use the physical counter and timer, and CNTVOFF_EL2
    // must be the same on every CPU.
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCEN::SET + CNTHCTL_EL2::EL1PCTEN::SET);
    CNTVOFF_EL2.set(0);

    // No FP/SIMD, SVE or SME traps (booting.rst: CPTR_EL2 must not trap FP/SIMD; TZ and TSM
    // clear where SVE/SME exist), with the vector lengths EL1 may use at their maximum.
    CPTR_EL2.set(cptr_el2(f));
    barrier::isb(barrier::SY);
    if f.sve {
        // SAFETY: ZCR_EL2 (S3_4_C1_C2_0) exists with SVE, and CPTR_EL2.TZ is now 0 so the
        // write does not trap; LEN = 0x1ff asks for the largest vector length.
        unsafe {
            core::arch::asm!("msr S3_4_C1_C2_0, {}", in(reg) 0x1ffu64, options(nomem, nostack))
        };
    }
    if f.sme {
        // SAFETY: SMCR_EL2 (S3_4_C1_C2_6) exists with SME and CPTR_EL2.TSM is 0; LEN = 0x1ff.
        unsafe {
            core::arch::asm!("msr S3_4_C1_C2_6, {}", in(reg) 0x1ffu64, options(nomem, nostack))
        };
    }

    // Debug and PMU: no traps, and every event counter belongs to EL1 (HPMN = PMCR_EL0.N).
    let hpmn = if f.pmu {
        (PMCR_EL0_N_MASK & read_pmcr_el0()) >> 11
    } else {
        0
    };
    MDCR_EL2.set(hpmn);

    // EL1 reads MIDR_EL1/MPIDR_EL1 through these when EL2 exists (Arm ARM D19.2 VPIDR_EL2).
    let midr = MIDR_EL1.get();
    // SAFETY: VPIDR_EL2 exists whenever EL2 does; writing it only changes what EL1 reads as
    // MIDR_EL1.
    unsafe { core::arch::asm!("msr vpidr_el2, {}", in(reg) midr, options(nomem, nostack)) };
    VMPIDR_EL2.set(MPIDR_EL1.get());

    if f.fgt {
        // Fine-grained traps reset to UNKNOWN values on hardware: clear them all.
        HFGRTR_EL2.set(0);
        HFGWTR_EL2.set(0);
        HFGITR_EL2.set(0);
        HDFGRTR_EL2.set(0);
        HDFGWTR_EL2.set(0);
    }
    if f.hcx {
        // HCRX_EL2: MSCEn lets EL1 use the memory copy/set instructions (booting.rst).
        let hcrx: u64 = if f.mops { 1 << 11 } else { 0 };
        // SAFETY: HCRX_EL2 (S3_4_C1_C2_2) exists with FEAT_HCX; no other bit is set.
        unsafe { core::arch::asm!("msr S3_4_C1_C2_2, {}", in(reg) hcrx, options(nomem, nostack)) };
    }

    if f.gicv3_sysregs {
        // booting.rst: ICC_SRE_EL2.Enable and SRE set so EL1 can use the GICv3 system
        // registers; no virtual CPU interface (ICH_HCR_EL2.En = 0).
        ICC_SRE_EL2.write(ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::ENABLE::SET);
        barrier::isb(barrier::SY);
        ICH_HCR_EL2.set(0);
    }

    // EL1 starts with its MMU and caches off, little-endian.
    SCTLR_EL1.set(SCTLR_EL1_MMU_OFF);
    barrier::isb(barrier::SY);
}

#[cfg(target_arch = "aarch64")]
const PMCR_EL0_N_MASK: u64 = 0x1f << 11;

#[cfg(target_arch = "aarch64")]
fn read_pmcr_el0() -> u64 {
    let v: u64;
    // SAFETY: only called when PMUv3 is implemented (CpuFeatures::pmu), so PMCR_EL0 exists;
    // reading it at EL2 never traps.
    unsafe { core::arch::asm!("mrs {}, pmcr_el0", out(reg) v, options(nomem, nostack)) };
    v
}

#[cfg(target_arch = "aarch64")]
/// Whether this CPU is running at EL2.
#[must_use]
pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

#[cfg(target_arch = "aarch64")]
/// Leaves EL2 for `entry` at EL1h with SP_EL1 = `sp`, x0 = `x0`, DAIF masked (booting.rst),
/// by exception return (Arm ARM D1.11.1: ELR_EL2 and SPSR_EL2 give the target).
pub fn drop_to_el1(entry: u64, sp: u64, x0: u64) -> ! {
    SP_EL1.set(sp);
    ELR_EL2.set(entry);
    SPSR_EL2.set(SPSR_EL1H_DAIF);
    // SAFETY: ELR/SPSR_EL2 aim at EL1 code the caller provides, with a stack; `eret` leaves
    // this context for good.
    unsafe {
        core::arch::asm!(
            "mov x1, xzr",
            "mov x2, xzr",
            "mov x3, xzr",
            "eret",
            in("x0") x0,
            options(noreturn, nostack)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cptr_traps_nothing() {
        let plain = cptr_el2(&CpuFeatures::default());
        assert_eq!(plain, 0x33ff, "RES1 bits only");
        assert_eq!(plain & (1 << 10), 0, "TFP clear: FP/SIMD not trapped");
        let all = cptr_el2(&CpuFeatures {
            sve: true,
            sme: true,
            ..Default::default()
        });
        assert_eq!(all & (1 << 8), 0, "TZ clear with SVE");
        assert_eq!(all & (1 << 12), 0, "TSM clear with SME");
    }

    #[test]
    fn sctlr_values_keep_mmu_and_caches_off() {
        for v in [SCTLR_EL2_MMU_OFF, SCTLR_EL1_MMU_OFF] {
            assert_eq!(v & 0b101, 0, "M and C clear");
            assert_eq!(v & (1 << 12), 0, "I clear");
            assert_eq!(v & (1 << 25), 0, "little-endian");
        }
    }
}
