//! One QEMU run, on `virt` or `raspi4b`: the machine as data ([`QemuRun`]), started either
//! interactively or with the serial console captured ([`QemuRun::run_captured`]).
//!
//! A captured run never hangs a test: it has a timeout, after which QEMU is killed and the
//! error carries the log so far. The log is also echoed line by line to stderr (through
//! `eprintln!`, so a test harness shows it only for tests that fail).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::display_command;
use crate::qemu::Qemu;

/// `Display` and `FromStr` for an option enum spelled by a fixed name per variant; any
/// other name is refused with the message `what`, followed by ", not `<name>`".
macro_rules! named_values {
    ($ty:ident, $what:literal { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $($ty::$variant => $name,)+
                })
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(format!(concat!($what, ", not `{}`"), s)),
                }
            }
        }
    };
}

/// Builder methods of [`QemuRun`]: `field: Type = |value| stored;` makes
/// `pub fn field(mut self, value: Type) -> Self` that sets `self.field = stored`.
macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = |$value:ident| $stored:expr;)+) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, $value: $ty) -> Self {
                self.$field = $stored;
                self
            }
        )+
    };
}

/// GIC version of the `virt` machine (`gic-version=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gic {
    /// GICv2 (at most 8 CPUs), like the Raspberry Pi 4's GIC-400.
    V2,
    /// GICv3.
    #[default]
    V3,
}

named_values!(Gic, "GIC version must be 2 or 3" {
    V2 => "2",
    V3 => "3",
});

/// CPU model (`-cpu`). QEMU's default `virt` CPU is 32-bit, so one is always given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cpu {
    /// Every feature QEMU emulates.
    #[default]
    Max,
    /// The Raspberry Pi 4's core.
    CortexA72,
}

named_values!(Cpu, "CPU must be max or cortex-a72" {
    Max => "max",
    CortexA72 => "cortex-a72",
});

/// The QEMU machine model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    /// `-M virt,virtualization=on,gic-version=N -cpu C -smp N`: one serial port (PL011).
    #[default]
    Virt,
    /// `-M raspi4b` (QEMU 9.0+): four Cortex-A72s and a GIC-400, always; `-smp`, `-cpu`
    /// and the GIC version are fixed by the model and left out. Two serial ports: the
    /// PL011 (QEMU's first, the DTB's `serial0`) and the mini-UART (second, `serial1`),
    /// both captured into the one log. `-kernel` is a raw image QEMU enters at EL2 at
    /// 0x80000 (0x200000 with an arm64 header), x0 = the `-dtb` it loaded.
    Raspi4b,
}

/// A QEMU machine: by default `-M virt,virtualization=on` booting a hypstub image from
/// flash (or, for comparison, QEMU's own direct kernel boot: [`QemuRun::direct`]);
/// [`QemuRun::raspi4b`] for the Raspberry Pi 4 model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuRun {
    /// The machine model.
    pub machine: Machine,
    /// The `-bios` flash image; `None` for QEMU's own boot of `-kernel` (it loads the
    /// kernel, initrd and DTB into RAM itself and enters the kernel at EL2).
    pub image: Option<PathBuf>,
    /// Number of CPUs (`-smp`).
    pub smp: u32,
    /// GIC version.
    pub gic: Gic,
    /// RAM size as QEMU reads it (`-m`), e.g. `512M`.
    pub mem: String,
    /// CPU model.
    pub cpu: Cpu,
    /// Payload offered through fw_cfg (`-kernel`).
    pub kernel: Option<PathBuf>,
    /// Initrd offered through fw_cfg (`-initrd`).
    pub initrd: Option<PathBuf>,
    /// Command line (`-append`), `hypstub.*` options included.
    pub append: Option<String>,
    /// The device tree QEMU loads and passes in x0 (`-dtb`; raspi4b needs one, else x0
    /// points at ATAGs).
    pub dtb: Option<PathBuf>,
    /// Wait for a debugger on TCP port 1234 (`-s -S`).
    pub gdb: bool,
    /// Anything else, appended last.
    pub extra_args: Vec<OsString>,
}

