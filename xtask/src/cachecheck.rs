//! `cargo xtask cachecheck`: boots hypstub on QEMU virt under the cache-model plugin
//! (`tools/cachecheck`, docs/cachecheck.md) and fails on any violation in hypstub's code.
//!
//! QEMU's TCG has no caches, so no ordinary test can fail when hypstub forgets a clean or
//! an invalidate; the plugin models a write-back data cache and the instruction cache and
//! reports the accesses that would read or lose the wrong data on hardware. Each run
//! prints the plugin's summary line and the time against the same run without the
//! plugin; a test-only firmware variant with a clean left out must be flagged.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::assets::LinuxAssets;
use crate::linux;
use crate::qemu::Qemu;
use crate::runner::{Cpu, QemuRun};
use crate::{display_command, target_dir, workspace_root};

/// The plugin crate, outside the firmware workspace.
pub const PLUGIN_MANIFEST: &str = "tools/cachecheck/Cargo.toml";

/// hypstub's code on QEMU virt: the flash image and the RAM below the first payload
/// (the DTB area, the stub's RAM, the EL1 stage). The engine's control page, wherever the
/// plan puts it, is added by the plugin itself (its `HVC_SOFT_RESTART` target).
pub const OURS: &str = "0x0-0x8000000:0x40000000-0x40200000";

/// The first line Linux prints on its console.
pub const LINUX_FIRST_LINE: &str = "Booting Linux on physical CPU";

/// The summary line's prefix.
const SUMMARY_TAIL: &str = " lines tracked, ";

/// The plugin's own target directory, `<target>/cachecheck`.
pub fn plugin_target_dir() -> PathBuf {
    target_dir().join("cachecheck")
}

/// Builds the plugin (`cargo build --release --manifest-path tools/cachecheck/Cargo.toml`)
/// and returns the shared library's path.
///
/// # Errors
/// The build fails.
pub fn build_plugin(quiet: bool) -> anyhow::Result<PathBuf> {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root())
        .env_remove("CARGO_TARGET_DIR")
        .args(["build", "--release", "--manifest-path", PLUGIN_MANIFEST])
        .arg("--target-dir")
        .arg(plugin_target_dir());
    if quiet {
        cmd.arg("--quiet");
    }
    crate::run(&mut cmd, quiet)?;
    Ok(plugin_target_dir().join("release/libcachecheck.so"))
}

/// The plugin's summary: `<lines> lines tracked, <ops> maintenance ops, <violations>
/// violations (<outside> outside hypstub)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Lines the model held state for.
    pub lines: u64,
    /// Maintenance operations seen.
    pub ops: u64,
    /// Every violation.
    pub violations: u64,
    /// Those outside hypstub's code.
    pub outside: u64,
}

impl Summary {
    /// Violations in hypstub's code.
    pub fn ours(&self) -> u64 {
        self.violations - self.outside
    }

    /// Reads the summary line from the plugin's log.
    pub fn parse(log: &str) -> Option<Summary> {
        let line = log
            .lines()
            .rev()
            .find(|l| l.starts_with("cachecheck: ") && l.contains(SUMMARY_TAIL))?;
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().ok())
            .collect::<Option<_>>()?;
        match nums[..] {
            [lines, ops, violations, outside] if outside <= violations => Some(Summary {
                lines,
                ops,
                violations,
                outside,
            }),
            _ => None,
        }
    }
}

/// Plugin options for a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lines start not cached.
    Default,
    /// `possibly-cached=on`: lines start clean but present.
    PossiblyCached,
}

impl Mode {
    /// Both modes.
    pub const ALL: [Mode; 2] = [Mode::Default, Mode::PossiblyCached];

    /// Its name in the output.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::PossiblyCached => "possibly-cached=on",
        }
    }

    fn option(self) -> &'static str {
        match self {
            Mode::Default => "",
            Mode::PossiblyCached => ",possibly-cached=on",
        }
    }
}

