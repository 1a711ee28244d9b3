//! The Linux boot bench: how much time a firmware adds before Linux starts, hypstub's
//! against U-Boot's, both against QEMU booting the kernel itself.
//!
//! The same Debian kernel and initramfs ([`crate::assets`]) boot on the same machine,
//! `-M virt,virtualization=on,gic-version=3 -cpu cortex-a72 -smp 4 -m 1G`, three ways:
//!
//! - **hypstub**: `-bios <firmware> -kernel -initrd -append`: the firmware reads the
//!   files through fw_cfg, relocates them with the engine, checks their digests and
//!   enters the kernel at EL2;
//! - **U-Boot**: Debian's `u-boot-qemu` as `-bios`, its environment in the second flash
//!   bank ([`super::uboot`]): `bootdelay=0`, `qfw load` and `booti`, Linux at EL2;
//! - **direct**: no `-bios`: QEMU loads the files into RAM itself and enters the kernel
//!   at EL2 (hw/arm/boot.c), the fastest a firmware could hope to be.
//!
//! Each run is timed on the host, from spawning QEMU to the moment the serial console
//! delivers Linux's first line ([`LINUX_FIRST`]): the figure a firmware changes. Linux
//! runs with `earlycon` on the PL011 ([`LinuxConsole::Early`], the default), so that line
//! comes at its entry rather than about 0.8 s later when its console driver registers. The run
//! goes on to `INITRAMFS MARKER DONE` (QEMU is then killed), so that only a boot that
//! reached `/init` with every CPU at EL2 counts, and the console must show the firmware
//! it was meant to go through ([`check`]). One untimed warm-up boot of each kind comes
//! first (it pulls the files into the host's page cache); then rounds of the three, the
//! order rotated every round (hypstub, U-Boot, direct; U-Boot, direct, hypstub; ...), so
//! that a slow drift of the host's speed weighs on all alike. The target
//! ([`TARGET_ADDED_MS`]): hypstub's median adds at most 50 ms to Linux's first line over
//! the direct boot's median, and less than U-Boot's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::{console, failed_run, joined, median, uboot, DIGESTS_MATCH};
use crate::assets::LinuxAssets;
use crate::linux::{self, MARKER_DONE};
use crate::qemu::Qemu;
use crate::runner::{Capture, Cpu, QemuRun};

/// Timed runs of each kind when `--boot-runs` is not given.
pub const DEFAULT_RUNS: u32 = 7;

/// The goal: hypstub adds at most this many milliseconds to Linux's first line over the
/// direct boot (medians), and less than U-Boot does.
pub const TARGET_ADDED_MS: f64 = 50.0;

/// CPUs of the bench machine.
pub const SMP: u32 = 4;

/// The bench machine's CPU: the Raspberry Pi 4's core, as in the measurements the target
/// was set from.
pub const CPU: Cpu = Cpu::CortexA72;

/// How long one boot may take before QEMU is killed (a boot takes a few seconds; this is
/// only a guard against hangs).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Linux's first console line (`Booting Linux on physical CPU 0x0000000000 [...]`).
pub const LINUX_FIRST: &str = "Booting Linux on physical CPU";

/// What the kernel says once every CPU is up, at EL2 every way.
pub const ALL_AT_EL2: &str = "CPU: All CPU(s) started at EL2";

/// The start of hypstub's first console line (`hypstub 0.1.0 on qemu-virt`).
pub const BANNER: &str = "hypstub ";

/// The EL1 stage's last line: it hands the engine the argument block.
pub const HVC_LINE: &str = "reloc: HVC_SOFT_RESTART";

/// The console lines each run times, in the order of [`crate::runner::RunOutcome::times`].
pub const WATCHED: [&str; 6] = [
    LINUX_FIRST,
    BANNER,
    HVC_LINE,
    DIGESTS_MATCH,
    uboot::BANNER,
    uboot::STARTING_KERNEL,
];

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

/// The PL011 of QEMU virt, for Linux's early console.
pub const EARLYCON: &str = "earlycon=pl011,0x9000000";

