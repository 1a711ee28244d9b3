//! `cargo xtask bench --size`: how big the firmware images are, what their sections take,
//! and how much RAM the stub keeps after the hand-off with `hypstub.el=1`.
//!
//! The figures come from the release ELFs, with the toolchain's `llvm-tools`:
//!
//! - `llvm-size -A -d`: every allocated section (the image holds `.text`, `.rodata`,
//!   unwind tables if any, and the load copy of `.data`; `NOLOAD` sections take RAM only);
//! - `llvm-nm`: the linker's symbols for the ranges ([`Resident`]): the board's
//!   `HYPSTUB_RESIDENT_START/_END` (the stub's RAM: EL2 stacks and CPU_ON mailboxes, with
//!   `__stub_bss_start/_end` the part of it in use), on the Pi `HYPSTUB_SHARED_START/_END`
//!   (the shared page) and the image itself (`HYPSTUB_IMAGE_START` to `__image_end`): the
//!   Pi's stub and its parked CPUs run from the image, so it stays reserved. On QEMU
//!   `virt` the image is the first flash bank, not RAM.
//!
//! The targets ([`TARGET_IMAGE`], [`TARGET_RESIDENT`]): each image at most 128 KiB, the
//! resident RAM at most 32 KiB. A MISS is reported, not an error.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use anyhow::Context as _;

use crate::image::{self, Built};

/// The most an image may take (target 3).
pub const TARGET_IMAGE: u64 = 128 << 10;

/// The most RAM the stub may keep after the hand-off with `hypstub.el=1` (target 3).
pub const TARGET_RESIDENT: u64 = 32 << 10;

/// One section of `llvm-size -A -d`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Its name, e.g. `.text`.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Its address.
    pub addr: u64,
    /// Whether the image holds it (its address is in the image, or it is `.data`, whose
    /// load copy is); set by [`mark_image_sections`].
    pub in_image: bool,
}

/// Marks the sections the image `[start, end)` holds.
pub fn mark_image_sections(sections: &mut [Section], start: u64, end: u64) {
    for s in sections {
        s.in_image = s.name == ".data" || (start..end).contains(&s.addr);
    }
}

/// Reads `llvm-size -A -d` (sysv format, decimal): the sections, without the header, the
/// total and the debug sections (address 0 and a `.debug`/`.comment`/`.symtab` name).
pub fn parse_sections(text: &str) -> Result<Vec<Section>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, size, addr] = fields[..] else {
            continue;
        };
        if !name.starts_with('.') {
            continue;
        }
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("`{line}`: `{v}` is not a decimal number"))
        };
        let section = Section {
            name: name.to_owned(),
            size: num(size)?,
            addr: num(addr)?,
            in_image: false,
        };
        if section.name.starts_with(".debug") || section.name == ".comment" {
            continue;
        }
        out.push(section);
    }
    if out.is_empty() {
        return Err(format!("no sections in llvm-size's output:\n{text}"));
    }
    Ok(out)
}

/// Reads `llvm-nm` (`<hex address> <type> <name>` per line): name to address. Lines
/// without an address (undefined symbols) are left out.
pub fn parse_symbols(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (addr, _kind, name) = (f.next()?, f.next()?, f.next()?);
            Some((name.to_owned(), u64::from_str_radix(addr, 16).ok()?))
        })
        .collect()
}

/// Which board an image is for: what stays in RAM differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// QEMU `virt`: the image runs from flash; the stub keeps its RAM region.
    Flash,
    /// The Pi 4: the image is in RAM and stays reserved with the shared page and the
    /// stub's RAM.
    Ram,
}

/// One range of RAM the stub keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resident {
    /// What it is.
    pub what: &'static str,
    /// Its start.
    pub start: u64,
    /// Its end (exclusive).
    pub end: u64,
    /// Of it, the bytes in use (`None`: all of it).
    pub used: Option<u64>,
}

impl Resident {
    /// Bytes reserved.
    pub fn size(&self) -> u64 {
        self.end - self.start
    }
}

