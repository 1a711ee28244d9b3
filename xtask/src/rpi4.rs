//! The Raspberry Pi 4: the SD-card folder `cargo xtask build --board rpi4` writes, and the
//! QEMU `-M raspi4b` machine that boots the same files.
//!
//! **The folder** (`<target>/hypstub/rpi4/`, [`write_folder`]) holds what goes on the FAT
//! boot partition next to the Raspberry Pi firmware's own files (start4.elf, fixup4.dat,
//! bcm2711-rpi-4-b.dtb, which hypstub does not ship):
//!
//! | file | what |
//! |---|---|
//! | `kernel8.img` | hypstub's firmware, raw, linked at [`KERNEL_ADDRESS`]; the Pi firmware enters it at EL2 with x0 = DTB |
//! | `config.txt` | [`config_txt`]: 64-bit, kernel8.img at 0x80000, the UART on, the payload |
//! | `cmdline.txt` | [`cmdline`]: one line, Linux's console on the DTB's stdout-path UART, `hypstub.*` options |
//! | `payload.itb` | with a payload: a FIT ([`crate::fit::write_fit`]) with the kernel (uncompressed), the initrd and a DTB when given; the firmware loads it after kernel8.img and names it in `/chosen/linux,initrd-start/-end` |
//! | `armstub8-hypstub.bin` | only when an armstub is given ([`FolderSpec::armstub`]) |
//!
//! **QEMU raspi4b** boots `kernel8.img` as `-kernel` with `-initrd payload.itb`,
//! `-append` = the cmdline.txt words and a DTB prepared for QEMU ([`prepare_qemu_dtb`]):
//! Debian's `bcm2711-rpi-4-b.dtb` with three nodes disabled that QEMU 10's model lacks and
//! Debian's 6.1 kernel would hang on. Real boards need none of those changes: they are
//! written to `<target>/hypstub/rpi4-qemu/`, never into the SD-card folder.
//!
//! **Consoles** ([`Console`]). Debian's DTB names the mini-UART `serial1` and makes it the
//! `stdout-path`; the PL011 is `serial0` (on a real Pi 4 it drives Bluetooth unless a
//! firmware overlay moves it to GPIO 14/15). Linux names a UART after its alias number, so
//! the mini-UART is `ttyS1` and the PL011 `ttyAMA0` (checked under QEMU 10.0.2 with Debian's
//! 6.1 kernel). QEMU puts the PL011 on its first `-serial` and the mini-UART on its
//! second.
//!
//! Under QEMU 10.0.2 the mini-UART works for output that polls (hypstub's console, Linux's
//! printk console) but not as an interrupt-driven tty: when Linux opens `ttyS1` as
//! `/dev/console` the model's interrupt never clears and CPU 0 stalls in `__setup_irq`
//! before `/init` runs. So a QEMU run with the mini-UART console adds
//! [`QEMU_TTY_CONSOLE`] after the cmdline.txt words ([`qemu_append`]): kernel messages go
//! to both UARTs and `/dev/console` (the last `console=`) is the PL011.

use std::fmt;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context as _};
use loader::dt::{DtError, Dtb, Edits};

use crate::output_dir;
use crate::runner::QemuRun;

/// hypstub's firmware image on the SD card; the Pi firmware's default name for a 64-bit
/// kernel.
pub const KERNEL_FILE: &str = "kernel8.img";

/// The Pi firmware's configuration file.
pub const CONFIG_FILE: &str = "config.txt";

/// The kernel command line file: the Pi firmware puts its line in `/chosen/bootargs`.
pub const CMDLINE_FILE: &str = "cmdline.txt";

/// The payload FIT.
pub const PAYLOAD_FILE: &str = "payload.itb";

/// An armstub image, when one is given (`armstub=` in config.txt).
pub const ARMSTUB_FILE: &str = "armstub8-hypstub.bin";

/// Where hypstub's `kernel8.img` is linked (the board's `IMAGE_BASE`,
/// boards/src/rpi4/memory_map.rs), and `kernel_address=` in config.txt: the Pi firmware
/// loads a 64-bit kernel at 0x200000 by default, QEMU a raw one (no arm64 header) at
/// 0x80000.
pub const KERNEL_ADDRESS: u64 = crate::memory_map::rpi4::IMAGE_BASE;

