//! A private APT configuration for arm64 packages, under the cache, that changes nothing
//! system-wide.
//!
//! APT reads `$APT_CONFIG` first, then the parts directory (`Dir::Etc::Parts`) and the
//! main file (`Dir::Etc::Main`) that setting names. Ours points both at nothing of the
//! system's, so no system setting can move a directory back to `/var`, and no system hook
//! runs (an `APT::Update::Post-Invoke` such as Docker's `docker-clean` would otherwise
//! delete the system's downloaded packages). Every directory APT writes (lists, cache,
//! status, locks) is below the private directory. What it still reads from the system:
//! the keyrings its sources name, and the settings that say how to reach the archive
//! ([`carried_settings`]: proxies, TLS, date checks), copied from `apt-config dump`.
//!
//! The sources are the machine's own: the archive URI of its `bookworm` `main` entry and
//! of its `bookworm-security` entry, with their `Signed-By` keyring ([`archives`]); no
//! archive host is written anywhere in hypstub.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::apt::{self, AptSource};

/// The Debian release the assets come from.
pub const SUITE: &str = "bookworm";

/// Its security suite, where the newest kernel is.
pub const SECURITY_SUITE: &str = "bookworm-security";

/// The component everything is in.
pub const COMPONENT: &str = "main";

/// The architecture of the packages.
pub const ARCH: &str = "arm64";

/// How an archive's signing key is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedBy {
    /// Key files or fingerprints, as `signed-by=` takes them (comma-separated).
    Keys(String),
    /// A deb822 embedded key block, as ASCII-armoured text to write to a file.
    Armored(String),
}

/// One line of the private sources list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// The archive URI, from the machine's sources.
    pub uri: String,
    /// The suite.
    pub suite: String,
    /// Its keyring, if the machine's entry names one.
    pub signed_by: Option<SignedBy>,
    /// The machine's sources file it came from, for messages.
    pub from: PathBuf,
}

/// The archives to fetch from: every URI of the machine's `bookworm` `main` entry, then
/// of its `bookworm-security` entry (if it has one: without it, the kernel is the one of
/// the last point release). `None` when the machine has no `bookworm` `main` entry.
pub fn archives(sources: &[AptSource]) -> Option<Vec<Archive>> {
    let main = apt::debian_archive(sources, SUITE)?;
    let security = apt::debian_archive(sources, SECURITY_SUITE);
    let mut out = Vec::new();
    for (entry, suite) in [(Some(main), SUITE), (security, SECURITY_SUITE)] {
        let Some(entry) = entry else { continue };
        for uri in &entry.uris {
            out.push(Archive {
                uri: uri.clone(),
                suite: suite.to_owned(),
                signed_by: entry.signed_by.as_deref().map(signed_by),
                from: entry.file.clone(),
            });
        }
    }
    Some(out)
}

