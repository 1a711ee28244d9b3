//! The assembly half of the client (`entry.S`), the constants it is assembled with, and
//! what it calls when something goes wrong: the exception report and the panic handler.

use core::arch::global_asm;
use core::panic::PanicInfo;

use crate::image::TEXT_OFFSET;
use crate::regs::{self, PSCI_SYSTEM_OFF};
use client_support::console::{PL011_BASE, UARTDR, UARTFR, UARTFR_TXFF_BIT};
use client_support::say;

/// booting.rst header flags: bit 0 = 0 little-endian, bits 2:1 = 1 4 KiB pages, bit 3 = 0
/// "place the 2 MiB-aligned base as close as possible to the base of DRAM" (the client is
/// linked for one address, so it must not claim it can run anywhere).
pub const IMAGE_FLAGS: u64 = 0b0010;
/// booting.rst: "ARM\x64", little-endian, at offset 0x38.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;

const BOOT_STACK_SIZE: usize = 32 * 1024;
const EXCEPTION_STACK_SIZE: usize = 8 * 1024;

global_asm!(
    include_str!("entry.S"),
    MAIN = sym crate::el2_client_main,
    EXCEPTION = sym unexpected_exception,
    TEXT_OFFSET = const TEXT_OFFSET,
    IMAGE_FLAGS = const IMAGE_FLAGS,
    IMAGE_MAGIC = const IMAGE_MAGIC,
    PL011_BASE = const PL011_BASE,
    UARTDR = const UARTDR,
    UARTFR = const UARTFR,
    UARTFR_TXFF_BIT = const UARTFR_TXFF_BIT,
    SYSTEM_OFF_LO = const PSCI_SYSTEM_OFF & 0xffff,
    SYSTEM_OFF_HI = const PSCI_SYSTEM_OFF >> 16,
    BOOT_STACK_SIZE = const BOOT_STACK_SIZE,
    EXCEPTION_STACK_SIZE = const EXCEPTION_STACK_SIZE,
);

// Symbols from entry.S and link.ld; Rust only takes their addresses.
unsafe extern "C" {
    static __el2c_image_start: u8;
    static __el2c_image_end: u8;
}

/// Where link.ld put the image: from its header to the end of .bss.
pub fn linked_image() -> (u64, u64) {
    (
        (&raw const __el2c_image_start) as u64,
        (&raw const __el2c_image_end) as u64,
    )
}

/// Any exception lands here (from `el2c_unexpected` in `entry.S`, on the exception stack,
/// once): the client expects none, so it reports and powers off rather than hang.
extern "C" fn unexpected_exception(
    slot: u64,
    el: u64,
    esr: u64,
    elr: u64,
    far: u64,
    spsr: u64,
) -> ! {
    say!(
        "el2-client: FAIL unexpected EL{el} exception ESR_EL{el}={esr:#x} ELR_EL{el}={elr:#x} \
         FAR_EL{el}={far:#x} SPSR_EL{el}={spsr:#x} (vector slot {slot})"
    );
    regs::system_off()
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    say!("el2-client: FAIL panic: {info}");
    regs::system_off()
}
