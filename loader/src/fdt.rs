//! Reading and patching the device tree blob handed on to the payload.
//!
//! [`Dtb`] wraps a buffer that starts with a DTB and whose length is the room
//! the blob may grow into (QEMU `virt` leaves it in a 1 MiB area). It is
//! checked completely when wrapped, so that every later read is of a valid
//! blob; reads go through `dtoolkit`'s zero-copy [`Fdt`]. Edits are collected
//! in [`Edits`] and applied in one rewrite through `dtoolkit`'s
//! [`DeviceTree`] model; the result is written back only if it fits, so a
//! failed edit leaves the buffer as it was.
//!
//! The rewrite is a re-serialisation: `NOP` tokens and unused strings go, the
//! blob is packed (version 17), and `boot_cpuid_phys` is kept.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use dtoolkit::error::{FdtParseError, PropertyError};
use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::{Node, Property};
use thiserror::Error;

/// The magic number at the start of a DTB (Devicetree Specification 5.2).
pub const FDT_MAGIC: u32 = 0xd00d_feed;

/// Size of the FDT header (version 17).
pub const FDT_HEADER_SIZE: usize = 40;

/// The largest DTB Linux accepts (booting.rst: "must not exceed 2 megabytes
/// in size"); the room for growth is capped at this.
pub const MAX_DTB_SIZE: usize = 2 << 20;

/// The deepest node nesting accepted. Linux's unflattening gives up beyond
/// the same depth (`FDT_MAX_DEPTH` in drivers/of/fdt.c); it also bounds the
/// recursion of the rewrite.
pub const MAX_DEPTH: usize = 64;

/// Offset of `totalsize` in the FDT header.
const TOTALSIZE_OFFSET: usize = 4;
/// Offset of `off_dt_struct` in the FDT header.
const OFF_DT_STRUCT_OFFSET: usize = 8;
/// Offset of `boot_cpuid_phys` in the FDT header.
const BOOT_CPUID_OFFSET: usize = 28;

/// Structure block tokens (Devicetree Specification 5.4.1).
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;

/// `/chosen` properties for the initrd (Documentation/devicetree/bindings
/// chosen.yaml, read by drivers/of/fdt.c).
const INITRD_START: &str = "linux,initrd-start";
const INITRD_END: &str = "linux,initrd-end";

/// What is wrong with a DTB, or why an edit cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FdtError {
    /// The buffer cannot even hold the header.
    #[error("DTB area of {capacity} bytes is smaller than the {FDT_HEADER_SIZE}-byte FDT header")]
    TooSmall {
        /// Length of the buffer.
        capacity: usize,
    },
    /// The buffer does not start with the FDT magic number.
    #[error("not a device tree: bad magic {found:#010x} at offset 0 (expected {FDT_MAGIC:#010x})")]
    BadMagic {
        /// The value found at offset 0.
        found: u32,
    },
    /// The header's `totalsize` is more than the buffer holds.
    #[error("DTB totalsize {totalsize} bytes (offset 0x4) exceeds its area of {capacity} bytes")]
    TooLarge {
        /// The header's `totalsize`.
        totalsize: usize,
        /// Room in the buffer (capped at [`MAX_DTB_SIZE`]).
        capacity: usize,
    },
    /// `dtoolkit` found the header or structure block inconsistent.
    #[error("malformed DTB: {0}")]
    Malformed(FdtParseError),
    /// Nodes nest deeper than [`MAX_DEPTH`].
    #[error("DTB nodes nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A property has the wrong length or is not a string.
    #[error("DTB property {path}: {problem}")]
    BadProperty {
        /// Path of the property.
        path: String,
        /// What is wrong with its value.
        problem: PropertyError,
    },
    /// `#address-cells` or `#size-cells` of the root is not 1 or 2.
    #[error("DTB property {path} = {value} is not supported (expected 1 or 2)")]
    Cells {
        /// Path of the property.
        path: &'static str,
        /// Its value.
        value: u32,
    },
    /// A `reg` property is not a whole number of (address, size) entries.
    #[error("DTB property {path} is {len} bytes, not a multiple of its {entry}-byte entries")]
    RegLength {
        /// Path of the property.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// Bytes per (address, size) entry.
        entry: usize,
    },
    /// A memory range runs past the end of the 64-bit address space.
    #[error("DTB property {path}: range {base:#x} + {size:#x} overflows 64 bits")]
    RegOverflow {
        /// Path of the property.
        path: String,
        /// Start of the range.
        base: u64,
        /// Size of the range.
        size: u64,
    },
    /// No available memory node gives any RAM.
    #[error("DTB has no available /memory node with a non-empty reg")]
    NoMemory,
    /// `/cpus` is missing or has no `cpu` nodes.
    #[error("DTB has no /cpus/cpu nodes")]
    NoCpus,
    /// A node an edit names does not exist.
    #[error("DTB has no node {path} to edit")]
    NoNode {
        /// The path given.
        path: String,
    },
    /// `/psci` has no `method`.
    #[error("DTB node /psci has no method property")]
    PsciNoMethod,
    /// `/psci/method` is neither "smc" nor "hvc".
    #[error("DTB property /psci/method = \"{value}\" (expected \"smc\" or \"hvc\")")]
    PsciMethod {
        /// The value found.
        value: String,
    },
    /// Only one of the two `/chosen` initrd properties is present.
    #[error("DTB node /chosen has {present} but not {missing}")]
    InitrdIncomplete {
        /// The property present.
        present: &'static str,
        /// The property missing.
        missing: &'static str,
    },
    /// The edited DTB is larger than its area.
    #[error("edited DTB of {needed} bytes does not fit in the DTB area of {capacity} bytes")]
    DoesNotFit {
        /// Size of the edited blob (at least).
        needed: usize,
        /// Room in the buffer (capped at [`MAX_DTB_SIZE`]).
        capacity: usize,
    },
    /// The new command line contains a NUL, which would end it early.
    #[error("bootargs contains a NUL byte at offset {offset}")]
    BootargsNul {
        /// Offset of the first NUL.
        offset: usize,
    },
    /// The new `stdout-path` contains a NUL, which would end it early.
    #[error("stdout-path contains a NUL byte at offset {offset}")]
    StdoutPathNul {
        /// Offset of the first NUL.
        offset: usize,
    },
    /// A memory reservation of size 0 (which would end the reservation block).
    #[error("memory reservation at {base:#x} has size 0")]
    EmptyMemreserve {
        /// Its base.
        base: u64,
    },
    /// A memory reservation that runs past the end of the address space.
    #[error("memory reservation {base:#x} + {size:#x} overflows 64 bits")]
    MemreserveOverflow {
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// A RAM range for [`Edits::memory`] that is empty or ends before it starts.
    #[error("memory range {start:#x}..{end:#x} is empty")]
    EmptyMemoryRange {
        /// Start given.
        start: u64,
        /// End given.
        end: u64,
    },
    /// A RAM address or size for [`Edits::memory`] does not fit the root's one cell.
    #[error("memory address or size {value:#x} does not fit in the root's 32-bit cells")]
    MemoryCells {
        /// The value.
        value: u64,
    },
    /// An initrd that ends before it starts.
    #[error("initrd start {start:#x} is after its end {end:#x}")]
    InitrdReversed {
        /// Start given.
        start: u64,
        /// End given.
        end: u64,
    },
}

