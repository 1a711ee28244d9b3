//! The Linux test assets, by Debian package name: Debian 12's arm64 kernel
//! (`linux-image-arm64`, resolved to the versioned `linux-image-6.1.0-NN-arm64`), its
//! static busybox (`busybox-static`), and an initramfs built from that busybox.
//!
//! **Fetching.** A private APT configuration under the cache ([`private_apt`]) takes the
//! archive URIs from the machine's own APT sources and changes nothing system-wide:
//!
//! ```text
//! APT_CONFIG=<cache>/apt/etc/apt.conf apt-get update
//! APT_CONFIG=... apt-cache depends linux-image-arm64        -> linux-image-6.1.0-NN-arm64
//! APT_CONFIG=... apt-get download linux-image-6.1.0-NN-arm64 busybox-static   (in <cache>/downloads)
//! dpkg-deb -x <deb> <cache>/pkg/<package>_<version>                           (the whole package)
//! ```
//!
//! The initramfs ([`initramfs`]) is written by xtask itself, a newc cpio ([`cpio`]).
//!
//! **The cache** is `$HYPSTUB_CACHE`, else `<target>/hypstub/cache`. Its `manifest.txt`
//! ([`manifest`]) records each file's package, version, path and SHA-256. A later run
//! reuses the files without touching the network when every one is there and still has
//! its recorded SHA-256; a file whose SHA-256 changed is an error ([`AssetError::Changed`]),
//! never silently replaced. `cargo xtask assets --refresh` resolves and fetches again.
//!
//! **What was tested.** `xtask/assets-tested.txt` lists the assets the tests last passed
//! with. Debian updates the kernel, so a fetch that brings another version is not an
//! error, but xtask says so, so that a test failure can be told apart from a changed asset.

pub mod cpio;
pub mod initramfs;
pub mod manifest;
pub mod private_apt;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use self::manifest::{Record, Role};
use self::private_apt::AptDirs;
use crate::bench::uboot;
use crate::{display_command, output_dir, qemu};

/// Environment variable naming the cache directory.
pub const CACHE_ENV: &str = "HYPSTUB_CACHE";

/// The meta package that depends on the current versioned kernel package.
pub const KERNEL_META_PACKAGE: &str = "linux-image-arm64";

/// The package with the static busybox.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";

/// The manifest's name in the cache.
pub const MANIFEST: &str = "manifest.txt";

/// The manifest of the boot bench's peers (U-Boot) in the cache.
pub const PEERS_MANIFEST: &str = "manifest-peers.txt";

/// The initramfs's name in the cache.
pub const INITRAMFS_FILE: &str = "initramfs.cpio";

/// The assets the tests last passed with (`xtask/assets-tested.txt`).
pub const TESTED: &str = include_str!("../assets-tested.txt");

/// What may help when APT fails.
const NETWORK_HINT: &str =
    " - is the network up and the archive reachable? APT's own messages are above";

/// The arm64 Image magic, "ARM\x64" little-endian, at offset 0x38 (booting.rst).
const IMAGE_MAGIC: &[u8; 4] = b"ARM\x64";

/// The cache directory: `$HYPSTUB_CACHE` (made absolute), else `<target>/hypstub/cache`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => std::path::absolute(PathBuf::from(&dir)).unwrap_or_else(|_| dir.into()),
        None => output_dir().join("cache"),
    }
}

/// The files a Linux boot needs, all below [`cache_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxAssets {
    /// The kernel Image (`boot/vmlinuz-*`), for `-kernel`.
    pub kernel: PathBuf,
    /// The initramfs, for `-initrd`.
    pub initramfs: PathBuf,
    /// The static busybox inside the initramfs.
    pub busybox: PathBuf,
    /// The Raspberry Pi 4 Model B device tree of the same kernel package, if it has one.
    pub rpi4_dtb: Option<PathBuf>,
    /// The manifest's records, one per file above.
    pub records: Vec<Record>,
}

impl LinuxAssets {
    /// The record of `role`.
    pub fn record(&self, role: Role) -> Option<&Record> {
        self.records.iter().find(|r| r.role == role)
    }

