//! The assembly half of the client (`entry.S`), the constants it is assembled with, and
//! what it calls when something goes wrong: the EL1 exception report and the panic handler.

use core::arch::global_asm;
use core::panic::PanicInfo;

use crate::calls::{self, PSCI_CPU_OFF};
use crate::state::{self, mailbox, st, MAX_CPUS, STRAY_SLOT};
use client_support::say;

/// booting.rst header flags: little-endian, 4 KiB pages, "place as close as possible to
/// the base of DRAM" (the client is linked for one address).
const IMAGE_FLAGS: u64 = 0b0010;
/// booting.rst: "ARM\x64", little-endian, at offset 0x38.
const IMAGE_MAGIC: u32 = 0x644d_5241;
/// SPSR_EL2 for the drop from EL2 after a restart: M = EL1h (0b0101), D, A, I, F set.
const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// x4 of the client's HVC_SOFT_RESTART (its entry's x2): tells `entry.S` that an EL2 entry
/// is the client's own restart, not a boot at EL2 by something else.
pub const RESTART_TOKEN: u64 = u64::from_be_bytes(*b"SOAKREST");

const BOOT_STACK_SIZE: usize = 16 * 1024;
const EXCEPTION_STACK_SIZE: usize = 8 * 1024;

global_asm!(
    include_str!("entry.S"),
    MAIN = sym crate::soak_client_main,
    EL1_EXCEPTION = sym el1_exception,
    STATE = sym state::STATE,
    MAILBOXES = sym state::MAILBOXES,
    IMAGE_FLAGS = const IMAGE_FLAGS,
    IMAGE_MAGIC = const IMAGE_MAGIC,
    SPSR_EL1H_MASKED = const SPSR_EL1H_MASKED,
    TOKEN_0 = const RESTART_TOKEN & 0xffff,
    TOKEN_1 = const (RESTART_TOKEN >> 16) & 0xffff,
    TOKEN_2 = const (RESTART_TOKEN >> 32) & 0xffff,
    TOKEN_3 = const RESTART_TOKEN >> 48,
    ST_EL2_ENTRIES = const st::EL2_ENTRIES * 8,
    ST_EL2_CURRENT_EL = const st::EL2_CURRENT_EL * 8,
    ST_EL2_SCTLR = const st::EL2_SCTLR * 8,
    ST_EL2_DAIF = const st::EL2_DAIF * 8,
    ST_EL2_VBAR = const st::EL2_VBAR * 8,
    PSCI_CPU_OFF_LO = const PSCI_CPU_OFF & 0xffff,
    PSCI_CPU_OFF_HI = const PSCI_CPU_OFF >> 16,
    MAX_CPUS = const MAX_CPUS,
    STRAY_SLOT = const STRAY_SLOT,
    MAILBOX_SHIFT = const mailbox::SHIFT,
    MB_ARRIVED = const mailbox::ARRIVED * 8,
    MB_CURRENT_EL = const mailbox::CURRENT_EL * 8,
    MB_MPIDR = const mailbox::MPIDR * 8,
    MB_OFF_RETURNED = const mailbox::OFF_RETURNED * 8,
    BOOT_STACK_SIZE = const BOOT_STACK_SIZE,
    EXCEPTION_STACK_SIZE = const EXCEPTION_STACK_SIZE,
);

// Code labels and linker symbols; Rust only takes their addresses.
unsafe extern "C" {
    fn soak_client_start();
    fn soak_secondary_entry();
    static __soak_image_start: u8;
}

/// The Image's first instruction: where HVC_SOFT_RESTART sends the client.
pub fn image_entry() -> u64 {
    soak_client_start as *const () as u64
}

/// The PSCI CPU_ON entry for secondaries.
pub fn secondary_entry() -> u64 {
    soak_secondary_entry as *const () as u64
}

/// The start of the loaded image (the Image header).
pub fn image_start() -> usize {
    core::ptr::addr_of!(__soak_image_start) as usize
}

/// Any exception taken to EL1 lands here (from `soak_el1_unexpected` in `entry.S`, on the
/// exception stack): the client expects none, so it reports and powers off rather than hang.
extern "C" fn el1_exception(slot: u64, esr: u64, elr: u64, far: u64, spsr: u64) -> ! {
    if state::FAULTING.read(0) != 0 {
        // A fault while reporting a fault: stop quietly instead of recursing.
        calls::halt();
    }
    state::FAULTING.write(0, 1);
    say!(
        "soak-client: FAIL unexpected EL1 exception ESR_EL1={esr:#x} ELR_EL1={elr:#x} \
         FAR_EL1={far:#x} SPSR_EL1={spsr:#x} (vector slot {slot}, MPIDR_EL1={:#x}, after {} restarts)",
        crate::regs::mpidr_el1(),
        state::STATE.read(st::RESTARTS)
    );
    calls::system_off()
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    say!("soak-client: FAIL panic: {info}");
    calls::system_off()
}