/// The SMCCC conduit for PSCI calls (`/psci/method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciMethod {
    /// `smc`: PSCI lives at EL3 (or is emulated there, as by QEMU).
    Smc,
    /// `hvc`: PSCI lives at EL2.
    Hvc,
}

/// Changes to make to a DTB in one rewrite ([`Dtb::apply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits<'a> {
    bootargs: Option<&'a str>,
    stdout_path: Option<&'a str>,
    memreserves: Vec<(u64, u64)>,
    initrd: Option<(u64, u64)>,
    disable: Vec<&'a str>,
    memory: Option<&'a [Range<u64>]>,
    u64_props: Vec<(&'a str, &'a str, u64)>,
    no_map: Vec<(&'a str, u64, u64)>,
}

impl<'a> Edits<'a> {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `status = "disabled"` on a node, if the DTB has it; a DTB without it is left
    /// as it is. `name` is either a child of the root (`flash@0`) or a full path starting
    /// with `/` (`/soc/i2c@7ef04500`).
    #[must_use]
    pub fn disable(mut self, name: &'a str) -> Self {
        self.disable.push(name);
        self
    }

    /// Sets `/chosen/bootargs`, creating `/chosen` if needed.
    #[must_use]
    pub fn bootargs(mut self, bootargs: &'a str) -> Self {
        self.bootargs = Some(bootargs);
        self
    }

    /// Sets `/chosen/stdout-path` (the console: an alias or a path, optionally followed by
    /// `:` and the UART settings, e.g. `serial0:115200n8`; Devicetree Specification 3.6),
    /// creating `/chosen` if needed.
    #[must_use]
    pub fn stdout_path(mut self, stdout_path: &'a str) -> Self {
        self.stdout_path = Some(stdout_path);
        self
    }

    /// Adds `[base, base + size)` to the header's memory reservation block
    /// (`/memreserve/`).
    #[must_use]
    pub fn memreserve(mut self, base: u64, size: u64) -> Self {
        self.memreserves.push((base, size));
        self
    }

    /// Sets `/chosen/linux,initrd-start` and `-end` (as 64-bit values),
    /// creating `/chosen` if needed.
    #[must_use]
    pub fn initrd(mut self, start: u64, end: u64) -> Self {
        self.initrd = Some((start, end));
        self
    }

    /// Makes `ranges` the RAM the DTB describes: the `reg` of the first memory node under
    /// the root (`memory@<start>` is created if there is none), encoded with the root's
    /// `#address-cells` and `#size-cells`; any other memory node is disabled. For a board
    /// whose firmware normally fills in the memory node (a Raspberry Pi) when nothing else
    /// does, such as a test machine.
    #[must_use]
    pub fn memory(mut self, ranges: &'a [Range<u64>]) -> Self {
        self.memory = Some(ranges);
        self
    }

    /// Sets the property `name` of the node at the full path `path` (e.g. `/cpus/cpu@1`) to
    /// `value` as two big-endian cells, as a 64-bit `cpu-release-addr` is written. The node
    /// must exist ([`FdtError::NoNode`]).
    #[must_use]
    pub fn property_u64(mut self, path: &'a str, name: &'a str, value: u64) -> Self {
        self.u64_props.push((path, name, value));
        self
    }

    /// Adds `/reserved-memory/<name>@<base>` with `reg = <base size>` and `no-map`
    /// (reserved-memory.yaml): the payload neither uses nor maps that memory, so it can never
    /// hold a cached copy of what the stub there reads and writes with its MMU off.
    /// `/reserved-memory` is created (with the root's cell sizes and an empty `ranges`) if
    /// the DTB has none.
    #[must_use]
    pub fn reserve_no_map(mut self, name: &'a str, base: u64, size: u64) -> Self {
        self.no_map.push((name, base, size));
        self
    }

