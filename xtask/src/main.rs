//! `cargo xtask`: the front door for building, running and testing hypstub.
//!
//! Each subcommand is a thin layer over the `xtask` library, which the integration tests
//! use too. See docs/xtask.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use xtask::image::{self, Board, BuildOptions, Payload, Profile};
use xtask::runner::{Capture, Cpu, Gic, QemuRun};
use xtask::{checks, display_command, qemu};

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
    Build {
        /// The board (known: qemu-virt).
        #[arg(long, default_value = "qemu-virt")]
        board: Board,
        /// Build with the dev profile instead of --release.
        #[arg(long)]
        debug: bool,
    },
    /// Build the qemu-virt firmware and boot it on QEMU (the built-in demo unless --kernel).
    ///
    /// QEMU 9.0 or later is needed; as root on Debian or Ubuntu it is installed if missing.
    /// Quit QEMU with Ctrl-A X.
    Run {
        /// Number of CPUs.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        smp: u32,
        /// GIC version: 2 or 3.
        #[arg(long, default_value = "3")]
        gic: Gic,
        /// RAM size, as QEMU's -m reads it.
        #[arg(long, default_value = "512M")]
        mem: String,
        /// CPU model: max or cortex-a72.
        #[arg(long, default_value = "max")]
        cpu: Cpu,
        /// Payload to boot (offered to the firmware through fw_cfg, as QEMU's -kernel).
        #[arg(long, value_name = "FILE")]
        kernel: Option<PathBuf>,
        /// Initrd for the payload (QEMU's -initrd; needs --kernel).
        #[arg(long, value_name = "FILE", requires = "kernel")]
        initrd: Option<PathBuf>,
        /// Kernel command line, hypstub.* options included (QEMU's -append; needs
        /// --kernel).
        #[arg(long, value_name = "STR", requires = "kernel")]
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
    /// the QEMU integration tests (installing QEMU first when needed and allowed).
    Test,
    /// Print the relocation and boot benchmark figures.
    Bench,
    /// Build a test payload from tests/payload; prints its path as the last line.
    BuildPayload {
        /// The payload (known: abi-client).
        payload: Payload,
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
        Cmd::Build { board, debug } => {
            let profile = if debug {
                Profile::Debug
            } else {
                Profile::Release
            };
            let built = image::build_firmware(
                board,
                BuildOptions {
                    profile,
                    quiet: false,
                },
            )?;
            println!("{board} ({}): {}", profile.dir(), built.size_text());
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
            append,
            gdb,
            timeout,
            debug,
        } => {
            let qemu = qemu::ensure()?;
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
            let mut run = QemuRun::new(absolute(built.image))
                .smp(smp)
                .gic(gic)
                .mem(mem)
                .cpu(cpu);
            run.kernel = kernel;
            run.initrd = initrd;
            run.append = append;
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
        Cmd::Bench => {
            println!(
                "cargo xtask bench: the relocation and boot benchmarks arrive with the \
                 relocation engine; nothing to measure yet"
            );
            Ok(ExitCode::from(2))
        }
        Cmd::BuildPayload { payload } => {
            let built = image::build_payload(payload, BuildOptions::default())?;
            println!("{payload}: {}", built.size_text());
            println!("{}", absolute(built.image).display());
            Ok(ExitCode::SUCCESS)
        }
    }
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

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}
