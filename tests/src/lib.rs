//! Helpers for hypstub's integration tests (`tests/tests/*.rs`): build the images once
//! per test binary, find the Linux test assets in their cache, boot them on QEMU with a
//! timeout, and check the serial log and the exit status against the markers of
//! docs/CONTRACTS.md. Also the inputs the tests make: arm64 Image headers, pseudo-random
//! files and their CRC32C; and for the Raspberry Pi 4, an SD-card folder per test and the
//! QEMU raspi4b machine that boots it ([`rpi4_folder`], [`rpi4_machine`]).
//!
//! Every check that fails panics with the whole serial log, QEMU's own stderr and the
//! command line, so a failure in CI can be read without rerunning it. A test that needs
//! QEMU or an image never skips: a missing asset is a failure.
//!
//! Depends on the `xtask` library (building, finding QEMU, running it) and nothing else.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use xtask::assets::{self, LinuxAssets};
use xtask::image::{self, Board, BuildOptions, Payload, Variant};
use xtask::linux::El;
use xtask::qemu::{self, Qemu};
use xtask::rpi4::{self, Console};
use xtask::runner::{Capture, QemuRun, RunOutcome};

pub use xtask::bench::payload::MARKER as BENCH_PAYLOAD_MARKER;
pub use xtask::bench::DIGESTS_MATCH;

/// How long one boot may take before QEMU is killed and the test fails.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one Linux boot may take (about 4 s on a 2-CPU machine; a guard against hangs
/// on a loaded one).
pub const LINUX_BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// What the engine prints after copying (before the digests are checked).
pub const COPIED: &str = "reloc: copied ";

/// The QEMU to run, found once. Panics (with what to do) when there is none: in CI
/// (`CI=true`) a missing QEMU is a broken runner; elsewhere `cargo xtask test` installs it.
pub fn qemu() -> &'static Qemu {
    static QEMU: OnceLock<Result<Qemu, String>> = OnceLock::new();
    let found = QEMU.get_or_init(|| qemu::find().map_err(|e| e.to_string()));
    match found {
        Ok(qemu) => qemu,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "CI=true and no usable QEMU: {e}. These tests need {} {} or later; .ci/run gets \
             it through `cargo xtask test`, which installs it.",
            qemu::BINARY,
            qemu::MIN_VERSION
        ),
        Err(e) => panic!(
            "no usable QEMU: {e}. Run `cargo xtask test`, which installs {} {} or later \
             (as root on Debian or Ubuntu; otherwise it prints the commands), or set {} to \
             a QEMU binary.",
            qemu::BINARY,
            qemu::MIN_VERSION,
            qemu::OVERRIDE_ENV
        ),
    }
}

/// Builds (once per test binary) and returns an image, or panics with the build error in
/// every test that needs it.
fn built<E: std::fmt::Display>(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    what: &str,
    build: fn(BuildOptions) -> Result<image::Built, E>,
) -> &'static Path {
    let opts = BuildOptions {
        quiet: true,
        ..BuildOptions::default()
    };
    match cell.get_or_init(|| build(opts).map(|b| b.image).map_err(|e| format!("{e:#}"))) {
        Ok(path) => path,
        Err(e) => panic!("building the {what} failed: {e}"),
    }
}

/// The qemu-virt firmware image (`-bios`), built in release mode.
pub fn firmware() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(&IMAGE, "qemu-virt firmware", |opts| {
        image::build_firmware(Board::QemuVirt, opts)
    })
}

/// The example bootloader (`examples/pflash-boot`, `-bios`), built in release mode.
pub fn example_bootloader() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(&IMAGE, "example bootloader", image::build_example)
}

/// The Raspberry Pi 4 armstub, built in release mode and checked against the handshake
/// layout (`xtask::armstub::check`): its ELF is QEMU raspi4b's `-kernel`.
pub fn rpi4_armstub() -> &'static image::Built {
    static BUILT: OnceLock<Result<image::Built, String>> = OnceLock::new();
    let opts = BuildOptions {
        quiet: true,
        ..BuildOptions::default()
    };
    match BUILT.get_or_init(|| {
        image::build_firmware(Board::Rpi4Armstub, opts).map_err(|e| format!("{e:#}"))
    }) {
        Ok(built) => built,
        Err(e) => panic!("building the rpi4-armstub failed: {e}"),
    }
}

