//! The calls under test: Linux's hyp-stub ABI (Documentation/virt/kvm/arm/hyp-abi.rst) and
//! SMCCC/PSCI (Arm DEN0028 SMCCC, DEN0022 PSCI), made from EL1 with `hvc #0` or `smc #0`.
//!
//! The hyp-stub ABI lets a call clobber x0..x18, so every wrapper declares all of them
//! clobbered, SMCCC calls included (SMCCC v1.1 would keep x4..x17, but the client asks no
//! more of hypstub than the weakest contract). x19..x29 and SP are not clobbered: Rust
//! relies on them, and both ABIs keep them.

use core::arch::asm;
use core::fmt;

use crate::shared::{rec, EL2_RECORD};
use crate::start;
use client_support::say;

/// hyp-abi.rst: install the EL2 vector table at x1.
pub const HVC_SET_VECTORS: u64 = 0;
/// hyp-abi.rst: run x1 at EL2 with x0..x2 = x2..x4; does not return.
pub const HVC_SOFT_RESTART: u64 = 1;
/// hyp-abi.rst: put the stub's own vectors back.
pub const HVC_RESET_VECTORS: u64 = 2;
/// hyp-abi.rst: switch the caller to VHE (hypstub does not implement it).
pub const HVC_FINALISE_EL2: u64 = 3;
/// hyp-abi.rst: x1 = ICH_VTR_EL2.
pub const HVC_GET_ICH_VTR_EL2: u64 = 4;
/// hyp-abi.rst: what the stub answers to anything it does not do.
pub const HVC_STUB_ERR: u64 = 0xbad_ca11;

/// SMCCC_VERSION (SMCCC 1.1, Arm architecture calls).
pub const SMCCC_VERSION: u64 = 0x8000_0000;
/// SMCCC version 1.1 (major in bits 30:16).
pub const SMCCC_VERSION_1_1: u64 = 0x1_0001;
/// SMCCC NOT_SUPPORTED (-1) in all 64 bits.
pub const SMCCC_NOT_SUPPORTED: u64 = u64::MAX;

/// PSCI_VERSION (SMC32).
pub const PSCI_VERSION: u64 = 0x8400_0000;
/// CPU_OFF (SMC32).
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
/// CPU_ON (SMC64): x1 = target MPIDR, x2 = entry, x3 = context id.
pub const PSCI_CPU_ON: u64 = 0xC400_0003;
/// SYSTEM_OFF (SMC32).
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// PSCI_FEATURES (SMC32): x1 = the function id asked about.
pub const PSCI_FEATURES: u64 = 0x8400_000A;
/// CPU_ON (SMC32): w1 = target MPIDR, w2 = entry, w3 = context id.
pub const PSCI_CPU_ON_32: u64 = 0x8400_0003;
/// PSCI ALREADY_ON.
pub const PSCI_ALREADY_ON: i64 = -4;
/// PSCI INVALID_ADDRESS: an entry point the caller may not use.
pub const PSCI_INVALID_ADDRESS: i64 = -9;
/// hypstub's HYPSTUB_ADD_RAM (SMC64, vendor-specific hypervisor service): the EL1 stage
/// reports RAM with it before the hand-off; refused afterwards.
pub const HYPSTUB_ADD_RAM: u64 = 0xC600_0001;

/// How a call reaches EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc #0`: the hyp-stub ABI, and SMCCC for a guest.
    Hvc,
    /// `smc #0`: trapped to the stub (HCR_EL2.TSC), which answers or forwards it.
    Smc,
}

impl fmt::Display for Conduit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hvc => "hvc",
            Self::Smc => "smc",
        })
    }
}

/// What a call returned in x0 and x1.
#[derive(Clone, Copy, Debug)]
pub struct Ret {
    /// x0: the status or result.
    pub x0: u64,
    /// x1: a second result (HVC_GET_ICH_VTR_EL2).
    pub x1: u64,
}

