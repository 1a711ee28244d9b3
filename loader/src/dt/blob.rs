//! [`Dtb`]: a DTB at the start of a buffer it may grow into, checked completely before
//! anything reads it, and checked again whenever an edit rewrites it.

use alloc::string::String;
use alloc::vec::Vec;

use dtoolkit::fdt::Fdt;

use super::{DtError, FDT_HEADER_SIZE, FDT_MAGIC, MAX_DEPTH, MAX_DTB_SIZE};

/// Offset of `totalsize` in the FDT header.
const TOTALSIZE_OFFSET: usize = 4;
/// Offset of `off_dt_struct` in the FDT header.
const OFF_DT_STRUCT_OFFSET: usize = 8;
/// Offset of `off_dt_strings` in the FDT header.
const OFF_DT_STRINGS_OFFSET: usize = 12;
/// Offset of `boot_cpuid_phys` in the FDT header.
const BOOT_CPUID_OFFSET: usize = 28;

/// Structure block tokens (Devicetree Specification 5.4.1).
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;

/// A checked DTB at the start of a buffer that it may grow into.
#[derive(Debug)]
pub struct Dtb<'a> {
    /// The buffer; its first `len` bytes are a DTB that passed [`Dtb::new`]'s checks (or
    /// was written by [`Dtb::apply`] and checked the same way).
    buf: &'a mut [u8],
    /// The DTB's `totalsize`.
    len: usize,
}

