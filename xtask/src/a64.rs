//! A tiny A64 instruction encoder: exactly the instructions the bench payload needs
//! ([`crate::bench::payload`]), so that xtask can write a runnable arm64 Image without an
//! assembler on the host.
//!
//! Each function returns the 32-bit instruction word (stored little-endian). The field
//! layouts are those of the Arm Architecture Reference Manual (DDI 0487), section C6.2
//! ("Alphabetical list of A64 base instructions"); the unit tests compare every function
//! with the words LLVM's assembler produces for the same source line.

/// A general-purpose register number, 0 to 30 (31 is `xzr`/`wzr` or `sp`, which nothing
/// here uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(u8);

impl Reg {
    /// Register `n`; panics unless `n <= 30` (a programming error in the caller).
    pub const fn new(n: u8) -> Reg {
        assert!(n <= 30, "A64 general-purpose registers are 0 to 30");
        Reg(n)
    }

    const fn bits(self) -> u32 {
        self.0 as u32
    }
}

/// Which half-word of the register an immediate move writes (`LSL #0/16/32/48`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// `LSL #0`: bits 15:0.
    L0 = 0,
    /// `LSL #16`: bits 31:16.
    L16 = 1,
    /// `LSL #32`: bits 47:32 (64-bit registers only).
    L32 = 2,
    /// `LSL #48`: bits 63:48 (64-bit registers only).
    L48 = 3,
}

/// Move wide immediate (C6.2.245 MOVZ, C6.2.243 MOVK):
/// `sf | opc(2) | 100101 | hw(2) | imm16 | Rd`, with opc = 0b10 for MOVZ and 0b11 for MOVK.
const fn move_wide(sf: bool, opc: u32, hw: Shift, imm16: u16, rd: Reg) -> u32 {
    assert!(
        sf || matches!(hw, Shift::L0 | Shift::L16),
        "W registers take LSL #0 or #16"
    );
    ((sf as u32) << 31)
        | (opc << 29)
        | (0b100101 << 23)
        | ((hw as u32) << 21)
        | ((imm16 as u32) << 5)
        | rd.bits()
}

/// `movz xD, #imm16, lsl #shift`: the register becomes `imm16 << shift`, other bits 0.
pub const fn movz_x(rd: Reg, imm16: u16, shift: Shift) -> u32 {
    move_wide(true, 0b10, shift, imm16, rd)
}

/// `movz wD, #imm16, lsl #shift` (also what `mov wD, #imm` assembles to for small values).
pub const fn movz_w(rd: Reg, imm16: u16, shift: Shift) -> u32 {
    move_wide(false, 0b10, shift, imm16, rd)
}

/// `movk wD, #imm16, lsl #shift`: replaces one half-word, keeping the other.
pub const fn movk_w(rd: Reg, imm16: u16, shift: Shift) -> u32 {
    move_wide(false, 0b11, shift, imm16, rd)
}

/// `str wT, [xN, #offset]` (C6.2.353 STR (immediate), unsigned offset):
/// `10 111 0 01 00 | imm12 | Rn | Rt`, with imm12 = offset / 4. Panics unless the offset
/// is a multiple of 4 below 16 KiB.
pub const fn str_w(rt: Reg, rn: Reg, offset: u32) -> u32 {
    assert!(
        offset.is_multiple_of(4) && offset / 4 < (1 << 12),
        "offset: 0..16380, step 4"
    );
    0xb900_0000 | ((offset / 4) << 10) | (rn.bits() << 5) | rt.bits()
}

/// `smc #imm16` (C6.2.331): `11010100 000 | imm16 | 000 11`.
pub const fn smc(imm16: u16) -> u32 {
    0xd400_0003 | ((imm16 as u32) << 5)
}

/// `b <here + offset>` (C6.2.33 B): `000101 | imm26`, imm26 = offset / 4 as a signed
/// 26-bit number. Panics unless the offset is a multiple of 4 within +-128 MiB.
pub const fn b(offset: i32) -> u32 {
    assert!(offset % 4 == 0, "branch offsets are multiples of 4");
    assert!(
        offset >= -(1 << 27) && offset < (1 << 27),
        "B reaches +-128 MiB"
    );
    0x1400_0000 | ((offset / 4) as u32 & 0x03ff_ffff)
}

/// Loads a 32-bit constant into `wD` in two instructions (`movz` low half, `movk` high
/// half): what `ldr wD, =value` would do without a literal pool.
pub const fn mov_w32(rd: Reg, value: u32) -> [u32; 2] {
    [
        movz_w(rd, value as u16, Shift::L0),
        movk_w(rd, (value >> 16) as u16, Shift::L16),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const X0: Reg = Reg::new(0);
    const X1: Reg = Reg::new(1);
    const X2: Reg = Reg::new(2);

    /// Words from `llvm-mc -triple=aarch64 -show-encoding` (LLVM 14) for the quoted lines;
    /// the branches from `llvm-mc -filetype=obj` then `llvm-objdump -d`, as their
    /// encodings are fixups until linked.
    #[test]
    fn known_encodings() {
        let cases: &[(&str, u32, u32)] = &[
            (
                "mov x1, #0x9000000",
                movz_x(X1, 0x0900, Shift::L16),
                0xd2a1_2001,
            ),
            ("movz x0, #0x1", movz_x(X0, 1, Shift::L0), 0xd280_0020),
            (
                "movz x30, #0xffff, lsl #48",
                movz_x(Reg::new(30), 0xffff, Shift::L48),
                0xd2ff_fffe,
            ),
            ("mov w2, #0x62", movz_w(X2, 0x62, Shift::L0), 0x5280_0c42),
            ("mov w2, #0xa", movz_w(X2, 0x0a, Shift::L0), 0x5280_0142),
            ("mov w0, #0x8", movz_w(X0, 8, Shift::L0), 0x5280_0100),
            (
                "movk w0, #0x8400, lsl #16",
                movk_w(X0, 0x8400, Shift::L16),
                0x72b0_8000,
            ),
            ("str w2, [x1]", str_w(X2, X1, 0), 0xb900_0022),
            ("str w2, [x1, #4]", str_w(X2, X1, 4), 0xb900_0422),
            ("smc #0", smc(0), 0xd400_0003),
            ("b .+0x40", b(0x40), 0x1400_0010),
            ("b .", b(0), 0x1400_0000),
            ("b .-4", b(-4), 0x17ff_ffff),
        ];
        for &(text, got, want) in cases {
            assert_eq!(got, want, "{text}: got {got:#010x}, want {want:#010x}");
        }
    }

    #[test]
    fn psci_system_off_constant() {
        assert_eq!(mov_w32(X0, 0x8400_0008), [0x5280_0100, 0x72b0_8000]);
    }

    #[test]
    #[should_panic(expected = "W registers")]
    fn w_register_rejects_high_shift() {
        movz_w(X0, 1, Shift::L32);
    }
}
