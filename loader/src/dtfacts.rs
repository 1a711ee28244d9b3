//! Board facts read from a device tree: RAM banks, CPU addresses of devices,
//! the console UART and how secondary CPUs are started.
//!
//! These are the facts a board without fixed knowledge (a Raspberry Pi 4,
//! whose firmware edits the DTB for the RAM fitted and the UART chosen in
//! config.txt) must take from the DTB it is given. Every function reads a
//! [`Fdt`] that was validated (`Fdt::new`, or [`Dtb::fdt`](crate::fdt::Dtb::fdt)),
//! on which `dtoolkit`'s readers cannot panic; every problem with the tree's
//! contents is a [`DtError`] naming the node or property and the values
//! involved.
//!
//! Addresses and sizes are read as one or two cells (the Devicetree
//! Specification 2.3.5 defaults, `#address-cells` = 2 and `#size-cells` = 1,
//! apply when the properties are missing); buses with wider addresses, such
//! as PCI's three cells, are refused rather than misread.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use dtoolkit::error::PropertyError;
use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};
use thiserror::Error;

/// What a device tree lacks or gets wrong for one of this module's readers.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtError {
    /// A path names no node.
    #[error("DTB has no node {path}")]
    NoNode {
        /// The path looked up.
        path: String,
    },
    /// A node lacks a property that is required here.
    #[error("DTB node {node} has no {property} property")]
    MissingProperty {
        /// Path of the node.
        node: String,
        /// The property missing.
        property: &'static str,
    },
    /// A property has the wrong length or is not a string.
    #[error("DTB property {path}: {problem}")]
    BadProperty {
        /// Path of the property.
        path: String,
        /// What is wrong with its value.
        problem: PropertyError,
    },
    /// `#address-cells` or `#size-cells` is more than the two cells a `u64`
    /// holds.
    #[error("DTB property {path} = {value} is not supported (expected at most 2)")]
    Cells {
        /// Path of the property.
        path: String,
        /// Its value.
        value: u32,
    },
    /// A `reg` or `ranges` property is not a whole number of entries.
    #[error("DTB property {path} is {len} bytes, not a multiple of its {entry}-byte entries")]
    EntryLength {
        /// Path of the property.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// Bytes per entry.
        entry: usize,
    },
    /// A range, or an address translated through one, runs past the end of
    /// the 64-bit address space.
    #[error("DTB property {path}: {base:#x} + {size:#x} overflows 64 bits")]
    Overflow {
        /// Path of the property.
        path: String,
        /// Start of the range.
        base: u64,
        /// Its size, or the offset added.
        size: u64,
    },
    /// No memory node gives any RAM.
    #[error("DTB has no available node with device_type \"memory\" and a non-empty reg")]
    NoMemory,
    /// A node has no `reg`, or an empty one, where its address is needed.
    #[error("DTB node {node} has an empty reg")]
    EmptyReg {
        /// Path of the node.
        node: String,
    },
    /// A bus between a device and the root has no `ranges`: its children's
    /// addresses do not map to CPU addresses (Devicetree Specification
    /// 2.3.8).
    #[error("address {addr:#x} is not translatable: bus {bus} has no ranges property")]
    NoRanges {
        /// Path of the bus.
        bus: String,
        /// The address on that bus.
        addr: u64,
    },
    /// An address falls in none of a bus's `ranges`.
    #[error("address {addr:#x} is outside every entry of {bus}/ranges")]
    OutsideRanges {
        /// Path of the bus.
        bus: String,
        /// The address on that bus.
        addr: u64,
    },
    /// Neither `/chosen/stdout-path` nor the `serial0` alias names a console.
    #[error("DTB has neither /chosen/stdout-path nor /aliases/serial0")]
    NoConsole,
    /// An alias that is used is not in `/aliases`.
    #[error("DTB has no alias {alias} in /aliases")]
    NoAlias {
        /// The alias name.
        alias: String,
    },
    /// The console node's `status` is neither "okay" nor "ok".
    #[error("console {path} has status \"{status}\" (expected \"okay\")")]
    ConsoleDisabled {
        /// Path of the console node.
        path: String,
        /// Its status.
        status: String,
    },
    /// The console is a UART this firmware has no driver for.
    #[error("console {path} has compatible \"{compatible}\" (expected arm,pl011 or brcm,bcm2835-aux-uart)")]
    UnknownConsole {
        /// Path of the console node.
        path: String,
        /// Its `compatible` strings, joined with ", ".
        compatible: String,
    },
    /// `/cpus` is missing or has no `cpu` nodes.
    #[error("DTB has no /cpus/cpu nodes")]
    NoCpus,
    /// A CPU's `enable-method` is neither "spin-table" nor "psci".
    #[error(
        "DTB property {path}/enable-method = \"{method}\" (expected \"spin-table\" or \"psci\")"
    )]
    EnableMethod {
        /// Path of the CPU node.
        path: String,
        /// The method found.
        method: String,
    },
}

