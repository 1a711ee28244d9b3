//! The relocation engine (`engine.S`), assembled into the firmware image and copied by the
//! planner into a control page. Its offsets into the argument block come from
//! [`crate::args::offsets`], never retyped.

#[cfg(target_arch = "aarch64")]
use crate::args::{self, offsets};
#[cfg(target_arch = "aarch64")]
use crate::digest;

#[cfg(target_arch = "aarch64")]
use hypstub_abi::regs;

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    include_str!("engine.S"),
    MAGIC = const offsets::MAGIC,
    VERSION = const offsets::VERSION,
    SIZE = const offsets::SIZE,
    HEAD = const offsets::HEAD,
    ENTRY = const offsets::ENTRY,
    REGS = const offsets::REGS,
    EL = const offsets::EL,
    FLAGS = const offsets::FLAGS,
    TTBR0 = const offsets::TTBR0,
    TCR = const offsets::TCR,
    MAIR = const offsets::MAIR,
    CONSOLE = const offsets::CONSOLE,
    DIGESTS = const offsets::DIGESTS,
    DIGEST_COUNT = const offsets::DIGEST_COUNT,
    DIGEST_SIZE = const core::mem::size_of::<args::Digest>(),
    DIGEST_VALUE = const offsets::DIGEST_HASH64,
    BLOCK_VERSION = const args::VERSION,
    HASH_K1 = const digest::HASH64_K1,
    HASH_K2 = const digest::HASH64_K2,
    HASH_IV0 = const digest::HASH64_IV[0],
    HASH_IV1 = const digest::HASH64_IV[1],
    HASH_IV2 = const digest::HASH64_IV[2],
    HASH_IV3 = const digest::HASH64_IV[3],
    BLOCK_SIZE = const args::SIZE,
    MAGIC_VALUE = const args::MAGIC,
    FLAG_MMU_BIT = const args::FLAG_MMU.trailing_zeros(),
    FLAG_PSCI_STOP_BIT = const args::FLAG_PSCI_STOP.trailing_zeros(),
    FLAG_MINI_UART_BIT = const args::FLAG_CONSOLE_MINI_UART.trailing_zeros(),
    SCTLR_EL2_MMU_ON = const regs::SCTLR_EL2_MMU_ON,
    SCTLR_EL2_MMU_OFF = const regs::SCTLR_EL2_MMU_OFF,
    SCTLR_EL1_MMU_OFF = const regs::SCTLR_EL1_MMU_OFF,
    SPSR_EL1H_DAIF = const regs::SPSR_EL1H_DAIF,
    SKIP_DEST_CLEAN = const cfg!(feature = "test-skip-dest-clean") as u32,
);

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    static hypstub_reloc_engine_start: u8;
    static hypstub_reloc_engine_end: u8;
}

/// The engine's code, to be copied into the control page; it is entered at its first byte.
/// Empty on the host.
#[must_use]
pub fn code() -> &'static [u8] {
    #[cfg(target_arch = "aarch64")]
    {
        let start = core::ptr::addr_of!(hypstub_reloc_engine_start);
        let end = core::ptr::addr_of!(hypstub_reloc_engine_end);
        // SAFETY: both symbols bound the engine's bytes in the image's read-only code
        // (engine.S), start before end; the image is mapped for reading and never written.
        unsafe { core::slice::from_raw_parts(start, end as usize - start as usize) }
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        &[]
    }
}
