//! One entry of the soak: what the client checks each time it is entered, the round of
//! CPU_ON/OFF of every secondary, and the restart into itself.
//!
//! Every entry (the boot loader's, then one per HVC_SOFT_RESTART):
//!
//! 1. checks how it was entered: the first time, booting.rst's x1..x3 = 0 and a readable
//!    DTB with valid options; after a restart, that the registers (x0 = the same DTB,
//!    x1 = x3 = the restart count) and the EL2 state `entry.S` recorded (EL2, MMU and
//!    caches off, DAIF masked, VBAR_EL2 the stub's, unchanged since the first restart)
//!    agree with the count kept in memory;
//! 2. computes the CRC32C of its own loaded image and compares it with the digest xtask
//!    embedded at build time;
//! 3. unless it has made all its restarts: starts every other CPU of the DTB with PSCI
//!    CPU_ON through the stub, waits for each to report in (at EL1, with its context id)
//!    and to turn itself off (PSCI AFFINITY_INFO says OFF); then HVC_SOFT_RESTART into its
//!    own Image entry.
//!
//! A failed check is counted and printed and the soak goes on; a failure that leaves the
//! machine in an unknown state (a CPU that does not come up or go down, a refused restart)
//! ends the run. The last line is `soak-client: PASS <n> cycles, 0 failures ...` or
//! `soak-client: FAILED ...`, then PSCI SYSTEM_OFF.

use core::fmt;
use core::hint::spin_loop;

use crate::calls::{self, smccc, AFFINITY_OFF, PSCI_AFFINITY_INFO, PSCI_CPU_ON};
use crate::options;
use crate::regs::{self, Deadline};
use crate::start::{self, RESTART_TOKEN};
use crate::state::{self, mailbox, st, CANARY, DIGEST, MAX_CPUS, STATE, STRAY_SLOT};
use client_support::fdt::Fdt;
use client_support::{crc32c, image_digest, say};

/// QEMU virt's RAM starts here (docs/memory-map.md); the DTB must be in RAM.
const RAM_BASE: u64 = 0x4000_0000;
/// The affinity fields of MPIDR_EL1 (Aff3 in 39:32, Aff2..Aff0 in 23:0), as PSCI wants them.
const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;
/// DAIF with D, A, I and F all set (bits 9:6).
const DAIF_MASKED: u64 = 0x3c0;
/// SCTLR_EL2.M (MMU), C (data cache) and I (instruction cache).
const SCTLR_M_C_I: u64 = (1 << 0) | (1 << 2) | (1 << 12);
/// hyp-abi.rst: an EL2 vector table is 2 KiB aligned.
const VBAR_ALIGN: u64 = 0x800;
/// How long a secondary gets to report in, and then to be off.
const SECONDARY_TIMEOUT_MS: u64 = 5000;
/// Restarts between two progress lines.
const PROGRESS_EVERY: u64 = 100;
/// Failures printed in full; later ones are only counted.
const PRINTED_FAILURES: u64 = 20;

/// Counts a failed check and prints it (the first [`PRINTED_FAILURES`] of them).
fn fail(restarts: u64, what: fmt::Arguments<'_>) {
    let failures = STATE.read(st::FAILURES) + 1;
    STATE.write(st::FAILURES, failures);
    if failures <= PRINTED_FAILURES {
        say!("soak-client: FAIL after {restarts} restarts: {what}");
    } else if failures == PRINTED_FAILURES + 1 {
        say!("soak-client: further failures are counted, not printed");
    }
}

/// Counts and prints a failure after which the soak cannot go on, and ends the run.
fn fatal(restarts: u64, what: fmt::Arguments<'_>) -> ! {
    fail(restarts, what);
    finish(restarts)
}

/// Checks `got == expected`, counting a failure named `what` if not.
fn expect_eq(restarts: u64, what: impl fmt::Display, got: u64, expected: u64) {
    if got != expected {
        fail(
            restarts,
            format_args!("{what}: got {got:#x}, expected {expected:#x}"),
        );
    }
}

