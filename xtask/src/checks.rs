//! The steps of `cargo xtask test`: everything CI runs (`.ci/run`), in order, stopping at
//! the first failure.
//!
//! Cheap static checks come first so that a formatting slip fails in seconds, not after
//! a QEMU run; QEMU is installed (when needed) only after everything that does not need it.

use std::fmt;
use std::time::{Duration, Instant};

use crate::assets::{self, Fetch};
use crate::image::{self, Board, BuildOptions, Payload, Variant, TARGET};
use crate::{bench, cargo, qemu, run};

/// One step: a title for the heading and summary, and what it does.
pub struct Step {
    /// Shown in the heading and the summary.
    pub title: String,
    action: Box<dyn FnOnce() -> anyhow::Result<()>>,
}

impl Step {
    /// A step running `action`.
    pub fn new(
        title: impl Into<String>,
        action: impl FnOnce() -> anyhow::Result<()> + 'static,
    ) -> Self {
        Step {
            title: title.into(),
            action: Box::new(action),
        }
    }

    /// A step running `cargo <args>` in the workspace.
    pub fn cargo(title: impl Into<String>, args: &'static [&'static str]) -> Self {
        Step::new(title, move || run(cargo().args(args), false))
    }
}

/// The library crates a bootloader can depend on: documented with warnings denied and
/// packaged by `cargo xtask test`.
pub const LIBRARY_CRATES: [&str; 5] = [
    "hypstub-abi",
    "el2-stub",
    "reloc",
    "loader",
    "hypstub-boards",
];
/// Those that depend on no other crate of the tree: `cargo publish --dry-run` builds them
/// as crates.io would.
pub const LEAF_CRATES: [&str; 2] = ["hypstub-abi", "loader"];

