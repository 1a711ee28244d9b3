//! Firmware images and test payloads: `cargo build` for the bare-metal target, then
//! `llvm-objcopy -O binary` into `target/hypstub/` (docs/CONTRACTS.md, "Target and build").
//!
//! Builds that differ from the normal ones in features or build-time environment (the
//! `test-corrupt-staging` firmware, el2-client at another `text_offset`) get their own
//! target directory under `<target>/variants/`: cargo would otherwise write their ELF over
//! the normal one (same binary name) or rebuild one whenever the other is built.

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
    /// The Raspberry Pi 4 (and QEMU `-M raspi4b`): the image is `kernel8.img`, linked at
    /// 0x80000, in an SD-card folder ([`crate::rpi4`]).
    Rpi4,
    /// The Raspberry Pi 4's armstub (`armstub=` in config.txt; [`crate::armstub`]).
    Rpi4Armstub,
}

impl Board {
    /// Every board.
    pub const ALL: [Board; 3] = [Board::QemuVirt, Board::Rpi4, Board::Rpi4Armstub];

    /// The name used on the command line and under `target/hypstub/`.
    pub fn name(self) -> &'static str {
        match self {
            Board::QemuVirt => "qemu-virt",
            Board::Rpi4 => "rpi4",
            Board::Rpi4Armstub => "rpi4-armstub",
        }
    }

    /// The `hypstub-boards` binary that holds the board's `main`.
    pub fn bin(self) -> &'static str {
        match self {
            Board::QemuVirt => "qemu-virt",
            Board::Rpi4 => "rpi4",
            Board::Rpi4Armstub => "rpi4-armstub",
        }
    }

    /// The raw image xtask writes.
    pub fn image_path(self) -> PathBuf {
        match self {
            Board::QemuVirt => output_dir().join("qemu-virt").join("hypstub.bin"),
            Board::Rpi4 => crate::rpi4::folder().join(crate::rpi4::KERNEL_FILE),
            Board::Rpi4Armstub => crate::armstub::image_path(),
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`Board::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown board `{0}`; known boards: {known}", known = Board::ALL.map(Board::name).join(", "))]
pub struct UnknownBoard(pub String);

impl FromStr for Board {
    type Err = UnknownBoard;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Board::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| UnknownBoard(name.to_owned()))
    }
}

/// A test payload: `tests/abi-client/` (abi-client), `tests/el2-client/` or
/// `tests/soak-client/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The EL1 client that exercises the hyp-stub ABI and SMCCC/PSCI.
    AbiClient,
    /// The EL2 client that checks the booting.rst contract, built with its default
    /// `text_offset` (see [`build_el2_client`] for others).
    El2Client,
    /// The EL1 client that soaks the stub with HVC_SOFT_RESTART into itself and CPU_ON/OFF;
    /// its raw image gets the digest it checks itself against ([`embed_image_digest`]).
    SoakClient,
}

impl Payload {
    /// Every payload.
    pub const ALL: [Payload; 3] = [Payload::AbiClient, Payload::El2Client, Payload::SoakClient];

    /// Its package and binary name.
    pub fn name(self) -> &'static str {
        match self {
            Payload::AbiClient => "abi-client",
            Payload::El2Client => "el2-client",
            Payload::SoakClient => "soak-client",
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

/// The variable el2-client's `build.rs` reads its `text_offset` (and link address,
/// 0x4000_0000 + text_offset) from.
pub const EL2_CLIENT_TEXT_OFFSET_ENV: &str = "EL2_CLIENT_TEXT_OFFSET";

/// el2-client's `text_offset` when the variable is unset (its `build.rs` default).
pub const EL2_CLIENT_DEFAULT_TEXT_OFFSET: u64 = 0x8_0000;

/// The text_offset that links el2-client at the start of the firmware's own EL1 stage RAM
/// on QEMU virt (0x4010_8000..0x4020_0000, `EL1_RAM`): a relocation over the code doing the
/// planning.
pub const EL2_CLIENT_OVER_FIRMWARE: u64 = {
    use crate::memory_map::qemu_virt::{EL1_RAM, RAM_START};
    EL1_RAM.start - RAM_START
};

/// The raw el2-client image for `text_offset`: `el2-client.bin` for the default,
/// `el2-client-0x<offset>.bin` otherwise.
pub fn el2_client_image_path(text_offset: u64) -> PathBuf {
    if text_offset == EL2_CLIENT_DEFAULT_TEXT_OFFSET {
        Payload::El2Client.image_path()
    } else {
        output_dir().join(format!("el2-client-{text_offset:#x}.bin"))
    }
}

/// A firmware built with a test-only cargo feature of `hypstub-boards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `test-corrupt-staging`: corrupts the first staged page of the payload after
    /// planning, so the engine must refuse to enter it.
    CorruptStaging,
    /// `test-skip-args-clean`: leaves the argument block's page out of the clean before
    /// the HVC; boots normally on QEMU, `cargo xtask cachecheck` must flag it.
    SkipArgsClean,
    /// `test-skip-dest-clean`: the engine does not clean the destinations after its
    /// MMU-on copy.
    SkipDestClean,
    /// `test-skip-el1-invalidate`: the EL1 stage does not invalidate its RAM before its
    /// MMU goes on (caught with `possibly-cached=on`).
    SkipEl1Invalidate,
    /// `test-skip-fw-cfg-desc-clean`: fw_cfg DMA without the clean of its descriptor.
    SkipFwCfgDescClean,
    /// `test-skip-fw-cfg-dest-clean`: fw_cfg DMA without the clean and invalidate of its
    /// destination before the start.
    SkipFwCfgDestClean,
    /// `test-skip-icache-invalidate`: no I-cache invalidate after the engine's page is
    /// written, before the HVC.
    SkipIcacheInvalidate,
    /// `test-skip-release-clean` (Raspberry Pi 4): the entry written into a secondary's
    /// spin-table release word is not cleaned before the CPU, MMU off, reads it.
    SkipReleaseClean,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 8] = [
        Variant::CorruptStaging,
        Variant::SkipArgsClean,
        Variant::SkipDestClean,
        Variant::SkipEl1Invalidate,
        Variant::SkipFwCfgDescClean,
        Variant::SkipFwCfgDestClean,
        Variant::SkipIcacheInvalidate,
        Variant::SkipReleaseClean,
    ];

    /// The name on the command line and in the image's file name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::CorruptStaging => "corrupt-staging",
            Variant::SkipArgsClean => "skip-args-clean",
            Variant::SkipDestClean => "skip-dest-clean",
            Variant::SkipEl1Invalidate => "skip-el1-invalidate",
            Variant::SkipFwCfgDescClean => "skip-fw-cfg-desc-clean",
            Variant::SkipFwCfgDestClean => "skip-fw-cfg-dest-clean",
            Variant::SkipIcacheInvalidate => "skip-icache-invalidate",
            Variant::SkipReleaseClean => "skip-release-clean",
        }
    }

    /// The `hypstub-boards` feature it turns on.
    pub fn feature(self) -> &'static str {
        match self {
            Variant::CorruptStaging => "test-corrupt-staging",
            Variant::SkipArgsClean => "test-skip-args-clean",
            Variant::SkipDestClean => "test-skip-dest-clean",
            Variant::SkipEl1Invalidate => "test-skip-el1-invalidate",
            Variant::SkipFwCfgDescClean => "test-skip-fw-cfg-desc-clean",
            Variant::SkipFwCfgDestClean => "test-skip-fw-cfg-dest-clean",
            Variant::SkipIcacheInvalidate => "test-skip-icache-invalidate",
            Variant::SkipReleaseClean => "test-skip-release-clean",
        }
    }

    /// Its own cargo target directory, `<target>/variants/<name>` (`corrupt` for
    /// corrupt-staging), so that building it never replaces the normal firmware ELF (cargo
    /// names both `qemu-virt`).
    pub fn target_dir(self) -> PathBuf {
        let short = match self {
            Variant::CorruptStaging => "corrupt",
            v => v.name(),
        };
        variants_dir().join(short)
    }

    /// The raw image xtask writes: `<target>/hypstub/<board>-<variant>.bin`.
    pub fn image_path(self, board: Board) -> PathBuf {
        output_dir().join(format!("{}-{}.bin", board.name(), self.name()))
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == name || v.feature() == name)
            .ok_or_else(|| {
                let known = Variant::ALL.map(Variant::name).join(", ");
                format!("unknown firmware variant `{name}`; known variants: {known}")
            })
    }
}

