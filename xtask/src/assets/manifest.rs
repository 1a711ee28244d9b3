//! The asset manifest: one line per file, `role package version file sha256`.
//!
//! The same format serves twice: the cache's `manifest.txt` records what was fetched
//! (and is checked before every reuse), and `xtask/assets-tested.txt` records what the
//! tests last passed with (compared after every fetch, to warn when Debian has moved on).
//!
//! ```text
//! # role    package                     version    file                         sha256
//! kernel    linux-image-6.1.0-56-arm64  6.1.192-2  boot/vmlinuz-6.1.0-56-arm64  5f1c...
//! ```
//!
//! Fields are separated by spaces (none of them can contain one: Debian package names and
//! versions cannot, and the files are paths inside Debian packages or the cache's own
//! names); `#` starts a comment line. `file` is the path inside the package (as
//! `dpkg-deb -c` lists it), or, for the initramfs, its name in the cache.

use std::fmt::{self, Write as _};
use std::io::Read as _;
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The arm64 kernel Image (`boot/vmlinuz-*` of `linux-image-*-arm64`).
    Kernel,
    /// The Raspberry Pi 4 Model B device tree from the same package (kept for the Pi 4).
    Rpi4Dtb,
    /// The static arm64 busybox (`bin/busybox` of `busybox-static`).
    Busybox,
    /// The initramfs xtask builds from busybox and its `/init` script.
    Initramfs,
    /// U-Boot for QEMU `virt` (`usr/lib/u-boot/qemu_arm64/u-boot.bin` of `u-boot-qemu`),
    /// the boot bench's peer; fetched only by the bench.
    UBoot,
}

impl Role {
    /// Every role, in manifest order.
    pub const ALL: [Role; 5] = [
        Role::Kernel,
        Role::Rpi4Dtb,
        Role::Busybox,
        Role::Initramfs,
        Role::UBoot,
    ];

    /// The name in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Role::Kernel => "kernel",
            Role::Rpi4Dtb => "rpi4-dtb",
            Role::Busybox => "busybox",
            Role::Initramfs => "initramfs",
            Role::UBoot => "u-boot",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

/// One file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What it is for.
    pub role: Role,
    /// The Debian package it comes from (for the initramfs: the package of its busybox).
    pub package: String,
    /// That package's version.
    pub version: String,
    /// Path inside the package (or the initramfs's name in the cache).
    pub file: String,
    /// SHA-256 of the file, 64 lower-case hex digits.
    pub sha256: String,
}

/// A line that is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub why: String,
}

/// Reads a manifest. Every role may appear at most once.
pub fn parse(text: &str) -> Result<Vec<Record>, ParseError> {
    let mut records: Vec<Record> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |why: String| ParseError { line: i + 1, why };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [role, package, version, file, sha256] = fields[..] else {
            return Err(err(format!(
                "expected 5 fields (role package version file sha256), found {}",
                fields.len()
            )));
        };
        let role: Role = role.parse().map_err(err)?;
        if !is_sha256_hex(sha256) {
            return Err(err(format!(
                "`{sha256}` is not a SHA-256 (64 lower-case hex digits)"
            )));
        }
        if records.iter().any(|r| r.role == role) {
            return Err(err(format!("a second `{role}` line")));
        }
        records.push(Record {
            role,
            package: package.to_owned(),
            version: version.to_owned(),
            file: file.to_owned(),
            sha256: sha256.to_owned(),
        });
    }
    Ok(records)
}

/// Writes a manifest: `header` as `#` comment lines, then one aligned line per record,
/// in [`Role`] order.
pub fn format(header: &str, records: &[Record]) -> String {
    let mut records = records.to_vec();
    records.sort_by_key(|r| r.role);
    let mut rows = vec![[
        "# role".to_owned(),
        "package".to_owned(),
        "version".to_owned(),
        "file".to_owned(),
        "sha256".to_owned(),
    ]];
    rows.extend(records.iter().map(|r| {
        [
            r.role.to_string(),
            r.package.clone(),
            r.version.clone(),
            r.file.clone(),
            r.sha256.clone(),
        ]
    }));
    let mut widths = [0; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    for row in &rows {
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(out, "{cell:<w$}  ");
        }
        let _ = writeln!(out, "{}", row[4]);
    }
    out
}

