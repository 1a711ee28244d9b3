//! Reading the machine's `/etc/os-release` and APT sources, and planning a QEMU install.
//!
//! Everything here is pure text processing so that it runs in `cargo test` on any host;
//! [`crate::qemu::ensure`] does the file system and process work.
//!
//! The one rule this module exists to keep: the archive URI always comes from the
//! machine's own APT sources. On Debian 12 the new `bookworm-backports` entry reuses the
//! URI, components and signing key of the entry the machine already uses for `bookworm`,
//! so the install goes to whatever archive or mirror the administrator chose.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

/// The package that provides `qemu-system-aarch64` on Debian and Ubuntu.
pub const QEMU_PACKAGE: &str = "qemu-system-arm";

/// Where the backports entry is written when the machine has none.
pub const BACKPORTS_SOURCES_PATH: &str = "/etc/apt/sources.list.d/hypstub-backports.sources";

/// The fields of `/etc/os-release` (os-release(5)) that decide how QEMU is installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`, e.g. `debian` or `ubuntu`.
    pub id: String,
    /// `ID_LIKE`, split at spaces, e.g. `["debian"]` on Ubuntu.
    pub id_like: Vec<String>,
    /// `VERSION_CODENAME`, e.g. `bookworm`; absent on Debian unstable.
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`, for messages.
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Parses os-release text: `KEY=value` lines, values optionally in single or double
    /// quotes (double-quoted values may contain backslash escapes), `#` comments.
    pub fn parse(text: &str) -> Self {
        let mut os = OsRelease::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = unquote(value.trim());
            match key.trim() {
                "ID" => os.id = value,
                "ID_LIKE" => os.id_like = value.split_whitespace().map(str::to_owned).collect(),
                "VERSION_CODENAME" if !value.is_empty() => os.version_codename = Some(value),
                "PRETTY_NAME" => os.pretty_name = Some(value),
                _ => {}
            }
        }
        os
    }

    /// Debian, Ubuntu, or a distribution that declares itself like one of them.
    pub fn is_debian_like(&self) -> bool {
        let like = |name: &str| self.id == name || self.id_like.iter().any(|l| l == name);
        like("debian") || like("ubuntu")
    }

    /// Debian 12: its own QEMU (7.2) is too old, version 9 or later is in backports.
    pub fn is_debian_bookworm(&self) -> bool {
        self.id == "debian" && self.version_codename.as_deref() == Some("bookworm")
    }

    /// A name for messages.
    pub fn name(&self) -> &str {
        match (&self.pretty_name, self.id.as_str()) {
            (Some(pretty), _) => pretty,
            (None, "") => "this system (no /etc/os-release)",
            (None, id) => id,
        }
    }
}

/// Removes one level of shell-style quoting from an os-release value.
fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.len() >= 2 && bytes[0] == b'\'' && bytes[bytes.len() - 1] == b'\'' {
        return value[1..value.len() - 1].to_owned();
    }
    if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
        let mut out = String::new();
        let mut chars = value[1..value.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    value.to_owned()
}

/// One APT source entry, from either file format (sources.list(5)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AptSource {
    /// The file it came from, for messages.
    pub file: PathBuf,
    /// `deb`, `deb-src`.
    pub types: Vec<String>,
    /// Archive URIs (one for the one-line format, one or more for deb822).
    pub uris: Vec<String>,
    /// Suites, e.g. `bookworm`, `bookworm-updates`.
    pub suites: Vec<String>,
    /// Components, e.g. `main`, `contrib`.
    pub components: Vec<String>,
    /// The `Signed-By` value exactly as written: a key file path, or, for deb822, an
    /// embedded key whose continuation lines keep their leading space.
    pub signed_by: Option<String>,
    /// Architectures the entry is limited to, if any.
    pub architectures: Vec<String>,
    /// False for a deb822 stanza with `Enabled: no`.
    pub enabled: bool,
}

