//! Firmware images and test payloads: `cargo build` for the bare-metal target, then
//! `llvm-objcopy -O binary` into `target/hypstub/` (docs/CONTRACTS.md, "Target and build").

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, Context as _};

use crate::{cargo, output_dir, run, target_dir};

/// The target every firmware and payload is built for: strict alignment, no FP/SIMD.
pub const TARGET: &str = "aarch64-unknown-none-softfloat";

/// A board hypstub builds firmware for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// QEMU `-M virt,virtualization=on`: the image is a `-bios` flash image.
    QemuVirt,
}

impl Board {
    /// Every board that can be built today.
    pub const ALL: [Board; 1] = [Board::QemuVirt];

    /// The name used on the command line and under `target/hypstub/`.
    pub fn name(self) -> &'static str {
        match self {
            Board::QemuVirt => "qemu-virt",
        }
    }

    /// The `hypstub-boards` binary that holds the board's `main`.
    pub fn bin(self) -> &'static str {
        match self {
            Board::QemuVirt => "qemu-virt",
        }
    }

    /// The raw image xtask writes.
    pub fn image_path(self) -> PathBuf {
        match self {
            Board::QemuVirt => output_dir().join("qemu-virt").join("hypstub.bin"),
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Boards that are planned but cannot be built yet.
const PLANNED_BOARDS: [&str; 1] = ["rpi4"];

fn known_boards() -> String {
    Board::ALL.map(Board::name).join(", ")
}

/// A board name that is not (yet) one of [`Board::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// A planned board whose port has not landed.
    #[error("board `{0}` is not available yet; known boards: {known}", known = known_boards())]
    NotAvailableYet(String),
    /// Not a board at all.
    #[error(
        "unknown board `{0}`; known boards: {known} (rpi4 is not available yet)",
        known = known_boards()
    )]
    Unknown(String),
}

impl FromStr for Board {
    type Err = BoardError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if let Some(board) = Board::ALL.into_iter().find(|b| b.name() == name) {
            Ok(board)
        } else if PLANNED_BOARDS.contains(&name) {
            Err(BoardError::NotAvailableYet(name.to_owned()))
        } else {
            Err(BoardError::Unknown(name.to_owned()))
        }
    }
}

/// A test payload from `tests/payload/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The EL1 client that exercises the hyp-stub ABI and SMCCC/PSCI.
    AbiClient,
}

impl Payload {
    /// Every payload.
    pub const ALL: [Payload; 1] = [Payload::AbiClient];

    /// Its package and binary name.
    pub fn name(self) -> &'static str {
        match self {
            Payload::AbiClient => "abi-client",
        }
    }

    /// The raw image xtask writes.
    pub fn image_path(self) -> PathBuf {
        output_dir().join(format!("{}.bin", self.name()))
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Payload {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Payload::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let known = Payload::ALL.map(Payload::name).join(", ");
                format!("unknown payload `{name}`; known payloads: {known}")
            })
    }
}

/// Cargo profile to build with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// `--release`: what tests and users run (small, LTO).
    #[default]
    Release,
    /// The dev profile: unoptimised, for stepping through with a debugger.
    Debug,
}

impl Profile {
    /// Cargo's directory name for it.
    pub fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// How a build should talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BuildOptions {
    /// Profile.
    pub profile: Profile,
    /// Pass `--quiet` to cargo and print no commands (for test harnesses).
    pub quiet: bool,
}

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The ELF cargo produced (with symbols, for a debugger).
    pub elf: PathBuf,
    /// The raw image made from it.
    pub image: PathBuf,
    /// Size of the raw image in bytes.
    pub size: u64,
}

impl Built {
    /// `<bytes> bytes (<KiB> KiB)`.
    pub fn size_text(&self) -> String {
        format!("{} bytes ({:.1} KiB)", self.size, self.size as f64 / 1024.0)
    }
}

/// Builds a board's firmware and writes its raw image ([`Board::image_path`]).
pub fn build_firmware(board: Board, opts: BuildOptions) -> anyhow::Result<Built> {
    let elf = cargo_build("hypstub-boards", board.bin(), opts)?;
    finish(elf, board.image_path(), opts)
}