/// The CI steps, in order.
pub fn ci_steps() -> Vec<Step> {
    vec![
        Step::new("toolchain", || {
            crate::toolchain::ensure(crate::toolchain::TEST)
        }),
        Step::cargo("rustfmt", &["fmt", "--all", "--", "--check"]),
        Step::cargo(
            "clippy (host)",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step::cargo(
            format!("clippy ({TARGET})"),
            &[
                "clippy",
                "--release",
                "-p",
                "hypstub-boards",
                "-p",
                "abi-client",
                "-p",
                "el2-client",
                "-p",
                "soak-client",
                "-p",
                "pflash-boot",
                "--target",
                TARGET,
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step::cargo(
            "host unit tests",
            &[
                "test",
                "--workspace",
                "--exclude",
                "hypstub-tests",
                "--exclude",
                "abi-client",
            ],
        ),
        Step::new(
            "cache model plugin (tools/cachecheck: rustfmt, clippy, tests)",
            || {
                let manifest = crate::cachecheck::PLUGIN_MANIFEST;
                let dir = crate::cachecheck::plugin_target_dir();
                let plugin = |args: &[&str]| {
                    let mut cmd = cargo();
                    cmd.env_remove("CARGO_TARGET_DIR")
                        .args(args)
                        .args(["--manifest-path", manifest]);
                    cmd
                };
                run(plugin(&["fmt"]).args(["--", "--check"]), false)?;
                run(
                    plugin(&["clippy", "--all-targets"])
                        .arg("--target-dir")
                        .arg(&dir)
                        .args(["--", "-D", "warnings"]),
                    false,
                )?;
                run(plugin(&["test"]).arg("--target-dir").arg(&dir), false)
            },
        ),
        Step::new("docs (cargo doc, warnings denied)", || {
            for target in [None, Some(TARGET)] {
                let mut cmd = cargo();
                cmd.args(["doc", "--no-deps"]);
                if let Some(target) = target {
                    cmd.args(["--target", target]);
                }
                for p in LIBRARY_CRATES {
                    cmd.args(["-p", p]);
                }
                run(cmd.env("RUSTDOCFLAGS", "-D warnings"), false)?;
            }
            Ok(())
        }),
        Step::new(
            "packaging (cargo package --list, publish --dry-run)",
            || {
                for p in LIBRARY_CRATES {
                    run(
                        cargo().args(["package", "--list", "--allow-dirty", "-p", p]),
                        false,
                    )?;
                }
                for p in LEAF_CRATES {
                    run(
                        cargo().args(["publish", "--dry-run", "--allow-dirty", "-p", p]),
                        false,
                    )?;
                }
                Ok(())
            },
        ),
        Step::new("QEMU", || {
            let qemu = qemu::ensure()?;
            println!("QEMU {} at {}", qemu.version, qemu.path.display());
            Ok(())
        }),
        Step::new("firmware image (qemu-virt)", || {
            let built = image::build_firmware(Board::QemuVirt, BuildOptions::default())?;
            println!("{}: {}", built.image.display(), built.size_text());
            Ok(())
        }),
        Step::new("firmware image (rpi4)", || {
            let built = image::build_firmware(Board::Rpi4, BuildOptions::default())?;
            println!("{}: {}", built.image.display(), built.size_text());
            Ok(())
        }),
        Step::new("Raspberry Pi 4 armstub", || {
            let built = image::build_firmware(Board::Rpi4Armstub, BuildOptions::default())?;
            println!("{}: {}", built.image.display(), built.size_text());
            Ok(())
        }),
        Step::new("example bootloader (pflash-boot)", || {
            let built = image::build_example(BuildOptions::default())?;
            println!("{}: {}", built.image.display(), built.size_text());
            Ok(())
        }),
        Step::new("test firmware variant (corrupt-staging)", || {
            let built = image::build_firmware_variant(
                Board::QemuVirt,
                Variant::CorruptStaging,
                BuildOptions::default(),
            )?;
            println!("{}: {}", built.image.display(), built.size_text());
            Ok(())
        }),
        Step::new("test payloads", || {
            let opts = BuildOptions::default();
            for built in [
                image::build_payload(Payload::AbiClient, opts)?,
                image::build_payload(Payload::El2Client, opts)?,
                image::build_payload(Payload::SoakClient, opts)?,
                image::build_el2_client(image::EL2_CLIENT_OVER_FIRMWARE, opts)?,
            ] {
                println!("{}: {}", built.image.display(), built.size_text());
            }
            let bench = bench::payload::ensure(256)?;
            println!("{}: 256 MiB", bench.display());
            Ok(())
        }),
        Step::new("Linux test assets", || {
            assets::ensure(Fetch::IfMissing)?;
            Ok(())
        }),
        Step::new(
            format!(
                "fuzz targets (cargo xtask fuzz --seconds {})",
                crate::fuzz::CI_SECONDS
            ),
            || {
                let qemu = qemu::ensure()?;
                crate::fuzz::fuzz(&qemu, crate::fuzz::CI_SECONDS, None, &[]).map(drop)
            },
        ),
        Step::cargo(
            "QEMU integration tests",
            &["test", "-p", "hypstub-tests", "--", "--test-threads=2"],
        ),
        Step::new("cache model (cargo xtask cachecheck --quick)", || {
            use crate::cachecheck::{self, Mode, Plan};
            let qemu = qemu::ensure()?;
            let plan = Plan {
                quick: true,
                linux: true,
                modes: &Mode::ALL,
            };
            if !cachecheck::run_all(&qemu, plan)? {
                anyhow::bail!("the cache model found a violation in hypstub's code, a mutant went unflagged, or a boot failed (see above)");
            }
            Ok(())
        }),
    ]
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Passed,
    /// It failed with this error.
    Failed(String),
    /// An earlier step failed, so it did not run.
    Skipped,
}

/// The record of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// The step's title.
    pub title: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it ran.
    pub elapsed: Duration,
}

/// The record of a whole run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// One per step, in order.
    pub steps: Vec<StepReport>,
}

impl Summary {
    /// Every step passed.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.outcome == Outcome::Passed)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            let time = format!("{:7.1}s", step.elapsed.as_secs_f32());
            match &step.outcome {
                Outcome::Passed => writeln!(f, "  ok      {time}  {}", step.title)?,
                Outcome::Failed(e) => writeln!(f, "  FAILED  {time}  {}: {e}", step.title)?,
                Outcome::Skipped => writeln!(f, "  skipped           {}", step.title)?,
            }
        }
        let total: Duration = self.steps.iter().map(|s| s.elapsed).sum();
        let verdict = if self.passed() {
            "all passed"
        } else {
            "FAILED"
        };
        write!(f, "{verdict} in {:.1}s", total.as_secs_f32())
    }
}