/// The kind of UART a console is, which decides the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// Arm PrimeCell PL011 (`arm,pl011`): QEMU virt's UART, the Pi 4's
    /// first UART.
    Pl011,
    /// The BCM2835 auxiliary mini-UART (`brcm,bcm2835-aux-uart`): the Pi 4's
    /// console on GPIO 14/15 unless Bluetooth is disabled.
    MiniUart,
}

/// The console UART named by the DTB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// Full path of its node, with unit addresses.
    pub path: String,
    /// CPU physical address of its registers (the first `reg` entry,
    /// translated through every bus's `ranges`).
    pub base: u64,
    /// Which UART it is.
    pub kind: ConsoleKind,
}

/// RAM: the `reg` ranges of every available child of the root with
/// `device_type = "memory"`, decoded with the root's `#address-cells` and
/// `#size-cells`, sorted, and with overlapping or touching ranges merged
/// (the Pi 4 firmware lists 2 GiB chunks of one bank separately, as a
/// one-cell size cannot hold 4 GiB).
///
/// Only the root's children are looked at, as Linux's
/// `early_init_dt_scan_memory()` does; `status` other than "okay" excludes a
/// node, as there.
///
/// # Errors
/// Unsupported cell counts, a `reg` of the wrong length or running past 64
/// bits, or no RAM at all.
pub fn memory_banks(fdt: &Fdt<'_>) -> Result<Vec<Range<u64>>, DtError> {
    let root = fdt.root();
    let address_cells = cells(&root, "", "#address-cells", 2)?;
    let size_cells = cells(&root, "", "#size-cells", 1)?;
    let mut ram = Vec::new();
    for node in root.children() {
        let is_memory = node
            .property("device_type")
            .is_some_and(|p| p.value() == b"memory\0");
        if !is_memory || status(&node).is_some() {
            continue;
        }
        let path = format!("/{}", node.name());
        for (base, size) in reg(&node, &path, address_cells, size_cells)? {
            if size > 0 {
                ram.push(base..end(&path, base, size)?);
            }
        }
    }
    ram.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ram.len());
    for range in ram {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    if merged.is_empty() {
        return Err(DtError::NoMemory);
    }
    Ok(merged)
}

/// The CPU physical address of `bus_addr`, an address as the `reg` of the
/// node at `node_path` gives it (so on its parent's bus), translated through
/// the `ranges` of every bus from that parent up to the root (Devicetree
/// Specification 2.3.8). An empty `ranges` maps its bus one to one.
///
/// On a Raspberry Pi 4, `/soc` maps bus address 0x7e20_1000 (the PL011) to
/// CPU address 0xfe20_1000.
///
/// # Errors
/// No such node; a bus on the way with no `ranges`, or whose `ranges` do not
/// cover the address; unsupported cell counts or malformed `ranges`.
pub fn translate(fdt: &Fdt<'_>, node_path: &str, bus_addr: u64) -> Result<u64, DtError> {
    let chain = resolve(fdt, node_path)?;
    translate_chain(&chain, bus_addr)
}

