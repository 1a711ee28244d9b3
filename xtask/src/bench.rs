//! `cargo xtask bench`: how fast the relocation engine copies, measured on QEMU `virt`.
//!
//! For each payload size (16, 64 and 256 MiB unless told otherwise) and each copy mode
//! (`hypstub.copy=mmu` and `nommu`), the firmware boots a bench payload ([`payload`])
//! once under `-icount shift=0` and [`Options::runs`] times without it. The engine
//! reports the counter ticks it spent copying ([`console`]):
//!
//! - under `-icount shift=0` QEMU's guest clock advances exactly 1 ns per instruction, so
//!   the ticks count instructions (K ticks at F Hz = K * 1e9 / F instructions), the same
//!   on every host and every run: the guest figures (instructions per byte, guest
//!   microseconds, guest MiB/s) are repeatable and comparable between machines;
//! - without icount the counter follows the host's clock, so those runs give the
//!   wall-clock MiB/s of this host's QEMU; they vary from run to run, hence the median.
//!
//! A run counts only if it booted: QEMU exits with status 0, the payload printed
//! [`payload::MARKER`], the engine's digests matched, and both reloc lines are there and
//! say the requested copy mode. Anything else fails the bench with the whole log.
//!
//! The second part, [`boot`], times a whole Linux boot through hypstub against QEMU's own
//! direct boot of the same kernel and initramfs.

pub mod boot;
pub mod console;
pub mod payload;
pub mod pi;
pub mod size;
pub mod uboot;

use std::fmt::{self, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use self::console::{CopyMmu, EngineLine, PlannerLine};
use crate::qemu::Qemu;
use crate::runner::{Capture, QemuRun, RunOutcome};

/// Payload sizes measured when `--sizes` is not given, in MiB.
pub const DEFAULT_SIZES_MIB: [u64; 3] = [16, 64, 256];

/// Wall-clock runs per case when `--runs` is not given.
pub const DEFAULT_RUNS: u32 = 3;

/// The goal for the MMU-on copy, in guest instructions per byte copied.
pub const TARGET_INSTRUCTIONS_PER_BYTE: f64 = 0.07;

/// RAM of the benchmark machine: room for a 256 MiB payload, its staging copy and the
/// firmware.
pub const MEM: &str = "1G";

/// How long one boot may take before QEMU is killed (a 256 MiB payload under icount
/// takes a few seconds on a 2-core machine; this is only a guard against hangs).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// What the engine prints once the digests have been checked.
pub const DIGESTS_MATCH: &str = "reloc: digests of every destination range match";

/// A copy mode, as `hypstub.copy=` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// `hypstub.copy=mmu`: EL2 MMU and caches on while copying.
    Mmu,
    /// `hypstub.copy=nommu`: MMU off.
    NoMmu,
}

impl CopyMode {
    /// Both, in the order measured.
    pub const ALL: [CopyMode; 2] = [CopyMode::Mmu, CopyMode::NoMmu];

    /// The option's value.
    pub fn option(self) -> &'static str {
        match self {
            CopyMode::Mmu => "mmu",
            CopyMode::NoMmu => "nommu",
        }
    }

    fn console(self) -> CopyMmu {
        match self {
            CopyMode::Mmu => CopyMmu::On,
            CopyMode::NoMmu => CopyMmu::Off,
        }
    }
}

impl fmt::Display for CopyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.option())
    }
}

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Payload sizes in MiB.
    pub sizes_mib: Vec<u64>,
    /// Wall-clock runs per case (at least 1).
    pub runs: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sizes_mib: DEFAULT_SIZES_MIB.to_vec(),
            runs: DEFAULT_RUNS,
        }
    }
}

/// Reads one `--sizes` entry: MiB, 1 to 1024 (`256`, `256M` or `256MiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let s = s
        .strip_suffix("MiB")
        .or_else(|| s.strip_suffix('M'))
        .unwrap_or(s);
    match s.parse::<u64>() {
        Ok(mib @ 1..=1024) => Ok(mib),
        _ => Err(format!(
            "`{text}` is not a payload size in MiB (1 to 1024), as in --sizes 16,64,256"
        )),
    }
}

/// One measured case: a payload size and a copy mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Payload size in MiB.
    pub size_mib: u64,
    /// Copy mode.
    pub mode: CopyMode,
    /// The planner's line (from the icount run; the plan does not depend on timing).
    pub planner: PlannerLine,
    /// The engine's line under `-icount shift=0`.
    pub icount: EngineLine,
    /// The engine's lines of the wall-clock runs.
    pub wall: Vec<EngineLine>,
}