impl AptSource {
    /// An enabled binary-package (`deb`) entry for `suite`.
    pub fn serves(&self, suite: &str) -> bool {
        self.enabled
            && self.types.iter().any(|t| t == "deb")
            && self.suites.iter().any(|s| s == suite)
    }
}

/// Parses a deb822-style `.sources` file: stanzas separated by blank lines, `Field: value`
/// lines, continuation lines starting with a space or tab, `#` comment lines anywhere.
/// Field names are case-insensitive. Stanzas without `URIs` or `Suites` are skipped.
pub fn parse_deb822(file: &Path, text: &str) -> Vec<AptSource> {
    let mut sources = Vec::new();
    // (lower-case name, raw value) of the stanza being read.
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if let Some(source) = deb822_stanza(file, &fields) {
                sources.push(source);
            }
            fields.clear();
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push('\n');
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    sources
}

fn deb822_stanza(file: &Path, fields: &[(String, String)]) -> Option<AptSource> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let words = |name: &str| -> Vec<String> {
        get(name)
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let source = AptSource {
        file: file.to_owned(),
        types: words("types"),
        uris: words("uris"),
        suites: words("suites"),
        components: words("components"),
        signed_by: get("signed-by").map(str::to_owned),
        architectures: words("architectures"),
        enabled: !get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")),
    };
    (!source.uris.is_empty() && !source.suites.is_empty()).then_some(source)
}

/// Parses a one-line-style file (`/etc/apt/sources.list`, `*.list`):
/// `deb [option=value ...] URI suite [component ...]`, `#` starting a comment.
pub fn parse_one_line(file: &Path, text: &str) -> Vec<AptSource> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((kind, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if kind != "deb" && kind != "deb-src" {
            continue;
        }
        let mut rest = rest.trim_start();
        let mut options = "";
        if let Some(after) = rest.strip_prefix('[') {
            let Some((inside, after)) = after.split_once(']') else {
                continue;
            };
            options = inside;
            rest = after;
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        let mut source = AptSource {
            file: file.to_owned(),
            types: vec![kind.to_owned()],
            uris: vec![uri.to_owned()],
            suites: vec![suite.to_owned()],
            components: words.map(str::to_owned).collect(),
            enabled: true,
            ..AptSource::default()
        };
        for option in options.split_whitespace() {
            let Some((name, value)) = option.split_once('=') else {
                continue;
            };
            match name {
                "signed-by" => source.signed_by = Some(value.to_owned()),
                "arch" => source.architectures = value.split(',').map(str::to_owned).collect(),
                _ => {}
            }
        }
        sources.push(source);
    }
    sources
}

/// Parses one APT sources file, choosing the format from its name the way APT does:
/// `*.sources` is deb822, `*.list` and `sources.list` are one-line; anything else (for
/// example `*.disabled`, `*.save`) is ignored by APT and yields nothing.
pub fn parse_sources_file(file: &Path, text: &str) -> Vec<AptSource> {
    match file.extension().and_then(|e| e.to_str()) {
        Some("sources") => parse_deb822(file, text),
        Some("list") => parse_one_line(file, text),
        _ => Vec::new(),
    }
}

/// Why no install plan could be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Not Debian or Ubuntu: the package name and the package manager are unknown.
    #[error(
        "cannot install QEMU automatically on {0}: install qemu-system-aarch64 version 9.0 \
         or later with the system's package manager (or point HYPSTUB_QEMU at one)"
    )]
    UnsupportedSystem(String),
    /// Debian 12 without an APT entry for `bookworm` to take the archive URI from.
    #[error(
        "no enabled APT source serves `bookworm` with component `main`, so there is no \
         archive to take bookworm-backports from; add a bookworm-backports entry for your \
         archive by hand, then install {QEMU_PACKAGE} from it"
    )]
    NoBookwormSource,
}

