//! `abi-client`: a bare-metal EL1 test payload that checks, from the outside, what hypstub
//! promises a kernel: the arm64 boot contract (Documentation/arch/arm64/booting.rst), Linux's
//! hyp-stub ABI (Documentation/virt/kvm/arm/hyp-abi.rst), and SMCCC/PSCI through the stub.
//!
//! It is an arm64 Image linked to run at 0x4020_0000 and runs with the MMU off throughout
//! (so: no atomics, aligned accesses only, and memory shared with EL2 code or other CPUs
//! needs no cache maintenance). Each check prints `abi-client: ok <name>` or
//! `abi-client: FAIL <name>: ...`; the run ends with `abi-client: PASS (<n> checks)` or
//! `abi-client: FAILED (<k> of <n>)` and PSCI SYSTEM_OFF (docs/CONTRACTS.md). With
//! `abi.fault=el2`, `abi.fault=el1` or `abi.fault=el1-secondary` on the command line it ends
//! instead by faulting on purpose: at EL2, at EL1 on the boot CPU before its own vectors,
//! or on a secondary started at a BRK.
//!
//! Map: `entry.S` (Image header, entry, vectors, EL2 routines) and `start.rs` (its
//! constants, the fault and panic handlers); `calls.rs` (the HVC/SMC wrappers); `checks.rs`
//! (the checks); `shared.rs` (words shared with EL2 code and secondary CPUs); `regs.rs`.
//! The console, the device-tree walk (host-tested) and the check counter come from the
//! `client-support` crate (tests/client-support), shared with el2-client.
//!
//! On the host this is only a stub `main`, so that `cargo clippy --workspace` builds.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod calls;
#[cfg(target_os = "none")]
mod checks;
#[cfg(target_os = "none")]
mod regs;
#[cfg(target_os = "none")]
mod shared;
#[cfg(target_os = "none")]
mod start;

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "abi-client is a bare-metal EL1 payload for hypstub; build it with \
         --target aarch64-unknown-none-softfloat"
    );
}

/// Called by `primary_entry` in `entry.S` with the boot loader's x0..x3, on the boot stack,
/// with .bss zeroed and VBAR_EL1 set. Runs the checks in order, then powers off.
#[cfg(target_os = "none")]
extern "C" fn abi_client_main(x0: u64, x1: u64, x2: u64, x3: u64) -> ! {
    use checks::{Checker, EntryState};
    use client_support::say;

    // First, before anything can change CurrentEL, DAIF or SCTLR_EL1.
    let entry = EntryState::capture([x0, x1, x2, x3]);
    say!("abi-client: hyp-stub ABI and SMCCC/PSCI checks");
    let mut t = Checker::new("abi-client");

    let dtb = checks::entry_state(&mut t, &entry); // 1
    if entry.el != 1 {
        say!("abi-client: not entered at EL1, so there is no stub to test; stopping");
        t.finish(calls::system_off);
    }
    checks::smccc_version(&mut t); // 2
    checks::unknown_stub_ids(&mut t); // 3
    checks::ich_vtr(&mut t); // 4
    checks::unknown_smccc_ids(&mut t); // 5
    checks::psci_version_features(&mut t); // 6
    let stub_vbar = checks::soft_restart_registers(&mut t); // 7
    checks::set_vectors_misaligned(&mut t); // 8
    checks::set_vectors(&mut t, stub_vbar); // 9
    checks::bad_calls(&mut t); // 10
    checks::cpu_on(&mut t, dtb.as_ref()); // 11
    if let Some(fault) = dtb.as_ref().and_then(checks::fault_requested) {
        checks::fault(&mut t, fault, dtb.as_ref()); // 12
    }
    t.finish(calls::system_off) // 13
}