    /// Checks the edits themselves, before the tree is touched.
    fn check(&self, size: usize, capacity: usize) -> Result<(), FdtError> {
        if let Some(bootargs) = self.bootargs {
            if let Some(offset) = bootargs.bytes().position(|b| b == 0) {
                return Err(FdtError::BootargsNul { offset });
            }
        }
        if let Some(path) = self.stdout_path {
            if let Some(offset) = path.bytes().position(|b| b == 0) {
                return Err(FdtError::StdoutPathNul { offset });
            }
        }
        // Bounds the rewrite's sizes well below u32::MAX, where dtoolkit's
        // serialiser would panic.
        let strings = [self.bootargs, self.stdout_path]
            .iter()
            .flatten()
            .map(|s| s.len())
            .fold(0usize, usize::saturating_add);
        if strings > capacity {
            return Err(FdtError::DoesNotFit {
                needed: size.saturating_add(strings),
                capacity,
            });
        }
        for &(base, size) in &self.memreserves {
            if size == 0 {
                return Err(FdtError::EmptyMemreserve { base });
            }
            if base.checked_add(size).is_none() {
                return Err(FdtError::MemreserveOverflow { base, size });
            }
        }
        if let Some((start, end)) = self.initrd {
            if start > end {
                return Err(FdtError::InitrdReversed { start, end });
            }
        }
        if let Some(ranges) = self.memory {
            if ranges.is_empty() {
                return Err(FdtError::NoMemory);
            }
            if let Some(r) = ranges.iter().find(|r| r.start >= r.end) {
                return Err(FdtError::EmptyMemoryRange {
                    start: r.start,
                    end: r.end,
                });
            }
        }
        Ok(())
    }
}

/// A checked DTB at the start of a buffer that it may grow into.
#[derive(Debug)]
pub struct Dtb<'a> {
    /// The buffer; its first `len` bytes are a DTB that passed [`Dtb::new`]'s
    /// checks (or was written by [`Dtb::apply`] and checked the same way).
    buf: &'a mut [u8],
    /// The DTB's `totalsize`.
    len: usize,
}

impl<'a> Dtb<'a> {
    /// Checks the DTB at the start of `buf`; the rest of `buf`, up to
    /// [`MAX_DTB_SIZE`] in all, is room for edits.
    ///
    /// The check is complete (header, `totalsize` within the buffer, every
    /// token, name and property of the structure block, the reservation
    /// block, nesting depth), so that later reads cannot fail on the blob's
    /// layout.
    ///
    /// # Errors
    /// The buffer is too small for a header, the magic number is wrong,
    /// `totalsize` exceeds the room, or the blob is malformed or nested
    /// deeper than [`MAX_DEPTH`].
    pub fn new(buf: &'a mut [u8]) -> Result<Self, FdtError> {
        let capacity = buf.len().min(MAX_DTB_SIZE);
        let Some(header) = buf.first_chunk::<FDT_HEADER_SIZE>() else {
            return Err(FdtError::TooSmall {
                capacity: buf.len(),
            });
        };
        let magic = header_u32(header, 0);
        let totalsize = header_u32(header, TOTALSIZE_OFFSET);
        if magic != FDT_MAGIC {
            return Err(FdtError::BadMagic { found: magic });
        }
        let len = totalsize as usize;
        let Some(blob) = buf.get(..len).filter(|_| len <= capacity) else {
            return Err(FdtError::TooLarge {
                totalsize: len,
                capacity,
            });
        };
        check(blob)?;
        Ok(Self { buf, len })
    }

    /// The DTB's current size (`totalsize`).
    pub fn size(&self) -> usize {
        self.len
    }

    /// The room the DTB may grow into: the buffer's length, capped at
    /// [`MAX_DTB_SIZE`].
    pub fn capacity(&self) -> usize {
        self.buf.len().min(MAX_DTB_SIZE)
    }