/// One thing to do, as root, to install QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallStep {
    /// Create (or replace) a file.
    WriteFile {
        /// Absolute path.
        path: PathBuf,
        /// Whole contents.
        contents: String,
    },
    /// Run a program.
    Run {
        /// Environment variables to set for it.
        env: Vec<(String, String)>,
        /// The program and its arguments.
        argv: Vec<String>,
    },
}

impl InstallStep {
    fn run(env: &[(&str, &str)], argv: &[&str]) -> Self {
        InstallStep::Run {
            env: env
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            argv: argv.iter().map(|&a| a.to_owned()).collect(),
        }
    }

    /// The step as a shell command a user can paste; with `sudo`, for a non-root shell.
    pub fn shell(&self, sudo: bool) -> String {
        let sudo = if sudo { "sudo " } else { "" };
        match self {
            InstallStep::WriteFile { path, contents } => {
                let mut out = String::new();
                let redirect = if sudo.is_empty() {
                    format!("cat > {}", path.display())
                } else {
                    format!("sudo tee {} > /dev/null", path.display())
                };
                let _ = write!(out, "{redirect} <<'EOF'\n{contents}");
                if !contents.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str("EOF");
                out
            }
            InstallStep::Run { env, argv } => {
                let mut out = sudo.to_owned();
                for (k, v) in env {
                    let _ = write!(out, "{k}={v} ");
                }
                out.push_str(&argv.join(" "));
                out
            }
        }
    }
}

/// The steps that install a QEMU new enough for hypstub on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPlan {
    /// In order; stop at the first that fails.
    pub steps: Vec<InstallStep>,
}

impl InstallPlan {
    /// Plans the install for a machine described by its os-release and APT sources.
    ///
    /// Debian 12: add `bookworm-backports` (unless some source already serves it) for the
    /// archive the machine uses for `bookworm`, then install from that suite. Other
    /// Debian and Ubuntu releases: install the release's own package.
    pub fn for_machine(os: &OsRelease, sources: &[AptSource]) -> Result<Self, PlanError> {
        if !os.is_debian_like() {
            return Err(PlanError::UnsupportedSystem(os.name().to_owned()));
        }
        let noninteractive = [("DEBIAN_FRONTEND", "noninteractive")];
        let mut steps = Vec::new();
        if os.is_debian_bookworm() {
            if let Some(contents) = backports_sources(sources)? {
                steps.push(InstallStep::WriteFile {
                    path: BACKPORTS_SOURCES_PATH.into(),
                    contents,
                });
            }
            steps.push(InstallStep::run(&[], &["apt-get", "update"]));
            steps.push(InstallStep::run(
                &noninteractive,
                &[
                    "apt-get",
                    "install",
                    "-y",
                    "-t",
                    "bookworm-backports",
                    QEMU_PACKAGE,
                ],
            ));
        } else {
            steps.push(InstallStep::run(&[], &["apt-get", "update"]));
            steps.push(InstallStep::run(
                &noninteractive,
                &["apt-get", "install", "-y", QEMU_PACKAGE],
            ));
        }
        Ok(InstallPlan { steps })
    }
}

impl fmt::Display for InstallPlan {
    /// The plan as shell commands for a non-root user (with `sudo`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            writeln!(f, "{}", step.shell(true))?;
        }
        Ok(())
    }
}

/// The first enabled `deb` entry that serves `suite` with component `main`: the Debian
/// archive the machine uses for that suite. Entries of other repositories that reuse a
/// suite name (a vendor's `bookworm` with component `stable`) are passed over.
pub fn debian_archive<'a>(sources: &'a [AptSource], suite: &str) -> Option<&'a AptSource> {
    sources
        .iter()
        .find(|s| s.serves(suite) && s.components.iter().any(|c| c == "main"))
}