/// The console: the node `/chosen/stdout-path` names (an alias or a full
/// path, any `:options` suffix such as `:115200n8` ignored), or failing that
/// the `serial0` alias; its first `reg` address translated to a CPU address,
/// and its kind from `compatible`.
///
/// # Errors
/// No console named, an alias or node that does not exist, a console whose
/// `status` is not "okay", one that is neither a PL011 nor a mini-UART, or
/// one whose address does not translate.
pub fn console(fdt: &Fdt<'_>) -> Result<Console, DtError> {
    let chosen = fdt.find_node("/chosen");
    let stdout = match chosen.and_then(|c| c.property("stdout-path")) {
        Some(p) => Some(string(&p, "/chosen/stdout-path")?),
        None => None,
    };
    let target = match stdout {
        // Linux's of_alias_scan(): the options start at the first ':'.
        Some(s) => s.split(':').next().unwrap_or_default(),
        None => match alias(fdt, "serial0") {
            Err(DtError::NoAlias { .. }) => return Err(DtError::NoConsole),
            other => other?,
        },
    };
    let path = if target.starts_with('/') {
        target
    } else {
        alias(fdt, target)?
    };
    let chain = resolve(fdt, path)?;
    let path = path_of(&chain);
    // The node and the bus its reg is on; the root has no such bus.
    let Some((node, above)) = chain.split_last() else {
        return Err(DtError::EmptyReg { node: path });
    };
    let Some(parent) = above.last() else {
        return Err(DtError::EmptyReg { node: path });
    };
    let parent_path = path_of(above);
    if let Some(status) = status(node) {
        return Err(DtError::ConsoleDisabled { path, status });
    }
    let compatible = node
        .property("compatible")
        .ok_or_else(|| DtError::MissingProperty {
            node: path.clone(),
            property: "compatible",
        })?;
    let compatible: Vec<&[u8]> = compatible
        .value()
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .collect();
    let kind = if compatible.contains(&&b"arm,pl011"[..]) {
        ConsoleKind::Pl011
    } else if compatible.contains(&&b"brcm,bcm2835-aux-uart"[..]) {
        ConsoleKind::MiniUart
    } else {
        let names: Vec<_> = compatible
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect();
        return Err(DtError::UnknownConsole {
            path,
            compatible: names.join(", "),
        });
    };
    let address_cells = cells(parent, &parent_path, "#address-cells", 2)?;
    let size_cells = cells(parent, &parent_path, "#size-cells", 1)?;
    let Some(&(addr, _)) = reg(node, &path, address_cells, size_cells)?.first() else {
        return Err(DtError::EmptyReg { node: path });
    };
    let base = translate_chain(&chain, addr)?;
    Ok(Console { path, base, kind })
}

/// Memory the DTB says is reserved: every `/memreserve/` entry of the header, then the
/// `reg` ranges of each available child of `/reserved-memory` (read with that node's
/// `#address-cells`/`#size-cells`), empty ranges left out. A firmware must neither load into
/// these nor let a relocation write over them (on a Pi 4, the first is page 0 with the spin
/// table).
///
/// # Errors
/// A reservation or `reg` that runs past 64 bits, or malformed cells.
pub fn reserved(fdt: &Fdt<'_>) -> Result<Vec<Range<u64>>, DtError> {
    let mut out = Vec::new();
    for r in fdt.memory_reservations() {
        if r.size() > 0 {
            out.push(r.address()..end("/memreserve/", r.address(), r.size())?);
        }
    }
    if let Some(node) = fdt.find_node("/reserved-memory") {
        let address_cells = cells(&node, "/reserved-memory", "#address-cells", 2)?;
        let size_cells = cells(&node, "/reserved-memory", "#size-cells", 1)?;
        for child in node.children() {
            if status(&child).is_some() || child.property("reg").is_none() {
                continue;
            }
            let path = format!("/reserved-memory/{}", child.name());
            for (base, size) in reg(&child, &path, address_cells, size_cells)? {
                if size > 0 {
                    out.push(base..end(&path, base, size)?);
                }
            }
        }
    }
    Ok(out)
}