/// Runs one entry; called by `soak_client_main` with the entry's x0..x3 at EL1.
pub fn enter(x: [u64; 4]) -> ! {
    let el = regs::current_el();
    if el != 1 {
        say!(
            "soak-client: FAIL entered at EL{el}, not at EL1 under a stub: boot it through \
             hypstub with hypstub.el=1; stopping"
        );
        calls::system_off();
    }
    let restarts = if x[2] == RESTART_TOKEN {
        restarted(x)
    } else {
        first_entry(x)
    };
    if STATE.read(st::CORRUPT_AT) == restarts {
        say!("soak-client: soak.corrupt: flipping the canary word inside the image now");
        CANARY.write(0, !CANARY.read(0));
    }
    check_digest(restarts);

    let total = STATE.read(st::TOTAL);
    if restarts == total {
        finish(restarts);
    }
    if restarts > 0 && restarts.is_multiple_of(PROGRESS_EVERY) {
        say!(
            "soak-client: {restarts} of {total} cycles, {} failures, {} ms",
            STATE.read(st::FAILURES),
            elapsed_ms()
        );
    }
    cpu_round(restarts);

    let next = restarts + 1;
    STATE.write(st::RESTARTS, next);
    let x0 = calls::soft_restart(
        start::image_entry(),
        STATE.read(st::DTB),
        next,
        RESTART_TOKEN,
    );
    fatal(
        restarts,
        format_args!("HVC_SOFT_RESTART returned x0={x0:#x} instead of restarting the client"),
    )
}

/// The boot loader's entry: checks it, reads the options, and sets up [`STATE`].
fn first_entry(x: [u64; 4]) -> u64 {
    for word in 0..st::WORDS {
        STATE.write(word, 0);
    }
    STATE.write(st::START, regs::counter());
    STATE.write(st::CORRUPT_AT, u64::MAX);
    // booting.rst: x1..x3 are zero (and so x2 is not the restart token).
    for (i, &value) in x.iter().enumerate().skip(1) {
        expect_eq(0, format_args!("first entry x{i}"), value, 0);
    }
    let dtb = x[0];
    if !dtb.is_multiple_of(8) || dtb < RAM_BASE {
        fatal(
            0,
            format_args!("x0 = {dtb:#x} is not an 8-byte-aligned address in RAM"),
        );
    }
    // SAFETY: x0 is 8-byte aligned and in RAM; booting.rst says it is the DTB, which nothing
    // writes while the client runs (the client never writes outside its image, and the
    // secondaries only write their mailboxes); from_addr reads the header first and bounds
    // the size.
    let fdt = match unsafe { Fdt::from_addr(dtb as usize) } {
        Ok(fdt) => fdt,
        Err(e) => fatal(0, format_args!("the DTB at {dtb:#x}: {e:?}")),
    };
    if let Err(e) = fdt.validate() {
        fatal(0, format_args!("the DTB at {dtb:#x}: {e:?}"));
    }
    let bootargs = fdt.bootargs().ok().flatten().unwrap_or_default();
    let opts = match options::parse(bootargs) {
        Ok(opts) => opts,
        Err(e) => fatal(0, format_args!("{e}")),
    };
    let mut mpidrs = [0; MAX_CPUS];
    let cpus = match fdt.cpu_mpidrs(&mut mpidrs) {
        Ok(n) if (1..=MAX_CPUS).contains(&n) => n,
        Ok(n) => fatal(
            0,
            format_args!("the DTB has {n} CPUs; the client drives 1..={MAX_CPUS}"),
        ),
        Err(e) => fatal(0, format_args!("/cpus in the DTB: {e:?}")),
    };
    STATE.write(st::DTB, dtb);
    STATE.write(st::CPUS, cpus as u64);
    STATE.write(st::TOTAL, opts.cycles);
    if let Some(n) = opts.corrupt_at {
        STATE.write(st::CORRUPT_AT, n);
    }
    say!(
        "soak-client: {} HVC_SOFT_RESTART cycles on {cpus} CPUs, CPU_ON/OFF of the {} other \
         CPUs in each; image digest checked at every entry",
        opts.cycles,
        cpus - 1
    );
    0
}