/// One boot to check.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name in the output.
    pub name: String,
    /// The machine, without the plugin.
    pub run: QemuRun,
    /// The physical RAM, for the plugin's `ram=` (VA = PA is assumed only there).
    pub ram: (u64, u64),
    /// Stop (with SIGTERM, so the plugin still prints its summary) once the console
    /// shows this; `None`: run until the guest powers off.
    pub stop_at: Option<String>,
    /// The console must show this for the boot to count.
    pub expect: String,
    /// A mutant: the modes in which the plugin must flag a violation in hypstub's code
    /// (in the others it may not be detectable). `None`: not a mutant, no violation in
    /// hypstub's code is allowed.
    pub mutant: Option<&'static [Mode]>,
}

/// RAM of a `-m` size on QEMU virt (from 0x4000_0000).
pub fn virt_ram(mem: &str) -> (u64, u64) {
    let (num, unit) = mem.split_at(mem.len() - 1);
    let bytes = match (num.parse::<u64>(), unit) {
        (Ok(n), "G") => n << 30,
        (Ok(n), "M") => n << 20,
        _ => 512 << 20,
    };
    (0x4000_0000, 0x4000_0000 + bytes)
}

/// The built-in demo (no `-kernel`) on `firmware`.
pub fn demo(name: &str, firmware: &Path, mutant: Option<&'static [Mode]>) -> Case {
    let run = QemuRun::new(firmware).cpu(Cpu::CortexA72);
    Case {
        name: name.into(),
        ram: virt_ram(&run.mem),
        run,
        stop_at: None,
        expect: "demo payload: entered at EL2".into(),
        mutant,
    }
}

/// Debian's kernel and the test initramfs through hypstub at `el`, 4 CPUs; to the
/// kernel's first console line with `quick`, else until `/init` powers off.
pub fn linux_case(firmware: &Path, assets: &LinuxAssets, el: linux::El, quick: bool) -> Case {
    let append = linux::command_line([el.option()]);
    let run = linux::through_hypstub(firmware, assets, &append)
        .smp(4)
        .cpu(Cpu::CortexA72);
    let (stop_at, expect) = if quick {
        (Some(LINUX_FIRST_LINE.to_string()), LINUX_FIRST_LINE)
    } else {
        (None, linux::MARKER_DONE)
    };
    Case {
        name: format!("linux-el{el}"),
        ram: virt_ram(&run.mem),
        run,
        stop_at,
        expect: expect.into(),
        mutant: None,
    }
}

/// One run's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// QEMU's exit status.
    pub status: ExitStatus,
    /// The serial console.
    pub console: String,
    /// The plugin's log (empty without the plugin).
    pub plugin_log: String,
    /// Wall time to exit.
    pub elapsed: Duration,
}

