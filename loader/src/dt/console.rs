//! The console UART a [`Dtb`] names, and the translation of a device's bus address through
//! every bus's `ranges` to the CPU address a driver uses (Devicetree Specification 2.3.8).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};

use super::decode::{cells, entries, reg, status, string};
use super::{DtError, Dtb};

/// The kind of UART a console is, which decides the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// Arm PrimeCell PL011 (`arm,pl011`): QEMU virt's UART, the Pi 4's first UART.
    Pl011,
    /// The BCM2835 auxiliary mini-UART (`brcm,bcm2835-aux-uart`): the Pi 4's console on
    /// GPIO 14/15 unless Bluetooth is disabled.
    MiniUart,
}

/// The console UART named by the DTB ([`Dtb::console`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// Full path of its node, with unit addresses.
    pub path: String,
    /// CPU physical address of its registers (the first `reg` entry, translated through
    /// every bus's `ranges`).
    pub base: u64,
    /// Which UART it is.
    pub kind: ConsoleKind,
}

impl Dtb<'_> {
    /// The console: the node `/chosen/stdout-path` names (an alias or a full path, any
    /// `:options` suffix such as `:115200n8` ignored), or failing that the `serial0` alias;
    /// its first `reg` address translated to a CPU address through the `ranges` of every
    /// bus from its parent up to the root (an empty `ranges` maps its bus one to one; on a
    /// Raspberry Pi 4, `/soc` maps bus address 0x7e20_1000, the PL011, to CPU address
    /// 0xfe20_1000), and its kind from `compatible`.
    ///
    /// # Errors
    /// No console named, an alias or node that does not exist, a console whose `status` is
    /// not "okay", one that is neither a PL011 nor a mini-UART, or one whose address does
    /// not translate (a bus on the way with no `ranges`, or whose `ranges` do not cover
    /// it; unsupported cell counts or malformed `ranges`).
    pub fn console(&self) -> Result<Console, DtError> {
        let fdt = self.fdt();
        let chosen = fdt.find_node("/chosen");
        let stdout = match chosen.and_then(|c| c.property("stdout-path")) {
            Some(p) => Some(string(&p, "/chosen/stdout-path")?),
            None => None,
        };
        let target = match stdout {
            // Linux's of_alias_scan(): the options start at the first ':'.
            Some(s) => s.split(':').next().unwrap_or_default(),
            None => match alias(&fdt, "serial0") {
                Err(DtError::NoAlias { .. }) => return Err(DtError::NoConsole),
                other => other?,
            },
        };
        let path = if target.starts_with('/') {
            target
        } else {
            alias(&fdt, target)?
        };
        let chain = resolve(&fdt, path)?;
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
        let base = translate(&chain, addr)?;
        Ok(Console { path, base, kind })
    }
}

/// The nodes from the root to the node at `path`, which must be absolute. A component
/// without a unit address matches the first child of that name with any, as in
/// `Fdt::find_node`.
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

/// Translates `addr`, on the bus of the last node of `chain`'s parent, up through each
/// ancestor's `ranges` to the root's address space.
fn translate(chain: &[FdtNode<'_>], mut addr: u64) -> Result<u64, DtError> {
    // Buses are the ancestors below the root, innermost first; the root's address space
    // is the CPU's.
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