/// When Linux's log reaches the console, and so what [`LINUX_FIRST`] marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinuxConsole {
    /// `earlycon` on QEMU virt's PL011 (the default): Linux prints from its first
    /// instructions, so its first line marks its entry and a run measures what the firmware
    /// (or QEMU) spent before it.
    Early,
    /// No early console (`--no-earlycon`, the bench's measurement until it had one): Linux
    /// keeps its log until its PL011 driver registers the console, about 0.8 s of its own
    /// start-up later, which is in every figure with its noise.
    Late,
}

/// The kernel command line of every kind of boot.
pub fn append(console: LinuxConsole) -> String {
    match console {
        LinuxConsole::Early => linux::command_line(["panic=-1", EARLYCON]),
        LinuxConsole::Late => linux::command_line(["panic=-1"]),
    }
}

/// One way of booting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Through the hypstub firmware (`-bios`).
    Hypstub,
    /// Through U-Boot (`-bios`, environment in the second flash bank).
    UBoot,
    /// QEMU's own direct kernel boot.
    Direct,
}

impl Kind {
    /// Every kind, in the order of the first round.
    pub const ALL: [Kind; 3] = [Kind::Hypstub, Kind::UBoot, Kind::Direct];

    /// Its name in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hypstub => "hypstub",
            Kind::UBoot => "U-Boot",
            Kind::Direct => "direct",
        }
    }

    /// The order of round `round`: [`Kind::ALL`] rotated left by `round`.
    pub fn round(round: u32) -> [Kind; 3] {
        let mut order = Kind::ALL;
        order.rotate_left(round as usize % Kind::ALL.len());
        order
    }
}

/// The firmware files of the boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firmware {
    /// hypstub.bin.
    pub hypstub: PathBuf,
    /// U-Boot's `qemu_arm64/u-boot.bin`.
    pub uboot: PathBuf,
    /// The second flash bank with U-Boot's environment ([`uboot::env_image`]).
    pub uboot_env: PathBuf,
}

/// The machine of one run.
pub fn machine(
    kind: Kind,
    firmware: &Firmware,
    assets: &LinuxAssets,
    console: LinuxConsole,
) -> QemuRun {
    let append = append(console);
    let run = match kind {
        Kind::Hypstub => linux::through_hypstub(&firmware.hypstub, assets, &append),
        Kind::UBoot => linux::through_hypstub(&firmware.uboot, assets, &append)
            .arg("-drive")
            .arg(format!(
                "if=pflash,unit=1,format=raw,readonly=on,file={}",
                firmware.uboot_env.display()
            )),
        Kind::Direct => linux::direct(assets, &append),
    };
    run.smp(SMP).cpu(CPU)
}

/// Writes U-Boot's environment image ([`uboot::ENV`]) to `path` unless it is there
/// already with the same bytes.
pub fn write_uboot_env(path: &Path) -> anyhow::Result<()> {
    let image = uboot::env_image(&uboot::ENV)?;
    if std::fs::read(path).is_ok_and(|old| old == image) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, &image).with_context(|| format!("writing {}", path.display()))
}

/// One timed boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    /// From spawning QEMU to [`LINUX_FIRST`].
    pub linux: Duration,
    /// From spawning QEMU to [`MARKER_DONE`].
    pub marker: Duration,
}

/// The timed runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Through hypstub, in the order measured.
    pub hypstub: Vec<Timed>,
    /// Through U-Boot, in the order measured.
    pub uboot: Vec<Timed>,
    /// QEMU's direct boot, in the order measured.
    pub direct: Vec<Timed>,
    /// Each hypstub run's own time, from its banner to the engine's last line before it
    /// jumps to the kernel ([`DIGESTS_MATCH`]), on the host's clock.
    pub firmware: Vec<Phases>,
    /// The relocation engine's line of each hypstub run (its own copy time).
    pub engine: Vec<console::EngineLine>,
}

fn seconds(runs: &[Timed], f: fn(&Timed) -> Duration) -> Vec<f64> {
    runs.iter().map(|t| f(t).as_secs_f64()).collect()
}

impl Report {
    /// The runs of `kind`.
    pub fn runs(&self, kind: Kind) -> &[Timed] {
        match kind {
            Kind::Hypstub => &self.hypstub,
            Kind::UBoot => &self.uboot,
            Kind::Direct => &self.direct,
        }
    }