/// One `hvc #0` or `smc #0` with the given instruction, x0 = `$id`, x1..x3 = `$args`.
macro_rules! conduit_call {
    ($insn:literal, $id:expr, $args:expr) => {{
        let (x0, x1): (u64, u64);
        // SAFETY: every call made through `call` returns to the next instruction with x19..x29
        // and SP_EL1 intact and no Rust-visible memory changed (hyp-abi.rst, SMCCC 1.1
        // register use); the registers it may change, x0..x18, are all declared clobbered.
        unsafe {
            asm!(
                $insn,
                inout("x0") $id => x0,
                inout("x1") $args[0] => x1,
                inout("x2") $args[1] => _,
                inout("x3") $args[2] => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _,
                out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _, out("x18") _,
                options(nostack),
            )
        };
        Ret { x0, x1 }
    }};
}

/// Makes the call `id` with x1..x3 = `args` through `conduit` and returns x0 and x1.
///
/// For every call that comes back to the caller. `HVC_SOFT_RESTART` does not (it has its
/// own wrapper, [`soft_restart`]), and is refused here.
pub fn call(conduit: Conduit, id: u64, args: [u64; 3]) -> Ret {
    assert!(
        !(conduit == Conduit::Hvc && id == HVC_SOFT_RESTART),
        "HVC_SOFT_RESTART goes through soft_restart()"
    );
    match conduit {
        Conduit::Hvc => conduit_call!("hvc #0", id, args),
        Conduit::Smc => conduit_call!("smc #0", id, args),
    }
}

/// The client's EL2 routines (`entry.S`) that HVC_SOFT_RESTART may run.
#[derive(Clone, Copy, Debug)]
pub enum El2Routine {
    /// Records CurrentEL, x0..x2, SCTLR_EL2, DAIF and VBAR_EL2 in [`EL2_RECORD`], then
    /// returns to EL1.
    Record,
    /// Executes UDF at EL2 (the stub must report it and stop); returns to EL1 only if the
    /// stub resumes after it.
    Fault,
    /// An address that cannot be an entry: the stub must refuse the call, which returns.
    Refused(u64),
}

/// HVC_SOFT_RESTART into `routine` with x2..x4 = `args`; comes back once the routine has
/// returned to EL1 (or straight away if the stub refuses the call).
pub fn soft_restart(routine: El2Routine, args: [u64; 3]) {
    let entry = match routine {
        El2Routine::Record => start::el2_record_entry(),
        El2Routine::Fault => start::el2_fault_entry(),
        El2Routine::Refused(entry) => entry,
    };
    // SAFETY: hyp-abi.rst: the stub runs `entry` at EL2. Both routines use only x0..x18
    // (clobbered here, with x30), no stack, and EL2_RECORD (read only through volatile
    // loads), then ERET to label 2 below at EL1h with DAIF masked. hypstub keeps x19..x29
    // and SP_EL1 across the restart (its documented extra to hyp-abi.rst), so the Rust frame
    // is intact when execution resumes there. A stub that refuses the call and returns
    // lands on label 2 as well.
    unsafe {
        asm!(
            "adr {resume}, 2f",
            "str {resume}, [{record}, #{resume_offset}]",
            "hvc #0",
            "2:",
            resume = out(reg) _,
            record = in(reg) EL2_RECORD.as_ptr(),
            resume_offset = const rec::RESUME * 8,
            inout("x0") HVC_SOFT_RESTART => _,
            inout("x1") entry => _,
            inout("x2") args[0] => _,
            inout("x3") args[1] => _,
            inout("x4") args[2] => _,
            out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _, out("x18") _, out("x30") _,
        )
    };
}

/// PSCI SYSTEM_OFF: QEMU exits with status 0. Halts if the call comes back.
pub fn system_off() -> ! {
    let ret = call(Conduit::Smc, PSCI_SYSTEM_OFF, [0; 3]);
    say!("abi-client: SYSTEM_OFF returned {:#x}; halting", ret.x0);
    halt()
}

/// Parks this CPU for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: WFE only waits for an event; it touches no memory or registers.
        unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
    }
}
