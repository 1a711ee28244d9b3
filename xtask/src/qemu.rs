//! Finding `qemu-system-aarch64`, checking its version, and installing it when allowed.
//!
//! hypstub needs QEMU 9.0 or later (`-M raspi4b` arrived in 9.0; docs/rpi4.md).
//! [`find`] only looks; [`ensure`] also installs it on Debian and Ubuntu when running as
//! root, and otherwise prints the commands to run and fails. The plan itself, and the rule
//! that its archive URI comes from the machine's own APT sources, live in [`crate::apt`].

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::apt::{self, AptSource, InstallPlan, InstallStep, OsRelease, PlanError};

/// The QEMU binary hypstub runs.
pub const BINARY: &str = "qemu-system-aarch64";

/// Environment variable naming a QEMU binary to use instead of the one on `PATH`.
pub const OVERRIDE_ENV: &str = "HYPSTUB_QEMU";

/// The oldest QEMU hypstub supports.
pub const MIN_VERSION: Version = Version {
    major: 9,
    minor: 0,
    patch: 0,
};

/// A QEMU release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major, e.g. 10 in 10.0.2.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Micro (patch) level; development snapshots use 50 and above.
    pub patch: u32,
}

impl Version {
    /// Reads the version from `qemu-system-aarch64 --version` output, whose first line is
    /// `QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2...)`. Missing minor or patch
    /// numbers count as 0; anything after the digits of a part (`-rc1`) is ignored. Output
    /// without that phrase (not QEMU at all) gives `None`.
    pub fn from_version_output(text: &str) -> Option<Version> {
        const PREFIX: &str = "QEMU emulator version";
        let (_, rest) = text.lines().find_map(|l| l.split_once(PREFIX))?;
        let number = rest.split_whitespace().next()?;
        let number = number.strip_prefix('v').unwrap_or(number);
        let mut parts = number.split('.').map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next().flatten()?;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Version {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A usable QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qemu {
    /// The `qemu-system-aarch64` binary.
    pub path: PathBuf,
    /// Its version.
    pub version: Version,
}

/// Why no usable QEMU is available.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// Not on `PATH` (and no override).
    #[error("{BINARY} not found on PATH")]
    NotFound,
    /// `HYPSTUB_QEMU` names something that is not an executable file.
    #[error("{OVERRIDE_ENV}={0} is not an executable file")]
    BadOverride(PathBuf),
    /// Running `--version` failed.
    #[error("could not run `{} --version`: {source}", path.display())]
    Exec {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// `--version` printed something unexpected.
    #[error("could not read a version from `{} --version`: {output:?}", path.display())]
    UnreadableVersion {
        /// The binary.
        path: PathBuf,
        /// What it printed.
        output: String,
    },
    /// Older than [`MIN_VERSION`].
    #[error("{} is QEMU {version}; hypstub needs {MIN_VERSION} or later", path.display())]
    TooOld {
        /// The binary.
        path: PathBuf,
        /// Its version.
        version: Version,
    },
    /// No automatic install on this system.
    #[error("{why}; {plan}")]
    CannotInstall {
        /// Why an install is needed (not found, too old).
        why: String,
        /// Why no install plan exists.
        plan: PlanError,
    },
    /// An install is possible but needs root.
    #[error(
        "{why}; not running as root, so it was not installed: run the commands printed \
         above, or rerun as root"
    )]
    NeedsRoot {
        /// Why an install is needed (not found, too old).
        why: String,
    },
    /// One install step failed.
    #[error("installing QEMU failed at `{step}`: {reason}")]
    InstallFailed {
        /// The step, as a shell command.
        step: String,
        /// Exit status or I/O error.
        reason: String,
    },
    /// The install ran but still left no usable QEMU.
    #[error("after installing {package}: {0}", package = apt::QEMU_PACKAGE)]
    StillUnusable(Box<QemuError>),
}

/// Finds `qemu-system-aarch64` (`$HYPSTUB_QEMU`, else `PATH`) and checks that it is at
/// least [`MIN_VERSION`]. Installs nothing.
pub fn find() -> Result<Qemu, QemuError> {
    let path = match std::env::var_os(OVERRIDE_ENV).filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            if !is_executable(&path) {
                return Err(QemuError::BadOverride(path));
            }
            path
        }
        None => search_path(BINARY, std::env::var_os("PATH")).ok_or(QemuError::NotFound)?,
    };
    let output = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|source| QemuError::Exec {
            path: path.clone(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let version =
        Version::from_version_output(&text).ok_or_else(|| QemuError::UnreadableVersion {
            path: path.clone(),
            output: text,
        })?;
    if version < MIN_VERSION {
        return Err(QemuError::TooOld { path, version });
    }
    Ok(Qemu { path, version })
}

/// The first executable `name` in the directories of a `PATH` value.
pub fn search_path(name: &str, path_var: Option<OsString>) -> Option<PathBuf> {
    std::env::split_paths(&path_var?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Like [`find`], but when QEMU is missing or too old, installs it: on Debian and Ubuntu
/// as root it runs the [`InstallPlan`] for this machine (printing each step); not as root
/// it prints the plan as `sudo` commands and fails.
pub fn ensure() -> Result<Qemu, QemuError> {
    let overridden = std::env::var_os(OVERRIDE_ENV).is_some_and(|v| !v.is_empty());
    let why = match find() {
        Ok(qemu) => return Ok(qemu),
        // Installing the distribution's QEMU cannot fix a binary the user chose.
        Err(e) if overridden => return Err(e),
        Err(e @ (QemuError::NotFound | QemuError::TooOld { .. })) => e,
        // A broken binary is the user's to fix, not ours to paper over.
        Err(e) => return Err(e),
    };
    eprintln!("xtask: {why}");
    let os = OsRelease::parse(&fs::read_to_string("/etc/os-release").unwrap_or_default());
    let plan = InstallPlan::for_machine(&os, &read_apt_sources()).map_err(|plan| {
        QemuError::CannotInstall {
            why: why.to_string(),
            plan,
        }
    })?;
    if !is_root() {
        eprintln!("xtask: to install QEMU on {}, run:\n\n{plan}", os.name());
        return Err(QemuError::NeedsRoot {
            why: why.to_string(),
        });
    }
    eprintln!("xtask: installing {} on {}", apt::QEMU_PACKAGE, os.name());
    for step in &plan.steps {
        run_step(step)?;
    }
    find().map_err(|e| QemuError::StillUnusable(Box::new(e)))
}

fn run_step(step: &InstallStep) -> Result<(), QemuError> {
    let shown = step.shell(false);
    eprintln!("xtask: + {shown}");
    let failed = |reason: String| QemuError::InstallFailed {
        step: shown.clone(),
        reason,
    };
    match step {
        InstallStep::WriteFile { path, contents } => {
            fs::write(path, contents).map_err(|e| failed(e.to_string()))
        }
        InstallStep::Run { env, argv } => {
            let status = Command::new(&argv[0])
                .args(&argv[1..])
                .envs(env.iter().map(|(k, v)| (k, v)))
                .status()
                .map_err(|e| failed(e.to_string()))?;
            if status.success() {
                Ok(())
            } else {
                Err(failed(status.to_string()))
            }
        }
    }
}

/// All entries of `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.{list,sources}`,
/// in the order APT reads them. Unreadable files are skipped.
pub fn read_apt_sources() -> Vec<AptSource> {
    read_apt_sources_in(Path::new("/etc/apt"))
}

/// [`read_apt_sources`] for an APT configuration directory other than `/etc/apt`.
pub fn read_apt_sources_in(etc_apt: &Path) -> Vec<AptSource> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut names: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        files.extend(names);
    }
    files
        .iter()
        .filter_map(|file| {
            let text = fs::read_to_string(file).ok()?;
            Some(apt::parse_sources_file(file, &text))
        })
        .flatten()
        .collect()
}

/// Whether this process runs as root (effective uid 0), read from `/proc/self/status`,
/// falling back to `id -u` where there is no procfs.
pub fn is_root() -> bool {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        if let Some(uid) = effective_uid(&status) {
            return uid == 0;
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The effective uid from `/proc/<pid>/status` text (`Uid: real effective saved fs`).
fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn version_debian_backports() {
        let out = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n\
                   Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers\n";
        assert_eq!(Version::from_version_output(out), Some(v(10, 0, 2)));
    }

    #[test]
    fn version_variants() {
        let cases = [
            (
                "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)",
                v(7, 2, 15),
            ),
            (
                "QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1.4)",
                v(8, 2, 2),
            ),
            ("QEMU emulator version 9.0.0", v(9, 0, 0)),
            (
                "QEMU emulator version 9.2.50 (v9.2.0-1234-gdeadbeef)",
                v(9, 2, 50),
            ),
            ("QEMU emulator version 9.1.0-rc1\n", v(9, 1, 0)),
            ("QEMU emulator version 10.1", v(10, 1, 0)),
            ("\nQEMU emulator version 11.0.0 (x)\n", v(11, 0, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(Version::from_version_output(text), Some(want), "{text:?}");
        }
    }

    #[test]
    fn version_garbage() {
        let not_qemu = "true (GNU coreutils) 9.1\nLicense GPLv3+: GNU GPL version 3 or later\n";
        for text in [
            "",
            "qemu-system-aarch64: unknown option",
            "QEMU emulator version",
            "QEMU emulator version x.y",
            not_qemu,
        ] {
            assert_eq!(Version::from_version_output(text), None, "{text:?}");
        }
    }

    #[test]
    fn version_order_and_minimum() {
        assert!(v(10, 0, 2) >= MIN_VERSION);
        assert!(v(9, 0, 0) >= MIN_VERSION);
        assert!(v(8, 2, 2) < MIN_VERSION);
        assert!(v(7, 2, 15) < MIN_VERSION);
        assert!(v(9, 10, 0) > v(9, 2, 0), "numeric, not lexical");
        assert_eq!(v(10, 0, 2).to_string(), "10.0.2");
    }

    #[test]
    fn uid_from_proc_status() {
        let status = "Name:\tcat\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(effective_uid("Name: x\n"), None);
    }

    #[test]
    fn path_search() {
        let dir = std::env::temp_dir().join(format!("xtask-path-search-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        // Not executable in a, executable in b: b wins.
        fs::write(a.join("tool"), "").unwrap();
        fs::write(b.join("tool"), "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(b.join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(
            search_path("tool", Some(path.clone())),
            Some(b.join("tool"))
        );
        assert_eq!(search_path("missing", Some(path)), None);
        assert_eq!(search_path("tool", None), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_a_sources_tree_in_apt_order() {
        let root = std::env::temp_dir().join(format!("xtask-etc-apt-{}", std::process::id()));
        let dir = root.join("sources.list.d");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            root.join("sources.list"),
            "deb http://one.example/debian bookworm main\n",
        )
        .unwrap();
        fs::write(
            dir.join("b.sources"),
            "Types: deb\nURIs: http://three.example/debian\nSuites: bookworm-backports\n\
             Components: main\n",
        )
        .unwrap();
        fs::write(
            dir.join("a.list"),
            "deb http://two.example/debian bookworm-updates main\n",
        )
        .unwrap();
        fs::write(
            dir.join("c.list.disabled"),
            "deb http://ignored.example/debian bookworm main\n",
        )
        .unwrap();
        let sources = read_apt_sources_in(&root);
        let uris: Vec<_> = sources.iter().map(|s| s.uris[0].as_str()).collect();
        assert_eq!(
            uris,
            [
                "http://one.example/debian",
                "http://two.example/debian",
                "http://three.example/debian"
            ]
        );
        assert_eq!(apt::backports_sources(&sources), Ok(None));
        fs::remove_dir_all(&root).unwrap();
        assert!(read_apt_sources_in(&root).is_empty());
    }
}
