//! The `hypstub.*` firmware options (docs/options.md).
//!
//! They ride on the kernel command line the payload would get (QEMU
//! `-append`, the Pi's cmdline.txt) as `hypstub.NAME=VALUE`, and [`parse`]
//! removes them before the payload sees the line. Words are split the way
//! Linux's `next_arg()` (lib/cmdline.c) splits them: at whitespace outside
//! double quotes, so `foo="a b"` is one word. Everything after a bare `--` is
//! for the payload's init and is passed on untouched, as Linux does.

use alloc::string::String;

use log::LevelFilter;
use thiserror::Error;

/// Linux arm64's `COMMAND_LINE_SIZE`: the longest command line it keeps,
/// counting the terminating NUL (arch/arm64/include/uapi/asm/setup.h).
pub const LINUX_COMMAND_LINE_SIZE: usize = 2048;

/// The prefix that marks a word as a firmware option.
const PREFIX: &str = "hypstub.";

/// The option names, for error messages.
const KNOWN: &str = "hypstub.el, hypstub.copy, hypstub.verify, hypstub.inplace, hypstub.log";

/// The exception level the payload is entered at (`hypstub.el`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum El {
    /// `hypstub.el=2` (default): EL2, so Linux can run KVM.
    #[default]
    Two,
    /// `hypstub.el=1`: EL1, with the stub staying at EL2.
    One,
}

/// How the relocation engine copies the payload (`hypstub.copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyMode {
    /// `hypstub.copy=mmu` (default): with the EL2 MMU and caches on.
    #[default]
    Mmu,
    /// `hypstub.copy=nommu`: with the MMU off, as Linux before 5.16 did.
    NoMmu,
}

/// The firmware options, each with its default when not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `hypstub.el=2|1`: the payload's exception level.
    pub el: El,
    /// `hypstub.copy=mmu|nommu`: how the payload is copied into place.
    pub copy: CopyMode,
    /// `hypstub.verify=on|off` (default on): check digests of the copied
    /// payload before entering it.
    pub verify: bool,
    /// `hypstub.inplace=on|off` (default on): a kernel or initrd a device loads (fw_cfg
    /// DMA) goes straight to its destination when that is free RAM, and the engine only
    /// checks its digest; `off` stages and copies it like every other part.
    pub inplace: bool,
    /// `hypstub.log=error|warn|info|debug|trace` (default info): the
    /// console's log level.
    pub log: LevelFilter,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            el: El::Two,
            copy: CopyMode::Mmu,
            verify: true,
            inplace: true,
            log: LevelFilter::Info,
        }
    }
}

/// A problem with the `hypstub.*` options or the command line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptionError {
    /// A `hypstub.` word whose name is not an option.
    #[error("unknown option hypstub.{name} (known options: {KNOWN})")]
    Unknown {
        /// The name after `hypstub.`.
        name: String,
    },
    /// A known option with a value it does not take.
    #[error("bad value \"{value}\" for option hypstub.{option} (allowed: {allowed})")]
    BadValue {
        /// The option's name after `hypstub.`.
        option: &'static str,
        /// The value given.
        value: String,
        /// The values the option takes.
        allowed: &'static str,
    },
    /// A `hypstub.` word without `=VALUE`.
    #[error("option hypstub.{name} needs a value: hypstub.{name}=VALUE")]
    MissingValue {
        /// The name after `hypstub.`.
        name: String,
    },
    /// The command line is longer than the payload accepts.
    #[error(
        "command line too long: {len} bytes plus the terminating NUL exceeds the limit of {limit} bytes"
    )]
    TooLong {
        /// Length of the command line in bytes, without a NUL.
        len: usize,
        /// The limit, counting the terminating NUL.
        limit: usize,
    },
}

