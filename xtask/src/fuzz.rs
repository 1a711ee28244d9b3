//! `cargo xtask fuzz`: builds the fuzz targets of `fuzz/` (libFuzzer, with coverage
//! instrumentation from stable codegen flags) and runs them one at a time, seeded with real
//! inputs (docs/fuzzing.md).
//!
//! Everything lives under `<target>/fuzz/`: the build, `inputs/` (the outside inputs
//! gathered here at run time: QEMU virt's DTBs dumped by QEMU, Debian's Raspberry Pi 4 DTB
//! and its QEMU version, the first bytes of Debian's kernel, FITs written by
//! [`crate::fit::write_fit`], real command lines), `seeds/<target>/` (written by each target
//! from those inputs and from the project's own code, see `fuzz/src/seeds.rs`),
//! `corpus/<target>/` (what libFuzzer keeps; it grows from run to run), `artifacts/<target>/`
//! (crashing inputs) and `logs/<target>.log`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::assets::{self, Fetch};
use crate::qemu::Qemu;
use crate::rpi4::Console;
use crate::{cargo, display_command, linux, rpi4, run};

/// The fuzz targets, in the order they run.
pub const TARGETS: [&str; 8] = [
    "image", "options", "dt", "dtfacts", "fit", "args", "list", "plan",
];

/// The fuzz crate's manifest (its own workspace, excluded from the main one).
pub const MANIFEST: &str = "fuzz/Cargo.toml";

/// Seconds per target of `cargo xtask fuzz` without `--seconds`.
pub const DEFAULT_SECONDS: u64 = 60;

/// Seconds per target in `cargo xtask test`.
pub const CI_SECONDS: u64 = 4;

/// The codegen flags: libFuzzer's coverage (SanitizerCoverage with inline 8-bit counters,
/// the PC table and comparison tracing, which `-Z sanitizer` is not needed for), the `fuzzing`
/// cfg libfuzzer-sys expects, and debug assertions with overflow checks, so that an
/// arithmetic overflow on some input is a crash rather than a wrapped value.
pub const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// The largest input libFuzzer makes for `target`.
fn max_len(target: &str) -> usize {
    match target {
        "dt" | "dtfacts" | "fit" => 256 << 10,
        "list" => 8 << 10,
        "plan" => 512,
        _ => 4096,
    }
}

/// Where everything of the fuzzers goes.
pub fn dir() -> PathBuf {
    crate::target_dir().join("fuzz")
}

/// The host triple: the targets are built with `--target <host>`, so that the coverage
/// flags reach the code under test but not build scripts or proc macros.
fn host() -> anyhow::Result<String> {
    Ok(crate::toolchain::Toolchain::current()?.host)
}

/// `cargo <sub> --release` of the fuzz workspace for the host, with the fuzzing flags, in
/// its own target directory (the one [`build`] and [`clippy`] share).
fn fuzz_cargo(sub: &str, host: &str) -> Command {
    let mut cmd = cargo();
    cmd.env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", RUSTFLAGS)
        .args([
            sub,
            "--release",
            "--manifest-path",
            MANIFEST,
            "--target",
            host,
        ])
        .arg("--target-dir")
        .arg(dir().join("build"));
    cmd
}

/// Builds every target; returns the folder of the binaries.
pub fn build() -> anyhow::Result<PathBuf> {
    let host = host()?;
    run(&mut fuzz_cargo("build", &host), false)?;
    Ok(dir().join("build").join(host).join("release"))
}

