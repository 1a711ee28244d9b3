//! The Raspberry Pi 4's memory map for `kernel8.img`: the Pi firmware loads the file at
//! [`IMAGE_BASE`] and the payload right after it, so all of the firmware's RAM lies below
//! the image, between page 0 and [`IMAGE_BASE`]. The one source of these numbers: the board
//! module (`hypstub_boards::rpi4`) re-exports them, `boards/build.rs` hands them to
//! `linker/rpi4.ld` as `--defsym` symbols, and xtask compiles this file too (config.txt's
//! `kernel_address`). So that each of them can (`#[path]`), it holds only constants and the
//! checks between them, and depends on nothing but `core`. See docs/memory-map.md.

/// Page 0: the armstub and its spin table (release words at 0xd8..0xf8). Never written by a
/// relocation; /memreserve/d for the payload.
pub const SPIN_PAGE: core::ops::Range<u64> = 0..0x1000;
/// The page shared by the EL1 stage, the stub and parked CPUs (`Shared`; `SHARED` in
/// linker/rpi4.ld, where `.hypstub_shared` goes).
pub const SHARED: core::ops::Range<u64> = 0x1000..0x2000;
/// The stub's resident RAM (EL2 stacks, CPU_ON mailboxes; `RESIDENT` in linker/rpi4.ld);
/// unmapped at EL1.
pub const RESIDENT: core::ops::Range<u64> = 0x2000..0xa000;
/// The EL1 stage's RAM (`EL1RAM` in linker/rpi4.ld: `.data`, `.bss`, its stack, the first
/// heap); free once the payload runs.
pub const EL1_RAM: core::ops::Range<u64> = 0xa000..IMAGE_BASE;
/// The EL1 stage's stack, after `.bss` in [`EL1_RAM`].
pub const EL1_STACK_SIZE: u64 = 64 << 10;
/// Where the Pi firmware loads `kernel8.img` (`kernel_address=0x80000` in config.txt, which
/// xtask writes from this constant).
pub const IMAGE_BASE: u64 = 0x8_0000;
/// What the early tables map as the firmware's code, the rest of the first 2 MiB: the room
/// for the image (`IMAGE` in linker/rpi4.ld, which checks that the image fits).
pub const EARLY_CODE: core::ops::Range<u64> = IMAGE_BASE..2 << 20;
/// The early tables map the first GiB of RAM: the DTB and the payload must be in it.
pub const EARLY_RAM_END: u64 = 1 << 30;
/// Peripherals in the BCM2711's low-peripheral mode (the default): the UARTs, the PM block
/// and the GIC-400, mapped as Device memory.
pub const DEVICES: core::ops::Range<u64> = 0xfc00_0000..0x1_0000_0000;

// The layout the linker script, the entry and the early tables assume.
const _: () = {
    assert!(SPIN_PAGE.start == 0 && SPIN_PAGE.end == SHARED.start);
    assert!(SHARED.end == RESIDENT.start);
    assert!(RESIDENT.end == EL1_RAM.start);
    assert!(EL1_RAM.end == EARLY_CODE.start);
    assert!(EL1_STACK_SIZE < EL1_RAM.end - EL1_RAM.start);
    // One level-3 table maps the first 2 MiB page by page.
    assert!(EARLY_CODE.end == 2 << 20);
    // Level 2 for 3..4 GiB holds the peripherals.
    assert!(DEVICES.start >= 3 << 30 && DEVICES.end == 4 << 30);
    assert!(EARLY_RAM_END <= DEVICES.start);
};