    /// The DTB's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// `dtoolkit`'s read-only view of the DTB, for what this type does not
    /// read itself (such as the memory reservation block).
    pub fn fdt(&self) -> Fdt<'_> {
        // The blob passed `check` in `new` or `apply`, so dtoolkit's readers,
        // which panic only on blobs that fail its validation, are safe to use.
        Fdt::new_unchecked(self.as_bytes())
    }

    /// RAM described by the available `memory` nodes (device_type "memory"
    /// or named `memory@...`) under the root, decoded with the root's
    /// `#address-cells` and `#size-cells`; empty ranges dropped, sorted by
    /// start.
    ///
    /// # Errors
    /// Cell counts other than 1 or 2, a `reg` of the wrong length or running
    /// past 64 bits, or no RAM at all.
    pub fn memory(&self) -> Result<Vec<Range<u64>>, FdtError> {
        let root = self.fdt().root();
        let address_cells = cells(&root, "#address-cells", "/#address-cells", 2)?;
        let size_cells = cells(&root, "#size-cells", "/#size-cells", 1)?;
        let entry = (address_cells + size_cells) * 4;
        let mut ram = Vec::new();
        for node in root.children() {
            let is_memory = node.name_without_address() == "memory"
                || node
                    .property("device_type")
                    .is_some_and(|p| p.value() == b"memory\0");
            if !is_memory || !is_available(&node) {
                continue;
            }
            let Some(reg) = node.property("reg") else {
                continue;
            };
            let path = || format!("/{}/reg", node.name());
            let value = reg.value();
            if value.len() % entry != 0 {
                return Err(FdtError::RegLength {
                    path: path(),
                    len: value.len(),
                    entry,
                });
            }
            for chunk in value.chunks_exact(entry) {
                let (base, size) = chunk.split_at(address_cells * 4);
                let (base, size) = (be_cells(base), be_cells(size));
                if size == 0 {
                    continue;
                }
                let Some(end) = base.checked_add(size) else {
                    return Err(FdtError::RegOverflow {
                        path: path(),
                        base,
                        size,
                    });
                };
                ram.push(base..end);
            }
        }
        if ram.is_empty() {
            return Err(FdtError::NoMemory);
        }
        ram.sort_unstable_by_key(|r| r.start);
        Ok(ram)
    }

    /// `/chosen/bootargs`, if present.
    ///
    /// # Errors
    /// The property is not a NUL-terminated UTF-8 string.
    pub fn bootargs(&self) -> Result<Option<&str>, FdtError> {
        let Some(prop) = self.chosen_property("bootargs") else {
            return Ok(None);
        };
        prop.value_as::<&str>()
            .map(Some)
            .map_err(|problem| FdtError::BadProperty {
                path: "/chosen/bootargs".into(),
                problem,
            })
    }

    /// `/chosen/stdout-path`, if present.
    ///
    /// # Errors
    /// The property is not a NUL-terminated UTF-8 string.
    pub fn stdout_path(&self) -> Result<Option<&str>, FdtError> {
        let Some(prop) = self.chosen_property("stdout-path") else {
            return Ok(None);
        };
        prop.value_as::<&str>()
            .map(Some)
            .map_err(|problem| FdtError::BadProperty {
                path: "/chosen/stdout-path".into(),
                problem,
            })
    }

    /// The initrd given by `/chosen/linux,initrd-start` and `-end`, if
    /// present (32- or 64-bit values, as Linux reads them).
    ///
    /// # Errors
    /// Only one of the two is present, one has a length other than 4 or 8,
    /// or the end is before the start.
    pub fn initrd(&self) -> Result<Option<Range<u64>>, FdtError> {
        let start = self.chosen_property(INITRD_START);
        let end = self.chosen_property(INITRD_END);
        let (start, end) = match (start, end) {
            (None, None) => return Ok(None),
            (Some(start), Some(end)) => (start, end),
            (Some(_), None) => {
                return Err(FdtError::InitrdIncomplete {
                    present: INITRD_START,
                    missing: INITRD_END,
                })
            }
            (None, Some(_)) => {
                return Err(FdtError::InitrdIncomplete {
                    present: INITRD_END,
                    missing: INITRD_START,
                })
            }
        };
        let (start, end) = (u32_or_u64(&start)?, u32_or_u64(&end)?);
        if start > end {
            return Err(FdtError::InitrdReversed { start, end });
        }
        Ok(Some(start..end))
    }

    /// The PSCI conduit from `/psci/method`, or `None` without a `/psci`
    /// node (as on a Raspberry Pi without TF-A).
    ///
    /// # Errors
    /// `/psci` has no `method`, or one other than "smc" or "hvc".
    pub fn psci_method(&self) -> Result<Option<PsciMethod>, FdtError> {
        let Some(psci) = self.fdt().find_node("/psci") else {
            return Ok(None);
        };
        let Some(method) = psci.property("method") else {
            return Err(FdtError::PsciNoMethod);
        };
        match method.value() {
            b"smc\0" => Ok(Some(PsciMethod::Smc)),
            b"hvc\0" => Ok(Some(PsciMethod::Hvc)),
            other => Err(FdtError::PsciMethod {
                value: String::from_utf8_lossy(other).trim_end_matches('\0').into(),
            }),
        }
    }

    /// The number of `cpu` nodes under `/cpus`.
    ///
    /// # Errors
    /// No `/cpus` node, or no `cpu` node in it.
    pub fn cpu_count(&self) -> Result<usize, FdtError> {
        let cpus = self.fdt().find_node("/cpus").ok_or(FdtError::NoCpus)?;
        let count = cpus
            .children()
            .filter(|c| c.name_without_address() == "cpu")
            .count();
        if count == 0 {
            return Err(FdtError::NoCpus);
        }
        Ok(count)
    }

    /// Makes all `edits` in one rewrite of the DTB into its buffer.
    ///
    /// # Errors
    /// An edit is invalid in itself, or the edited DTB would not fit in the
    /// room ([`FdtError::DoesNotFit`]); then the buffer is left untouched.
    pub fn apply(&mut self, edits: &Edits<'_>) -> Result<(), FdtError> {
        let capacity = self.capacity();
        edits.check(self.len, capacity)?;
        let mut tree = DeviceTree::from_fdt(&self.fdt());
        if edits.bootargs.is_some() || edits.stdout_path.is_some() || edits.initrd.is_some() {
            // Returns the existing /chosen if there is one.
            let chosen = tree
                .root
                .add_child_mut(DeviceTreeNode::new_unchecked("chosen"));
            if let Some(bootargs) = edits.bootargs {
                chosen.add_property(DeviceTreeProperty::new_unchecked("bootargs", bootargs));
            }
            if let Some(path) = edits.stdout_path {
                chosen.add_property(DeviceTreeProperty::new_unchecked("stdout-path", path));
            }
            if let Some((start, end)) = edits.initrd {
                chosen.add_property(DeviceTreeProperty::new_unchecked(INITRD_START, start));
                chosen.add_property(DeviceTreeProperty::new_unchecked(INITRD_END, end));
            }
        }
        for name in &edits.disable {
            let node = if name.starts_with('/') {
                tree.find_node_mut(name)
            } else {
                tree.root.child_mut(name)
            };
            if let Some(node) = node {
                node.add_property(DeviceTreeProperty::new_unchecked("status", "disabled"));
            }
        }
        if let Some(ranges) = edits.memory {
            let root = self.fdt().root();
            let address_cells = cells(&root, "#address-cells", "/#address-cells", 2)?;
            let size_cells = cells(&root, "#size-cells", "/#size-cells", 1)?;
            set_memory(&mut tree, ranges, address_cells, size_cells)?;
        }
        for &(path, name, value) in &edits.u64_props {
            let mut node = Some(&mut tree.root);
            for part in path.split('/').filter(|p| !p.is_empty()) {
                node = node.and_then(|n| n.child_mut(part));
            }
            let node = node.ok_or_else(|| FdtError::NoNode { path: path.into() })?;
            node.add_property(DeviceTreeProperty::new_unchecked(name, value));
        }
        if !edits.no_map.is_empty() {
            let root = self.fdt().root();
            let root_cells = (
                cells(&root, "#address-cells", "/#address-cells", 2)?,
                cells(&root, "#size-cells", "/#size-cells", 1)?,
            );
            let rm_cells = match self.fdt().find_node("/reserved-memory") {
                Some(rm) => (
                    cells(&rm, "#address-cells", "/reserved-memory/#address-cells", 2)?,
                    cells(&rm, "#size-cells", "/reserved-memory/#size-cells", 1)?,
                ),
                None => root_cells,
            };
            add_no_map(&mut tree, &edits.no_map, root_cells, rm_cells)?;
        }
        for &(base, size) in &edits.memreserves {
            tree.memory_reservations
                .push(MemoryReservation::new(base, size));
        }

        let mut out = tree.to_dtb();
        if out.len() > capacity {
            return Err(FdtError::DoesNotFit {
                needed: out.len(),
                capacity,
            });
        }
        // The serialiser writes boot_cpuid_phys = 0; keep the original.
        if let (Some(dst), Some(src)) = (
            out.get_mut(BOOT_CPUID_OFFSET..BOOT_CPUID_OFFSET + 4),
            self.buf.get(BOOT_CPUID_OFFSET..BOOT_CPUID_OFFSET + 4),
        ) {
            dst.copy_from_slice(src);
        }
        check(&out)?;
        let Some(dst) = self.buf.get_mut(..out.len()) else {
            return Err(FdtError::DoesNotFit {
                needed: out.len(),
                capacity,
            });
        };
        dst.copy_from_slice(&out);
        self.len = out.len();
        Ok(())
    }

    /// Sets `/chosen/bootargs` (see [`apply`](Self::apply)).
    ///
    /// # Errors
    /// As for [`apply`](Self::apply).
    pub fn set_bootargs(&mut self, bootargs: &str) -> Result<(), FdtError> {
        self.apply(&Edits::new().bootargs(bootargs))
    }

    /// Adds a `/memreserve/` entry (see [`apply`](Self::apply)).
    ///
    /// # Errors
    /// As for [`apply`](Self::apply).
    pub fn add_memreserve(&mut self, base: u64, size: u64) -> Result<(), FdtError> {
        self.apply(&Edits::new().memreserve(base, size))
    }

    /// Sets the `/chosen` initrd properties (see [`apply`](Self::apply)).
    ///
    /// # Errors
    /// As for [`apply`](Self::apply).
    pub fn set_initrd(&mut self, start: u64, end: u64) -> Result<(), FdtError> {
        self.apply(&Edits::new().initrd(start, end))
    }

    /// A property of `/chosen`, if both exist.
    fn chosen_property(&self, name: &str) -> Option<dtoolkit::fdt::FdtProperty<'_>> {
        self.fdt().find_node("/chosen")?.property(name)
    }
}

