//! `el2-client`: a bare-metal test payload that checks, from the outside, what a firmware
//! must do when it enters a Linux-style arm64 Image at EL2
//! (Documentation/arch/arm64/booting.rst): the entry state (EL2, x0 = an aligned DTB of at
//! most 2 MiB, x1..x3 = 0, DAIF masked, MMU and data cache off), the whole several-MiB image
//! loaded unchanged at the address its header asks for, a command line without the
//! firmware's own options, and the initrd loaded whole, in RAM, clear of the image and DTB.
//!
//! It is an arm64 Image linked to run at 0x4000_0000 + text_offset (0x80000 by default;
//! `EL2_CLIENT_TEXT_OFFSET` at build time changes both, see `build.rs`) and runs with the
//! MMU off throughout (so: no atomics, aligned accesses only). Each check prints
//! `el2-client: ok <name>` or `el2-client: FAIL <name>: ...`; the run ends with
//! `el2-client: PASS (<n> checks)` or `el2-client: FAILED (<k> of <n>)` and PSCI SYSTEM_OFF.
//! QEMU's own `-kernel` loader (`-M virt,virtualization=on`) passes every check: it is the
//! reference a firmware must match.
//!
//! Map: `entry.S` (Image header, entry state capture, load-address check, vectors) and
//! `start.rs` (its constants, the exception and panic handlers); `checks.rs` (the checks);
//! `cmdline.rs` (input parsing, host-tested); `image.rs` (what build.rs generated); `regs.rs`. The console, the
//! device-tree walk and address ranges, the CRC32C (host-tested; `build.rs` includes its file)
//! and the check counter come from the
//! `client-support` crate (tests/client-support), shared with abi-client.
//!
//! On the host this is only a stub `main`, so that `cargo clippy --workspace` builds.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod checks;
#[cfg(any(target_os = "none", test))]
mod cmdline;
#[cfg(any(target_os = "none", test))]
mod image;
#[cfg(target_os = "none")]
mod regs;
#[cfg(target_os = "none")]
mod start;

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "el2-client is a bare-metal EL2 payload (an arm64 Image); build it with \
         --target aarch64-unknown-none-softfloat"
    );
}

/// Called by `primary_entry` in `entry.S` with the firmware's x0..x3 and the DAIF,
/// CurrentEL and SCTLR_ELx it captured at the first instructions, on the boot stack, with
/// .bss zeroed and the vectors installed. Runs the checks in order, then powers off.
#[cfg(target_os = "none")]
extern "C" fn el2_client_main(
    x0: u64,
    x1: u64,
    x2: u64,
    x3: u64,
    daif: u64,
    current_el: u64,
    sctlr: u64,
) -> ! {
    use checks::{Checker, EntryState};
    use client_support::say;

    let entry = EntryState {
        regs: [x0, x1, x2, x3],
        el: (current_el >> 2) & 0b11,
        daif,
        sctlr,
    };
    say!("el2-client: entered at EL{}", entry.el);
    let mut t = Checker::new("el2-client");

    checks::image(&mut t); // 1
    checks::entry_state(&mut t, &entry); // 2
    let dtb = checks::device_tree(&mut t, x0); // 3
    checks::image_intact(&mut t); // 4
    let bootargs = checks::bootargs_clean(&mut t, dtb.as_ref()); // 5
    let initrd = checks::no_overlap(&mut t, dtb.as_ref()); // 6
    checks::initrd_intact(&mut t, bootargs, initrd); // 7
    t.finish(regs::system_off)
}
