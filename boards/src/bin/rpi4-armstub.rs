//! hypstub's Raspberry Pi 4 armstub: `armstub=armstub8-hypstub.bin` in config.txt.
//!
//! The Pi's firmware loads it at address 0 and starts all four cores there at EL3. Each core
//! sets up EL3's part (SCR_EL3, the IMPDEF control registers, CNTFRQ, the GIC-400's security
//! groups) and drops to EL2; the boot core enters the kernel the firmware loaded with
//! x0 = DTB, the others wait on the spin table. All of it is `rpi4/armstub.S`; this file
//! holds its constants, each with the reason for its value, and the assertions that keep
//! them right. No Rust code runs: the image is a few hundred bytes of assembly
//! (docs/armstub.md).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "rpi4-armstub is bare-metal firmware: build it with `cargo xtask build --board rpi4-armstub`"
    );
}

/// The handshake block and the spin table at the start of the image.
#[allow(
    dead_code,
    reason = "used by the assembly on the bare-metal target only"
)]
mod layout {
    /// spin_cpu0: core 0's release word; cores 1..3 follow at 8-byte steps (the Pi DTB's
    /// `cpu-release-addr` values 0xd8, 0xe0, 0xe8, 0xf0).
    pub const SPIN_CPU0: u64 = 0xd8;
    /// Where the magic word sits (the firmware then clears 0xf0..0xf8: spin_cpu3).
    pub const STUB_MAGIC_AT: u64 = 0xf0;
    /// The word by which the firmware recognises an armstub that wants the handshake.
    pub const STUB_MAGIC: u32 = 0x5afe_570b;
    /// The handshake version after the magic: 0, the version the firmware's own armstubs
    /// declare.
    pub const STUB_VERSION: u32 = 0;
    /// The 64-bit word at [`STUB_MAGIC_AT`] before the firmware clears it: never a release
    /// address for spin_cpu3 (it is not even 4-byte aligned).
    pub const STUB_MAGIC_WORD64: u64 = ((STUB_VERSION as u64) << 32) | STUB_MAGIC as u64;
    /// dtb_ptr32: the firmware writes the DTB's address here (32 bits).
    pub const DTB_PTR32: u64 = 0xf8;
    /// kernel_entry32: the firmware writes the kernel's entry here (32 bits).
    pub const KERNEL_ENTRY32: u64 = 0xfc;

    const _: () = {
        assert!(SPIN_CPU0 + 3 * 8 == STUB_MAGIC_AT);
        assert!(DTB_PTR32 == STUB_MAGIC_AT + 8 && KERNEL_ENTRY32 == DTB_PTR32 + 4);
    };
}

