//! The calls the client makes from EL1 with `hvc #0`: HVC_SOFT_RESTART (Linux's hyp-stub
//! ABI, Documentation/virt/kvm/arm/hyp-abi.rst) and PSCI (Arm DEN0022) through the stub.
//!
//! Every wrapper declares x0..x18 clobbered (hyp-abi.rst lets a call change them; SMCCC 1.1
//! would keep x4..x17, but the client asks no more than the weakest contract).

use core::arch::asm;

use client_support::say;

/// hyp-abi.rst: run x1 at EL2 with x0..x2 = x2..x4; does not return.
pub const HVC_SOFT_RESTART: u64 = 1;
/// PSCI CPU_OFF (SMC32).
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
/// PSCI CPU_ON (SMC64): x1 = target MPIDR, x2 = entry, x3 = context id.
pub const PSCI_CPU_ON: u64 = 0xC400_0003;
/// PSCI AFFINITY_INFO (SMC64): x1 = target affinity, x2 = lowest affinity level.
pub const PSCI_AFFINITY_INFO: u64 = 0xC400_0004;
/// PSCI SYSTEM_OFF (SMC32).
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// AFFINITY_INFO's answer for a CPU that is off (DEN0022 5.8: 0 ON, 1 OFF, 2 ON_PENDING).
pub const AFFINITY_OFF: u64 = 1;

/// One SMCCC call with `hvc #0`: x0 = `id`, x1..x3 = `args`; returns x0.
pub fn smccc(id: u64, args: [u64; 3]) -> u64 {
    let x0: u64;
    // SAFETY: an SMCCC call through the stub returns to the next instruction with x19..x29
    // and SP intact and no Rust-visible memory changed; x0..x18 are declared clobbered.
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") id => x0,
            inout("x1") args[0] => _,
            inout("x2") args[1] => _,
            inout("x3") args[2] => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _, out("x18") _,
            options(nostack),
        )
    };
    x0
}

/// HVC_SOFT_RESTART to `entry` with x2 = `dtb`, x3 = `restarts`, x4 = `token` (the entry's
/// x0..x2; hypstub keeps x3, so the entry sees `restarts` in x3 too). Returns only when the
/// stub refuses the call, with its x0.
pub fn soft_restart(entry: u64, dtb: u64, restarts: u64, token: u64) -> u64 {
    let x0: u64;
    // SAFETY: when the call succeeds, control never comes back here: the stub runs `entry`
    // (the client's own Image entry) at EL2, which starts the client afresh at EL1 with a
    // new stack; nothing of this Rust frame is used again. When the stub refuses, it returns
    // to the next instruction like any call, x0..x18 and x30 declared clobbered.
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") HVC_SOFT_RESTART => x0,
            inout("x1") entry => _,
            inout("x2") dtb => _,
            inout("x3") restarts => _,
            inout("x4") token => _,
            out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _, out("x18") _, out("x30") _,
        )
    };
    x0
}

/// PSCI SYSTEM_OFF with `smc #0`: the stub traps it (HCR_EL2.TSC) and forwards it, and the
/// same call works at EL2 without a stub (QEMU virt's PSCI conduit with EL2 is SMC). QEMU
/// exits with status 0. Halts if the call comes back.
pub fn system_off() -> ! {
    let ret: u64;
    // SAFETY: SYSTEM_OFF does not return when it succeeds; when it fails it returns like any
    // SMCCC call, x0..x18 declared clobbered.
    unsafe {
        asm!(
            "smc #0",
            inout("x0") PSCI_SYSTEM_OFF => ret,
            out("x1") _, out("x2") _, out("x3") _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _, out("x18") _,
            options(nostack),
        )
    };
    say!("soak-client: SYSTEM_OFF returned {ret:#x}; halting");
    halt()
}

/// Parks this CPU for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: WFE only waits for an event; it touches no memory or registers.
        unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
    }
}