impl Case {
    /// Guest instructions per byte copied (icount).
    pub fn instructions_per_byte(&self) -> f64 {
        self.icount.guest_nanos() / self.icount.bytes as f64
    }

    /// Guest time spent copying in microseconds (icount: 1 ns per instruction).
    pub fn icount_micros(&self) -> f64 {
        self.icount.guest_nanos() / 1e3
    }

    /// Guest MiB/s (icount).
    pub fn icount_mib_per_s(&self) -> f64 {
        self.icount.mib_per_second()
    }

    /// Wall-clock MiB/s of each run.
    pub fn wall_mib_per_s(&self) -> Vec<f64> {
        self.wall.iter().map(EngineLine::mib_per_second).collect()
    }

    /// The median of [`Case::wall_mib_per_s`].
    pub fn wall_median(&self) -> f64 {
        median(&self.wall_mib_per_s())
    }

    /// The block printed as the case finishes.
    pub fn block(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} MiB payload, hypstub.copy={} ({}):",
            self.size_mib,
            self.mode,
            match self.mode {
                CopyMode::Mmu => "EL2 MMU and caches on",
                CopyMode::NoMmu => "MMU off",
            }
        );
        let rows: [(&str, String); 8] = [
            ("bytes copied", self.icount.bytes.to_string()),
            (
                "guest instructions per byte (icount)",
                format!("{:.4}", self.instructions_per_byte()),
            ),
            (
                "guest copy time (icount)",
                format!("{:.0} us", self.icount_micros()),
            ),
            ("MiB/s (icount)", format!("{:.0}", self.icount_mib_per_s())),
            (
                "MiB/s (wall clock, median)",
                format!(
                    "{:.0}  (runs: {})",
                    self.wall_median(),
                    joined(&self.wall_mib_per_s(), 0)
                ),
            ),
            ("page-table pages", self.planner.table_pages.to_string()),
            ("staging pages", self.planner.staged_pages.to_string()),
            ("list pages", self.planner.list_pages.to_string()),
        ];
        for (name, value) in rows {
            let _ = writeln!(s, "  {name:<38} {value}");
        }
        s
    }
}

/// `values` with `decimals` decimals each, separated by `, `.
fn joined(values: &[f64], decimals: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The median of `values` (the mean of the middle two for an even count; 0 if empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Every case measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// In the order measured.
    pub cases: Vec<Case>,
}

impl Report {
    /// One row per case.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| size | copy | bytes copied | guest instr/byte (icount) | guest copy time (icount) | MiB/s (icount) | MiB/s (wall, median) | page-table pages | staging pages | list pages |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for c in &self.cases {
            let _ = writeln!(
                s,
                "| {} MiB | {} | {} | {:.4} | {:.0} us | {:.0} | {:.0} | {} | {} | {} |",
                c.size_mib,
                c.mode,
                c.icount.bytes,
                c.instructions_per_byte(),
                c.icount_micros(),
                c.icount_mib_per_s(),
                c.wall_median(),
                c.planner.table_pages,
                c.planner.staged_pages,
                c.planner.list_pages
            );
        }
        s
    }

    /// The worst MMU-on figure, with its size: `(instructions per byte, MiB)`.
    pub fn worst_mmu_on(&self) -> Option<(f64, u64)> {
        self.cases
            .iter()
            .filter(|c| c.mode == CopyMode::Mmu)
            .map(|c| (c.instructions_per_byte(), c.size_mib))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// The target line: `target: <= 0.07 guest instructions per byte with the MMU on:
    /// PASS|MISS (...)`.
    pub fn target_line(&self) -> String {
        let head = format!(
            "target: <= {TARGET_INSTRUCTIONS_PER_BYTE} guest instructions per byte with the MMU on"
        );
        match self.worst_mmu_on() {
            Some((worst, mib)) => {
                let verdict = if worst <= TARGET_INSTRUCTIONS_PER_BYTE {
                    "PASS"
                } else {
                    "MISS"
                };
                format!("{head}: {verdict} (worst {worst:.4} at {mib} MiB)")
            }
            None => format!("{head}: not measured (no MMU-on case)"),
        }
    }

    /// The EL2 identity map covers all RAM, not the payload, so its size must not depend
    /// on the payload's: checks that every size needed the same number of page-table pages
    /// (per copy mode) and describes the result.
    pub fn table_pages_check(&self) -> Result<String, String> {
        let mut lines = Vec::new();
        let mut ok = true;
        for mode in CopyMode::ALL {
            let counts: Vec<(u64, u64)> = self
                .cases
                .iter()
                .filter(|c| c.mode == mode)
                .map(|c| (c.size_mib, c.planner.table_pages))
                .collect();
            let Some(&(_, first)) = counts.first() else {
                continue;
            };
            if counts.iter().all(|&(_, n)| n == first) {
                lines.push(format!(
                    "page-table pages (copy={mode}): {first} for every size: ok"
                ));
            } else {
                ok = false;
                let each = counts
                    .iter()
                    .map(|(mib, n)| format!("{n} at {mib} MiB"))
                    .collect::<Vec<_>>()
                    .join(", ");
                lines.push(format!(
                    "page-table pages (copy={mode}) differ between sizes: {each}"
                ));
            }
        }
        let text = lines.join("\n");
        if ok {
            Ok(text)
        } else {
            Err(text)
        }
    }
}