    fn runs_mut(&mut self, kind: Kind) -> &mut Vec<Timed> {
        match kind {
            Kind::Hypstub => &mut self.hypstub,
            Kind::UBoot => &mut self.uboot,
            Kind::Direct => &mut self.direct,
        }
    }

    /// Median seconds of `kind` to Linux's first line.
    pub fn median_linux(&self, kind: Kind) -> f64 {
        median(&seconds(self.runs(kind), |t| t.linux))
    }

    /// Milliseconds `kind` adds to Linux's first line over the direct boot (medians).
    pub fn added_ms(&self, kind: Kind) -> f64 {
        (self.median_linux(kind) - self.median_linux(Kind::Direct)) * 1e3
    }

    /// Whether target 1 is met.
    pub fn target_met(&self) -> bool {
        let hypstub = self.added_ms(Kind::Hypstub);
        hypstub <= TARGET_ADDED_MS && hypstub < self.added_ms(Kind::UBoot)
    }

    /// A table of the three kinds.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| boot | median to `{LINUX_FIRST}` | min | max | runs | median to `{MARKER_DONE}` |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---|---:|");
        for (name, kind) in [
            ("hypstub (`-bios`, Linux at EL2)", Kind::Hypstub),
            (
                "U-Boot 2023.01 (`-bios`, `qfw load` + `booti`)",
                Kind::UBoot,
            ),
            ("QEMU direct (no `-bios`)", Kind::Direct),
        ] {
            let secs = seconds(self.runs(kind), |t| t.linux);
            let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = secs.iter().copied().fold(0.0, f64::max);
            let each = joined(&secs, 3);
            let marker = median(&seconds(self.runs(kind), |t| t.marker));
            let _ = writeln!(
                s,
                "| {name} | {:.3} s | {min:.3} s | {max:.3} s | {each} | {marker:.3} s |",
                median(&secs)
            );
        }
        s
    }

    /// `added to Linux's first line over direct (medians): hypstub +X ms, U-Boot +Y ms`.
    pub fn added_line(&self) -> String {
        format!(
            "added to Linux's first line over direct (medians): hypstub {:+.0} ms, U-Boot \
             {:+.0} ms",
            self.added_ms(Kind::Hypstub),
            self.added_ms(Kind::UBoot)
        )
    }

    /// `target 1: hypstub adds <= 50 ms and less than U-Boot: PASS|MISS`.
    pub fn target_line(&self) -> String {
        format!(
            "target 1: hypstub adds <= {TARGET_ADDED_MS:.0} ms and less than U-Boot: {}",
            if self.target_met() { "PASS" } else { "MISS" }
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
    firmware: &Firmware,
    assets: &LinuxAssets,
    runs: u32,
    console: LinuxConsole,
) -> anyhow::Result<Report> {
    anyhow::ensure!(runs >= 1, "--boot-runs must be at least 1");
    for kind in Kind::ALL {
        eprintln!("bench: boot: warm-up, {}", kind.name());
        once(qemu, kind, firmware, assets, console)
            .with_context(|| format!("warm-up, {}", kind.name()))?;
    }
    let mut report = Report::default();
    for round in 0..runs {
        for kind in Kind::round(round) {
            let run = once(qemu, kind, firmware, assets, console)
                .with_context(|| format!("{} run {} of {runs}", kind.name(), round + 1))?;
            report.engine.extend(run.engine);
            report.firmware.extend(run.firmware);
            eprintln!(
                "bench: boot: run {} of {runs}, {}: {:.3} s to Linux's first line",
                round + 1,
                kind.name(),
                run.timed.linux.as_secs_f64()
            );
            report.runs_mut(kind).push(run.timed);
        }
    }
    Ok(report)
}

/// What one boot measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// Its times.
    pub timed: Timed,
    /// Through hypstub: where its own time went.
    pub firmware: Option<Phases>,
    /// Through hypstub: the engine's line.
    pub engine: Option<console::EngineLine>,
}