/// The ABI client payload image (`-kernel`).
pub fn abi_client() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(&IMAGE, "abi-client payload", |opts| {
        image::build_payload(Payload::AbiClient, opts)
    })
}

/// The soak-client payload image (`-kernel`), linked at 0x4020_0000, its image digest
/// embedded.
pub fn soak_client() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(&IMAGE, "soak-client payload", |opts| {
        image::build_payload(Payload::SoakClient, opts)
    })
}

/// The el2-client payload image (`-kernel`), linked at 0x4008_0000 (text_offset 0x80000).
pub fn el2_client() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(&IMAGE, "el2-client payload", |opts| {
        image::build_payload(Payload::El2Client, opts)
    })
}

/// el2-client built with text_offset 0x108000, linked at 0x4010_8000: its destination
/// covers the firmware's own EL1 stage RAM (0x4010_8000..0x4020_0000).
pub fn el2_client_over_firmware() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(
        &IMAGE,
        "el2-client payload at text_offset 0x108000",
        |opts| image::build_el2_client(image::EL2_CLIENT_OVER_FIRMWARE, opts),
    )
}

/// The qemu-virt firmware built with `test-corrupt-staging` (it corrupts the first
/// staged page after planning, so the engine must refuse the payload).
pub fn corrupt_staging_firmware() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(
        &IMAGE,
        "qemu-virt firmware with test-corrupt-staging",
        |opts| image::build_firmware_variant(Board::QemuVirt, Variant::CorruptStaging, opts),
    )
}

/// The 256 MiB bench payload (`xtask::bench::payload`), written once per target directory
/// and reused: prints [`BENCH_PAYLOAD_MARKER`] when entered, then powers off.
pub fn bench_payload_256mib() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match IMAGE.get_or_init(|| xtask::bench::payload::ensure(256).map_err(|e| format!("{e:#}"))) {
        Ok(path) => path,
        Err(e) => panic!("writing the 256 MiB bench payload failed: {e}"),
    }
}

/// The Linux test assets (Debian's arm64 kernel, busybox and the initramfs), from their
/// cache, checked against the SHA-256s recorded when they were fetched. The tests never
/// fetch: `cargo xtask test` does that before them. Panics when they are missing or
/// changed, saying what to run.
pub fn linux_assets() -> &'static LinuxAssets {
    static ASSETS: OnceLock<Result<LinuxAssets, String>> = OnceLock::new();
    match ASSETS.get_or_init(|| assets::cached().map_err(|e| e.to_string())) {
        Ok(assets) => assets,
        Err(e) => panic!("{e}"),
    }
}

/// The rpi4 firmware, `kernel8.img` (its SD-card folder's copy is per test:
/// [`rpi4_folder`]).
pub fn rpi4_firmware() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(&IMAGE, "rpi4 firmware", |opts| {
        image::build_firmware(Board::Rpi4, opts)
    })
}

/// Debian's `bcm2711-rpi-4-b.dtb` from the asset cache, prepared for QEMU raspi4b with
/// `console` as its stdout-path ([`rpi4::prepare_qemu_dtb`]), once per console.
pub fn rpi4_qemu_dtb(console: Console) -> &'static Path {
    static DTBS: [OnceLock<Result<PathBuf, String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let cell = &DTBS[Console::ALL.iter().position(|&c| c == console).unwrap_or(0)];
    let made = cell.get_or_init(|| {
        let dtb = linux_assets().rpi4_dtb.as_ref().ok_or_else(|| {
            "the cached kernel package has no bcm2711-rpi-4-b.dtb; run `cargo xtask assets`"
                .to_owned()
        })?;
        rpi4::write_qemu_dtb(dtb, console).map_err(|e| format!("{e:#}"))
    });
    match made {
        Ok(path) => path,
        Err(e) => panic!("the QEMU raspi4b DTB ({console}): {e}"),
    }
}

