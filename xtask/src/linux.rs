//! Booting Debian's arm64 Linux on QEMU `virt` with the test initramfs: the machine
//! (through hypstub, or QEMU's own direct boot for comparison) and what `/init` reports
//! ([`InitReport`]). Used by `cargo xtask run --linux`, the boot bench and the tests.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::assets::LinuxAssets;
use crate::runner::QemuRun;

pub use crate::assets::initramfs::{
    MARKER_DONE, PREFIX, STRESS_OPTION, STUB_RAM_LAST, STUB_RAM_START,
};

/// The kernel's console: QEMU virt's PL011.
pub const CONSOLE: &str = "console=ttyAMA0";

/// RAM of a Linux machine unless told otherwise.
pub const MEM: &str = "1G";

/// The exception level hypstub enters Linux at (`hypstub.el=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum El {
    /// EL1, with the stub resident at EL2.
    El1,
    /// EL2: Linux owns EL2 and can run KVM.
    El2,
}

impl El {
    /// The firmware option.
    pub fn option(self) -> &'static str {
        match self {
            El::El1 => "hypstub.el=1",
            El::El2 => "hypstub.el=2",
        }
    }
}

impl fmt::Display for El {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            El::El1 => "1",
            El::El2 => "2",
        })
    }
}

impl FromStr for El {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1" => Ok(El::El1),
            "2" => Ok(El::El2),
            _ => Err(format!("the exception level must be 1 or 2, not `{s}`")),
        }
    }
}

