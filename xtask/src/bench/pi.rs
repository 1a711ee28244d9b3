//! `cargo xtask bench --pi`: what hypstub adds to a Linux boot on the Raspberry Pi 4, by
//! guest instructions.
//!
//! The same kernel and initramfs boot on QEMU `-M raspi4b -icount shift=0` two ways: from an
//! SD-card folder through `kernel8.img` (the FIT read from the initrd, every image's hash
//! checked, copied by the engine, entered at EL2), and directly (QEMU loads the Image and
//! the initramfs itself). Under `-icount shift=0` every guest instruction advances the guest's
//! counter by exactly 1 ns, so the console's timestamps count instructions: the figures are
//! the same on a loaded or an idle host, and one run of each is enough.
//!
//! hypstub's time is its own console's timestamp at `reloc: HVC_SOFT_RESTART` plus the
//! engine's copy and its digest check (the ticks of each, from its lines), which is all it
//! does up to the jump into Linux but print those lines; Linux's is its printk time at
//! `Run /init` (its clock starts at its entry).

use std::path::Path;
use std::time::Duration;

use super::{console, failed_run};
use crate::assets::LinuxAssets;
use crate::linux::MARKER_DONE;
use crate::qemu::Qemu;
use crate::rpi4::{self, Console};
use crate::runner::{Capture, QemuRun};

/// How long one boot may take before QEMU is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Linux's line when it starts `/init`.
pub const RUN_INIT: &str = "Run /init as init process";

/// The firmware's FIT line: `fit: <algorithms> of all <n> images verified in <ms> ms`.
pub const FIT_VERIFIED: &str = " images verified in ";

/// The engine's digest line: `reloc: digests of every destination range match in <n> ticks`.
pub const DIGESTS_IN: &str = "reloc: digests of every destination range match in ";

/// The console timestamp `[ s.uuuuuu]` at the start of the first line containing `text`, in
/// seconds.
#[must_use]
pub fn stamp_of(log: &str, text: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(text))?;
    let inner = line.trim_start().strip_prefix('[')?;
    let (secs, _) = inner.split_once(']')?;
    secs.trim().parse().ok()
}

/// The algorithms and milliseconds of the FIT's hash check, from the firmware's line.
#[must_use]
pub fn fit_check(log: &str) -> Option<(String, u64)> {
    let line = log
        .lines()
        .find(|l| l.contains("fit: ") && l.contains(FIT_VERIFIED))?;
    let (head, rest) = line.split_once(FIT_VERIFIED)?;
    let (_, algos) = head.split_once("fit: ")?;
    let (algos, _) = algos.split_once(" of all ")?;
    let ms = rest.trim_end().strip_suffix(" ms")?.trim().parse().ok()?;
    Some((algos.to_owned(), ms))
}

/// The ticks of the engine's digest check, from its line.
#[must_use]
pub fn digest_ticks(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains(DIGESTS_IN))?;
    let (_, rest) = line.split_once(DIGESTS_IN)?;
    rest.trim_end().strip_suffix(" ticks")?.trim().parse().ok()
}

/// What the two boots measured, in guest seconds (= 10^9 instructions).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// hypstub's EL1 stage: entry to HVC_SOFT_RESTART.
    pub el1_stage: f64,
    /// Of which the FIT's hash check.
    pub fit_check: f64,
    /// Its algorithms, as the firmware names them (`crc32`, `sha256`).
    pub fit_algos: String,
    /// The engine's copy.
    pub engine_copy: f64,
    /// The engine's digest check of every destination, after the copy.
    pub engine_digests: f64,
    /// Bytes the engine copied.
    pub bytes: u64,
    /// Linux, its entry to `/init`, through hypstub.
    pub linux_through_hypstub: f64,
    /// Linux, its entry to `/init`, booted directly.
    pub linux_direct: f64,
}

impl Report {
    /// hypstub's own time.
    #[must_use]
    pub fn hypstub(&self) -> f64 {
        self.el1_stage + self.engine_copy + self.engine_digests
    }

    /// hypstub's time over Linux's (through hypstub) to /init: the target is at most 0.10.
    #[must_use]
    pub fn share(&self) -> f64 {
        self.hypstub() / self.linux_through_hypstub
    }

    /// The table the command prints.
    #[must_use]
    pub fn table(&self) -> String {
        let ms = |s: f64| s * 1e3;
        format!(
            "Raspberry Pi 4 (QEMU raspi4b, -icount shift=0: 1 ms = 10^6 guest instructions)\n\
             | part | guest ms |\n|---|---:|\n\
             | hypstub, entry to HVC_SOFT_RESTART | {:.1} |\n\
             | - of which the FIT's {} check | {:.1} |\n\
             | hypstub's engine, copy of {} bytes | {:.1} |\n\
             | hypstub's engine, digest check of every destination | {:.1} |\n\
             | **hypstub in all, entry to the jump** | **{:.1}** |\n\
             | Linux, entry to /init, through hypstub | {:.1} |\n\
             | Linux, entry to /init, direct | {:.1} |\n\
             firmware + Linux to /init: {:.1} ms through hypstub, {:.1} ms direct (ratio {:.2})\n\
             hypstub / Linux to /init: {:.1} % (target at most 10 %): {}",
            ms(self.el1_stage),
            self.fit_algos,
            ms(self.fit_check),
            self.bytes,
            ms(self.engine_copy),
            ms(self.engine_digests),
            ms(self.hypstub()),
            ms(self.linux_through_hypstub),
            ms(self.linux_direct),
            ms(self.hypstub() + self.linux_through_hypstub),
            ms(self.linux_direct),
            (self.hypstub() + self.linux_through_hypstub) / self.linux_direct,
            self.share() * 100.0,
            if self.share() <= 0.10 { "PASS" } else { "MISS" },
        )
    }
}