/// The machine the figures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Logical CPUs available (what `nproc` prints).
    pub nproc: usize,
    /// The CPU model from /proc/cpuinfo, when there is one.
    pub cpu: Option<String>,
    /// QEMU's version.
    pub qemu: String,
}

impl Host {
    /// Describes this host and `qemu`.
    pub fn probe(qemu: &Qemu) -> Host {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            });
        Host {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            qemu: qemu.version.to_string(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host: nproc {}, {}; QEMU {}",
            self.nproc,
            self.cpu.as_deref().unwrap_or("CPU model unknown"),
            self.qemu
        )
    }
}

/// Measures every case of `opts` with the firmware `image` on `qemu`, printing each
/// case's block to stdout as it finishes and progress to stderr.
pub fn run(qemu: &Qemu, image: &Path, opts: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(opts.runs >= 1, "--runs must be at least 1");
    let mut report = Report::default();
    for &mib in &opts.sizes_mib {
        let payload =
            payload::ensure(mib).with_context(|| format!("writing the {mib} MiB bench payload"))?;
        for mode in CopyMode::ALL {
            let label = format!("{mib} MiB, copy={mode}");
            eprintln!("bench: {label}: icount run");
            let (planner, icount) = boot(qemu, image, &payload, mode, true)
                .with_context(|| format!("{label}, -icount shift=0"))?;
            let mut wall = Vec::new();
            for i in 1..=opts.runs {
                eprintln!("bench: {label}: wall-clock run {i} of {}", opts.runs);
                let (_, engine) = boot(qemu, image, &payload, mode, false)
                    .with_context(|| format!("{label}, wall-clock run {i}"))?;
                wall.push(engine);
            }
            let case = Case {
                size_mib: mib,
                mode,
                planner,
                icount,
                wall,
            };
            println!("{}", case.block());
            report.cases.push(case);
        }
    }
    Ok(report)
}

/// The QEMU machine of one bench run.
pub fn machine(image: &Path, payload: &Path, mode: CopyMode, icount: bool) -> QemuRun {
    let run = QemuRun::new(image)
        .mem(MEM)
        .kernel(payload)
        // Staged, so that the engine copies the whole payload (loaded in place it would
        // copy only the DTB).
        .append(format!("hypstub.copy={mode} hypstub.inplace=off"));
    if icount {
        run.arg("-icount").arg("shift=0")
    } else {
        run
    }
}

/// A bench run that did not boot as it should: `what` went wrong, then the command, how
/// QEMU ended, the serial log and QEMU's stderr.
fn failed_run(what: &str, out: &RunOutcome) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}\ncommand: {}\nQEMU ended with {} after {:.1} s\n--- serial log ---\n{}\n\
         --- QEMU stderr ---\n{}\n--- end ---",
        out.command,
        out.status,
        out.elapsed.as_secs_f32(),
        out.log,
        out.stderr
    )
}