/// How the assets in use differ from the tested ones, one sentence each (empty: none).
pub fn differences(tested: &[Record], in_use: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    for r in in_use {
        let Some(t) = tested.iter().find(|t| t.role == r.role) else {
            out.push(format!(
                "{}: {} {} ({}) is not in the tested list",
                r.role, r.package, r.version, r.file
            ));
            continue;
        };
        if (&t.package, &t.version) != (&r.package, &r.version) {
            out.push(format!(
                "{}: using {} {}, tested with {} {}",
                r.role, r.package, r.version, t.package, t.version
            ));
        } else if (&t.file, &t.sha256) != (&r.file, &r.sha256) {
            out.push(format!(
                "{}: {} {} gives {} with SHA-256 {}, tested with {} with SHA-256 {}",
                r.role, r.package, r.version, r.file, r.sha256, t.file, t.sha256
            ));
        }
    }
    out
}

/// 64 lower-case hex digits.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The SHA-256 of `bytes`, as 64 lower-case hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The SHA-256 of a file's contents, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn record(role: Role, package: &str, version: &str, sha: &str) -> Record {
        Record {
            role,
            package: package.into(),
            version: version.into(),
            file: format!("{role}.bin"),
            sha256: sha.into(),
        }
    }

    #[test]
    fn sha256_known_answers() {
        // FIPS 180-2 appendix B.1, and the empty string.
        assert_eq!(sha256_hex(b"abc"), ABC);
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let path = std::env::temp_dir().join(format!("xtask-sha-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(sha256_file(&path).unwrap(), ABC);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn round_trip() {
        let records = vec![
            record(
                Role::Busybox,
                "busybox-static",
                "1:1.35.0-4+deb12u1+b1",
                ABC,
            ),
            record(Role::Kernel, "linux-image-6.1.0-56-arm64", "6.1.192-2", ABC),
        ];
        let text = format("written by a test\nsecond line", &records);
        assert!(text.starts_with("# written by a test\n# second line\n# role "));
        let back = parse(&text).unwrap();
        assert_eq!(back[0].role, Role::Kernel, "sorted by role");
        assert_eq!(back[1], records[0]);
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn rejects_bad_lines() {
        let cases = [
            ("kernel a b c", "expected 5 fields"),
            ("kernal a b c 00", "unknown role `kernal`"),
            (
                &format!("kernel a b c {}", ABC.to_uppercase()),
                "not a SHA-256",
            ),
            (
                &format!("kernel a b c {ABC}\nkernel d e f {ABC}"),
                "a second `kernel`",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        assert_eq!(parse("# only a comment\n\n").unwrap(), []);
    }

    #[test]
    fn differences_name_what_changed() {
        let tested = [
            record(Role::Kernel, "linux-image-6.1.0-56-arm64", "6.1.192-2", ABC),
            record(Role::Busybox, "busybox-static", "1", ABC),
        ];
        let same = tested.to_vec();
        assert!(differences(&tested, &same).is_empty());
        let zero = "0".repeat(64);
        let newer = [
            record(Role::Kernel, "linux-image-6.1.0-57-arm64", "6.1.200-1", ABC),
            record(Role::Busybox, "busybox-static", "1", &zero),
            record(Role::Initramfs, "busybox-static", "1", ABC),
        ];
        let diffs = differences(&tested, &newer);
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert_eq!(
            diffs[0],
            "kernel: using linux-image-6.1.0-57-arm64 6.1.200-1, tested with \
             linux-image-6.1.0-56-arm64 6.1.192-2"
        );
        assert!(diffs[1].contains(&zero), "{}", diffs[1]);
        assert!(diffs[2].contains("not in the tested list"));
    }
}
