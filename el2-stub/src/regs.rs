//! EL2 register set-up for an EL1 guest, and the drop to EL1.
//!
//! Each value follows Documentation/arch/arm64/booting.rst ("Entering the kernel at EL1 with
//! EL2 present") and the Arm ARM register descriptions cited beside it. This module owns the
//! set-up; the handler writes only what a call changes (VBAR, ELR, SPSR, SCTLR_EL2).

#[cfg(target_arch = "aarch64")]
use aarch64_cpu::asm::barrier;
#[cfg(target_arch = "aarch64")]
use aarch64_cpu::registers::*;

/// The MMU-off SCTLR values and the SPSR values for an `eret` with DAIF masked: shared with
/// the relocation engine through `hypstub-abi`, which defines them by field name.
pub use hypstub_abi::regs::{SCTLR_EL1_MMU_OFF, SCTLR_EL2_MMU_OFF, SPSR_EL1H_DAIF, SPSR_EL2H_DAIF};

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
    /// SME2 (ID_AA64PFR1_EL1.SME >= 2): ZT0 exists.
    pub sme2: bool,
    /// SME_FA64 (ID_AA64SMFR0_EL1.FA64).
    pub sme_fa64: bool,
    /// Permission indirection (ID_AA64MMFR3_EL1.S1PIE).
    pub s1pie: bool,
    /// Permission overlays (ID_AA64MMFR3_EL1.S1POE).
    pub s1poe: bool,
    /// Guarded control stacks (ID_AA64PFR1_EL1.GCS).
    pub gcs: bool,
    /// TCR2_EL1 (ID_AA64MMFR3_EL1.TCRX).
    pub tcr2: bool,
    /// SPE with PMSNEVFR_EL1 (ID_AA64DFR0_EL1.PMSVer >= 3).
    pub spe_nevfr: bool,
    /// The physical address size in bits (ID_AA64MMFR0_EL1.PARange).
    pub pa_bits: u32,
}