impl QemuRun {
    /// One CPU, GICv3, 512 MiB, `-cpu max`, no payload: the built-in demo.
    pub fn new(image: impl Into<PathBuf>) -> Self {
        QemuRun {
            machine: Machine::Virt,
            image: Some(image.into()),
            smp: 1,
            gic: Gic::V3,
            mem: "512M".into(),
            cpu: Cpu::Max,
            kernel: None,
            initrd: None,
            append: None,
            dtb: None,
            gdb: false,
            extra_args: Vec::new(),
        }
    }

    /// QEMU `-M raspi4b -m 2G` booting `kernel` (a raw image: hypstub's `kernel8.img`, or
    /// a Linux `Image` booted directly), no DTB, initrd or command line yet.
    pub fn raspi4b(kernel: impl Into<PathBuf>) -> Self {
        QemuRun {
            machine: Machine::Raspi4b,
            image: None,
            kernel: Some(kernel.into()),
            cpu: Cpu::CortexA72,
            gic: Gic::V2,
            smp: RASPI4B_CPUS,
            mem: RASPI4B_MEM.into(),
            ..QemuRun::new("")
        }
    }

    /// No firmware: QEMU boots `-kernel` itself (hw/arm/boot.c), entering it at EL2 with
    /// the same machine otherwise. For comparing a boot through hypstub with QEMU's own.
    pub fn direct(kernel: impl Into<PathBuf>) -> Self {
        QemuRun {
            image: None,
            kernel: Some(kernel.into()),
            ..QemuRun::new("")
        }
    }

    setters! {
        /// Sets the number of CPUs.
        smp: u32 = |smp| smp;
        /// Sets the GIC version.
        gic: Gic = |gic| gic;
        /// Sets the RAM size.
        mem: impl Into<String> = |mem| mem.into();
        /// Sets the CPU model.
        cpu: Cpu = |cpu| cpu;
        /// Sets the payload.
        kernel: impl Into<PathBuf> = |kernel| Some(kernel.into());
        /// Sets the initrd.
        initrd: impl Into<PathBuf> = |initrd| Some(initrd.into());
        /// Sets the command line.
        append: impl Into<String> = |append| Some(append.into());
        /// Sets the device tree.
        dtb: impl Into<PathBuf> = |dtb| Some(dtb.into());
    }

