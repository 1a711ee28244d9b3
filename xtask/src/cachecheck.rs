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

/// hypstub's code on the Raspberry Pi 4: page 0 (the armstub and its spin table), the
/// shared page, the stub's RAM, the EL1 stage and kernel8.img up to the 2 MiB the early
/// tables map as code.
pub const OURS_RPI4: &str = "0x0-0x200000";

/// The Pi 4's spin-table release words (0xd8..0xf8), which the waiting CPUs poll with
/// their MMU off while the boot CPU writes and cleans them one by one: a poll that reads
/// before the clean is the spin table working, not a missing clean (docs/cachecheck.md).
pub const RPI4_POLLED: &str = ",polled=0xd8-0xf8";

/// The Pi 4's first RAM bank on QEMU raspi4b, where everything hypstub places goes.
pub const RPI4_RAM: (u64, u64) = (0, 0x3c00_0000);

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
    /// hypstub's code on this machine, for the plugin's `ours=` ([`OURS`] on QEMU virt,
    /// [`OURS_RPI4`] on the Pi 4).
    pub ours: &'static str,
    /// Further plugin options (e.g. `,strict=on`), added in every mode.
    pub options: &'static str,
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
    virt_case(name, run, None, "demo payload: entered at EL2", mutant)
}

/// A QEMU virt boot of `run` that must show `expect` (stopping at it when `stop`).
pub fn virt_case(
    name: &str,
    run: QemuRun,
    stop: Option<&str>,
    expect: &str,
    mutant: Option<&'static [Mode]>,
) -> Case {
    Case {
        name: name.into(),
        ram: virt_ram(&run.mem),
        ours: OURS,
        options: "",
        run,
        stop_at: stop.map(str::to_owned),
        expect: expect.into(),
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
    virt_case(
        &format!("linux-el{el}"),
        run,
        stop_at.as_deref(),
        expect,
        None,
    )
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
        ",ours={},ram={:#x}-{:#x}{}{}",
        case.ours,
        case.ram.0,
        case.ram.1,
        case.options,
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

/// The acceptance payloads of `tests/` on QEMU virt: abi-client at EL1 on 4 CPUs (the
/// stub's CPU_ON redirect, HVC_SOFT_RESTART and HVC_SET_VECTORS from EL1), el2-client
/// at EL2, and a short soak (soak-client at EL1 on 4 CPUs: [`SOAK_CYCLES`]
/// HVC_SOFT_RESTARTs into itself with CPU_ON/OFF of the secondaries in between).
///
/// # Errors
/// A payload does not build.
pub fn payload_cases(firmware: &Path) -> anyhow::Result<Vec<Case>> {
    use crate::image::{self, BuildOptions, Payload};
    let opts = BuildOptions::default();
    let abi = image::build_payload(Payload::AbiClient, opts)?;
    let el2 = image::build_payload(Payload::El2Client, opts)?;
    let soak = image::build_payload(Payload::SoakClient, opts)?;
    let machine = || QemuRun::new(firmware).cpu(Cpu::CortexA72);
    Ok(vec![
        virt_case(
            "abi-client-el1",
            machine().smp(4).kernel(&abi.image).append("hypstub.el=1"),
            None,
            "abi-client: PASS",
            None,
        ),
        virt_case(
            "el2-client",
            machine().kernel(&el2.image),
            None,
            "el2-client: PASS",
            None,
        ),
        virt_case(
            "soak-client-el1",
            machine()
                .smp(4)
                .kernel(&soak.image)
                .append(format!("hypstub.el=1 soak.cycles={SOAK_CYCLES}")),
            None,
            &format!("soak-client: PASS {SOAK_CYCLES} cycles, 0 failures"),
            None,
        ),
    ])
}

/// Restarts of the soak under the plugin (tests/soak.rs runs 1000 without it).
pub const SOAK_CYCLES: u64 = 100;

/// Debian's kernel and the test initramfs as one FIT: given as `-kernel` to hypstub's
/// firmware, and in the second flash bank of the example bootloader (examples/pflash-boot).
///
/// # Errors
/// The FIT cannot be written or the example does not build.
pub fn linux_fit_cases(
    firmware: &Path,
    assets: &LinuxAssets,
    quick: bool,
) -> anyhow::Result<Vec<Case>> {
    let dir = target_dir().join("hypstub/cachecheck");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));
    let fit = crate::fit::write_fit(
        &read(&assets.kernel)?,
        Some(&read(&assets.initramfs)?),
        None,
        "cachecheck",
    );
    let fit_path = dir.join("linux.itb");
    fs::write(&fit_path, fit).with_context(|| format!("writing {}", fit_path.display()))?;
    let flash = dir.join("pflash-boot-linux.img");
    crate::example::write_flash(&assets.kernel, Some(&assets.initramfs), &flash)?;
    let example = crate::image::build_example(crate::image::BuildOptions::default())?;
    let (stop, expect) = if quick {
        (Some(LINUX_FIRST_LINE), LINUX_FIRST_LINE)
    } else {
        (None, linux::MARKER_DONE)
    };
    let fit_run = QemuRun::new(firmware)
        .mem(linux::MEM)
        .smp(2)
        .cpu(Cpu::CortexA72)
        .kernel(&fit_path)
        .append(linux::command_line([]));
    let example_run = crate::example::machine(&example.image, &flash)
        .mem(linux::MEM)
        .smp(2)
        .cpu(Cpu::CortexA72);
    Ok(vec![
        virt_case("linux-fit", fit_run, stop, expect, None),
        virt_case("example-linux", example_run, stop, expect, None),
    ])
}

