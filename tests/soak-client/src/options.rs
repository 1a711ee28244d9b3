//! The client's options on the kernel command line (`/chosen/bootargs`):
//!
//! - `soak.cycles=N`: HVC_SOFT_RESTARTs to make, 1 to 1000000 (default 1000);
//! - `soak.corrupt=N`: at the entry after restart N (0 = the first entry), flip the canary
//!   word inside the digested image before the check, so that entry and every later one
//!   must fail: proof that the digest check can fail. N at most `soak.cycles`.
//!
//! Other words are not the client's and are ignored; an unknown `soak.*` word, a value that
//! is not a decimal number in range, or an option given twice is refused with a message
//! naming it.

use core::fmt;

/// Restarts a run makes when `soak.cycles` is not given.
pub const DEFAULT_CYCLES: u64 = 1000;
/// The most restarts `soak.cycles` may ask for.
pub const MAX_CYCLES: u64 = 1_000_000;

/// The options of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// HVC_SOFT_RESTARTs to make.
    pub cycles: u64,
    /// The entry (restarts made before it) at which the canary is flipped.
    pub corrupt_at: Option<u64>,
}

/// Why the command line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionError<'a> {
    /// A `soak.` word the client does not know.
    Unknown(&'a [u8]),
    /// An option whose value is not a decimal number in its range.
    BadValue(&'a [u8]),
    /// An option given twice.
    Repeated(&'a [u8]),
}

impl fmt::Display for OptionError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn text(b: &[u8]) -> &str {
            core::str::from_utf8(b).unwrap_or("<not UTF-8>")
        }
        match self {
            Self::Unknown(w) => write!(
                f,
                "unknown option `{}` (known: soak.cycles=N, soak.corrupt=N)",
                text(w)
            ),
            Self::BadValue(w) => write!(
                f,
                "bad value in `{}`: soak.cycles takes 1..={MAX_CYCLES}, soak.corrupt 0..=soak.cycles",
                text(w)
            ),
            Self::Repeated(w) => write!(f, "option given twice: `{}`", text(w)),
        }
    }
}

/// Reads the client's options from `bootargs`.
pub fn parse(bootargs: &[u8]) -> Result<Options, OptionError<'_>> {
    let mut cycles = None;
    let mut corrupt_at = None;
    for word in bootargs
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| w.starts_with(b"soak."))
    {
        let (slot, value) = if let Some(v) = word.strip_prefix(b"soak.cycles=") {
            (&mut cycles, v)
        } else if let Some(v) = word.strip_prefix(b"soak.corrupt=") {
            (&mut corrupt_at, v)
        } else {
            return Err(OptionError::Unknown(word));
        };
        if slot.is_some() {
            return Err(OptionError::Repeated(word));
        }
        *slot = Some((decimal(value).ok_or(OptionError::BadValue(word))?, word));
    }
    let cycles = match cycles {
        None => DEFAULT_CYCLES,
        Some((n, word)) if !(1..=MAX_CYCLES).contains(&n) => {
            return Err(OptionError::BadValue(word))
        }
        Some((n, _)) => n,
    };
    let corrupt_at = match corrupt_at {
        Some((n, word)) if n > cycles => return Err(OptionError::BadValue(word)),
        other => other.map(|(n, _)| n),
    };
    Ok(Options { cycles, corrupt_at })
}

/// A decimal number of 1 to 19 digits (no sign, no leading `+`).
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        assert_eq!(
            parse(b""),
            Ok(Options {
                cycles: 1000,
                corrupt_at: None
            })
        );
        assert_eq!(
            parse(b"console=ttyAMA0 soak.cycles=50  soak.corrupt=10 x"),
            Ok(Options {
                cycles: 50,
                corrupt_at: Some(10)
            })
        );
        assert_eq!(
            parse(b"soak.cycles=1000000").map(|o| o.cycles),
            Ok(MAX_CYCLES)
        );
        assert_eq!(
            parse(b"soak.cycles=3 soak.corrupt=3").map(|o| o.corrupt_at),
            Ok(Some(3))
        );
    }

    #[test]
    fn refusals_name_the_word() {
        assert_eq!(
            parse(b"soak.cycle=5"),
            Err(OptionError::Unknown(b"soak.cycle=5"))
        );
        for bad in [
            &b"soak.cycles=0"[..],
            b"soak.cycles=1000001",
            b"soak.cycles=",
            b"soak.cycles=-1",
            b"soak.cycles=0x10",
            b"soak.cycles=99999999999999999999",
        ] {
            assert_eq!(parse(bad), Err(OptionError::BadValue(bad)), "{bad:?}");
        }
        assert_eq!(
            parse(b"soak.cycles=5 soak.corrupt=6"),
            Err(OptionError::BadValue(b"soak.corrupt=6"))
        );
        assert_eq!(
            parse(b"soak.cycles=5 soak.cycles=6"),
            Err(OptionError::Repeated(b"soak.cycles=6"))
        );
        let msg = OptionError::Unknown(b"soak.x").to_string();
        assert!(
            msg.contains("soak.x") && msg.contains("soak.cycles=N"),
            "{msg}"
        );
    }
}