/// How each CPU under `/cpus` is started, in DTB order: its MPIDR (the
/// `reg`, read with `/cpus`' `#address-cells`) and, for `enable-method =
/// "spin-table"`, its `cpu-release-addr` (Documentation/arch/arm64/booting.rst
/// section 5), or `None` for `"psci"`.
///
/// # Errors
/// No `/cpus/cpu` nodes, a CPU without `reg` or `enable-method`, an unknown
/// method, or a spin-table CPU without a 32- or 64-bit `cpu-release-addr`.
pub fn spin_table(fdt: &Fdt<'_>) -> Result<Vec<(u64, Option<u64>)>, DtError> {
    let cpus = fdt.find_node("/cpus").ok_or(DtError::NoCpus)?;
    let address_cells = cells(&cpus, "/cpus", "#address-cells", 2)?;
    let size_cells = cells(&cpus, "/cpus", "#size-cells", 0)?;
    let mut out = Vec::new();
    for cpu in cpus
        .children()
        .filter(|c| c.name_without_address() == "cpu")
    {
        let path = format!("/cpus/{}", cpu.name());
        let Some(&(mpidr, _)) = reg(&cpu, &path, address_cells, size_cells)?.first() else {
            return Err(DtError::EmptyReg { node: path });
        };
        let method = cpu
            .property("enable-method")
            .ok_or_else(|| DtError::MissingProperty {
                node: path.clone(),
                property: "enable-method",
            })?;
        let release = match method.value() {
            b"psci\0" => None,
            b"spin-table\0" => {
                let addr =
                    cpu.property("cpu-release-addr")
                        .ok_or_else(|| DtError::MissingProperty {
                            node: path.clone(),
                            property: "cpu-release-addr",
                        })?;
                match addr.value().len() {
                    4 | 8 => Some(be_cells(addr.value())),
                    _ => {
                        return Err(DtError::BadProperty {
                            path: format!("{path}/cpu-release-addr"),
                            problem: PropertyError::InvalidLength,
                        })
                    }
                }
            }
            other => {
                return Err(DtError::EnableMethod {
                    path,
                    method: lossy(other),
                })
            }
        };
        out.push((mpidr, release));
    }
    if out.is_empty() {
        return Err(DtError::NoCpus);
    }
    Ok(out)
}

/// The nodes from the root to the node at `path`, which must be absolute.
/// A component without a unit address matches the first child of that name
/// with any, as in `Fdt::find_node`.
fn resolve<'a>(fdt: &Fdt<'a>, path: &str) -> Result<Vec<FdtNode<'a>>, DtError> {
    let no_node = || DtError::NoNode { path: path.into() };
    if !path.starts_with('/') {
        return Err(no_node());
    }
    let mut chain = Vec::from([fdt.root()]);
    for component in path.split('/').filter(|s| !s.is_empty()) {
        let parent = chain.last().ok_or_else(no_node)?;
        let child = parent.child(component).ok_or_else(no_node)?;
        chain.push(child);
    }
    Ok(chain)
}

