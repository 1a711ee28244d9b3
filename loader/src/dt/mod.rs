//! The device tree: a DTB checked once, what it says, and the edits made to it before it
//! is handed on to the payload.
//!
//! [`Dtb`] wraps a buffer that starts with a DTB and whose length is the room the blob may
//! grow into (QEMU `virt` leaves it in a 1 MiB area). It is checked completely when wrapped
//! (header, every token, name and property, the reservation block, nesting depth), so
//! every later read is of a valid blob and `dtoolkit`'s zero-copy [`Fdt`](dtoolkit::fdt::Fdt)
//! readers, reached through [`Dtb::fdt`], cannot panic on it.
//!
//! What the tree says, read by [`Dtb`]'s methods:
//! - [`Dtb::memory`]: RAM, the banks of the root's `memory` nodes, sorted and merged;
//! - [`Dtb::reserved`]: `/memreserve/` entries and `/reserved-memory` children;
//! - [`Dtb::bootargs`] and [`Dtb::initrd`]: the command line and initrd in `/chosen`;
//! - [`Dtb::console`]: the console UART (`/chosen/stdout-path` or the `serial0` alias; PL011
//!   or mini-UART), its address translated through every bus's `ranges` to a CPU address;
//! - [`Dtb::spin_table`]: each CPU's MPIDR and spin-table `cpu-release-addr`.
//!
//! These are also the facts a board without fixed knowledge (a Raspberry Pi 4, whose
//! firmware edits the DTB for the RAM fitted and the UART chosen in config.txt) must take
//! from the DTB it is given. Addresses and sizes are read as one or two cells (the
//! Devicetree Specification 2.3.5 defaults, `#address-cells` = 2 and `#size-cells` = 1,
//! apply when the properties are missing); buses with wider addresses, such as PCI's three
//! cells, are refused rather than misread.
//!
//! Edits are collected in [`Edits`] and made by [`Dtb::apply`] in one rewrite; the result
//! is checked as [`Dtb::new`] checks a blob and written back only if it fits, so a failed
//! edit leaves the buffer as it was. Edits of `/chosen` and the reservation block alone (the
//! command line, the initrd, `stdout-path`, `/memreserve/`: QEMU virt's at EL2) are made by
//! one pass that copies the blob's tokens and changes only those; any other goes through
//! `dtoolkit`'s [`DeviceTree`](dtoolkit::model::DeviceTree) model
//! ([`Dtb::apply_with_model`]), which reads the whole tree into hash maps first. Either way
//! the rewrite is packed (version 17), `NOP` tokens go and `boot_cpuid_phys` is kept; the
//! model also drops unused strings, the pass keeps the strings block and appends to it.
//!
//! Every problem, with the blob, its contents or an edit, is a [`DtError`].
//!
//! The files: `blob` (the checked buffer), `read` (RAM, reservations, `/chosen`, CPUs),
//! `console` (the console and bus address translation), `decode` (cells, `reg` and string
//! values, shared by readers and edits), `edit` ([`Edits`] and [`Dtb::apply`]), `error`.

mod blob;
mod console;
mod decode;
mod edit;
mod error;
mod read;

pub use blob::Dtb;
pub use console::{Console, ConsoleKind};
pub use edit::Edits;
pub use error::DtError;

/// The magic number at the start of a DTB (Devicetree Specification 5.2).
pub const FDT_MAGIC: u32 = 0xd00d_feed;

/// Size of the FDT header (version 17).
pub const FDT_HEADER_SIZE: usize = 40;

/// The largest DTB Linux accepts (booting.rst: "must not exceed 2 megabytes in size"); the
/// room for growth is capped at this.
pub const MAX_DTB_SIZE: usize = 2 << 20;

/// The deepest node nesting accepted. Linux's unflattening gives up beyond the same depth
/// (`FDT_MAX_DEPTH` in drivers/of/fdt.c); it also bounds the recursion of the rewrite.
pub const MAX_DEPTH: usize = 64;

/// `/chosen` properties for the initrd (Documentation/devicetree/bindings chosen.yaml, read
/// by drivers/of/fdt.c).
const INITRD_START: &str = "linux,initrd-start";
/// See [`INITRD_START`].
const INITRD_END: &str = "linux,initrd-end";

#[cfg(test)]
mod test_trees {
    //! Trees for the unit tests of the files here.

    use alloc::vec::Vec;

    use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

    /// A small tree with the given root cells and memory `reg`.
    pub fn tree(address_cells: u32, size_cells: u32, reg: &[u32]) -> DeviceTree {
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

    /// `dtb` followed by `room` zero bytes.
    pub fn with_room(dtb: &[u8], room: usize) -> Vec<u8> {
        let mut buf = dtb.to_vec();
        buf.resize(dtb.len() + room, 0);
        buf
    }
}
