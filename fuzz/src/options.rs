//! `loader::options`: the `hypstub.*` options on the kernel command line.
//!
//! Input: the command line (invalid UTF-8 replaced).
//!
//! Checked: the line given on is free of options (parsing it again gives the defaults and
//! the same line) and no longer than the input; an option put in front changes only its own
//! field, and one put behind (where it cannot be quoted or follow `--`) overrides; an error
//! names what the input holds; `check_length` is its documented predicate.

use loader::options::{self, CopyMode, El, OptionError, Options};

use crate::seeds::{Inputs, Seeds};

/// Whitespace as Linux's `isspace()` sees it in ASCII (lib/cmdline.c splits there).
fn is_space(c: char) -> bool {
    c == ' ' || ('\t'..='\r').contains(&c)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    let parsed = options::parse(&line);
    let limit = usize::from(data.first().copied().unwrap_or(0)) * 16;
    assert_eq!(
        options::check_length(&line, limit).is_ok(),
        line.len() < limit
    );

    // An option in front: the same outcome, but for its own field.
    let front = options::parse(&format!("hypstub.copy=nommu {line}"));
    match (&parsed, &front) {
        (Ok((o, rest)), Ok((f, frest))) => {
            assert_eq!(rest, frest);
            if !line.contains("hypstub.copy") || o.copy == CopyMode::NoMmu {
                assert_eq!(f.copy, CopyMode::NoMmu);
            }
            assert_eq!((f.el, f.verify, f.log), (o.el, o.verify, o.log));
        }
        (Err(e), Err(f)) => assert_eq!(e, f),
        _ => panic!("an option in front changed the outcome: {parsed:?} / {front:?}"),
    }

    let (opts, rest) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match &e {
                OptionError::Unknown { name } | OptionError::MissingValue { name } => {
                    assert!(line.contains(name.as_str()), "{e}")
                }
                OptionError::BadValue { value, .. } => assert!(line.contains(value.as_str())),
                OptionError::TooLong { .. } => panic!("parse does not check the length"),
            }
            return;
        }
    };
    assert!(rest.len() <= line.len());
    assert_eq!(
        options::parse(&rest),
        Ok((Options::default(), rest.clone())),
        "the line passed on still holds options, or reads differently"
    );
    // An option behind overrides, where nothing can quote it or hide it behind `--`.
    if !line.contains('"') && !line.split(is_space).any(|w| w == "--") {
        let (back, brest) = options::parse(&format!("{line} hypstub.el=1")).expect("valid");
        assert_eq!(back.el, El::One);
        assert_eq!(
            (back.copy, back.verify, back.log),
            (opts.copy, opts.verify, opts.log)
        );
        assert_eq!(brest, rest);
    }
}

/// The command lines of the inputs, and the forms docs/options.md shows.
pub fn seeds(inputs: &Inputs) -> Seeds {
    let mut out = inputs.cmdline.clone();
    for (i, line) in [
        "console=ttyAMA0 hypstub.el=1 hypstub.copy=nommu hypstub.verify=off hypstub.log=trace",
        "hypstub.log=debug root=/dev/vda rw -- hypstub.el=1 init args",
        "\"hypstub.el=1\" foo=\"a b\" hypstub.copy=\"mmu\" quiet",
        "hypstub.bogus=1",
        "hypstub.el",
    ]
    .iter()
    .enumerate()
    {
        out.push((format!("docs-{i}"), line.as_bytes().to_vec()));
    }
    out
}