/// Reads the `hypstub.*` options from `cmdline` and returns them with the
/// command line the payload should get: every other word in order, joined by
/// single spaces, with no leading or trailing space. A later option overrides
/// an earlier one, as for Linux's own parameters.
///
/// # Errors
/// The first unknown option, option without a value, or bad value.
pub fn parse(cmdline: &str) -> Result<(Options, String), OptionError> {
    let mut options = Options::default();
    let mut rest = String::with_capacity(cmdline.len());
    let mut for_init = false;
    for word in Words(cmdline) {
        if !for_init {
            if word == "--" {
                for_init = true;
            } else if let Some(option) = unquote_name(word).strip_prefix(PREFIX) {
                apply(&mut options, option)?;
                continue;
            }
        }
        if !rest.is_empty() {
            rest.push(' ');
        }
        rest.push_str(word);
    }
    Ok((options, rest))
}

/// Checks that `cmdline` plus its terminating NUL fits in `limit` bytes
/// ([`LINUX_COMMAND_LINE_SIZE`] for Linux on arm64, which silently cuts a
/// longer line).
///
/// # Errors
/// [`OptionError::TooLong`] with both lengths.
pub fn check_length(cmdline: &str, limit: usize) -> Result<(), OptionError> {
    if cmdline.len() >= limit {
        return Err(OptionError::TooLong {
            len: cmdline.len(),
            limit,
        });
    }
    Ok(())
}

/// Sets one option from `NAME=VALUE` (the word without `hypstub.`).
fn apply(options: &mut Options, option: &str) -> Result<(), OptionError> {
    let Some((name, value)) = option.split_once('=') else {
        let name = option.trim_end_matches('"');
        return Err(if is_known(name) {
            OptionError::MissingValue { name: name.into() }
        } else {
            OptionError::Unknown { name: name.into() }
        });
    };
    // Linux drops the quotes around a quoted value (`name="value"`), and
    // those of a quoted word (`"name=value"`).
    let value = value.strip_prefix('"').unwrap_or(value);
    let value = value.strip_suffix('"').unwrap_or(value);
    let bad = |option, allowed| OptionError::BadValue {
        option,
        value: value.into(),
        allowed,
    };
    match name {
        "el" => {
            options.el = match value {
                "2" => El::Two,
                "1" => El::One,
                _ => return Err(bad("el", "2, 1")),
            }
        }
        "copy" => {
            options.copy = match value {
                "mmu" => CopyMode::Mmu,
                "nommu" => CopyMode::NoMmu,
                _ => return Err(bad("copy", "mmu, nommu")),
            }
        }
        "verify" => {
            options.verify = match value {
                "on" => true,
                "off" => false,
                _ => return Err(bad("verify", "on, off")),
            }
        }
        "inplace" => {
            options.inplace = match value {
                "on" => true,
                "off" => false,
                _ => return Err(bad("inplace", "on, off")),
            }
        }
        "log" => {
            options.log = match value {
                "error" => LevelFilter::Error,
                "warn" => LevelFilter::Warn,
                "info" => LevelFilter::Info,
                "debug" => LevelFilter::Debug,
                "trace" => LevelFilter::Trace,
                _ => return Err(bad("log", "error, warn, info, debug, trace")),
            }
        }
        _ => return Err(OptionError::Unknown { name: name.into() }),
    }
    Ok(())
}

/// Whether `name` (without `hypstub.`) is an option.
fn is_known(name: &str) -> bool {
    matches!(name, "el" | "copy" | "verify" | "inplace" | "log")
}

/// A word as Linux reads its name: without a leading quote.
fn unquote_name(word: &str) -> &str {
    word.strip_prefix('"').unwrap_or(word)
}

/// Whitespace as Linux's `isspace()` sees it in ASCII.
fn is_space(c: char) -> bool {
    c == ' ' || ('\t'..='\r').contains(&c)
}