/// The RAM edit of [`Edits::memory`] on the tree (`ranges` checked non-empty and each
/// non-empty).
/// Adds the `no-map` children of `/reserved-memory` ([`Edits::reserve_no_map`]), creating the
/// node with `root_cells` when it is missing; `rm_cells` are its cell sizes.
fn add_no_map(
    tree: &mut DeviceTree,
    entries: &[(&str, u64, u64)],
    root_cells: (usize, usize),
    rm_cells: (usize, usize),
) -> Result<(), FdtError> {
    if tree.root.child_mut("reserved-memory").is_none() {
        let mut rm = DeviceTreeNode::new_unchecked("reserved-memory");
        rm.add_property(DeviceTreeProperty::new_unchecked(
            "#address-cells",
            root_cells.0 as u32,
        ));
        rm.add_property(DeviceTreeProperty::new_unchecked(
            "#size-cells",
            root_cells.1 as u32,
        ));
        rm.add_property(DeviceTreeProperty::new_unchecked("ranges", &[0u8; 0][..]));
        tree.root.add_child(rm);
    }
    let Some(rm) = tree.root.child_mut("reserved-memory") else {
        return Err(FdtError::NoNode {
            path: "/reserved-memory".into(),
        });
    };
    for &(name, base, size) in entries {
        let mut reg = Vec::new();
        for (value, cells) in [(base, rm_cells.0), (size, rm_cells.1)] {
            if cells == 1 && value > u64::from(u32::MAX) {
                return Err(FdtError::MemoryCells { value });
            }
            reg.extend_from_slice(&value.to_be_bytes()[8 - 4 * cells..]);
        }
        let mut node = DeviceTreeNode::new_unchecked(format!("{name}@{base:x}"));
        node.add_property(DeviceTreeProperty::new_unchecked("reg", reg));
        node.add_property(DeviceTreeProperty::new_unchecked("no-map", &[0u8; 0][..]));
        rm.add_child(node);
    }
    Ok(())
}

fn set_memory(
    tree: &mut DeviceTree,
    ranges: &[Range<u64>],
    address_cells: usize,
    size_cells: usize,
) -> Result<(), FdtError> {
    let mut reg = Vec::new();
    for r in ranges {
        for (value, cells) in [(r.start, address_cells), (r.end - r.start, size_cells)] {
            if cells == 1 && value > u64::from(u32::MAX) {
                return Err(FdtError::MemoryCells { value });
            }
            reg.extend_from_slice(&value.to_be_bytes()[8 - 4 * cells..]);
        }
    }
    let is_memory = |node: &DeviceTreeNode| {
        node.name() == "memory"
            || node.name().starts_with("memory@")
            || node
                .property("device_type")
                .is_some_and(|p| p.value() == b"memory\0")
    };
    let mut first = true;
    for node in tree.root.children_mut().filter(|n| is_memory(n)) {
        if first {
            node.add_property(DeviceTreeProperty::new_unchecked("reg", reg.clone()));
            node.remove_property("status");
            first = false;
        } else {
            node.add_property(DeviceTreeProperty::new_unchecked("status", "disabled"));
        }
    }
    if first {
        let start = ranges.first().map_or(0, |r| r.start);
        let mut node = DeviceTreeNode::new_unchecked(format!("memory@{start:x}"));
        node.add_property(DeviceTreeProperty::new_unchecked("device_type", "memory"));
        node.add_property(DeviceTreeProperty::new_unchecked("reg", reg));
        tree.root.add_child(node);
    }
    Ok(())
}

