//! The Rust toolchain xtask builds with: the bare-metal target and the components
//! `rust-toolchain.toml` names, checked in the toolchain's sysroot and added with rustup
//! when they are missing.
//!
//! rustup installs what `rust-toolchain.toml` lists only when it installs the toolchain
//! itself. On a machine whose `stable` toolchain is already there (CI, most users), the
//! target and components are not added, and the first firmware build fails with
//! "can't find crate for `core`". [`ensure`] runs first in every xtask command that
//! builds, so the README's commands work on such a machine with nothing else to run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context as _};

use crate::image::TARGET;
use crate::{display_command, workspace_root};

/// A rustup component, and the file in the sysroot that shows it is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// `llvm-tools`: `llvm-objcopy`, which turns firmware ELFs into raw images.
    LlvmTools,
    /// `clippy`, for `cargo xtask test`.
    Clippy,
    /// `rustfmt`, for `cargo xtask test`.
    Rustfmt,
}

impl Component {
    /// The name rustup knows it by.
    pub fn name(self) -> &'static str {
        match self {
            Component::LlvmTools => "llvm-tools",
            Component::Clippy => "clippy",
            Component::Rustfmt => "rustfmt",
        }
    }

    /// The file that exists in `sysroot` once the component is installed.
    fn marker(self, sysroot: &Path, host: &str) -> PathBuf {
        match self {
            Component::LlvmTools => sysroot
                .join("lib/rustlib")
                .join(host)
                .join("bin/llvm-objcopy"),
            Component::Clippy => sysroot.join("bin/cargo-clippy"),
            Component::Rustfmt => sysroot.join("bin/rustfmt"),
        }
    }
}

/// What a command needs: the bare-metal target, and these components.
pub const BUILD: &[Component] = &[Component::LlvmTools];
/// What `cargo xtask test` needs besides the target.
pub const TEST: &[Component] = &[Component::LlvmTools, Component::Clippy, Component::Rustfmt];

/// One toolchain, as found on disk.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// `rustc --print sysroot`.
    pub sysroot: PathBuf,
    /// The host triple (`rustc -vV`), where `llvm-tools` lives.
    pub host: String,
    /// The toolchain's name for rustup (`RUSTUP_TOOLCHAIN`, which rustup's proxies set),
    /// if known.
    pub name: Option<String>,
}

/// What is missing from a toolchain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    /// The target is not installed.
    pub target: bool,
    /// These components are not installed.
    pub components: Vec<Component>,
}

impl Missing {
    /// Nothing is missing.
    pub fn is_empty(&self) -> bool {
        !self.target && self.components.is_empty()
    }

    /// The rustup commands that add what is missing, for `toolchain` (if named).
    pub fn commands(&self, toolchain: Option<&str>) -> Vec<Vec<String>> {
        let with_toolchain = |mut words: Vec<String>| {
            if let Some(name) = toolchain {
                words.extend(["--toolchain".to_owned(), name.to_owned()]);
            }
            words
        };
        let mut commands = Vec::new();
        if self.target {
            commands.push(with_toolchain(vec![
                "target".into(),
                "add".into(),
                TARGET.into(),
            ]));
        }
        if !self.components.is_empty() {
            let mut words = vec!["component".to_owned(), "add".to_owned()];
            words.extend(self.components.iter().map(|c| c.name().to_owned()));
            commands.push(with_toolchain(words));
        }
        commands
    }
}