/// The console speed: what the Pi firmware sets up with `enable_uart=1` and Debian's DTB
/// asks for in `stdout-path`.
pub const BAUD: u32 = 115_200;

/// Needed by Debian's 6.1 kernel under QEMU raspi4b (without it Linux turns off clocks
/// QEMU's model does not emulate and hangs); harmless on a real board, where it only keeps
/// unused clocks running.
pub const CLK_IGNORE_UNUSED: &str = "clk_ignore_unused";

/// The nodes of Debian's `bcm2711-rpi-4-b.dtb` that QEMU 10's raspi4b model lacks: the
/// HDMI interrupt controller and the two HDMI I2C buses. Linux 6.1 waits for them forever;
/// [`prepare_qemu_dtb`] disables them.
pub const QEMU_DISABLED_NODES: [&str; 3] = [
    "/soc/interrupt-controller@7ef00100",
    "/soc/i2c@7ef04500",
    "/soc/i2c@7ef09500",
];

/// Added after the cmdline.txt words of a QEMU run with the mini-UART console: makes the
/// PL011 `/dev/console`, because QEMU's mini-UART cannot be an interrupt-driven tty (see
/// the module documentation).
pub const QEMU_TTY_CONSOLE: &str = "console=ttyAMA0,115200";

/// The folder `cargo xtask build --board rpi4` writes: `<target>/hypstub/rpi4`.
pub fn folder() -> PathBuf {
    output_dir().join("rpi4")
}

/// Files for QEMU only (prepared DTBs, decompressed kernels): `<target>/hypstub/rpi4-qemu`.
pub fn qemu_dir() -> PathBuf {
    output_dir().join("rpi4-qemu")
}

/// The UART Linux's console and hypstub's output use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Console {
    /// The mini-UART (`serial1` in Debian's DTB, its `stdout-path`): GPIO 14/15 on a real
    /// Pi 4 with `enable_uart=1`; QEMU's second serial port; Linux's `ttyS1`.
    #[default]
    MiniUart,
    /// The PL011 (`serial0`): QEMU's first serial port; Linux's `ttyAMA0`. On a real Pi 4
    /// it is wired to Bluetooth unless the firmware is told otherwise.
    Pl011,
}

impl Console {
    /// Both, the default first.
    pub const ALL: [Console; 2] = [Console::MiniUart, Console::Pl011];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Console::MiniUart => "mini",
            Console::Pl011 => "pl011",
        }
    }

    /// Linux's `console=` word for this UART, with Debian's DTB aliases.
    pub fn linux_console(self) -> &'static str {
        match self {
            Console::MiniUart => "console=ttyS1,115200",
            Console::Pl011 => "console=ttyAMA0,115200",
        }
    }

    /// `/chosen/stdout-path` naming this UART (Debian's DTB has the mini-UART's).
    pub fn stdout_path(self) -> &'static str {
        match self {
            Console::MiniUart => "serial1:115200n8",
            Console::Pl011 => "serial0:115200n8",
        }
    }

    /// What the UART is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Console::MiniUart => "mini-UART (serial1, Linux ttyS1, QEMU's second serial port)",
            Console::Pl011 => "PL011 (serial0, Linux ttyAMA0, QEMU's first serial port)",
        }
    }
}

impl fmt::Display for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Console {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Console::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("the console must be mini or pl011, not `{s}`"))
    }
}