/// The deb822 text of a `bookworm-backports` entry for the archive the machine uses for
/// `bookworm`, or `None` when some enabled source already serves `bookworm-backports`.
///
/// The entry copies the URIs, components, architectures and `Signed-By` of the first
/// enabled `deb` entry that serves `bookworm` with component `main` (where Debian keeps
/// `qemu-system-arm`); entries of other repositories that reuse the suite name (with
/// components such as `stable`) are passed over.
pub fn backports_sources(sources: &[AptSource]) -> Result<Option<String>, PlanError> {
    if sources.iter().any(|s| s.serves("bookworm-backports")) {
        return Ok(None);
    }
    let base = debian_archive(sources, "bookworm").ok_or(PlanError::NoBookwormSource)?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Written by `cargo xtask` (hypstub): QEMU 9 or later for Debian 12 comes from\n\
         # bookworm-backports. Same archive as the `bookworm` entry in {}.",
        base.file.display()
    );
    text.push_str("Types: deb\n");
    let _ = writeln!(text, "URIs: {}", base.uris.join(" "));
    text.push_str("Suites: bookworm-backports\n");
    let _ = writeln!(text, "Components: {}", base.components.join(" "));
    if !base.architectures.is_empty() {
        let _ = writeln!(text, "Architectures: {}", base.architectures.join(" "));
    }
    if let Some(signed_by) = &base.signed_by {
        if signed_by.starts_with('\n') {
            // An embedded key: its continuation lines already start with a space.
            let _ = writeln!(text, "Signed-By:{signed_by}");
        } else {
            let _ = writeln!(text, "Signed-By: {signed_by}");
        }
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Archive URIs in these samples use reserved example names on purpose: the code must
    // work with whatever URI a machine uses, and no real host name belongs in the project.
    const MIRROR: &str = "http://mirror.example/debian";
    const SECURITY: &str = "http://mirror.example/debian-security";

    fn p(name: &str) -> PathBuf {
        PathBuf::from(name)
    }

    const DEBIAN12_OS_RELEASE: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.example/"
"#;

    const UBUNTU_OS_RELEASE: &str = r#"PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
"#;

    fn debian_sources() -> String {
        format!(
            "Types: deb\n\
             # a comment inside the stanza\n\
             URIs: {MIRROR}\n\
             Suites: bookworm bookworm-updates\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
             \n\
             Types: deb\n\
             URIs: {SECURITY}\n\
             Suites: bookworm-security\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
    }

    #[test]
    fn os_release_debian_12() {
        let os = OsRelease::parse(DEBIAN12_OS_RELEASE);
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_codename.as_deref(), Some("bookworm"));
        assert_eq!(os.name(), "Debian GNU/Linux 12 (bookworm)");
        assert!(os.is_debian_like());
        assert!(os.is_debian_bookworm());
    }

    #[test]
    fn os_release_ubuntu_and_others() {
        let ubuntu = OsRelease::parse(UBUNTU_OS_RELEASE);
        assert_eq!(ubuntu.id_like, ["debian"]);
        assert!(ubuntu.is_debian_like());
        assert!(!ubuntu.is_debian_bookworm());

        let derived = OsRelease::parse("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert!(derived.is_debian_like());

        let sid = OsRelease::parse("ID=debian\nPRETTY_NAME='Debian GNU/Linux trixie/sid'\n");
        assert!(sid.is_debian_like());
        assert!(!sid.is_debian_bookworm());
        assert_eq!(sid.version_codename, None);
        assert_eq!(sid.name(), "Debian GNU/Linux trixie/sid");

        let fedora = OsRelease::parse("ID=fedora\nVERSION_CODENAME=\"\"\n");
        assert!(!fedora.is_debian_like());
        assert_eq!(fedora.version_codename, None);
    }

    #[test]
    fn os_release_quoting() {
        let os = OsRelease::parse("# comment\n\nPRETTY_NAME=\"A \\\"quoted\\\" \\$name\"\nID=x\n");
        assert_eq!(os.pretty_name.as_deref(), Some("A \"quoted\" $name"));
        assert_eq!(os.id, "x");
    }

    #[test]
    fn deb822_two_stanzas() {
        let sources = parse_deb822(&p("debian.sources"), &debian_sources());
        assert_eq!(sources.len(), 2);
        let main = &sources[0];
        assert_eq!(main.types, ["deb"]);
        assert_eq!(main.uris, [MIRROR]);
        assert_eq!(main.suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(main.components, ["main"]);
        assert_eq!(
            main.signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        assert!(main.enabled);
        assert!(main.serves("bookworm"));
        assert!(!main.serves("bookworm-backports"));
        assert_eq!(sources[1].uris, [SECURITY]);
        assert_eq!(sources[1].suites, ["bookworm-security"]);
    }

    #[test]
    fn deb822_case_continuations_disabled_and_junk() {
        let text = format!(
            "types: deb deb-src\n\
             uris: {MIRROR}\n  http://other.example/debian\n\
             suites:\n bookworm\n\
             components: main contrib\n  non-free-firmware\n\
             architectures: amd64\n\
             \n   \n\
             Types: deb\n\
             URIs: http://off.example/debian\n\
             Suites: bookworm-backports\n\
             Components: main\n\
             Enabled: no\n\
             \n\
             Types: deb\n\
             Components: main\n"
        );
        let sources = parse_deb822(&p("x.sources"), &text);
        assert_eq!(
            sources.len(),
            2,
            "the stanza without URIs/Suites is skipped"
        );
        assert_eq!(sources[0].types, ["deb", "deb-src"]);
        assert_eq!(sources[0].uris, [MIRROR, "http://other.example/debian"]);
        assert_eq!(sources[0].suites, ["bookworm"]);
        assert_eq!(
            sources[0].components,
            ["main", "contrib", "non-free-firmware"]
        );
        assert_eq!(sources[0].architectures, ["amd64"]);
        assert!(!sources[1].enabled);
        assert!(!sources[1].serves("bookworm-backports"));
    }

    #[test]
    fn deb822_embedded_key_is_kept_verbatim() {
        let text = format!(
            "Types: deb\nURIs: {MIRROR}\nSuites: bookworm\nComponents: main\nSigned-By:\n \
             -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGPL\n \
             -----END PGP PUBLIC KEY BLOCK-----\n"
        );
        let sources = parse_deb822(&p("k.sources"), &text);
        let key = sources[0].signed_by.as_deref().unwrap();
        assert!(key.starts_with("\n -----BEGIN PGP"));
        let stanza = backports_sources(&sources).unwrap().unwrap();
        assert!(
            stanza.contains(
                "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGPL\n \
                 -----END PGP PUBLIC KEY BLOCK-----\n"
            ),
            "{stanza}"
        );
        // The written stanza parses back to the same archive and key.
        let back = parse_deb822(&p("b.sources"), &stanza);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].signed_by, sources[0].signed_by);
        assert_eq!(back[0].suites, ["bookworm-backports"]);
    }

    #[test]
    fn one_line_format() {
        let text = format!(
            "# deb http://commented.example/debian bookworm main\n\
             deb {MIRROR} bookworm main contrib non-free-firmware # trailing comment\n\
             deb-src {MIRROR} bookworm main\n\
             deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/k.gpg] {SECURITY} bookworm-security main\n\
             deb [ trusted=yes ] http://local.example/repo ./\n\
             deb broken-line-without-suite\n\
             \n"
        );
        let sources = parse_one_line(&p("/etc/apt/sources.list"), &text);
        assert_eq!(sources.len(), 4);
        assert_eq!(sources[0].uris, [MIRROR]);
        assert_eq!(sources[0].suites, ["bookworm"]);
        assert_eq!(
            sources[0].components,
            ["main", "contrib", "non-free-firmware"]
        );
        assert!(sources[0].serves("bookworm"));
        assert_eq!(sources[1].types, ["deb-src"]);
        assert!(
            !sources[1].serves("bookworm"),
            "deb-src lines give no binaries"
        );
        assert_eq!(sources[2].architectures, ["amd64", "arm64"]);
        assert_eq!(
            sources[2].signed_by.as_deref(),
            Some("/usr/share/keyrings/k.gpg")
        );
        assert_eq!(sources[2].uris, [SECURITY]);
        assert_eq!(sources[3].uris, ["http://local.example/repo"]);
        assert_eq!(sources[3].suites, ["./"]);
    }

    #[test]
    fn file_format_follows_the_name() {
        let one_line = format!("deb {MIRROR} bookworm main\n");
        assert_eq!(
            parse_sources_file(&p("/etc/apt/sources.list"), &one_line).len(),
            1
        );
        assert_eq!(parse_sources_file(&p("x.list"), &one_line).len(), 1);
        assert_eq!(
            parse_sources_file(&p("x.sources"), &debian_sources()).len(),
            2
        );
        assert!(
            parse_sources_file(&p("x.sources.disabled-by-admin"), &debian_sources()).is_empty()
        );
        assert!(parse_sources_file(&p("x.list.save"), &one_line).is_empty());
    }

    #[test]
    fn backports_from_deb822_bookworm_entry() {
        let sources = parse_deb822(
            &p("/etc/apt/sources.list.d/debian.sources"),
            &debian_sources(),
        );
        let stanza = backports_sources(&sources).unwrap().unwrap();
        assert!(stanza.contains(&format!("\nURIs: {MIRROR}\n")), "{stanza}");
        assert!(stanza.contains("\nSuites: bookworm-backports\n"));
        assert!(stanza.contains("\nComponents: main\n"));
        assert!(stanza.contains("\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"));
        assert!(stanza.contains("/etc/apt/sources.list.d/debian.sources"));
        assert!(
            !stanza.contains("security"),
            "the security archive is not the base"
        );
        let back = parse_deb822(&p("b.sources"), &stanza);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].uris, [MIRROR]);
        assert!(back[0].serves("bookworm-backports"));
    }

    #[test]
    fn backports_from_one_line_entry_keeps_options() {
        let text = format!(
            "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] {MIRROR} bookworm main contrib\n"
        );
        let sources = parse_one_line(&p("/etc/apt/sources.list"), &text);
        let stanza = backports_sources(&sources).unwrap().unwrap();
        let back = parse_deb822(&p("b.sources"), &stanza);
        assert_eq!(back[0].uris, [MIRROR]);
        assert_eq!(back[0].components, ["main", "contrib"]);
        assert_eq!(back[0].architectures, ["amd64"]);
        assert_eq!(
            back[0].signed_by.as_deref(),
            Some("/usr/share/keyrings/k.gpg")
        );
    }

    #[test]
    fn backports_skips_third_party_bookworm_and_picks_first_main() {
        let mut sources = parse_one_line(
            &p("/etc/apt/sources.list.d/vendor.list"),
            "deb https://vendor.example/linux/debian bookworm stable\n",
        );
        sources.extend(parse_one_line(
            &p("/etc/apt/sources.list.d/cloud.list"),
            "deb https://cloud.example/apt cloud-sdk-bookworm main\n",
        ));
        sources.extend(parse_deb822(&p("debian.sources"), &debian_sources()));
        let stanza = backports_sources(&sources).unwrap().unwrap();
        assert!(stanza.contains(&format!("URIs: {MIRROR}\n")), "{stanza}");
        assert!(!stanza.contains("vendor.example"));
        assert!(!stanza.contains("cloud.example"));
    }

    #[test]
    fn backports_already_present() {
        let mut sources = parse_deb822(&p("debian.sources"), &debian_sources());
        sources.extend(parse_deb822(
            &p("backports.sources"),
            &format!("Types: deb\nURIs: {MIRROR}\nSuites: bookworm-backports\nComponents: main\n"),
        ));
        assert_eq!(backports_sources(&sources), Ok(None));
        // Also when it comes from a one-line file, and from another archive.
        let mut sources = parse_deb822(&p("debian.sources"), &debian_sources());
        sources.extend(parse_one_line(
            &p("/etc/apt/sources.list"),
            "deb http://elsewhere.example/debian bookworm-backports main\n",
        ));
        assert_eq!(backports_sources(&sources), Ok(None));
    }

    #[test]
    fn backports_needs_a_bookworm_entry() {
        assert_eq!(backports_sources(&[]), Err(PlanError::NoBookwormSource));
        let disabled = parse_deb822(
            &p("d.sources"),
            &format!(
                "Types: deb\nURIs: {MIRROR}\nSuites: bookworm\nComponents: main\nEnabled: no\n"
            ),
        );
        assert_eq!(
            backports_sources(&disabled),
            Err(PlanError::NoBookwormSource)
        );
    }

    #[test]
    fn plan_debian_12() {
        let os = OsRelease::parse(DEBIAN12_OS_RELEASE);
        let sources = parse_deb822(&p("debian.sources"), &debian_sources());
        let plan = InstallPlan::for_machine(&os, &sources).unwrap();
        assert_eq!(plan.steps.len(), 3);
        let InstallStep::WriteFile { path, contents } = &plan.steps[0] else {
            panic!("first step writes the sources file: {plan:?}");
        };
        assert_eq!(path, Path::new(BACKPORTS_SOURCES_PATH));
        assert!(contents.contains(MIRROR));
        assert_eq!(plan.steps[1].shell(false), "apt-get update");
        assert_eq!(
            plan.steps[2].shell(false),
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports qemu-system-arm"
        );
        let text = plan.to_string();
        assert!(text.starts_with(&format!(
            "sudo tee {BACKPORTS_SOURCES_PATH} > /dev/null <<'EOF'\n"
        )));
        assert!(text.contains(
            "\nEOF\nsudo apt-get update\nsudo DEBIAN_FRONTEND=noninteractive apt-get install"
        ));
    }

    #[test]
    fn plan_debian_12_with_backports_only_installs() {
        let os = OsRelease::parse(DEBIAN12_OS_RELEASE);
        let mut sources = parse_deb822(&p("debian.sources"), &debian_sources());
        sources.extend(parse_deb822(
            &p("backports.sources"),
            &format!("Types: deb\nURIs: {MIRROR}\nSuites: bookworm-backports\nComponents: main\n"),
        ));
        let plan = InstallPlan::for_machine(&os, &sources).unwrap();
        assert_eq!(plan.steps.len(), 2);
        assert!(plan.steps[1].shell(false).contains("-t bookworm-backports"));
    }

    #[test]
    fn plan_other_releases() {
        let plan = InstallPlan::for_machine(&OsRelease::parse(UBUNTU_OS_RELEASE), &[]).unwrap();
        assert_eq!(
            plan.to_string(),
            "sudo apt-get update\n\
             sudo DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-system-arm\n"
        );
        let trixie = OsRelease::parse("ID=debian\nVERSION_CODENAME=trixie\n");
        let plan = InstallPlan::for_machine(&trixie, &[]).unwrap();
        assert!(!plan.to_string().contains("backports"));
        let fedora = OsRelease::parse("ID=fedora\nPRETTY_NAME=\"Fedora Linux 41\"\n");
        assert_eq!(
            InstallPlan::for_machine(&fedora, &[]),
            Err(PlanError::UnsupportedSystem("Fedora Linux 41".into()))
        );
    }

    #[test]
    fn plan_debian_12_without_bookworm_source_fails() {
        let os = OsRelease::parse(DEBIAN12_OS_RELEASE);
        assert_eq!(
            InstallPlan::for_machine(&os, &[]),
            Err(PlanError::NoBookwormSource)
        );
    }
}