/// Checks that a boot's console (`log`, with the arrival times of [`WATCHED`] in
/// `times`, and of [`MARKER_DONE`] in `marker`) is a whole boot of `kind`: the kernel
/// started, brought every CPU up at EL2 and ran `/init` to its last line; the firmware's
/// own lines came, before Linux's first: hypstub's banner, its engine line and digest
/// check, in order; U-Boot's banner, its environment from flash (not the default one),
/// `qfw load`'s line and `booti`'s last; and no other firmware's. Says what is missing.
pub fn check(
    kind: Kind,
    log: &str,
    times: &[Option<Duration>],
    marker: Option<Duration>,
) -> Result<Run, String> {
    let [linux, banner, hvc, digests, uboot_banner, starting] = times[..] else {
        return Err(format!(
            "{} times for {} watched lines",
            times.len(),
            WATCHED.len()
        ));
    };
    let Some(marker) = marker else {
        return Err(format!("no {MARKER_DONE:?}"));
    };
    let Some(linux) = linux else {
        return Err(format!("no {LINUX_FIRST:?}"));
    };
    if !log.contains(ALL_AT_EL2) {
        return Err(format!("no {ALL_AT_EL2:?}"));
    }
    let before_linux = |t: Option<Duration>| t.is_some_and(|t| t <= linux);
    let engine = console::engine_line(log);
    let phases = Phases::from_times(&[banner, hvc, digests]);
    let hypstub_seen = banner.is_some() || engine.is_some();
    let uboot_seen = uboot_banner.is_some() || log.contains(uboot::QFW_LOADED);
    match kind {
        Kind::Hypstub => {
            if engine.is_none() || phases.is_none() || !before_linux(digests) {
                return Err(format!(
                    "not a boot through hypstub: its banner, {HVC_LINE:?}, the engine's line \
                     and {DIGESTS_MATCH:?} must come, in order, before Linux's first line"
                ));
            }
            if uboot_seen {
                return Err("U-Boot's lines in a boot through hypstub".into());
            }
        }
        Kind::UBoot => {
            if !before_linux(uboot_banner)
                || !before_linux(starting)
                || !log.contains(uboot::QFW_LOADED)
            {
                return Err(format!(
                    "not a boot through U-Boot: its banner, {:?} and {:?} must come before \
                     Linux's first line",
                    uboot::QFW_LOADED,
                    uboot::STARTING_KERNEL
                ));
            }
            if log.contains(uboot::DEFAULT_ENV) {
                return Err(format!(
                    "U-Boot did not take the environment from flash ({:?})",
                    uboot::DEFAULT_ENV
                ));
            }
            if hypstub_seen {
                return Err("hypstub's lines in a boot through U-Boot".into());
            }
        }
        Kind::Direct => {
            if hypstub_seen || uboot_seen {
                return Err("a firmware's lines in QEMU's direct boot".into());
            }
        }
    }
    Ok(Run {
        timed: Timed { linux, marker },
        firmware: phases.filter(|_| kind == Kind::Hypstub),
        engine: engine.filter(|_| kind == Kind::Hypstub),
    })
}