/// `console=ttyAMA0` followed by `words` (empty ones left out), space-separated.
pub fn command_line<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    std::iter::once(CONSOLE)
        .chain(words.into_iter().map(str::trim).filter(|w| !w.is_empty()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command line Linux sees when hypstub boots it with `append`: hypstub removes its
/// own `hypstub.*` words and passes the rest on in order (docs/options.md).
pub fn seen_by_linux(append: &str) -> String {
    append
        .split_whitespace()
        .filter(|w| !w.starts_with("hypstub."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Linux booted through hypstub: `-bios firmware -kernel vmlinuz -initrd initramfs
/// -append append`, with [`MEM`] of RAM.
pub fn through_hypstub(firmware: &Path, assets: &LinuxAssets, append: &str) -> QemuRun {
    QemuRun::new(firmware)
        .mem(MEM)
        .kernel(&assets.kernel)
        .initrd(&assets.initramfs)
        .append(append)
}

/// The same files booted by QEMU itself (no `-bios`): QEMU loads them into RAM, writes
/// the DTB and enters the kernel at EL2.
pub fn direct(assets: &LinuxAssets, append: &str) -> QemuRun {
    QemuRun::direct(&assets.kernel)
        .mem(MEM)
        .initrd(&assets.initramfs)
        .append(append)
}

/// What `/init` printed (see [`crate::assets::initramfs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitReport {
    /// `/proc/cmdline`.
    pub cmdline: Option<String>,
    /// The kernel lines it picked from `dmesg`.
    pub dmesg: Vec<String>,
    /// `/sys/devices/system/cpu/online` after boot, e.g. `0-3`.
    pub cpus_online: Option<String>,
    /// Whether `/dev/kvm` exists.
    pub kvm: Option<bool>,
    /// The `reserved` ranges of /proc/iomem that cover the stub's RAM (inclusive ends).
    pub reserved: Vec<(u64, u64)>,
    /// Every `reserved` range of /proc/iomem (inclusive ends).
    pub iomem_reserved: Vec<(u64, u64)>,
    /// The stress step's progress lines.
    pub stress: Vec<String>,
    /// `/sys/devices/system/cpu/online` after the stress step.
    pub stress_done: Option<String>,
    /// [`MARKER_DONE`] was printed.
    pub done: bool,
}

/// `<start>-<end>` in hex, as /proc/iomem writes a range.
fn hex_range(range: &str) -> Option<(u64, u64)> {
    let (start, end) = range.split_once('-')?;
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
    ))
}

impl InitReport {
    /// Reads the report from a serial log.
    pub fn parse(log: &str) -> InitReport {
        let mut report = InitReport::default();
        for line in log.lines() {
            let line = line.trim_end_matches('\r');
            if line == MARKER_DONE {
                report.done = true;
                continue;
            }
            let Some(rest) = line.strip_prefix(PREFIX) else {
                continue;
            };
            if let Some(cmdline) = rest.strip_prefix("cmdline: ") {
                report.cmdline.get_or_insert_with(|| cmdline.to_owned());
            } else if let Some(kernel) = rest.strip_prefix("dmesg: ") {
                report.dmesg.push(kernel.to_owned());
            } else if let Some(cpus) = rest.strip_prefix("cpus online: ") {
                report.cpus_online.get_or_insert_with(|| cpus.to_owned());
            } else if rest == "/dev/kvm present" {
                report.kvm = Some(true);
            } else if rest == "/dev/kvm absent" {
                report.kvm = Some(false);
            } else if let Some(range) = rest.strip_prefix("reserved: ") {
                report.reserved.extend(hex_range(range));
            } else if let Some(range) = rest.strip_prefix("iomem reserved: ") {
                report.iomem_reserved.extend(hex_range(range));
            } else if let Some(cpus) = rest.strip_prefix("stress done, cpus online: ") {
                report.stress_done = Some(cpus.to_owned());
            } else if let Some(step) = rest.strip_prefix("stress: ") {
                report.stress.push(step.to_owned());
            }
        }
        report
    }

    /// Some `reserved` range of /proc/iomem covers all of `[start, end)`.
    pub fn iomem_reserves(&self, start: u64, end: u64) -> bool {
        self.iomem_reserved
            .iter()
            .any(|&(s, last)| s <= start && last >= end - 1)
    }

    /// Some reported `reserved` range covers all of the stub's RAM.
    pub fn stub_ram_reserved(&self) -> bool {
        self.reserved
            .iter()
            .any(|&(start, end)| start <= STUB_RAM_START && end >= STUB_RAM_LAST)
    }

    /// A picked kernel line containing `text`.
    pub fn dmesg_line(&self, text: &str) -> Option<&str> {
        self.dmesg
            .iter()
            .map(String::as_str)
            .find(|l| l.contains(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        assert_eq!(command_line([]), "console=ttyAMA0");
        assert_eq!(
            command_line(["hypstub.el=1", "", " panic=-1 "]),
            "console=ttyAMA0 hypstub.el=1 panic=-1"
        );
        assert_eq!(
            seen_by_linux("console=ttyAMA0 hypstub.log=info panic=-1 hypstub.el=1"),
            "console=ttyAMA0 panic=-1"
        );
        assert_eq!("1".parse(), Ok(El::El1));
        assert_eq!(El::El2.option(), "hypstub.el=2");
        assert!("3".parse::<El>().is_err());
    }

    #[test]
    fn machines() {
        let assets = LinuxAssets {
            kernel: "/c/vmlinuz".into(),
            initramfs: "/c/initramfs.cpio".into(),
            busybox: "/c/busybox".into(),
            rpi4_dtb: None,
            records: Vec::new(),
        };
        let args = |run: &QemuRun| {
            run.machine_args()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            args(&through_hypstub(Path::new("/fw.bin"), &assets, "console=ttyAMA0").smp(4)),
            "-M virt,virtualization=on,gic-version=3 -cpu max -smp 4 -m 1G -bios /fw.bin \
             -kernel /c/vmlinuz -initrd /c/initramfs.cpio -append console=ttyAMA0"
        );
        assert_eq!(
            args(&direct(&assets, "console=ttyAMA0").smp(4)),
            "-M virt,virtualization=on,gic-version=3 -cpu max -smp 4 -m 1G \
             -kernel /c/vmlinuz -initrd /c/initramfs.cpio -append console=ttyAMA0"
        );
    }

    #[test]
    fn report() {
        let log = "[    0.5] Run /init as init process\r\n\
                   INITRAMFS: cmdline: console=ttyAMA0 panic=-1\r\n\
                   INITRAMFS: dmesg: [    0.1] CPU: All CPU(s) started at EL2\r\n\
                   INITRAMFS: dmesg: [    0.2] kvm [1]: VHE mode initialized successfully\r\n\
                   INITRAMFS: cpus online: 0-3\r\n\
                   INITRAMFS: /dev/kvm present\r\n\
                   INITRAMFS: reserved: 40100000-40107fff\r\n\
                   INITRAMFS: reserved: 40000000-4010ffff\r\n\
                   INITRAMFS: iomem reserved: 00000000-00009fff\r\n\
                   INITRAMFS: stress: writing 600 MiB to tmpfs\r\n\
                   INITRAMFS: stress done, cpus online: 0-3\r\n\
                   INITRAMFS MARKER DONE\r\n";
        let r = InitReport::parse(log);
        assert_eq!(r.cmdline.as_deref(), Some("console=ttyAMA0 panic=-1"));
        assert_eq!(r.dmesg.len(), 2);
        assert!(r.dmesg_line("started at EL2").is_some());
        assert_eq!(r.cpus_online.as_deref(), Some("0-3"));
        assert_eq!(r.kvm, Some(true));
        assert_eq!(
            r.reserved,
            [(0x4010_0000, 0x4010_7fff), (0x4000_0000, 0x4010_ffff)]
        );
        assert!(r.stub_ram_reserved());
        assert_eq!(r.iomem_reserved, [(0, 0x9fff)]);
        assert!(r.iomem_reserves(0x1000, 0xa000));
        assert!(!r.iomem_reserves(0x1000, 0xa001));
        assert_eq!(r.stress, ["writing 600 MiB to tmpfs"]);
        assert_eq!(r.stress_done.as_deref(), Some("0-3"));
        assert!(r.done);

        let partial = InitReport::parse(
            "INITRAMFS: reserved: 40000000-400fffff\nINITRAMFS: reserved: none covers x\n",
        );
        assert!(!partial.stub_ram_reserved());
        assert!(!partial.done);
        assert_eq!(partial.kvm, None);
    }
}