    /// One line per file: role, package, version, SHA-256, path.
    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        for record in &self.records {
            let path = match record.role {
                Role::Kernel => Some(&self.kernel),
                Role::Rpi4Dtb => self.rpi4_dtb.as_ref(),
                Role::Busybox => Some(&self.busybox),
                Role::Initramfs => Some(&self.initramfs),
                Role::UBoot => None,
            };
            lines.push(format!(
                "  {:<10} {} {}, sha256 {}\n  {:<10} {}",
                record.role.name(),
                record.package,
                record.version,
                record.sha256,
                "",
                path.map_or_else(|| record.file.clone(), |p| p.display().to_string())
            ));
        }
        lines.join("\n")
    }

    /// How these assets differ from `xtask/assets-tested.txt` (empty: not at all).
    pub fn untested(&self) -> Vec<String> {
        match manifest::parse(TESTED) {
            Ok(tested) => manifest::differences(&tested, &self.records),
            Err(e) => vec![format!("xtask/assets-tested.txt is unreadable: {e}")],
        }
    }
}

/// Whether [`ensure`] may reuse the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Reuse a complete, unchanged cache; fetch only what is missing.
    IfMissing,
    /// Resolve the kernel package and download everything again.
    Refresh,
}

/// Why the assets are not available.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// A tool of APT or dpkg is not installed.
    #[error(
        "`{tool}` not found on PATH: the Linux test assets are Debian arm64 packages, fetched \
         through a private APT configuration, which needs apt-get, apt-cache and dpkg-deb (a \
         Debian or Ubuntu host)"
    )]
    ToolMissing {
        /// The missing program.
        tool: &'static str,
    },
    /// The machine's APT sources have no Debian 12 archive to take the URI from.
    #[error(
        "no enabled APT source of this machine serves `{suite}` with component `main` \
         (read from /etc/apt/sources.list and /etc/apt/sources.list.d): the Linux test \
         assets come from the Debian archive the machine already uses, and it has none for \
         {suite}",
        suite = private_apt::SUITE
    )]
    NoArchive,
    /// A command failed (for APT, often the network: its own messages are above).
    #[error("`{command}` failed ({reason}){hint}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status or I/O error.
        reason: String,
        /// What may help, with any output that was captured.
        hint: String,
    },
    /// `apt-cache depends linux-image-arm64` named no kernel package.
    #[error(
        "`apt-cache depends {KERNEL_META_PACKAGE}` names no linux-image-*-arm64 package; it \
         printed:\n{output}"
    )]
    NoKernelPackage {
        /// What it printed.
        output: String,
    },
    /// A downloaded package is not what was asked for or lacks a file.
    #[error("{package}: {why}")]
    BadPackage {
        /// The package (or its file).
        package: String,
        /// What is wrong.
        why: String,
    },
    /// A cached file no longer has the SHA-256 recorded when it was fetched.
    #[error(
        "asset changed: {} has SHA-256 {actual}, but {}/{MANIFEST} recorded {} when {} {} was \
         fetched. Something modified the cache; delete {} (or run `cargo xtask assets \
         --refresh`) to fetch it again",
        path.display(), cache.display(), record.sha256, record.package, record.version,
        cache.display()
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// What the manifest says of it.
        record: Box<Record>,
        /// The file's SHA-256 now.
        actual: String,
        /// The cache directory.
        cache: PathBuf,
    },
    /// The manifest cannot be read.
    #[error("{}: {source}; delete it to fetch the assets again", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The bad line.
        source: manifest::ParseError,
    },
    /// [`cached`] found the cache incomplete.
    #[error(
        "the Linux test assets are not in {} ({why}): run `cargo xtask assets`, or `cargo \
         xtask test`, which fetches them before the QEMU tests{ci}",
        cache.display()
    )]
    NotCached {
        /// The cache directory.
        cache: PathBuf,
        /// What is missing.
        why: String,
        /// A note for CI.
        ci: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AssetError {
    let what = what.into();
    move |source| AssetError::Io { what, source }
}

/// The assets, from the cache if it is complete and unchanged (no network), else fetched
/// (see the module documentation). Prints what it fetched or reused, with SHA-256s, and a
/// warning for each difference from `xtask/assets-tested.txt`.
pub fn ensure(fetch: Fetch) -> Result<LinuxAssets, AssetError> {
    let cache = Cache::new(cache_dir());
    let reused = match fetch {
        Fetch::IfMissing => match cache.state()? {
            State::Ready(records) => Some(records),
            State::Incomplete(why) => {
                println!("assets: fetching into {} ({why})", cache.dir.display());
                None
            }
        },
        Fetch::Refresh => {
            println!("assets: fetching into {} (--refresh)", cache.dir.display());
            None
        }
    };
    let verb = if reused.is_some() {
        "cached"
    } else {
        "fetched"
    };
    let records = match reused {
        Some(records) => records,
        None => cache.fetch()?,
    };
    let assets = cache.finish(records)?;
    println!("assets ({verb}, {}):", cache.dir.display());
    println!("{}", assets.summary());
    for difference in assets.untested() {
        println!(
            "warning: {difference} (xtask/assets-tested.txt): Debian updates its packages, \
             so this is not an error; if a Linux test fails, suspect the new asset first"
        );
    }
    Ok(assets)
}

/// The assets from the cache, without the network, for the tests: every file must be
/// there with its recorded SHA-256 ([`AssetError::NotCached`] or
/// [`AssetError::Changed`] otherwise). Writes the initramfs if it is missing or stale.
pub fn cached() -> Result<LinuxAssets, AssetError> {
    let cache = Cache::new(cache_dir());
    match cache.state()? {
        State::Ready(records) => cache.finish(records),
        State::Incomplete(why) => Err(AssetError::NotCached {
            cache: cache.dir,
            why,
            ci: if std::env::var("CI").is_ok_and(|v| v == "true") {
                " (CI=true: a missing asset is a failure, never a skip)"
            } else {
                ""
            },
        }),
    }
}

/// U-Boot for QEMU `virt` ([`uboot::FILE`] of Debian's [`uboot::PACKAGE`]), the boot
/// bench's peer: from the cache if its file is there with the SHA-256 recorded in
/// [`PEERS_MANIFEST`], else downloaded by package name through the same private APT
/// configuration as the Linux assets and recorded there. Its own manifest, not
/// [`MANIFEST`], so that a cache shared with an older xtask stays readable to it. Prints
/// what it used.
pub fn uboot() -> Result<PathBuf, AssetError> {
    let cache = Cache::new(cache_dir());
    let (verb, record) = match cache.valid_peer()? {
        Some(record) => ("cached", record),
        None => {
            println!(
                "assets: fetching {} into {}",
                uboot::PACKAGE,
                cache.dir.display()
            );
            ("fetched", cache.fetch_uboot()?)
        }
    };
    let path = cache.path(&record);
    println!(
        "u-boot ({verb}): {} {}, sha256 {}\n  {}",
        record.package,
        record.version,
        record.sha256,
        path.display()
    );
    Ok(path)
}

/// What [`Cache::state`] found.
enum State {
    /// Every downloaded file is there and unchanged.
    Ready(Vec<Record>),
    /// Something is missing (not an error: fetch it).
    Incomplete(String),
}

/// The cache directory and its layout.
struct Cache {
    dir: PathBuf,
}

impl Cache {
    fn new(dir: PathBuf) -> Self {
        Cache { dir }
    }

    fn manifest(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }

    fn apt(&self) -> AptDirs {
        AptDirs {
            dir: self.dir.join("apt"),
        }
    }

    fn downloads(&self) -> PathBuf {
        self.dir.join("downloads")
    }

    fn packages(&self) -> PathBuf {
        self.dir.join("pkg")
    }

    /// Where a package is extracted: `pkg/<package>_<version>`, with the epoch's `:`
    /// written `%3a` as APT writes it in file names.
    fn package_dir(&self, package: &str, version: &str) -> PathBuf {
        self.packages()
            .join(format!("{package}_{}", version.replace(':', "%3a")))
    }

    /// Where a record's file is.
    fn path(&self, record: &Record) -> PathBuf {
        match record.role {
            Role::Initramfs => self.dir.join(&record.file),
            _ => self
                .package_dir(&record.package, &record.version)
                .join(&record.file),
        }
    }

    /// Checks the manifest's downloaded files (not the initramfs, which is rebuilt from
    /// them when needed).
    fn state(&self) -> Result<State, AssetError> {
        let path = self.manifest();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State::Incomplete(format!("no {MANIFEST}")));
            }
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        let records = manifest::parse(&text).map_err(|source| AssetError::Manifest {
            path: path.clone(),
            source,
        })?;
        for role in [Role::Kernel, Role::Busybox] {
            if !records.iter().any(|r| r.role == role) {
                return Ok(State::Incomplete(format!("{MANIFEST} has no {role}")));
            }
        }
        for record in records.iter().filter(|r| r.role != Role::Initramfs) {
            let file = self.path(record);
            if !file.is_file() {
                return Ok(State::Incomplete(format!("{} is missing", file.display())));
            }
            let actual =
                manifest::sha256_file(&file).map_err(io(format!("reading {}", file.display())))?;
            if actual != record.sha256 {
                return Err(AssetError::Changed {
                    path: file,
                    record: Box::new(record.clone()),
                    actual,
                    cache: self.dir.clone(),
                });
            }
        }
        Ok(State::Ready(records))
    }

    /// Writes the initramfs if it differs from what busybox and the `/init` script give,
    /// records it, and returns the assets.
    fn finish(&self, mut records: Vec<Record>) -> Result<LinuxAssets, AssetError> {
        let find = |records: &[Record], role| records.iter().find(|r| r.role == role).cloned();
        let busybox = find(&records, Role::Busybox).ok_or_else(|| AssetError::NotCached {
            cache: self.dir.clone(),
            why: "no busybox".into(),
            ci: "",
        })?;
        let busybox_path = self.path(&busybox);
        let bytes =
            fs::read(&busybox_path).map_err(io(format!("reading {}", busybox_path.display())))?;
        let image = initramfs::build(&bytes);
        let initramfs = Record {
            role: Role::Initramfs,
            package: busybox.package.clone(),
            version: busybox.version.clone(),
            file: INITRAMFS_FILE.to_owned(),
            sha256: manifest::sha256_hex(&image),
        };
        let initramfs_path = self.path(&initramfs);
        let on_disk = manifest::sha256_file(&initramfs_path).ok();
        if on_disk.as_deref() != Some(initramfs.sha256.as_str()) {
            write_atomically(&initramfs_path, &image)?;
        }
        if find(&records, Role::Initramfs).as_ref() != Some(&initramfs) {
            records.retain(|r| r.role != Role::Initramfs);
            records.push(initramfs);
            records.sort_by_key(|r| r.role);
            self.write_manifest(&records)?;
        }
        let path_of = |role| find(&records, role).map(|r| self.path(&r));
        Ok(LinuxAssets {
            kernel: path_of(Role::Kernel).expect("state() checked the kernel"),
            initramfs: initramfs_path,
            busybox: busybox_path,
            rpi4_dtb: path_of(Role::Rpi4Dtb),
            records,
        })
    }

    fn write_manifest(&self, records: &[Record]) -> Result<(), AssetError> {
        let text = manifest::format(
            "The Linux test assets in this cache, written by `cargo xtask` (xtask/src/assets.rs).\n\
             Each file is checked against its SHA-256 before it is reused.",
            records,
        );
        write_atomically(&self.manifest(), text.as_bytes())
    }

    /// Writes the private APT configuration and runs `apt-get update` with it; returns
    /// a maker of commands that use it.
    fn update_apt(&self, tools: &Tools) -> Result<impl Fn(&Path) -> Command, AssetError> {
        let apt = self.apt();
        let archives =
            private_apt::archives(&qemu::read_apt_sources()).ok_or(AssetError::NoArchive)?;
        if !archives
            .iter()
            .any(|a| a.suite == private_apt::SECURITY_SUITE)
        {
            println!(
                "warning: no APT source of this machine serves {}: the kernel will be the \
                 one of the last point release",
                private_apt::SECURITY_SUITE
            );
        }
        for dir in apt.dirs() {
            fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        if !apt.status().exists() {
            fs::write(apt.status(), "").map_err(io("writing the private dpkg status"))?;
        }
        for (path, key) in apt.keyrings(&archives) {
            fs::write(&path, key).map_err(io(format!("writing {}", path.display())))?;
        }
        fs::write(apt.sources_list(), apt.sources_text(&archives))
            .map_err(io("writing the private sources list"))?;
        let carried = tools.carried_settings();
        fs::write(apt.config(), apt.config_text(qemu::is_root(), &carried))
            .map_err(io("writing the private APT configuration"))?;
        println!(
            "assets: private APT configuration {} (sources: {})",
            apt.config().display(),
            archives
                .iter()
                .map(|a| format!("{} {}", a.uri, a.suite))
                .collect::<Vec<_>>()
                .join(", ")
        );

        let config = apt.config();
        let apt_cmd = move |program: &Path| {
            let mut cmd = Command::new(program);
            cmd.env("APT_CONFIG", &config);
            cmd
        };
        run(apt_cmd(&tools.apt_get).arg("update"), NETWORK_HINT)?;
        Ok(apt_cmd)
    }

    /// Resolves, downloads and extracts the packages; returns the records of the
    /// downloaded files (the initramfs is added by [`Cache::finish`]). A U-Boot fetched
    /// earlier ([`uboot`]) is kept.
    fn fetch(&self) -> Result<Vec<Record>, AssetError> {
        let tools = Tools::find()?;
        let kept = self.valid_peer().ok().flatten();
        let apt_cmd = self.update_apt(&tools)?;
        let depends = output(apt_cmd(&tools.apt_cache).args(["depends", KERNEL_META_PACKAGE]))?;
        let kernel_package = private_apt::kernel_from_depends(&depends)
            .ok_or(AssetError::NoKernelPackage { output: depends })?;

        let downloads = self.downloads();
        remove_dir(&downloads)?;
        fs::create_dir_all(&downloads).map_err(io(format!("creating {}", downloads.display())))?;
        run(
            apt_cmd(&tools.apt_get).current_dir(&downloads).args([
                "download",
                &kernel_package,
                BUSYBOX_PACKAGE,
            ]),
            NETWORK_HINT,
        )?;

        let kernel = self.unpack(&tools, &kernel_package)?;
        let busybox = self.unpack(&tools, BUSYBOX_PACKAGE)?;
        remove_dir(&downloads)?;

        let abi = kernel_package
            .strip_prefix("linux-image-")
            .unwrap_or(&kernel_package);
        let mut records = vec![
            self.record(Role::Kernel, &kernel, &format!("boot/vmlinuz-{abi}"))?,
            self.record(Role::Busybox, &busybox, "bin/busybox")?,
        ];
        let dtb = format!("usr/lib/linux-image-{abi}/broadcom/bcm2711-rpi-4-b.dtb");
        if kernel.dir.join(&dtb).is_file() {
            records.push(self.record(Role::Rpi4Dtb, &kernel, &dtb)?);
        }
        check_image(&self.path(&records[0]), &kernel_package)?;

        // Drop the packages of earlier fetches (but U-Boot's, which this does not fetch).
        let kept_dir = kept
            .as_ref()
            .map(|r| self.package_dir(&r.package, &r.version));
        let mut keep = vec![kernel.dir.as_path(), busybox.dir.as_path()];
        keep.extend(kept_dir.as_deref());
        if let Ok(entries) = fs::read_dir(self.packages()) {
            for entry in entries.flatten() {
                if !keep.contains(&entry.path().as_path()) {
                    remove_dir(&entry.path())?;
                }
            }
        }
        self.write_manifest(&records)?;
        Ok(records)
    }

    /// Extracts the downloaded `package` into its [`Cache::package_dir`].
    fn unpack(&self, tools: &Tools, package: &str) -> Result<Unpacked, AssetError> {
        let bad = |why: String| AssetError::BadPackage {
            package: package.to_owned(),
            why,
        };
        let prefix = format!("{package}_");
        let deb = fs::read_dir(self.downloads())
            .map_err(io("listing the downloads"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(OsStr::to_str)
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .ok_or_else(|| bad("apt-get download left no .deb for it".into()))?;
        let fields = output(Command::new(&tools.dpkg_deb).arg("-f").arg(&deb).args([
            "Package",
            "Version",
            "Architecture",
        ]))?;
        let field = |name: &str| {
            fields.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|v| v.trim().to_owned())
            })
        };
        let (Some(name), Some(version), Some(arch)) =
            (field("Package"), field("Version"), field("Architecture"))
        else {
            return Err(bad(format!(
                "dpkg-deb -f printed no Package/Version/Architecture:\n{fields}"
            )));
        };
        if name != package || (arch != private_apt::ARCH && arch != "all") {
            return Err(bad(format!(
                "{} is {name} for {arch}, not {package} for {} (or all)",
                deb.display(),
                private_apt::ARCH
            )));
        }
        let dir = self.package_dir(package, &version);
        let mut tmp = dir.clone().into_os_string();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        remove_dir(&tmp)?;
        remove_dir(&dir)?;
        fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        run(
            Command::new(&tools.dpkg_deb).arg("-x").arg(&deb).arg(&tmp),
            "",
        )?;
        fs::rename(&tmp, &dir).map_err(io(format!("renaming {}", tmp.display())))?;
        Ok(Unpacked {
            package: package.to_owned(),
            version,
            dir,
        })
    }

    /// The peers' manifest ([`PEERS_MANIFEST`]).
    fn peers_manifest(&self) -> PathBuf {
        self.dir.join(PEERS_MANIFEST)
    }

    /// U-Boot's record in [`PEERS_MANIFEST`] if its file is there with the recorded
    /// SHA-256; `None` if either is missing (fetch it); [`AssetError::Changed`] if the
    /// file is there with another SHA-256.
    fn valid_peer(&self) -> Result<Option<Record>, AssetError> {
        let path = self.peers_manifest();
        let Ok(text) = fs::read_to_string(&path) else {
            return Ok(None);
        };
        let records =
            manifest::parse(&text).map_err(|source| AssetError::Manifest { path, source })?;
        let Some(record) = records.into_iter().find(|r| r.role == Role::UBoot) else {
            return Ok(None);
        };
        let file = self.path(&record);
        if !file.is_file() {
            return Ok(None);
        }
        let actual =
            manifest::sha256_file(&file).map_err(io(format!("reading {}", file.display())))?;
        if actual != record.sha256 {
            return Err(AssetError::Changed {
                path: file,
                record: Box::new(record),
                actual,
                cache: self.dir.clone(),
            });
        }
        Ok(Some(record))
    }

    /// Downloads and extracts U-Boot and records it in [`PEERS_MANIFEST`].
    fn fetch_uboot(&self) -> Result<Record, AssetError> {
        let tools = Tools::find()?;
        let apt_cmd = self.update_apt(&tools)?;
        let downloads = self.downloads();
        remove_dir(&downloads)?;
        fs::create_dir_all(&downloads).map_err(io(format!("creating {}", downloads.display())))?;
        run(
            apt_cmd(&tools.apt_get)
                .current_dir(&downloads)
                .args(["download", uboot::PACKAGE]),
            NETWORK_HINT,
        )?;
        let unpacked = self.unpack(&tools, uboot::PACKAGE)?;
        remove_dir(&downloads)?;
        let record = self.record(Role::UBoot, &unpacked, uboot::FILE)?;
        let text = manifest::format(
            "The boot bench's peers in this cache, written by `cargo xtask bench` \
             (xtask/src/assets.rs).\nEach file is checked against its SHA-256 before it is reused.",
            std::slice::from_ref(&record),
        );
        write_atomically(&self.peers_manifest(), text.as_bytes())?;
        Ok(record)
    }

    fn record(&self, role: Role, from: &Unpacked, file: &str) -> Result<Record, AssetError> {
        let path = from.dir.join(file);
        if !path.is_file() {
            return Err(AssetError::BadPackage {
                package: format!("{} {}", from.package, from.version),
                why: format!("has no {file}"),
            });
        }
        Ok(Record {
            role,
            package: from.package.clone(),
            version: from.version.clone(),
            file: file.to_owned(),
            sha256: manifest::sha256_file(&path)
                .map_err(io(format!("reading {}", path.display())))?,
        })
    }
}