/// The cmdline.txt line: Linux's console on `console`'s UART, [`CLK_IGNORE_UNUSED`], then
/// `extra` (each trimmed; empty ones left out), space-separated.
pub fn cmdline<'a>(console: Console, extra: impl IntoIterator<Item = &'a str>) -> String {
    [console.linux_console(), CLK_IGNORE_UNUSED]
        .into_iter()
        .chain(extra.into_iter().map(str::trim).filter(|w| !w.is_empty()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// QEMU's `-append` for a folder whose cmdline.txt holds `cmdline`: the same words, and
/// with the mini-UART [`QEMU_TTY_CONSOLE`] after them.
pub fn qemu_append(cmdline: &str, console: Console) -> String {
    match console {
        Console::MiniUart => format!("{cmdline} {QEMU_TTY_CONSOLE}"),
        Console::Pl011 => cmdline.to_owned(),
    }
}

/// config.txt, commented. `payload`: add the `initramfs` line for [`PAYLOAD_FILE`];
/// `armstub`: an active `armstub=` line for [`ARMSTUB_FILE`] instead of a commented one.
pub fn config_txt(payload: bool, armstub: bool) -> String {
    let mut text = format!(
        "\
# hypstub on the Raspberry Pi 4, written by `cargo xtask build --board rpi4`.
# The Pi's VideoCore firmware (start4.elf) reads this file before any Arm core runs.

# Start the Arm cores in AArch64 state.
arm_64bit=1
# hypstub's firmware: a raw image (no arm64 header), entered at EL2 with x0 = the DTB.
kernel={KERNEL_FILE}
# hypstub is linked at {KERNEL_ADDRESS:#x}; newer Pi firmware loads 64-bit kernels at 0x200000
# unless told otherwise.
kernel_address={KERNEL_ADDRESS:#x}
# The primary UART on GPIO 14 (TXD) and 15 (RXD), {BAUD} baud, 8N1: the mini-UART while
# Bluetooth has the PL011. Also fixes the core clock the mini-UART's baud rate comes from.
enable_uart=1
"
    );
    if payload {
        text.push_str(&format!(
            "\
# The payload (a FIT: Linux kernel, initrd, maybe a DTB), loaded right after kernel8.img;
# the firmware writes where into the DTB's /chosen linux,initrd-start and -end, and
# hypstub reads it from there.
initramfs {PAYLOAD_FILE} followkernel
"
        ));
    }
    text.push_str(
        "\
# The armstub: the code at address 0 that runs first, at EL3, and brings the cores to
# EL2. The firmware's built-in one is used unless this names a file.
",
    );
    if armstub {
        text.push_str(&format!("armstub={ARMSTUB_FILE}\n"));
    } else {
        text.push_str(&format!("#armstub={ARMSTUB_FILE}\n"));
    }
    text
}

/// Whether `bytes` start like a gzip member (RFC 1952: ID1 0x1f, ID2 0x8b, CM 8 = deflate),
/// as Debian's `vmlinuz` is on some releases.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b, 0x08])
}

/// Whether `bytes` are an arm64 Linux Image: "ARM\x64" at offset 0x38 (booting.rst).
pub fn is_arm64_image(bytes: &[u8]) -> bool {
    bytes.get(0x38..0x3c) == Some(b"ARM\x64")
}

/// A payload kernel as the FIT holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The uncompressed bytes.
    pub bytes: Vec<u8>,
    /// The file's size, when it was gzip-compressed.
    pub gzip_size: Option<u64>,
}

/// Reads a kernel, decompressing it if it is gzip: the FIT is written with compression
/// "none", so the firmware never inflates anything.
pub fn read_kernel(path: &Path) -> anyhow::Result<Kernel> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if !is_gzip(&bytes) {
        return Ok(Kernel {
            bytes,
            gzip_size: None,
        });
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .with_context(|| format!("decompressing {} (gzip)", path.display()))?;
    Ok(Kernel {
        bytes: out,
        gzip_size: Some(bytes.len() as u64),
    })
}

/// The payload's files, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFiles {
    /// The kernel (an arm64 Image, or one gzip-compressed).
    pub kernel: PathBuf,
    /// Its initrd.
    pub initrd: Option<PathBuf>,
    /// A DTB to put in the FIT.
    pub dtb: Option<PathBuf>,
}

/// What [`write_folder`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSpec {
    /// The built firmware image; copied to `kernel8.img` unless it is already that file.
    pub kernel8: PathBuf,
    /// The payload, if any: then `payload.itb` and config.txt's `initramfs` line.
    pub payload: Option<PayloadFiles>,
    /// The cmdline.txt line ([`cmdline`]).
    pub cmdline: String,
    /// An armstub image (the `rpi4-armstub` binary's raw image), if any: copied to
    /// [`ARMSTUB_FILE`] (unless it is that file) and named by config.txt's `armstub=`.
    pub armstub: Option<PathBuf>,
}