/// Runs `run` with its console captured until it exits, or until `stop_at` appears (then
/// SIGTERM: QEMU exits normally and runs the plugin's at-exit callback), killing it after
/// `timeout`.
///
/// # Errors
/// QEMU cannot be started, or the timeout passed.
pub fn run_to(
    qemu: &Qemu,
    run: &QemuRun,
    stop_at: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<(ExitStatus, String, Duration)> {
    let mut cmd = run.captured_command(qemu);
    let shown = display_command(&cmd);
    eprintln!("+ {shown}");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))?;
    let out = child.stdout.take().context("QEMU's stdout")?;
    let (tx, rx) = mpsc::channel();
    let marker = stop_at.map(str::to_owned);
    let reader = thread::spawn(move || {
        let mut console = String::new();
        let mut signalled = false;
        for line in BufReader::new(out).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            console.push_str(&line);
            console.push('\n');
            if !signalled && marker.as_deref().is_some_and(|m| line.contains(m)) {
                signalled = true;
                let _ = tx.send(());
            }
        }
        console
    });
    let pid = child.id().to_string();
    let mut terminated = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !terminated && rx.try_recv().is_ok() {
            terminated = true;
            Command::new("kill").args(["-TERM", &pid]).status()?;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{shown}` did not finish within {} s", timeout.as_secs());
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let console = reader.join().unwrap_or_default();
    Ok((status, console, elapsed))
}

/// Boots `case` with the plugin in `mode` (log in `log_dir`), and once without it for the
/// slowdown.
///
/// # Errors
/// A run cannot be started or times out.
pub fn check(
    qemu: &Qemu,
    plugin: &Path,
    case: &Case,
    mode: Mode,
    log_dir: &Path,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let log = log_dir.join(format!(
        "{}-{}.log",
        case.name,
        mode.name().replace('=', "-")
    ));
    let _ = fs::remove_file(&log);
    let mut spec = OsString::from(plugin);
    spec.push(format!(
        ",ours={OURS},ram={:#x}-{:#x}{}",
        case.ram.0,
        case.ram.1,
        mode.option()
    ));
    let run = case
        .run
        .clone()
        .arg("-plugin")
        .arg(spec)
        .arg("-d")
        .arg("plugin")
        .arg("-D")
        .arg(&log);
    let (status, console, elapsed) = run_to(qemu, &run, case.stop_at.as_deref(), timeout)?;
    let plugin_log = fs::read_to_string(&log).unwrap_or_default();
    Ok(Outcome {
        status,
        console,
        plugin_log,
        elapsed,
    })
}

/// The test-only firmware variants booted with the demo, and the modes in which each
/// must be flagged.
pub const MUTANTS: [(crate::image::Variant, &[Mode]); 6] = [
    // The engine reads the argument block with its MMU off: kind 1.
    (crate::image::Variant::SkipArgsClean, &Mode::ALL),
    // The payload runs from lines still dirty in the cache: kind 1 (or 4).
    (crate::image::Variant::SkipDestClean, &Mode::ALL),
    // Only a line that may be cached before the MMU goes on can be stale: kind 2.
    (
        crate::image::Variant::SkipEl1Invalidate,
        &[Mode::PossiblyCached],
    ),
    // QEMU reads a descriptor still dirty in the cache (kind 1), then writes its control
    // word over the dirty line (kind 3).
    (crate::image::Variant::SkipFwCfgDescClean, &Mode::ALL),
    // fw_cfg DMA into a firmware buffer whose lines are dirty: kind 3.
    (crate::image::Variant::SkipFwCfgDestClean, &Mode::ALL),
    // The engine runs its page, written as data, with its I-cache on: kind 4 (the
    // Cortex-A72 has CTR_EL0.DIC = 0).
    (crate::image::Variant::SkipIcacheInvalidate, &Mode::ALL),
];

/// What `cargo xtask cachecheck` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Linux boots stop at the kernel's first console line instead of running to the
    /// initramfs's power-off.
    pub quick: bool,
    /// Boot Debian's kernel (at EL2 and at EL1) besides the demo.
    pub linux: bool,
    /// The modes to run each boot in.
    pub modes: &'static [Mode],
}

/// Per-run timeout (the plugin slows a Linux boot about 5 times).
pub const TIMEOUT: Duration = Duration::from_secs(600);

/// `cargo xtask cachecheck`: builds the plugin, the firmware and the mutants, boots each
/// case without the plugin (for the time) and under it in every mode; prints the
/// summaries and a table. `Ok(false)` when a boot failed, hypstub's code has a violation,
/// or a mutant was not flagged.
///
/// # Errors
/// A build fails, QEMU cannot be found or started, or a run times out.
pub fn run_all(qemu: &Qemu, plan: Plan) -> anyhow::Result<bool> {
    use crate::image::{self, Board, BuildOptions};
    let plugin = build_plugin(false)?;
    let opts = BuildOptions::default();
    let firmware = image::build_firmware(Board::QemuVirt, opts)?;
    let mut cases = vec![demo("demo", &firmware.image, None)];
    for (variant, modes) in MUTANTS {
        let built = image::build_firmware_variant(Board::QemuVirt, variant, opts)?;
        cases.push(demo(
            &format!("mutant-{variant}"),
            &built.image,
            Some(modes),
        ));
    }
    if plan.linux {
        let assets = crate::assets::ensure(crate::assets::Fetch::IfMissing)?;
        for el in [linux::El::El2, linux::El::El1] {
            cases.push(linux_case(&firmware.image, &assets, el, plan.quick));
        }
    }
    let log_dir = target_dir().join("hypstub/cachecheck");
    let mut rows = Vec::new();
    let mut ok = true;
    for case in &cases {
        let (status, console, plain) = run_to(qemu, &case.run, case.stop_at.as_deref(), TIMEOUT)?;
        if !status.success() || !console.contains(&case.expect) {
            println!(
                "cachecheck: {}: the boot without the plugin failed ({status}, `{}` {})",
                case.name,
                case.expect,
                if console.contains(&case.expect) {
                    "seen"
                } else {
                    "not seen"
                }
            );
            ok = false;
            continue;
        }
        for &mode in plan.modes {
            let out = check(qemu, &plugin, case, mode, &log_dir, TIMEOUT)?;
            let label = format!("{} [{}]", case.name, mode.name());
            for line in out
                .plugin_log
                .lines()
                .filter(|l| l.starts_with("cachecheck: violation:"))
            {
                println!("{label}: {line}");
            }
            let booted = out.status.success() && out.console.contains(&case.expect);
            let verdict = match Summary::parse(&out.plugin_log) {
                None => {
                    println!("{label}: the plugin printed no summary");
                    ok = false;
                    continue;
                }
                Some(summary) => {
                    let ratio = out.elapsed.as_secs_f64() / plain.as_secs_f64().max(1e-3);
                    println!(
                        "{label}: cachecheck: {} lines tracked, {} maintenance ops, {} violations ({} outside hypstub); {:.2} s, {:.2} s without the plugin (x{ratio:.1})",
                        summary.lines,
                        summary.ops,
                        summary.violations,
                        summary.outside,
                        out.elapsed.as_secs_f64(),
                        plain.as_secs_f64()
                    );
                    let must_flag = case.mutant.map(|modes| modes.contains(&mode));
                    let verdict = match (booted, must_flag, summary.ours()) {
                        (false, _, _) => "FAIL (did not boot)",
                        (true, None, 0) => "ok",
                        (true, None, _) => "FAIL (violations in hypstub)",
                        (true, Some(true), 0) => "FAIL (mutant not flagged)",
                        (true, Some(false), 0) => "ok (mutant not detectable in this mode)",
                        (true, Some(_), _) => "ok (mutant flagged)",
                    };
                    rows.push((label, summary, out.elapsed, plain, verdict));
                    verdict
                }
            };
            if verdict.starts_with("FAIL") {
                println!(
                    "{}: {verdict}; plugin log in {}",
                    case.name,
                    log_dir.display()
                );
                ok = false;
            }
        }
    }
    println!("\n| run | lines tracked | maintenance ops | violations (outside hypstub) | time | without plugin | result |");
    println!("|---|---|---|---|---|---|---|");
    for (label, s, t, t0, verdict) in &rows {
        println!(
            "| {label} | {} | {} | {} ({}) | {:.2} s | {:.2} s | {verdict} |",
            s.lines,
            s.ops,
            s.violations,
            s.outside,
            t.as_secs_f64(),
            t0.as_secs_f64()
        );
    }
    println!("cachecheck: {}", if ok { "all passed" } else { "FAILED" });
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary() {
        let log = "cachecheck: violation: kind 1 ...\n\
                   cachecheck: options possibly-cached=off ...\n\
                   cachecheck: 34884 lines tracked, 64467 maintenance ops, 3 violations (1 outside hypstub)\n";
        let s = Summary::parse(log).unwrap();
        assert_eq!(
            s,
            Summary {
                lines: 34884,
                ops: 64467,
                violations: 3,
                outside: 1
            }
        );
        assert_eq!(s.ours(), 2);
        assert_eq!(Summary::parse("nothing"), None);
    }

    #[test]
    fn ram() {
        assert_eq!(virt_ram("1G"), (0x4000_0000, 0x8000_0000));
        assert_eq!(virt_ram("512M"), (0x4000_0000, 0x6000_0000));
    }
}
