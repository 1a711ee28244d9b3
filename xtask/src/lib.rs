//! The host side of hypstub: what `cargo xtask` and the integration tests share.
//!
//! - [`image`]: build a board's firmware or a test payload with plain `cargo build` and
//!   turn the ELF into a raw image with `llvm-objcopy`, under `target/hypstub/`;
//!   [`armstub`]: the Raspberry Pi 4 armstub's layout checks and its QEMU `raspi4b` machine.
//! - [`qemu`] and [`apt`]: find `qemu-system-aarch64` 9.0 or later, or install it (on
//!   Debian 12 from `bookworm-backports` of the archive the machine already uses).
//! - [`runner`]: one QEMU run (`virt` or `raspi4b`), described as data, with the serial
//!   console captured, a timeout, and an optional marker to stop at.
//! - [`rpi4`]: the Raspberry Pi 4's SD-card folder (kernel8.img, config.txt, cmdline.txt,
//!   the payload FIT written by [`fit`]) and the DTB and machine for QEMU raspi4b.
//! - [`toolchain`]: the bare-metal target and the components `rust-toolchain.toml` names,
//!   added with rustup when the installed toolchain lacks them.
//! - [`example`]: `examples/pflash-boot`, the example custom bootloader, its flash image
//!   and machine.
//! - [`cachecheck`]: `cargo xtask cachecheck`, boots under the cache-model QEMU plugin
//!   (`tools/cachecheck`) that fails on a missing cache clean or invalidate.
//! - [`checks`]: the steps of `cargo xtask test`, the same ones CI runs.
//! - [`fuzz`]: `cargo xtask fuzz`, the coverage-guided fuzz targets of `fuzz/` (libFuzzer on
//!   stable Rust), seeded with real inputs gathered at run time.
//! - [`bench`](mod@bench): `cargo xtask bench`, the relocation figures, with its payloads
//!   ([`bench::payload`], encoded with [`a64`]) and the console lines it reads, and the
//!   Linux boot time through hypstub and U-Boot against QEMU's own boot ([`bench::boot`],
//!   [`bench::uboot`]).
//! - [`assets`]: the Linux test assets by Debian package name (kernel, busybox), fetched
//!   through a private APT configuration into a cache checked by SHA-256, and the
//!   initramfs built from them; [`linux`]: the Linux machine and what its `/init` reports.
//! - [`memory_map`]: the boards' memory maps, compiled from the firmware's own source files
//!   (`boards/src/<board>/memory_map.rs`), so xtask restates no address.
//!
//! Principles: plain cargo stays the build system (`cargo build -p hypstub-boards --target
//! aarch64-unknown-none-softfloat` works without xtask; xtask only adds objcopy and QEMU);
//! every command xtask runs is printed before it runs; nothing here knows a mirror or
//! download host. This crate runs on the host only and depends on no firmware crate; of
//! hypstub's own crates it uses only `loader`, the host-testable format library (DTB edits),
//! and compiles the boards' dependency-free memory-map files ([`memory_map`]).

pub mod a64;
pub mod apt;
pub mod armstub;
pub mod assets;
pub mod bench;
pub mod cachecheck;
pub mod checks;
pub mod example;
pub mod fit;
pub mod fuzz;
pub mod image;
pub mod linux;
pub mod memory_map;
pub mod qemu;
pub mod rpi4;
pub mod runner;
pub mod toolchain;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn workspace_root() -> &'static Path {
    // xtask/ sits directly below the root; this is fixed at compile time, so it also holds
    // when the library is used from the integration tests.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask's manifest directory has a parent")
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set (made absolute against the
/// current directory, as cargo does), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir()
                    .map(|cwd| cwd.join(&dir))
                    .unwrap_or(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Where xtask writes images: `<target>/hypstub`.
pub fn output_dir() -> PathBuf {
    target_dir().join("hypstub")
}

/// A `cargo` command run in the workspace root, with an absolute `CARGO_TARGET_DIR`, so
/// that every nested build (from xtask or from a test binary, whose working directory is
/// its package) shares one target directory; likewise an absolute `HYPSTUB_CACHE` when
/// it is set, so that the tests find the Linux assets xtask fetched.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir());
    if std::env::var_os(assets::CACHE_ENV).is_some_and(|v| !v.is_empty()) {
        cmd.env(assets::CACHE_ENV, assets::cache_dir());
    }
    cmd
}

/// Runs `cmd` with inherited stdio, printing it first (to stderr) unless `quiet`;
/// fails unless it exits with status 0.
pub fn run(cmd: &mut Command, quiet: bool) -> anyhow::Result<()> {
    let shown = display_command(cmd);
    if !quiet {
        eprintln!("+ {shown}");
    }
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// A command as a line a shell would accept (arguments quoted where needed). Variables
/// the command sets or removes are shown through `env` (`env -u NAME NAME2=value cmd`),
/// except `CARGO_TARGET_DIR` and `HYPSTUB_CACHE`, which [`cargo`] only makes absolute.
pub fn display_command(cmd: &Command) -> String {
    let (mut removed, mut set) = (Vec::new(), Vec::new());
    for (name, value) in cmd.get_envs() {
        match value {
            _ if name == "CARGO_TARGET_DIR" || name == assets::CACHE_ENV => {}
            // `env` takes its options before the assignments.
            None => removed.extend(["-u".to_owned(), shell_quote(name)]),
            Some(value) => {
                let mut word = name.to_owned();
                word.push("=");
                word.push(value);
                set.push(shell_quote(&word));
            }
        }
    }
    let env = (!removed.is_empty() || !set.is_empty()).then(|| "env".to_owned());
    env.into_iter()
        .chain(removed)
        .chain(set)
        .chain(
            std::iter::once(cmd.get_program())
                .chain(cmd.get_args())
                .map(shell_quote),
        )
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes one word for a POSIX shell, leaving plain words alone.
pub fn shell_quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-+=/.,:@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args([
            "-M",
            "virt,gic-version=3",
            "-append",
            "hypstub.el=1 x",
            "",
            "it's",
        ]);
        assert_eq!(
            display_command(&cmd),
            r"qemu-system-aarch64 -M virt,gic-version=3 -append 'hypstub.el=1 x' '' 'it'\''s'"
        );
    }

    #[test]
    fn environment_changes_are_shown() {
        let mut cmd = cargo();
        cmd.args(["build", "-p", "el2-client"])
            .env_remove("EL2_CLIENT_TEXT_OFFSET");
        assert!(
            display_command(&cmd).starts_with("env -u EL2_CLIENT_TEXT_OFFSET "),
            "{}",
            display_command(&cmd)
        );
        let mut cmd = Command::new("cargo");
        cmd.arg("build").env("EL2_CLIENT_TEXT_OFFSET", "0x108000");
        assert_eq!(
            display_command(&cmd),
            "env EL2_CLIENT_TEXT_OFFSET=0x108000 cargo build"
        );
    }

    #[test]
    fn workspace_layout() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("xtask").is_dir());
        assert!(output_dir().ends_with("hypstub"));
    }
}
