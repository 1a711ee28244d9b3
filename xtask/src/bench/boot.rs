//! `cargo xtask bench --boot`: how much hypstub adds to a Linux boot.
//!
//! The same kernel and initramfs ([`crate::assets`]) boot on the same machine,
//! `-M virt,virtualization=on,gic-version=3 -cpu max -smp 4 -m 1G`, two ways:
//!
//! - **hypstub**: `-bios <firmware> -kernel -initrd -append`: the firmware reads the
//!   files through fw_cfg, relocates them with the engine, checks their digests and
//!   enters the kernel at EL2;
//! - **direct**: no `-bios`: QEMU loads the files into RAM itself and enters the kernel
//!   at EL2 (hw/arm/boot.c), the fastest a firmware could hope to be.
//!
//! Each run is timed on the host, from spawning QEMU to the moment the serial console
//! delivers `INITRAMFS MARKER DONE` (QEMU is then killed, so the power-off is not
//! counted). One untimed warm-up boot of each comes first (it pulls the files into the
//! host's page cache); then the two alternate in pairs whose order flips every pair
//! (hypstub, direct, direct, hypstub, ...), so that a slow drift of the host's speed
//! weighs on both alike. The figures are the medians and their ratio; the target is a
//! ratio of at most [`TARGET_RATIO`].

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use super::{console, failed_run, joined, median, DIGESTS_MATCH};
use crate::assets::LinuxAssets;
use crate::linux::{self, MARKER_DONE};
use crate::qemu::Qemu;
use crate::runner::{Capture, QemuRun};

/// Timed runs of each kind when `--boot-runs` is not given.
pub const DEFAULT_RUNS: u32 = 5;

/// The goal: hypstub's boot takes at most this many times QEMU's direct boot.
pub const TARGET_RATIO: f64 = 1.05;

/// CPUs of the bench machine.
pub const SMP: u32 = 4;

/// How long one boot may take before QEMU is killed (a boot takes a few seconds; this is
/// only a guard against hangs).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// What the kernel says once every CPU is up, at EL2 both ways.
pub const ALL_AT_EL2: &str = "CPU: All CPU(s) started at EL2";

/// The start of hypstub's first console line (`hypstub 0.1.0 on qemu-virt`).
pub const BANNER: &str = "hypstub ";

/// The EL1 stage's last line: it hands the engine the argument block.
pub const HVC_LINE: &str = "reloc: HVC_SOFT_RESTART";

/// Where one hypstub run's own time went, on the host's clock, between its console lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    /// From the banner to [`HVC_LINE`]: the EL1 stage (options, DTB, reading the kernel
    /// and initrd through fw_cfg into the staging area, planning).
    pub el1_stage: Duration,
    /// From there to [`DIGESTS_MATCH`]: the engine, at EL2: its copy to the destinations
    /// and the digest check of every one (it prints both its lines at the end).
    pub engine: Duration,
}

impl Phases {
    /// From the banner to the hand-off.
    pub fn total(&self) -> Duration {
        self.el1_stage + self.engine
    }

    /// From the arrival times of [`BANNER`], [`HVC_LINE`] and [`DIGESTS_MATCH`]; `None`
    /// unless all came, in that order.
    fn from_times(times: &[Option<Duration>]) -> Option<Phases> {
        let [Some(banner), Some(hvc), Some(checked)] = times[..] else {
            return None;
        };
        Some(Phases {
            el1_stage: hvc.checked_sub(banner)?,
            engine: checked.checked_sub(hvc)?,
        })
    }
}

/// The kernel command line of both kinds of boot.
pub fn append() -> String {
    linux::command_line(["panic=-1"])
}

/// One way of booting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Through the hypstub firmware (`-bios`).
    Hypstub,
    /// QEMU's own direct kernel boot.
    Direct,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Hypstub => "hypstub",
            Kind::Direct => "direct",
        }
    }
}

/// The machine of one run.
pub fn machine(kind: Kind, firmware: &Path, assets: &LinuxAssets) -> QemuRun {
    let run = match kind {
        Kind::Hypstub => linux::through_hypstub(firmware, assets, &append()),
        Kind::Direct => linux::direct(assets, &append()),
    };
    run.smp(SMP)
}

/// The timed runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Through hypstub, in the order measured.
    pub hypstub: Vec<Duration>,
    /// QEMU's direct boot, in the order measured.
    pub direct: Vec<Duration>,
    /// Each hypstub run's own time, from its banner to the engine's last line before it
    /// jumps to the kernel ([`DIGESTS_MATCH`]), on the host's clock.
    pub firmware: Vec<Phases>,
    /// The relocation engine's line of each hypstub run (its own copy time).
    pub engine: Vec<console::EngineLine>,
}