/// An extracted package.
struct Unpacked {
    package: String,
    version: String,
    dir: PathBuf,
}

/// The programs fetching needs, found on `PATH`.
struct Tools {
    apt_get: PathBuf,
    apt_cache: PathBuf,
    dpkg_deb: PathBuf,
    apt_config: Option<PathBuf>,
}

impl Tools {
    fn find() -> Result<Tools, AssetError> {
        let find = |tool: &'static str| {
            qemu::search_path(tool, std::env::var_os("PATH"))
                .ok_or(AssetError::ToolMissing { tool })
        };
        Ok(Tools {
            apt_get: find("apt-get")?,
            apt_cache: find("apt-cache")?,
            dpkg_deb: find("dpkg-deb")?,
            apt_config: find("apt-config").ok(),
        })
    }

    /// The system's settings for reaching the archive ([`private_apt::carried_settings`]);
    /// none if `apt-config` is missing or fails.
    fn carried_settings(&self) -> Vec<String> {
        let Some(apt_config) = &self.apt_config else {
            return Vec::new();
        };
        Command::new(apt_config)
            .arg("dump")
            .env_remove("APT_CONFIG")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| private_apt::carried_settings(&String::from_utf8_lossy(&out.stdout)))
            .unwrap_or_default()
    }
}