/// The RAM the stub keeps, from the ELF's symbols.
pub fn resident(layout: Layout, symbols: &BTreeMap<String, u64>) -> Result<Vec<Resident>, String> {
    let sym = |name: &str| {
        symbols
            .get(name)
            .copied()
            .ok_or_else(|| format!("the ELF has no symbol `{name}`"))
    };
    let range = |start: &str, end: &str| -> Result<(u64, u64), String> {
        let (s, e) = (sym(start)?, sym(end)?);
        if e < s {
            return Err(format!("`{end}` ({e:#x}) is below `{start}` ({s:#x})"));
        }
        Ok((s, e))
    };
    let (ram_start, ram_end) = range("HYPSTUB_RESIDENT_START", "HYPSTUB_RESIDENT_END")?;
    let (bss_start, bss_end) = range("__stub_bss_start", "__stub_bss_end")?;
    let mut out = Vec::new();
    if layout == Layout::Ram {
        let (start, end) = range("HYPSTUB_SHARED_START", "HYPSTUB_SHARED_END")?;
        out.push(Resident {
            what: "shared page (console, parked flags, release words)",
            start,
            end,
            used: None,
        });
    }
    out.push(Resident {
        what: "stub RAM (EL2 stacks, CPU_ON mailboxes)",
        start: ram_start,
        end: ram_end,
        used: Some(bss_end - bss_start),
    });
    if layout == Layout::Ram {
        let (start, end) = range("HYPSTUB_IMAGE_START", "__image_end")?;
        out.push(Resident {
            what: "the image (the stub's code, the parked CPUs' loop)",
            start,
            end,
            used: None,
        });
    }
    Ok(out)
}

/// One image's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The image's file name.
    pub name: String,
    /// Its size in bytes.
    pub image: u64,
    /// The ELF's allocated sections.
    pub sections: Vec<Section>,
    /// What stays in RAM.
    pub resident: Vec<Resident>,
    /// Where the image runs.
    pub layout: Layout,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

impl Report {
    /// Bytes of RAM reserved after the hand-off.
    pub fn resident_total(&self) -> u64 {
        self.resident.iter().map(Resident::size).sum()
    }

    /// Both targets met.
    pub fn passes(&self) -> bool {
        self.image <= TARGET_IMAGE && self.resident_total() <= TARGET_RESIDENT
    }

    /// The block printed for the image.
    pub fn block(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} bytes ({}); target <= {}: {}",
            self.name,
            self.image,
            kib(self.image),
            kib(TARGET_IMAGE),
            verdict(self.image <= TARGET_IMAGE)
        );
        let _ = writeln!(s, "  | section | bytes | address | in the image |");
        let _ = writeln!(s, "  |---|---:|---:|---|");
        for sec in &self.sections {
            let _ = writeln!(
                s,
                "  | {} | {} | {:#x} | {} |",
                sec.name,
                sec.size,
                sec.addr,
                if sec.in_image { "yes" } else { "no (RAM)" }
            );
        }
        let held: u64 = self
            .sections
            .iter()
            .filter(|s| s.in_image)
            .map(|s| s.size)
            .sum();
        let _ = writeln!(
            s,
            "  sections in the image: {held} bytes; alignment padding: {} bytes",
            self.image.saturating_sub(held)
        );
        let _ = writeln!(
            s,
            "  resident after the hand-off with hypstub.el=1 (RAM reserved from the payload):"
        );
        for r in &self.resident {
            let used = r
                .used
                .map(|u| format!(", {u} bytes of it in use"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "    {:#x}..{:#x} {} bytes: {}{used}",
                r.start,
                r.end,
                r.size(),
                r.what
            );
        }
        if self.layout == Layout::Flash {
            let _ = writeln!(
                s,
                "    (code and read-only data stay in flash bank 0, not RAM)"
            );
        }
        let _ = write!(
            s,
            "  resident RAM: {} bytes ({}); target <= {}: {}",
            self.resident_total(),
            kib(self.resident_total()),
            kib(TARGET_RESIDENT),
            verdict(self.resident_total() <= TARGET_RESIDENT)
        );
        s
    }
}