/// `<target>/variants`: the target directories of builds that must not share the main
/// one (other features, other build-time environment).
pub fn variants_dir() -> PathBuf {
    target_dir().join("variants")
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
    let elf = cargo_build(&CargoBuild::new("hypstub-boards", board.bin()), opts)?;
    let built = finish(elf, board.image_path(), opts)?;
    if board == Board::Rpi4Armstub {
        crate::armstub::check(&built)?;
    }
    Ok(built)
}

/// Builds a board's firmware with a test-only feature, in the variant's own target
/// directory, and writes its raw image ([`Variant::image_path`]).
pub fn build_firmware_variant(
    board: Board,
    variant: Variant,
    opts: BuildOptions,
) -> anyhow::Result<Built> {
    if board == Board::Rpi4Armstub {
        bail!("the rpi4-armstub has no test variants");
    }
    let spec = CargoBuild {
        features: vec![variant.feature()],
        target_dir: Some(variant.target_dir()),
        ..CargoBuild::new("hypstub-boards", board.bin())
    };
    let elf = cargo_build(&spec, opts)?;
    finish(elf, variant.image_path(board), opts)
}

/// Builds the example bootloader (`examples/pflash-boot`) and writes its raw image
/// ([`crate::example::image_path`]).
pub fn build_example(opts: BuildOptions) -> anyhow::Result<Built> {
    let name = crate::example::PACKAGE;
    let elf = cargo_build(&CargoBuild::new(name, name), opts)?;
    finish(elf, crate::example::image_path(), opts)
}