/// Checks that `path` is an uncompressed arm64 Image (magic at 0x38), which hypstub and
/// QEMU's `-kernel` take as it is.
fn check_image(path: &Path, package: &str) -> Result<(), AssetError> {
    let bytes = fs::read(path).map_err(io(format!("reading {}", path.display())))?;
    if bytes.get(0x38..0x3c) != Some(IMAGE_MAGIC) {
        return Err(AssetError::BadPackage {
            package: package.to_owned(),
            why: format!(
                "{} is not an uncompressed arm64 Image (no \"ARM\\x64\" magic at 0x38)",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Runs `cmd` with inherited stdio, printing it first.
fn run(cmd: &mut Command, hint: &str) -> Result<(), AssetError> {
    let shown = display_command(cmd);
    eprintln!("+ {shown}");
    let status = cmd.status().map_err(|e| AssetError::Command {
        command: shown.clone(),
        reason: e.to_string(),
        hint: String::new(),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(AssetError::Command {
            command: shown,
            reason: status.to_string(),
            hint: hint.to_owned(),
        })
    }
}

/// Runs `cmd`, printing it first, and returns its stdout; fails with its stderr.
fn output(cmd: &mut Command) -> Result<String, AssetError> {
    let shown = display_command(cmd);
    eprintln!("+ {shown}");
    let out = cmd.output().map_err(|e| AssetError::Command {
        command: shown.clone(),
        reason: e.to_string(),
        hint: String::new(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(AssetError::Command {
            command: shown,
            reason: out.status.to_string(),
            hint: format!(":\n{}", String::from_utf8_lossy(&out.stderr).trim_end()),
        })
    }
}

/// Removes a directory tree if it exists.
fn remove_dir(dir: &Path) -> Result<(), AssetError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io(format!("removing {}", dir.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Writes `path` through a temporary file in the same directory and a rename, so that a
/// reader (another test binary) never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AssetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let name = path.file_name().and_then(OsStr::to_str).unwrap_or("file");
    let tmp = dir.join(format!(
        ".{name}.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let written = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tested_list_parses() {
        let tested = manifest::parse(TESTED).expect("xtask/assets-tested.txt is a manifest");
        for record in &tested {
            assert_ne!(record.version, "", "{record:?}");
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-assets-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A cache with a fake kernel and busybox, as a fetch would leave it.
    fn fake_cache(name: &str) -> Cache {
        let cache = Cache::new(scratch(name));
        let mut records = Vec::new();
        for (role, package, version, file, bytes) in [
            (
                Role::Kernel,
                "linux-image-6.1.0-56-arm64",
                "6.1.192-2",
                "boot/vmlinuz-6.1.0-56-arm64",
                &b"kernel"[..],
            ),
            (
                Role::Busybox,
                "busybox-static",
                "1:1.35.0-4",
                "bin/busybox",
                &b"busybox"[..],
            ),
        ] {
            let record = Record {
                role,
                package: package.into(),
                version: version.into(),
                file: file.into(),
                sha256: manifest::sha256_hex(bytes),
            };
            let path = cache.path(&record);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, bytes).unwrap();
            records.push(record);
        }
        cache.write_manifest(&records).unwrap();
        cache
    }

    #[test]
    fn reuses_an_unchanged_cache_and_builds_the_initramfs() {
        let cache = fake_cache("reuse");
        let State::Ready(records) = cache.state().unwrap() else {
            panic!("a complete cache is ready");
        };
        let assets = cache.finish(records).unwrap();
        assert!(assets
            .busybox
            .ends_with("pkg/busybox-static_1%3a1.35.0-4/bin/busybox"));
        assert_eq!(assets.initramfs, cache.dir.join(INITRAMFS_FILE));
        let image = fs::read(&assets.initramfs).unwrap();
        assert_eq!(image, initramfs::build(b"busybox"));
        let initramfs = assets.record(Role::Initramfs).unwrap();
        assert_eq!(initramfs.sha256, manifest::sha256_hex(&image));
        assert_eq!(initramfs.version, "1:1.35.0-4");
        // The manifest now lists it too, and a second look changes nothing.
        let text = fs::read_to_string(cache.manifest()).unwrap();
        assert!(text.contains(&initramfs.sha256), "{text}");
        let State::Ready(again) = cache.state().unwrap() else {
            panic!("still ready");
        };
        assert_eq!(cache.finish(again).unwrap(), assets);
        fs::remove_dir_all(&cache.dir).unwrap();
    }

    #[test]
    fn a_changed_file_is_an_error() {
        let cache = fake_cache("changed");
        let kernel = cache
            .package_dir("linux-image-6.1.0-56-arm64", "6.1.192-2")
            .join("boot/vmlinuz-6.1.0-56-arm64");
        fs::write(&kernel, b"kernel, modified").unwrap();
        let err = match cache.state() {
            Err(e @ AssetError::Changed { .. }) => e.to_string(),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a modified kernel must not be reused"),
        };
        assert!(err.starts_with("asset changed: "), "{err}");
        assert!(
            err.contains("linux-image-6.1.0-56-arm64 6.1.192-2"),
            "{err}"
        );
        fs::remove_dir_all(&cache.dir).unwrap();
    }

    #[test]
    fn uboot_is_reused_only_unchanged() {
        let cache = fake_cache("uboot");
        assert!(cache.valid_peer().unwrap().is_none());
        let record = Record {
            role: Role::UBoot,
            package: uboot::PACKAGE.into(),
            version: "2023.01+dfsg-2+deb12u3".into(),
            file: uboot::FILE.into(),
            sha256: manifest::sha256_hex(b"u-boot"),
        };
        let path = cache.path(&record);
        assert!(path.ends_with(
            "pkg/u-boot-qemu_2023.01+dfsg-2+deb12u3/usr/lib/u-boot/qemu_arm64/u-boot.bin"
        ));
        let text = manifest::format("peers", std::slice::from_ref(&record));
        fs::write(cache.peers_manifest(), text).unwrap();
        // Recorded but not there: fetch.
        assert!(cache.valid_peer().unwrap().is_none());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"u-boot").unwrap();
        assert_eq!(cache.valid_peer().unwrap(), Some(record));
        fs::write(&path, b"u-boot, modified").unwrap();
        assert!(matches!(
            cache.valid_peer(),
            Err(AssetError::Changed { .. })
        ));
        // The Linux assets' manifest is untouched and still complete.
        assert!(matches!(cache.state().unwrap(), State::Ready(_)));
        fs::remove_dir_all(&cache.dir).unwrap();
    }

    #[test]
    fn a_missing_file_means_fetch() {
        let cache = fake_cache("missing");
        fs::remove_dir_all(cache.packages()).unwrap();
        let State::Incomplete(why) = cache.state().unwrap() else {
            panic!("incomplete");
        };
        assert!(why.ends_with("is missing"), "{why}");
        fs::remove_file(cache.manifest()).unwrap();
        let State::Incomplete(why) = cache.state().unwrap() else {
            panic!("incomplete");
        };
        assert_eq!(why, "no manifest.txt");
        fs::remove_dir_all(&cache.dir).unwrap();
    }

    #[test]
    fn image_check() {
        let dir = scratch("image");
        let path = dir.join("vmlinuz");
        let mut image = vec![0u8; 64];
        image[..2].copy_from_slice(b"MZ");
        image[0x38..0x3c].copy_from_slice(IMAGE_MAGIC);
        fs::write(&path, &image).unwrap();
        check_image(&path, "k").unwrap();
        fs::write(&path, b"\x1f\x8b compressed").unwrap();
        let err = check_image(&path, "k").unwrap_err().to_string();
        assert!(err.contains("not an uncompressed arm64 Image"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