fn seconds(runs: &[Duration]) -> Vec<f64> {
    runs.iter().map(Duration::as_secs_f64).collect()
}

impl Report {
    /// Median seconds through hypstub.
    pub fn hypstub_median(&self) -> f64 {
        median(&seconds(&self.hypstub))
    }

    /// Median seconds of the direct boot.
    pub fn direct_median(&self) -> f64 {
        median(&seconds(&self.direct))
    }

    /// hypstub's median over the direct boot's.
    pub fn ratio(&self) -> f64 {
        self.hypstub_median() / self.direct_median()
    }

    /// A table of both kinds.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| boot | median to `{MARKER_DONE}` | min | max | runs |");
        let _ = writeln!(s, "|---|---:|---:|---:|---|");
        for (name, runs) in [
            ("hypstub (`-bios`, Linux at EL2)", &self.hypstub),
            ("QEMU direct (no `-bios`)", &self.direct),
        ] {
            let secs = seconds(runs);
            let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = secs.iter().copied().fold(0.0, f64::max);
            let each = joined(&secs, 3);
            let _ = writeln!(
                s,
                "| {name} | {:.3} s | {min:.3} s | {max:.3} s | {each} |",
                median(&secs)
            );
        }
        s
    }

    /// `ratio hypstub/direct (medians): 1.014; target <= 1.05x: PASS (...)`.
    pub fn target_line(&self) -> String {
        let ratio = self.ratio();
        let verdict = if ratio <= TARGET_RATIO {
            "PASS"
        } else {
            "MISS"
        };
        format!(
            "ratio hypstub/direct (medians): {ratio:.3}; target <= {TARGET_RATIO}x: {verdict} \
             (hypstub adds {:+.0} ms)",
            (self.hypstub_median() - self.direct_median()) * 1e3
        )
    }

    /// Where hypstub's time goes, as medians of the hypstub runs (host clock): from its
    /// banner to the hand-off, split at its console lines.
    pub fn firmware_line(&self) -> Option<String> {
        let first = self.engine.first()?;
        let ms = |f: fn(&Phases) -> Duration| {
            let v: Vec<f64> = self
                .firmware
                .iter()
                .map(|p| f(p).as_secs_f64() * 1e3)
                .collect();
            median(&v)
        };
        let copy: Vec<f64> = self.engine.iter().map(|e| e.seconds() * 1e3).collect();
        Some(format!(
            "hypstub's own time, banner to hand-off (medians, host clock): {:.0} ms = EL1 \
             stage (fw_cfg reads, staging, planning) {:.0} ms + engine {:.0} ms (copy of {} \
             bytes {:.0} ms by its own counter, then the digest check)",
            ms(Phases::total),
            ms(|p| p.el1_stage),
            ms(|p| p.engine),
            first.bytes,
            median(&copy),
        ))
    }
}

/// Times `runs` boots of each kind (after one warm-up of each), printing progress to
/// stderr.
pub fn run(
    qemu: &Qemu,
    firmware: &Path,
    assets: &LinuxAssets,
    runs: u32,
) -> anyhow::Result<Report> {
    anyhow::ensure!(runs >= 1, "--boot-runs must be at least 1");
    for kind in [Kind::Hypstub, Kind::Direct] {
        eprintln!("bench: boot: warm-up, {}", kind.name());
        once(qemu, kind, firmware, assets).with_context(|| format!("warm-up, {}", kind.name()))?;
    }
    let mut report = Report::default();
    for pair in 0..runs {
        let order = if pair % 2 == 0 {
            [Kind::Hypstub, Kind::Direct]
        } else {
            [Kind::Direct, Kind::Hypstub]
        };
        for kind in order {
            let run = once(qemu, kind, firmware, assets)
                .with_context(|| format!("{} run {} of {runs}", kind.name(), pair + 1))?;
            let time = run.to_marker;
            report.engine.extend(run.engine);
            report.firmware.extend(run.firmware);
            eprintln!(
                "bench: boot: run {} of {runs}, {}: {:.3} s",
                pair + 1,
                kind.name(),
                time.as_secs_f64()
            );
            match kind {
                Kind::Hypstub => report.hypstub.push(time),
                Kind::Direct => report.direct.push(time),
            }
        }
    }
    Ok(report)
}

/// What one boot measured.
struct Run {
    /// From spawning QEMU to [`MARKER_DONE`].
    to_marker: Duration,
    /// Through hypstub: where its own time went.
    firmware: Option<Phases>,
    /// Through hypstub: the engine's line.
    engine: Option<console::EngineLine>,
}

