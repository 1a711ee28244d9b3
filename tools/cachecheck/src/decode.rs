//! A64 decoding of the few system instructions the cache model needs.
//!
//! The system-instruction class (Arm ARM C5.1, "System instructions") is
//! `1101_0101_00 L op0:2 op1:3 CRn:4 CRm:4 op2:3 Rt:5`: `SYS` (cache maintenance, `DC`
//! and `IC`) has L = 0 and op0 = 0b01, `MSR` (register) has L = 0 and op0 = 0b1x. The
//! exception-generating class is `1101_0100 opc:3 imm16 op2:3 LL:2` (`SVC` LL = 01,
//! `HVC` 10, `SMC` 11, opc = op2 = 0), and `ERET` is the fixed word `0xd69f03e0`
//! (`ERETAA`/`ERETAB`: `0xd69f0bff`/`0xd69f0fff`).

/// A data-cache operation by virtual address (or by set/way, which the model cannot map
/// to an address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DcOp {
    /// `DC CVAC` (and `DC CVAP`/`CVADP`, which clean at least to the PoC): clean to the
    /// Point of Coherency.
    Cvac,
    /// `DC CVAU`: clean to the Point of Unification.
    Cvau,
    /// `DC CIVAC`: clean and invalidate to the Point of Coherency.
    Civac,
    /// `DC IVAC`: invalidate to the Point of Coherency (dirty data is discarded).
    Ivac,
    /// `DC ZVA`: zero a block (the model assumes a 64-byte block).
    Zva,
    /// `DC ISW`/`CSW`/`CISW`: by set/way; counted, not modelled.
    SetWay,
}

/// An instruction-cache operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcOp {
    /// `IC IALLU` or `IC IALLUIS`: invalidate the whole instruction cache.
    Iallu,
    /// `IC IVAU`: invalidate the instruction cache line holding an address.
    Ivau,
}

/// A system register whose write can change the cache regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegimeReg {
    /// `SCTLR_EL1` (or `SCTLR_EL12`).
    SctlrEl1,
    /// `SCTLR_EL2`.
    SctlrEl2,
    /// `HCR_EL2`.
    HcrEl2,
}

/// What the model wants to know about an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn {
    /// `DC <op>, Xt`.
    Dc(DcOp, u8),
    /// `IC <op>{, Xt}`.
    Ic(IcOp, u8),
    /// `MSR <reg>, Xt`.
    Msr(RegimeReg, u8),
    /// `ERET`, `ERETAA`, `ERETAB`.
    Eret,
    /// `HVC`: a call to EL2.
    Hvc,
    /// `SVC` or `SMC`: another exception entry.
    Call,
}

/// Register number 31 in a `DC`/`IC`/`MSR` operand: XZR, reads as 0.
pub const XZR: u8 = 31;

/// Decodes one A64 instruction word; `None` for everything the model does not need.
pub fn decode(word: u32) -> Option<Insn> {
    if matches!(word, 0xd69f_03e0 | 0xd69f_0bff | 0xd69f_0fff) {
        return Some(Insn::Eret);
    }
    // Exception generation: SVC/HVC/SMC have opc = 000, op2 = 000, LL != 00.
    if word & 0xffe0_001c == 0xd400_0000 {
        return match word & 3 {
            0 => None,
            2 => Some(Insn::Hvc),
            _ => Some(Insn::Call),
        };
    }
    // System instruction class with L = 0.
    if word & 0xffe0_0000 != 0xd500_0000 {
        return None;
    }
    let op0 = (word >> 19) & 3;
    let op1 = (word >> 16) & 7;
    let crn = (word >> 12) & 0xf;
    let crm = (word >> 8) & 0xf;
    let op2 = (word >> 5) & 7;
    let rt = (word & 0x1f) as u8;
    match op0 {
        0b01 if crn == 7 => decode_sys_cache(op1, crm, op2, rt),
        0b11 if crn == 1 && op2 == 0 => match (op1, crm) {
            (0, 0) | (5, 0) => Some(Insn::Msr(RegimeReg::SctlrEl1, rt)),
            (4, 0) => Some(Insn::Msr(RegimeReg::SctlrEl2, rt)),
            (4, 1) => Some(Insn::Msr(RegimeReg::HcrEl2, rt)),
            _ => None,
        },
        _ => None,
    }
}

