//! The few system registers the client reads after entry, and PSCI SYSTEM_OFF.
//!
//! Raw `mrs` and `smc` on purpose: the client checks a firmware from the outside and shares
//! no code with it, register crates included (see Cargo.toml).

use core::arch::asm;

/// ID_AA64ISAR0_EL1.CRC32 (bits 19:16): non-zero when the CRC32/CRC32C instructions exist.
const ISAR0_CRC32_SHIFT: u64 = 16;
/// PSCI SYSTEM_OFF (SMC32 function id, DEN0022).
pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;

/// Whether FEAT_CRC32 is implemented (mandatory from Armv8.1, optional in Armv8.0).
pub fn has_crc32() -> bool {
    let isar0: u64;
    // SAFETY: ID_AA64ISAR0_EL1 is readable at EL1 and above and reading it has no side
    // effects; the client runs at EL1 or higher.
    unsafe {
        asm!("mrs {isar0}, id_aa64isar0_el1", isar0 = out(reg) isar0,
             options(nomem, nostack, preserves_flags))
    };
    (isar0 >> ISAR0_CRC32_SHIFT) & 0xf != 0
}

/// The address the client is running at: where its first byte (the Image header) is.
pub fn runtime_base() -> u64 {
    let base: u64;
    // SAFETY: ADRP/ADD compute a PC-relative address; nothing is read or written.
    unsafe {
        asm!("adrp {base}, el2_client_start", "add {base}, {base}, :lo12:el2_client_start",
             base = out(reg) base, options(nomem, nostack, preserves_flags))
    };
    base
}

/// PSCI SYSTEM_OFF through `smc #0`. At EL2 on QEMU virt with `virtualization=on` and no
/// EL3, QEMU's PSCI answers it itself and exits with status 0 (QEMU hw/arm/virt.c).
/// Parks the CPU if the call comes back.
pub fn system_off() -> ! {
    // SAFETY: SYSTEM_OFF does not return when it succeeds; if it does return, SMCCC lets
    // it change x0..x17, all declared clobbered, and it touches no memory the client owns.
    unsafe {
        asm!(
            "smc #0",
            inout("x0") u64::from(PSCI_SYSTEM_OFF) => _,
            out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _,
            out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _,
            out("x17") _, options(nostack),
        )
    };
    halt()
}

/// Parks this CPU for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: WFE only waits for an event; it touches no memory or registers.
        unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
    }
}