    /// Adds an argument at the end.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.extra_args.push(arg.as_ref().to_owned());
        self
    }

    /// The arguments that describe the machine and what it boots (no console options).
    pub fn machine_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &dyn AsRef<OsStr>| args.push(a.as_ref().to_owned());
        match self.machine {
            Machine::Virt => {
                push(&"-M");
                push(&format!("virt,virtualization=on,gic-version={}", self.gic));
                push(&"-cpu");
                push(&self.cpu.to_string());
                push(&"-smp");
                push(&self.smp.to_string());
            }
            Machine::Raspi4b => {
                push(&"-M");
                push(&"raspi4b");
            }
        }
        push(&"-m");
        push(&self.mem);
        let optional: [(&str, Option<&OsStr>); 5] = [
            ("-bios", self.image.as_deref().map(Path::as_os_str)),
            ("-kernel", self.kernel.as_deref().map(Path::as_os_str)),
            ("-dtb", self.dtb.as_deref().map(Path::as_os_str)),
            ("-initrd", self.initrd.as_deref().map(Path::as_os_str)),
            ("-append", self.append.as_deref().map(OsStr::new)),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                push(&flag);
                push(&value);
            }
        }
        if self.gdb {
            push(&"-s");
            push(&"-S");
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The command for a person at a terminal: console and QEMU's monitor multiplexed on
    /// stdio (Ctrl-A X quits; on raspi4b Ctrl-A C moves the keyboard on from the PL011 to
    /// the mini-UART and then the monitor), `-no-reboot` so a guest reset ends QEMU.
    pub fn interactive_command(&self, qemu: &Qemu) -> Command {
        let mut cmd = Command::new(&qemu.path);
        cmd.args(self.machine_args());
        match self.machine {
            Machine::Virt => cmd.args(["-nographic", "-no-reboot"]),
            Machine::Raspi4b => cmd.args(["-display", "none"]).args(RASPI4B_SERIALS).args([
                "-mon",
                "chardev=serial,mode=readline",
                "-no-reboot",
            ]),
        };
        cmd
    }

    /// The command for a captured run: serial console on stdout (on raspi4b both serial
    /// ports, multiplexed), no monitor, no display, nothing read from stdin, `-no-reboot`.
    pub fn captured_command(&self, qemu: &Qemu) -> Command {
        let mut cmd = Command::new(&qemu.path);
        cmd.args(self.machine_args()).args(["-display", "none"]);
        match self.machine {
            Machine::Virt => cmd.args(["-serial", "stdio"]),
            Machine::Raspi4b => cmd.args(RASPI4B_SERIALS),
        };
        cmd.args(["-monitor", "none", "-no-reboot"]);
        cmd
    }

    /// Runs QEMU with the serial console captured, until it exits, `capture.stop_at`
    /// appears in the log (QEMU is then killed), or `capture.timeout` passes (QEMU is
    /// killed and the error holds the log so far).
    pub fn run_captured(&self, qemu: &Qemu, capture: &Capture) -> Result<RunOutcome, RunError> {
        let mut cmd = self.captured_command(qemu);
        let command = display_command(&cmd);
        let start = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RunError::Spawn {
                command: command.clone(),
                source,
            })?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        // The reader notes when each marker arrives, so its time does not depend on how
        // often this loop polls.
        let watches: Vec<Watch> = capture
            .stop_at
            .iter()
            .chain(&capture.time_of)
            .map(|marker| Watch {
                marker: marker.as_bytes().to_vec(),
                seen: Arc::new(OnceLock::new()),
            })
            .collect();
        let seen: Vec<Arc<OnceLock<Instant>>> =
            watches.iter().map(|w| Arc::clone(&w.seen)).collect();
        let (stop_seen, noted) = match capture.stop_at {
            Some(_) => (seen.first(), &seen[1..]),
            None => (None, &seen[..]),
        };
        let readers = [
            child
                .stdout
                .take()
                .map(|out| echo_into(out, Arc::clone(&log), capture.echo_prefix.clone(), watches)),
            child.stderr.take().map(|err| {
                let prefix = capture.echo_prefix.as_ref().map(|p| format!("{p}(qemu) "));
                echo_into(err, Arc::clone(&errors), prefix, Vec::new())
            }),
        ];

        let (status, stopped_at_marker) = loop {
            if let Some(status) = child.try_wait().map_err(RunError::Wait)? {
                break (status, false);
            }
            if stop_seen.is_some_and(|seen| seen.get().is_some()) {
                break (kill(&mut child)?, true);
            }
            if start.elapsed() >= capture.timeout {
                kill(&mut child)?;
                let (log, stderr) = collect(readers, &log, &errors);
                return Err(RunError::Timeout {
                    after: capture.timeout,
                    command,
                    log,
                    stderr,
                });
            }
            thread::sleep(Duration::from_millis(10));
        };
        let elapsed = start.elapsed();
        let (log, stderr) = collect(readers, &log, &errors);
        Ok(RunOutcome {
            status,
            log,
            stderr,
            stopped_at_marker,
            marker_after: stop_seen
                .and_then(|seen| seen.get())
                .map(|&at| at.duration_since(start)),
            times: noted
                .iter()
                .map(|seen| seen.get().map(|&at| at.duration_since(start)))
                .collect(),
            elapsed,
            command,
        })
    }
}

/// raspi4b's CPUs: four Cortex-A72s, always.
pub const RASPI4B_CPUS: u32 = 4;

/// raspi4b's RAM: the model's board revision (0xb03115) is a 2 GiB Pi 4, and QEMU refuses
/// any other `-m`.
pub const RASPI4B_MEM: &str = "2G";

/// Both raspi4b serial ports (PL011 first, mini-UART second) into one stdio chardev
/// (`mux=on`): each port's output goes to stdout as it comes, so a captured log holds both
/// in the order QEMU wrote them.
const RASPI4B_SERIALS: [&str; 6] = [
    "-chardev",
    "stdio,id=serial,mux=on",
    "-serial",
    "chardev:serial",
    "-serial",
    "chardev:serial",
];