/// One boot, to the marker; fails with the log unless the kernel started every CPU at
/// EL2 and `/init` got to its last line (and, through hypstub, the firmware printed its
/// banner, the engine's line and the digest check).
fn once(qemu: &Qemu, kind: Kind, firmware: &Path, assets: &LinuxAssets) -> anyhow::Result<Run> {
    let run = machine(kind, firmware, assets);
    let capture = Capture {
        timeout: RUN_TIMEOUT,
        stop_at: Some(MARKER_DONE.to_owned()),
        time_of: [BANNER, HVC_LINE, DIGESTS_MATCH]
            .map(str::to_owned)
            .to_vec(),
        echo_prefix: None,
    };
    let out = run.run_captured(qemu, &capture)?;
    let fail = |what: &str| failed_run(what, &out);
    let Some(to_marker) = out.marker_after else {
        return Err(fail(&format!("no {MARKER_DONE:?}")));
    };
    if !out.log.contains(ALL_AT_EL2) {
        return Err(fail(&format!("no {ALL_AT_EL2:?}")));
    }
    let engine = console::engine_line(&out.log);
    let firmware = Phases::from_times(&out.times);
    if engine.is_some() != (kind == Kind::Hypstub) || firmware.is_some() != engine.is_some() {
        return Err(fail(
            "the log does not match the kind of boot (hypstub's banner, reloc lines and \
             digest check, in order, only through hypstub)",
        ));
    }
    Ok(Run {
        to_marker,
        firmware,
        engine,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_and_verdict() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        let report = Report {
            hypstub: ms(&[3600, 3500, 3550]),
            direct: ms(&[3400, 3500, 3450]),
            firmware: [300, 200, 250]
                .map(|total| Phases {
                    el1_stage: Duration::from_millis(total - 100),
                    engine: Duration::from_millis(100),
                })
                .to_vec(),
            engine: Vec::new(),
        };
        assert_eq!(report.firmware_line(), None);
        assert!((report.hypstub_median() - 3.55).abs() < 1e-9);
        assert!((report.direct_median() - 3.45).abs() < 1e-9);
        let line = report.target_line();
        assert!(
            line.starts_with("ratio hypstub/direct (medians): 1.029;"),
            "{line}"
        );
        assert!(line.contains("PASS (hypstub adds +100 ms)"), "{line}");
        let table = report.table();
        assert!(
            table.contains("| 3.550 s | 3.500 s | 3.600 s | 3.600, 3.500, 3.550 |"),
            "{table}"
        );
        let times = |ms: [u64; 3]| ms.map(|m| Some(Duration::from_millis(m)));
        assert_eq!(
            Phases::from_times(&times([10, 210, 300])),
            Some(Phases {
                el1_stage: Duration::from_millis(200),
                engine: Duration::from_millis(90),
            })
        );
        assert_eq!(Phases::from_times(&times([10, 5, 300])), None);
        assert_eq!(Phases::from_times(&[None; 3]), None);
        let engine = |ms: u64| console::EngineLine {
            bytes: 34_816_000,
            pages: 8500,
            ticks: ms * 1_000_000,
            freq_hz: 1_000_000_000,
            micros: ms * 1000,
            mib_per_s: 0,
            mmu: console::CopyMmu::On,
        };
        let with_engine = Report {
            engine: vec![engine(40), engine(105), engine(37)],
            ..report
        };
        assert_eq!(
            with_engine.firmware_line().unwrap(),
            "hypstub's own time, banner to hand-off (medians, host clock): 250 ms = EL1 stage \
             (fw_cfg reads, staging, planning) 150 ms + engine 100 ms (copy of 34816000 bytes \
             40 ms by its own counter, then the digest check)"
        );
        let slow = Report {
            hypstub: ms(&[4000]),
            direct: ms(&[3000]),
            firmware: Vec::new(),
            engine: Vec::new(),
        };
        assert!(slow.target_line().contains("MISS"));
    }

    #[test]
    fn both_machines_are_the_same_but_for_the_firmware() {
        let assets = LinuxAssets {
            kernel: "/k".into(),
            initramfs: "/i".into(),
            busybox: "/b".into(),
            rpi4_dtb: None,
            records: Vec::new(),
        };
        let args = |kind| {
            machine(kind, Path::new("/fw.bin"), &assets)
                .machine_args()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            args(Kind::Hypstub),
            "-M virt,virtualization=on,gic-version=3 -cpu max -smp 4 -m 1G -bios /fw.bin \
             -kernel /k -initrd /i -append 'console=ttyAMA0 panic=-1'"
                .replace('\'', "")
        );
        assert_eq!(
            args(Kind::Direct),
            args(Kind::Hypstub).replace("-bios /fw.bin ", "")
        );
    }
}
