//! QEMU's fw_cfg: how the QEMU virt firmware gets the user's `-kernel`, `-initrd` and
//! `-append` (QEMU docs/specs/fw_cfg.rst). With `-bios`, QEMU loads none of them into RAM; it
//! offers them as fw_cfg items, read here through the DMA interface.
//!
//! Two layers: [`FwCfg`] knows the items and checks what they hold (host-tested against a
//! fake [`Device`]); [`DmaDevice`] drives the registers and the cache maintenance that DMA
//! needs (host-tested with a recording fake of both).

use alloc::string::String;
use alloc::vec;
use core::ops::Range;

use thiserror::Error;

use crate::el1::cache::Cache;

/// fw_cfg item keys (fw_cfg.rst, "Selector Register"; QEMU include/standard-headers/linux/qemu_fw_cfg.h).
pub mod key {
    /// "QEMU".
    pub const SIGNATURE: u16 = 0x00;
    /// Feature bits, little-endian u32: bit 1 = DMA interface.
    pub const ID: u16 = 0x01;
    /// Size of the `-kernel` file, little-endian u32.
    pub const KERNEL_SIZE: u16 = 0x08;
    /// Size of the `-initrd` file, little-endian u32.
    pub const INITRD_SIZE: u16 = 0x0b;
    /// The `-kernel` file.
    pub const KERNEL_DATA: u16 = 0x11;
    /// The `-initrd` file.
    pub const INITRD_DATA: u16 = 0x12;
    /// Size of the `-append` string including its NUL, little-endian u32.
    pub const CMDLINE_SIZE: u16 = 0x14;
    /// The `-append` string, NUL-terminated.
    pub const CMDLINE_DATA: u16 = 0x15;
}

/// What went wrong with fw_cfg.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FwCfgError {
    /// The device is not there or not QEMU's.
    #[error("fw_cfg: no QEMU fw_cfg device (signature {0:#x}); is this QEMU virt?")]
    NoDevice(u64),
    /// The DMA interface is missing.
    #[error("fw_cfg: the device has no DMA interface (ID {0:#x}); QEMU 2.9 or newer has it")]
    NoDma(u32),
    /// The device reported an error for a transfer.
    #[error("fw_cfg: DMA transfer of item {key:#x} failed (control word {control:#x})")]
    Dma {
        /// The item.
        key: u16,
        /// The control word the device left.
        control: u32,
    },
    /// An item holds less than it says.
    #[error("fw_cfg: {item} is truncated: {detail}")]
    Truncated {
        /// Which item.
        item: &'static str,
        /// What was found.
        detail: String,
    },
    /// The device never finished a transfer.
    #[error("fw_cfg: DMA transfer of item {key:#x} did not complete")]
    Timeout {
        /// The item.
        key: u16,
    },
    /// The command line is not text.
    #[error("fw_cfg: the command line is not UTF-8 text")]
    NotText,
    /// `-kernel` names an empty file.
    #[error("fw_cfg: -kernel is an empty file (0 bytes)")]
    EmptyKernel,
    /// The command line is larger than the firmware accepts.
    #[error("fw_cfg: command line too long: {size} bytes, the firmware accepts at most {limit}")]
    CommandLineTooLong {
        /// Its size.
        size: u32,
        /// The limit.
        limit: u32,
    },
}

/// Where a transfer puts its bytes.
pub enum Dest<'a> {
    /// A buffer of the firmware's own (mapped, cacheable).
    Buf(&'a mut [u8]),
    /// Physical memory, identity-mapped and cacheable like the rest of RAM.
    Phys(Range<u64>),
    /// Physical memory as [`Dest::Phys`] that the CPU has not written since its caches went
    /// on, so that none of its lines can be dirty: the clean and invalidate before the
    /// transfer is left out (nothing could land over the DMA's data), the invalidate after
    /// it is not (lines fetched before or meanwhile would hide it). `cargo xtask cachecheck`
    /// checks the premise on every boot it runs: a DMA over a dirty line is a violation.
    Unwritten(Range<u64>),
}