/// An entry through the client's own HVC_SOFT_RESTART: checks the registers and the EL2
/// record against [`STATE`]; returns the restart count (the one kept in memory).
fn restarted(x: [u64; 4]) -> u64 {
    let restarts = STATE.read(st::RESTARTS);
    expect_eq(
        restarts,
        "x1 (the restart count passed in x3 of the HVC)",
        x[1],
        restarts,
    );
    expect_eq(
        restarts,
        "x3 (kept from the caller by hypstub)",
        x[3],
        restarts,
    );
    expect_eq(
        restarts,
        "x0 (the DTB passed in x2 of the HVC)",
        x[0],
        STATE.read(st::DTB),
    );
    expect_eq(
        restarts,
        "EL2 entries recorded by entry.S",
        STATE.read(st::EL2_ENTRIES),
        restarts,
    );
    expect_eq(
        restarts,
        "CurrentEL.EL at the restart entry",
        (STATE.read(st::EL2_CURRENT_EL) >> 2) & 0b11,
        2,
    );
    expect_eq(
        restarts,
        "SCTLR_EL2.{M,C,I} at the restart entry",
        STATE.read(st::EL2_SCTLR) & SCTLR_M_C_I,
        0,
    );
    expect_eq(
        restarts,
        "DAIF at the restart entry",
        STATE.read(st::EL2_DAIF),
        DAIF_MASKED,
    );
    let vbar = STATE.read(st::EL2_VBAR);
    if restarts == 1 {
        if vbar == 0 || !vbar.is_multiple_of(VBAR_ALIGN) {
            fail(
                restarts,
                format_args!("VBAR_EL2 = {vbar:#x} is no vector table"),
            );
        }
        STATE.write(st::FIRST_VBAR, vbar);
    } else {
        expect_eq(
            restarts,
            "VBAR_EL2 (the stub's, as at the first restart)",
            vbar,
            STATE.read(st::FIRST_VBAR),
        );
    }
    restarts
}

/// Compares the CRC32C of the loaded image (the header to the digest record) with the
/// digest xtask embedded.
fn check_digest(restarts: u64) {
    let (magic, embedded) = DIGEST.read();
    if magic != image_digest::EMBEDDED {
        fatal(
            restarts,
            format_args!(
                "no image digest embedded (record {magic:#010x}): build the image with \
                 `cargo xtask build-payload soak-client`"
            ),
        );
    }
    let start = start::image_start();
    let len = DIGEST.addr() - start;
    // SAFETY: the range is the client's own loaded image, from the Image header to the
    // digest record (link.ld), readable and, but for the canary, never written.
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
    let crc = crc32c::crc32c(bytes);
    if restarts == 0 {
        say!("soak-client: image digest {embedded:#010x} (CRC32C of {len} bytes at {start:#x})");
    }
    if crc != embedded {
        fail(
            restarts,
            format_args!(
                "image digest: CRC32C {crc:#010x}, embedded at build time {embedded:#010x}"
            ),
        );
    }
}

