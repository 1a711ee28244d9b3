//! [`Edits`]: the changes to make to a DTB, and [`Dtb::apply`], which makes them in one
//! rewrite or not at all.

use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;

use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::{Node, Property};

use super::blob::{
    be_u32, until_nul, BOOT_CPUID_OFFSET, FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_NOP, FDT_PROP,
    OFF_DT_STRINGS_OFFSET, OFF_DT_STRUCT_OFFSET, SIZE_DT_STRINGS_OFFSET, TOTALSIZE_OFFSET,
};
use super::decode::number_cells;
use super::{DtError, Dtb, FDT_HEADER_SIZE, FDT_MAGIC, INITRD_END, INITRD_START};

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
    /// must exist ([`DtError::NoNodeToEdit`]).
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

    /// Whether the edits touch only `/chosen` and the reservation block, which
    /// [`Dtb::apply`] makes with its token pass.
    fn chosen_and_memreserve_only(&self) -> bool {
        self.disable.is_empty()
            && self.memory.is_none()
            && self.u64_props.is_empty()
            && self.no_map.is_empty()
    }

    /// The `/chosen` properties to set, each name with its value, in the order the model
    /// adds them (so that new ones come out in the same order either way).
    fn chosen(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        let string = |s: &str| {
            let mut v = Vec::with_capacity(s.len() + 1);
            v.extend_from_slice(s.as_bytes());
            v.push(0);
            v
        };
        if let Some(b) = self.bootargs {
            out.push(("bootargs", string(b)));
        }
        if let Some(p) = self.stdout_path {
            out.push(("stdout-path", string(p)));
        }
        if let Some((start, end)) = self.initrd {
            out.push((INITRD_START, start.to_be_bytes().to_vec()));
            out.push((INITRD_END, end.to_be_bytes().to_vec()));
        }
        out
    }

    /// Checks the edits themselves, before the tree is touched.
    fn check(&self, size: usize, capacity: usize) -> Result<(), DtError> {
        if let Some(bootargs) = self.bootargs {
            if let Some(offset) = bootargs.bytes().position(|b| b == 0) {
                return Err(DtError::BootargsNul { offset });
            }
        }
        if let Some(path) = self.stdout_path {
            if let Some(offset) = path.bytes().position(|b| b == 0) {
                return Err(DtError::StdoutPathNul { offset });
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
            return Err(DtError::DoesNotFit {
                needed: size.saturating_add(strings),
                capacity,
            });
        }
        for &(base, size) in &self.memreserves {
            if size == 0 {
                return Err(DtError::EmptyMemreserve { base });
            }
            if base.checked_add(size).is_none() {
                return Err(DtError::MemreserveOverflow { base, size });
            }
        }
        if let Some((start, end)) = self.initrd {
            if start > end {
                return Err(DtError::InitrdReversed { start, end });
            }
        }
        if let Some(ranges) = self.memory {
            if ranges.is_empty() {
                return Err(DtError::NoMemory);
            }
            if let Some(r) = ranges.iter().find(|r| r.start >= r.end) {
                return Err(DtError::EmptyMemoryRange {
                    start: r.start,
                    end: r.end,
                });
            }
        }
        Ok(())
    }
}