/// Runs `steps` in order with a heading each, stopping at the first failure.
pub fn run_steps(steps: Vec<Step>) -> Summary {
    let count = steps.len();
    let mut summary = Summary::default();
    let mut failed = false;
    for (i, step) in steps.into_iter().enumerate() {
        if failed {
            summary.steps.push(StepReport {
                title: step.title,
                outcome: Outcome::Skipped,
                elapsed: Duration::ZERO,
            });
            continue;
        }
        println!("\n==> [{}/{count}] {}", i + 1, step.title);
        let start = Instant::now();
        let outcome = match (step.action)() {
            Ok(()) => Outcome::Passed,
            Err(e) => {
                failed = true;
                println!("==> {} FAILED: {e:#}", step.title);
                Outcome::Failed(format!("{e:#}"))
            }
        };
        summary.steps.push(StepReport {
            title: step.title,
            outcome,
            elapsed: start.elapsed(),
        });
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_first_failure() {
        let ran = std::rc::Rc::new(std::cell::Cell::new(0));
        let counter = |ran: &std::rc::Rc<std::cell::Cell<u32>>| {
            let ran = ran.clone();
            move || {
                ran.set(ran.get() + 1);
                Ok(())
            }
        };
        let steps = vec![
            Step::new("one", counter(&ran)),
            Step::new("two", || anyhow::bail!("broken")),
            Step::new("three", counter(&ran)),
        ];
        let summary = run_steps(steps);
        assert_eq!(ran.get(), 1);
        assert!(!summary.passed());
        let outcomes: Vec<_> = summary.steps.iter().map(|s| s.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Passed,
                Outcome::Failed("broken".into()),
                Outcome::Skipped
            ]
        );
        let text = summary.to_string();
        assert!(
            text.contains("FAILED") && text.contains("two: broken"),
            "{text}"
        );
        assert!(text.contains("skipped           three"), "{text}");
    }

    #[test]
    fn ci_step_order() {
        let titles: Vec<_> = ci_steps().into_iter().map(|s| s.title).collect();
        // The toolchain first: every later step builds with it.
        assert_eq!(titles.first().map(String::as_str), Some("toolchain"));
        assert_eq!(titles.get(1).map(String::as_str), Some("rustfmt"));
        assert_eq!(
            titles.last().map(String::as_str),
            Some("cache model (cargo xtask cachecheck --quick)")
        );
        assert!(titles.iter().any(|t| t == "QEMU integration tests"));
        let qemu = titles.iter().position(|t| t == "QEMU").unwrap();
        let unit = titles.iter().position(|t| t == "host unit tests").unwrap();
        assert!(
            unit < qemu,
            "QEMU is only installed once the cheap checks pass"
        );
        let images = titles.iter().position(|t| t == "test payloads").unwrap();
        let variant = titles
            .iter()
            .position(|t| t.starts_with("test firmware variant"))
            .unwrap();
        let linux = titles
            .iter()
            .position(|t| t == "Linux test assets")
            .unwrap();
        let integration = titles
            .iter()
            .position(|t| t == "QEMU integration tests")
            .unwrap();
        assert!(
            [variant, images, linux].iter().all(|&i| i < integration),
            "every image and asset the QEMU tests boot is ready before them"
        );
        let fuzz = titles
            .iter()
            .position(|t| t.starts_with("fuzz targets"))
            .unwrap();
        assert!(
            linux < fuzz && qemu < fuzz && fuzz < integration,
            "the fuzzers' seeds need QEMU and the Linux assets; they run before the long QEMU tests"
        );
    }
}