impl Toolchain {
    /// The toolchain cargo runs xtask with: `$RUSTC` (or `rustc`) asked for its sysroot
    /// and host, in the workspace root so that `rust-toolchain.toml` applies.
    pub fn current() -> anyhow::Result<Toolchain> {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let output = |args: &[&str]| -> anyhow::Result<String> {
            let mut cmd = Command::new(&rustc);
            cmd.args(args).current_dir(workspace_root());
            let out = cmd
                .output()
                .with_context(|| format!("could not run `{}`", display_command(&cmd)))?;
            if !out.status.success() {
                bail!(
                    "`{}` failed: {}",
                    display_command(&cmd),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let sysroot = PathBuf::from(output(&["--print", "sysroot"])?);
        let verbose = output(&["-vV"])?;
        let host = verbose
            .lines()
            .find_map(|line| line.strip_prefix("host: "))
            .context("`rustc -vV` printed no `host:` line")?
            .to_owned();
        let name = std::env::var("RUSTUP_TOOLCHAIN")
            .ok()
            .filter(|n| !n.is_empty());
        Ok(Toolchain {
            sysroot,
            host,
            name,
        })
    }

    /// What of the target and `components` the sysroot lacks.
    pub fn missing(&self, components: &[Component]) -> Missing {
        let target_lib = self.sysroot.join("lib/rustlib").join(TARGET).join("lib");
        let has_core = std::fs::read_dir(&target_lib).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libcore-") && name.ends_with(".rlib")
            })
        });
        Missing {
            target: !has_core,
            components: components
                .iter()
                .copied()
                .filter(|c| !c.marker(&self.sysroot, &self.host).exists())
                .collect(),
        }
    }

    /// Makes sure the target and `components` are installed: adds what is missing with
    /// `rustup` (the program `rustup`, when given), or fails with one line naming the
    /// command to run.
    pub fn ensure(&self, components: &[Component], rustup: Option<&Path>) -> anyhow::Result<()> {
        let missing = self.missing(components);
        if missing.is_empty() {
            return Ok(());
        }
        let commands = missing.commands(self.name.as_deref());
        let shown = |words: &Vec<String>| format!("rustup {}", words.join(" "));
        let Some(rustup) = rustup else {
            let all: Vec<String> = commands.iter().map(shown).collect();
            bail!(
                "the Rust toolchain at {} lacks {}; rustup is not on PATH, so add them \
                 yourself: `{}`",
                self.sysroot.display(),
                describe(&missing),
                all.join("` and `")
            );
        };
        eprintln!(
            "the Rust toolchain lacks {}; adding with rustup",
            describe(&missing)
        );
        for words in &commands {
            let mut cmd = Command::new(rustup);
            cmd.args(words).current_dir(workspace_root());
            crate::run(&mut cmd, false)
                .with_context(|| format!("run `{}` yourself and try again", shown(words)))?;
        }
        let still = self.missing(components);
        if !still.is_empty() {
            bail!(
                "rustup ran, but the toolchain at {} still lacks {}",
                self.sysroot.display(),
                describe(&still)
            );
        }
        Ok(())
    }
}

fn describe(missing: &Missing) -> String {
    let mut parts = Vec::new();
    if missing.target {
        parts.push(format!("the target {TARGET}"));
    }
    if !missing.components.is_empty() {
        let names: Vec<&str> = missing.components.iter().map(|c| c.name()).collect();
        parts.push(format!("the component(s) {}", names.join(", ")));
    }
    parts.join(" and ")
}