/// A fw_cfg device as [`FwCfg`] sees it.
pub trait Device {
    /// The DMA register's signature ("QEMU CFG" when the DMA interface exists).
    fn dma_signature(&mut self) -> u64;
    /// Selects item `key` and reads its first bytes into `dest` (zeros past the item's end,
    /// as QEMU does).
    ///
    /// # Safety
    /// A [`Dest::Phys`] range must be RAM, mapped as data (VA = PA), that nothing else uses
    /// while the device writes it and that holds nothing the firmware still needs; a
    /// [`Dest::Unwritten`] range as well, and the CPU must not have written it since its
    /// caches went on.
    ///
    /// # Errors
    /// [`FwCfgError::Dma`] when the device reports an error.
    unsafe fn read(&mut self, key: u16, dest: Dest<'_>) -> Result<(), FwCfgError>;
    /// Reads the next bytes of the item the last [`Device::read`] selected.
    ///
    /// # Safety
    /// As for [`Device::read`].
    ///
    /// # Errors
    /// [`FwCfgError::Dma`] when the device reports an error.
    unsafe fn read_next(&mut self, dest: Dest<'_>) -> Result<(), FwCfgError>;
}

/// "QEMU CFG", the DMA register's signature (fw_cfg.rst "DMA interface").
pub const DMA_SIGNATURE: u64 = 0x5145_4d55_2043_4647;
/// The ID bit for the DMA interface.
const ID_DMA: u32 = 1 << 1;
/// Bytes at the start of a payload that the firmware inspects before loading it.
pub const HEADER_LEN: usize = 64;
/// Largest command line accepted from fw_cfg (the DTB area has 1 MiB; Linux takes 2 KiB).
pub const CMDLINE_LIMIT: u32 = 64 * 1024;

/// The items the firmware reads, over a [`Device`].
pub struct FwCfg<D: Device> {
    dev: D,
}

impl<D: Device> FwCfg<D> {
    /// Checks that `dev` is QEMU's fw_cfg with the DMA interface.
    ///
    /// # Errors
    /// [`FwCfgError::NoDevice`] or [`FwCfgError::NoDma`].
    pub fn probe(mut dev: D) -> Result<Self, FwCfgError> {
        let sig = dev.dma_signature();
        if sig != DMA_SIGNATURE {
            return Err(FwCfgError::NoDevice(sig));
        }
        let mut fw = Self { dev };
        let mut s = [0u8; 4];
        // SAFETY: a buffer of our own.
        unsafe { fw.dev.read(key::SIGNATURE, Dest::Buf(&mut s)) }?;
        if &s != b"QEMU" {
            return Err(FwCfgError::NoDevice(u64::from(u32::from_be_bytes(s))));
        }
        let id = fw.read_u32(key::ID)?;
        if id & ID_DMA == 0 {
            return Err(FwCfgError::NoDma(id));
        }
        Ok(fw)
    }

    fn read_u32(&mut self, key: u16) -> Result<u32, FwCfgError> {
        let mut b = [0u8; 4];
        // SAFETY: a buffer of our own.
        unsafe { self.dev.read(key, Dest::Buf(&mut b)) }?;
        Ok(u32::from_le_bytes(b))
    }

    /// The `-kernel` file's size; `None` when QEMU was given no `-kernel`.
    ///
    /// An absent item reads as zeros, like an empty file's size item, so the size alone
    /// cannot tell them apart. The command line can: QEMU (hw/arm/boot.c) adds the kernel,
    /// initrd and command-line items only when `-kernel` is given, and then always adds
    /// the command line's size including its NUL (at least 1: the machine's command line
    /// is "" without `-append`). A kernel size of 0 with a command line size of 0 is no
    /// `-kernel`; with a command line size of 1 or more it is an empty file.
    ///
    /// # Errors
    /// A failed transfer, or [`FwCfgError::EmptyKernel`] for an empty `-kernel` file.
    pub fn kernel_size(&mut self) -> Result<Option<u32>, FwCfgError> {
        match self.read_u32(key::KERNEL_SIZE)? {
            0 if self.read_u32(key::CMDLINE_SIZE)? == 0 => Ok(None),
            0 => Err(FwCfgError::EmptyKernel),
            n => Ok(Some(n)),
        }
    }

    /// The `-initrd` file's size; 0 when there is none, and 0 for an empty file too: QEMU
    /// adds the size item and an empty data item for it, and both read as an absent item
    /// does (zeros), with no other item telling them apart (hw/arm/boot.c,
    /// hw/nvram/fw_cfg.c).
    ///
    /// # Errors
    /// A failed transfer.
    pub fn initrd_size(&mut self) -> Result<u32, FwCfgError> {
        self.read_u32(key::INITRD_SIZE)
    }

    /// The first [`HEADER_LEN`] bytes of the `-kernel` file (zeros past its end).
    ///
    /// # Errors
    /// A failed transfer.
    pub fn kernel_header(&mut self) -> Result<[u8; HEADER_LEN], FwCfgError> {
        let mut h = [0u8; HEADER_LEN];
        // SAFETY: a buffer of our own.
        unsafe { self.dev.read(key::KERNEL_DATA, Dest::Buf(&mut h)) }?;
        Ok(h)
    }

    /// Reads the whole `-kernel` file to physical memory `dest` (its length is the size).
    ///
    /// # Safety
    /// `dest` must be RAM, mapped as data (VA = PA), that nothing else uses while the device
    /// writes it and that holds nothing the firmware still needs.
    ///
    /// # Errors
    /// A failed transfer.
    pub unsafe fn load_kernel(&mut self, dest: Range<u64>) -> Result<(), FwCfgError> {
        // SAFETY: per the caller's contract.
        unsafe { self.dev.read(key::KERNEL_DATA, Dest::Phys(dest)) }
    }

    /// Reads the `-kernel` file into `runs` in order (the runs' total may exceed the file:
    /// the rest is zero-filled), as [`Dest::Unwritten`]: no clean before the transfer.
    ///
    /// # Safety
    /// `runs` must be RAM, mapped as data (VA = PA), that nothing else uses while the device
    /// writes it, that holds nothing the firmware still needs and that the CPU has not
    /// written since its caches went on.
    ///
    /// # Errors
    /// A failed transfer.
    pub unsafe fn load_kernel_runs(&mut self, runs: &[Range<u64>]) -> Result<(), FwCfgError> {
        // SAFETY: per the caller's contract.
        unsafe { self.load_runs(key::KERNEL_DATA, runs) }
    }

    /// Reads the `-initrd` file into `runs` in order, as [`Dest::Unwritten`].
    ///
    /// # Safety
    /// As for [`Self::load_kernel_runs`].
    ///
    /// # Errors
    /// A failed transfer.
    pub unsafe fn load_initrd_runs(&mut self, runs: &[Range<u64>]) -> Result<(), FwCfgError> {
        // SAFETY: per the caller's contract.
        unsafe { self.load_runs(key::INITRD_DATA, runs) }
    }

    /// # Safety
    /// As for [`Self::load_kernel_runs`].
    unsafe fn load_runs(&mut self, key: u16, runs: &[Range<u64>]) -> Result<(), FwCfgError> {
        for (i, r) in runs.iter().enumerate() {
            // SAFETY: each run is free RAM, per the caller's contract.
            unsafe {
                if i == 0 {
                    self.dev.read(key, Dest::Unwritten(r.clone()))?;
                } else {
                    self.dev.read_next(Dest::Unwritten(r.clone()))?;
                }
            }
        }
        Ok(())
    }

    /// Reads the whole `-initrd` file to physical memory `dest`.
    ///
    /// # Safety
    /// `dest` must be RAM, mapped as data (VA = PA), that nothing else uses while the device
    /// writes it and that holds nothing the firmware still needs.
    ///
    /// # Errors
    /// A failed transfer.
    pub unsafe fn load_initrd(&mut self, dest: Range<u64>) -> Result<(), FwCfgError> {
        // SAFETY: per the caller's contract.
        unsafe { self.dev.read(key::INITRD_DATA, Dest::Phys(dest)) }
    }

    /// The `-append` string ("" when there is none).
    ///
    /// # Errors
    /// Too long, truncated (the item is shorter than its size says, so QEMU's zero fill
    /// shows up as a NUL before the end, or the final NUL is missing), or not text.
    pub fn cmdline(&mut self) -> Result<String, FwCfgError> {
        let size = self.read_u32(key::CMDLINE_SIZE)?;
        if size == 0 {
            return Ok(String::new());
        }
        if size > CMDLINE_LIMIT {
            return Err(FwCfgError::CommandLineTooLong {
                size,
                limit: CMDLINE_LIMIT,
            });
        }
        let mut buf = vec![0u8; size as usize];
        // SAFETY: a buffer of our own.
        unsafe { self.dev.read(key::CMDLINE_DATA, Dest::Buf(&mut buf)) }?;
        let nul = buf.iter().position(|&b| b == 0);
        match nul {
            Some(n) if n + 1 == buf.len() => {}
            Some(n) => {
                return Err(FwCfgError::Truncated {
                    item: "the command line",
                    detail: alloc::format!("its size says {size} bytes but it ends after {n}"),
                })
            }
            None => {
                return Err(FwCfgError::Truncated {
                    item: "the command line",
                    detail: alloc::format!("no terminating NUL in its {size} bytes"),
                })
            }
        }
        buf.pop();
        String::from_utf8(buf).map_err(|_| FwCfgError::NotText)
    }
}

/// fw_cfg's DMA access descriptor, big-endian in memory (fw_cfg.rst "FWCfgDmaAccess").
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct DmaAccess {
    control: u32,
    length: u32,
    address: u64,
}

/// Control bits of [`DmaAccess`].
const CTL_ERROR: u32 = 1 << 0;
const CTL_READ: u32 = 1 << 1;
const CTL_SELECT: u32 = 1 << 3;

/// Polls of a transfer's control word before giving up (QEMU completes a transfer before
/// the register write returns; this only bounds a broken device).
const MAX_POLLS: u64 = 1 << 26;

/// The largest writeback granule the architecture allows (CTR_EL0.CWG: up to 2 KiB, Arm ARM
/// D19.2 CTR_EL0): a bounce buffer aligned and sized to it shares no line with anything.
const GRANULE: usize = 2048;

/// A heap buffer aligned and padded to [`GRANULE`].
struct Bounce {
    ptr: core::ptr::NonNull<u8>,
    layout: core::alloc::Layout,
}

impl Bounce {
    fn new(len: usize) -> Self {
        let size = len.max(1).next_multiple_of(GRANULE);
        // A granule multiple with a power-of-two alignment is always a valid layout.
        let layout = core::alloc::Layout::from_size_align(size, GRANULE)
            .unwrap_or(core::alloc::Layout::new::<u8>());
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let ptr =
            core::ptr::NonNull::new(p).unwrap_or_else(|| alloc::alloc::handle_alloc_error(layout));
        Self { ptr, layout }
    }

    fn range(&self) -> Range<u64> {
        let a = self.ptr.as_ptr() as u64;
        a..a + self.layout.size() as u64
    }

    fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: the allocation is `layout.size() >= len` initialised (zeroed, then written
        // by the device) bytes, owned by `self`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), len) }
    }
}

impl Drop for Bounce {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { alloc::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// The registers [`DmaDevice`] drives.
pub trait Registers {
    /// Reads the 64-bit DMA address register (its signature).
    fn read_dma(&mut self) -> u64;
    /// Writes the descriptor's physical address to the DMA register, which starts the
    /// transfer.
    ///
    /// # Safety
    /// `descriptor` must be the address of a live [`DmaAccess`], cleaned to PoC, whose
    /// destination is memory the device may write (the caller's buffer or free RAM).
    unsafe fn start(&mut self, descriptor: u64);
    /// Reads the descriptor's control word as the device left it.
    fn control(&mut self, descriptor: &DmaAccess) -> u32;
}

/// The fw_cfg DMA interface with the cache maintenance it needs.
pub struct DmaDevice<R: Registers, C: Cache> {
    regs: R,
    cache: C,
    selected: u16,
}

impl<R: Registers, C: Cache> DmaDevice<R, C> {
    /// A device over `regs`, keeping caches coherent with `cache`.
    pub fn new(regs: R, cache: C) -> Self {
        Self {
            regs,
            cache,
            selected: 0,
        }
    }

    /// The registers, for tests.
    pub fn parts(&self) -> (&R, &C) {
        (&self.regs, &self.cache)
    }

    /// One transfer of at most 4 GiB - 1. The device reads the descriptor and writes the
    /// destination in memory, behind the caches: the descriptor is cleaned to PoC before the
    /// start, the destination buffer cleaned and invalidated before when it may hold dirty
    /// lines (`dirty`: no dirty line may later land over the DMA's data; a
    /// [`Dest::Unwritten`] has none) and invalidated after (no line fetched meanwhile may hide
    /// it).
    fn transfer(
        &mut self,
        key: u16,
        select: bool,
        addr: u64,
        len: u32,
        dirty: bool,
    ) -> Result<(), FwCfgError> {
        let control = CTL_READ
            | if select {
                CTL_SELECT | (u32::from(key) << 16)
            } else {
                0
            };
        let desc = DmaAccess {
            control: control.to_be(),
            length: len.to_be(),
            address: addr.to_be(),
        };
        let desc_addr = core::ptr::addr_of!(desc) as u64;
        // 16 bytes of fields; the 64-byte alignment keeps them in one cache line.
        let desc_range = desc_addr..desc_addr + 16;
        let dest = addr..addr + u64::from(len);
        // The test-only mutants (for cargo xtask cachecheck) leave one of these out.
        if dirty && !cfg!(feature = "test-skip-fw-cfg-dest-clean") {
            self.cache.clean_invalidate(dest.clone());
        }
        if !cfg!(feature = "test-skip-fw-cfg-desc-clean") {
            self.cache.clean(desc_range);
        }
        // SAFETY: `desc` lives until the transfer is over (polled below) and is cleaned;
        // its destination is the caller's, vouched for by `Device::read`'s contract.
        unsafe { self.regs.start(desc_addr) };
        let mut polls = 0u64;
        let done = loop {
            let c = u32::from_be(self.regs.control(&desc));
            if c & !CTL_ERROR == 0 {
                break c;
            }
            polls += 1;
            if polls >= MAX_POLLS {
                return Err(FwCfgError::Timeout { key });
            }
            core::hint::spin_loop();
        };
        self.cache.invalidate(dest);
        if done & CTL_ERROR != 0 {
            return Err(FwCfgError::Dma { key, control: done });
        }
        Ok(())
    }
}

impl<R: Registers, C: Cache> Device for DmaDevice<R, C> {
    fn dma_signature(&mut self) -> u64 {
        self.regs.read_dma()
    }

    unsafe fn read(&mut self, key: u16, dest: Dest<'_>) -> Result<(), FwCfgError> {
        self.read_range(key, true, dest)
    }

    unsafe fn read_next(&mut self, dest: Dest<'_>) -> Result<(), FwCfgError> {
        self.read_range(self.selected, false, dest)
    }
}

impl<R: Registers, C: Cache> DmaDevice<R, C> {
    fn read_range(&mut self, key: u16, select: bool, dest: Dest<'_>) -> Result<(), FwCfgError> {
        self.selected = key;
        match dest {
            Dest::Buf(b) => {
                // The DMA goes to a bounce buffer that owns every writeback granule it
                // touches: invalidating the caller's buffer itself could discard live data
                // sharing its first or last line (the stack, the heap).
                let bounce = Bounce::new(b.len());
                let r = bounce.range();
                self.read_phys(key, select, r.start..r.start + b.len() as u64, true)?;
                b.copy_from_slice(bounce.bytes(b.len()));
                Ok(())
            }
            Dest::Phys(r) => self.read_phys(key, select, r, true),
            Dest::Unwritten(r) => self.read_phys(key, select, r, false),
        }
    }

    /// `dirty`: lines of `range` may be dirty (cleaned and invalidated before each transfer).
    fn read_phys(
        &mut self,
        key: u16,
        select: bool,
        range: Range<u64>,
        dirty: bool,
    ) -> Result<(), FwCfgError> {
        // Large items go in chunks; only the first selects the item, the rest continue from
        // where the previous one stopped (fw_cfg.rst: the offset advances with each read).
        const CHUNK: u64 = 1 << 30;
        let mut at = range.start;
        let mut first = select;
        loop {
            let len = (range.end - at).min(CHUNK);
            self.transfer(key, first, at, len as u32, dirty)?;
            at += len;
            first = false;
            if at >= range.end {
                break;
            }
        }
        Ok(())
    }
}

/// The registers of the fw_cfg MMIO device at `base` (QEMU virt: 0x0902_0000). The DMA
/// register is big-endian (fw_cfg.rst).
#[cfg(target_arch = "aarch64")]
pub struct Mmio {
    base: usize,
}

#[cfg(target_arch = "aarch64")]
impl Mmio {
    /// The device at `base`.
    ///
    /// # Safety
    /// `base` must be a fw_cfg MMIO device, mapped as Device memory, and this the only
    /// value driving it.
    #[must_use]
    pub unsafe fn new(base: usize) -> Self {
        Self { base }
    }
}

#[cfg(target_arch = "aarch64")]
impl Registers for Mmio {
    fn read_dma(&mut self) -> u64 {
        // SAFETY: `base + 0x10` is the fw_cfg DMA register (Device memory); reading it has no
        // side effect.
        u64::from_be(unsafe { ((self.base + 0x10) as *const u64).read_volatile() })
    }

    unsafe fn start(&mut self, descriptor: u64) {
        // SAFETY: `base + 0x10` is the DMA register (`Mmio::new`'s contract); the transfer
        // it starts is the caller's, prepared as `Registers::start` requires.
        unsafe { ((self.base + 0x10) as *mut u64).write_volatile(descriptor.to_be()) };
    }

    fn control(&mut self, descriptor: &DmaAccess) -> u32 {
        let a = core::ptr::addr_of!(descriptor.control) as u64;
        // The device writes the control word in memory: drop any cached copy first.
        crate::el1::cache::CpuCache.invalidate(a..a + 4);
        // SAFETY: reads a field of a live descriptor; volatile because the device writes it.
        unsafe { core::ptr::addr_of!(descriptor.control).read_volatile() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::el1::cache::{Op, Recorder};
    use std::collections::BTreeMap;

    /// A fw_cfg device with items in host memory, following QEMU's rules: reads past an
    /// item's end give zeros.
    #[derive(Default)]
    struct Fake {
        items: BTreeMap<u16, std::vec::Vec<u8>>,
        phys: std::vec::Vec<(Range<u64>, std::vec::Vec<u8>)>,
        no_dma: bool,
        selected: u16,
        offset: usize,
    }

    impl Fake {
        fn qemu() -> Self {
            let mut f = Self::default();
            f.items.insert(key::SIGNATURE, b"QEMU".to_vec());
            f.items.insert(key::ID, 3u32.to_le_bytes().to_vec());
            f
        }
        fn with(mut self, k: u16, v: &[u8]) -> Self {
            self.items.insert(k, v.to_vec());
            self
        }
    }

    impl Device for Fake {
        fn dma_signature(&mut self) -> u64 {
            if self.no_dma {
                0
            } else {
                DMA_SIGNATURE
            }
        }
        unsafe fn read(&mut self, key: u16, dest: Dest<'_>) -> Result<(), FwCfgError> {
            self.selected = key;
            self.offset = 0;
            // SAFETY: the fake writes host memory it owns, never the range's addresses.
            unsafe { self.read_next(dest) }
        }
        unsafe fn read_next(&mut self, dest: Dest<'_>) -> Result<(), FwCfgError> {
            let item = self.items.get(&self.selected).cloned().unwrap_or_default();
            let at = self.offset;
            let fill = |out: &mut [u8]| {
                for (i, b) in out.iter_mut().enumerate() {
                    *b = item.get(at + i).copied().unwrap_or(0);
                }
            };
            match dest {
                Dest::Buf(b) => {
                    fill(b);
                    self.offset += b.len();
                }
                Dest::Phys(r) | Dest::Unwritten(r) => {
                    let mut v = vec![0; (r.end - r.start) as usize];
                    fill(&mut v);
                    self.offset += v.len();
                    self.phys.push((r, v));
                }
            }
            Ok(())
        }
    }

    fn cmdline_item(s: &str) -> (std::vec::Vec<u8>, std::vec::Vec<u8>) {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        ((d.len() as u32).to_le_bytes().to_vec(), d)
    }

    #[test]
    fn probe_checks_signature_and_dma() {
        assert!(FwCfg::probe(Fake::qemu()).is_ok());
        let mut nodma = Fake::qemu();
        nodma.no_dma = true;
        assert_eq!(FwCfg::probe(nodma).err(), Some(FwCfgError::NoDevice(0)));
        let old = Fake::qemu().with(key::ID, &1u32.to_le_bytes());
        assert_eq!(FwCfg::probe(old).err(), Some(FwCfgError::NoDma(1)));
        let other = Fake::qemu().with(key::SIGNATURE, b"BOCH");
        assert!(matches!(
            FwCfg::probe(other).err(),
            Some(FwCfgError::NoDevice(_))
        ));
    }

    #[test]
    fn kernel_items() {
        let mut kernel = vec![0u8; 100];
        kernel[0x38..0x3c].copy_from_slice(b"ARM\x64");
        let f = Fake::qemu()
            .with(key::KERNEL_SIZE, &100u32.to_le_bytes())
            .with(key::KERNEL_DATA, &kernel);
        let mut fw = FwCfg::probe(f).unwrap();
        assert_eq!(fw.kernel_size(), Ok(Some(100)));
        assert_eq!(fw.initrd_size(), Ok(0), "absent items read as zero");
        assert_eq!(&fw.kernel_header().unwrap()[0x38..0x3c], b"ARM\x64");
        // SAFETY: the fake device records physical ranges instead of writing them.
        unsafe { fw.load_kernel(0x4020_0000..0x4020_0064) }.unwrap();
        assert_eq!(fw.dev.phys[0].1, kernel);
        // In two runs, the second continuing where the first stopped, zero-filled past the end.
        // SAFETY: the fake device records physical ranges instead of writing them.
        unsafe { fw.load_kernel_runs(&[0x5000_0000..0x5000_0040, 0x6000_0000..0x6000_1000]) }
            .unwrap();
        assert_eq!(fw.dev.phys[1].1, kernel[..64]);
        assert_eq!(fw.dev.phys[2].1[..36], kernel[64..]);
        assert!(fw.dev.phys[2].1[36..].iter().all(|&b| b == 0));
    }

    #[test]
    fn no_kernel_and_an_empty_kernel_differ_by_the_command_line_item() {
        // No -kernel: QEMU adds none of the kernel items.
        assert_eq!(FwCfg::probe(Fake::qemu()).unwrap().kernel_size(), Ok(None));
        // -kernel empty.bin without -append: size 0, and a command line of one NUL.
        let (size, data) = cmdline_item("");
        let f = Fake::qemu()
            .with(key::KERNEL_SIZE, &0u32.to_le_bytes())
            .with(key::KERNEL_DATA, &[])
            .with(key::CMDLINE_SIZE, &size)
            .with(key::CMDLINE_DATA, &data);
        let mut fw = FwCfg::probe(f).unwrap();
        assert_eq!(fw.kernel_size(), Err(FwCfgError::EmptyKernel));
        assert_eq!(
            FwCfgError::EmptyKernel.to_string(),
            "fw_cfg: -kernel is an empty file (0 bytes)"
        );
    }

    #[test]
    fn command_lines() {
        let (size, data) = cmdline_item("console=ttyAMA0 hypstub.el=1");
        let f = Fake::qemu()
            .with(key::CMDLINE_SIZE, &size)
            .with(key::CMDLINE_DATA, &data);
        assert_eq!(
            FwCfg::probe(f).unwrap().cmdline().unwrap(),
            "console=ttyAMA0 hypstub.el=1"
        );
        assert_eq!(FwCfg::probe(Fake::qemu()).unwrap().cmdline().unwrap(), "");
    }

    #[test]
    fn truncated_command_line_is_an_error() {
        // The size says 40 bytes but the item holds 10: QEMU's zero fill shows as an early NUL.
        let f = Fake::qemu()
            .with(key::CMDLINE_SIZE, &40u32.to_le_bytes())
            .with(key::CMDLINE_DATA, b"console=tt");
        let e = FwCfg::probe(f).unwrap().cmdline().unwrap_err();
        assert!(matches!(e, FwCfgError::Truncated { .. }));
        assert!(e.to_string().contains("truncated"), "{e}");
        // No NUL at all.
        let f = Fake::qemu()
            .with(key::CMDLINE_SIZE, &4u32.to_le_bytes())
            .with(key::CMDLINE_DATA, b"abcd");
        assert!(matches!(
            FwCfg::probe(f).unwrap().cmdline(),
            Err(FwCfgError::Truncated { .. })
        ));
        // Too large to accept.
        let f = Fake::qemu().with(key::CMDLINE_SIZE, &(CMDLINE_LIMIT + 1).to_le_bytes());
        assert!(matches!(
            FwCfg::probe(f).unwrap().cmdline(),
            Err(FwCfgError::CommandLineTooLong { .. })
        ));
        // Not UTF-8.
        let f = Fake::qemu()
            .with(key::CMDLINE_SIZE, &3u32.to_le_bytes())
            .with(key::CMDLINE_DATA, &[0xff, 0xfe, 0]);
        assert_eq!(FwCfg::probe(f).unwrap().cmdline(), Err(FwCfgError::NotText));
    }

    /// Registers that complete every transfer at once, logging into the cache recorder's
    /// list so that the order of maintenance and register writes can be checked.
    struct Regs {
        log: std::rc::Rc<std::cell::RefCell<std::vec::Vec<Op>>>,
        result: u32,
        descriptors: std::vec::Vec<(u32, u32, u64)>,
    }

    impl Registers for Regs {
        fn read_dma(&mut self) -> u64 {
            DMA_SIGNATURE
        }
        unsafe fn start(&mut self, _descriptor: u64) {
            self.log.borrow_mut().push(Op::Event("start"));
        }
        fn control(&mut self, d: &DmaAccess) -> u32 {
            self.descriptors.push((
                u32::from_be(d.control),
                u32::from_be(d.length),
                u64::from_be(d.address),
            ));
            self.log.borrow_mut().push(Op::Event("poll"));
            self.result.to_be()
        }
    }

    struct SharedRecorder(std::rc::Rc<std::cell::RefCell<std::vec::Vec<Op>>>);
    impl Cache for SharedRecorder {
        fn clean(&mut self, r: Range<u64>) {
            let mut rec = Recorder::default();
            rec.clean(r);
            self.0.borrow_mut().extend(rec.0);
        }
        fn invalidate(&mut self, r: Range<u64>) {
            self.0.borrow_mut().push(Op::Invalidate(r));
        }
        fn clean_invalidate(&mut self, r: Range<u64>) {
            self.0.borrow_mut().push(Op::CleanInvalidate(r));
        }
    }

    fn dma(
        result: u32,
    ) -> (
        DmaDevice<Regs, SharedRecorder>,
        std::rc::Rc<std::cell::RefCell<std::vec::Vec<Op>>>,
    ) {
        let log = std::rc::Rc::new(std::cell::RefCell::new(std::vec::Vec::new()));
        let regs = Regs {
            log: log.clone(),
            result,
            descriptors: std::vec::Vec::new(),
        };
        (DmaDevice::new(regs, SharedRecorder(log.clone())), log)
    }

    #[test]
    fn dma_into_a_buffer_keeps_caches_coherent_in_order() {
        let (mut d, log) = dma(0);
        let mut buf = [0u8; 64];
        // SAFETY: a buffer of the test's own.
        unsafe { d.read(key::KERNEL_DATA, Dest::Buf(&mut buf)) }.unwrap();
        let log = log.borrow();
        assert_eq!(log.len(), 5, "{log:?}");
        // The DMA went to a bounce buffer owning whole granules, not to `buf` (whose lines
        // it may share with other live data).
        let Op::CleanInvalidate(r) = &log[0] else {
            panic!("{log:?}")
        };
        let a = r.start;
        assert_eq!(a % GRANULE as u64, 0);
        assert_eq!(
            log[0],
            Op::CleanInvalidate(a..a + 64),
            "no dirty line may land over the DMA data"
        );
        assert!(
            matches!(&log[1], Op::Clean(r) if r.end - r.start == 16),
            "descriptor cleaned before the start"
        );
        assert_eq!(log[2], Op::Event("start"));
        assert_eq!(log[3], Op::Event("poll"));
        assert_eq!(
            log[4],
            Op::Invalidate(a..a + 64),
            "stale lines dropped after the DMA"
        );
        let (c, l, addr) = d.parts().0.descriptors[0];
        assert_eq!(
            c,
            CTL_READ | CTL_SELECT | (u32::from(key::KERNEL_DATA) << 16)
        );
        assert_eq!((l, addr), (64, a));
    }

    #[test]
    fn dma_into_unwritten_ram_only_invalidates_after() {
        let (mut d, log) = dma(0);
        let dest = 0x4020_0000..0x4020_2000;
        // SAFETY: the fake registers never start a real transfer.
        unsafe { d.read(key::KERNEL_DATA, Dest::Unwritten(dest.clone())) }.unwrap();
        let log = log.borrow();
        assert_eq!(log.len(), 4, "{log:?}");
        assert!(
            matches!(&log[0], Op::Clean(r) if r.end - r.start == 16),
            "only the descriptor cleaned before the start: {log:?}"
        );
        assert_eq!(log[1], Op::Event("start"));
        assert_eq!(log[2], Op::Event("poll"));
        assert_eq!(
            log[3],
            Op::Invalidate(dest),
            "stale lines dropped after the DMA"
        );
    }

    #[test]
    fn large_items_go_in_chunks_each_with_its_maintenance() {
        let (mut d, log) = dma(0);
        let dest = 0x4020_0000..0x4020_0000 + (1u64 << 30) + 4096;
        // SAFETY: the fake registers never start a real transfer.
        unsafe { d.read(key::KERNEL_DATA, Dest::Phys(dest)) }.unwrap();
        let log = log.borrow();
        let first = 0x4020_0000..0x4020_0000 + (1u64 << 30);
        let second = first.end..first.end + 4096;
        assert_eq!(log[0], Op::CleanInvalidate(first.clone()));
        assert_eq!(log[4], Op::Invalidate(first));
        assert_eq!(log[5], Op::CleanInvalidate(second.clone()));
        assert_eq!(log[9], Op::Invalidate(second));
        let descs = &d.parts().0.descriptors;
        assert_eq!(descs.len(), 2);
        assert_eq!(
            descs[0],
            (CTL_READ | CTL_SELECT | (0x11 << 16), 1 << 30, 0x4020_0000)
        );
        assert_eq!(
            descs[1],
            (CTL_READ, 4096, 0x4020_0000 + (1 << 30)),
            "continues without re-selecting"
        );
    }

    struct Stuck;
    impl Registers for Stuck {
        fn read_dma(&mut self) -> u64 {
            DMA_SIGNATURE
        }
        unsafe fn start(&mut self, _descriptor: u64) {}
        fn control(&mut self, _d: &DmaAccess) -> u32 {
            CTL_READ.to_be()
        }
    }

    #[test]
    fn a_device_that_never_finishes_is_an_error() {
        let mut d = DmaDevice::new(Stuck, Recorder::default());
        let mut buf = [0u8; 4];
        // SAFETY: a buffer of the test's own.
        let r = unsafe { d.read(key::ID, Dest::Buf(&mut buf)) };
        assert_eq!(r, Err(FwCfgError::Timeout { key: key::ID }));
    }

    #[test]
    fn dma_errors_are_reported() {
        let (mut d, _) = dma(CTL_ERROR);
        let mut buf = [0u8; 4];
        // SAFETY: a buffer of the test's own.
        let r = unsafe { d.read(key::ID, Dest::Buf(&mut buf)) };
        assert_eq!(
            r,
            Err(FwCfgError::Dma {
                key: key::ID,
                control: CTL_ERROR
            })
        );
    }
}
