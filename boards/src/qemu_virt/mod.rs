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

use crate::el1::mmu::{EarlyTables, Kind, Run};

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

// The early map's tables ([`HYPSTUB_QEMU_VIRT_EARLY`]), by index.
const L1: usize = 0;
const L2_LOW: usize = 1;
const L2_RAM: usize = 2;
const L3_RAM: usize = 3;
const RESIDENT_PAGES: core::ops::Range<usize> =
    ((RESIDENT.start - RAM_START) / 4096) as usize..((RESIDENT.end - RAM_START) / 4096) as usize;
const FLASH_BLOCKS: usize = (FLASH.end / MIB2) as usize;

/// The EL1 stage's early map, which `entry.S` writes into [`HYPSTUB_QEMU_VIRT_EARLY`]:
/// - level 1 (4 entries of 1 GiB used): 0..1 GiB through level 2 `L2_LOW`, the first GiB
///   of RAM through `L2_RAM`;
/// - `L2_LOW`: flash as code, the rest of 0..1 GiB (GIC, UART, fw_cfg, ...) as device
///   memory, in 2 MiB blocks;
/// - `L2_RAM`: only the first 2 MiB of RAM, through `L3_RAM` (the payload's RAM is reached
///   by DMA and never through the EL1 stage's caches);
/// - `L3_RAM`: the DTB and the EL1 stage's RAM as data; the stub's resident RAM left
///   unmapped, so a stray EL1 access to it faults instead of corrupting it.
#[unsafe(no_mangle)]
pub static HYPSTUB_QEMU_VIRT_EARLY_RUNS: [Run; 7] = [
    Run::table(L1, 0, L2_LOW),
    Run::table(L1, (RAM_START / GIB) as usize, L2_RAM),
    Run::blocks_2m(L2_LOW, 0, FLASH_BLOCKS, 0, Kind::Code),
    Run::blocks_2m(
        L2_LOW,
        FLASH_BLOCKS,
        512 - FLASH_BLOCKS,
        FLASH.end,
        Kind::Device,
    ),
    Run::table(L2_RAM, 0, L3_RAM),
    Run::pages(L3_RAM, 0, RESIDENT_PAGES.start, RAM_START, Kind::Data),
    Run::pages(
        L3_RAM,
        RESIDENT_PAGES.end,
        512 - RESIDENT_PAGES.end,
        RESIDENT.end,
        Kind::Data,
    ),
];

/// The early map's tables (table 0 is the root, TTBR0_EL1 of the EL1 stage), in `.bss`:
/// written by `entry.S` from [`HYPSTUB_QEMU_VIRT_EARLY_RUNS`] with the MMU off.
#[unsafe(no_mangle)]
pub static mut HYPSTUB_QEMU_VIRT_EARLY: EarlyTables<4> = EarlyTables::ZERO;

const _: () = assert!(FLASH.end.is_multiple_of(MIB2) && FLASH.end < GIB);
const _: () = assert!(RESIDENT.start >= RAM_START && RESIDENT.end <= RAM_START + MIB2);

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
    EARLY_RUNS = const HYPSTUB_QEMU_VIRT_EARLY_RUNS.len(),
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
        use crate::el1::mmu::{apply, Descriptor};
        let base = 0x4010_9000;
        let t = apply::<4>(&HYPSTUB_QEMU_VIRT_EARLY_RUNS, base);
        let page = |pa: u64| t.0[L3_RAM][((pa - RAM_START) / 4096) as usize];
        assert_eq!(page(RESIDENT.start), 0);
        assert_eq!(page(RESIDENT.end - 4096), 0);
        assert_eq!(
            page(RESIDENT.end),
            Descriptor::page(RESIDENT.end, Kind::Data).bits()
        );
        assert_eq!(
            page(DTB.start),
            Descriptor::page(DTB.start, Kind::Data).bits()
        );
        let last = RAM_START + MIB2 - 4096;
        assert_eq!(page(last), Descriptor::page(last, Kind::Data).bits());
        assert_eq!(t.0[L2_LOW][0] & (1 << 53), 0, "flash is executable");
        assert_eq!(t.0[L2_LOW][0], Descriptor::block(0, Kind::Code).bits());
        let uart = t.0[L2_LOW][(PL011 as u64 / MIB2) as usize];
        assert_eq!(
            uart,
            Descriptor::block(PL011 as u64 & !(MIB2 - 1), Kind::Device).bits()
        );
        assert_eq!(
            t.0[L2_LOW][511],
            Descriptor::block(GIB - MIB2, Kind::Device).bits()
        );
        assert_eq!(t.0[L1][0], base + 0x1000 + 3, "level 1 -> L2_LOW");
        assert_eq!(t.0[L1][1], base + 0x2000 + 3, "level 1 -> L2_RAM");
        assert_eq!(t.0[L2_RAM][0], base + 0x3000 + 3, "L2_RAM -> L3_RAM");
        assert_eq!(t.0[L2_RAM][1..], [0; 511], "only the first 2 MiB of RAM");
        assert_eq!(t.0[L1][2..], [0; 510]);
    }
}