/// How to capture a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Kill QEMU and fail after this long.
    pub timeout: Duration,
    /// Kill QEMU (successfully) as soon as the serial log contains this.
    pub stop_at: Option<String>,
    /// Note when each of these first appears in the serial log ([`RunOutcome::times`]).
    pub time_of: Vec<String>,
    /// Echo each console line to stderr behind this prefix; `None` is silent.
    pub echo_prefix: Option<String>,
}

impl Capture {
    /// A timeout, no marker, echo behind `[qemu] `.
    pub fn with_timeout(timeout: Duration) -> Self {
        Capture {
            timeout,
            stop_at: None,
            time_of: Vec::new(),
            echo_prefix: Some("[qemu] ".into()),
        }
    }
}

/// What a captured run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// QEMU's exit status (a kill, if it was stopped at the marker).
    pub status: ExitStatus,
    /// Everything the guest wrote to the serial console (lossy UTF-8).
    pub log: String,
    /// What QEMU itself wrote to stderr (its own errors and warnings).
    pub stderr: String,
    /// QEMU was stopped because [`Capture::stop_at`] appeared.
    pub stopped_at_marker: bool,
    /// When the serial console delivered [`Capture::stop_at`], counted from the spawn
    /// (`None` without a marker, or if it never came).
    pub marker_after: Option<Duration>,
    /// When the serial console delivered each of [`Capture::time_of`], counted from the
    /// spawn (`None` for one that never came).
    pub times: Vec<Option<Duration>>,
    /// Wall-clock time from spawn to exit.
    pub elapsed: Duration,
    /// The command line, for messages.
    pub command: String,
}

/// A captured run that did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// QEMU could not be started.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for or killing QEMU failed.
    #[error("lost track of QEMU: {0}")]
    Wait(std::io::Error),
    /// QEMU ran past the timeout and was killed.
    #[error(
        "QEMU did not finish within {} s and was killed\ncommand: {command}\n\
         --- serial log so far ---\n{log}\n--- QEMU stderr ---\n{stderr}\n--- end ---",
        after.as_secs_f32()
    )]
    Timeout {
        /// The timeout.
        after: Duration,
        /// The command line.
        command: String,
        /// The serial log up to the kill.
        log: String,
        /// QEMU's own stderr up to the kill.
        stderr: String,
    },
}

/// A marker to look for in a stream, and where to note when it first arrived.
struct Watch {
    marker: Vec<u8>,
    seen: Arc<OnceLock<Instant>>,
}

/// Reads `from` to its end into `into`, echoing complete lines behind `prefix` and noting
/// when each of `watches` arrives.
fn echo_into(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
    prefix: Option<String>,
    watches: Vec<Watch>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut line = Vec::new();
        let echo = |line: &[u8]| {
            if let Some(prefix) = &prefix {
                let text = String::from_utf8_lossy(line);
                eprintln!("{prefix}{}", text.trim_end_matches(['\r', '\n']));
            }
        };
        // Where the search for each marker resumes.
        let mut searched = vec![0; watches.len()];
        // A read error ends the capture like EOF: the child is gone either way.
        while let Ok(n @ 1..) = from.read(&mut buf) {
            let arrived = Instant::now();
            {
                let mut all = into.lock().unwrap_or_else(PoisonError::into_inner);
                all.extend_from_slice(&buf[..n]);
                for (w, from) in watches.iter().zip(&mut searched) {
                    if w.seen.get().is_none() {
                        if contains_from(&all, &w.marker, *from) {
                            let _ = w.seen.set(arrived);
                        }
                        *from = all.len().saturating_sub(w.marker.len());
                    }
                }
            }
            for &byte in &buf[..n] {
                line.push(byte);
                if byte == b'\n' {
                    echo(&line);
                    line.clear();
                }
            }
        }
        if !line.is_empty() {
            echo(&line);
        }
    })
}

fn kill(child: &mut Child) -> Result<ExitStatus, RunError> {
    // The child may exit on its own between the check and the kill; wait() settles it.
    let _ = child.kill();
    child.wait().map_err(RunError::Wait)
}