/// Boots `run` to the initramfs marker and returns its log.
fn once(qemu: &Qemu, name: &str, run: &QemuRun) -> anyhow::Result<String> {
    let capture = Capture {
        timeout: RUN_TIMEOUT,
        stop_at: Some(MARKER_DONE.to_owned()),
        time_of: Vec::new(),
        echo_prefix: None,
    };
    eprintln!("bench: pi: {name}");
    let out = run.run_captured(qemu, &capture)?;
    if out.marker_after.is_none() {
        return Err(failed_run(&format!("{name}: no {MARKER_DONE:?}"), &out));
    }
    Ok(out.log)
}

/// One boot of each kind, with `kernel8` and the assets; the folder goes to `dir`.
///
/// # Errors
/// A boot that does not reach the marker, or a log without the lines the figures come from.
pub fn run(
    qemu: &Qemu,
    kernel8: &Path,
    assets: &LinuxAssets,
    dir: &Path,
) -> anyhow::Result<Report> {
    let console = Console::MiniUart;
    let dtb_src = assets
        .rpi4_dtb
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the cached kernel package has no bcm2711-rpi-4-b.dtb"))?;
    let dtb = rpi4::write_qemu_dtb(dtb_src, console)?;
    let cmdline = rpi4::cmdline(console, []);
    let folder = rpi4::write_folder(
        dir,
        &rpi4::FolderSpec {
            kernel8: kernel8.to_owned(),
            payload: Some(rpi4::PayloadFiles {
                kernel: assets.kernel.clone(),
                initrd: Some(assets.initramfs.clone()),
                dtb: None,
            }),
            cmdline: cmdline.clone(),
            armstub: None,
        },
    )?;
    let append = rpi4::qemu_append(&cmdline, console);
    let icount = |r: QemuRun| r.arg("-icount").arg("shift=0");
    let hyp_log = once(
        qemu,
        "through hypstub",
        &icount(rpi4::machine(&folder, &dtb, &append)),
    )?;
    let image = rpi4::qemu_kernel(&assets.kernel)?;
    let direct_log = once(
        qemu,
        "direct",
        &icount(rpi4::direct(&image, &dtb, &assets.initramfs, &append)),
    )?;
    // The logs stay beside the folder, for reading the firmware's timestamps.
    for (name, log) in [
        ("through-hypstub.log", &hyp_log),
        ("direct.log", &direct_log),
    ] {
        std::fs::write(dir.join(name), log)?;
    }
    let need = |v: Option<f64>, what: &str| {
        v.ok_or_else(|| anyhow::anyhow!("bench: pi: no {what:?} in the log"))
    };
    let fit = fit_check(&hyp_log)
        .ok_or_else(|| anyhow::anyhow!("bench: pi: no {FIT_VERIFIED:?} line in the log"))?;
    let engine = console::engine_line(&hyp_log)
        .ok_or_else(|| anyhow::anyhow!("bench: pi: no engine line in the log"))?;
    Ok(Report {
        el1_stage: need(
            stamp_of(&hyp_log, "reloc: HVC_SOFT_RESTART"),
            "HVC_SOFT_RESTART",
        )?,
        fit_check: fit.1 as f64 / 1e3,
        fit_algos: fit.0,
        engine_copy: engine.seconds(),
        engine_digests: need(
            digest_ticks(&hyp_log).map(|t| t as f64 / engine.freq_hz as f64),
            DIGESTS_IN,
        )?,
        bytes: engine.bytes,
        linux_through_hypstub: need(stamp_of(&hyp_log, RUN_INIT), RUN_INIT)?,
        linux_direct: need(stamp_of(&direct_log, RUN_INIT), RUN_INIT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[    1.143277] INFO  fit: sha256 of all 2 images verified in 1138 ms\r\n\
        [    1.266377] INFO  reloc: HVC_SOFT_RESTART to the engine at 0x23db000\r\n\
        reloc: digests of every destination range match in 1375000 ticks\r\n\
        [    0.849018] Run /init as init process\r\n";

    #[test]
    fn reads_the_lines() {
        assert_eq!(stamp_of(LOG, "HVC_SOFT_RESTART"), Some(1.266377));
        assert_eq!(stamp_of(LOG, RUN_INIT), Some(0.849018));
        assert_eq!(fit_check(LOG), Some(("sha256".into(), 1138)));
        assert_eq!(digest_ticks(LOG), Some(1_375_000));
        assert_eq!(stamp_of(LOG, "absent"), None);
        let crc = "[ 0.1] INFO  fit: crc32 of all 2 images verified in 8 ms";
        assert_eq!(fit_check(crc), Some(("crc32".into(), 8)));
    }

    #[test]
    fn table_adds_up() {
        let r = Report {
            el1_stage: 1.2,
            fit_check: 1.1,
            fit_algos: "sha256".into(),
            engine_copy: 0.002,
            engine_digests: 0.001,
            bytes: 10,
            linux_through_hypstub: 0.85,
            linux_direct: 0.85,
        };
        assert!((r.hypstub() - 1.203).abs() < 1e-9);
        let t = r.table();
        assert!(
            t.contains("| **hypstub in all, entry to the jump** | **1203.0** |"),
            "{t}"
        );
        assert!(
            t.contains("| - of which the FIT's sha256 check | 1100.0 |"),
            "{t}"
        );
        assert!(t.contains("ratio 2.42"), "{t}");
        assert!(t.contains("141.5 % (target at most 10 %): MISS"), "{t}");
        let fast = Report {
            el1_stage: 0.08,
            ..r
        };
        assert!(fast.table().ends_with(": PASS"), "{}", fast.table());
    }
}