impl Dtb<'_> {
    /// Makes all `edits` in one rewrite of the DTB into its buffer.
    ///
    /// Edits of `/chosen` and the reservation block alone ([`Edits::bootargs`],
    /// [`Edits::stdout_path`], [`Edits::initrd`], [`Edits::memreserve`]: what QEMU virt's
    /// flow makes at EL2) are made by one pass over the blob's tokens that copies them into
    /// the new blob, changing only `/chosen`'s properties and adding the reservations
    /// (`splice`); any other edit rebuilds the whole tree in `dtoolkit`'s model
    /// ([`Dtb::apply_with_model`]). Both give the same tree, packed; the pass keeps the
    /// strings block as it was (adding the names it lacks), the model writes a new one.
    /// Either way the result is checked as [`Dtb::new`] checks a DTB before it replaces
    /// the old one.
    ///
    /// # Errors
    /// An edit is invalid in itself, or the edited DTB would not fit in the room
    /// ([`DtError::DoesNotFit`]); then the buffer is left untouched.
    pub fn apply(&mut self, edits: &Edits<'_>) -> Result<(), DtError> {
        if !edits.chosen_and_memreserve_only() {
            return self.apply_with_model(edits);
        }
        edits.check(self.size(), self.capacity())?;
        let out = splice(self.as_bytes(), edits);
        self.replace(out)
    }

    /// Makes all `edits` in one rewrite through `dtoolkit`'s
    /// [`DeviceTree`](dtoolkit::model::DeviceTree) model: the tree is read whole, edited,
    /// and serialised again. What [`Dtb::apply`] does for the edits its token pass does not
    /// make; public so that tests and the `dt` fuzz target can compare the two.
    ///
    /// # Errors
    /// As [`Dtb::apply`].
    pub fn apply_with_model(&mut self, edits: &Edits<'_>) -> Result<(), DtError> {
        edits.check(self.size(), self.capacity())?;
        let fdt = self.fdt();
        let mut tree = DeviceTree::from_fdt(&fdt);
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
            let root = fdt.root();
            let address_cells = number_cells(&root, "", "#address-cells", 2)?;
            let size_cells = number_cells(&root, "", "#size-cells", 1)?;
            set_memory(&mut tree, ranges, address_cells, size_cells)?;
        }
        for &(path, name, value) in &edits.u64_props {
            let mut node = Some(&mut tree.root);
            for part in path.split('/').filter(|p| !p.is_empty()) {
                node = node.and_then(|n| n.child_mut(part));
            }
            let node = node.ok_or_else(|| DtError::NoNodeToEdit { path: path.into() })?;
            node.add_property(DeviceTreeProperty::new_unchecked(name, value));
        }
        if !edits.no_map.is_empty() {
            let root = fdt.root();
            let root_cells = (
                number_cells(&root, "", "#address-cells", 2)?,
                number_cells(&root, "", "#size-cells", 1)?,
            );
            let rm_cells = match fdt.find_node("/reserved-memory") {
                Some(rm) => (
                    number_cells(&rm, "/reserved-memory", "#address-cells", 2)?,
                    number_cells(&rm, "/reserved-memory", "#size-cells", 1)?,
                ),
                None => root_cells,
            };
            add_no_map(&mut tree, &edits.no_map, root_cells, rm_cells)?;
        }
        for &(base, size) in &edits.memreserves {
            tree.memory_reservations
                .push(MemoryReservation::new(base, size));
        }
        self.replace(tree.to_dtb())
    }
}

/// Offset of `off_mem_rsvmap` in the FDT header.
const OFF_MEM_RSVMAP_OFFSET: usize = 16;
/// Size of a `/memreserve/` entry (two big-endian `u64`s).
const RESERVATION_SIZE: usize = 16;