/// A written folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Its path.
    pub dir: PathBuf,
    /// Each file written (name, size in bytes), in the order of the table above.
    pub files: Vec<(&'static str, u64)>,
    /// What happened on the way, to print (e.g. a kernel decompressed).
    pub notes: Vec<String>,
}

impl Folder {
    /// One line per file, `  <name>  <size> bytes`, for the console.
    pub fn listing(&self) -> String {
        self.files
            .iter()
            .map(|(name, size)| format!("  {name:<22} {size:>10} bytes"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The path of one of its files.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Writes the SD-card folder into `dir` (created if needed). A `payload.itb` an earlier
/// build left is removed when this one has no payload, so that the folder matches its
/// config.txt; an armstub file is left alone (its own build writes it here).
pub fn write_folder(dir: &Path, spec: &FolderSpec) -> anyhow::Result<Folder> {
    if spec.cmdline.contains(['\n', '\r']) {
        bail!(
            "cmdline.txt must be one line, but the command line has a line break: {:?}",
            spec.cmdline
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut folder = Folder {
        dir: dir.to_owned(),
        files: Vec::new(),
        notes: Vec::new(),
    };
    let write = |folder: &mut Folder, name: &'static str, bytes: &[u8]| {
        let path = dir.join(name);
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        folder.files.push((name, bytes.len() as u64));
        anyhow::Ok(())
    };
    let copy = |folder: &mut Folder, name: &'static str, from: &Path| {
        let to = dir.join(name);
        let same = fs::canonicalize(from).ok() == fs::canonicalize(&to).ok();
        let size = if same {
            fs::metadata(&to)
                .with_context(|| format!("reading {}", to.display()))?
                .len()
        } else {
            fs::copy(from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?
        };
        folder.files.push((name, size));
        anyhow::Ok(())
    };
    let remove_stale = |name: &str| {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing the stale {}", path.display()))
            }
            _ => Ok(()),
        }
    };

    copy(&mut folder, KERNEL_FILE, &spec.kernel8)?;
    write(
        &mut folder,
        CONFIG_FILE,
        config_txt(spec.payload.is_some(), spec.armstub.is_some()).as_bytes(),
    )?;
    write(
        &mut folder,
        CMDLINE_FILE,
        format!("{}\n", spec.cmdline).as_bytes(),
    )?;
    match &spec.payload {
        Some(payload) => {
            let fit = payload_fit(payload, &mut folder.notes)?;
            write(&mut folder, PAYLOAD_FILE, &fit)?;
        }
        None => remove_stale(PAYLOAD_FILE)?,
    }
    // Without one, an armstub already in the folder stays: `cargo xtask build --board
    // rpi4-armstub` writes it there, and config.txt names it only when asked to.
    if let Some(armstub) = &spec.armstub {
        copy(&mut folder, ARMSTUB_FILE, armstub)?;
    }
    Ok(folder)
}

/// The FIT of `payload`, noting a decompressed kernel or one that is no arm64 Image.
fn payload_fit(payload: &PayloadFiles, notes: &mut Vec<String>) -> anyhow::Result<Vec<u8>> {
    let kernel = read_kernel(&payload.kernel)?;
    if let Some(gzip_size) = kernel.gzip_size {
        notes.push(format!(
            "{} is gzip-compressed: decompressed on the host ({gzip_size} -> {} bytes), \
             because the FIT holds its images uncompressed",
            payload.kernel.display(),
            kernel.bytes.len()
        ));
    }
    if !is_arm64_image(&kernel.bytes) {
        notes.push(format!(
            "warning: {} is not an arm64 Image (no \"ARM\\x64\" at offset 0x38); hypstub \
             will refuse it",
            payload.kernel.display()
        ));
    }
    let read = |path: &Path| fs::read(path).with_context(|| format!("reading {}", path.display()));
    let initrd = payload.initrd.as_deref().map(read).transpose()?;
    let dtb = payload.dtb.as_deref().map(read).transpose()?;
    let name = payload
        .kernel
        .file_name()
        .map_or_else(|| "kernel".into(), |n| n.to_string_lossy().into_owned());
    Ok(crate::fit::write_fit_with(
        &kernel.bytes,
        initrd.as_deref(),
        dtb.as_deref(),
        &format!("hypstub payload: {name}"),
        crate::fit::FitLayout::PI,
    ))
}

/// Why a DTB cannot be prepared for QEMU raspi4b.
#[derive(Debug, thiserror::Error)]
pub enum QemuDtbError {
    /// Not a valid DTB, or the edit failed.
    #[error("{0}")]
    Dt(#[from] DtError),
    /// A node to disable is missing: probably not Debian's bcm2711-rpi-4-b.dtb.
    #[error(
        "the DTB has no {0}, which QEMU raspi4b needs disabled: is it Debian's \
         bcm2711-rpi-4-b.dtb (from the linux-image package)?"
    )]
    MissingNode(&'static str),
}

/// Debian's `bcm2711-rpi-4-b.dtb` made bootable on QEMU raspi4b: [`QEMU_DISABLED_NODES`]
/// disabled and, for the PL011 console, `/chosen/stdout-path` set to `serial0:115200n8`
/// (the mini-UART's `serial1` is left as it is). QEMU only: a real board needs none of it.
pub fn prepare_qemu_dtb(dtb: &[u8], console: Console) -> Result<Vec<u8>, QemuDtbError> {
    // Room for the new properties: three `status` and one `stdout-path`.
    let mut buf = dtb.to_vec();
    buf.resize(dtb.len() + 4096, 0);
    let mut dtb = Dtb::new(&mut buf)?;
    if let Some(missing) = QEMU_DISABLED_NODES
        .into_iter()
        .find(|path| dtb.fdt().find_node(path).is_none())
    {
        return Err(QemuDtbError::MissingNode(missing));
    }
    let mut edits = QEMU_DISABLED_NODES
        .into_iter()
        .fold(Edits::new(), Edits::disable);
    if console == Console::Pl011 {
        edits = edits.stdout_path(console.stdout_path());
    }
    dtb.apply(&edits)?;
    Ok(dtb.as_bytes().to_vec())
}

/// [`prepare_qemu_dtb`] of the file `dtb`, written to
/// `<target>/hypstub/rpi4-qemu/bcm2711-rpi-4-b-qemu-<console>.dtb`; returns that path.
pub fn write_qemu_dtb(dtb: &Path, console: Console) -> anyhow::Result<PathBuf> {
    let bytes = fs::read(dtb).with_context(|| format!("reading {}", dtb.display()))?;
    let prepared = prepare_qemu_dtb(&bytes, console)
        .with_context(|| format!("preparing {} for QEMU raspi4b", dtb.display()))?;
    let dir = qemu_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join(format!("bcm2711-rpi-4-b-qemu-{console}.dtb"));
    write_if_changed(&out, &prepared)?;
    Ok(out)
}

/// A kernel QEMU can boot directly as `-kernel`: `kernel` itself, or, if it is gzip, its
/// decompressed copy under `<target>/hypstub/rpi4-qemu/` (QEMU inflates gzip only for
/// `virt`'s fw_cfg path, not for a raw `-kernel` on raspi4b).
pub fn qemu_kernel(kernel: &Path) -> anyhow::Result<PathBuf> {
    let mut head = [0u8; 3];
    let mut file =
        fs::File::open(kernel).with_context(|| format!("opening {}", kernel.display()))?;
    let n = file
        .read(&mut head)
        .with_context(|| format!("reading {}", kernel.display()))?;
    if !is_gzip(&head[..n]) {
        return Ok(kernel.to_owned());
    }
    let image = read_kernel(kernel)?;
    let dir = qemu_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = kernel
        .file_name()
        .map_or_else(|| "kernel".into(), |n| n.to_string_lossy().into_owned());
    let out = dir.join(format!("{name}.Image"));
    write_if_changed(&out, &image.bytes)?;
    Ok(out)
}

/// Writes `bytes` unless the file already holds exactly them (so that concurrent test
/// binaries reading it never see it half written by another).
fn write_if_changed(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    // Write beside it and rename: a reader sees the old file or the new one, whole.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// hypstub's folder on QEMU raspi4b: `kernel8.img` as `-kernel`, the prepared `dtb`,
/// `payload.itb` as `-initrd` when the folder has one, and `append` (normally
/// [`qemu_append`] of the cmdline.txt line).
pub fn machine(folder: &Folder, dtb: &Path, append: &str) -> QemuRun {
    let mut run = QemuRun::raspi4b(folder.path(KERNEL_FILE))
        .dtb(dtb)
        .append(append);
    if folder.files.iter().any(|(name, _)| *name == PAYLOAD_FILE) {
        run = run.initrd(folder.path(PAYLOAD_FILE));
    }
    run
}

/// QEMU raspi4b booting a Linux `Image` directly (no hypstub): QEMU loads it at 0x200000,
/// the initrd at 0x0800_0000 and the DTB after it, and enters the kernel at EL2.
pub fn direct(image: &Path, dtb: &Path, initrd: &Path, append: &str) -> QemuRun {
    QemuRun::raspi4b(image)
        .dtb(dtb)
        .initrd(initrd)
        .append(append)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use dtoolkit::fdt::Fdt;
    use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
    use dtoolkit::{Node as _, Property as _};
    use loader::fit::Fit;

    use super::*;

    /// A scratch directory under the target directory, emptied first.
    fn scratch(name: &str) -> PathBuf {
        let dir = crate::target_dir()
            .join("xtask-test")
            .join(format!("rpi4-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// 64 bytes of arm64 Image header and some code.
    fn image() -> Vec<u8> {
        let mut bytes = vec![0u8; 4096];
        bytes[0x38..0x3c].copy_from_slice(b"ARM\x64");
        bytes[64..72].copy_from_slice(b"the code");
        bytes
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            cmdline(Console::MiniUart, []),
            "console=ttyS1,115200 clk_ignore_unused"
        );
        assert_eq!(
            cmdline(Console::Pl011, ["hypstub.el=1", " ", " panic=-1 "]),
            "console=ttyAMA0,115200 clk_ignore_unused hypstub.el=1 panic=-1"
        );
        assert_eq!(
            qemu_append("console=ttyS1,115200 x", Console::MiniUart),
            "console=ttyS1,115200 x console=ttyAMA0,115200"
        );
        assert_eq!(qemu_append("a b", Console::Pl011), "a b");
        assert_eq!("mini".parse(), Ok(Console::MiniUart));
        assert_eq!("pl011".parse(), Ok(Console::Pl011));
        assert_eq!(
            "ttyS0".parse::<Console>(),
            Err("the console must be mini or pl011, not `ttyS0`".into())
        );
        assert_eq!(Console::default(), Console::MiniUart);
    }

    #[test]
    fn config_files() {
        let with = config_txt(true, false);
        let lines: Vec<&str> = with
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        assert_eq!(
            lines,
            [
                "arm_64bit=1",
                "kernel=kernel8.img",
                "kernel_address=0x80000",
                "enable_uart=1",
                "initramfs payload.itb followkernel",
            ]
        );
        assert!(with.contains("\n#armstub=armstub8-hypstub.bin\n"), "{with}");
        // Every setting has a comment right above it.
        let all: Vec<&str> = with.lines().collect();
        for (i, line) in all.iter().enumerate() {
            if !line.starts_with('#') && !line.is_empty() {
                assert!(all[i - 1].starts_with('#'), "no comment above {line}");
            }
        }

        let without = config_txt(false, true);
        assert!(!without.contains("initramfs"), "{without}");
        assert!(
            without.ends_with("\narmstub=armstub8-hypstub.bin\n"),
            "{without}"
        );
    }

    #[test]
    fn gzip_detection() {
        let image = image();
        assert!(!is_gzip(&image));
        assert!(is_arm64_image(&image));
        let packed = gzip(&image);
        assert!(is_gzip(&packed));
        assert!(!is_arm64_image(&packed));
        assert!(!is_gzip(&[0x1f, 0x8b]));
        assert!(!is_gzip(b""));
        assert!(!is_arm64_image(&image[..0x3b]));

        let dir = scratch("gzip");
        let plain = dir.join("Image");
        let packed_path = dir.join("vmlinuz");
        fs::write(&plain, &image).unwrap();
        fs::write(&packed_path, &packed).unwrap();
        let k = read_kernel(&plain).unwrap();
        assert_eq!((k.bytes, k.gzip_size), (image.clone(), None));
        let k = read_kernel(&packed_path).unwrap();
        assert_eq!(k.bytes, image);
        assert_eq!(k.gzip_size, Some(packed.len() as u64));

        // A truncated gzip file is an error naming the file.
        let broken = dir.join("broken");
        fs::write(&broken, &packed[..packed.len() / 2]).unwrap();
        let err = format!("{:#}", read_kernel(&broken).unwrap_err());
        assert!(
            err.contains("decompressing") && err.contains("broken"),
            "{err}"
        );

        // QEMU's direct boot gets the file itself, or its decompressed copy.
        assert_eq!(qemu_kernel(&plain).unwrap(), plain);
        let inflated = qemu_kernel(&packed_path).unwrap();
        assert!(inflated.starts_with(qemu_dir()), "{}", inflated.display());
        assert_eq!(fs::read(inflated).unwrap(), image);
    }

    #[test]
    fn folder_with_payload() {
        let dir = scratch("folder");
        let src = dir.join("src");
        fs::create_dir_all(&src).unwrap();
        let kernel8 = src.join("fw.bin");
        fs::write(&kernel8, b"firmware").unwrap();
        let vmlinuz = src.join("vmlinuz");
        fs::write(&vmlinuz, gzip(&image())).unwrap();
        let initrd = src.join("initrd");
        fs::write(&initrd, b"070701 cpio").unwrap();
        let out = dir.join("rpi4");
        let spec = FolderSpec {
            kernel8: kernel8.clone(),
            payload: Some(PayloadFiles {
                kernel: vmlinuz,
                initrd: Some(initrd),
                dtb: None,
            }),
            cmdline: cmdline(Console::MiniUart, ["hypstub.el=2"]),
            armstub: None,
        };
        let folder = write_folder(&out, &spec).unwrap();
        let names: Vec<&str> = folder.files.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [KERNEL_FILE, CONFIG_FILE, CMDLINE_FILE, PAYLOAD_FILE]
        );
        assert_eq!(fs::read(out.join(KERNEL_FILE)).unwrap(), b"firmware");
        assert_eq!(
            fs::read_to_string(out.join(CMDLINE_FILE)).unwrap(),
            "console=ttyS1,115200 clk_ignore_unused hypstub.el=2\n"
        );
        assert!(fs::read_to_string(out.join(CONFIG_FILE))
            .unwrap()
            .contains("\ninitramfs payload.itb followkernel\n"));
        let fit = fs::read(out.join(PAYLOAD_FILE)).unwrap();
        assert_eq!(folder.files[3].1, fit.len() as u64);
        let config = Fit::parse(&fit).unwrap().default_config().unwrap();
        assert_eq!(
            config.kernel.data,
            &image()[..],
            "the kernel is stored inflated"
        );
        assert_eq!(config.ramdisk.unwrap().data, b"070701 cpio");
        assert_eq!(config.fdt, None);
        assert_eq!(folder.notes.len(), 1);
        assert!(
            folder.notes[0].contains("gzip-compressed"),
            "{:?}",
            folder.notes
        );
        assert!(folder.listing().contains("kernel8.img"));

        // Rebuilt without a payload but with an armstub: payload.itb goes.
        let armstub = src.join("armstub.bin");
        fs::write(&armstub, b"stub").unwrap();
        let folder = write_folder(
            &out,
            &FolderSpec {
                payload: None,
                armstub: Some(armstub),
                ..spec.clone()
            },
        )
        .unwrap();
        let names: Vec<&str> = folder.files.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [KERNEL_FILE, CONFIG_FILE, CMDLINE_FILE, ARMSTUB_FILE]
        );
        assert!(!out.join(PAYLOAD_FILE).exists());
        assert_eq!(fs::read(out.join(ARMSTUB_FILE)).unwrap(), b"stub");

        // kernel8.img already in place (the build writes it there) is left alone, and so is
        // an armstub that was not asked for (its own build puts it there).
        let folder = write_folder(
            &out,
            &FolderSpec {
                kernel8: out.join(KERNEL_FILE),
                ..spec.clone()
            },
        )
        .unwrap();
        assert_eq!(folder.files[0], (KERNEL_FILE, 8));
        assert_eq!(folder.files.len(), 4);
        assert_eq!(fs::read(out.join(ARMSTUB_FILE)).unwrap(), b"stub");
        assert!(fs::read_to_string(out.join(CONFIG_FILE))
            .unwrap()
            .contains("\n#armstub="));

        // Two lines are refused.
        let err = write_folder(
            &out,
            &FolderSpec {
                cmdline: "a\nb".into(),
                ..spec
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("one line"), "{err}");
    }

    /// A tree with the shape of Debian's bcm2711-rpi-4-b.dtb where it matters here.
    fn pi_like_tree(with_i2c: bool) -> Vec<u8> {
        let mut t = DeviceTree::new();
        let chosen = DeviceTreeNode::builder("chosen")
            .unwrap()
            .property(DeviceTreeProperty::new("stdout-path", "serial1:115200n8").unwrap())
            .build();
        t.root.add_child(chosen);
        let mut soc = DeviceTreeNode::new("soc").unwrap();
        for path in QEMU_DISABLED_NODES {
            let name = path.rsplit('/').next().unwrap();
            if with_i2c || !name.starts_with("i2c") {
                soc.add_child(DeviceTreeNode::new(name).unwrap());
            }
        }
        t.root.add_child(soc);
        t.to_dtb()
    }

    #[test]
    fn qemu_dtb() {
        for console in Console::ALL {
            let out = prepare_qemu_dtb(&pi_like_tree(true), console).unwrap();
            let fdt = Fdt::new(&out).unwrap();
            for path in QEMU_DISABLED_NODES {
                let node = fdt.find_node(path).unwrap();
                assert_eq!(node.property("status").unwrap().value(), b"disabled\0");
            }
            let stdout = fdt.find_node("/chosen").unwrap();
            let stdout = stdout.property("stdout-path").unwrap();
            assert_eq!(stdout.value_as::<&str>().unwrap(), console.stdout_path());
        }
        let err = prepare_qemu_dtb(&pi_like_tree(false), Console::MiniUart).unwrap_err();
        assert!(err.to_string().contains("/soc/i2c@7ef04500"), "{err}");
        assert!(matches!(
            prepare_qemu_dtb(
                b"not a dtb at all, but long enough for a header",
                Console::Pl011
            ),
            Err(QemuDtbError::Dt(DtError::BadMagic { .. }))
        ));
    }

    #[test]
    fn qemu_machines() {
        let folder = Folder {
            dir: "/sd".into(),
            files: vec![(KERNEL_FILE, 1), (PAYLOAD_FILE, 2)],
            notes: Vec::new(),
        };
        let args = |run: &QemuRun| {
            run.machine_args()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            args(&machine(&folder, Path::new("/q.dtb"), "a b")),
            "-M raspi4b -m 2G -kernel /sd/kernel8.img -dtb /q.dtb -initrd /sd/payload.itb \
             -append a b"
        );
        let no_payload = Folder {
            files: vec![(KERNEL_FILE, 1)],
            ..folder
        };
        assert!(!args(&machine(&no_payload, Path::new("/q.dtb"), "a")).contains("-initrd"));
        assert_eq!(
            args(&direct(
                Path::new("/Image"),
                Path::new("/q.dtb"),
                Path::new("/i"),
                "x"
            )),
            "-M raspi4b -m 2G -kernel /Image -dtb /q.dtb -initrd /i -append x"
        );
    }
}