/// An SD-card folder for one test, `<target>/hypstub/rpi4-tests/<name>/`: the rpi4
/// firmware as kernel8.img, `payload` (a kernel and its initrd) as payload.itb when given,
/// and cmdline.txt with `console`'s `console=`, `clk_ignore_unused`, `hypstub.el=<el>` and
/// `extra`. Each test has its own folder, so tests running at once never share one.
pub fn rpi4_folder(
    name: &str,
    payload: Option<(&Path, Option<&Path>)>,
    el: El,
    console: Console,
    extra: &[&str],
) -> rpi4::Folder {
    qemu();
    let spec = rpi4::FolderSpec {
        kernel8: rpi4_firmware().to_owned(),
        payload: payload.map(|(kernel, initrd)| rpi4::PayloadFiles {
            kernel: kernel.to_owned(),
            initrd: initrd.map(Path::to_owned),
            dtb: None,
        }),
        cmdline: rpi4::cmdline(
            console,
            [el.option()].into_iter().chain(extra.iter().copied()),
        ),
        armstub: None,
    };
    let dir = xtask::output_dir().join("rpi4-tests").join(name);
    rpi4::write_folder(&dir, &spec)
        .unwrap_or_else(|e| panic!("{name}: writing the SD-card folder: {e:#}"))
}

/// QEMU raspi4b booting `folder` as the Pi firmware would: kernel8.img, payload.itb as the
/// initrd, the cmdline.txt words as `-append` ([`rpi4::qemu_append`]) and Debian's DTB
/// prepared for `console` (which must be the folder's console).
pub fn rpi4_machine(folder: &rpi4::Folder, console: Console) -> QemuRun {
    let path = folder.path(rpi4::CMDLINE_FILE);
    let cmdline = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    rpi4::machine(
        folder,
        rpi4_qemu_dtb(console),
        &rpi4::qemu_append(cmdline.trim_end(), console),
    )
}

/// QEMU raspi4b booting Debian's kernel directly (no hypstub) with the test initramfs,
/// Debian's DTB prepared for `console`, and the cmdline.txt words hypstub's folder would
/// have ([`rpi4::cmdline`] with `extra`): the baseline hypstub's Pi 4 boots compare with.
pub fn rpi4_direct(console: Console, extra: &[&str]) -> QemuRun {
    qemu();
    let files = linux_assets();
    let image = rpi4::qemu_kernel(&files.kernel)
        .unwrap_or_else(|e| panic!("the kernel for QEMU raspi4b: {e:#}"));
    let cmdline = rpi4::cmdline(console, extra.iter().copied());
    rpi4::direct(
        &image,
        rpi4_qemu_dtb(console),
        &files.initramfs,
        &rpi4::qemu_append(&cmdline, console),
    )
}

/// A QEMU `virt` machine booting the firmware, with the defaults of [`QemuRun::new`].
pub fn machine() -> QemuRun {
    // Look for QEMU before building, so that a missing QEMU is reported first and fast.
    qemu();
    QemuRun::new(firmware())
}

/// Boots `run` to its end (at most [`BOOT_TIMEOUT`]); `name` labels the echoed log lines.
/// Panics with the log if QEMU does not finish in time.
pub fn boot(name: &str, run: &QemuRun) -> Boot {
    boot_within(name, run, BOOT_TIMEOUT)
}

/// [`boot`] with another timeout, for boots that copy hundreds of MiB.
pub fn boot_within(name: &str, run: &QemuRun, timeout: Duration) -> Boot {
    boot_captured(name, run, Capture::with_timeout(timeout))
}

/// Runs `run` with `capture`, echoing the log behind `[name] `; panics if QEMU cannot run or
/// the timeout passes.
fn boot_captured(name: &str, run: &QemuRun, capture: Capture) -> Boot {
    let qemu = qemu();
    let capture = Capture {
        echo_prefix: Some(format!("[{name}] ")),
        ..capture
    };
    eprintln!(
        "[{name}] $ {}",
        xtask::display_command(&run.captured_command(qemu))
    );
    match run.run_captured(qemu, &capture) {
        Ok(outcome) => Boot {
            name: name.to_owned(),
            outcome,
        },
        Err(e) => panic!("{name}: {e}"),
    }
}