/// One boot; fails, with the log, unless it booted the payload as described in the
/// module documentation.
fn boot(
    qemu: &Qemu,
    image: &Path,
    payload: &Path,
    mode: CopyMode,
    icount: bool,
) -> anyhow::Result<(PlannerLine, EngineLine)> {
    let run = machine(image, payload, mode, icount);
    let capture = Capture {
        timeout: RUN_TIMEOUT,
        stop_at: None,
        time_of: Vec::new(),
        echo_prefix: None,
    };
    let out = run.run_captured(qemu, &capture)?;
    let fail = |what: &str| failed_run(what, &out);
    if !out.status.success() {
        return Err(fail("QEMU did not exit with status 0"));
    }
    if !out.log.contains(payload::MARKER) {
        return Err(fail(&format!(
            "the payload never ran (no {:?})",
            payload::MARKER
        )));
    }
    if !out.log.contains(DIGESTS_MATCH) {
        return Err(fail(&format!("no {DIGESTS_MATCH:?}")));
    }
    let planner = console::planner_line(&out.log)
        .ok_or_else(|| fail("no planner line (`reloc: ... bytes staged in ...`)"))?;
    let engine = console::engine_line(&out.log)
        .ok_or_else(|| fail("no engine line (`reloc: copied ...`)"))?;
    if planner.mmu != mode.console() || engine.mmu != mode.console() {
        return Err(fail(&format!(
            "asked for hypstub.copy={mode}, but the reloc lines say otherwise"
        )));
    }
    Ok((planner, engine))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(bytes: u64, ticks: u64, freq_hz: u64, mmu: CopyMmu) -> EngineLine {
        EngineLine {
            bytes,
            pages: bytes / 4096,
            ticks,
            freq_hz,
            micros: 0,
            mib_per_s: 0,
            mmu,
        }
    }

    fn case(mib: u64, mode: CopyMode, ticks: u64, tables: u64) -> Case {
        let bytes = mib << 20;
        Case {
            size_mib: mib,
            mode,
            planner: PlannerLine {
                staged_bytes: bytes,
                staged_pages: bytes / 4096,
                list_pages: 1,
                table_pages: tables,
                mmu: mode.console(),
            },
            icount: engine(bytes, ticks, 1_000_000_000, mode.console()),
            wall: vec![
                engine(bytes, 3_000_000, 1_000_000_000, mode.console()),
                engine(bytes, 1_000_000, 1_000_000_000, mode.console()),
                engine(bytes, 2_000_000, 1_000_000_000, mode.console()),
            ],
        }
    }

    #[test]
    fn figures() {
        // 16 MiB in 1.4 M instructions: 0.0834 per byte, 1400 us.
        let c = case(16, CopyMode::Mmu, 1_400_000, 5);
        assert!((c.instructions_per_byte() - 1_400_000.0 / 16_777_216.0).abs() < 1e-12);
        assert!((c.icount_micros() - 1400.0).abs() < 1e-9);
        // The median run took 2 ms: 8000 MiB/s.
        assert!((c.wall_median() - 8000.0).abs() < 1e-9);
        let block = c.block();
        assert!(
            block.contains("guest instructions per byte (icount)   0.0834"),
            "{block}"
        );
        assert!(block.contains("8000  (runs: 5333, 16000, 8000)"), "{block}");
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn target_and_table_checks() {
        let mut r = Report {
            cases: vec![
                case(16, CopyMode::Mmu, 1_150_000, 5),
                case(16, CopyMode::NoMmu, 9_000_000, 0),
                case(64, CopyMode::Mmu, 4_600_000, 5),
                case(64, CopyMode::NoMmu, 36_000_000, 0),
            ],
        };
        assert_eq!(
            r.target_line(),
            "target: <= 0.07 guest instructions per byte with the MMU on: PASS (worst 0.0685 at 64 MiB)"
        );
        assert!(r.table_pages_check().is_ok());
        r.cases.push(case(256, CopyMode::Mmu, 256 << 20, 6));
        assert!(r.target_line().contains("MISS (worst 1.0000 at 256 MiB)"));
        let err = r.table_pages_check().unwrap_err();
        assert!(
            err.contains("5 at 16 MiB, 5 at 64 MiB, 6 at 256 MiB"),
            "{err}"
        );
        assert!(r.table().lines().count() == 2 + 5);
    }

    #[test]
    fn sizes_option() {
        assert_eq!(parse_size("256"), Ok(256));
        assert_eq!(parse_size(" 16M"), Ok(16));
        assert_eq!(parse_size("64MiB"), Ok(64));
        assert!(parse_size("0").is_err());
        assert!(parse_size("2048").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn bench_command_line() {
        let run = machine(
            Path::new("/fw.bin"),
            Path::new("/p.bin"),
            CopyMode::NoMmu,
            true,
        );
        let args: Vec<String> = run
            .machine_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "-M virt,virtualization=on,gic-version=3 -cpu max -smp 1 -m 1G -bios /fw.bin \
             -kernel /p.bin -append hypstub.copy=nommu hypstub.inplace=off -icount shift=0"
        );
    }
}