/// Builds a test payload and writes its raw image ([`Payload::image_path`]).
pub fn build_payload(payload: Payload, opts: BuildOptions) -> anyhow::Result<Built> {
    match payload {
        Payload::AbiClient => {
            let elf = cargo_build(&CargoBuild::new(payload.name(), payload.name()), opts)?;
            finish(elf, payload.image_path(), opts)
        }
        Payload::El2Client => build_el2_client(EL2_CLIENT_DEFAULT_TEXT_OFFSET, opts),
        Payload::SoakClient => {
            let elf = cargo_build(&CargoBuild::new(payload.name(), payload.name()), opts)?;
            let built = finish(elf, payload.image_path(), opts)?;
            let crc = embed_image_digest(&built.image)?;
            if !opts.quiet {
                println!("soak-client: image digest {crc:#010x} embedded");
            }
            Ok(built)
        }
    }
}

/// Embeds the CRC32C of soak-client's raw image in its last 8 bytes (the digest record its
/// `link.ld` puts there; `client_support::image_digest`), which the client checks itself
/// against at every entry. Returns the digest.
///
/// # Errors
/// The image cannot be read or written, or does not end with the record.
pub fn embed_image_digest(image: &Path) -> anyhow::Result<u32> {
    let mut bytes = fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let crc = client_support::image_digest::embed(&mut bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
    fs::write(image, &bytes).with_context(|| format!("writing {}", image.display()))?;
    Ok(crc)
}

/// Builds el2-client with `text_offset` (a multiple of 4 KiB; its `build.rs` checks the
/// range) and writes [`el2_client_image_path`]. The default offset builds in the main
/// target directory, with [`EL2_CLIENT_TEXT_OFFSET_ENV`] removed from the environment so
/// that a stray value cannot change it; any other offset builds in
/// `<target>/variants/el2-client-0x<offset>`, so the two never rebuild each other.
pub fn build_el2_client(text_offset: u64, opts: BuildOptions) -> anyhow::Result<Built> {
    // The same rule as el2-client's build.rs, checked here too so that a bad value fails
    // with one line instead of a build-script panic.
    if !(text_offset.is_multiple_of(0x1000) && (0x1000..=0x400_0000).contains(&text_offset)) {
        bail!(
            "el2-client's text_offset must be a multiple of 4 KiB from 0x1000 to 0x4000000, \
             not {text_offset:#x}"
        );
    }
    let name = Payload::El2Client.name();
    let spec = if text_offset == EL2_CLIENT_DEFAULT_TEXT_OFFSET {
        CargoBuild {
            env: vec![(EL2_CLIENT_TEXT_OFFSET_ENV, None)],
            ..CargoBuild::new(name, name)
        }
    } else {
        CargoBuild {
            env: vec![(
                EL2_CLIENT_TEXT_OFFSET_ENV,
                Some(format!("{text_offset:#x}")),
            )],
            target_dir: Some(variants_dir().join(format!("el2-client-{text_offset:#x}"))),
            ..CargoBuild::new(name, name)
        }
    };
    let elf = cargo_build(&spec, opts)?;
    finish(elf, el2_client_image_path(text_offset), opts)
}

/// One `cargo build` of a bare-metal binary.
struct CargoBuild {
    package: &'static str,
    bin: &'static str,
    /// `--features`.
    features: Vec<&'static str>,
    /// `--target-dir`; `None` is the shared one ([`target_dir`]).
    target_dir: Option<PathBuf>,
    /// Variables to set (`Some`) or remove (`None`) for the build.
    env: Vec<(&'static str, Option<String>)>,
}

impl CargoBuild {
    fn new(package: &'static str, bin: &'static str) -> Self {
        CargoBuild {
            package,
            bin,
            features: Vec::new(),
            target_dir: None,
            env: Vec::new(),
        }
    }
}

/// `cargo build [--release] -p <package> --bin <bin> --target <TARGET> [--features ...]
/// [--target-dir ...]`; returns the ELF.
fn cargo_build(spec: &CargoBuild, opts: BuildOptions) -> anyhow::Result<PathBuf> {
    crate::toolchain::ensure(crate::toolchain::BUILD)?;
    let mut cmd = cargo();
    cmd.arg("build");
    if opts.profile == Profile::Release {
        cmd.arg("--release");
    }
    if opts.quiet {
        cmd.arg("--quiet");
    }
    cmd.args(["-p", spec.package, "--bin", spec.bin, "--target", TARGET]);
    if !spec.features.is_empty() {
        cmd.arg("--features").arg(spec.features.join(","));
    }
    let dir = match &spec.target_dir {
        Some(dir) => {
            cmd.arg("--target-dir").arg(dir);
            dir.clone()
        }
        None => target_dir(),
    };
    for (name, value) in &spec.env {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    run(&mut cmd, opts.quiet)?;
    Ok(dir.join(TARGET).join(opts.profile.dir()).join(spec.bin))
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
    llvm_tool("llvm-objcopy")
}

/// A program of the toolchain's `llvm-tools` component (`llvm-objcopy`, `llvm-size`,
/// `llvm-nm`): `$(rustc --print sysroot)/lib/rustlib/<host>/bin/<name>`.
pub fn llvm_tool(name: &str) -> anyhow::Result<PathBuf> {
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
        .join("bin")
        .join(name);
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
        assert_eq!("rpi4".parse::<Board>(), Ok(Board::Rpi4));
        assert_eq!(Board::Rpi4.bin(), "rpi4");
        assert_eq!("rpi4-armstub".parse::<Board>(), Ok(Board::Rpi4Armstub));
        let other = "pc".parse::<Board>().unwrap_err().to_string();
        assert_eq!(
            other,
            "unknown board `pc`; known boards: qemu-virt, rpi4, rpi4-armstub"
        );
    }

    #[test]
    fn image_paths() {
        assert!(Board::QemuVirt
            .image_path()
            .ends_with("hypstub/qemu-virt/hypstub.bin"));
        assert!(Board::Rpi4
            .image_path()
            .ends_with("hypstub/rpi4/kernel8.img"));
        assert!(Board::Rpi4Armstub
            .image_path()
            .ends_with("hypstub/rpi4/armstub8-hypstub.bin"));
        assert!(Payload::AbiClient
            .image_path()
            .ends_with("hypstub/abi-client.bin"));
        assert_eq!("abi-client".parse::<Payload>(), Ok(Payload::AbiClient));
        assert_eq!("el2-client".parse::<Payload>(), Ok(Payload::El2Client));
        assert!("x"
            .parse::<Payload>()
            .unwrap_err()
            .contains("abi-client, el2-client, soak-client"));
    }

    #[test]
    fn variant_paths_stay_apart() {
        assert!(el2_client_image_path(EL2_CLIENT_DEFAULT_TEXT_OFFSET)
            .ends_with("hypstub/el2-client.bin"));
        assert!(el2_client_image_path(EL2_CLIENT_OVER_FIRMWARE)
            .ends_with("hypstub/el2-client-0x108000.bin"));
        let corrupt = Variant::CorruptStaging;
        assert!(corrupt
            .image_path(Board::QemuVirt)
            .ends_with("hypstub/qemu-virt-corrupt-staging.bin"));
        assert!(corrupt.target_dir().ends_with("variants/corrupt"));
        assert_ne!(corrupt.target_dir(), target_dir());
        assert_eq!("corrupt-staging".parse(), Ok(corrupt));
        assert!(Variant::SkipArgsClean
            .target_dir()
            .ends_with("variants/skip-args-clean"));
        assert_eq!("test-corrupt-staging".parse(), Ok(corrupt));
        assert!("x"
            .parse::<Variant>()
            .unwrap_err()
            .contains("corrupt-staging"));
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