/// Boots `run` until the serial log shows `marker` (QEMU is then killed: raspi4b cannot
/// power off), at most `timeout`. Panics with the log if the marker never comes; check
/// [`Boot::assert_stopped_at_marker`] if QEMU may exit by itself first.
pub fn boot_to_marker(name: &str, run: &QemuRun, marker: &str, timeout: Duration) -> Boot {
    boot_captured(
        name,
        run,
        Capture {
            stop_at: Some(marker.to_owned()),
            ..Capture::with_timeout(timeout)
        },
    )
}

/// A finished boot, with assertions that print everything on failure.
#[derive(Debug)]
pub struct Boot {
    /// The test's label.
    pub name: String,
    /// What QEMU did.
    pub outcome: RunOutcome,
}

impl Boot {
    /// The serial log.
    pub fn log(&self) -> &str {
        &self.outcome.log
    }

    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        let o = &self.outcome;
        panic!(
            "{}: {what}\ncommand: {}\nQEMU ended with {} after {:.1} s\n\
             --- serial log ---\n{}\n--- QEMU stderr ---\n{}\n--- end ---",
            self.name,
            o.command,
            o.status,
            o.elapsed.as_secs_f32(),
            o.log,
            o.stderr
        )
    }

    /// QEMU exited with status 0 (PSCI SYSTEM_OFF).
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        if !self.outcome.status.success() {
            self.fail(&format!(
                "QEMU exited with {}, expected 0",
                self.outcome.status
            ));
        }
        self
    }

    /// QEMU was stopped at the marker of [`boot_to_marker`] (it did not exit first).
    #[track_caller]
    pub fn assert_stopped_at_marker(&self) -> &Self {
        if !self.outcome.stopped_at_marker {
            self.fail(&format!(
                "QEMU exited with {} before the marker",
                self.outcome.status
            ));
        }
        self
    }

    /// The serial log contains `needle`.
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Self {
        if !self.log().contains(needle) {
            self.fail(&format!("serial log lacks {needle:?}"));
        }
        self
    }

    /// The serial log does not contain `needle`.
    #[track_caller]
    pub fn assert_lacks(&self, needle: &str) -> &Self {
        if self.log().contains(needle) {
            self.fail(&format!(
                "serial log contains {needle:?}, which it must not"
            ));
        }
        self
    }

    /// Fails, with the whole log, unless `ok`; `what` says what was expected.
    #[track_caller]
    pub fn assert_that(&self, ok: bool, what: &str) -> &Self {
        if !ok {
            self.fail(what);
        }
        self
    }

    /// The engine copied the payload and every destination's digest matched.
    #[track_caller]
    pub fn assert_relocated(&self) -> &Self {
        self.assert_contains(COPIED).assert_contains(DIGESTS_MATCH)
    }

    /// Bad input was rejected before the hand-off (docs/architecture.md, "What bad input gets"): an ERROR line
    /// with the phrase, `hypstub: stopping`, a clean power-off, and nothing relocated or
    /// entered.
    #[track_caller]
    pub fn assert_rejected(&self, phrase: &str) -> &Self {
        let error_line = self
            .log()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains(phrase));
        if !error_line {
            self.fail(&format!("no ERROR line with {phrase:?}"));
        }
        self.assert_success()
            .assert_contains("hypstub: stopping")
            .assert_lacks("payload: entering")
            .assert_lacks(COPIED)
    }
}

/// Fields of an arm64 Image header (Linux Documentation/arch/arm64/booting.rst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// First instruction (normally a branch past the header).
    pub code0: u32,
    /// Second instruction.
    pub code1: u32,
    /// Offset from a 2 MiB-aligned base to load at.
    pub text_offset: u64,
    /// Bytes the image needs in memory, `.bss` included.
    pub image_size: u64,
    /// Bit 0 big-endian, bits 1-2 page size, bit 3 "anywhere in RAM".
    pub flags: u64,
}

/// The arm64 Image magic, "ARM\x64" little-endian, at offset 0x38.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;

impl ImageHeader {
    /// The 64 header bytes, little-endian.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[0x00..0x04].copy_from_slice(&self.code0.to_le_bytes());
        h[0x04..0x08].copy_from_slice(&self.code1.to_le_bytes());
        h[0x08..0x10].copy_from_slice(&self.text_offset.to_le_bytes());
        h[0x10..0x18].copy_from_slice(&self.image_size.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&self.flags.to_le_bytes());
        // res2, res3, res4 (0x20..0x38) stay 0.
        h[0x38..0x3c].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        // res5 (0x3c..0x40) stays 0.
        h
    }
}