/// Values of the registers the armstub writes, and the addresses it uses.
#[allow(
    dead_code,
    reason = "used by the assembly on the bare-metal target only"
)]
mod regs {
    /// SCR_EL3 (Arm ARM, SCR_EL3): NS (bit 0), RES1 bits 4 and 5, SMD (bit 7: SMC is UNDEFINED,
    /// there is no secure monitor and no PSCI), HCE (bit 8: HVC enabled), RW (bit 10: the
    /// lower ELs are AArch64).
    pub const SCR_EL3: u64 = (1 << 0) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 10);
    /// ACTLR_EL3 (Cortex-A72 TRM): EL2 may access CPUACTLR_EL1 (bit 0), CPUECTLR_EL1 (1),
    /// L2CTLR_EL1 (4), L2ECTLR_EL1 (5) and L2ACTLR_EL1 (6).
    pub const ACTLR_EL3: u64 = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6);
    /// CPUECTLR_EL1.SMPEN (Cortex-A72 TRM): the core joins the cluster's coherency.
    pub const CPUECTLR_SMPEN: u64 = 1 << 6;
    /// L2CTLR_EL1 (Cortex-A72 TRM): the data RAM latency (bits 2:0) and setup (bit 5) fields.
    pub const L2CTLR_DATA_MASK: u64 = 0b111 | (1 << 5);
    /// The BCM2711's L2 data RAM timing, as the firmware's own armstub sets it: latency
    /// 0b010 (3 cycles), one setup cycle.
    pub const L2CTLR_DATA_SET: u64 = 0b010 | (1 << 5);
    /// The Pi 4's crystal, which clocks the generic counter: 54 MHz. (QEMU's raspi4b counts
    /// at 62.5 MHz whatever CNTFRQ says, so under QEMU guest time runs 62.5/54 fast.)
    pub const CNTFRQ_HZ: u64 = 54_000_000;
    /// SCTLR_EL2 with MMU and caches off, little-endian (hypstub's one definition).
    pub const SCTLR_EL2: u64 = el2_stub::regs::SCTLR_EL2_MMU_OFF;
    /// SPSR_EL3 for the eret to EL2h with D, A, I and F masked (booting.rst).
    pub const SPSR_EL2H_DAIF: u64 = el2_stub::regs::SPSR_EL2H_DAIF;

    /// The BCM2711's ARM_LOCAL block (low peripheral mode): ARM_CONTROL at +0, the core
    /// timer prescaler at +8.
    pub const ARM_LOCAL: u64 = 0xff80_0000;
    /// Prescaler 2^31 / value = 1: the counter ticks at the crystal's rate.
    pub const LOCAL_PRESCALER_1_1: u32 = 0x8000_0000;

    /// GIC-400 distributor (GICD) in the Pi 4's low peripheral mode.
    pub const GICD: u64 = 0xff84_1000;
    /// GIC-400 CPU interface (GICC).
    pub const GICC: u64 = 0xff84_2000;
    /// GICD_CTLR offset.
    pub const GICD_CTLR: u64 = 0x000;
    /// GICD_TYPER offset (ITLinesNumber in bits 4:0).
    pub const GICD_TYPER: u64 = 0x004;
    /// GICD_TYPER.SecurityExtn: the GIC implements the Security Extensions (the GIC-400
    /// does; QEMU's raspi4b model does not unless told `-global
    /// arm_gic.has-security-extensions=on`).
    pub const GICD_TYPER_SECURITY_EXTN: u32 = 10;
    /// GICD_IGROUPR0 offset; IGROUPRn follow at 4-byte steps.
    pub const GICD_IGROUPR: u64 = 0x080;
    /// GICD_CTLR, secure copy: EnableGrp0 (bit 0) and EnableGrp1 (bit 1).
    pub const GICD_CTLR_ENABLE: u32 = 0b11;
    /// GICC_CTLR offset.
    pub const GICC_CTLR: u64 = 0x000;
    /// GICC_PMR offset.
    pub const GICC_PMR: u64 = 0x004;
    /// GICC_CTLR, secure copy (GICv2 Architecture Specification 4.4.1): EnableGrp1 (bit 1),
    /// and the bypass of the legacy IRQ/FIQ lines disabled for both groups (bits 5..8), so
    /// that only the GIC signals interrupts. Group 0 stays off: nothing is in it.
    pub const GICC_CTLR_VALUE: u32 = (1 << 1) | (0b1111 << 5);
    /// GICC_PMR: the lowest priority, every interrupt unmasked (the GIC-400 implements the
    /// top 5 bits; it reads back 0xf8).
    pub const GICC_PMR_VALUE: u32 = 0xff;

    /// PL011 (UART0, the first -serial under QEMU) data register.
    pub const PL011_DR: u64 = 0xfe20_1000;
    /// PL011 flag register.
    pub const PL011_FR: u64 = PL011_DR + 0x18;
    /// PL011 UARTFR.TXFF (bit 5): transmit FIFO full.
    pub const PL011_FR_TXFF: u32 = 1 << 5;
    /// Mini UART (UART1, the second -serial under QEMU) AUX_MU_IO_REG.
    pub const MINI_UART_IO: u64 = 0xfe21_5040;
    /// Mini UART AUX_MU_LSR_REG: bit 5 set when the transmitter can take a byte.
    pub const MINI_UART_LSR: u64 = MINI_UART_IO + 0x14;
    /// Polls of a UART's status before giving up on it (one the firmware left off never
    /// becomes ready): far more than a byte takes at 115200 baud at any core clock.
    pub const UART_SPINS: u64 = 1 << 20;

    const _: () = {
        // The stock value, 0x5b1, spelled out above bit by bit.
        assert!(SCR_EL3 == 0x5b1);
        assert!(L2CTLR_DATA_SET & !L2CTLR_DATA_MASK == 0);
        assert!(GICC_PMR_VALUE >= 0x80);
    };
}

#[cfg(target_os = "none")]
mod firmware {
    use super::{layout, regs};

    core::arch::global_asm!(
        include_str!("../rpi4/armstub.S"),
        SPIN_CPU0 = const layout::SPIN_CPU0,
        STUB_MAGIC = const layout::STUB_MAGIC,
        STUB_VERSION = const layout::STUB_VERSION,
        STUB_MAGIC_WORD64 = const layout::STUB_MAGIC_WORD64,
        DTB_PTR32 = const layout::DTB_PTR32,
        SCR_EL3 = const regs::SCR_EL3,
        ACTLR_EL3 = const regs::ACTLR_EL3,
        CPUECTLR_SMPEN = const regs::CPUECTLR_SMPEN,
        L2CTLR_DATA_MASK = const regs::L2CTLR_DATA_MASK,
        L2CTLR_DATA_SET = const regs::L2CTLR_DATA_SET,
        CNTFRQ_HZ = const regs::CNTFRQ_HZ,
        SCTLR_EL2 = const regs::SCTLR_EL2,
        SPSR_EL2H_DAIF = const regs::SPSR_EL2H_DAIF,
        ARM_LOCAL = const regs::ARM_LOCAL,
        LOCAL_PRESCALER_1_1 = const regs::LOCAL_PRESCALER_1_1,
        GICD = const regs::GICD,
        GICC = const regs::GICC,
        GICD_CTLR = const regs::GICD_CTLR,
        GICD_TYPER = const regs::GICD_TYPER,
        GICD_TYPER_SECURITY_EXTN = const regs::GICD_TYPER_SECURITY_EXTN,
        GICD_IGROUPR = const regs::GICD_IGROUPR,
        GICD_CTLR_ENABLE = const regs::GICD_CTLR_ENABLE,
        GICC_CTLR = const regs::GICC_CTLR,
        GICC_PMR = const regs::GICC_PMR,
        GICC_CTLR_VALUE = const regs::GICC_CTLR_VALUE,
        GICC_PMR_VALUE = const regs::GICC_PMR_VALUE,
        PL011_DR = const regs::PL011_DR,
        PL011_FR = const regs::PL011_FR,
        PL011_FR_TXFF = const regs::PL011_FR_TXFF,
        MINI_UART_IO = const regs::MINI_UART_IO,
        MINI_UART_LSR = const regs::MINI_UART_LSR,
        UART_SPINS = const regs::UART_SPINS,
    );

    /// Never reached: the image has no Rust code that could panic. A no_std binary needs one.
    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        loop {
            core::hint::spin_loop();
        }
    }
}