impl<'a> Dtb<'a> {
    /// Checks the DTB at the start of `buf`; the rest of `buf`, up to [`MAX_DTB_SIZE`] in
    /// all, is room for edits.
    ///
    /// The check is complete (header, `totalsize` within the buffer, every token, name and
    /// property of the structure block, the reservation block, nesting depth), so that
    /// later reads cannot fail on the blob's layout.
    ///
    /// # Errors
    /// The buffer is too small for a header, the magic number is wrong, `totalsize` exceeds
    /// the room, or the blob is malformed or nested deeper than [`MAX_DEPTH`].
    pub fn new(buf: &'a mut [u8]) -> Result<Self, DtError> {
        let capacity = buf.len().min(MAX_DTB_SIZE);
        let Some(header) = buf.first_chunk::<FDT_HEADER_SIZE>() else {
            return Err(DtError::TooSmall {
                capacity: buf.len(),
            });
        };
        let magic = header_u32(header, 0);
        let totalsize = header_u32(header, TOTALSIZE_OFFSET);
        if magic != FDT_MAGIC {
            return Err(DtError::BadMagic { found: magic });
        }
        let len = totalsize as usize;
        let Some(blob) = buf.get(..len).filter(|_| len <= capacity) else {
            return Err(DtError::TooLarge {
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

    /// The DTB's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// `dtoolkit`'s read-only view of the DTB, for what this type does not read itself
    /// (such as a node a board looks for by path).
    pub fn fdt(&self) -> Fdt<'_> {
        // The blob passed `check` in `new` or `replace`, so dtoolkit's readers, which panic
        // only on blobs that fail its validation, are safe to use.
        Fdt::new_unchecked(self.as_bytes())
    }

    /// The room the DTB may grow into: the buffer's length, capped at [`MAX_DTB_SIZE`].
    pub(super) fn capacity(&self) -> usize {
        self.buf.len().min(MAX_DTB_SIZE)
    }

    /// Makes `out`, a serialised tree, the DTB, with the original `boot_cpuid_phys`, if it
    /// fits and passes the same check as [`Dtb::new`]'s; otherwise the buffer is left as it
    /// was.
    pub(super) fn replace(&mut self, mut out: Vec<u8>) -> Result<(), DtError> {
        let capacity = self.capacity();
        if out.len() > capacity {
            return Err(DtError::DoesNotFit {
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
            return Err(DtError::DoesNotFit {
                needed: out.len(),
                capacity,
            });
        };
        dst.copy_from_slice(&out);
        self.len = out.len();
        Ok(())
    }
}

/// Validates a whole blob (`blob.len()` is its `totalsize`).
fn check(blob: &[u8]) -> Result<(), DtError> {
    Fdt::new(blob).map_err(DtError::Malformed)?;
    structure_limits(blob)
}

/// Names read from the blob, per open node: its children's, its properties'.
type Names<'b> = Vec<&'b [u8]>;

/// One walk over the tokens of a blob `Fdt::new` accepted, without recursion, for what
/// dtoolkit does not check: nodes nest at most [`MAX_DEPTH`] deep, and no node has two
/// children or two properties of the same name (the rewrite of [`Dtb::apply`], dtoolkit's
/// model of one node and one property per name, would silently keep only one; found by
/// fuzzing: a CPU node lost from the Pi 4's DTB, its `serial1` alias changed). A token it
/// cannot read ends the walk (it cannot happen after that validation).
///
/// One linear walk: walking each node's children through dtoolkit skips over every
/// subtree again, which cost about 3 guest ms per check of the Pi 4's 75 KB DTB, and the
/// boot checks it a few times.
fn structure_limits(blob: &[u8]) -> Result<(), DtError> {
    let (Some(mut offset), Some(strings)) = (
        be_u32(blob, OFF_DT_STRUCT_OFFSET).map(|o| o as usize),
        be_u32(blob, OFF_DT_STRINGS_OFFSET).map(|o| o as usize),
    ) else {
        return Ok(());
    };
    let nul_ended = |at: usize| -> Option<&[u8]> {
        let s = blob.get(at..)?;
        s.get(..s.iter().position(|&b| b == 0)?)
    };
    // The open nodes: name, children's names, properties' names; spare lists to reuse.
    let mut open: Vec<(&[u8], Names<'_>, Names<'_>)> = Vec::new();
    let mut spare: Vec<Names<'_>> = Vec::new();
    while let Some(token) = be_u32(blob, offset) {
        offset = match token {
            FDT_BEGIN_NODE => {
                if open.len() >= MAX_DEPTH {
                    return Err(DtError::TooDeep);
                }
                let Some(name) = nul_ended(offset + 4) else {
                    break;
                };
                if let Some((_, children, _)) = open.last_mut() {
                    children.push(name);
                }
                let children = spare.pop().unwrap_or_default();
                let props = spare.pop().unwrap_or_default();
                open.push((name, children, props));
                (offset + 4 + name.len() + 1).next_multiple_of(4)
            }
            FDT_END_NODE => {
                let Some((name, mut children, mut props)) = open.pop() else {
                    break;
                };
                let path = |last: &[u8]| {
                    let mut p = String::new();
                    for n in open.iter().map(|o| o.0).chain([name, last]).skip(1) {
                        p.push('/');
                        p.push_str(core::str::from_utf8(n).unwrap_or("?"));
                    }
                    p
                };
                if let Some(d) = duplicate(&mut children) {
                    return Err(DtError::DuplicateNode { path: path(d) });
                }
                if let Some(d) = duplicate(&mut props) {
                    return Err(DtError::DuplicateProperty { path: path(d) });
                }
                children.clear();
                props.clear();
                spare.push(children);
                spare.push(props);
                offset + 4
            }
            FDT_PROP => {
                let (Some(len), Some(nameoff)) =
                    (be_u32(blob, offset + 4), be_u32(blob, offset + 8))
                else {
                    break;
                };
                let Some(name) = nul_ended(strings + nameoff as usize) else {
                    break;
                };
                if let Some((_, _, props)) = open.last_mut() {
                    props.push(name);
                }
                (offset + 12 + len as usize).next_multiple_of(4)
            }
            FDT_NOP => offset + 4,
            // FDT_END, or anything validation would have refused.
            _ => break,
        };
    }
    Ok(())
}

/// A name that occurs twice in `names` (sorted here), if any.
fn duplicate<'b>(names: &mut [&'b [u8]]) -> Option<&'b [u8]> {
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// The big-endian `u32` at `at` in the header (`at` is a constant field offset, so the
/// slice is always in bounds).
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
    use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

    use super::super::test_trees::with_room;
    use super::super::Edits;
    use super::*;

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
        assert_eq!(Dtb::new(&mut buf).unwrap_err(), DtError::TooDeep);
    }

    #[test]
    fn duplicate_siblings_refused() {
        // Found by fuzzing (the `dt` target): Debian's Pi 4 DTB with cpu@1 renamed cpu@2
        // lost a CPU in the rewrite of any edit.
        let mut t = DeviceTree::new();
        let mut cpus = DeviceTreeNode::new("cpus").unwrap();
        cpus.add_child(DeviceTreeNode::new("cpu@2").unwrap());
        cpus.add_child(DeviceTreeNode::new("cpu@3").unwrap());
        t.root.add_child(cpus);
        let mut buf = t.to_dtb();
        assert!(Dtb::new(&mut buf.clone()).is_ok());
        let at = buf.windows(5).position(|w| w == b"cpu@3").unwrap();
        buf[at + 4] = b'2';
        assert_eq!(
            Dtb::new(&mut buf).unwrap_err(),
            DtError::DuplicateNode {
                path: "/cpus/cpu@2".into()
            }
        );

        // Found next: /aliases with serial0 renamed serial1 changed the console an edit
        // left alone.
        let mut t = DeviceTree::new();
        let mut aliases = DeviceTreeNode::new("aliases").unwrap();
        aliases.add_property(DeviceTreeProperty::new("serial0", "/a").unwrap());
        aliases.add_property(DeviceTreeProperty::new("serial1", "/b").unwrap());
        t.root.add_child(aliases);
        let mut buf = t.to_dtb();
        assert!(Dtb::new(&mut buf.clone()).is_ok());
        let at = buf.windows(7).position(|w| w == b"serial0").unwrap();
        buf[at + 6] = b'1';
        assert_eq!(
            Dtb::new(&mut buf).unwrap_err(),
            DtError::DuplicateProperty {
                path: "/aliases/serial1".into()
            }
        );
    }

    #[test]
    fn boot_cpuid_kept() {
        let mut buf = with_room(&DeviceTree::new().to_dtb(), 64);
        buf[BOOT_CPUID_OFFSET + 3] = 2;
        let mut dtb = Dtb::new(&mut buf).unwrap();
        dtb.apply(&Edits::new().bootargs("x")).unwrap();
        assert_eq!(dtb.fdt().boot_cpuid_phys(), 2);
    }
}