/// Gathers the outside inputs into `dir/<kind>/`: QEMU virt's DTBs (dumped with
/// `dumpdtb=`), Debian's Pi 4 DTB and its QEMU version, the first 4 KiB of Debian's kernel,
/// FITs written by [`crate::fit::write_fit`], and the command lines xtask gives.
pub fn gather_inputs(qemu: &Qemu, dir: &Path) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(dir);
    for kind in ["dtb", "fit", "kernel", "cmdline"] {
        fs::create_dir_all(dir.join(kind))?;
    }
    let write = |kind: &str, name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(kind).join(name);
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    let mut virt_dtb = Vec::new();
    for (name, machine, cpu, smp, mem) in [
        (
            "virt-gicv3",
            "virt,virtualization=on,gic-version=3",
            "max",
            "4",
            "1G",
        ),
        (
            "virt-gicv2",
            "virt,virtualization=on,gic-version=2",
            "cortex-a72",
            "2",
            "512M",
        ),
    ] {
        let path = dir.join("dtb").join(format!("{name}.dtb"));
        let mut cmd = Command::new(&qemu.path);
        cmd.arg("-M")
            .arg(format!("{machine},dumpdtb={}", path.display()))
            .args(["-cpu", cpu, "-smp", smp, "-m", mem, "-display", "none"]);
        run(&mut cmd, false)?;
        if virt_dtb.is_empty() {
            virt_dtb = fs::read(&path)?;
        }
    }

    let files = assets::ensure(Fetch::IfMissing)?;
    let kernel = fs::read(&files.kernel)
        .with_context(|| format!("cannot read {}", files.kernel.display()))?;
    let kernel = &kernel[..kernel.len().min(64 << 10)];
    write(
        "kernel",
        "debian-vmlinuz",
        &kernel[..kernel.len().min(4096)],
    )?;
    let Some(pi_dtb) = &files.rpi4_dtb else {
        bail!("the Debian kernel package in the cache has no bcm2711-rpi-4-b.dtb");
    };
    let pi = fs::read(pi_dtb).with_context(|| format!("cannot read {}", pi_dtb.display()))?;
    write("dtb", "debian-bcm2711-rpi-4-b.dtb", &pi)?;
    let pi_qemu = rpi4::prepare_qemu_dtb(&pi, Console::MiniUart)?;
    write("dtb", "debian-bcm2711-rpi-4-b-qemu.dtb", &pi_qemu)?;

    let initrd = fs::read(&files.initramfs)?;
    let initrd = &initrd[..initrd.len().min(4096)];
    let fit = crate::fit::write_fit;
    write("fit", "kernel-only.itb", &fit(kernel, None, None, "kernel"))?;
    write(
        "fit",
        "virt.itb",
        &fit(kernel, Some(initrd), Some(&virt_dtb), "virt"),
    )?;
    write(
        "fit",
        "rpi4.itb",
        &fit(&kernel[..4096], Some(initrd), Some(&pi), "rpi4"),
    )?;
    // The Pi folder's layout: crc32 hashes, the data external on 4 KiB pages.
    write(
        "fit",
        "rpi4-folder.itb",
        &crate::fit::write_fit_with(
            &kernel[..4096],
            Some(initrd),
            None,
            "rpi4 folder",
            crate::fit::FitLayout::PI,
        ),
    )?;

    for (name, line) in [
        ("linux-el1", linux::command_line(["hypstub.el=1"])),
        ("linux", linux::command_line(["hypstub.log=debug quiet"])),
        ("rpi4", rpi4::cmdline(Console::MiniUart, ["hypstub.el=1"])),
        (
            "rpi4-qemu",
            rpi4::qemu_append(&rpi4::cmdline(Console::Pl011, []), Console::Pl011),
        ),
    ] {
        write("cmdline", name, line.as_bytes())?;
    }
    Ok(())
}

/// What one target's run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The target.
    pub target: String,
    /// Inputs run.
    pub execs: u64,
    /// Coverage: edges (libFuzzer's `cov`).
    pub cov: u64,
    /// Features (libFuzzer's `ft`).
    pub ft: u64,
    /// Inputs in the corpus at the end.
    pub corpus: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "{:<8} {:>11} execs in {:>5.0} s ({:>7.0}/s), cov {:>5}, ft {:>6}, corpus {:>5}",
            self.target,
            self.execs,
            secs,
            self.execs as f64 / secs.max(0.001),
            self.cov,
            self.ft,
            self.corpus
        )
    }
}

/// The figures of libFuzzer's log: the last status line's `cov`, `ft` and `corp`, and
/// `stat::number_of_executed_units`.
pub fn parse_log(target: &str, log: &str, elapsed: Duration) -> Stats {
    let field = |line: &str, name: &str| -> Option<u64> {
        let rest = line.split(&format!(" {name}: ")).nth(1)?;
        let word = rest.split_whitespace().next()?;
        word.split('/').next()?.parse().ok()
    };
    let status = log
        .lines()
        .rev()
        .find(|l| l.contains(" cov: "))
        .unwrap_or("");
    let execs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Stats {
        target: target.into(),
        execs,
        cov: field(status, "cov").unwrap_or(0),
        ft: field(status, "ft").unwrap_or(0),
        corpus: field(status, "corp").unwrap_or(0),
        elapsed,
    }
}

/// The command that runs `inputs` once through `target`'s binary: how a crash is
/// reproduced.
pub fn reproduce_command(bin: &Path, target: &str, inputs: &[PathBuf]) -> Command {
    let mut cmd = Command::new(bin.join(target));
    cmd.args(inputs);
    cmd
}