/// `len` pseudo-random bytes (xorshift64 from `seed`): reproducible junk.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, register starting at all ones,
/// result inverted), the digest the engine and el2-client use (docs/reloc-args.md).
pub fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82f6_3b78
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

/// Writes `bytes` to `dir/name` (creating `dir`) and returns the path.
pub fn write_asset(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, bytes))
        .unwrap_or_else(|e| panic!("writing test asset {}: {e}", path.display()));
    path
}

/// A FIT whose default configuration names a ramdisk but no kernel (which `write_fit` never
/// writes), for the firmware to refuse.
pub fn fit_without_kernel() -> Vec<u8> {
    use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
    fn prop<T: dtoolkit::ToPropertyValue>(name: &str, value: T) -> DeviceTreeProperty {
        DeviceTreeProperty::new_unchecked(name, value)
    }
    let mut ramdisk = DeviceTreeNode::new_unchecked("ramdisk");
    ramdisk.add_property(prop("data", &b"not a kernel"[..]));
    ramdisk.add_property(prop("type", "ramdisk"));
    ramdisk.add_property(prop("arch", "arm64"));
    ramdisk.add_property(prop("compression", "none"));
    let mut images = DeviceTreeNode::new_unchecked("images");
    images.add_child(ramdisk);
    let mut conf = DeviceTreeNode::new_unchecked("conf-1");
    conf.add_property(prop("ramdisk", "ramdisk"));
    let mut configs = DeviceTreeNode::new_unchecked("configurations");
    configs.add_property(prop("default", "conf-1"));
    configs.add_child(conf);
    let mut tree = DeviceTree::new();
    tree.root.add_child(images);
    tree.root.add_child(configs);
    tree.to_dtb()
}

/// The DTB QEMU writes for `run`'s machine (`-machine dumpdtb=<path>`), rewritten compactly
/// (QEMU's leaves room), so that a FIT can carry it as its fdt.
pub fn qemu_dumped_dtb(run: &QemuRun, path: &Path) -> Vec<u8> {
    let out = std::process::Command::new(&qemu().path)
        .args(run.machine_args())
        .arg("-machine")
        .arg(format!("dumpdtb={}", path.display()))
        .args(["-display", "none"])
        .output()
        .unwrap_or_else(|e| panic!("running QEMU to dump its DTB: {e}"));
    assert!(
        out.status.success(),
        "QEMU -machine dumpdtb= failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dtb = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fdt = dtoolkit::fdt::Fdt::new(&dtb).expect("QEMU's DTB parses");
    dtoolkit::model::DeviceTree::from_fdt(&fdt).to_dtb()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = ImageHeader {
            code0: 0x1122_3344,
            code1: 0x5566_7788,
            text_offset: 0x8_0000,
            image_size: 1 << 30,
            flags: 0b1010,
        }
        .to_bytes();
        assert_eq!(&h[0..4], &[0x44, 0x33, 0x22, 0x11]);
        assert_eq!(u64::from_le_bytes(h[8..16].try_into().unwrap()), 0x8_0000);
        assert_eq!(u64::from_le_bytes(h[16..24].try_into().unwrap()), 1 << 30);
        assert_eq!(u64::from_le_bytes(h[24..32].try_into().unwrap()), 0b1010);
        assert!(h[0x20..0x38].iter().all(|&b| b == 0));
        assert_eq!(&h[0x38..0x3c], b"ARM\x64");
        assert!(h[0x3c..].iter().all(|&b| b == 0));
    }

    #[test]
    fn crc32c_check_values() {
        // The standard check value, and RFC 3720 (iSCSI) appendix B.4's test vectors.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
    }

    #[test]
    fn junk_is_reproducible_and_headerless() {
        let a = pseudo_random_bytes(1 << 20, 42);
        assert_eq!(a.len(), 1 << 20);
        assert_eq!(a, pseudo_random_bytes(1 << 20, 42));
        assert_ne!(&a[0x38..0x3c], b"ARM\x64");
    }
}