/// One boot, to the marker; fails with the log unless [`check`] accepts it.
fn once(
    qemu: &Qemu,
    kind: Kind,
    firmware: &Firmware,
    assets: &LinuxAssets,
    console: LinuxConsole,
) -> anyhow::Result<Run> {
    let run = machine(kind, firmware, assets, console);
    let capture = Capture {
        timeout: RUN_TIMEOUT,
        stop_at: Some(MARKER_DONE.to_owned()),
        time_of: WATCHED.map(str::to_owned).to_vec(),
        echo_prefix: None,
    };
    let out = run.run_captured(qemu, &capture)?;
    check(kind, &out.log, &out.times, out.marker_after).map_err(|what| failed_run(&what, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(linux_ms: &[u64]) -> Vec<Timed> {
        linux_ms
            .iter()
            .map(|&m| Timed {
                linux: Duration::from_millis(m),
                marker: Duration::from_millis(m + 3000),
            })
            .collect()
    }

    fn engine(ms: u64) -> console::EngineLine {
        console::EngineLine {
            bytes: 34_816_000,
            pages: 8500,
            ticks: ms * 1_000_000,
            freq_hz: 1_000_000_000,
            micros: ms * 1000,
            mib_per_s: 0,
            mmu: console::CopyMmu::On,
        }
    }

    #[test]
    fn figures_and_verdict() {
        let report = Report {
            hypstub: timed(&[430, 420, 425]),
            uboot: timed(&[500, 480, 490]),
            direct: timed(&[380, 390, 385]),
            firmware: [300, 200, 250]
                .map(|total| Phases {
                    el1_stage: Duration::from_millis(total - 100),
                    engine: Duration::from_millis(100),
                })
                .to_vec(),
            engine: Vec::new(),
        };
        assert_eq!(report.firmware_line(), None);
        assert!((report.median_linux(Kind::Hypstub) - 0.425).abs() < 1e-9);
        assert!((report.added_ms(Kind::Hypstub) - 40.0).abs() < 1e-6);
        assert!((report.added_ms(Kind::UBoot) - 105.0).abs() < 1e-6);
        assert_eq!(
            report.added_line(),
            "added to Linux's first line over direct (medians): hypstub +40 ms, U-Boot +105 ms"
        );
        assert_eq!(
            report.target_line(),
            "target 1: hypstub adds <= 50 ms and less than U-Boot: PASS"
        );
        let table = report.table();
        assert!(
            table.contains("| 0.425 s | 0.420 s | 0.430 s | 0.430, 0.420, 0.425 | 3.425 s |"),
            "{table}"
        );
        assert_eq!(table.lines().count(), 5, "{table}");
        let with_engine = Report {
            engine: vec![engine(40), engine(105), engine(37)],
            ..report.clone()
        };
        assert_eq!(
            with_engine.firmware_line().unwrap(),
            "hypstub's own time, banner to hand-off (medians, host clock): 250 ms = EL1 stage \
             (fw_cfg reads, staging, planning) 150 ms + engine 100 ms (copy of 34816000 bytes \
             40 ms by its own counter, then the digest check)"
        );
        // Over 50 ms: a miss, even below U-Boot.
        let slow = Report {
            hypstub: timed(&[440]),
            uboot: timed(&[500]),
            direct: timed(&[385]),
            ..Report::default()
        };
        assert!(slow.target_line().ends_with("MISS"));
        // Within 50 ms but not below U-Boot: a miss too.
        let tie = Report {
            hypstub: timed(&[420]),
            uboot: timed(&[410]),
            direct: timed(&[385]),
            ..Report::default()
        };
        assert!(!tie.target_met());
    }

    #[test]
    fn phases() {
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
    }

    #[test]
    fn rounds_rotate() {
        assert_eq!(Kind::round(0), [Kind::Hypstub, Kind::UBoot, Kind::Direct]);
        assert_eq!(Kind::round(1), [Kind::UBoot, Kind::Direct, Kind::Hypstub]);
        assert_eq!(Kind::round(2), [Kind::Direct, Kind::Hypstub, Kind::UBoot]);
        assert_eq!(Kind::round(3), Kind::round(0));
    }

    const ENGINE: &str = "reloc: copied 34816000 bytes (8500 pages) in 38000000 ticks at \
                          1000000000 Hz: 38000 us, 873 MiB/s with the MMU and caches on";

    /// A log of `kind` with the times [`check`] reads.
    fn boot(kind: Kind) -> (String, Vec<Option<Duration>>) {
        let ms = |m| Some(Duration::from_millis(m));
        let linux = "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]\n\
                     [    0.1] CPU: All CPU(s) started at EL2\nINITRAMFS MARKER DONE\n";
        match kind {
            Kind::Hypstub => (
                format!(
                    "[    0.001] hypstub 0.1.0 on qemu-virt\n[    0.2] INFO  reloc: \
                     HVC_SOFT_RESTART to the engine\n{ENGINE}\n{DIGESTS_MATCH}\n{linux}"
                ),
                vec![ms(400), ms(10), ms(200), ms(300), None, None],
            ),
            Kind::UBoot => (
                format!(
                    "U-Boot 2023.01+dfsg-2+deb12u3 (Jun 22 2026)\nLoading Environment from \
                     Flash... OK\nHit any key to stop autoboot:  0\nloading kernel to address \
                     0000000040400000 size 1f6dfc0\n\nStarting kernel ...\n\n{linux}"
                ),
                vec![ms(450), None, None, None, ms(20), ms(440)],
            ),
            Kind::Direct => (
                linux.to_owned(),
                vec![ms(380), None, None, None, None, None],
            ),
        }
    }

    #[test]
    fn each_boot_is_checked_for_its_kind() {
        let marker = Some(Duration::from_secs(3));
        for kind in Kind::ALL {
            let (log, times) = boot(kind);
            let run = check(kind, &log, &times, marker).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(run.timed.marker, Duration::from_secs(3));
            assert_eq!(run.engine.is_some(), kind == Kind::Hypstub);
            assert_eq!(run.firmware.is_some(), kind == Kind::Hypstub);
            // The log of one kind is refused as any other.
            for other in Kind::ALL.into_iter().filter(|&k| k != kind) {
                assert!(
                    check(other, &log, &times, marker).is_err(),
                    "{kind:?} as {other:?}"
                );
            }
            assert!(check(kind, &log, &times, None)
                .unwrap_err()
                .contains("MARKER DONE"));
            let mut no_linux = times.clone();
            no_linux[0] = None;
            assert!(check(kind, &log, &no_linux, marker)
                .unwrap_err()
                .contains("Booting Linux"));
            let at_el1 = log.replace(ALL_AT_EL2, "CPU: All CPU(s) started at EL1");
            assert!(check(kind, &at_el1, &times, marker)
                .unwrap_err()
                .contains("EL2"));
        }
        let (log, mut times) = boot(Kind::Hypstub);
        assert_eq!(
            check(Kind::Hypstub, &log, &times, Some(Duration::from_secs(3)))
                .unwrap()
                .timed
                .linux,
            Duration::from_millis(400)
        );
        // The digest check after Linux's first line: not the intended boot.
        times[3] = Some(Duration::from_millis(500));
        assert!(check(Kind::Hypstub, &log, &times, Some(Duration::from_secs(3))).is_err());
        // U-Boot on its built-in environment is not the bench's U-Boot.
        let (log, times) = boot(Kind::UBoot);
        let default = log.replace(
            "Loading Environment from Flash... OK",
            "*** Warning - bad CRC, Using default environment",
        );
        let err = check(Kind::UBoot, &default, &times, Some(Duration::from_secs(3))).unwrap_err();
        assert!(err.contains("environment"), "{err}");
        let no_qfw = log.replace("loading kernel to address", "");
        assert!(check(Kind::UBoot, &no_qfw, &times, Some(Duration::from_secs(3))).is_err());
    }

    #[test]
    fn the_machines_differ_only_in_the_firmware() {
        let assets = LinuxAssets {
            kernel: "/k".into(),
            initramfs: "/i".into(),
            busybox: "/b".into(),
            rpi4_dtb: None,
            records: Vec::new(),
        };
        let firmware = Firmware {
            hypstub: "/fw.bin".into(),
            uboot: "/u-boot.bin".into(),
            uboot_env: "/env.img".into(),
        };
        let args = |kind| {
            machine(kind, &firmware, &assets, LinuxConsole::Late)
                .machine_args()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            args(Kind::Hypstub),
            "-M virt,virtualization=on,gic-version=3 -cpu cortex-a72 -smp 4 -m 1G -bios /fw.bin \
             -kernel /k -initrd /i -append 'console=ttyAMA0 panic=-1'"
                .replace('\'', "")
        );
        assert_eq!(
            args(Kind::Direct),
            args(Kind::Hypstub).replace("-bios /fw.bin ", "")
        );
        assert_eq!(
            args(Kind::UBoot),
            args(Kind::Hypstub).replace("/fw.bin", "/u-boot.bin")
                + " -drive if=pflash,unit=1,format=raw,readonly=on,file=/env.img"
        );
        let early = machine(Kind::Direct, &firmware, &assets, LinuxConsole::Early);
        assert!(
            early
                .machine_args()
                .iter()
                .any(|a| a.to_string_lossy() == "console=ttyAMA0 panic=-1 earlycon=pl011,0x9000000"),
            "{:?}",
            early.machine_args()
        );
    }
}