fn decode_sys_cache(op1: u32, crm: u32, op2: u32, rt: u8) -> Option<Insn> {
    let dc = |op| Some(Insn::Dc(op, rt));
    match (op1, crm, op2) {
        (0, 1, 0) | (0, 5, 0) => Some(Insn::Ic(IcOp::Iallu, rt)),
        (3, 5, 1) => Some(Insn::Ic(IcOp::Ivau, rt)),
        (0, 6, 1) => dc(DcOp::Ivac),
        (0, 6, 2) | (0, 10, 2) | (0, 14, 2) => dc(DcOp::SetWay),
        (3, 4, 1) => dc(DcOp::Zva),
        (3, 10, 1) | (3, 12, 1) | (3, 13, 1) => dc(DcOp::Cvac),
        (3, 11, 1) => dc(DcOp::Cvau),
        (3, 14, 1) => dc(DcOp::Civac),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `SYS #op1, C7, Cm, #op2, Xt` from the field layout, to check the decoder
    /// against the encoding rules rather than only against itself.
    fn sys(op1: u32, crm: u32, op2: u32, rt: u32) -> u32 {
        0xd508_0000 | (op1 << 16) | (7 << 12) | (crm << 8) | (op2 << 5) | rt
    }

    #[test]
    fn data_cache_by_va() {
        assert_eq!(decode(0xd50b_7e20), Some(Insn::Dc(DcOp::Civac, 0))); // dc civac, x0
        assert_eq!(decode(0xd50b_7a21), Some(Insn::Dc(DcOp::Cvac, 1))); // dc cvac, x1
        assert_eq!(decode(0xd508_7622), Some(Insn::Dc(DcOp::Ivac, 2))); // dc ivac, x2
        assert_eq!(decode(0xd50b_7b23), Some(Insn::Dc(DcOp::Cvau, 3))); // dc cvau, x3
        assert_eq!(decode(0xd50b_7424), Some(Insn::Dc(DcOp::Zva, 4))); // dc zva, x4
        assert_eq!(decode(0xd50b_7c25), Some(Insn::Dc(DcOp::Cvac, 5))); // dc cvap, x5
        assert_eq!(decode(0xd50b_7e3e), Some(Insn::Dc(DcOp::Civac, 30))); // dc civac, x30
        assert_eq!(sys(3, 14, 1, 0), 0xd50b_7e20);
        assert_eq!(sys(3, 10, 1, 1), 0xd50b_7a21);
        assert_eq!(sys(0, 6, 1, 2), 0xd508_7622);
    }

    #[test]
    fn set_way_is_recognised() {
        assert_eq!(decode(0xd508_7e40), Some(Insn::Dc(DcOp::SetWay, 0))); // dc cisw, x0
        assert_eq!(decode(0xd508_7a41), Some(Insn::Dc(DcOp::SetWay, 1))); // dc csw, x1
        assert_eq!(decode(0xd508_7642), Some(Insn::Dc(DcOp::SetWay, 2))); // dc isw, x2
    }

    #[test]
    fn instruction_cache() {
        assert_eq!(decode(0xd508_751f), Some(Insn::Ic(IcOp::Iallu, XZR))); // ic iallu
        assert_eq!(decode(0xd508_711f), Some(Insn::Ic(IcOp::Iallu, XZR))); // ic ialluis
        assert_eq!(decode(0xd50b_7520), Some(Insn::Ic(IcOp::Ivau, 0))); // ic ivau, x0
        assert_eq!(sys(0, 5, 0, 31), 0xd508_751f);
    }

    #[test]
    fn regime_registers() {
        assert_eq!(decode(0xd51c_1000), Some(Insn::Msr(RegimeReg::SctlrEl2, 0))); // msr sctlr_el2, x0
        assert_eq!(decode(0xd518_1000), Some(Insn::Msr(RegimeReg::SctlrEl1, 0))); // msr sctlr_el1, x0
        assert_eq!(decode(0xd51c_1100), Some(Insn::Msr(RegimeReg::HcrEl2, 0))); // msr hcr_el2, x0
        assert_eq!(decode(0xd51d_1001), Some(Insn::Msr(RegimeReg::SctlrEl1, 1))); // msr sctlr_el12, x1
                                                                                  // mrs x0, sctlr_el2 (L = 1) and msr actlr_el2 (op2 = 1) are not regime writes.
        assert_eq!(decode(0xd53c_1000), None);
        assert_eq!(decode(0xd51c_1020), None);
        // msr tcr_el2, x0 (CRn = 2).
        assert_eq!(decode(0xd51c_2040), None);
    }

    #[test]
    fn exceptions() {
        assert_eq!(decode(0xd69f_03e0), Some(Insn::Eret));
        assert_eq!(decode(0xd400_0002), Some(Insn::Hvc)); // hvc #0
        assert_eq!(decode(0xd400_0003), Some(Insn::Call)); // smc #0
        assert_eq!(decode(0xd400_0001), Some(Insn::Call)); // svc #0
        assert_eq!(decode(0xd400_0c22), Some(Insn::Hvc)); // hvc #0x61
        assert_eq!(decode(0xd420_0000), None); // brk #0
        assert_eq!(decode(0xd400_0000), None); // LL = 00 is unallocated
    }

    #[test]
    fn ordinary_instructions() {
        assert_eq!(decode(0xd503_201f), None); // nop
        assert_eq!(decode(0xd503_3f9f), None); // dsb sy
        assert_eq!(decode(0xd508_871f), None); // tlbi vmalle1
        assert_eq!(decode(0xd65f_03c0), None); // ret
        assert_eq!(decode(0xf900_0020), None); // str x0, [x1]
    }
}