/// QEMU raspi4b booting the SD-card folder: the demo at EL2 and at EL1 (the secondaries
/// taken over from the spin table), the armstub chain, and the mutant whose release words
/// are not cleaned.
///
/// # Errors
/// A build or the folder fails.
pub fn rpi4_cases(assets: &LinuxAssets) -> anyhow::Result<Vec<Case>> {
    use crate::image::{self, Board, BuildOptions, Variant};
    use crate::rpi4::{self, Console};
    let opts = BuildOptions::default();
    let console = Console::MiniUart;
    let debian_dtb = assets.rpi4_dtb.as_ref().context(
        "the cached kernel package has no bcm2711-rpi-4-b.dtb (see `cargo xtask assets`)",
    )?;
    let dtb = rpi4::write_qemu_dtb(debian_dtb, console)?;
    let firmware = image::build_firmware(Board::Rpi4, opts)?.image;
    let mutant = image::build_firmware_variant(Board::Rpi4, Variant::SkipReleaseClean, opts)?.image;
    let dir = target_dir().join("hypstub/cachecheck/rpi4");
    let case = |name: &str,
                kernel8: &Path,
                payload: Option<&Path>,
                el: linux::El,
                stop: Option<&str>,
                expect: &str,
                mutant: Option<&'static [Mode]>|
     -> anyhow::Result<Case> {
        let cmdline = rpi4::cmdline(console, [el.option()]);
        let spec = rpi4::FolderSpec {
            kernel8: kernel8.to_owned(),
            payload: payload.map(|kernel| rpi4::PayloadFiles {
                kernel: kernel.to_owned(),
                initrd: None,
                dtb: None,
            }),
            cmdline: cmdline.clone(),
            armstub: None,
        };
        let folder = rpi4::write_folder(&dir.join(name), &spec)?;
        let run = rpi4::machine(&folder, &dtb, &rpi4::qemu_append(&cmdline, console));
        Ok(Case {
            name: name.into(),
            run,
            ram: RPI4_RAM,
            ours: OURS_RPI4,
            options: RPI4_POLLED,
            stop_at: stop.map(str::to_owned),
            expect: expect.into(),
            mutant,
        })
    };
    let tiny = dir.join("rpi4-power-off.bin");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(&tiny, rpi4_power_off_image())
        .with_context(|| format!("writing {}", tiny.display()))?;
    let mut cases = vec![
        case(
            "rpi4-demo",
            &firmware,
            None,
            linux::El::El2,
            None,
            "demo payload: entered at EL2",
            None,
        )?,
        // hypstub.el=1: the secondaries are taken over from the spin table first.
        case(
            "rpi4-demo-el1",
            &firmware,
            None,
            linux::El::El1,
            None,
            "demo payload: entered at EL1",
            None,
        )?,
        // The Pi's FIT path: read where the firmware put it, every hash checked, staged.
        case(
            "rpi4-fit",
            &firmware,
            Some(&tiny),
            linux::El::El2,
            None,
            "reloc: digests of every destination range match",
            None,
        )?,
        // The parked secondary reads its release word with the MMU off: kind 1.
        case(
            "rpi4-mutant-skip-release-clean",
            &mutant,
            None,
            linux::El::El1,
            None,
            "demo payload: entered at EL1",
            Some(&Mode::ALL),
        )?,
    ];
    cases.push(armstub_chain_case(debian_dtb, &firmware, &dir)?);
    // Debian's kernel through the folder is not booted under the plugin: the FIT's SHA-256
    // over 35 MB did not finish in ten minutes under the memory callbacks
    // (docs/cachecheck.md). The folder's own paths are the demo's above.
    Ok(cases)
}

/// A tiny arm64 Image for the Pi 4 that powers the board off as hypstub's demo does
/// (BCM2711 PM block: PM_RSTS = halt, PM_WDOG = 10 ticks, PM_RSTC = reset; QEMU raspi4b
/// exits): the payload of a FIT small enough to hash under the plugin, so the Pi's FIT path
/// (read in place, SHA-256, staged, relocated, digests) runs under the model.
pub fn rpi4_power_off_image() -> Vec<u8> {
    use crate::a64::{self, Reg, Shift};
    let (x0, x1) = (Reg::new(0), Reg::new(1));
    const PASSWORD: u32 = 0x5a00_0000;
    let mut code = vec![a64::movz_w(x1, 0xfe10, Shift::L16)];
    for (offset, value) in [
        (0x20, PASSWORD | 0x555),
        (0x24, PASSWORD | 10),
        (0x1c, PASSWORD | 0x20),
    ] {
        code.extend(a64::mov_w32(x0, value));
        code.push(a64::str_w(x0, x1, offset));
    }
    code.push(a64::b(0));
    let size = (crate::bench::payload::HEADER_LEN + 4 * code.len()) as u64;
    let mut image = crate::bench::payload::header(size).to_vec();
    for word in code {
        image.extend(word.to_le_bytes());
    }
    image
}