/// The token pass of [`Dtb::apply`] for edits of `/chosen` and the reservation block: `blob`
/// (checked by [`Dtb::new`]) written anew, packed, as dtoolkit's serialiser lays it out
/// (header, reservations, structure, strings; version 17): the reservations and then
/// `edits`' ones; every token but `NOP`s copied as it is, except that in the root's child
/// `chosen` a property the edits set gets its new value where it stands and the ones it
/// lacks follow its last property, as in the model; a missing `/chosen` is added as the
/// root's last child. The strings block is kept and names not in it yet appended.
fn splice(blob: &[u8], edits: &Edits<'_>) -> Vec<u8> {
    let word = |at: usize| be_u32(blob, at).unwrap_or(0) as usize;
    let (off_struct, off_strings, off_rsv) = (
        word(OFF_DT_STRUCT_OFFSET),
        word(OFF_DT_STRINGS_OFFSET),
        word(OFF_MEM_RSVMAP_OFFSET),
    );
    let old_strings = blob
        .get(off_strings..)
        .and_then(|s| s.get(..word(SIZE_DT_STRINGS_OFFSET)))
        .unwrap_or_default();
    let mut strings = old_strings.to_vec();
    let mut set: Vec<(u32, Vec<u8>, bool)> = edits
        .chosen()
        .into_iter()
        .map(|(name, value)| (name_offset(&mut strings, name), value, false))
        .collect();

    let mut out = Vec::with_capacity(blob.len().min(off_strings + old_strings.len()) + 1024);
    out.resize(FDT_HEADER_SIZE, 0);
    let mut at = off_rsv;
    while let Some(entry) = blob.get(at..at + RESERVATION_SIZE) {
        if entry.iter().all(|&b| b == 0) {
            break;
        }
        out.extend_from_slice(entry);
        at += RESERVATION_SIZE;
    }
    for &(base, size) in &edits.memreserves {
        out.extend_from_slice(&base.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
    }
    out.extend_from_slice(&[0; RESERVATION_SIZE]);

    let struct_start = out.len();
    let mut offset = off_struct;
    let mut depth = 0usize;
    // Directly inside the root's child `chosen`, whose new properties are still to come.
    let mut in_chosen = false;
    let mut found_chosen = false;
    while let Some(token) = be_u32(blob, offset) {
        match token {
            FDT_BEGIN_NODE => {
                let name = blob
                    .get(offset + 4..)
                    .and_then(until_nul)
                    .unwrap_or_default();
                if in_chosen {
                    // chosen's first child: its properties end here.
                    push_new(&mut out, &mut set);
                    in_chosen = false;
                }
                depth += 1;
                if depth == 2 && name == b"chosen" {
                    in_chosen = true;
                    found_chosen = true;
                }
                push_node(&mut out, name);
                offset = (offset + 4 + name.len() + 1).next_multiple_of(4);
            }
            FDT_END_NODE => {
                if in_chosen {
                    push_new(&mut out, &mut set);
                    in_chosen = false;
                }
                if depth == 1 && !found_chosen && !set.is_empty() {
                    push_node(&mut out, b"chosen");
                    push_new(&mut out, &mut set);
                    out.extend_from_slice(&FDT_END_NODE.to_be_bytes());
                }
                depth = depth.saturating_sub(1);
                out.extend_from_slice(&FDT_END_NODE.to_be_bytes());
                offset += 4;
            }
            FDT_PROP => {
                let len = word(offset + 4);
                let nameoff = be_u32(blob, offset + 8).unwrap_or(0);
                let value = blob.get(offset + 12..offset + 12 + len).unwrap_or_default();
                let new = if in_chosen && depth == 2 {
                    let name = old_strings.get(nameoff as usize..).and_then(until_nul);
                    set.iter_mut().find(|(n, _, done)| {
                        !*done
                            && name.is_some()
                            && strings.get(*n as usize..).and_then(until_nul) == name
                    })
                } else {
                    None
                };
                match new {
                    Some((_, v, done)) => {
                        *done = true;
                        push_prop(&mut out, nameoff, v);
                    }
                    None => push_prop(&mut out, nameoff, value),
                }
                offset = (offset + 12 + len).next_multiple_of(4);
            }
            FDT_NOP => offset += 4,
            // FDT_END, or anything Dtb::new would have refused.
            _ => break,
        }
    }
    out.extend_from_slice(&FDT_END.to_be_bytes());
    let struct_size = out.len() - struct_start;
    let strings_start = out.len();
    out.extend_from_slice(&strings);
    let header = [
        (0, FDT_MAGIC as usize),
        (TOTALSIZE_OFFSET, out.len()),
        (OFF_DT_STRUCT_OFFSET, struct_start),
        (OFF_DT_STRINGS_OFFSET, strings_start),
        (OFF_MEM_RSVMAP_OFFSET, FDT_HEADER_SIZE),
        (20, 17),
        (24, 16),
        (BOOT_CPUID_OFFSET, word(BOOT_CPUID_OFFSET)),
        (SIZE_DT_STRINGS_OFFSET, strings.len()),
        (36, struct_size),
    ];
    for (at, value) in header {
        // Each size is bounded by the input's and the edits' (checked by `Edits::check`
        // against the room, at most 2 MiB): far below u32::MAX.
        let value = u32::try_from(value).unwrap_or(u32::MAX);
        if let Some(dst) = out.get_mut(at..at + 4) {
            dst.copy_from_slice(&value.to_be_bytes());
        }
    }
    out
}

/// The offset of `name` in the strings block `strings`: where it is already (as a whole
/// string or the tail of one), or appended.
fn name_offset(strings: &mut Vec<u8>, name: &str) -> u32 {
    let n = name.len();
    let found = (0..strings.len().saturating_sub(n)).find(|&i| {
        strings.get(i..i + n) == Some(name.as_bytes()) && strings.get(i + n) == Some(&0)
    });
    let at = found.unwrap_or_else(|| {
        let at = strings.len();
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        at
    });
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// Appends `FDT_BEGIN_NODE` and the name, NUL-terminated and padded.
fn push_node(out: &mut Vec<u8>, name: &[u8]) {
    out.extend_from_slice(&FDT_BEGIN_NODE.to_be_bytes());
    out.extend_from_slice(name);
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Appends an `FDT_PROP` token with its value, padded.
fn push_prop(out: &mut Vec<u8>, nameoff: u32, value: &[u8]) {
    out.extend_from_slice(&FDT_PROP.to_be_bytes());
    out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&nameoff.to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Appends the `/chosen` properties not yet written, and marks them written.
fn push_new(out: &mut Vec<u8>, set: &mut [(u32, Vec<u8>, bool)]) {
    for (nameoff, value, done) in set.iter_mut().filter(|(_, _, done)| !*done) {
        push_prop(out, *nameoff, value);
        *done = true;
    }
}

/// Adds the `no-map` children of `/reserved-memory` ([`Edits::reserve_no_map`]), creating the
/// node with `root_cells` when it is missing; `rm_cells` are its cell sizes.
fn add_no_map(
    tree: &mut DeviceTree,
    entries: &[(&str, u64, u64)],
    root_cells: (usize, usize),
    rm_cells: (usize, usize),
) -> Result<(), DtError> {
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
        return Err(DtError::NoNodeToEdit {
            path: "/reserved-memory".into(),
        });
    };
    for &(name, base, size) in entries {
        let mut reg = Vec::new();
        for (value, cells) in [(base, rm_cells.0), (size, rm_cells.1)] {
            if cells == 1 && value > u64::from(u32::MAX) {
                return Err(DtError::MemoryCells { value });
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

/// The RAM edit of [`Edits::memory`] on the tree (`ranges` checked non-empty and each
/// non-empty).
fn set_memory(
    tree: &mut DeviceTree,
    ranges: &[Range<u64>],
    address_cells: usize,
    size_cells: usize,
) -> Result<(), DtError> {
    let mut reg = Vec::new();
    for r in ranges {
        for (value, cells) in [(r.start, address_cells), (r.end - r.start, size_cells)] {
            if cells == 1 && value > u64::from(u32::MAX) {
                return Err(DtError::MemoryCells { value });
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
            // A node found by its name may lack the device_type that makes it RAM to
            // Linux (early_init_dt_scan_memory) and to `Dtb::memory`: found by fuzzing.
            node.add_property(DeviceTreeProperty::new_unchecked("device_type", "memory"));
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

#[cfg(test)]
mod tests {
    use alloc::vec;

    use dtoolkit::model::DeviceTree;

    use super::super::test_trees::{tree, with_room};
    use super::*;

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
        assert_eq!(
            dtb.reserved().unwrap(),
            core::slice::from_ref(&(0x4010_0000..0x4011_0000))
        );
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
            dtb.apply(&Edits::new().bootargs("a\0b")),
            Err(DtError::BootargsNul { offset: 1 })
        );
        assert_eq!(
            dtb.apply(&Edits::new().memreserve(0x1000, 0)),
            Err(DtError::EmptyMemreserve { base: 0x1000 })
        );
        assert_eq!(
            dtb.apply(&Edits::new().memreserve(u64::MAX, 2)),
            Err(DtError::MemreserveOverflow {
                base: u64::MAX,
                size: 2
            })
        );
        assert_eq!(
            dtb.apply(&Edits::new().initrd(2, 1)),
            Err(DtError::InitrdReversed { start: 2, end: 1 })
        );
        let huge = "x".repeat(1000);
        assert!(matches!(
            dtb.apply(&Edits::new().bootargs(&huge)),
            Err(DtError::DoesNotFit { .. })
        ));
        assert_eq!(buf, before);
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
            Err(DtError::MemoryCells {
                value: 0x1_0000_0000
            })
        );
        assert_eq!(
            dtb.apply(&Edits::new().memory(core::slice::from_ref(&(5..5)))),
            Err(DtError::EmptyMemoryRange { start: 5, end: 5 })
        );
        assert_eq!(dtb.apply(&Edits::new().memory(&[])), Err(DtError::NoMemory));
        assert_eq!(buf, before);
    }

    #[test]
    fn memory_edit_makes_the_node_ram() {
        // Found by fuzzing (the `dt` target, Debian's Pi 4 DTB with its memory@0's
        // device_type changed to "memo\xecy"): the RAM went into a node named memory@0
        // that neither Linux nor `Dtb::memory` reads as RAM.
        let mut t = DeviceTree::new();
        t.root.add_child(
            DeviceTreeNode::builder("memory@0")
                .unwrap()
                .property(DeviceTreeProperty::new("device_type", &b"memo\xecy\0"[..]).unwrap())
                .property(DeviceTreeProperty::new("reg", vec![0u32, 0, 0]).unwrap())
                .build(),
        );
        let mut buf = with_room(&t.to_dtb(), 256);
        let mut dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(dtb.memory(), Err(DtError::NoMemory));
        let ram = [0x4000_0000..0x8000_0000, 0x1_0000_0000..0x1_4000_0000];
        dtb.apply(&Edits::new().memory(&ram)).unwrap();
        assert_eq!(dtb.memory().unwrap(), ram.to_vec());
    }
}