/// Writes `target`'s seeds from `inputs`, then fuzzes it for `seconds` (one process, one
/// job). A crash, hang or out-of-memory input fails, naming the saved input and the
/// commands that run it again.
pub fn run_target(bin: &Path, target: &str, seconds: u64, inputs: &Path) -> anyhow::Result<Stats> {
    let seeds = dir().join("seeds").join(target);
    let corpus = dir().join("corpus").join(target);
    let artifacts = dir().join("artifacts").join(target);
    let logs = dir().join("logs");
    let _ = fs::remove_dir_all(&seeds);
    for d in [&corpus, &artifacts, &logs] {
        fs::create_dir_all(d)?;
    }
    let mut seed = Command::new(bin.join(target));
    seed.env("HYPSTUB_FUZZ_INPUTS", inputs)
        .env("HYPSTUB_FUZZ_SEEDS", &seeds);
    run(&mut seed, true)?;

    let before: Vec<PathBuf> = listing(&artifacts)?;
    let log_path = logs.join(format!("{target}.log"));
    let log = fs::File::create(&log_path)?;
    let mut cmd = Command::new(bin.join(target));
    cmd.arg(&corpus)
        .arg(&seeds)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={}", max_len(target)))
        .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stdout(log.try_clone()?)
        .stderr(log);
    eprintln!("+ {} > {}", display_command(&cmd), log_path.display());
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", display_command(&cmd)))?;
    let elapsed = start.elapsed();
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let found: Vec<PathBuf> = listing(&artifacts)?
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        for line in tail.iter().rev() {
            println!("  {line}");
        }
        let again = display_command(&reproduce_command(bin, target, &found));
        bail!(
            "fuzz target {target} failed ({status}); the input: {}; log: {}\n  reproduce: \
             cargo xtask fuzz --target {target} {}\n  or, once built: {again}",
            if found.is_empty() {
                "none saved".to_owned()
            } else {
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            log_path.display(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    Ok(parse_log(target, &text, elapsed))
}

fn listing(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    v.sort();
    Ok(v)
}

/// Clippy over the fuzz workspace (outside the main one, so the main clippy step does not
/// see it), with the build's flags and target directory so that the two share their build
/// scripts' output (libFuzzer's C++).
fn clippy() -> anyhow::Result<()> {
    let mut cmd = fuzz_cargo("clippy", &host()?);
    cmd.args(["--all-targets", "--", "-D", "warnings"]);
    run(&mut cmd, false)
}

/// `cargo xtask fuzz`: with `inputs` given, runs them once through the (one) target;
/// otherwise checks the fuzz workspace with rustfmt and clippy, builds, gathers the outside inputs and fuzzes each target (or only `only`) for
/// `seconds`, printing one line of figures per target.
pub fn fuzz(
    qemu: &Qemu,
    seconds: u64,
    only: Option<&str>,
    inputs: &[PathBuf],
) -> anyhow::Result<Vec<Stats>> {
    if let Some(t) = only.filter(|t| !TARGETS.contains(t)) {
        bail!("unknown fuzz target {t} (known: {})", TARGETS.join(", "));
    }
    run(
        cargo().args(["fmt", "--manifest-path", MANIFEST, "--", "--check"]),
        false,
    )?;
    clippy()?;
    let bin = build()?;
    if !inputs.is_empty() {
        let Some(target) = only else {
            bail!("give --target with the inputs to run");
        };
        run(&mut reproduce_command(&bin, target, inputs), false)?;
        return Ok(Vec::new());
    }
    let gathered = dir().join("inputs");
    gather_inputs(qemu, &gathered)?;
    let mut all = Vec::new();
    for target in TARGETS.iter().filter(|t| only.is_none_or(|o| o == **t)) {
        let stats = run_target(&bin, target, seconds, &gathered)?;
        println!("fuzz: {stats}");
        all.push(stats);
    }
    println!("fuzz: {} targets, {seconds} s each, no crash", all.len());
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace_root;

    #[test]
    fn reads_libfuzzer_figures() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 94 ft: 150 corp: 9/1200b exec/s: 0 rss: 30Mb\n\
                   #4893242\tDONE   cov: 294 ft: 1690 corp: 39/6048b lim: 4096 exec/s: 305827 rss: 28Mb\n\
                   Done 4893242 runs in 16 second(s)\nstat::number_of_executed_units: 4893242\n\
                   stat::average_exec_per_sec:     305827\n";
        let s = parse_log("args", log, Duration::from_secs(16));
        assert_eq!((s.execs, s.cov, s.ft, s.corpus), (4_893_242, 294, 1690, 39));
        assert!(s.to_string().starts_with("args"), "{s}");
    }

    #[test]
    fn every_target_has_a_file_and_a_bin() {
        let manifest = fs::read_to_string(workspace_root().join(MANIFEST)).unwrap();
        for t in TARGETS {
            assert!(workspace_root()
                .join(format!("fuzz/fuzz_targets/{t}.rs"))
                .is_file());
            assert!(manifest.contains(&format!("name = \"{t}\"")), "{t}");
        }
    }

    #[test]
    fn reproduction_runs_the_binary_on_the_input() {
        let cmd = reproduce_command(Path::new("/b"), "dt", &[PathBuf::from("/a/crash-1")]);
        assert_eq!(display_command(&cmd), "/b/dt /a/crash-1");
    }
}