/// The full path of the last node of `chain` (from [`resolve`]).
fn path_of(chain: &[FdtNode<'_>]) -> String {
    let mut path = String::new();
    for node in chain.iter().skip(1) {
        path.push('/');
        path.push_str(node.name());
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// Translates `addr`, on the bus of the last node of `chain`'s parent, up
/// through each ancestor's `ranges` to the root's address space.
fn translate_chain(chain: &[FdtNode<'_>], mut addr: u64) -> Result<u64, DtError> {
    // Buses are the ancestors below the root, innermost first; the root's
    // address space is the CPU's.
    for depth in (1..chain.len().saturating_sub(1)).rev() {
        let (Some(bus), Some(above)) = (chain.get(depth), chain.get(depth - 1)) else {
            break;
        };
        let bus_path = path_of(&chain[..=depth]);
        let above_path = path_of(&chain[..depth]);
        let Some(ranges) = bus.property("ranges") else {
            return Err(DtError::NoRanges {
                bus: bus_path,
                addr,
            });
        };
        if ranges.value().is_empty() {
            continue;
        }
        let child_cells = cells(bus, &bus_path, "#address-cells", 2)?;
        let size_cells = cells(bus, &bus_path, "#size-cells", 1)?;
        let parent_cells = cells(above, &above_path, "#address-cells", 2)?;
        let path = format!("{bus_path}/ranges");
        let entries = entries(
            ranges.value(),
            &path,
            [child_cells, parent_cells, size_cells],
        )?;
        let hit = entries
            .into_iter()
            .find(|&[child, _, size]| addr >= child && addr - child < size);
        let Some([child, parent, _]) = hit else {
            return Err(DtError::OutsideRanges {
                bus: bus_path,
                addr,
            });
        };
        let offset = addr - child;
        addr = parent.checked_add(offset).ok_or(DtError::Overflow {
            path,
            base: parent,
            size: offset,
        })?;
    }
    Ok(addr)
}

/// The (address, size) pairs of `node`'s `reg`; empty without one.
fn reg(
    node: &FdtNode<'_>,
    path: &str,
    address_cells: usize,
    size_cells: usize,
) -> Result<Vec<(u64, u64)>, DtError> {
    let Some(reg) = node.property("reg") else {
        return Ok(Vec::new());
    };
    let entries = entries(
        reg.value(),
        &format!("{path}/reg"),
        [address_cells, size_cells],
    )?;
    Ok(entries
        .into_iter()
        .map(|[base, size]| (base, size))
        .collect())
}

/// Splits `value` into entries of `N` fields, the fields `widths` cells
/// wide (each 0 to 2 cells), read as big-endian numbers.
fn entries<const N: usize>(
    value: &[u8],
    path: &str,
    widths: [usize; N],
) -> Result<Vec<[u64; N]>, DtError> {
    let entry: usize = widths.iter().sum::<usize>() * 4;
    if entry == 0 || !value.len().is_multiple_of(entry) {
        return Err(DtError::EntryLength {
            path: path.into(),
            len: value.len(),
            entry,
        });
    }
    Ok(value
        .chunks_exact(entry)
        .map(|chunk| {
            let mut fields = [0; N];
            let mut at = 0;
            for (field, width) in fields.iter_mut().zip(widths) {
                *field = be_cells(chunk.get(at..at + width * 4).unwrap_or_default());
                at += width * 4;
            }
            fields
        })
        .collect())
}

/// The end of `base + size`, or an error naming `path`.
fn end(path: &str, base: u64, size: u64) -> Result<u64, DtError> {
    base.checked_add(size).ok_or_else(|| DtError::Overflow {
        path: format!("{path}/reg"),
        base,
        size,
    })
}

/// `#address-cells` or `#size-cells` (`name`) of `node` at `path`, or
/// `default` when absent; at most 2.
fn cells(node: &FdtNode<'_>, path: &str, name: &str, default: u32) -> Result<usize, DtError> {
    let prop_path = || format!("{}/{name}", path.trim_end_matches('/'));
    let value = match node.property(name) {
        None => default,
        Some(p) => p
            .value_as::<u32>()
            .map_err(|problem| DtError::BadProperty {
                path: prop_path(),
                problem,
            })?,
    };
    match value {
        0..=2 => Ok(value as usize),
        value => Err(DtError::Cells {
            path: prop_path(),
            value,
        }),
    }
}

/// `None` if the node is available (no `status`, or "okay"/"ok", as Linux's
/// `of_device_is_available()`), else its status.
fn status(node: &FdtNode<'_>) -> Option<String> {
    let prop = node.property("status")?;
    match prop.value() {
        b"okay\0" | b"ok\0" => None,
        other => Some(lossy(other)),
    }
}

/// The value of `alias` in `/aliases`: a path.
fn alias<'a>(fdt: &Fdt<'a>, alias: &str) -> Result<&'a str, DtError> {
    let prop = fdt
        .find_node("/aliases")
        .and_then(|a| a.property(alias))
        .ok_or_else(|| DtError::NoAlias {
            alias: alias.into(),
        })?;
    string(&prop, &format!("/aliases/{alias}"))
}

/// A string property's value.
fn string<'a>(prop: &dtoolkit::fdt::FdtProperty<'a>, path: &str) -> Result<&'a str, DtError> {
    prop.value_as::<&'a str>()
        .map_err(|problem| DtError::BadProperty {
            path: path.into(),
            problem,
        })
}

/// A property value for a message: UTF-8 (lossy), trailing NULs dropped.
fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).trim_end_matches('\0').into()
}

/// Up to two big-endian cells as a number (callers pass at most 8 bytes).
fn be_cells(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}
