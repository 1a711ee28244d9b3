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
    /// rpi4-armstub: target/hypstub/rpi4/armstub8-hypstub.bin, for `armstub=` in the Pi 4's
    /// config.txt (docs/armstub.md).
    Build {
        /// The board (known: qemu-virt, rpi4-armstub).
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
    },
    /// Build the qemu-virt firmware and boot it on QEMU (the built-in demo unless --kernel
    /// or --linux).
    ///
    /// QEMU 9.0 or later is needed; as root on Debian or Ubuntu it is installed if missing.
    /// Quit QEMU with Ctrl-A X.
    #[command(group(ArgGroup::new("payload").args(["kernel", "linux"])))]
    Run {
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
        /// Payload to boot (offered to the firmware through fw_cfg, as QEMU's -kernel).
        #[arg(long, value_name = "FILE")]
        kernel: Option<PathBuf>,
        /// Initrd for the payload (QEMU's -initrd; needs --kernel).
        #[arg(long, value_name = "FILE", requires = "kernel")]
        initrd: Option<PathBuf>,
        /// Boot Debian's arm64 kernel with the test initramfs (fetched into the cache if
        /// needed, as `cargo xtask assets` does); the command line starts with
        /// console=ttyAMA0.
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
        /// interactive).
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
    /// --runs). Boot: the time from starting QEMU to the initramfs's last line, through
    /// hypstub against QEMU's own direct boot of the same kernel, alternating, median of
    /// --boot-runs each. Prints tables and the target lines.
    Bench {
        /// Only the relocation part.
        #[arg(long)]
        reloc: bool,
        /// Only the Linux boot part.
        #[arg(long)]
        boot: bool,
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
    /// Build a test payload (tests/payload or tests/el2-client); prints its path as the
    /// last line.
    BuildPayload {
        /// The payload (known: abi-client, el2-client).
        payload: Payload,
        /// el2-client only: its text_offset and link address (0x4000_0000 + offset), in
        /// hex; e.g. 0x120000 links it over the firmware's own EL1 stage. Written to
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
            let qemu = qemu::ensure()?;
            let linux_assets = if linux {
                Some(assets::ensure(Fetch::IfMissing)?)
            } else {
                None
            };
            let profile = if debug {
                Profile::Debug
            } else {
                Profile::Release
            };
            let built = image::build_firmware(
                Board::QemuVirt,
                BuildOptions {
                    profile,
                    quiet: false,
                },
            )?;
            eprintln!("qemu-virt image: {}", built.size_text());
            let el = el.map(El::option);
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
            match timeout {
                None => {
                    let mut cmd = run.interactive_command(&qemu);
                    println!("{}", display_command(&cmd));
                    let status = cmd
                        .status()
                        .with_context(|| format!("could not start {}", qemu.path.display()))?;
                    Ok(exit_code(status))
                }
                Some(secs) => {
                    let capture = Capture {
                        timeout: Duration::from_secs(secs),
                        stop_at: None,
                        time_of: Vec::new(),
                        echo_prefix: Some(String::new()),
                    };
                    println!("{}", display_command(&run.captured_command(&qemu)));
                    let outcome = run.run_captured(&qemu, &capture)?;
                    Ok(exit_code(outcome.status))
                }
            }
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
        } => {
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
                bench_boot(&qemu, &built.image, files, boot_runs)?;
            }
            Ok(code)
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

/// The Linux boot part of `bench`: prints the machine, the table and the target line.
fn bench_boot(
    qemu: &Qemu,
    firmware: &Path,
    files: &assets::LinuxAssets,
    runs: u32,
) -> anyhow::Result<()> {
    let example = bench::boot::machine(bench::boot::Kind::Hypstub, firmware, files);
    println!(
        "\nLinux boot, hypstub: {}",
        display_command(&example.captured_command(qemu))
    );
    let direct = bench::boot::machine(bench::boot::Kind::Direct, firmware, files);
    println!(
        "Linux boot, direct:  {}\n",
        display_command(&direct.captured_command(qemu))
    );
    let report = bench::boot::run(qemu, firmware, files, runs)?;
    println!("{}", report.table());
    println!("{}", report.target_line());
    if let Some(line) = report.firmware_line() {
        println!("{line}");
    }
    Ok(())
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
