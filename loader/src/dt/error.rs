//! [`DtError`]: everything that can be wrong with a DTB, with what it says, or with an edit
//! of it; one case, one message.

use alloc::string::String;

use dtoolkit::error::{FdtParseError, PropertyError};
use thiserror::Error;

use super::{FDT_HEADER_SIZE, FDT_MAGIC, MAX_DEPTH};

/// What is wrong with a DTB, what it lacks or gets wrong for one of the readers, or why an
/// edit cannot be made. Every case names the node or property and the values involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtError {
    // The blob itself (Dtb::new).
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
        /// Room in the buffer (capped at [`MAX_DTB_SIZE`](super::MAX_DTB_SIZE)).
        capacity: usize,
    },
    /// `dtoolkit` found the header or structure block inconsistent.
    #[error("malformed DTB: {0}")]
    Malformed(FdtParseError),
    /// Nodes nest deeper than [`MAX_DEPTH`].
    #[error("DTB nodes nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Two children of one node have the same name (Devicetree Specification 2.2.1 wants
    /// them unique); an edit would keep only one of them.
    #[error("DTB node {path} appears twice: sibling nodes must have different names")]
    DuplicateNode {
        /// The full path of the repeated name.
        path: String,
    },
    /// A node has two properties of the same name (Devicetree Specification 2.2.4 wants
    /// them unique); readers would see the first, an edit would keep only one of them.
    #[error("DTB property {path} appears twice in its node: property names must be unique")]
    DuplicateProperty {
        /// The node's path and the repeated property name.
        path: String,
    },

    // What the tree says.
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
    /// `#address-cells` or `#size-cells` has a value the reader cannot use: more than the
    /// two cells a `u64` holds, or 0 where a number is needed (the root's cells for RAM).
    #[error("DTB property {path} = {value} is not supported (expected {expected})")]
    Cells {
        /// Path of the property.
        path: String,
        /// Its value.
        value: u32,
        /// What is accepted there: "1 or 2", or "at most 2".
        expected: &'static str,
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
    /// A range, or an address translated through one, runs past the end of the 64-bit
    /// address space.
    #[error("DTB property {path}: {base:#x} + {size:#x} overflows 64 bits")]
    Overflow {
        /// Path of the property.
        path: String,
        /// Start of the range.
        base: u64,
        /// Its size, or the offset added.
        size: u64,
    },
    /// No memory node gives any RAM (or an edit gives none).
    #[error("DTB has no available node with device_type \"memory\" and a non-empty reg")]
    NoMemory,
    /// A node has no `reg`, or an empty one, where its address is needed.
    #[error("DTB node {node} has an empty reg")]
    EmptyReg {
        /// Path of the node.
        node: String,
    },
    /// A bus between a device and the root has no `ranges`: its children's addresses do
    /// not map to CPU addresses (Devicetree Specification 2.3.8).
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
    /// Only one of the two `/chosen` initrd properties is present.
    #[error("DTB node /chosen has {present} but not {missing}")]
    InitrdIncomplete {
        /// The property present.
        present: &'static str,
        /// The property missing.
        missing: &'static str,
    },
    /// An initrd, read or to be written, that ends before it starts.
    #[error("initrd start {start:#x} is after its end {end:#x}")]
    InitrdReversed {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },

    // Edits (Dtb::apply).
    /// A node an edit names does not exist.
    #[error("DTB has no node {path} to edit")]
    NoNodeToEdit {
        /// The path given.
        path: String,
    },
    /// The edited DTB is larger than its area.
    #[error("edited DTB of {needed} bytes does not fit in the DTB area of {capacity} bytes")]
    DoesNotFit {
        /// Size of the edited blob (at least).
        needed: usize,
        /// Room in the buffer (capped at [`MAX_DTB_SIZE`](super::MAX_DTB_SIZE)).
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
    /// A RAM range for [`Edits::memory`](super::Edits::memory) that is empty or ends before
    /// it starts.
    #[error("memory range {start:#x}..{end:#x} is empty")]
    EmptyMemoryRange {
        /// Start given.
        start: u64,
        /// End given.
        end: u64,
    },
    /// A RAM or reservation address or size for an edit does not fit the node's one cell.
    #[error("memory address or size {value:#x} does not fit in the root's 32-bit cells")]
    MemoryCells {
        /// The value.
        value: u64,
    },
}
