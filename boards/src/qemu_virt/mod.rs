//! QEMU `-M virt,virtualization=on`: the memory map (`memory_map.rs`, re-exported here; the
//! linker script takes its numbers from the same file), the early translation tables, the
//! stub's platform hooks (PSCI through SMC), and where payloads come from (fw_cfg).
//! Facts: docs/memory-map.md; QEMU hw/arm/virt.c.

#[cfg(target_arch = "aarch64")]
mod board;
pub mod fw_cfg;
mod memory_map;

#[cfg(target_arch = "aarch64")]
pub use board::QemuVirtBoard;
pub use memory_map::*;

use crate::el1::mmu::{Descriptor, Kind, Table};

/// The board's name, as `cargo xtask build --board` spells it.
pub const NAME: &str = "qemu-virt";
/// The PL011 console.
pub const PL011: usize = 0x0900_0000;
/// The fw_cfg device (data +0, selector +8, DMA +0x10).
pub const FW_CFG: usize = 0x0902_0000;

/// The lowest 2 MiB-aligned base for an image, as QEMU's own `-kernel` loader chooses it
/// (hw/arm/boot.c): the base of RAM, or 2 MiB above it when `text_offset` is below 4 KiB
/// (QEMU keeps that space for its boot code). A payload that runs under QEMU's direct boot
/// then runs at the same address under hypstub.
#[must_use]
pub fn lowest_base(header: &loader::image::ImageHeader) -> u64 {
    if header.effective_text_offset() < 4096 {
        RAM_START + MIB2
    } else {
        RAM_START
    }
}
/// The DTB node of the flash the firmware runs from (QEMU virt's `cfi-flash`).
pub const FLASH_NODE: &str = "flash@0";

const MIB2: u64 = 2 << 20;
const GIB: u64 = 1 << 30;

/// Level 3 for the first 2 MiB of RAM: the DTB and the EL1 stage's RAM as data; the stub's
/// resident RAM left unmapped, so a stray EL1 access to it faults instead of corrupting it.
static L3_RAM: Table = Table({
    let mut t = [Descriptor::INVALID; 512];
    let mut i = 0;
    while i < 512 {
        let pa = RAM_START + i as u64 * 4096;
        if pa < RESIDENT.start || pa >= RESIDENT.end {
            t[i] = Descriptor::page(pa, Kind::Data);
        }
        i += 1;
    }
    t
});

/// Level 2 for the first GiB of RAM: only its first 2 MiB; the payload's RAM is reached by
/// DMA and never through the EL1 stage's caches.
static L2_RAM: Table = Table({
    let mut t = [Descriptor::INVALID; 512];
    t[0] = Descriptor::table(&L3_RAM);
    t
});

/// Level 2 for 0..1 GiB: flash as code, the rest (GIC, UART, fw_cfg, ...) as device memory.
static L2_LOW: Table = Table({
    let mut t = [Descriptor::INVALID; 512];
    let mut i = 0;
    while i < 512 {
        let pa = i as u64 * MIB2;
        t[i] = Descriptor::block(
            pa,
            if pa < FLASH.end {
                Kind::Code
            } else {
                Kind::Device
            },
        );
        i += 1;
    }
    t
});

/// The root table (level 1, 4 entries of 1 GiB used), TTBR0_EL1 of the EL1 stage.
#[unsafe(no_mangle)]
pub static HYPSTUB_QEMU_VIRT_L1: Table = Table({
    let mut t = [Descriptor::INVALID; 512];
    t[0] = Descriptor::table(&L2_LOW);
    t[(RAM_START / GIB) as usize] = Descriptor::table(&L2_RAM);
    t
});

#[cfg(target_arch = "aarch64")]
/// The stub's view of the board.
pub struct QemuVirt;

#[cfg(target_arch = "aarch64")]
// SAFETY: the hooks write only the PL011's registers and make SMC calls; no locks, atomics,
// heap or FP.
unsafe impl el2_stub::Platform for QemuVirt {
    const HAS_PSCI: bool = true;

    fn console_write(s: &str) {
        // SAFETY: PL011 is QEMU virt's UART; at EL2 the MMU is off (Device memory).
        unsafe { crate::console::pl011_write_raw(PL011, s) };
    }

    fn psci(args: [u64; 18]) -> [u64; 4] {
        // QEMU's PSCI conduit is SMC with virtualization=on (hw/arm/virt.c: PSCI conduit SMC when EL2 is emulated).
        let mut rest = [0u64; 17];
        rest.copy_from_slice(&args[1..]);
        let r = smccc::smc64(args[0] as u32, rest);
        [r[0], r[1], r[2], r[3]]
    }

    fn stop() -> ! {
        power_off()
    }

    fn stub_memory() -> [core::ops::Range<u64>; 2] {
        // The code runs from flash, outside RAM, which the stub's checks refuse anyway.
        [RESIDENT, 0..0]
    }
}

#[cfg(target_arch = "aarch64")]
/// Powers the machine off (PSCI SYSTEM_OFF: QEMU exits with status 0); parks the CPU if
/// that returns. Works at EL2, and at EL1 through the stub.
pub fn power_off() -> ! {
    let _ = smccc::psci::system_off::<smccc::Smc>();
    loop {
        aarch64_cpu::asm::wfe();
    }
}

#[cfg(target_arch = "aarch64")]
/// Puts `s` on the console without a lock (fault reports, panics).
pub fn console_raw(s: &str) {
    // SAFETY: PL011 is QEMU virt's UART, mapped as Device memory at EL1 and reached with
    // the MMU off at EL2.
    unsafe { crate::console::pl011_write_raw(PL011, s) };
}

/// The DTB area as a byte slice.
///
/// # Safety
/// Only at EL1 with the early tables on (the area is mapped as data), and only once: the
/// slice is the only access to it.
pub unsafe fn dtb_area() -> &'static mut [u8] {
    // SAFETY: mapped, inside RAM, and exclusively owned per the caller's contract.
    unsafe { core::slice::from_raw_parts_mut(DTB.start as *mut u8, (DTB.end - DTB.start) as usize) }
}

// The reset entry for firmware built on the library (feature `qemu-virt-entry`).
#[cfg(all(target_os = "none", feature = "qemu-virt-entry"))]
core::arch::global_asm!(
    concat!(include_str!("../ram_init.S"), include_str!("entry.S")),
    SCTLR_EL2_MMU_OFF = const el2_stub::regs::SCTLR_EL2_MMU_OFF,
    STACK_SIZE = const el2_stub::cpus::STACK_SIZE,
    RAM_START = const RAM_START,
    PAYLOAD_LOWEST = const PAYLOAD_LOWEST,
    PL011 = const PL011,
);

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    /// Where the stub sends the boot CPU at EL1 (`entry.S`).
    pub fn qemu_virt_el1_entry();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_map_leaves_the_stub_unmapped() {
        let page = |pa: u64| L3_RAM.0[((pa - RAM_START) / 4096) as usize].bits();
        assert_eq!(page(RESIDENT.start), 0);
        assert_eq!(page(RESIDENT.end - 4096), 0);
        assert_ne!(page(RESIDENT.end), 0);
        assert_ne!(page(DTB.start), 0);
        assert_eq!(L2_LOW.0[0].bits() & (1 << 53), 0, "flash is executable");
        assert_ne!(
            L2_LOW.0[(PL011 as u64 / MIB2) as usize].bits() & (1 << 54),
            0
        );
    }
}