/// PSCI CPU_ON of every CPU of the DTB but this one, each reporting in and turning itself
/// off again before this returns.
fn cpu_round(restarts: u64) {
    // SAFETY: the DTB address was checked at the first entry and every restart passes the
    // same one (checked in `restarted`); nothing writes the DTB.
    let fdt = match unsafe { Fdt::from_addr(STATE.read(st::DTB) as usize) } {
        Ok(fdt) => fdt,
        Err(e) => fatal(restarts, format_args!("the DTB no longer reads: {e:?}")),
    };
    let mut mpidrs = [0; MAX_CPUS];
    let cpus = fdt.cpu_mpidrs(&mut mpidrs).unwrap_or(0);
    expect_eq(
        restarts,
        "CPUs in the DTB",
        cpus as u64,
        STATE.read(st::CPUS),
    );
    let cpus = cpus.min(MAX_CPUS);
    let me = regs::mpidr_el1() & MPIDR_AFFINITY;
    let entry = start::secondary_entry();
    let mut started = [false; MAX_CPUS];

    for (slot, &mpidr) in mpidrs.iter().enumerate().take(cpus) {
        if mpidr & MPIDR_AFFINITY == me {
            continue;
        }
        state::mailbox_clear(slot);
        let ret = smccc(PSCI_CPU_ON, [mpidr, entry, context_id(restarts, slot)]);
        if ret != 0 {
            fatal(
                restarts,
                format_args!("CPU_ON of MPIDR {mpidr:#x} answered {}", ret as i64),
            );
        }
        started[slot] = true;
    }
    for (slot, &mpidr) in mpidrs.iter().enumerate().take(cpus) {
        if !started[slot] {
            continue;
        }
        let deadline = Deadline::after_ms(SECONDARY_TIMEOUT_MS);
        while state::mailbox_read(slot, mailbox::ARRIVED) == 0 {
            if deadline.passed() {
                fatal(
                    restarts,
                    format_args!("MPIDR {mpidr:#x} did not report in within {SECONDARY_TIMEOUT_MS} ms of CPU_ON"),
                );
            }
            spin_loop();
        }
        expect_eq(
            restarts,
            format_args!("context id of MPIDR {mpidr:#x}"),
            state::mailbox_read(slot, mailbox::ARRIVED),
            context_id(restarts, slot),
        );
        expect_eq(
            restarts,
            format_args!("CurrentEL.EL of MPIDR {mpidr:#x}"),
            (state::mailbox_read(slot, mailbox::CURRENT_EL) >> 2) & 0b11,
            1,
        );
        expect_eq(
            restarts,
            format_args!("MPIDR_EL1 affinity of MPIDR {mpidr:#x}"),
            state::mailbox_read(slot, mailbox::MPIDR) & MPIDR_AFFINITY,
            mpidr & MPIDR_AFFINITY,
        );
    }
    for (slot, &mpidr) in mpidrs.iter().enumerate().take(cpus) {
        if !started[slot] {
            continue;
        }
        let deadline = Deadline::after_ms(SECONDARY_TIMEOUT_MS);
        loop {
            let info = smccc(PSCI_AFFINITY_INFO, [mpidr, 0, 0]);
            if info == AFFINITY_OFF {
                break;
            }
            let off_ret = state::mailbox_read(slot, mailbox::OFF_RETURNED);
            if off_ret != 0 || deadline.passed() {
                fatal(
                    restarts,
                    format_args!(
                        "MPIDR {mpidr:#x} not off {SECONDARY_TIMEOUT_MS} ms after reporting in \
                         (AFFINITY_INFO {}, CPU_OFF returned {off_ret:#x})",
                        info as i64
                    ),
                );
            }
            spin_loop();
        }
        STATE.write(st::CPU_CYCLES, STATE.read(st::CPU_CYCLES) + 1);
    }
    let stray = state::mailbox_read(STRAY_SLOT, mailbox::ARRIVED);
    if stray != 0 {
        fail(
            restarts,
            format_args!(
                "a secondary arrived with context id {stray:#x}, which the client never passed"
            ),
        );
    }
}

/// The CPU_ON context id of the CPU in `slot` for the round after `restarts` restarts:
/// never zero, different in every round, the slot in bits 7:0.
fn context_id(restarts: u64, slot: usize) -> u64 {
    ((restarts + 1) << 8) | slot as u64
}

/// Milliseconds since the first entry.
fn elapsed_ms() -> u64 {
    regs::counter().wrapping_sub(STATE.read(st::START)) / (regs::counter_hz() / 1000).max(1)
}

/// Prints the verdict and powers off.
fn finish(restarts: u64) -> ! {
    let total = STATE.read(st::TOTAL);
    let failures = STATE.read(st::FAILURES);
    let ms = elapsed_ms();
    let cpu_cycles = STATE.read(st::CPU_CYCLES);
    if total == 0 {
        // The first entry stopped before it had read soak.cycles.
        say!("soak-client: FAILED before the soak started, {failures} failures");
    } else if failures == 0 && restarts == total {
        say!(
            "soak-client: PASS {total} cycles, 0 failures ({} CPUs, {cpu_cycles} secondary \
             CPU_ON/OFF, {} image digests) in {}.{:03} s",
            STATE.read(st::CPUS),
            total + 1,
            ms / 1000,
            ms % 1000
        );
    } else {
        say!(
            "soak-client: FAILED after {restarts} of {total} cycles, {failures} failures \
             ({cpu_cycles} secondary CPU_ON/OFF) in {}.{:03} s",
            ms / 1000,
            ms % 1000
        );
    }
    calls::system_off()
}