/// Validates a whole blob (`blob.len()` is its `totalsize`).
fn check(blob: &[u8]) -> Result<(), FdtError> {
    Fdt::new(blob).map_err(FdtError::Malformed)?;
    if !depth_within_limit(blob) {
        return Err(FdtError::TooDeep);
    }
    Ok(())
}

/// Whether nodes nest at most [`MAX_DEPTH`] deep. Walks the tokens of a blob
/// `Fdt::new` accepted, without recursion; a token it cannot read ends the
/// walk (it cannot happen after that validation).
fn depth_within_limit(blob: &[u8]) -> bool {
    let Some(mut offset) = be_u32(blob, OFF_DT_STRUCT_OFFSET).map(|o| o as usize) else {
        return true;
    };
    let mut depth = 0usize;
    while let Some(token) = be_u32(blob, offset) {
        offset = match token {
            FDT_BEGIN_NODE => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
                let name = offset + 4;
                let Some(nul) = blob
                    .get(name..)
                    .and_then(|s| s.iter().position(|&b| b == 0))
                else {
                    return true;
                };
                (name + nul + 1).next_multiple_of(4)
            }
            FDT_END_NODE => {
                depth = depth.saturating_sub(1);
                offset + 4
            }
            FDT_PROP => {
                let Some(len) = be_u32(blob, offset + 4) else {
                    return true;
                };
                (offset + 12 + len as usize).next_multiple_of(4)
            }
            FDT_NOP => offset + 4,
            // FDT_END, or anything validation would have refused.
            _ => return true,
        };
    }
    true
}

/// Reads `#address-cells` or `#size-cells` of `node` (`default` when absent),
/// accepting 1 or 2.
fn cells(
    node: &FdtNode<'_>,
    name: &str,
    path: &'static str,
    default: u32,
) -> Result<usize, FdtError> {
    let value = match node.property(name) {
        None => default,
        Some(p) => p
            .value_as::<u32>()
            .map_err(|problem| FdtError::BadProperty {
                path: path.into(),
                problem,
            })?,
    };
    match value {
        1 => Ok(1),
        2 => Ok(2),
        value => Err(FdtError::Cells { path, value }),
    }
}

/// Linux's `of_fdt_device_is_available()`: no `status`, or "okay"/"ok".
fn is_available(node: &FdtNode<'_>) -> bool {
    match node.property("status") {
        None => true,
        Some(p) => matches!(p.value(), b"okay\0" | b"ok\0"),
    }
}

/// A property holding a 32- or 64-bit big-endian number.
fn u32_or_u64(prop: &dtoolkit::fdt::FdtProperty<'_>) -> Result<u64, FdtError> {
    match prop.value().len() {
        4 | 8 => Ok(be_cells(prop.value())),
        _ => Err(FdtError::BadProperty {
            path: format!("/chosen/{}", prop.name()),
            problem: PropertyError::InvalidLength,
        }),
    }
}

/// One or two big-endian cells as a number (callers pass at most 8 bytes).
fn be_cells(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// The big-endian `u32` at `at` in the header (`at` is a constant field
/// offset, so the slice is always in bounds).
fn header_u32(header: &[u8; FDT_HEADER_SIZE], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&header[at..at + 4]);
    u32::from_be_bytes(b)
}