/// Reads a `Signed-By` value: an embedded key (deb822, a value starting on the next line)
/// becomes armoured text; anything else is key files or fingerprints.
fn signed_by(value: &str) -> SignedBy {
    if let Some(block) = value.strip_prefix('\n') {
        // deb822 continuation lines start with one space or tab; a line of a lone "."
        // stands for an empty line (deb822(5)).
        let mut text = String::new();
        for line in block.lines() {
            let line = line.strip_prefix([' ', '\t']).unwrap_or(line);
            text.push_str(if line == "." { "" } else { line });
            text.push('\n');
        }
        SignedBy::Armored(text)
    } else {
        SignedBy::Keys(
            value
                .split([' ', '\t', ','])
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

/// Where everything of the private configuration lives, below one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptDirs {
    /// The directory (`<cache>/apt`).
    pub dir: PathBuf,
}

impl AptDirs {
    /// The file `APT_CONFIG` names.
    pub fn config(&self) -> PathBuf {
        self.dir.join("etc/apt.conf")
    }

    /// The sources list.
    pub fn sources_list(&self) -> PathBuf {
        self.dir.join("etc/sources.list")
    }

    /// The (empty) dpkg status file: nothing is installed as far as this APT knows.
    pub fn status(&self) -> PathBuf {
        self.dir.join("status")
    }

    /// Where the embedded key number `n` of the sources is written.
    pub fn keyring(&self, n: usize) -> PathBuf {
        self.dir.join(format!("etc/keyring-{n}.asc"))
    }

    /// Directories APT expects to exist.
    pub fn dirs(&self) -> [PathBuf; 5] {
        [
            "lists/partial",
            "cache/archives/partial",
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
        ]
        .map(|d| self.dir.join(d))
    }

    /// The text of [`AptDirs::config`]. `carried` are system settings to keep (see
    /// [`carried_settings`]); as root, downloads run as root rather than as `_apt`, which
    /// could not write to a private directory that root owns.
    pub fn config_text(&self, root: bool, carried: &[String]) -> String {
        let d = |rel: &str| self.dir.join(rel).display().to_string();
        let mut text = String::from(
            "// Written by `cargo xtask` (hypstub, xtask/src/assets/private_apt.rs): a private\n\
             // APT configuration for arm64 test assets. Used only through APT_CONFIG; it\n\
             // reads no system APT configuration and writes only below this directory.\n",
        );
        if !carried.is_empty() {
            text.push_str("// How this machine reaches its archive (from `apt-config dump`):\n");
            for line in carried {
                let _ = writeln!(text, "{line}");
            }
        }
        let settings = [
            ("Dir::Etc::Main", "/dev/null".to_owned()),
            ("Dir::Etc::Parts", d("etc/apt.conf.d")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::State::status", d("status")),
            ("Dir::Cache", d("cache")),
            ("Dir::Etc::SourceList", d("etc/sources.list")),
            ("Dir::Etc::SourceParts", d("etc/sources.list.d")),
            ("Dir::Etc::Preferences", d("etc/preferences")),
            ("Dir::Etc::PreferencesParts", d("etc/preferences.d")),
            ("APT::Architecture", ARCH.to_owned()),
            ("Acquire::Languages", "none".to_owned()),
            // `apt-get update` fails when an index cannot be fetched, rather than warn and
            // leave empty lists for the next step to trip over.
            ("APT::Update::Error-Mode", "any".to_owned()),
        ];
        for (key, value) in settings {
            let _ = writeln!(text, "{key} \"{value}\";");
        }
        let _ = writeln!(text, "APT::Architectures {{ \"{ARCH}\"; }};");
        if root {
            text.push_str("APT::Sandbox::User \"root\";\n");
        }
        text
    }

    /// The text of [`AptDirs::sources_list`] for `archives`; embedded keys are named by
    /// [`AptDirs::keyring`] (the caller writes them, see [`AptDirs::keyrings`]).
    pub fn sources_text(&self, archives: &[Archive]) -> String {
        let mut text = String::from("# Written by `cargo xtask` (hypstub), from:\n");
        let mut files: Vec<&Path> = archives.iter().map(|a| a.from.as_path()).collect();
        files.dedup();
        for file in files {
            let _ = writeln!(text, "#   {}", file.display());
        }
        for (n, archive) in archives.iter().enumerate() {
            let mut options = format!("arch={ARCH}");
            match &archive.signed_by {
                Some(SignedBy::Keys(keys)) => {
                    let _ = write!(options, " signed-by={keys}");
                }
                Some(SignedBy::Armored(_)) => {
                    let _ = write!(options, " signed-by={}", self.keyring(n).display());
                }
                None => {}
            }
            let _ = writeln!(
                text,
                "deb [{options}] {} {} {COMPONENT}",
                archive.uri, archive.suite
            );
        }
        text
    }

    /// The embedded keys to write: (path, armoured text).
    pub fn keyrings(&self, archives: &[Archive]) -> Vec<(PathBuf, String)> {
        archives
            .iter()
            .enumerate()
            .filter_map(|(n, a)| match &a.signed_by {
                Some(SignedBy::Armored(text)) => Some((self.keyring(n), text.clone())),
                _ => None,
            })
            .collect()
    }
}

/// The settings of `apt-config dump` (the system's configuration) that say how to reach
/// the archive, to carry into the private configuration: everything of the transports
/// (`Acquire::http::*`, `https`, `ftp`, `socks`: proxies, certificates, timeouts) and the
/// archive checks an administrator may have relaxed for a snapshot archive
/// (`Acquire::Check-Valid-Until`, `Acquire::Check-Date`), plus `Acquire::Retries` and
/// `Acquire::ForceIPv4`/`ForceIPv6`.
pub fn carried_settings(dump: &str) -> Vec<String> {
    const TRANSPORTS: [&str; 4] = ["http", "https", "ftp", "socks"];
    const TOP: [&str; 5] = [
        "Check-Valid-Until",
        "Check-Date",
        "Retries",
        "ForceIPv4",
        "ForceIPv6",
    ];
    dump.lines()
        .filter(|line| {
            let Some((key, value)) = line.split_once(' ') else {
                return false;
            };
            if value == "\"\";" {
                // A tree node without a value of its own.
                return false;
            }
            let mut parts = key.split("::");
            if parts.next() != Some("Acquire") {
                return false;
            }
            match (parts.next(), parts.next()) {
                (Some(scheme), Some(_)) => TRANSPORTS.contains(&scheme),
                (Some(name), None) => TOP.contains(&name),
                _ => false,
            }
        })
        .map(str::to_owned)
        .collect()
}

/// The versioned kernel package `apt-cache depends linux-image-arm64` names
/// (`  Depends: linux-image-6.1.0-56-arm64`).
pub fn kernel_from_depends(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let name = line.trim().strip_prefix("Depends:")?.trim();
        let name = name.trim_start_matches('<').trim_end_matches('>');
        (name.starts_with("linux-image-") && name.ends_with("-arm64")).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::{parse_deb822, parse_one_line};

    // Reserved example names: the code takes whatever URI the machine uses.
    const MIRROR: &str = "http://mirror.example/debian";
    const SECURITY: &str = "http://mirror.example/debian-security";

    fn machine() -> Vec<AptSource> {
        let mut sources = parse_one_line(
            Path::new("/etc/apt/sources.list.d/vendor.list"),
            "deb https://vendor.example/apt bookworm stable\n",
        );
        sources.extend(parse_deb822(
            Path::new("/etc/apt/sources.list.d/debian.sources"),
            &format!(
                "Types: deb\nURIs: {MIRROR}\nSuites: bookworm bookworm-updates\n\
                 Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                 Types: deb\nURIs: {SECURITY}\nSuites: bookworm-security\nComponents: main\n\
                 Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            ),
        ));
        sources
    }

    #[test]
    fn archives_from_the_machine() {
        let archives = archives(&machine()).unwrap();
        assert_eq!(archives.len(), 2);
        assert_eq!(archives[0].uri, MIRROR);
        assert_eq!(archives[0].suite, "bookworm");
        assert_eq!(archives[1].uri, SECURITY);
        assert_eq!(archives[1].suite, "bookworm-security");
        assert_eq!(
            archives[0].signed_by,
            Some(SignedBy::Keys(
                "/usr/share/keyrings/debian-archive-keyring.gpg".into()
            ))
        );
        let layout = AptDirs {
            dir: "/c/apt".into(),
        };
        let text = layout.sources_text(&archives);
        assert!(text.contains(&format!(
            "\ndeb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             {MIRROR} bookworm main\n"
        )));
        assert!(text.contains(&format!("] {SECURITY} bookworm-security main\n")));
        assert!(!text.contains("vendor.example"));
        assert!(layout.keyrings(&archives).is_empty());
    }

    #[test]
    fn archives_without_security_or_bookworm() {
        let only_main = parse_one_line(
            Path::new("/etc/apt/sources.list"),
            &format!("deb {MIRROR} bookworm main\n"),
        );
        let archives = archives(&only_main).unwrap();
        assert_eq!(archives.len(), 1);
        assert_eq!(archives[0].signed_by, None);
        let layout = AptDirs { dir: "/c".into() };
        assert!(layout
            .sources_text(&archives)
            .ends_with(&format!("deb [arch=arm64] {MIRROR} bookworm main\n")));
        let trixie = parse_one_line(
            Path::new("/etc/apt/sources.list"),
            &format!("deb {MIRROR} trixie main\n"),
        );
        assert_eq!(super::archives(&trixie), None);
    }

    #[test]
    fn embedded_key_becomes_a_file() {
        let sources = parse_deb822(
            Path::new("d.sources"),
            &format!(
                "Types: deb\nURIs: {MIRROR}\nSuites: bookworm\nComponents: main\nSigned-By:\n \
                 -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGPL\n \
                 -----END PGP PUBLIC KEY BLOCK-----\n"
            ),
        );
        let archives = archives(&sources).unwrap();
        let layout = AptDirs { dir: "/c".into() };
        let keys = layout.keyrings(&archives);
        assert_eq!(
            keys,
            [(
                PathBuf::from("/c/etc/keyring-0.asc"),
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGPL\n\
                 -----END PGP PUBLIC KEY BLOCK-----\n"
                    .to_owned()
            )]
        );
        assert!(layout
            .sources_text(&archives)
            .contains("[arch=arm64 signed-by=/c/etc/keyring-0.asc] "));
    }

    #[test]
    fn config_is_private() {
        let layout = AptDirs {
            dir: "/c/apt".into(),
        };
        let text = layout.config_text(false, &[]);
        for line in [
            "Dir::Etc::Main \"/dev/null\";",
            "Dir::Etc::Parts \"/c/apt/etc/apt.conf.d\";",
            "Dir::State::Lists \"/c/apt/lists\";",
            "Dir::State::status \"/c/apt/status\";",
            "Dir::Cache \"/c/apt/cache\";",
            "Dir::Etc::SourceList \"/c/apt/etc/sources.list\";",
            "Dir::Etc::SourceParts \"/c/apt/etc/sources.list.d\";",
            "APT::Architecture \"arm64\";",
            "APT::Architectures { \"arm64\"; };",
            "APT::Update::Error-Mode \"any\";",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}\n{text}");
        }
        assert!(!text.contains("Sandbox"));
        let root = layout.config_text(true, &["Acquire::http::Proxy \"x\";".into()]);
        assert!(root.contains("\nAPT::Sandbox::User \"root\";\n"));
        assert!(root.contains("\nAcquire::http::Proxy \"x\";\n"));
        // Everything APT writes is below the private directory.
        for dir in layout.dirs() {
            assert!(dir.starts_with("/c/apt"));
        }
    }

    #[test]
    fn carries_only_how_to_reach_the_archive() {
        let dump = "Acquire \"\";\n\
                    Acquire::http \"\";\n\
                    Acquire::http::Proxy \"http://proxy.example:3128\";\n\
                    Acquire::https::Proxy::other.example \"DIRECT\";\n\
                    Acquire::Check-Valid-Until \"false\";\n\
                    Acquire::Languages:: \"none\";\n\
                    Acquire::IndexTargets::deb::Packages::MetaKey \"x\";\n\
                    Acquire::GzipIndexes \"true\";\n\
                    APT::Update::Post-Invoke:: \"rm -f /var/cache/apt/archives/*.deb\";\n\
                    Dir::Cache \"/var/cache/apt/\";\n";
        assert_eq!(
            carried_settings(dump),
            [
                "Acquire::http::Proxy \"http://proxy.example:3128\";",
                "Acquire::https::Proxy::other.example \"DIRECT\";",
                "Acquire::Check-Valid-Until \"false\";",
            ]
        );
    }

    #[test]
    fn kernel_package_from_apt_cache() {
        let out = "linux-image-arm64\n  Depends: linux-image-6.1.0-56-arm64\n";
        assert_eq!(
            kernel_from_depends(out).as_deref(),
            Some("linux-image-6.1.0-56-arm64")
        );
        assert_eq!(kernel_from_depends("linux-image-arm64\n"), None);
        assert_eq!(
            kernel_from_depends("x\n  Depends: <linux-image-6.1.0-9-arm64>\n").as_deref(),
            Some("linux-image-6.1.0-9-arm64")
        );
    }
}
