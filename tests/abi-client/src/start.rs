//! The assembly half of the client (`entry.S`), the constants it is assembled with, and
//! what it calls when something goes wrong: the EL1 exception report and the panic handler.

use core::arch::global_asm;
use core::panic::PanicInfo;

use crate::calls::{self, HVC_RESET_VECTORS, PSCI_CPU_OFF};
use crate::shared::{self, mailbox, rec, MAX_CPUS, STRAY_SLOT};
use client_support::say;

/// booting.rst header flags: bit 0 = 0 little-endian, bits 2:1 = 1 4 KiB pages, bit 3 = 0
/// "place the 2 MiB-aligned base as close as possible to the base of DRAM" (the client is
/// linked for one address, so it must not claim it can run anywhere).
const IMAGE_FLAGS: u64 = 0b0010;
/// booting.rst: "ARM\x64", little-endian, at offset 0x38.
const IMAGE_MAGIC: u32 = 0x644d_5241;
/// SPSR_EL2 for the return from the client's EL2 code: M = EL1h (0b0101), D, A, I, F set.
const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// The CPU_ON context id of the secondary in mailbox slot `n` is `CONTEXT_BASE + n`.
pub const CONTEXT_BASE: u64 = 0xC0DE_0000;
/// x0 from the client's EL2 vector table for any call but HVC_RESET_VECTORS.
pub const CLIENT_MAGIC: u64 = 0xC0_FFEE;

const BOOT_STACK_SIZE: usize = 32 * 1024;
const EXCEPTION_STACK_SIZE: usize = 8 * 1024;
const SECONDARY_STACK_SIZE: usize = 4 * 1024;

global_asm!(
    include_str!("entry.S"),
    MAIN = sym crate::abi_client_main,
    EL1_EXCEPTION = sym el1_exception,
    EL2_RECORD = sym shared::EL2_RECORD,
    MAILBOXES = sym shared::MAILBOXES,
    IMAGE_FLAGS = const IMAGE_FLAGS,
    IMAGE_MAGIC = const IMAGE_MAGIC,
    SPSR_EL1H_MASKED = const SPSR_EL1H_MASKED,
    HVC_RESET_VECTORS = const HVC_RESET_VECTORS,
    CLIENT_MAGIC_LO = const CLIENT_MAGIC & 0xffff,
    CLIENT_MAGIC_HI = const CLIENT_MAGIC >> 16,
    CONTEXT_BASE_LO = const CONTEXT_BASE & 0xffff,
    CONTEXT_BASE_HI = const CONTEXT_BASE >> 16,
    PSCI_CPU_OFF_LO = const PSCI_CPU_OFF & 0xffff,
    PSCI_CPU_OFF_HI = const PSCI_CPU_OFF >> 16,
    MAX_CPUS = const MAX_CPUS,
    STRAY_SLOT = const STRAY_SLOT,
    MAILBOX_SHIFT = const mailbox::SHIFT,
    MB_ARRIVED = const mailbox::ARRIVED * 8,
    MB_CURRENT_EL = const mailbox::CURRENT_EL * 8,
    MB_X0 = const mailbox::X0 * 8,
    MB_MPIDR = const mailbox::MPIDR * 8,
    MB_VBAR_EL1 = const mailbox::VBAR_EL1 * 8,
    ENTRY_VBAR_EL1 = sym shared::ENTRY_VBAR_EL1,
    REC_RAN = const rec::RAN * 8,
    REC_CURRENT_EL = const rec::CURRENT_EL * 8,
    REC_X0 = const rec::X0 * 8,
    REC_X1 = const rec::X1 * 8,
    REC_X2 = const rec::X2 * 8,
    REC_SCTLR_EL2 = const rec::SCTLR_EL2 * 8,
    REC_DAIF = const rec::DAIF * 8,
    REC_VBAR_EL2 = const rec::VBAR_EL2 * 8,
    REC_RESUME = const rec::RESUME * 8,
    BOOT_STACK_SIZE = const BOOT_STACK_SIZE,
    EXCEPTION_STACK_SIZE = const EXCEPTION_STACK_SIZE,
    SECONDARY_STACK_SIZE = const SECONDARY_STACK_SIZE,
    // One stack per mailbox slot, the stray one included.
    SECONDARY_STACKS_SIZE = const SECONDARY_STACK_SIZE * (STRAY_SLOT + 1),
);

// Code labels in entry.S. They are never called from Rust (they run at EL2 or on another
// CPU); Rust only takes their addresses.
unsafe extern "C" {
    fn abi_client_el2_vectors();
    fn abi_el2_record_entry();
    fn abi_el2_fault_entry();
    fn abi_secondary_entry();
    fn abi_secondary_fault_entry();
    fn abi_el1_fault_on_vectors(vbar: u64) -> !;
}

/// Address of the CPU_ON entry that faults at once (a BRK).
pub fn secondary_fault_entry() -> u64 {
    abi_secondary_fault_entry as *const () as u64
}

/// Puts `vbar` back into VBAR_EL1 and executes a BRK; the vectors there must stop the
/// machine.
pub fn fault_on_vectors(vbar: u64) -> ! {
    // SAFETY: the routine only writes VBAR_EL1 and takes an exception, whose handling
    // (the stub's report and power-off) never returns here.
    unsafe { abi_el1_fault_on_vectors(vbar) }
}

/// Address of the client's EL2 vector table (2 KiB aligned).
pub fn client_el2_vectors() -> u64 {
    abi_client_el2_vectors as *const () as u64
}

/// Address of the EL2 routine that records its entry state.
pub fn el2_record_entry() -> u64 {
    abi_el2_record_entry as *const () as u64
}

/// Address of the EL2 routine that faults on purpose.
pub fn el2_fault_entry() -> u64 {
    abi_el2_fault_entry as *const () as u64
}

/// Address of the PSCI CPU_ON entry for secondaries.
pub fn secondary_entry() -> u64 {
    abi_secondary_entry as *const () as u64
}

/// Any exception taken to EL1 lands here (from `abi_el1_unexpected` in `entry.S`, on the
/// exception stack): the client expects none, so it reports and powers off rather than hang.
extern "C" fn el1_exception(slot: u64, esr: u64, elr: u64, far: u64, spsr: u64) -> ! {
    if shared::FAULTING.read(0) != 0 {
        // A fault while reporting a fault: stop quietly instead of recursing.
        calls::halt();
    }
    shared::FAULTING.write(0, 1);
    say!(
        "abi-client: FAIL unexpected EL1 exception ESR_EL1={esr:#x} ELR_EL1={elr:#x} \
         FAR_EL1={far:#x} SPSR_EL1={spsr:#x} (vector slot {slot})"
    );
    calls::system_off()
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    say!("abi-client: FAIL panic: {info}");
    calls::system_off()
}