/// The bits a PARange value stands for (Arm ARM D19.2 ID_AA64MMFR0_EL1; values above 6 are
/// reserved and read here as the largest).
#[must_use]
pub fn pa_range_bits(pa_range: u64) -> u32 {
    match pa_range {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}

/// HFGRTR_EL2 and HFGWTR_EL2 bits whose meaning is inverted: 0 traps (Arm ARM D19.2,
/// HFGRTR_EL2). Everything else in those registers traps when 1.
const HFGXTR_NPOR_EL0: u64 = 1 << 59;
const HFGXTR_NPIR_EL1: u64 = 1 << 58;
const HFGXTR_NPIRE0_EL1: u64 = 1 << 57;
const HFGXTR_NTPIDR2_EL0: u64 = 1 << 55;
const HFGXTR_NSMPRI_EL1: u64 = 1 << 54;
const HFGXTR_NGCS_EL1: u64 = 1 << 53;
const HFGXTR_NGCS_EL0: u64 = 1 << 52;

/// HFGRTR_EL2/HFGWTR_EL2 for an EL1 guest: no fine-grained read or write traps, which means
/// the inverted ("n") bits of the features this CPU has set to 1 (booting.rst, "For CPUs
/// with the Fine Grained Traps (FEAT_FGT) extension present"; Linux `__init_el2_fgt`).
#[must_use]
pub fn hfgxtr_el2(f: &CpuFeatures) -> u64 {
    let mut v = 0;
    if f.sme {
        v |= HFGXTR_NTPIDR2_EL0 | HFGXTR_NSMPRI_EL1;
    }
    if f.s1pie {
        v |= HFGXTR_NPIR_EL1 | HFGXTR_NPIRE0_EL1;
    }
    if f.s1poe {
        v |= HFGXTR_NPOR_EL0;
    }
    if f.gcs {
        v |= HFGXTR_NGCS_EL0 | HFGXTR_NGCS_EL1;
    }
    v
}

/// HDFGRTR_EL2/HDFGWTR_EL2: no traps; nPMSNEVFR_EL1 (bit 62, inverted) set with SPE v1.2.
#[must_use]
pub fn hdfgxtr_el2(f: &CpuFeatures) -> u64 {
    if f.spe_nevfr {
        1 << 62
    } else {
        0
    }
}

/// HCRX_EL2 for an EL1 guest (booting.rst, FEAT_HCX): MSCEn (bit 11) with FEAT_MOPS,
/// TCR2En (bit 14) with FEAT_TCR2, GCSEn (bit 22) with FEAT_GCS.
#[must_use]
pub fn hcrx_el2(f: &CpuFeatures) -> u64 {
    let mut v = 0;
    if f.mops {
        v |= 1 << 11;
    }
    if f.tcr2 {
        v |= 1 << 14;
    }
    if f.gcs {
        v |= 1 << 22;
    }
    v
}

/// SMCR_EL2 for an EL1 guest (booting.rst, FEAT_SME): LEN at its largest, FA64 (bit 31)
/// with FEAT_SME_FA64, EZT0 (bit 30) with SME2.
#[must_use]
pub fn smcr_el2(f: &CpuFeatures) -> u64 {
    let mut v = 0x1ff;
    if f.sme_fa64 {
        v |= 1 << 31;
    }
    if f.sme2 {
        v |= 1 << 30;
    }
    v
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
        let (isar2, mmfr3, smfr0): (u64, u64, u64);
        // SAFETY: reads ID_AA64ISAR2_EL1 (S3_0_C0_C6_2), ID_AA64MMFR3_EL1 (S3_0_C0_C7_3) and
        // ID_AA64SMFR0_EL1 (S3_0_C0_C4_5): ID registers, which read as zero where the
        // architecture version predates them (Arm ARM D17.3.1: the ID space is RAZ where
        // unallocated); no side effects.
        unsafe {
            core::arch::asm!(
                "mrs {}, S3_0_C0_C6_2",
                "mrs {}, S3_0_C0_C7_3",
                "mrs {}, S3_0_C0_C4_5",
                out(reg) isar2,
                out(reg) mmfr3,
                out(reg) smfr0,
                options(nomem, nostack)
            )
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
            sme2: field(pfr1, 24) >= 2,
            sme_fa64: smfr0 >> 63 != 0,
            s1pie: field(mmfr3, 8) != 0,
            s1poe: field(mmfr3, 16) != 0,
            gcs: field(pfr1, 44) != 0,
            tcr2: field(mmfr3, 0) != 0,
            spe_nevfr: field(dfr0, 32) >= 3,
            pa_bits: pa_range_bits(field(mmfr0, 0)),
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
        // SAFETY: SMCR_EL2 (S3_4_C1_C2_6) exists with SME and CPTR_EL2.TSM is 0; the value
        // sets only LEN and the bits of features this CPU has.
        unsafe {
            core::arch::asm!("msr S3_4_C1_C2_6, {}", in(reg) smcr_el2(f), options(nomem, nostack))
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
        // Fine-grained traps reset to UNKNOWN values on hardware: no trap at all, which sets
        // the inverted bits of the features present.
        HFGRTR_EL2.set(hfgxtr_el2(f));
        HFGWTR_EL2.set(hfgxtr_el2(f));
        HFGITR_EL2.set(0);
        HDFGRTR_EL2.set(hdfgxtr_el2(f));
        HDFGWTR_EL2.set(hdfgxtr_el2(f));
    }
    if f.hcx {
        // SAFETY: HCRX_EL2 (S3_4_C1_C2_2) exists with FEAT_HCX; only bits of features this
        // CPU has are set.
        unsafe {
            core::arch::asm!("msr S3_4_C1_C2_2, {}", in(reg) hcrx_el2(f), options(nomem, nostack))
        };
    }
    // Registers with UNKNOWN reset values that EL1 depends on (Linux `__init_el2_stage2`,
    // `__init_el2_hstr`, `__init_el2_timers`): VMID 0 for every CPU, so that EL1's broadcast
    // TLB maintenance reaches them all; no trap of AArch32 EL0 CP15 accesses; the EL2
    // physical timer off.
    VTTBR_EL2.set(0);
    // SAFETY: HSTR_EL2 exists whenever EL2 does; 0 traps nothing.
    unsafe { core::arch::asm!("msr hstr_el2, xzr", options(nomem, nostack)) };
    CNTHP_CTL_EL2.set(0);

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
    fn fine_grained_traps_set_the_inverted_bits_of_present_features() {
        assert_eq!(hfgxtr_el2(&CpuFeatures::default()), 0);
        let sme = CpuFeatures {
            sme: true,
            ..Default::default()
        };
        assert_eq!(
            hfgxtr_el2(&sme),
            (1 << 55) | (1 << 54),
            "nTPIDR2_EL0, nSMPRI_EL1"
        );
        let all = CpuFeatures {
            sme: true,
            s1pie: true,
            s1poe: true,
            gcs: true,
            spe_nevfr: true,
            ..Default::default()
        };
        // Bits 59..57 (nPOR_EL0, nPIR_EL1, nPIRE0_EL1) and 55..52; bit 56 (nRCWMASK) is not ours.
        assert_eq!(hfgxtr_el2(&all), 0x0ef0_0000_0000_0000);
        assert_eq!(hdfgxtr_el2(&all), 1 << 62);
    }

    #[test]
    fn hcrx_and_smcr_follow_features() {
        assert_eq!(hcrx_el2(&CpuFeatures::default()), 0);
        let f = CpuFeatures {
            mops: true,
            tcr2: true,
            gcs: true,
            ..Default::default()
        };
        assert_eq!(hcrx_el2(&f), (1 << 11) | (1 << 14) | (1 << 22));
        assert_eq!(smcr_el2(&CpuFeatures::default()), 0x1ff);
        let f = CpuFeatures {
            sme: true,
            sme2: true,
            sme_fa64: true,
            ..Default::default()
        };
        assert_eq!(smcr_el2(&f), 0x1ff | (1 << 30) | (1 << 31));
    }

    #[test]
    fn pa_ranges() {
        assert_eq!(pa_range_bits(0), 32);
        assert_eq!(pa_range_bits(2), 40);
        assert_eq!(pa_range_bits(4), 44);
        assert_eq!(pa_range_bits(6), 52);
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