/// Waits for the reader threads to drain QEMU's pipes and returns the serial log and
/// QEMU's stderr.
fn collect(
    readers: [Option<JoinHandle<()>>; 2],
    log: &Mutex<Vec<u8>>,
    errors: &Mutex<Vec<u8>>,
) -> (String, String) {
    // QEMU has exited, so the pipes reach EOF at once, unless something QEMU started
    // still holds them open; then give up waiting after a grace period and leave the
    // thread behind rather than hang.
    let deadline = Instant::now() + Duration::from_secs(2);
    for reader in readers.into_iter().flatten() {
        while !reader.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if reader.is_finished() {
            // A panicking reader only loses echo; what it read is already in the buffer.
            let _ = reader.join();
        }
    }
    let text = |m: &Mutex<Vec<u8>>| {
        String::from_utf8_lossy(&m.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    };
    (text(log), text(errors))
}

fn contains_from(haystack: &[u8], needle: &[u8], from: usize) -> bool {
    haystack
        .get(from..)
        .is_some_and(|rest| rest.windows(needle.len().max(1)).any(|w| w == needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Version;

    fn fake_qemu(path: &str) -> Qemu {
        Qemu {
            path: path.into(),
            version: Version {
                major: 10,
                minor: 0,
                patch: 2,
            },
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn demo_command_line() {
        let run = QemuRun::new("/img/hypstub.bin");
        let cmd = run.interactive_command(&fake_qemu("qemu-system-aarch64"));
        assert_eq!(
            args(&cmd).join(" "),
            "-M virt,virtualization=on,gic-version=3 -cpu max -smp 1 -m 512M \
             -bios /img/hypstub.bin -nographic -no-reboot"
        );
    }

    #[test]
    fn full_command_line() {
        let run = QemuRun::new("/img/hypstub.bin")
            .smp(4)
            .gic(Gic::V2)
            .mem("256M")
            .cpu(Cpu::CortexA72)
            .kernel("/k")
            .initrd("/i")
            .append("hypstub.el=1 quiet")
            .arg("-icount")
            .arg("shift=0");
        let run = QemuRun { gdb: true, ..run };
        let args = args(&run.captured_command(&fake_qemu("q")));
        assert_eq!(
            args,
            [
                "-M",
                "virt,virtualization=on,gic-version=2",
                "-cpu",
                "cortex-a72",
                "-smp",
                "4",
                "-m",
                "256M",
                "-bios",
                "/img/hypstub.bin",
                "-kernel",
                "/k",
                "-initrd",
                "/i",
                "-append",
                "hypstub.el=1 quiet",
                "-s",
                "-S",
                "-icount",
                "shift=0",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-monitor",
                "none",
                "-no-reboot",
            ]
        );
    }

    #[test]
    fn raspi4b_command_lines() {
        let run = QemuRun::raspi4b("/f/kernel8.img")
            .dtb("/q/pi.dtb")
            .initrd("/f/payload.itb")
            .append("console=ttyS1,115200 clk_ignore_unused");
        assert_eq!(
            args(&run.captured_command(&fake_qemu("q"))).join(" "),
            "-M raspi4b -m 2G -kernel /f/kernel8.img -dtb /q/pi.dtb -initrd /f/payload.itb \
             -append console=ttyS1,115200 clk_ignore_unused -display none \
             -chardev stdio,id=serial,mux=on -serial chardev:serial -serial chardev:serial \
             -monitor none -no-reboot"
        );
        assert_eq!(
            args(&QemuRun::raspi4b("/k").interactive_command(&fake_qemu("q"))).join(" "),
            "-M raspi4b -m 2G -kernel /k -display none -chardev stdio,id=serial,mux=on \
             -serial chardev:serial -serial chardev:serial -mon chardev=serial,mode=readline \
             -no-reboot"
        );
        // The virt machine's command line does not change with the new fields.
        assert_eq!(
            QemuRun::new("/b").dtb("/d").machine_args().len(),
            QemuRun::new("/b").machine_args().len() + 2
        );
    }

    #[test]
    fn parse_options() {
        assert_eq!("2".parse(), Ok(Gic::V2));
        assert_eq!("3".parse(), Ok(Gic::V3));
        assert!("4".parse::<Gic>().is_err());
        assert_eq!("cortex-a72".parse(), Ok(Cpu::CortexA72));
        assert_eq!("max".parse(), Ok(Cpu::Max));
        assert!("cortex-a53".parse::<Cpu>().is_err());
        assert_eq!(
            "4".parse::<Gic>(),
            Err("GIC version must be 2 or 3, not `4`".to_owned())
        );
        assert_eq!(
            "a53".parse::<Cpu>(),
            Err("CPU must be max or cortex-a72, not `a53`".to_owned())
        );
        assert_eq!(
            (Gic::V2.to_string(), Cpu::CortexA72.to_string()),
            ("2".into(), "cortex-a72".into())
        );
    }

    #[test]
    fn marker_search() {
        assert!(contains_from(b"abc PASS", b"PASS", 0));
        assert!(contains_from(b"abc PASS", b"PASS", 4));
        assert!(!contains_from(b"abc PASS", b"PASS", 5));
        assert!(!contains_from(b"abc", b"PASS", 10));
    }

    /// A script standing in for QEMU (it ignores QEMU's arguments), to test the capture
    /// machinery without QEMU. The script is removed on drop.
    struct Fake {
        run: QemuRun,
        qemu: Qemu,
        _serial: std::sync::MutexGuard<'static, ()>,
    }

    /// Writing an executable and then running it races with other test threads that fork
    /// (a child inherits the write descriptor until it execs, and the exec of the script
    /// fails with ETXTBSY), so the tests that spawn take turns.
    static SPAWNING: Mutex<()> = Mutex::new(());

    fn fake(name: &str, script: &str) -> Fake {
        let serial = SPAWNING.lock().unwrap_or_else(PoisonError::into_inner);
        let path =
            std::env::temp_dir().join(format!("xtask-fake-qemu-{}-{name}.sh", std::process::id()));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fake {
            run: QemuRun::new("unused"),
            qemu: Qemu {
                path,
                ..fake_qemu("")
            },
            _serial: serial,
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.qemu.path);
        }
    }

    #[test]
    fn captures_log_and_status() {
        let f = fake(
            "status",
            "echo 'hypstub qemu-virt'; echo oops >&2; printf 'no newline'; exit 3",
        );
        let out = f
            .run
            .run_captured(&f.qemu, &Capture::with_timeout(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.log, "hypstub qemu-virt\nno newline");
        assert_eq!(out.stderr, "oops\n");
        assert!(!out.stopped_at_marker);
        assert_eq!(out.marker_after, None);
        assert!(out.times.is_empty());
    }

    #[test]
    fn timeout_kills_and_keeps_the_log() {
        let f = fake("timeout", "echo 'started'; exec sleep 30");
        let start = Instant::now();
        let err = f
            .run
            .run_captured(&f.qemu, &Capture::with_timeout(Duration::from_millis(500)))
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(10));
        let RunError::Timeout { log, .. } = &err else {
            panic!("expected a timeout: {err}");
        };
        assert_eq!(log, "started\n");
        assert!(err.to_string().contains("started"));
    }

    #[test]
    fn stops_at_marker() {
        let f = fake(
            "marker",
            "echo one; sleep 0.2; echo 'demo: PASS'; exec sleep 30",
        );
        let capture = Capture {
            stop_at: Some("demo: PASS".into()),
            time_of: vec!["one".into(), "never".into()],
            ..Capture::with_timeout(Duration::from_secs(20))
        };
        let start = Instant::now();
        let out = f.run.run_captured(&f.qemu, &capture).unwrap();
        assert!(out.stopped_at_marker);
        assert!(out.log.contains("demo: PASS"));
        let at = out.marker_after.expect("the marker's arrival is noted");
        assert!(at <= out.elapsed, "{at:?} {:?}", out.elapsed);
        let [Some(one), None] = out.times[..] else {
            panic!("`one` noted, `never` not: {:?}", out.times);
        };
        assert!(
            one + Duration::from_millis(150) <= at,
            "`one` came 0.2 s before the marker: {one:?} {at:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_grandchild_holding_the_pipe_does_not_hang_the_run() {
        let f = fake("grandchild", "echo 'bye'; sleep 5 & exit 0");
        let start = Instant::now();
        let out = f
            .run
            .run_captured(&f.qemu, &Capture::with_timeout(Duration::from_secs(20)))
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.log, "bye\n");
        assert!(start.elapsed() < Duration::from_secs(4));
    }
}
