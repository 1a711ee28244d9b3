//! Lock-free console lines from EL2, timestamped from the generic counter.
//!
//! The stub runs with the MMU off, where memory is Device memory and exclusive accesses are
//! not guaranteed to work (Arm ARM B2.2.5 / K1.2.5), so it cannot share the EL1 stage's
//! locked logger: it writes straight to the platform's console.

use core::fmt::{self, Write};

/// Splits a counter value into whole seconds and microseconds at `freq` Hz.
#[must_use]
pub fn split_time(count: u64, freq: u64) -> (u64, u64) {
    if freq == 0 {
        return (0, 0);
    }
    let secs = count / freq;
    let micros = (count % freq) * 1_000_000 / freq;
    (secs, micros)
}

/// Writes the `[    s.uuuuuu] ` prefix every console line starts with.
///
/// # Errors
/// Whatever `w` returns.
pub fn write_timestamp(w: &mut dyn Write, count: u64, freq: u64) -> fmt::Result {
    let (s, us) = split_time(count, freq);
    write!(w, "[{s:5}.{us:06}] ")
}

/// The counter and its frequency (CNTPCT_EL0, CNTFRQ_EL0), or zeros on the host.
#[must_use]
pub fn now() -> (u64, u64) {
    #[cfg(target_arch = "aarch64")]
    {
        use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
        (CNTPCT_EL0.get(), CNTFRQ_EL0.get())
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        (0, 0)
    }
}

/// A `fmt::Write` over a function that puts a string on the console.
pub struct Writer(pub fn(&str));

impl Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        (self.0)(s);
        Ok(())
    }
}

/// Prints one timestamped line through `put`.
pub fn line(put: fn(&str), args: fmt::Arguments<'_>) {
    let mut w = Writer(put);
    let (count, freq) = now();
    // The writer never fails.
    let _ = write_timestamp(&mut w, count, freq);
    let _ = w.write_fmt(args);
    let _ = w.write_str("\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            split_time(62_500_000 * 3 + 31_250_000, 62_500_000),
            (3, 500_000)
        );
        assert_eq!(split_time(5, 0), (0, 0));
        let mut s = heapless_string();
        write_timestamp(&mut s, 62_500_000 + 625, 62_500_000).unwrap();
        assert_eq!(s.0, "[    1.000010] ");
    }

    struct S(std::string::String);
    fn heapless_string() -> S {
        S(std::string::String::new())
    }
    impl Write for S {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.push_str(s);
            Ok(())
        }
    }
}