/// Runs `tool` from llvm-tools on `built`'s ELF and returns its stdout.
fn llvm(tool: &str, args: &[&str], built: &Built) -> anyhow::Result<String> {
    let mut cmd = Command::new(image::llvm_tool(tool)?);
    cmd.args(args).arg(&built.elf);
    eprintln!("+ {}", crate::display_command(&cmd));
    let out = cmd
        .output()
        .with_context(|| format!("could not run {tool}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{tool} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Measures a built image: its size, its ELF's sections and what stays in RAM.
pub fn measure(built: &Built, layout: Layout) -> anyhow::Result<Report> {
    let mut sections =
        parse_sections(&llvm("llvm-size", &["-A", "-d"], built)?).map_err(anyhow::Error::msg)?;
    let symbols = parse_symbols(&llvm("llvm-nm", &[], built)?);
    let start = symbols.get("HYPSTUB_IMAGE_START").copied().unwrap_or(0);
    mark_image_sections(&mut sections, start, start + built.size);
    let resident =
        resident(layout, &symbols).map_err(|e| anyhow::anyhow!("{}: {e}", built.elf.display()))?;
    Ok(Report {
        name: built
            .image
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        image: built.size,
        sections,
        resident,
        layout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: &str = "target/aarch64-unknown-none-softfloat/release/qemu-virt  :
section               size         addr
.text               164964            0
.rodata              57616       167936
.data                   16   1074921472
.stub_bss            65664   1074790400
.debug_info        1146319            0
Total              4753044

";

    const NM: &str = "0000000040120000 A HYPSTUB_RESIDENT_END
0000000040100000 A HYPSTUB_RESIDENT_START
0000000000000000 A HYPSTUB_IMAGE_START
0000000040110080 B __stub_bss_end
0000000040100000 B __stub_bss_start
000000000003b790 A __image_end
0000000000002000 A HYPSTUB_SHARED_END
0000000000001000 A HYPSTUB_SHARED_START
                 U undefined_one
";

    #[test]
    fn reads_llvm_size() {
        let mut s = parse_sections(SIZE).unwrap();
        mark_image_sections(&mut s, 0, 0x3_b790);
        assert_eq!(
            s.iter().map(|s| s.in_image).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [".text", ".rodata", ".data", ".stub_bss"]);
        assert_eq!(s[1].size, 57616);
        assert_eq!(s[2].addr, 0x4012_0000);
        assert!(parse_sections("nothing here").is_err());
        assert!(parse_sections(".text 12x 0").is_err());
    }

    #[test]
    fn reads_llvm_nm_and_the_resident_ranges() {
        let syms = parse_symbols(NM);
        assert_eq!(syms["__image_end"], 0x3_b790);
        assert!(!syms.contains_key("undefined_one"));
        let flash = resident(Layout::Flash, &syms).unwrap();
        assert_eq!(flash.len(), 1);
        assert_eq!(flash[0].size(), 0x2_0000);
        assert_eq!(flash[0].used, Some(0x1_0080));
        let ram = resident(Layout::Ram, &syms).unwrap();
        assert_eq!(
            ram.iter().map(Resident::size).collect::<Vec<_>>(),
            [0x1000, 0x2_0000, 0x3_b790]
        );
        let mut missing = syms.clone();
        missing.remove("__stub_bss_end");
        assert!(resident(Layout::Flash, &missing)
            .unwrap_err()
            .contains("__stub_bss_end"));
    }

    #[test]
    fn verdicts() {
        let syms = parse_symbols(NM);
        let mut sections = parse_sections(SIZE).unwrap();
        mark_image_sections(&mut sections, 0, 243_600);
        let mut r = Report {
            name: "hypstub.bin".into(),
            image: 243_600,
            sections,
            resident: resident(Layout::Flash, &syms).unwrap(),
            layout: Layout::Flash,
        };
        let block = r.block();
        assert!(
            block.starts_with("hypstub.bin: 243600 bytes (237.9 KiB); target <= 128.0 KiB: MISS"),
            "{block}"
        );
        assert!(
            block.contains("  | .rodata | 57616 | 0x29000 | yes |"),
            "{block}"
        );
        assert!(
            block.contains("  | .stub_bss | 65664 | 0x40100000 | no (RAM) |"),
            "{block}"
        );
        assert!(
            block.contains("sections in the image: 222596 bytes; alignment padding: 21004 bytes"),
            "{block}"
        );
        assert!(
            block.ends_with("resident RAM: 131072 bytes (128.0 KiB); target <= 32.0 KiB: MISS"),
            "{block}"
        );
        assert!(!r.passes());
        r.image = TARGET_IMAGE;
        r.resident = vec![Resident {
            what: "x",
            start: 0,
            end: TARGET_RESIDENT,
            used: None,
        }];
        assert!(r.passes());
        assert!(r
            .block()
            .contains("131072 bytes (128.0 KiB); target <= 128.0 KiB: PASS"));
    }
}