/// `rustup` on PATH (`$RUSTUP`, if set, names another program), or `None`.
pub fn rustup() -> Option<PathBuf> {
    let program = std::env::var_os("RUSTUP").unwrap_or_else(|| "rustup".into());
    let works = Command::new(&program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    works.then(|| PathBuf::from(program))
}

/// Makes sure the current toolchain has the target and `components` (once per process
/// for each set), adding them with rustup when it is there.
pub fn ensure(components: &'static [Component]) -> anyhow::Result<()> {
    static BUILD_DONE: OnceLock<()> = OnceLock::new();
    static TEST_DONE: OnceLock<()> = OnceLock::new();
    let done = if components == TEST {
        &TEST_DONE
    } else {
        &BUILD_DONE
    };
    if done.get().is_some() {
        return Ok(());
    }
    Toolchain::current()?.ensure(components, rustup().as_deref())?;
    let _ = done.set(());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "x86_64-unknown-linux-gnu";

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hypstub-toolchain-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn toolchain(sysroot: &Path) -> Toolchain {
        Toolchain {
            sysroot: sysroot.to_owned(),
            host: HOST.to_owned(),
            name: Some("stable-test".to_owned()),
        }
    }

    /// A sysroot as rustup leaves a `minimal` stable toolchain: the host's std only.
    fn bare_sysroot(name: &str) -> PathBuf {
        let sysroot = temp_dir(name);
        let host_lib = sysroot.join("lib/rustlib").join(HOST).join("lib");
        std::fs::create_dir_all(&host_lib).unwrap();
        std::fs::write(host_lib.join("libcore-0123.rlib"), b"").unwrap();
        sysroot
    }

    #[test]
    fn a_toolchain_without_the_target_is_seen_as_such() {
        let sysroot = bare_sysroot("bare");
        let missing = toolchain(&sysroot).missing(TEST);
        assert!(missing.target);
        assert_eq!(missing.components, TEST);
        assert_eq!(
            missing.commands(Some("stable-test")),
            vec![
                vec!["target", "add", TARGET, "--toolchain", "stable-test"],
                vec![
                    "component",
                    "add",
                    "llvm-tools",
                    "clippy",
                    "rustfmt",
                    "--toolchain",
                    "stable-test"
                ],
            ]
        );
    }

    #[test]
    fn without_rustup_the_error_names_the_command() {
        let sysroot = bare_sysroot("no-rustup");
        let err = toolchain(&sysroot).ensure(BUILD, None).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains(&format!(
                "`rustup target add {TARGET} --toolchain stable-test`"
            )),
            "{text}"
        );
        assert!(text.contains("rustup component add llvm-tools"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    /// A fake rustup that installs what it is asked for into the sysroot, as rustup does,
    /// and records its arguments.
    #[cfg(unix)]
    fn fake_rustup(dir: &Path, sysroot: &Path, installs: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let script = dir.join("rustup");
        let log = dir.join("calls");
        let install = if installs {
            format!(
                r#"case "$1 $2" in
  "target add") mkdir -p '{s}/lib/rustlib/{TARGET}/lib' && : > '{s}/lib/rustlib/{TARGET}/lib/libcore-9.rlib' ;;
  "component add") mkdir -p '{s}/lib/rustlib/{HOST}/bin' '{s}/bin' && : > '{s}/lib/rustlib/{HOST}/bin/llvm-objcopy' ;;
esac"#,
                s = sysroot.display()
            )
        } else {
            String::new()
        };
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$@\" >> '{}'\n{install}\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[cfg(unix)]
    #[test]
    fn rustup_adds_what_is_missing() {
        let sysroot = bare_sysroot("adds");
        let bin = temp_dir("adds-bin");
        let rustup = fake_rustup(&bin, &sysroot, true);
        let tc = toolchain(&sysroot);
        tc.ensure(BUILD, Some(&rustup)).unwrap();
        assert!(tc.missing(BUILD).is_empty());
        let calls = std::fs::read_to_string(bin.join("calls")).unwrap();
        assert_eq!(
            calls,
            format!(
                "target add {TARGET} --toolchain stable-test\n\
                 component add llvm-tools --toolchain stable-test\n"
            )
        );
        // Once complete, rustup is not run again.
        tc.ensure(BUILD, Some(&rustup)).unwrap();
        let again = std::fs::read_to_string(bin.join("calls")).unwrap();
        assert_eq!(again, calls);
    }

    #[cfg(unix)]
    #[test]
    fn a_rustup_that_installs_nothing_is_an_error() {
        let sysroot = bare_sysroot("noop");
        let bin = temp_dir("noop-bin");
        let rustup = fake_rustup(&bin, &sysroot, false);
        let err = toolchain(&sysroot)
            .ensure(BUILD, Some(&rustup))
            .unwrap_err();
        assert!(format!("{err:#}").contains("still lacks"), "{err:#}");
    }

    #[test]
    fn the_running_toolchain_is_found() {
        let tc = Toolchain::current().unwrap();
        assert!(tc.sysroot.join("lib/rustlib").join(&tc.host).is_dir());
    }
}