/// The big-endian `u32` at `offset`, if the slice holds it.
fn be_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    bytes
        .get(offset..end)?
        .try_into()
        .ok()
        .map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;

    /// A small tree with the given root cells and memory `reg`.
    fn tree(address_cells: u32, size_cells: u32, reg: &[u32]) -> DeviceTree {
        let mut t = DeviceTree::new();
        t.root
            .add_property(DeviceTreeProperty::new("#address-cells", address_cells).unwrap());
        t.root
            .add_property(DeviceTreeProperty::new("#size-cells", size_cells).unwrap());
        let memory = DeviceTreeNode::builder("memory@0")
            .unwrap()
            .property(DeviceTreeProperty::new("device_type", "memory").unwrap())
            .property(DeviceTreeProperty::new("reg", reg.to_vec()).unwrap())
            .build();
        t.root.add_child(memory);
        t
    }

    fn with_room(dtb: &[u8], room: usize) -> Vec<u8> {
        let mut buf = dtb.to_vec();
        buf.resize(dtb.len() + room, 0);
        buf
    }

    #[test]
    fn memory_with_one_cell_each() {
        let mut buf = tree(1, 1, &[0x8000_0000, 0x1000_0000, 0, 0x100_0000]).to_dtb();
        let dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(
            dtb.memory().unwrap(),
            vec![0..0x100_0000, 0x8000_0000..0x9000_0000]
        );
    }

    #[test]
    fn memory_with_two_cells_each() {
        let mut buf = tree(2, 2, &[0x8, 0, 0x1, 0, 0, 0x4000_0000, 0, 0]).to_dtb();
        let dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(dtb.memory().unwrap(), vec![0x8_0000_0000..0x9_0000_0000]);
    }

    #[test]
    fn memory_errors() {
        let mut buf = tree(3, 1, &[0, 0, 0, 0]).to_dtb();
        let err = Dtb::new(&mut buf).unwrap().memory().unwrap_err();
        assert_eq!(
            err,
            FdtError::Cells {
                path: "/#address-cells",
                value: 3
            }
        );
        assert!(err.to_string().contains("/#address-cells = 3"));

        let mut buf = tree(2, 0, &[0, 0]).to_dtb();
        assert!(matches!(
            Dtb::new(&mut buf).unwrap().memory(),
            Err(FdtError::Cells { value: 0, .. })
        ));

        let mut buf = tree(2, 1, &[0, 0x4000_0000, 0x1000, 7]).to_dtb();
        let err = Dtb::new(&mut buf).unwrap().memory().unwrap_err();
        assert_eq!(
            err,
            FdtError::RegLength {
                path: "/memory@0/reg".into(),
                len: 16,
                entry: 12
            }
        );

        let mut buf = tree(2, 2, &[0xffff_ffff, 0xffff_0000, 0, 0x1_0000]).to_dtb();
        assert!(matches!(
            Dtb::new(&mut buf).unwrap().memory(),
            Err(FdtError::RegOverflow { .. })
        ));

        let mut buf = tree(2, 1, &[0, 0x4000_0000, 0]).to_dtb();
        assert_eq!(
            Dtb::new(&mut buf).unwrap().memory(),
            Err(FdtError::NoMemory)
        );

        let mut t = tree(2, 1, &[0, 0x4000_0000, 0x1000]);
        t.root
            .add_property(DeviceTreeProperty::new("#size-cells", vec![0u8; 3]).unwrap());
        let mut buf = t.to_dtb();
        assert!(matches!(
            Dtb::new(&mut buf).unwrap().memory(),
            Err(FdtError::BadProperty { .. })
        ));
    }

    #[test]
    fn disabled_memory_ignored() {
        let mut t = tree(2, 1, &[0, 0x4000_0000, 0x1000]);
        let memory = DeviceTreeNode::builder("memory@80000000")
            .unwrap()
            .property(DeviceTreeProperty::new("device_type", "memory").unwrap())
            .property(DeviceTreeProperty::new("status", "disabled").unwrap())
            .property(DeviceTreeProperty::new("reg", vec![0u32, 0x8000_0000, 0x1000]).unwrap())
            .build();
        t.root.add_child(memory);
        let mut buf = t.to_dtb();
        let dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(dtb.memory().unwrap(), vec![0x4000_0000..0x4000_1000]);
    }

    #[test]
    fn psci_and_cpus() {
        let mut t = DeviceTree::new();
        let mut buf = t.to_dtb();
        let dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(dtb.psci_method(), Ok(None));
        assert_eq!(dtb.cpu_count(), Err(FdtError::NoCpus));

        t.root.add_child(DeviceTreeNode::new("psci").unwrap());
        let mut cpus = DeviceTreeNode::new("cpus").unwrap();
        cpus.add_child(DeviceTreeNode::new("cpu-map").unwrap());
        let mut buf = t.to_dtb();
        let dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(dtb.psci_method(), Err(FdtError::PsciNoMethod));

        for (method, want) in [("smc", PsciMethod::Smc), ("hvc", PsciMethod::Hvc)] {
            let psci = t.find_node_mut("/psci").unwrap();
            psci.add_property(DeviceTreeProperty::new("method", method).unwrap());
            let mut buf = t.to_dtb();
            assert_eq!(Dtb::new(&mut buf).unwrap().psci_method(), Ok(Some(want)));
        }
        let psci = t.find_node_mut("/psci").unwrap();
        psci.add_property(DeviceTreeProperty::new("method", "svc").unwrap());
        let mut buf = t.to_dtb();
        let err = Dtb::new(&mut buf).unwrap().psci_method().unwrap_err();
        assert_eq!(
            err,
            FdtError::PsciMethod {
                value: "svc".into()
            }
        );
        assert!(err.to_string().contains("\"svc\""));

        t.root.add_child(cpus.clone());
        let mut buf = t.to_dtb();
        assert_eq!(
            Dtb::new(&mut buf).unwrap().cpu_count(),
            Err(FdtError::NoCpus)
        );
        for i in 0..3 {
            cpus.add_child(DeviceTreeNode::new(format!("cpu@{i}")).unwrap());
        }
        t.root.add_child(cpus);
        let mut buf = t.to_dtb();
        assert_eq!(Dtb::new(&mut buf).unwrap().cpu_count(), Ok(3));
    }

    #[test]
    fn creates_chosen() {
        let mut buf = with_room(&DeviceTree::new().to_dtb(), 256);
        let mut dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(dtb.bootargs(), Ok(None));
        assert_eq!(dtb.initrd(), Ok(None));
        dtb.apply(
            &Edits::new()
                .bootargs("console=ttyAMA0")
                .initrd(0x4800_0000, 0x4900_0000)
                .memreserve(0x4010_0000, 0x1_0000),
        )
        .unwrap();
        assert_eq!(dtb.bootargs(), Ok(Some("console=ttyAMA0")));
        assert_eq!(dtb.initrd(), Ok(Some(0x4800_0000..0x4900_0000)));
        let reservations: Vec<_> = dtb
            .fdt()
            .memory_reservations()
            .map(|r| (r.address(), r.size()))
            .collect();
        assert_eq!(reservations, [(0x4010_0000, 0x1_0000)]);
    }

    #[test]
    fn invalid_edits() {
        let mut buf = with_room(&DeviceTree::new().to_dtb(), 256);
        let before = buf.clone();
        let mut dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(
            dtb.set_bootargs("a\0b"),
            Err(FdtError::BootargsNul { offset: 1 })
        );
        assert_eq!(
            dtb.add_memreserve(0x1000, 0),
            Err(FdtError::EmptyMemreserve { base: 0x1000 })
        );
        assert_eq!(
            dtb.add_memreserve(u64::MAX, 2),
            Err(FdtError::MemreserveOverflow {
                base: u64::MAX,
                size: 2
            })
        );
        assert_eq!(
            dtb.set_initrd(2, 1),
            Err(FdtError::InitrdReversed { start: 2, end: 1 })
        );
        let huge = "x".repeat(1000);
        assert!(matches!(
            dtb.set_bootargs(&huge),
            Err(FdtError::DoesNotFit { .. })
        ));
        assert_eq!(buf, before);
    }

    #[test]
    fn initrd_reading() {
        let mut t = DeviceTree::new();
        let chosen = DeviceTreeNode::builder("chosen")
            .unwrap()
            .property(DeviceTreeProperty::new(INITRD_START, 0x4800_0000u32).unwrap())
            .build();
        t.root.add_child(chosen);
        let mut buf = t.to_dtb();
        assert_eq!(
            Dtb::new(&mut buf).unwrap().initrd(),
            Err(FdtError::InitrdIncomplete {
                present: INITRD_START,
                missing: INITRD_END
            })
        );
        let chosen = t.find_node_mut("/chosen").unwrap();
        chosen.add_property(DeviceTreeProperty::new(INITRD_END, 0x4900_0000u64).unwrap());
        let mut buf = t.to_dtb();
        assert_eq!(
            Dtb::new(&mut buf).unwrap().initrd(),
            Ok(Some(0x4800_0000..0x4900_0000))
        );
        let chosen = t.find_node_mut("/chosen").unwrap();
        chosen.add_property(DeviceTreeProperty::new(INITRD_END, vec![0u8; 3]).unwrap());
        let mut buf = t.to_dtb();
        assert!(matches!(
            Dtb::new(&mut buf).unwrap().initrd(),
            Err(FdtError::BadProperty { .. })
        ));
    }

    /// `levels` nodes, each the only child of the one before.
    fn chain(levels: usize) -> DeviceTreeNode {
        let mut node = DeviceTreeNode::new("n").unwrap();
        for _ in 1..levels {
            let mut parent = DeviceTreeNode::new("n").unwrap();
            parent.add_child(node);
            node = parent;
        }
        node
    }

    #[test]
    fn too_deep() {
        // The root counts as a level, as in Linux's unflattening.
        let mut t = DeviceTree::new();
        t.root.add_child(chain(MAX_DEPTH - 1));
        let mut buf = t.to_dtb();
        assert!(Dtb::new(&mut buf).is_ok());
        let mut t = DeviceTree::new();
        t.root.add_child(chain(MAX_DEPTH));
        let mut buf = t.to_dtb();
        assert_eq!(Dtb::new(&mut buf).unwrap_err(), FdtError::TooDeep);
    }

    #[test]
    fn memory_edit() {
        // The Raspberry Pi 4 DTB's shape: 2 address cells, 1 size cell, an empty memory@0
        // the firmware would fill in.
        let mut t = tree(2, 1, &[0, 0, 0]);
        t.root.add_child(
            DeviceTreeNode::builder("memory@80000000")
                .unwrap()
                .property(DeviceTreeProperty::new("device_type", "memory").unwrap())
                .property(DeviceTreeProperty::new("reg", vec![0u32, 0x8000_0000, 0x1000]).unwrap())
                .build(),
        );
        let mut buf = with_room(&t.to_dtb(), 256);
        let mut dtb = Dtb::new(&mut buf).unwrap();
        let ram = [0..0x3c00_0000, 0x4000_0000..0x8000_0000];
        dtb.apply(&Edits::new().memory(&ram)).unwrap();
        assert_eq!(dtb.memory().unwrap(), ram.to_vec());
        let reg = dtb
            .fdt()
            .find_node("/memory@0")
            .unwrap()
            .property("reg")
            .unwrap();
        assert_eq!(
            reg.value(),
            [0u32, 0, 0x3c00_0000, 0, 0x4000_0000, 0x4000_0000]
                .iter()
                .flat_map(|c| c.to_be_bytes())
                .collect::<Vec<_>>()
        );

        // No memory node: one is made.
        let mut buf = with_room(&DeviceTree::new().to_dtb(), 256);
        let mut dtb = Dtb::new(&mut buf).unwrap();
        dtb.apply(&Edits::new().memory(core::slice::from_ref(&(0x4000_0000..0x8000_0000))))
            .unwrap();
        assert_eq!(dtb.memory().unwrap(), vec![0x4000_0000..0x8000_0000]);
        assert!(dtb.fdt().find_node("/memory@40000000").is_some());

        // Values that do not fit, and empty ranges, change nothing.
        let mut buf = with_room(&tree(1, 1, &[0, 0x1000]).to_dtb(), 256);
        let before = buf.clone();
        let mut dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(
            dtb.apply(&Edits::new().memory(core::slice::from_ref(&(0x1_0000_0000..0x1_1000_0000)))),
            Err(FdtError::MemoryCells {
                value: 0x1_0000_0000
            })
        );
        assert_eq!(
            dtb.apply(&Edits::new().memory(core::slice::from_ref(&(5..5)))),
            Err(FdtError::EmptyMemoryRange { start: 5, end: 5 })
        );
        assert_eq!(
            dtb.apply(&Edits::new().memory(&[])),
            Err(FdtError::NoMemory)
        );
        assert_eq!(buf, before);
    }

    #[test]
    fn boot_cpuid_kept() {
        let mut buf = with_room(&DeviceTree::new().to_dtb(), 64);
        buf[BOOT_CPUID_OFFSET + 3] = 2;
        let mut dtb = Dtb::new(&mut buf).unwrap();
        dtb.set_bootargs("x").unwrap();
        assert_eq!(dtb.fdt().boot_cpuid_phys(), 2);
    }
}