/// The words of a command line, split at whitespace outside double quotes
/// (lib/cmdline.c `next_arg()`); an unclosed quote runs to the end.
struct Words<'a>(&'a str);

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.0.trim_start_matches(is_space);
        if s.is_empty() {
            self.0 = s;
            return None;
        }
        let mut in_quote = false;
        let end = s
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_quote = !in_quote;
                }
                !in_quote && is_space(c)
            })
            .map_or(s.len(), |(i, _)| i);
        let (word, rest) = s.split_at(end);
        self.0 = rest;
        Some(word)
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec::Vec;

    use super::*;

    fn words(s: &str) -> Vec<&str> {
        Words(s).collect()
    }

    #[test]
    fn defaults_and_no_options() {
        let (o, rest) = parse("console=ttyAMA0 root=/dev/vda rw").unwrap();
        assert_eq!(o, Options::default());
        assert_eq!(o.el, El::Two);
        assert_eq!(o.copy, CopyMode::Mmu);
        assert!(o.verify);
        assert_eq!(o.log, LevelFilter::Info);
        assert_eq!(rest, "console=ttyAMA0 root=/dev/vda rw");
        assert_eq!(parse("").unwrap(), (Options::default(), String::new()));
        assert_eq!(
            parse(" \t\n ").unwrap(),
            (Options::default(), String::new())
        );
    }

    #[test]
    fn all_options_removed() {
        let (o, rest) = parse(
            "  hypstub.el=1 console=ttyAMA0\thypstub.copy=nommu  earlycon \
             hypstub.verify=off hypstub.inplace=off hypstub.log=trace  ",
        )
        .unwrap();
        assert_eq!(
            o,
            Options {
                el: El::One,
                copy: CopyMode::NoMmu,
                verify: false,
                inplace: false,
                log: LevelFilter::Trace
            }
        );
        assert_eq!(rest, "console=ttyAMA0 earlycon");
        let (_, rest) = parse("hypstub.el=2").unwrap();
        assert_eq!(rest, "");
    }

    #[test]
    fn every_value() {
        let cases = [
            ("hypstub.el=2", Options::default()),
            (
                "hypstub.el=1",
                Options {
                    el: El::One,
                    ..Options::default()
                },
            ),
            ("hypstub.copy=mmu", Options::default()),
            (
                "hypstub.copy=nommu",
                Options {
                    copy: CopyMode::NoMmu,
                    ..Options::default()
                },
            ),
            ("hypstub.verify=on", Options::default()),
            (
                "hypstub.verify=off",
                Options {
                    verify: false,
                    ..Options::default()
                },
            ),
            ("hypstub.inplace=on", Options::default()),
            (
                "hypstub.inplace=off",
                Options {
                    inplace: false,
                    ..Options::default()
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line).unwrap().0, want, "{line}");
        }
        let levels = [
            ("error", LevelFilter::Error),
            ("warn", LevelFilter::Warn),
            ("info", LevelFilter::Info),
            ("debug", LevelFilter::Debug),
            ("trace", LevelFilter::Trace),
        ];
        for (value, level) in levels {
            let line = alloc::format!("hypstub.log={value}");
            assert_eq!(parse(&line).unwrap().0.log, level);
        }
    }

    #[test]
    fn later_option_wins() {
        let (o, rest) = parse("hypstub.el=1 a hypstub.el=2").unwrap();
        assert_eq!(o.el, El::Two);
        assert_eq!(rest, "a");
    }

    #[test]
    fn quoted_words_kept_whole() {
        let line = r#"init=/bin/sh foo="a b  c" hypstub.log=debug bar="x y"z last"#;
        assert_eq!(
            words(line),
            [
                "init=/bin/sh",
                r#"foo="a b  c""#,
                "hypstub.log=debug",
                r#"bar="x y"z"#,
                "last"
            ]
        );
        let (o, rest) = parse(line).unwrap();
        assert_eq!(o.log, LevelFilter::Debug);
        assert_eq!(rest, r#"init=/bin/sh foo="a b  c" bar="x y"z last"#);
        // An unclosed quote runs to the end of the line.
        assert_eq!(words(r#"a b="c d"#), ["a", r#"b="c d"#]);
    }

    #[test]
    fn quoted_option_values() {
        let (o, rest) = parse(r#"hypstub.copy="nommu" x "hypstub.el=1""#).unwrap();
        assert_eq!(o.copy, CopyMode::NoMmu);
        assert_eq!(o.el, El::One);
        assert_eq!(rest, "x");
    }

    #[test]
    fn arguments_for_init_untouched() {
        let (o, rest) = parse("quiet hypstub.el=1 -- hypstub.el=2 hypstub.bogus").unwrap();
        assert_eq!(o.el, El::One);
        assert_eq!(rest, "quiet -- hypstub.el=2 hypstub.bogus");
    }

    #[test]
    fn similar_words_are_not_options() {
        let line = "hypstub=1 xhypstub.el=1 HYPSTUB.el=1 hypstubs.el=1";
        let (o, rest) = parse(line).unwrap();
        assert_eq!(o, Options::default());
        assert_eq!(rest, line);
    }

    #[test]
    fn unknown_option() {
        let err = parse("console=ttyAMA0 hypstub.speed=fast").unwrap_err();
        assert_eq!(
            err,
            OptionError::Unknown {
                name: "speed".into()
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("unknown option hypstub.speed"), "{msg}");
        for known in [
            "hypstub.el",
            "hypstub.copy",
            "hypstub.verify",
            "hypstub.log",
        ] {
            assert!(msg.contains(known), "{msg}");
        }
        assert_eq!(
            parse("hypstub.").unwrap_err(),
            OptionError::Unknown { name: "".into() }
        );
        assert_eq!(
            parse("hypstub.=1").unwrap_err(),
            OptionError::Unknown { name: "".into() }
        );
        assert_eq!(
            parse("hypstub.nosuch").unwrap_err(),
            OptionError::Unknown {
                name: "nosuch".into()
            }
        );
        // Names are exact, as for Linux's parameters.
        assert!(matches!(
            parse("hypstub.EL=1"),
            Err(OptionError::Unknown { .. })
        ));
    }

    #[test]
    fn bad_values() {
        let cases = [
            ("hypstub.el=3", "el", "3", "2, 1"),
            ("hypstub.el=", "el", "", "2, 1"),
            ("hypstub.copy=fast", "copy", "fast", "mmu, nommu"),
            ("hypstub.verify=yes", "verify", "yes", "on, off"),
            (
                "hypstub.log=off",
                "log",
                "off",
                "error, warn, info, debug, trace",
            ),
            (
                "hypstub.log=INFO",
                "log",
                "INFO",
                "error, warn, info, debug, trace",
            ),
        ];
        for (line, option, value, allowed) in cases {
            let err = parse(line).unwrap_err();
            assert_eq!(
                err,
                OptionError::BadValue {
                    option,
                    value: value.into(),
                    allowed
                },
                "{line}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&alloc::format!("hypstub.{option}")), "{msg}");
            assert!(msg.contains(&alloc::format!("\"{value}\"")), "{msg}");
            assert!(msg.contains(allowed), "{msg}");
        }
    }

    #[test]
    fn missing_value() {
        for name in ["el", "copy", "verify", "log"] {
            let line = alloc::format!("a hypstub.{name} b");
            let err = parse(&line).unwrap_err();
            assert_eq!(err, OptionError::MissingValue { name: name.into() });
            assert!(err
                .to_string()
                .contains(&alloc::format!("hypstub.{name}=VALUE")));
        }
    }

    #[test]
    fn length_limit() {
        let line = "x".repeat(LINUX_COMMAND_LINE_SIZE - 1);
        assert_eq!(check_length(&line, LINUX_COMMAND_LINE_SIZE), Ok(()));
        let line = "x".repeat(LINUX_COMMAND_LINE_SIZE);
        let err = check_length(&line, LINUX_COMMAND_LINE_SIZE).unwrap_err();
        assert_eq!(
            err,
            OptionError::TooLong {
                len: 2048,
                limit: 2048
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("command line too long"), "{msg}");
        assert!(msg.contains("2048 bytes plus"), "{msg}");
        assert!(msg.contains("limit of 2048"), "{msg}");
        assert_eq!(check_length("", 1), Ok(()));
        assert!(check_length("", 0).is_err());
    }

    #[test]
    fn non_ascii_is_kept() {
        let (_, rest) = parse("name=größe\u{a0}x  hypstub.el=1 ünï").unwrap();
        assert_eq!(rest, "name=größe\u{a0}x ünï");
    }
}