/// The whole Pi chain from EL3: hypstub's armstub on all four cores (QEMU raspi4b's ELF
/// `-kernel`), the firmware's handshake played by `-device loader`, then kernel8.img at
/// 0x8_0000 with the DTB at 64 MiB and no payload: the demo, at EL2.
///
/// # Errors
/// A build or the DTB fails.
pub fn armstub_chain_case(debian_dtb: &Path, kernel8: &Path, dir: &Path) -> anyhow::Result<Case> {
    use crate::image::{self, Board, BuildOptions};
    use crate::rpi4::{self, Console};
    use loader::dt::{Dtb, Edits};
    /// RAM as a 2 GiB Pi 4's firmware describes it (QEMU fills in nothing for an ELF
    /// `-kernel`).
    const RAM: [std::ops::Range<u64>; 2] = [0..0x3c00_0000, 0x4000_0000..0x8000_0000];
    /// What QEMU removes itself from a `-dtb` (hw/arm/raspi4b.c), which this boot has not.
    const QEMU_REMOVES: [&str; 4] = [
        "/scb/pcie@7d500000",
        "/scb/ethernet@7d580000",
        "/soc/rng@7e104000",
        "/soc/avs-monitor@7d5d2000/thermal",
    ];
    const DTB_AT: u64 = 0x0400_0000;
    let armstub = image::build_firmware(Board::Rpi4Armstub, BuildOptions::default())?;
    let bytes =
        fs::read(debian_dtb).with_context(|| format!("reading {}", debian_dtb.display()))?;
    let mut buf = rpi4::prepare_qemu_dtb(&bytes, Console::Pl011)?;
    buf.resize(buf.len() + 16 * 1024, 0);
    let mut dtb =
        Dtb::new(&mut buf).map_err(|e| anyhow::anyhow!("{}: {e}", debian_dtb.display()))?;
    let edits = QEMU_REMOVES.into_iter().fold(
        Edits::new().memory(&RAM).bootargs("console=ttyAMA0"),
        Edits::disable,
    );
    dtb.apply(&edits)
        .map_err(|e| anyhow::anyhow!("editing {}: {e}", debian_dtb.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dtb_path = dir.join("armstub-chain.dtb");
    fs::write(&dtb_path, dtb.as_bytes())
        .with_context(|| format!("writing {}", dtb_path.display()))?;
    let mut m = crate::armstub::Machine::new(&armstub.elf);
    m.files = vec![
        (kernel8.to_owned(), rpi4::KERNEL_ADDRESS),
        (dtb_path, DTB_AT),
    ];
    m.handshake = Some((DTB_AT as u32, rpi4::KERNEL_ADDRESS as u32));
    Ok(Case {
        name: "rpi4-armstub-chain-demo".into(),
        run: m.run(),
        ram: RPI4_RAM,
        ours: OURS_RPI4,
        options: RPI4_POLLED,
        stop_at: None,
        expect: "demo payload: entered at EL2".into(),
        mutant: None,
    })
}

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
    // `-cpu max` has CTR_EL0.IDC = DIC = 1: strict mode checks the I-cache all the same,
    // as for a Cortex-A72.
    let strict = |mut case: Case| {
        case.name.push_str("-max-strict");
        case.run = case.run.cpu(Cpu::Max);
        case.options = ",strict=on";
        case
    };
    cases.push(strict(demo("demo", &firmware.image, None)));
    for (variant, modes) in MUTANTS {
        let built = image::build_firmware_variant(Board::QemuVirt, variant, opts)?;
        let case = demo(&format!("mutant-{variant}"), &built.image, Some(modes));
        if variant == image::Variant::SkipIcacheInvalidate {
            cases.push(strict(case.clone()));
        }
        cases.push(case);
    }
    cases.extend(payload_cases(&firmware.image)?);
    if plan.linux {
        let assets = crate::assets::ensure(crate::assets::Fetch::IfMissing)?;
        for el in [linux::El::El2, linux::El::El1] {
            cases.push(linux_case(&firmware.image, &assets, el, plan.quick));
        }
        cases.extend(linux_fit_cases(&firmware.image, &assets, plan.quick)?);
        cases.extend(rpi4_cases(&assets)?);
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

    #[test]
    fn the_pi_power_off_image_is_an_arm64_image() {
        let image = rpi4_power_off_image();
        let header = loader::image::ImageHeader::parse(&image).unwrap();
        assert_eq!(header.image_size, image.len() as u64);
        assert!(crate::rpi4::is_arm64_image(&image));
        // movz w1, #0xfe10, lsl #16 right after the header.
        assert_eq!(image[0x40..0x44], 0x52bfc201u32.to_le_bytes());
    }
}
