//! A minimal read-only walk of a flattened device tree (Devicetree Specification v0.4,
//! chapter 5): just enough to list the CPUs under `/cpus` and read `/chosen` (`bootargs`,
//! `linux,initrd-start`, `linux,initrd-end`) and the `/memory` nodes' `reg`.
//!
//! The blob comes from the firmware under test, so nothing in it is trusted: every offset
//! and length is checked against the blob, and any inconsistency is an [`FdtError`]. Bytes
//! are read one at a time (the DTB sits in Device memory while the MMU is off, where only
//! aligned accesses are allowed; the compiler keeps byte loads for byte slices on a
//! strict-align target).

use core::fmt;

use crate::region::Region;

/// The first word of every device tree blob.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Size of the header fields the walk uses (up to and including `size_dt_struct`).
const HEADER_LEN: usize = 40;
/// booting.rst: the DTB "must not exceed 2 megabytes in size".
pub const MAX_SIZE: usize = 2 << 20;

/// Why a device tree could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// The first word is not 0xd00dfeed.
    BadMagic(u32),
    /// `totalsize` is larger than booting.rst allows.
    TooLarge(usize),
    /// A header offset, token, name or property runs past the end of its block.
    Truncated,
    /// An unknown token, or an END_NODE or property outside any node.
    BadToken {
        /// Offset of the token in the structure block.
        offset: usize,
        /// The token.
        token: u32,
    },
    /// A property the walk needs has an unusable value.
    BadProperty(&'static str),
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic(magic) => write!(f, "bad magic {magic:#x}, not a device tree"),
            Self::TooLarge(size) => write!(f, "totalsize {size:#x} is over 2 MiB"),
            Self::Truncated => f.write_str("an offset or length runs past the end of the blob"),
            Self::BadToken { offset, token } => {
                write!(
                    f,
                    "unexpected token {token:#x} at structure offset {offset:#x}"
                )
            }
            Self::BadProperty(name) => write!(f, "unusable {name} property"),
        }
    }
}

/// A device tree blob whose header has been checked.
pub struct Fdt<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
}

/// One step of the structure block walk.
enum Item<'a> {
    /// A node starts; `depth` is 0 for the root.
    Begin { depth: usize, name: &'a [u8] },
    /// A property of the node at `depth`.
    Prop {
        depth: usize,
        name: &'a [u8],
        value: &'a [u8],
    },
    /// The node at `depth` ends.
    End { depth: usize },
}

impl<'a> Fdt<'a> {
    /// Checks the header of `blob` and locates its structure and strings blocks.
    pub fn new(blob: &'a [u8]) -> Result<Self, FdtError> {
        let total = total_size(blob)?;
        if total > MAX_SIZE {
            return Err(FdtError::TooLarge(total));
        }
        let blob = blob.get(..total).ok_or(FdtError::Truncated)?;
        let structs = block(blob, be32_usize(blob, 8)?, be32_usize(blob, 36)?)?;
        let strings = block(blob, be32_usize(blob, 12)?, be32_usize(blob, 32)?)?;
        Ok(Self { structs, strings })
    }

    /// The header's `totalsize` of the blob at `addr`, after checking its magic.
    ///
    /// # Safety
    ///
    /// `addr` must be readable for 8 bytes.
    pub unsafe fn total_size_at(addr: usize) -> Result<usize, FdtError> {
        // SAFETY: the caller guarantees the first 8 bytes are readable.
        total_size(unsafe { core::slice::from_raw_parts(addr as *const u8, 8) })
    }

