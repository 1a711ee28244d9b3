//! `cargo xtask`: the front door for building, running and testing hypstub.
//!
//! Each subcommand is a thin layer over the `xtask` library, which the integration tests
//! use too. See docs/xtask.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgGroup, Parser, Subcommand};

use xtask::assets::{self, Fetch};
use xtask::image::{self, Board, BuildOptions, Payload, Profile, Variant};
use xtask::linux::{self, El};
use xtask::qemu::{self, Qemu};
use xtask::rpi4::{self, Console};
use xtask::runner::{Capture, Cpu, Gic, QemuRun};
use xtask::{bench, checks, display_command};

/// Build, run and test hypstub.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a board's firmware image; prints its size, then its path as the last line.
    ///
    /// qemu-virt: target/hypstub/qemu-virt/hypstub.bin, a flash image for QEMU's `-bios`.
    /// rpi4: the SD-card folder target/hypstub/rpi4/ (kernel8.img, config.txt,
    /// cmdline.txt, and with --kernel payload.itb); prints each file and its size, then the
    /// folder's path as the last line.
    /// rpi4-armstub: target/hypstub/rpi4/armstub8-hypstub.bin, for `armstub=` in the Pi 4's
    /// config.txt (docs/armstub.md).
    Build {
        /// The board: qemu-virt, rpi4 or rpi4-armstub.
        #[arg(long, default_value = "qemu-virt")]
        board: Board,
        /// Build with the dev profile instead of --release.
        #[arg(long)]
        debug: bool,
        /// A test-only firmware variant (known: corrupt-staging, which corrupts the first
        /// staged page after planning), built in target/variants/ and written to
        /// target/hypstub/<board>-<variant>.bin. Never for real use.
        #[arg(long)]
        variant: Option<Variant>,
        /// rpi4: the payload's kernel (an arm64 Image; a gzip one is decompressed on the
        /// host), written with --initrd and --dtb into payload.itb (a FIT).
        #[arg(long, value_name = "FILE")]
        kernel: Option<PathBuf>,
        /// rpi4: the payload's initrd (needs --kernel).
        #[arg(long, value_name = "FILE", requires = "kernel")]
        initrd: Option<PathBuf>,
        /// rpi4: a DTB to put into payload.itb (needs --kernel).
        #[arg(long, value_name = "FILE", requires = "kernel")]
        dtb: Option<PathBuf>,
        /// rpi4: words to add to cmdline.txt, hypstub.* options included.
        #[arg(long, value_name = "STR")]
        append: Option<String>,
        /// rpi4: the UART of Linux's console in cmdline.txt: mini (the mini-UART on GPIO
        /// 14/15, Debian's DTB's stdout-path) or pl011.
        #[arg(long, value_name = "mini|pl011")]
        console: Option<Console>,
    },
    /// Build a board's firmware and boot it on QEMU: qemu-virt (the built-in demo unless
    /// --kernel or --linux) or rpi4 (QEMU raspi4b booting the SD-card folder).
    ///
    /// QEMU 9.0 or later is needed; as root on Debian or Ubuntu it is installed if missing.
    /// Quit QEMU with Ctrl-A X. With --board rpi4 --linux the console is captured and QEMU
    /// is stopped at the initramfs's last line (raspi4b cannot power off).
    #[command(group(ArgGroup::new("payload").args(["kernel", "linux"])))]
    Run {
        /// The board: qemu-virt, or rpi4 (QEMU -M raspi4b; --smp, --gic, --mem and --cpu
        /// do not apply: the model has 4 Cortex-A72s, a GIC-400 and 2 GiB).
        #[arg(long, default_value = "qemu-virt")]
        board: Board,
        /// rpi4: the UART of hypstub's and Linux's console: mini (the default; Debian's
        /// DTB's stdout-path) or pl011 (the QEMU DTB's stdout-path is changed to it).
        #[arg(long, value_name = "mini|pl011")]
        console: Option<Console>,
        /// Number of CPUs.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        smp: u32,
        /// GIC version: 2 or 3.
        #[arg(long, default_value = "3")]
        gic: Gic,
        /// RAM size, as QEMU's -m reads it [default: 512M, 1G with --linux].
        #[arg(long)]
        mem: Option<String>,
        /// CPU model: max or cortex-a72.
        #[arg(long, default_value = "max")]
        cpu: Cpu,
        /// Payload to boot (qemu-virt: offered to the firmware through fw_cfg, as QEMU's
        /// -kernel; rpi4: put into payload.itb).
        #[arg(long, value_name = "FILE")]
        kernel: Option<PathBuf>,
        /// Initrd for the payload (QEMU's -initrd; needs --kernel).
        #[arg(long, value_name = "FILE", requires = "kernel")]
        initrd: Option<PathBuf>,
        /// Boot Debian's arm64 kernel with the test initramfs (fetched into the cache if
        /// needed, as `cargo xtask assets` does); the command line starts with
        /// console=ttyAMA0 (rpi4: the --console UART's console= and clk_ignore_unused).
        #[arg(long)]
        linux: bool,
        /// The exception level to enter the payload at: adds hypstub.el=1 or 2 to the
        /// command line (needs --kernel or --linux).
        #[arg(long, value_name = "1|2", requires = "payload")]
        el: Option<El>,
        /// Kernel command line, hypstub.* options included (QEMU's -append; needs
        /// --kernel or --linux; with --linux it follows console=ttyAMA0).
        #[arg(long, value_name = "STR", requires = "payload")]
        append: Option<String>,
        /// Wait for a debugger on localhost:1234 before the first instruction (-s -S).
        #[arg(long)]
        gdb: bool,
        /// Kill QEMU after this many seconds and fail (the console is captured, not
        /// interactive) [rpi4 --linux: 300].
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Build the firmware with the dev profile.
        #[arg(long)]
        debug: bool,
    },
    /// Run everything CI runs: rustfmt, clippy (host and target), host unit tests, then
    /// the QEMU integration tests (installing QEMU first when needed and allowed, and
    /// fetching the Linux test assets when the cache lacks them).
    Test,
    /// Measure the relocation engine, then a Linux boot.
    ///
    /// Relocation: 16, 64 and 256 MiB payloads, copied with the EL2 MMU on and off, under
    /// -icount shift=0 (guest instructions, repeatable) and on the wall clock (median of
    /// --runs). Boot: the time from starting QEMU to Linux's first line, through hypstub,
    /// through U-Boot and by QEMU's own direct boot of the same kernel, in rotating rounds,
    /// median of --boot-runs each. Prints tables and the target lines.
    Bench {
        /// Only the relocation part.
        #[arg(long)]
        reloc: bool,
        /// Only the Linux boot part.
        #[arg(long)]
        boot: bool,
        /// Only the Raspberry Pi 4: Debian's kernel through kernel8.img and directly on QEMU
        /// raspi4b under -icount shift=0, one run each (guest instructions, repeatable).
        #[arg(long, conflicts_with_all = ["reloc", "boot"])]
        pi: bool,
        /// Only the sizes: hypstub.bin and kernel8.img, their ELF sections and the RAM the
        /// stub keeps after the hand-off with hypstub.el=1, against 128 KiB and 32 KiB.
        #[arg(long, conflicts_with_all = ["reloc", "boot", "pi"])]
        size: bool,
        /// Linux boot: no early console, so that Linux's first line comes when its PL011
        /// driver registers (about 0.8 s after its entry) instead of at its entry.
        #[arg(long)]
        no_earlycon: bool,
        /// Timed Linux boots of each kind (the median is reported).
        #[arg(long, value_name = "N", default_value_t = bench::boot::DEFAULT_RUNS, value_parser = clap::value_parser!(u32).range(1..))]
        boot_runs: u32,
        /// Payload sizes in MiB, comma-separated.
        #[arg(
            long,
            value_name = "MIB,...",
            value_delimiter = ',',
            default_value = "16,64,256",
            value_parser = bench::parse_size
        )]
        sizes: Vec<u64>,
        /// Wall-clock runs per size and copy mode (the median is reported).
        #[arg(long, value_name = "N", default_value_t = bench::DEFAULT_RUNS, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
    },
    /// Fetch the Linux test assets (Debian's arm64 kernel and busybox, through a private
    /// APT configuration) into the cache, or check the cached ones, and build the
    /// initramfs; prints each file's package, version, SHA-256 and path.
    Assets {
        /// Resolve the kernel package and download everything again, even if the cache
        /// is complete.
        #[arg(long)]
        refresh: bool,
    },
    /// Build the example custom bootloader (examples/pflash-boot, docs/embedding.md) and
    /// boot it on QEMU virt with a FIT in the second flash bank: Debian's kernel and the test
    /// initramfs with --linux, your --kernel (and --initrd), or none (the built-in demo).
    #[command(group(ArgGroup::new("fit").args(["kernel", "linux"])))]
    Example {
        /// Put Debian's arm64 kernel and the test initramfs into the flash image.
        #[arg(long)]
        linux: bool,
        /// Put this arm64 Image into the flash image.
        #[arg(long, value_name = "FILE")]
        kernel: Option<PathBuf>,
        /// With --kernel: put this initrd into the flash image too.
        #[arg(long, value_name = "FILE", requires = "kernel")]
        initrd: Option<PathBuf>,
        /// Kill QEMU after this many seconds and fail [default: 300].
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        timeout: u64,
    },
    /// Boot hypstub on QEMU virt under the cache-model plugin (tools/cachecheck,
    /// docs/cachecheck.md): the demo, a mutant that must be flagged, and Debian's kernel at
    /// EL2 and at EL1, each in the default and the possibly-cached=on mode. Fails on any
    /// violation in hypstub's code.
    Cachecheck {
        /// Stop the Linux boots at the kernel's first console line (else they run until
        /// the initramfs powers off).
        #[arg(long)]
        quick: bool,
        /// Only the demo and the mutant, no Linux.
        #[arg(long)]
        no_linux: bool,
        /// Only the default mode (else possibly-cached=on too).
        #[arg(long)]
        default_only: bool,
    },
    /// Build the fuzz targets of fuzz/ (libFuzzer with coverage from stable codegen flags)
    /// and run each in turn, seeded with real inputs gathered now (QEMU virt's DTBs, Debian's
    /// Pi 4 DTB and kernel header, FITs, command lines); prints each target's figures. A
    /// crash fails, naming the input and how to run it again (docs/fuzzing.md).
    Fuzz {
        /// Seconds per target.
        #[arg(long, value_name = "N", default_value_t = xtask::fuzz::DEFAULT_SECONDS)]
        seconds: u64,
        /// Only this target (image, options, dt, dtfacts, fit, args, list, plan).
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Instead of fuzzing, run these inputs once through --target (a crash's input).
        #[arg(value_name = "INPUT", requires = "target")]
        inputs: Vec<PathBuf>,
    },
    /// Build a test payload (tests/abi-client, tests/el2-client or tests/soak-client);
    /// prints its path as the last line.
    BuildPayload {
        /// The payload (known: abi-client, el2-client, soak-client).
        payload: Payload,
        /// el2-client only: its text_offset and link address (0x4000_0000 + offset), in
        /// hex; e.g. 0x108000 links it over the firmware's own EL1 stage. Written to
        /// target/hypstub/el2-client-<offset>.bin.
        #[arg(long, value_name = "HEX", value_parser = parse_hex)]
        text_offset: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Cmd) -> anyhow::Result<ExitCode> {
    match command {
        Cmd::Build {
            board,
            debug,
            variant,
            kernel,
            initrd,
            dtb,
            append,
            console,
        } => {
            let profile = if debug {
                Profile::Debug
            } else {
                Profile::Release
            };
            let opts = BuildOptions {
                profile,
                quiet: false,
            };
            if board == Board::Rpi4 && variant.is_none() {
                let payload = kernel.map(|kernel| rpi4::PayloadFiles {
                    kernel,
                    initrd,
                    dtb,
                });
                let console = console.unwrap_or_default();
                let cmdline = rpi4::cmdline(console, append.as_deref());
                build_rpi4_folder(opts, payload, cmdline)?;
                return Ok(ExitCode::SUCCESS);
            }
            if kernel.is_some() || append.is_some() || console.is_some() {
                anyhow::bail!(
                    "--kernel, --initrd, --dtb, --append and --console are for --board rpi4 \
                     (its SD-card folder)"
                );
            }
            let built = match variant {
                None => image::build_firmware(board, opts)?,
                Some(variant) => image::build_firmware_variant(board, variant, opts)?,
            };
            let what = match variant {
                None => board.to_string(),
                Some(variant) => format!("{board}, variant {variant}"),
            };
            println!("{what} ({}): {}", profile.dir(), built.size_text());
            println!("{}", absolute(built.image).display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            board,
            console,
            smp,
            gic,
            mem,
            cpu,
            kernel,
            initrd,
            linux,
            el,
            append,
            gdb,
            timeout,
            debug,
        } => {
            let profile = if debug {
                Profile::Debug
            } else {
                Profile::Release
            };
            let el = el.map(El::option);
            if board == Board::Rpi4 {
                let words = [el, append.as_deref()];
                let opts = RunRpi4 {
                    console: console.unwrap_or_default(),
                    kernel,
                    initrd,
                    linux,
                    words: words.into_iter().flatten().map(str::to_owned).collect(),
                    gdb,
                    timeout,
                    profile,
                };
                return run_rpi4(opts);
            }
            if console.is_some() {
                anyhow::bail!("--console is for --board rpi4");
            }
            if board == Board::Rpi4Armstub {
                anyhow::bail!(
                    "the rpi4-armstub is not run on its own: build it with `cargo xtask build \
                     --board rpi4-armstub`; tests/rpi4_armstub.rs boots Linux through it on QEMU \
                     raspi4b (docs/armstub.md)"
                );
            }
            let qemu = qemu::ensure()?;
            let linux_assets = if linux {
                Some(assets::ensure(Fetch::IfMissing)?)
            } else {
                None
            };
            let built = image::build_firmware(
                Board::QemuVirt,
                BuildOptions {
                    profile,
                    quiet: false,
                },
            )?;
            eprintln!("qemu-virt image: {}", built.size_text());
            let mut run = match &linux_assets {
                Some(files) => {
                    let words = [el, append.as_deref()].into_iter().flatten();
                    linux::through_hypstub(
                        &absolute(built.image),
                        files,
                        &linux::command_line(words),
                    )
                }
                None => {
                    let mut run = QemuRun::new(absolute(built.image));
                    run.kernel = kernel;
                    run.initrd = initrd;
                    let words: Vec<&str> = [el, append.as_deref()].into_iter().flatten().collect();
                    run.append = (!words.is_empty()).then(|| words.join(" "));
                    run
                }
            };
            run = run.smp(smp).gic(gic).cpu(cpu);
            if let Some(mem) = mem {
                run = run.mem(mem);
            }
            run.gdb = gdb;
            if gdb {
                eprintln!(
                    "QEMU waits for a debugger; attach with:\n  \
                     gdb-multiarch {} -ex 'target remote localhost:1234'",
                    built.elf.display()
                );
            }
            let capture = timeout.map(|secs| Capture {
                timeout: Duration::from_secs(secs),
                stop_at: None,
                time_of: Vec::new(),
                echo_prefix: Some(String::new()),
            });
            run_qemu(&qemu, &run, capture.as_ref())
        }
        Cmd::Fuzz {
            seconds,
            target,
            inputs,
        } => {
            let qemu = qemu::ensure()?;
            xtask::fuzz::fuzz(&qemu, seconds, target.as_deref(), &inputs)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Test => {
            let summary = checks::run_steps(checks::ci_steps());
            println!("\n==> summary\n{summary}");
            Ok(if summary.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Bench {
            sizes,
            runs,
            reloc,
            boot,
            boot_runs,
            no_earlycon,
            pi,
            size,
        } => {
            if pi {
                return bench_pi();
            }
            if size {
                return bench_size();
            }
            // Neither flag (or both): both parts.
            let (do_reloc, do_boot) = (reloc || !boot, boot || !reloc);
            let qemu = qemu::ensure()?;
            let built = image::build_firmware(Board::QemuVirt, BuildOptions::default())?;
            let linux_assets = if do_boot {
                Some(assets::ensure(Fetch::IfMissing)?)
            } else {
                None
            };
            println!("{}", bench::Host::probe(&qemu));
            println!(
                "firmware: {} ({})",
                absolute(built.image.clone()).display(),
                built.size_text()
            );
            let mut code = ExitCode::SUCCESS;
            if do_reloc {
                code = bench_reloc(&qemu, &built.image, sizes, runs)?;
            }
            if let Some(files) = &linux_assets {
                let console = if no_earlycon {
                    bench::boot::LinuxConsole::Late
                } else {
                    bench::boot::LinuxConsole::Early
                };
                bench_boot(&qemu, &built.image, files, boot_runs, console)?;
            }
            Ok(code)
        }
        Cmd::Cachecheck {
            quick,
            no_linux,
            default_only,
        } => {
            use xtask::cachecheck::{self, Mode, Plan};
            let qemu = qemu::ensure()?;
            let plan = Plan {
                quick,
                linux: !no_linux,
                modes: if default_only {
                    &[Mode::Default]
                } else {
                    &Mode::ALL
                },
            };
            Ok(if cachecheck::run_all(&qemu, plan)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Assets { refresh } => {
            let fetch = if refresh {
                Fetch::Refresh
            } else {
                Fetch::IfMissing
            };
            assets::ensure(fetch)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Example {
            linux,
            kernel,
            initrd,
            timeout,
        } => {
            let qemu = qemu::ensure()?;
            let built = image::build_example(BuildOptions::default())?;
            println!("pflash-boot: {}", built.size_text());
            let flash = xtask::output_dir().join("pflash-boot-flash.img");
            let files = match (linux, kernel) {
                (true, _) => {
                    let assets = assets::ensure(Fetch::IfMissing)?;
                    Some((assets.kernel.clone(), Some(assets.initramfs.clone())))
                }
                (false, Some(kernel)) => Some((kernel, initrd)),
                (false, None) => None,
            };
            match &files {
                Some((kernel, initrd)) => {
                    xtask::example::write_flash(kernel, initrd.as_deref(), &flash)?
                }
                None => std::fs::write(&flash, vec![0u8; xtask::example::FLASH_BANK_SIZE])
                    .with_context(|| format!("writing {}", flash.display()))?,
            }
            println!("second flash bank: {}", flash.display());
            let run = xtask::example::machine(&absolute(built.image), &flash)
                .mem(linux::MEM)
                .smp(2);
            let capture = Capture {
                timeout: Duration::from_secs(timeout),
                stop_at: None,
                time_of: Vec::new(),
                echo_prefix: Some(String::new()),
            };
            run_qemu(&qemu, &run, Some(&capture))
        }
        Cmd::BuildPayload {
            payload,
            text_offset,
        } => {
            let opts = BuildOptions::default();
            let built = match (payload, text_offset) {
                (Payload::El2Client, Some(offset)) => image::build_el2_client(offset, opts)?,
                (_, Some(_)) => anyhow::bail!("--text-offset is for el2-client only"),
                (payload, None) => image::build_payload(payload, opts)?,
            };
            println!("{payload}: {}", built.size_text());
            println!("{}", absolute(built.image).display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Builds the rpi4 firmware and writes the SD-card folder around it; prints each file with
/// its size, then the folder's path as the last line.
fn build_rpi4_folder(
    opts: BuildOptions,
    payload: Option<rpi4::PayloadFiles>,
    cmdline: String,
) -> anyhow::Result<(image::Built, rpi4::Folder)> {
    let built = image::build_firmware(Board::Rpi4, opts)?;
    let spec = rpi4::FolderSpec {
        kernel8: built.image.clone(),
        payload,
        cmdline,
        armstub: None,
    };
    let folder = rpi4::write_folder(&rpi4::folder(), &spec)?;
    for note in &folder.notes {
        println!("{note}");
    }
    println!("rpi4 ({}): SD-card folder", opts.profile.dir());
    println!("{}", folder.listing());
    println!("{}", absolute(folder.dir.clone()).display());
    Ok((built, folder))
}

/// What `run --board rpi4` was asked for.
struct RunRpi4 {
    console: Console,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    linux: bool,
    /// `hypstub.el=` and `--append`, in that order.
    words: Vec<String>,
    gdb: bool,
    timeout: Option<u64>,
    profile: Profile,
}

/// How long `run --board rpi4 --linux` waits for the initramfs's last line by default (a
/// boot through QEMU's own loader takes about 10 s on a 2-CPU machine).
const RPI4_LINUX_TIMEOUT: u64 = 300;

/// `run --board rpi4`: the folder (with --linux: Debian's kernel and the test initramfs
/// as the payload), Debian's DTB prepared for QEMU, and QEMU raspi4b booting kernel8.img.
fn run_rpi4(opts: RunRpi4) -> anyhow::Result<ExitCode> {
    let qemu = qemu::ensure()?;
    // The DTB comes from Debian's kernel package even without --linux: raspi4b needs one.
    let files = assets::ensure(Fetch::IfMissing)?;
    let debian_dtb = files.rpi4_dtb.as_ref().context(
        "the cached kernel package has no bcm2711-rpi-4-b.dtb (see `cargo xtask assets`)",
    )?;
    let payload = match (opts.linux, opts.kernel) {
        (true, _) => Some(rpi4::PayloadFiles {
            kernel: files.kernel.clone(),
            initrd: Some(files.initramfs.clone()),
            dtb: None,
        }),
        (false, Some(kernel)) => Some(rpi4::PayloadFiles {
            kernel,
            initrd: opts.initrd,
            dtb: None,
        }),
        (false, None) => None,
    };
    let cmdline = rpi4::cmdline(opts.console, opts.words.iter().map(String::as_str));
    let build = BuildOptions {
        profile: opts.profile,
        quiet: false,
    };
    let (built, folder) = build_rpi4_folder(build, payload, cmdline.clone())?;
    let dtb = rpi4::write_qemu_dtb(debian_dtb, opts.console)?;
    eprintln!(
        "QEMU DTB: {} (Debian's, with {} disabled{})",
        dtb.display(),
        rpi4::QEMU_DISABLED_NODES.join(", "),
        match opts.console {
            rpi4::Console::MiniUart => String::new(),
            console => format!("; stdout-path {}", console.stdout_path()),
        }
    );
    eprintln!("console: {}", opts.console.describe());
    if opts.console == rpi4::Console::MiniUart {
        eprintln!(
            "note: `{}` follows the cmdline.txt words on QEMU only: QEMU's mini-UART cannot \
             be Linux's /dev/console (docs/xtask.md)",
            rpi4::QEMU_TTY_CONSOLE
        );
    }
    let mut run = rpi4::machine(&folder, &dtb, &rpi4::qemu_append(&cmdline, opts.console));
    run.gdb = opts.gdb;
    if opts.gdb {
        let elf = built.elf;
        eprintln!(
            "QEMU waits for a debugger; attach with:\n  \
             gdb-multiarch {} -ex 'target remote localhost:1234'",
            elf.display()
        );
    }
    let timeout = opts.timeout.or(opts.linux.then_some(RPI4_LINUX_TIMEOUT));
    let capture = timeout.map(|secs| Capture {
        timeout: Duration::from_secs(secs),
        stop_at: opts.linux.then(|| linux::MARKER_DONE.to_owned()),
        time_of: Vec::new(),
        echo_prefix: Some(String::new()),
    });
    run_qemu(&qemu, &run, capture.as_ref())
}

/// Runs `run` at the terminal, or captured (echoed as it comes) when `capture` is given;
/// QEMU's exit status is ours, and stopping at `capture.stop_at` is a success.
fn run_qemu(qemu: &Qemu, run: &QemuRun, capture: Option<&Capture>) -> anyhow::Result<ExitCode> {
    match capture {
        None => {
            let mut cmd = run.interactive_command(qemu);
            println!("{}", display_command(&cmd));
            let status = cmd
                .status()
                .with_context(|| format!("could not start {}", qemu.path.display()))?;
            Ok(exit_code(status))
        }
        Some(capture) => {
            println!("{}", display_command(&run.captured_command(qemu)));
            let outcome = run.run_captured(qemu, capture)?;
            if outcome.stopped_at_marker {
                eprintln!(
                    "stopped QEMU at `{}` after {:.1} s",
                    capture.stop_at.as_deref().unwrap_or_default(),
                    outcome.elapsed.as_secs_f32()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Ok(exit_code(outcome.status))
        }
    }
}

/// The relocation part of `bench`: prints its tables; fails the exit code if the
/// page-table pages depend on the payload's size.
fn bench_reloc(
    qemu: &Qemu,
    firmware: &Path,
    sizes: Vec<u64>,
    runs: u32,
) -> anyhow::Result<ExitCode> {
    let opts = bench::Options {
        sizes_mib: sizes,
        runs,
    };
    if let Some(&mib) = opts.sizes_mib.first() {
        let example = bench::machine(
            firmware,
            &bench::payload::path(mib),
            bench::CopyMode::Mmu,
            true,
        );
        println!(
            "machine (first case, icount run): {}\n",
            display_command(&example.captured_command(qemu))
        );
    }
    let report = bench::run(qemu, firmware, &opts)?;
    println!("{}", report.table());
    println!("{}", report.target_line());
    match report.table_pages_check() {
        Ok(text) => {
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(text) => {
            println!("{text}");
            eprintln!("error: the EL2 identity map's size depends on the payload's");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The Linux boot part of `bench`: gets U-Boot and writes its environment, prints the
/// machines, the table, the added times and the target line.
fn bench_boot(
    qemu: &Qemu,
    hypstub: &Path,
    files: &assets::LinuxAssets,
    runs: u32,
    console: bench::boot::LinuxConsole,
) -> anyhow::Result<()> {
    use bench::boot::{self, Kind};
    let firmware = boot::Firmware {
        hypstub: hypstub.to_owned(),
        uboot: assets::uboot()?,
        uboot_env: xtask::output_dir().join("bench").join("u-boot-env.img"),
    };
    boot::write_uboot_env(&firmware.uboot_env)?;
    println!(
        "\nU-Boot's environment ({}, {} bytes of flash bank 1, CRC-32 checked):\n{}",
        firmware.uboot_env.display(),
        bench::uboot::ENV_SIZE,
        bench::uboot::describe(&bench::uboot::ENV)
    );
    for kind in Kind::ALL {
        let machine = boot::machine(kind, &firmware, files, console);
        println!(
            "Linux boot, {}: {}",
            kind.name(),
            display_command(&machine.captured_command(qemu))
        );
    }
    println!();
    let report = boot::run(qemu, &firmware, files, runs, console)?;
    println!("{}", report.table());
    println!("{}", report.added_line());
    println!("{}", report.target_line());
    if let Some(line) = report.firmware_line() {
        println!("{line}");
    }
    Ok(())
}

/// `cargo xtask bench --size`: both boards' images, release builds.
fn bench_size() -> anyhow::Result<ExitCode> {
    use bench::size::{self, Layout};
    for (board, layout) in [(Board::QemuVirt, Layout::Flash), (Board::Rpi4, Layout::Ram)] {
        let built = image::build_firmware(board, BuildOptions::default())?;
        let report = size::measure(&built, layout)?;
        println!(
            "\n{} ({}):\n{}",
            board.name(),
            built.elf.display(),
            report.block()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask bench --pi`.
fn bench_pi() -> anyhow::Result<ExitCode> {
    let qemu = qemu::ensure()?;
    let built = image::build_firmware(Board::Rpi4, BuildOptions::default())?;
    let files = assets::ensure(Fetch::IfMissing)?;
    println!("{}", bench::Host::probe(&qemu));
    println!(
        "firmware: {} ({})",
        absolute(built.image.clone()).display(),
        built.size_text()
    );
    let dir = xtask::output_dir().join("bench-pi");
    let report = bench::pi::run(&qemu, &built.image, &files, &dir)?;
    println!("{}", report.table());
    Ok(ExitCode::SUCCESS)
}

/// QEMU's exit status as ours; a signal becomes 128 + its number, as in a shell.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return ExitCode::from(128u8.saturating_add(u8::try_from(signal).unwrap_or(127)));
        }
    }
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

/// Reads a hex number, with or without `0x` (`_` separators allowed).
fn parse_hex(text: &str) -> Result<u64, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text)
        .replace('_', "");
    u64::from_str_radix(&digits, 16).map_err(|e| format!("`{text}` is not a hex number: {e}"))
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}
