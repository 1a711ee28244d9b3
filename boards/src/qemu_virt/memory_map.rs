//! QEMU virt's memory map: where the image runs and where the firmware's RAM lies. The one
//! source of these numbers: the board module (`hypstub_boards::qemu_virt`) re-exports them,
//! `boards/build.rs` hands them to `linker/qemu-virt.ld` as `--defsym` symbols (and, through
//! its `links` metadata, to firmware built on the library such as `examples/pflash-boot`),
//! and xtask compiles this file too. So that each of them can (`#[path]`), it holds only
//! constants and the checks between them, and depends on nothing but `core`.
//! See docs/memory-map.md.

/// QEMU virt's flash: two banks of [`FLASH_BANK_SIZE`] at 0 (`-bios` or `-drive
/// if=pflash,unit=0` is the first, `unit=1` the second); the early tables map it as the
/// firmware's code, read-only and executable at EL1.
pub const FLASH: core::ops::Range<u64> = 0..2 * FLASH_BANK_SIZE;
/// The size of one flash bank; a pflash drive must be exactly that.
pub const FLASH_BANK_SIZE: u64 = 64 << 20;
/// Where the image runs in place (`IMAGE` in linker/qemu-virt.ld): the first flash bank.
pub const IMAGE: core::ops::Range<u64> = 0..FLASH_BANK_SIZE;
/// Devices (GIC, UART, fw_cfg, virtio, PCIe windows below RAM), mapped as Device memory.
pub const DEVICES: core::ops::Range<u64> = FLASH.end..RAM_START;
/// Where RAM starts.
pub const RAM_START: u64 = 0x4000_0000;
/// Where QEMU puts the DTB with `-bios`, and the room it leaves for it.
pub const DTB: core::ops::Range<u64> = RAM_START..RAM_START + 0x10_0000;
/// The stub's resident RAM (`RESIDENT` in linker/qemu-virt.ld): reserved from the payload.
pub const RESIDENT: core::ops::Range<u64> = 0x4010_0000..0x4010_8000;
/// The EL1 stage's RAM (`EL1RAM` in linker/qemu-virt.ld): `.data`, `.bss`, its stack and
/// heap; free once the payload runs.
pub const EL1_RAM: core::ops::Range<u64> = 0x4010_8000..0x4020_0000;
/// The EL1 stage's stack, after `.bss` in [`EL1_RAM`].
pub const EL1_STACK_SIZE: u64 = 64 << 10;
/// The end of the firmware's RAM while it runs (the early map covers up to here).
pub const PAYLOAD_LOWEST: u64 = 0x4020_0000;

// The layout the linker script, the entry and the early tables assume.
const _: () = {
    assert!(IMAGE.end <= FLASH.end);
    assert!(DEVICES.start < DEVICES.end);
    assert!(DTB.end <= RESIDENT.start);
    assert!(RESIDENT.end == EL1_RAM.start);
    assert!(EL1_RAM.end == PAYLOAD_LOWEST);
    assert!(EL1_STACK_SIZE < EL1_RAM.end - EL1_RAM.start);
    // The early tables map the first 2 MiB of RAM page by page, and no more of it.
    assert!(PAYLOAD_LOWEST.is_multiple_of(2 << 20));
    assert!(PAYLOAD_LOWEST <= RAM_START + (2 << 20));
};
