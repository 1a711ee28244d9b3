//! `soak-client`: a bare-metal EL1 test payload that soaks hypstub's stub. It makes
//! `soak.cycles` (1000 by default) consecutive HVC_SOFT_RESTARTs into its own Image entry,
//! and at every entry checks its own image against the CRC32C xtask embedded at build time
//! and the state the restart should have left; between two restarts it starts every other
//! CPU with PSCI CPU_ON through the stub and waits until each has reported in and is off
//! again (CPU_OFF, AFFINITY_INFO). The run ends with `soak-client: PASS <n> cycles, 0
//! failures ...` or `soak-client: FAILED ...` and PSCI SYSTEM_OFF (docs/CONTRACTS.md).
//!
//! It is an arm64 Image linked to run at 0x4020_0000, entered by hypstub with
//! `hypstub.el=1`, and runs with the MMU off throughout, at EL1 and in the few instructions
//! at EL2 after each restart (so: no atomics, aligned accesses only, and nothing to clean
//! before the restart).
//!
//! Map: `entry.S` (Image header, the entry every run and restart goes through, the EL2 drop
//! back to EL1, the secondary entry, vectors) and `start.rs` (its constants, the fault and
//! panic handlers); `soak.rs` (one entry's checks, the CPU round, the restart);
//! `state.rs` (what survives a restart, mailboxes, digest record, canary); `options.rs`
//! (`soak.*` options, host-tested); `calls.rs`; `regs.rs`. The console, device-tree walk,
//! CRC32C and digest record come from `client-support` (tests/client-support).
//!
//! On the host this is only a stub `main` (and the options' unit tests).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod calls;
#[cfg(any(target_os = "none", test))]
mod options;
#[cfg(target_os = "none")]
mod regs;
#[cfg(target_os = "none")]
mod soak;
#[cfg(target_os = "none")]
mod start;
#[cfg(target_os = "none")]
mod state;

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "soak-client is a bare-metal EL1 payload for hypstub; build it with \
         cargo xtask build-payload soak-client"
    );
}

/// Called by `soak_el1_entry` in `entry.S` with the entry's x0..x3, on a fresh boot stack,
/// with .bss zeroed and VBAR_EL1 set: at the first entry and after every restart.
#[cfg(target_os = "none")]
extern "C" fn soak_client_main(x0: u64, x1: u64, x2: u64, x3: u64) -> ! {
    soak::enter([x0, x1, x2, x3])
}
