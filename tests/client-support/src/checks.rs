//! The [`Checker`] that prints and counts the results of a client's checks.
//!
//! Each result is one console line, `<client>: ok <name>` or
//! `<client>: FAIL <name>: got 0x.. expected ..`, and the run ends with `<client>: PASS (<n>
//! checks)` or `<client>: FAILED (<k> of <n>)`, where `<client>` is the client's name
//! (`abi-client`, `el2-client`); tests grep for these lines.

use core::fmt::Display;

use crate::say;

/// Counts the checks and prints each result.
pub struct Checker {
    client: &'static str,
    total: u32,
    failed: u32,
}

impl Checker {
    /// No checks yet; `client` is the name that starts every line.
    pub const fn new(client: &'static str) -> Self {
        Self {
            client,
            total: 0,
            failed: 0,
        }
    }

    /// A check that passed.
    pub fn pass(&mut self, name: impl Display) {
        self.total += 1;
        say!("{}: ok {name}", self.client);
    }

    /// A check that failed, with why.
    pub fn fail(&mut self, name: impl Display, why: impl Display) {
        self.total += 1;
        self.failed += 1;
        say!("{}: FAIL {name}: {why}", self.client);
    }

    /// Checks `got == expected`; returns whether it held.
    pub fn expect_eq(&mut self, name: impl Display, got: u64, expected: u64) -> bool {
        self.expect(name, got == expected, got, format_args!("{expected:#x}"))
    }

    /// Checks a condition `ok` on `got`, with `expected` saying what was wanted.
    pub fn expect(
        &mut self,
        name: impl Display,
        ok: bool,
        got: u64,
        expected: impl Display,
    ) -> bool {
        if ok {
            self.pass(name);
        } else {
            self.fail(name, format_args!("got {got:#x} expected {expected}"));
        }
        ok
    }

    /// Prints the verdict, then calls `power_off` (the client's PSCI SYSTEM_OFF).
    pub fn finish(&self, power_off: fn() -> !) -> ! {
        if self.failed == 0 {
            say!("{}: PASS ({} checks)", self.client, self.total);
        } else {
            say!(
                "{}: FAILED ({} of {})",
                self.client,
                self.failed,
                self.total
            );
        }
        power_off()
    }
}