    /// Reads the device tree at `addr`.
    ///
    /// # Safety
    ///
    /// `addr` must be readable for the header's 40 bytes and then for `totalsize` bytes (the
    /// size the header gives, refused above 2 MiB), and that memory must not change while
    /// the returned value lives.
    pub unsafe fn from_addr(addr: usize) -> Result<Fdt<'static>, FdtError> {
        // SAFETY: the caller guarantees the header is readable and unchanging.
        let header = unsafe { core::slice::from_raw_parts(addr as *const u8, HEADER_LEN) };
        let total = total_size(header)?;
        if total > MAX_SIZE {
            return Err(FdtError::TooLarge(total));
        }
        // SAFETY: the caller guarantees `totalsize` bytes are readable and unchanging, and
        // `total` is that size, bounded above.
        Fdt::new(unsafe { core::slice::from_raw_parts(addr as *const u8, total) })
    }

    /// Walks the whole structure block once, so that a malformed tree is reported as such
    /// rather than by whichever lookup happens to reach the damage first.
    pub fn validate(&self) -> Result<(), FdtError> {
        self.walk(|_| Ok(()))
    }

    /// The value of `/chosen/bootargs` without its NUL terminator, if there is one.
    pub fn bootargs(&self) -> Result<Option<&'a [u8]>, FdtError> {
        let mut in_chosen = false;
        let mut bootargs = None;
        self.walk(|item| {
            match item {
                Item::Begin { depth: 1, name } => in_chosen = name == b"chosen",
                Item::End { depth: 1 } => in_chosen = false,
                Item::Prop {
                    depth: 1,
                    name: b"bootargs",
                    value,
                } if in_chosen => {
                    bootargs = Some(value.strip_suffix(b"\0").unwrap_or(value));
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(bootargs)
    }

    /// The initrd `[linux,initrd-start, linux,initrd-end)` from `/chosen`, each property one
    /// or two big-endian cells (Linux's bindings allow both); `None` when neither is there.
    pub fn initrd(&self) -> Result<Option<Region>, FdtError> {
        let mut in_chosen = false;
        let mut start = None;
        let mut end = None;
        self.walk(|item| {
            match item {
                Item::Begin { depth: 1, name } => in_chosen = name == b"chosen",
                Item::End { depth: 1 } => in_chosen = false,
                Item::Prop {
                    depth: 1,
                    name,
                    value,
                } if in_chosen => {
                    if name == b"linux,initrd-start" {
                        start = Some(
                            one_or_two_cells(value)
                                .ok_or(FdtError::BadProperty("/chosen/linux,initrd-start"))?,
                        );
                    } else if name == b"linux,initrd-end" {
                        end = Some(
                            one_or_two_cells(value)
                                .ok_or(FdtError::BadProperty("/chosen/linux,initrd-end"))?,
                        );
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        match (start, end) {
            (None, None) => Ok(None),
            (Some(start), Some(end)) if start <= end => Ok(Some(Region { start, end })),
            (Some(_), Some(_)) => Err(FdtError::BadProperty(
                "/chosen/linux,initrd-end (below linux,initrd-start)",
            )),
            (None, Some(_)) => Err(FdtError::BadProperty(
                "/chosen/linux,initrd-end (without linux,initrd-start)",
            )),
            (Some(_), None) => Err(FdtError::BadProperty(
                "/chosen/linux,initrd-start (without linux,initrd-end)",
            )),
        }
    }

    /// Puts the RAM ranges of every memory node (a child of the root named `memory` or
    /// `memory@*`, or with `device_type = "memory"`) in `out`, in tree order, and returns how
    /// many there are, which may be more than fit in `out`. Cells are counted with the
    /// root's `#address-cells` and `#size-cells` (Devicetree spec 2.3.5: defaults 2 and 1).
    pub fn memory(&self, out: &mut [Region]) -> Result<usize, FdtError> {
        let mut address_cells = 2;
        let mut size_cells = 1;
        let mut is_memory = false;
        let mut reg: &[u8] = &[];
        let mut count = 0;
        self.walk(|item| {
            match item {
                Item::Prop {
                    depth: 0,
                    name,
                    value,
                } => {
                    if name == b"#address-cells" {
                        address_cells = be32(value, 0)?;
                    } else if name == b"#size-cells" {
                        size_cells = be32(value, 0)?;
                    }
                }
                Item::Begin { depth: 1, name } => {
                    is_memory = name == b"memory" || name.starts_with(b"memory@");
                    reg = &[];
                }
                Item::Prop {
                    depth: 1,
                    name,
                    value,
                } => {
                    if name == b"reg" {
                        reg = value;
                    } else if name == b"device_type" && value == b"memory\0" {
                        is_memory = true;
                    }
                }
                Item::End { depth: 1 } if is_memory => {
                    count = reg_entries(reg, address_cells, size_cells, out, count)?;
                    is_memory = false;
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(count)
    }

    /// Puts the MPIDR (the `reg` value) of each `/cpus/cpu@*` node in `out`, in tree order,
    /// and returns how many there are, which may be more than fit in `out`.
    pub fn cpu_mpidrs(&self, out: &mut [u64]) -> Result<usize, FdtError> {
        let mut in_cpus = false;
        let mut in_cpu = false;
        // Devicetree spec 2.3.5: #address-cells defaults to 2.
        let mut address_cells = 2;
        let mut count = 0;
        self.walk(|item| {
            match item {
                Item::Begin { depth: 1, name } => in_cpus = name == b"cpus",
                Item::Begin { depth: 2, name } => in_cpu = in_cpus && name.starts_with(b"cpu@"),
                Item::Prop {
                    depth: 1,
                    name: b"#address-cells",
                    value,
                } if in_cpus => {
                    address_cells = be32(value, 0)?;
                    if !(1..=2).contains(&address_cells) {
                        return Err(FdtError::BadProperty("/cpus #address-cells"));
                    }
                }
                Item::Prop {
                    depth: 2,
                    name: b"reg",
                    value,
                } if in_cpu => {
                    let mpidr = if address_cells == 1 {
                        u64::from(be32(value, 0)?)
                    } else {
                        u64::from(be32(value, 0)?) << 32 | u64::from(be32(value, 4)?)
                    };
                    if let Some(slot) = out.get_mut(count) {
                        *slot = mpidr;
                    }
                    count += 1;
                }
                Item::End { depth: 1 } => in_cpus = false,
                Item::End { depth: 2 } => in_cpu = false,
                _ => {}
            }
            Ok(())
        })?;
        Ok(count)
    }
    /// Walks the structure block, handing each node start, property and node end to `visit`.
    fn walk(
        &self,
        mut visit: impl FnMut(Item<'a>) -> Result<(), FdtError>,
    ) -> Result<(), FdtError> {
        let s = self.structs;
        let mut pos = 0;
        // Nodes currently open; the root is depth 0, so a node's depth is `open` at its start.
        let mut open = 0usize;
        loop {
            let offset = pos;
            let token = be32(s, pos)?;
            pos += 4;
            match token {
                FDT_BEGIN_NODE => {
                    let name = cstr(s, pos)?;
                    pos = align4(pos + name.len() + 1);
                    visit(Item::Begin { depth: open, name })?;
                    open += 1;
                }
                FDT_END_NODE => {
                    open = open
                        .checked_sub(1)
                        .ok_or(FdtError::BadToken { offset, token })?;
                    visit(Item::End { depth: open })?;
                }
                FDT_PROP => {
                    let len = be32_usize(s, pos)?;
                    let name = cstr(self.strings, be32_usize(s, pos + 4)?)?;
                    pos += 8;
                    let end = pos.checked_add(len).ok_or(FdtError::Truncated)?;
                    let value = s.get(pos..end).ok_or(FdtError::Truncated)?;
                    pos = align4(end);
                    let depth = open
                        .checked_sub(1)
                        .ok_or(FdtError::BadToken { offset, token })?;
                    visit(Item::Prop { depth, name, value })?;
                }
                FDT_NOP => {}
                FDT_END => return Ok(()),
                _ => return Err(FdtError::BadToken { offset, token }),
            }
        }
    }
}

/// Whether the kernel command line `bootargs` has `option` as one of its space-separated
/// words.
pub fn has_option(bootargs: &[u8], option: &[u8]) -> bool {
    bootargs
        .split(|byte| byte.is_ascii_whitespace())
        .any(|word| word == option)
}
/// Checks the magic of a blob's header and returns its `totalsize`.
fn total_size(header: &[u8]) -> Result<usize, FdtError> {
    let magic = be32(header, 0)?;
    if magic != FDT_MAGIC {
        return Err(FdtError::BadMagic(magic));
    }
    be32_usize(header, 4)
}

/// Appends the (address, size) pairs of a `reg` value to `out` from index `count` on, and
/// returns the new count (entries past the end of `out` are counted, not stored).
fn reg_entries(
    reg: &[u8],
    address_cells: u32,
    size_cells: u32,
    out: &mut [Region],
    mut count: usize,
) -> Result<usize, FdtError> {
    const WHAT: &str = "memory reg (or the root's #address-cells/#size-cells)";
    if !(1..=2).contains(&address_cells) || !(1..=2).contains(&size_cells) {
        return Err(FdtError::BadProperty(WHAT));
    }
    let entry_len = 4 * (address_cells + size_cells) as usize;
    if reg.is_empty() || !reg.len().is_multiple_of(entry_len) {
        return Err(FdtError::BadProperty(WHAT));
    }
    for entry in reg.chunks_exact(entry_len) {
        let (base, size) = entry.split_at(4 * address_cells as usize);
        let base = cells(base).ok_or(FdtError::BadProperty(WHAT))?;
        let size = cells(size).ok_or(FdtError::BadProperty(WHAT))?;
        let end = base.checked_add(size).ok_or(FdtError::BadProperty(WHAT))?;
        if let Some(slot) = out.get_mut(count) {
            *slot = Region { start: base, end };
        }
        count += 1;
    }
    Ok(count)
}

/// A property value of exactly one or two big-endian cells, as a number.
fn one_or_two_cells(value: &[u8]) -> Option<u64> {
    matches!(value.len(), 4 | 8).then(|| cells(value))?
}

/// One or two big-endian cells (4 or 8 bytes) as a number.
fn cells(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => be32(bytes, 0).ok().map(u64::from),
        8 => {
            let high = u64::from(be32(bytes, 0).ok()?);
            let low = u64::from(be32(bytes, 4).ok()?);
            Some(high << 32 | low)
        }
        _ => None,
    }
}

fn block(blob: &[u8], offset: usize, size: usize) -> Result<&[u8], FdtError> {
    let end = offset.checked_add(size).ok_or(FdtError::Truncated)?;
    blob.get(offset..end).ok_or(FdtError::Truncated)
}

fn be32(bytes: &[u8], offset: usize) -> Result<u32, FdtError> {
    let end = offset.checked_add(4).ok_or(FdtError::Truncated)?;
    let word = bytes.get(offset..end).ok_or(FdtError::Truncated)?;
    Ok(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

fn be32_usize(bytes: &[u8], offset: usize) -> Result<usize, FdtError> {
    // usize is 64 bits on every target this crate builds for.
    be32(bytes, offset).map(|value| value as usize)
}

/// The NUL-terminated string at `offset`, without the NUL.
fn cstr(bytes: &[u8], offset: usize) -> Result<&[u8], FdtError> {
    let rest = bytes.get(offset..).ok_or(FdtError::Truncated)?;
    let len = rest
        .iter()
        .position(|&byte| byte == 0)
        .ok_or(FdtError::Truncated)?;
    Ok(&rest[..len])
}

fn align4(pos: usize) -> usize {
    (pos + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a blob the way dtc lays one out: header, structure block, strings block.
    #[derive(Default)]
    struct Builder {
        structs: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Builder {
        fn token(&mut self, token: u32) -> &mut Self {
            self.structs.extend_from_slice(&token.to_be_bytes());
            self
        }

        fn pad(&mut self) {
            while !self.structs.len().is_multiple_of(4) {
                self.structs.push(0);
            }
        }

        fn begin(&mut self, name: &str) -> &mut Self {
            self.token(FDT_BEGIN_NODE);
            self.structs.extend_from_slice(name.as_bytes());
            self.structs.push(0);
            self.pad();
            self
        }

        fn end(&mut self) -> &mut Self {
            self.token(FDT_END_NODE)
        }

        fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
            let nameoff = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            self.token(FDT_PROP);
            self.structs
                .extend_from_slice(&(value.len() as u32).to_be_bytes());
            self.structs.extend_from_slice(&nameoff.to_be_bytes());
            self.structs.extend_from_slice(value);
            self.pad();
            self
        }

        fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
            let value: Vec<u8> = cells.iter().flat_map(|cell| cell.to_be_bytes()).collect();
            self.prop(name, &value)
        }

        fn finish(&mut self) -> Vec<u8> {
            self.token(FDT_END);
            let off_struct = 0x40u32;
            let off_strings = off_struct + self.structs.len() as u32;
            let total = off_strings + self.strings.len() as u32;
            let header = [
                FDT_MAGIC,
                total,
                off_struct,
                off_strings,
                0x28, // off_mem_rsvmap (unused by the walk)
                17,   // version
                16,   // last_comp_version
                0,    // boot_cpuid_phys
                self.strings.len() as u32,
                self.structs.len() as u32,
            ];
            let mut blob: Vec<u8> = header.iter().flat_map(|word| word.to_be_bytes()).collect();
            blob.resize(off_struct as usize, 0);
            blob.extend_from_slice(&self.structs);
            blob.extend_from_slice(&self.strings);
            blob
        }
    }

    /// How `/chosen` carries the initrd in a test tree.
    enum InitrdCells {
        None,
        One(u32, u32),
        Two(u64, u64),
    }

    /// A tree shaped like QEMU virt's: root cells 2/2, /chosen, a memory node, a device.
    fn qemu_like(bootargs: Option<&str>, initrd: InitrdCells) -> Vec<u8> {
        let mut b = Builder::default();
        b.begin("")
            .cells("#size-cells", &[2])
            .cells("#address-cells", &[2]);
        b.begin("chosen");
        if let Some(args) = bootargs {
            b.prop("bootargs", format!("{args}\0").as_bytes());
        }
        match initrd {
            InitrdCells::None => {}
            InitrdCells::One(start, end) => {
                b.cells("linux,initrd-end", &[end])
                    .cells("linux,initrd-start", &[start]);
            }
            InitrdCells::Two(start, end) => {
                b.cells("linux,initrd-start", &[(start >> 32) as u32, start as u32])
                    .cells("linux,initrd-end", &[(end >> 32) as u32, end as u32]);
            }
        }
        b.end();
        b.begin("pl011@9000000")
            .cells("reg", &[0, 0x0900_0000, 0, 0x1000])
            .end();
        b.begin("memory@40000000")
            .prop("device_type", b"memory\0")
            .cells("reg", &[0, 0x4000_0000, 0, 0x2000_0000]);
        b.end().end();
        b.finish()
    }

    #[test]
    fn finds_bootargs() {
        let blob = qemu_like(
            Some("console=ttyAMA0 client.initrd_crc=0x1"),
            InitrdCells::None,
        );
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(fdt.validate(), Ok(()));
        assert_eq!(
            fdt.bootargs(),
            Ok(Some(&b"console=ttyAMA0 client.initrd_crc=0x1"[..]))
        );
        let none = qemu_like(None, InitrdCells::None);
        assert_eq!(Fdt::new(&none).unwrap().bootargs(), Ok(None));
    }

    #[test]
    fn reads_initrd_in_one_or_two_cells() {
        let blob = qemu_like(None, InitrdCells::One(0x4800_0000, 0x4810_0000));
        assert_eq!(
            Fdt::new(&blob).unwrap().initrd(),
            Ok(Some(Region {
                start: 0x4800_0000,
                end: 0x4810_0000
            }))
        );
        let blob = qemu_like(None, InitrdCells::Two(0x1_4800_0000, 0x1_4800_1003));
        assert_eq!(
            Fdt::new(&blob).unwrap().initrd(),
            Ok(Some(Region {
                start: 0x1_4800_0000,
                end: 0x1_4800_1003
            }))
        );
        let blob = qemu_like(None, InitrdCells::None);
        assert_eq!(Fdt::new(&blob).unwrap().initrd(), Ok(None));
    }

    #[test]
    fn rejects_bad_initrd_properties() {
        let blob = qemu_like(None, InitrdCells::One(0x4810_0000, 0x4800_0000));
        assert!(matches!(
            Fdt::new(&blob).unwrap().initrd(),
            Err(FdtError::BadProperty(_))
        ));
        let mut b = Builder::default();
        b.begin("").begin("chosen");
        b.prop("linux,initrd-start", &[0, 0, 0x10]).end().end();
        assert_eq!(
            Fdt::new(&b.finish()).unwrap().initrd(),
            Err(FdtError::BadProperty("/chosen/linux,initrd-start"))
        );
        let mut b = Builder::default();
        b.begin("").begin("chosen");
        b.cells("linux,initrd-start", &[0x10]).end().end();
        assert!(matches!(
            Fdt::new(&b.finish()).unwrap().initrd(),
            Err(FdtError::BadProperty(_))
        ));
    }

    #[test]
    fn lists_memory() {
        let blob = qemu_like(None, InitrdCells::None);
        let mut out = [Region::EMPTY; 4];
        assert_eq!(Fdt::new(&blob).unwrap().memory(&mut out), Ok(1));
        assert_eq!(
            out[0],
            Region {
                start: 0x4000_0000,
                end: 0x6000_0000
            }
        );

        // Default cells (2 and 1), two nodes, one found by device_type only, one with two
        // ranges; and more ranges than fit in the output.
        let mut b = Builder::default();
        b.begin("");
        b.begin("memory@0").cells("reg", &[0, 0x1000, 0x1000]).end();
        b.begin("ram")
            .cells("reg", &[1, 0, 0x2000, 0, 0x4000_0000, 0x3000])
            .prop("device_type", b"memory\0")
            .end();
        b.begin("memoryless").cells("reg", &[0, 0, 1]).end();
        let blob = b.end().finish();
        let mut out = [Region::EMPTY; 2];
        assert_eq!(Fdt::new(&blob).unwrap().memory(&mut out), Ok(3));
        assert_eq!(
            out,
            [
                Region {
                    start: 0x1000,
                    end: 0x2000
                },
                Region {
                    start: 0x1_0000_0000,
                    end: 0x1_0000_2000
                },
            ]
        );
    }

    #[test]
    fn rejects_bad_memory_reg() {
        let mut b = Builder::default();
        b.begin("").cells("#address-cells", &[3]);
        b.begin("memory@0").cells("reg", &[0, 0, 0, 1]).end();
        let blob = b.end().finish();
        assert!(matches!(
            Fdt::new(&blob).unwrap().memory(&mut [Region::EMPTY; 1]),
            Err(FdtError::BadProperty(_))
        ));
        let mut b = Builder::default();
        b.begin("");
        b.begin("memory@0").cells("reg", &[0, 0, 0, 1]).end();
        let blob = b.end().finish();
        assert!(matches!(
            Fdt::new(&blob).unwrap().memory(&mut [Region::EMPTY; 1]),
            Err(FdtError::BadProperty(_))
        ));
    }

    #[test]
    fn reads_from_an_address() {
        let blob = qemu_like(Some("a"), InitrdCells::None);
        // SAFETY: `blob` is a whole, unchanging device tree that outlives `fdt`.
        let total = unsafe { Fdt::total_size_at(blob.as_ptr() as usize) };
        assert_eq!(total, Ok(blob.len()));
        // SAFETY: as above.
        let fdt = unsafe { Fdt::from_addr(blob.as_ptr() as usize) }.unwrap();
        assert_eq!(fdt.bootargs(), Ok(Some(&b"a"[..])));
    }

    #[test]
    fn rejects_bad_blobs() {
        let mut blob = qemu_like(None, InitrdCells::None);
        assert_eq!(Fdt::new(&blob[..20]).err(), Some(FdtError::Truncated));
        assert_eq!(
            Fdt::new(&blob[..blob.len() - 1]).err(),
            Some(FdtError::Truncated)
        );
        blob[4..8].copy_from_slice(&(3u32 << 20).to_be_bytes());
        assert_eq!(Fdt::new(&blob).err(), Some(FdtError::TooLarge(3 << 20)));
        blob[0] = 0;
        assert_eq!(Fdt::new(&blob).err(), Some(FdtError::BadMagic(0x000d_feed)));

        // An END_NODE with no node open.
        let mut b = Builder::default();
        let blob = b.end().finish();
        assert_eq!(
            Fdt::new(&blob).unwrap().validate(),
            Err(FdtError::BadToken {
                offset: 0,
                token: FDT_END_NODE
            })
        );

        // A structure block with no FDT_END runs into its end.
        let mut blob = qemu_like(None, InitrdCells::None);
        let off_strings = u32::from_be_bytes(blob[12..16].try_into().unwrap()) as usize;
        blob[off_strings - 4..off_strings].copy_from_slice(&FDT_NOP.to_be_bytes());
        assert_eq!(
            Fdt::new(&blob).unwrap().validate(),
            Err(FdtError::Truncated)
        );

        // A property whose length runs past the structure block.
        let mut b = Builder::default();
        b.begin("").prop("x", b"abcd").end();
        let mut blob = b.finish();
        let len_at = 0x40 + 8 + 4;
        blob[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Fdt::new(&blob).unwrap().validate(),
            Err(FdtError::Truncated)
        );
    }

    /// Another tree shaped like QEMU virt's: /chosen, /cpus with cpu@N and a cpu-map.
    fn qemu_with_cpus(address_cells: u32, regs: &[u64], bootargs: Option<&str>) -> Vec<u8> {
        let mut b = Builder::default();
        b.begin("").cells("#address-cells", &[2]);
        b.begin("chosen");
        if let Some(args) = bootargs {
            b.prop("bootargs", format!("{args}\0").as_bytes());
        }
        b.end();
        b.begin("cpus")
            .cells("#size-cells", &[0])
            .cells("#address-cells", &[address_cells]);
        b.begin("cpu-map")
            .begin("socket0")
            .cells("reg", &[7])
            .end()
            .end();
        for (i, &reg) in regs.iter().enumerate() {
            b.begin(&format!("cpu@{i}"))
                .prop("device_type", b"cpu\0")
                .prop("compatible", b"arm,arm-v8\0");
            if address_cells == 1 {
                b.cells("reg", &[reg as u32]);
            } else {
                b.cells("reg", &[(reg >> 32) as u32, reg as u32]);
            }
            b.end();
        }
        b.end();
        b.begin("memory@40000000")
            .cells("reg", &[0, 0x4000_0000, 0, 0x2000_0000]);
        b.end().end();
        b.finish()
    }

    #[test]
    fn lists_cpus_with_one_address_cell() {
        let blob = qemu_with_cpus(1, &[0, 1, 2, 3], None);
        let fdt = Fdt::new(&blob).unwrap();
        let mut out = [0; 8];
        assert_eq!(fdt.cpu_mpidrs(&mut out), Ok(4));
        assert_eq!(out[..4], [0, 1, 2, 3]);
    }

    #[test]
    fn lists_cpus_with_two_address_cells() {
        let blob = qemu_with_cpus(2, &[0, 0x1_0000_0100], None);
        let fdt = Fdt::new(&blob).unwrap();
        let mut out = [0; 8];
        assert_eq!(fdt.cpu_mpidrs(&mut out), Ok(2));
        assert_eq!(out[..2], [0, 0x1_0000_0100]);
    }

    #[test]
    fn counts_cpus_beyond_the_output() {
        let blob = qemu_with_cpus(1, &[0, 1, 2], None);
        let mut out = [0; 2];
        assert_eq!(Fdt::new(&blob).unwrap().cpu_mpidrs(&mut out), Ok(3));
        assert_eq!(out, [0, 1]);
    }

    #[test]
    fn finds_bootargs_and_options() {
        let blob = qemu_with_cpus(1, &[0], Some("console=ttyAMA0 abi.fault=el2"));
        let args = Fdt::new(&blob).unwrap().bootargs().unwrap().unwrap();
        assert_eq!(args, b"console=ttyAMA0 abi.fault=el2");
        assert!(has_option(args, b"abi.fault=el2"));
        assert!(!has_option(
            b"xabi.fault=el2 abi.fault=el23",
            b"abi.fault=el2"
        ));
        let none = qemu_with_cpus(1, &[0], None);
        assert_eq!(Fdt::new(&none).unwrap().bootargs(), Ok(None));
    }

    #[test]
    fn reads_cpus_from_an_address() {
        let blob = qemu_with_cpus(1, &[0, 1], None);
        // SAFETY: `blob` is a whole, unchanging device tree that outlives `fdt`.
        let fdt = unsafe { Fdt::from_addr(blob.as_ptr() as usize) }.unwrap();
        assert_eq!(fdt.cpu_mpidrs(&mut [0; 4]), Ok(2));
    }

    #[test]
    fn rejects_bad_blobs_in_the_cpu_walk() {
        let mut blob = qemu_with_cpus(1, &[0], None);
        assert_eq!(Fdt::new(&blob[..20]).err(), Some(FdtError::Truncated));
        assert_eq!(
            Fdt::new(&blob[..blob.len() - 1]).err(),
            Some(FdtError::Truncated)
        );
        blob[0] = 0;
        assert_eq!(Fdt::new(&blob).err(), Some(FdtError::BadMagic(0x000d_feed)));

        // An END_NODE with no node open.
        let mut b = Builder::default();
        let blob = b.end().finish();
        assert_eq!(
            Fdt::new(&blob).unwrap().bootargs(),
            Err(FdtError::BadToken {
                offset: 0,
                token: FDT_END_NODE
            })
        );

        // A structure block with no FDT_END runs into its end.
        let mut blob = qemu_with_cpus(1, &[0], None);
        let off_strings = u32::from_be_bytes(blob[12..16].try_into().unwrap()) as usize;
        blob[off_strings - 4..off_strings].copy_from_slice(&FDT_NOP.to_be_bytes());
        assert_eq!(
            Fdt::new(&blob).unwrap().bootargs(),
            Err(FdtError::Truncated)
        );
    }
}
