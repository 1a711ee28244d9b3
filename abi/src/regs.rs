//! Register values the EL2 stub, the relocation engine and the EL1 stage write, by their
//! field names from `aarch64-cpu` where it names them; RES1 bits, which it does not name,
//! are listed with the Arm ARM section that makes them RES1 (D19.2, the register
//! descriptions). Every value is a `const`, so assembly takes it as an operand.

use aarch64_cpu::registers::{SCTLR_EL1, SCTLR_EL2, SPSR_EL2};

/// SCTLR_EL2's RES1 bits in the non-VHE layout: 29:28, 23:22, 18, 16, 11, 5:4 (Arm ARM D19.2
/// SCTLR_EL2, with the features that would own some of them absent or left off).
const SCTLR_EL2_RES1: u64 =
    (0b11 << 28) | (0b11 << 22) | (1 << 18) | (1 << 16) | (1 << 11) | (0b11 << 4);

/// SCTLR_EL1's RES1 bits: 29:28, 23:22, 20, 11 (Arm ARM D19.2 SCTLR_EL1).
const SCTLR_EL1_RES1: u64 = (0b11 << 28) | (0b11 << 22) | (1 << 20) | (1 << 11);

/// SCTLR_EL2 with MMU, data and instruction caches off, little-endian, no alignment
/// checks: M = C = I = A = 0, EE = 0 (Little), only the RES1 bits set.
pub const SCTLR_EL2_MMU_OFF: u64 = SCTLR_EL2_RES1
    | SCTLR_EL2::EE::Little.value
    | SCTLR_EL2::M::Disable.value
    | SCTLR_EL2::C::NonCacheable.value
    | SCTLR_EL2::I::NonCacheable.value;

/// SCTLR_EL2 for the engine's copy: [`SCTLR_EL2_MMU_OFF`] with the MMU (M), the data (C)
/// and instruction (I) caches and the stack alignment check (SA) on.
pub const SCTLR_EL2_MMU_ON: u64 = SCTLR_EL2_MMU_OFF
    | SCTLR_EL2::M::Enable.value
    | SCTLR_EL2::C::Cacheable.value
    | SCTLR_EL2::SA::Enable.value
    | SCTLR_EL2::I::Cacheable.value;

/// SCTLR_EL1 in the "MMU off" state booting.rst asks for: M = C = I = A = 0, little-endian,
/// only the RES1 bits set.
pub const SCTLR_EL1_MMU_OFF: u64 = SCTLR_EL1_RES1
    | SCTLR_EL1::EE::LittleEndian.value
    | SCTLR_EL1::M::Disable.value
    | SCTLR_EL1::C::NonCacheable.value
    | SCTLR_EL1::I::NonCacheable.value;

/// SCTLR_EL1 for the EL1 stage with its MMU on: [`SCTLR_EL1_MMU_OFF`] with M, C, SA and I
/// set.
pub const SCTLR_EL1_MMU_ON: u64 = SCTLR_EL1_MMU_OFF
    | SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::I::Cacheable.value;

/// D, A, I and F masked (SPSR_EL2 bits 9:6).
const DAIF_MASKED: u64 = SPSR_EL2::D::Masked.value
    | SPSR_EL2::A::Masked.value
    | SPSR_EL2::I::Masked.value
    | SPSR_EL2::F::Masked.value;

/// SPSR_EL2 for an `eret` to EL1h (SP_EL1) with D, A, I and F masked.
pub const SPSR_EL1H_DAIF: u64 = DAIF_MASKED | SPSR_EL2::M::EL1h.value;
/// SPSR_EL2 for an `eret` to EL2h (SP_EL2) with D, A, I and F masked.
pub const SPSR_EL2H_DAIF: u64 = DAIF_MASKED | SPSR_EL2::M::EL2h.value;

#[cfg(test)]
mod tests {
    use super::*;

    /// The values as the Arm ARM's bit positions give them, written out once to prove the
    /// field names mean what the comments say.
    #[test]
    fn values_by_field_name_are_the_architectural_bits() {
        assert_eq!(SCTLR_EL2_MMU_OFF, 0x30c5_0830);
        assert_eq!(SCTLR_EL2_MMU_ON, SCTLR_EL2_MMU_OFF | 0x100d);
        assert_eq!(SCTLR_EL1_MMU_OFF, 0x30d0_0800);
        assert_eq!(SCTLR_EL1_MMU_ON, SCTLR_EL1_MMU_OFF | 0x100d);
        assert_eq!(SPSR_EL1H_DAIF, 0x3c5);
        assert_eq!(SPSR_EL2H_DAIF, 0x3c9);
    }
}