/// Builds a test payload and writes its raw image ([`Payload::image_path`]).
pub fn build_payload(payload: Payload, opts: BuildOptions) -> anyhow::Result<Built> {
    let elf = cargo_build(payload.name(), payload.name(), opts)?;
    finish(elf, payload.image_path(), opts)
}

/// `cargo build [--release] -p <package> --bin <bin> --target <TARGET>`; returns the ELF.
fn cargo_build(package: &str, bin: &str, opts: BuildOptions) -> anyhow::Result<PathBuf> {
    let mut cmd = cargo();
    cmd.arg("build");
    if opts.profile == Profile::Release {
        cmd.arg("--release");
    }
    if opts.quiet {
        cmd.arg("--quiet");
    }
    cmd.args(["-p", package, "--bin", bin, "--target", TARGET]);
    run(&mut cmd, opts.quiet)?;
    Ok(target_dir().join(TARGET).join(opts.profile.dir()).join(bin))
}

fn finish(elf: PathBuf, image: PathBuf, opts: BuildOptions) -> anyhow::Result<Built> {
    objcopy_binary(&elf, &image, opts.quiet)?;
    let size = fs::metadata(&image)
        .with_context(|| format!("reading {}", image.display()))?
        .len();
    Ok(Built { elf, image, size })
}

/// `llvm-objcopy -O binary <elf> <out>`, creating `out`'s directory.
pub fn objcopy_binary(elf: &Path, out: &Path, quiet: bool) -> anyhow::Result<()> {
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut cmd = Command::new(llvm_objcopy()?);
    cmd.args(["-O", "binary"]).arg(elf).arg(out);
    run(&mut cmd, quiet)
}

/// `llvm-objcopy` from the toolchain's `llvm-tools` component:
/// `$(rustc --print sysroot)/lib/rustlib/<host>/bin/llvm-objcopy`.
pub fn llvm_objcopy() -> anyhow::Result<PathBuf> {
    let rustc = |args: &[&str]| -> anyhow::Result<String> {
        // Run in the workspace so that rust-toolchain.toml picks the toolchain.
        let out = Command::new("rustc")
            .args(args)
            .current_dir(crate::workspace_root())
            .output()
            .context("could not run rustc")?;
        if !out.status.success() {
            bail!("`rustc {}` failed ({})", args.join(" "), out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let sysroot = rustc(&["--print", "sysroot"])?;
    let verbose = rustc(&["-vV"])?;
    let host = verbose
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .context("`rustc -vV` printed no host line")?;
    let path = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host.trim())
        .join("bin/llvm-objcopy");
    if !path.is_file() {
        bail!(
            "{} not found: install the llvm-tools component (`rustup component add llvm-tools`; \
             rust-toolchain.toml asks for it)",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_names() {
        assert_eq!("qemu-virt".parse::<Board>(), Ok(Board::QemuVirt));
        let rpi4 = "rpi4".parse::<Board>().unwrap_err().to_string();
        assert!(rpi4.contains("not available yet"), "{rpi4}");
        assert!(rpi4.contains("qemu-virt"), "{rpi4}");
        let other = "pc".parse::<Board>().unwrap_err().to_string();
        assert!(other.starts_with("unknown board `pc`"), "{other}");
        assert!(other.contains("known boards: qemu-virt"), "{other}");
    }

    #[test]
    fn image_paths() {
        assert!(Board::QemuVirt
            .image_path()
            .ends_with("hypstub/qemu-virt/hypstub.bin"));
        assert!(Payload::AbiClient
            .image_path()
            .ends_with("hypstub/abi-client.bin"));
        assert_eq!("abi-client".parse::<Payload>(), Ok(Payload::AbiClient));
        assert!("x".parse::<Payload>().unwrap_err().contains("abi-client"));
    }

    #[test]
    fn size_text() {
        let built = Built {
            elf: PathBuf::new(),
            image: PathBuf::new(),
            size: 70_000,
        };
        assert_eq!(built.size_text(), "70000 bytes (68.4 KiB)");
    }
}
