//! The arm64 Linux `Image` header and where to put the image in RAM.
//!
//! The header format and the placement rules are Linux's
//! (Documentation/arch/arm64/booting.rst, "Call the kernel image"): a 64-byte
//! little-endian header at the start of the file, and a load address of a
//! 2 MiB-aligned base plus `text_offset`, with `image_size` bytes (the image
//! including its BSS) free from there.

use core::ops::Range;

use thiserror::Error;

/// Size of the header at the start of an arm64 `Image`.
pub const HEADER_SIZE: usize = 64;

/// The magic number at offset 0x38: "ARM\x64", little-endian.
pub const MAGIC: u32 = 0x644d_5241;

/// Offset of the magic number in the header.
const MAGIC_OFFSET: usize = 0x38;

/// The kernel must be loaded at a base aligned to this (booting.rst).
pub const BASE_ALIGN: u64 = 2 << 20;

/// `text_offset` of kernels older than 3.17, which have `image_size == 0`
/// (booting.rst: "text_offset can be assumed to be 0x80000").
pub const OLD_TEXT_OFFSET: u64 = 0x8_0000;

/// The image must end at or below this physical address when the kernel asks
/// for "anywhere" placement, and the kernel's linear map does not reach above
/// it with 48-bit physical addresses in any case.
pub const PHYS_LIMIT_48: u64 = 1 << 48;

/// `flags` bit 0: the kernel is big-endian.
const FLAG_BIG_ENDIAN: u64 = 1 << 0;
/// `flags` bits 1-2: the kernel's page size.
const FLAG_PAGE_SIZE_SHIFT: u32 = 1;
/// `flags` bit 3: the 2 MiB-aligned base may be anywhere in physical memory.
const FLAG_PLACEMENT_ANYWHERE: u64 = 1 << 3;

/// Why a header or a file is not a usable arm64 `Image`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ImageError {
    /// Fewer bytes than the 64-byte header.
    #[error("not an arm64 Image: {len} bytes is shorter than the {HEADER_SIZE}-byte header")]
    TooShort {
        /// Length of what was given.
        len: u64,
    },
    /// The magic number at offset 0x38 is wrong.
    #[error(
        "not an arm64 Image: bad magic {found:#010x} at offset {MAGIC_OFFSET:#x} (expected {MAGIC:#010x})"
    )]
    BadMagic {
        /// The value found at offset 0x38.
        found: u32,
    },
    /// `flags` bit 0 says the kernel is big-endian.
    #[error(
        "big-endian arm64 Image is not supported: flags {flags:#x} at offset 0x18 has bit 0 set"
    )]
    BigEndian {
        /// The `flags` field.
        flags: u64,
    },
    /// `text_offset` is not a multiple of 8.
    #[error("arm64 Image text_offset {text_offset:#x} at offset 0x08 is not a multiple of 8")]
    TextOffsetMisaligned {
        /// The `text_offset` field.
        text_offset: u64,
    },
    /// `text_offset` is 2 MiB or more.
    #[error(
        "arm64 Image text_offset {text_offset:#x} at offset 0x08 is not below {BASE_ALIGN:#x} (2 MiB)"
    )]
    TextOffsetTooLarge {
        /// The `text_offset` field.
        text_offset: u64,
    },
    /// `image_size` is non-zero but smaller than the file, so the file holds
    /// bytes the kernel does not account for.
    #[error(
        "arm64 Image image_size {image_size:#x} at offset 0x10 is smaller than the file ({file_len:#x} bytes)"
    )]
    ImageSizeTooSmall {
        /// The `image_size` field.
        image_size: u64,
        /// Length of the file.
        file_len: u64,
    },
}

/// Why [`place`] found no place for the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PlaceError {
    /// The header does not describe the file.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// No 2 MiB-aligned base puts the whole image inside RAM and clear of the
    /// ranges to avoid.
    #[error(
        "arm64 Image does not fit in RAM: needs {size:#x} bytes at a 2 MiB-aligned base + {text_offset:#x}, \
         at or above {lowest_base:#x} and clear of {avoided} reserved ranges, in RAM {ram_start:#x}..{ram_end:#x}"
    )]
    DoesNotFit {
        /// Bytes the image needs from its load address (the effective size).
        size: u64,
        /// The effective `text_offset`.
        text_offset: u64,
        /// The lowest base the caller allowed.
        lowest_base: u64,
        /// How many ranges to avoid the caller gave.
        avoided: usize,
        /// Start of RAM.
        ram_start: u64,
        /// End of RAM (exclusive).
        ram_end: u64,
    },
    /// The only places in RAM are above the 48-bit physical address limit.
    #[error(
        "arm64 Image at {start:#x}..{end:#x} would cross the 48-bit physical address limit {PHYS_LIMIT_48:#x}"
    )]
    Beyond48Bit {
        /// Load address the image would have.
        start: u64,
        /// End of the image (exclusive).
        end: u64,
    },
}

/// The kernel page size announced in `flags` bits 1-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 0: not specified (kernels before 3.17 do not say).
    Unspecified,
    /// 1: 4 KiB pages.
    Size4K,
    /// 2: 16 KiB pages.
    Size16K,
    /// 3: 64 KiB pages.
    Size64K,
}

impl PageSize {
    /// The page size in bytes, if the kernel said.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Self::Unspecified => None,
            Self::Size4K => Some(4 << 10),
            Self::Size16K => Some(16 << 10),
            Self::Size64K => Some(64 << 10),
        }
    }
}

/// The fields of an arm64 `Image` header (booting.rst), as found in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset 0x00: the first instruction (or "MZ" for an EFI-stub kernel).
    pub code0: u32,
    /// Offset 0x04: the second instruction.
    pub code1: u32,
    /// Offset 0x08: load offset from a 2 MiB-aligned base.
    pub text_offset: u64,
    /// Offset 0x10: bytes the image needs from its load address, BSS
    /// included; 0 for kernels before 3.17.
    pub image_size: u64,
    /// Offset 0x18: endianness, page size and placement flags.
    pub flags: u64,
}

impl ImageHeader {
    /// Reads and checks the header at the start of `bytes` (the first 64
    /// bytes of the file; more may follow and are not looked at). The file's
    /// length is checked against the header by
    /// [`check_file_len`](Self::check_file_len), which [`place`] calls.
    ///
    /// # Errors
    /// Fewer than 64 bytes, a bad magic number, a big-endian kernel, or (for
    /// kernels that give `image_size`) a `text_offset` that is not a multiple
    /// of 8 or not below 2 MiB. booting.rst allows any `text_offset`; these
    /// limits reject nonsense that no kernel has produced.
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageError> {
        let Some(h) = bytes.first_chunk::<HEADER_SIZE>() else {
            return Err(ImageError::TooShort {
                len: bytes.len() as u64,
            });
        };
        let magic = le_u32(h, MAGIC_OFFSET);
        if magic != MAGIC {
            return Err(ImageError::BadMagic { found: magic });
        }
        let header = Self {
            code0: le_u32(h, 0x00),
            code1: le_u32(h, 0x04),
            text_offset: le_u64(h, 0x08),
            image_size: le_u64(h, 0x10),
            flags: le_u64(h, 0x18),
        };
        if header.flags & FLAG_BIG_ENDIAN != 0 {
            return Err(ImageError::BigEndian {
                flags: header.flags,
            });
        }
        // With image_size == 0, text_offset may be in the kernel's endianness
        // and must be taken as 0x80000 (booting.rst), so it is not checked.
        if header.image_size != 0 {
            if !header.text_offset.is_multiple_of(8) {
                return Err(ImageError::TextOffsetMisaligned {
                    text_offset: header.text_offset,
                });
            }
            if header.text_offset >= BASE_ALIGN {
                return Err(ImageError::TextOffsetTooLarge {
                    text_offset: header.text_offset,
                });
            }
        }
        Ok(header)
    }

    /// Checks that a file of `file_len` bytes is described by this header:
    /// at least the header long, and no longer than `image_size` when that
    /// is given.
    ///
    /// # Errors
    /// [`ImageError::TooShort`] or [`ImageError::ImageSizeTooSmall`].
    pub fn check_file_len(&self, file_len: u64) -> Result<(), ImageError> {
        if file_len < HEADER_SIZE as u64 {
            return Err(ImageError::TooShort { len: file_len });
        }
        if self.image_size != 0 && self.image_size < file_len {
            return Err(ImageError::ImageSizeTooSmall {
                image_size: self.image_size,
                file_len,
            });
        }
        Ok(())
    }

    /// The offset from the 2 MiB-aligned base at which the image goes:
    /// `text_offset`, or 0x80000 for a kernel older than 3.17
    /// (`image_size == 0`).
    pub fn effective_text_offset(&self) -> u64 {
        if self.image_size == 0 {
            OLD_TEXT_OFFSET
        } else {
            self.text_offset
        }
    }

    /// Bytes the image needs from its load address: `image_size`, or the
    /// file length for a kernel older than 3.17 (`image_size == 0`).
    /// Call [`check_file_len`](Self::check_file_len) first; [`place`] does.
    pub fn effective_size(&self, file_len: u64) -> u64 {
        if self.image_size == 0 {
            file_len
        } else {
            self.image_size
        }
    }

    /// The page size the kernel was built for (`flags` bits 1-2).
    pub fn page_size(&self) -> PageSize {
        match (self.flags >> FLAG_PAGE_SIZE_SHIFT) & 0b11 {
            0 => PageSize::Unspecified,
            1 => PageSize::Size4K,
            2 => PageSize::Size16K,
            _ => PageSize::Size64K,
        }
    }

    /// `flags` bit 3: the kernel may be placed at any 2 MiB-aligned base
    /// below the 48-bit limit, not only close to the start of DRAM.
    pub fn placement_anywhere(&self) -> bool {
        self.flags & FLAG_PLACEMENT_ANYWHERE != 0
    }

    /// `flags` bits 4..63, which booting.rst reserves: non-zero only for a kernel newer
    /// than that document (or a header that is not one), which the firmware reports.
    #[must_use]
    pub fn reserved_flags(&self) -> u64 {
        self.flags & FLAGS_RESERVED
    }
}

/// `flags` bits 4..63, reserved by booting.rst.
const FLAGS_RESERVED: u64 = !0xf;

/// Chooses where the image goes: the lowest 2 MiB-aligned base at or above
/// both `ram.start` and `lowest_base` such that
/// `[base + text_offset, base + text_offset + size)` lies inside `ram`, below
/// the 48-bit limit, and overlaps none of `avoid`. Returns that image range.
///
/// The lowest base suits both placement policies of booting.rst: "as close as
/// possible to the base of DRAM" and, for "anywhere" kernels, below 48 bits.
///
/// # Errors
/// The header does not describe a file of `file_len` bytes, or no base works
/// ([`PlaceError::DoesNotFit`], [`PlaceError::Beyond48Bit`]).
pub fn place(
    header: &ImageHeader,
    file_len: u64,
    ram: Range<u64>,
    avoid: &[Range<u64>],
    lowest_base: u64,
) -> Result<Range<u64>, PlaceError> {
    header.check_file_len(file_len)?;
    let text_offset = header.effective_text_offset();
    let size = header.effective_size(file_len);
    let does_not_fit = PlaceError::DoesNotFit {
        size,
        text_offset,
        lowest_base,
        avoided: avoid.len(),
        ram_start: ram.start,
        ram_end: ram.end,
    };

    let mut base = align_up(ram.start.max(lowest_base), BASE_ALIGN).ok_or(does_not_fit)?;
    loop {
        let start = base.checked_add(text_offset).ok_or(does_not_fit)?;
        let end = start.checked_add(size).ok_or(does_not_fit)?;
        if end > ram.end {
            // Every later base ends even higher.
            return Err(does_not_fit);
        }
        if end > PHYS_LIMIT_48 {
            return Err(PlaceError::Beyond48Bit { start, end });
        }
        // The furthest end of the avoided ranges that overlap the image.
        let blocked_until = avoid
            .iter()
            .filter(|r| r.start < r.end && r.start < end && start < r.end)
            .map(|r| r.end)
            .max();
        let Some(blocked_until) = blocked_until else {
            return Ok(start..end);
        };
        // The first base that puts the image start at or past that end; it is
        // above `base` because the overlap means blocked_until > start.
        base =
            align_up(blocked_until.saturating_sub(text_offset), BASE_ALIGN).ok_or(does_not_fit)?;
    }
}

/// The first range of `len` bytes at or after `from`, starting on a multiple of `align` (a
/// power of two), inside `ram` and clear of every range in `avoid`: where the boot flow
/// puts the initrd after the image, and the DTB after the initrd. `None` when there is no
/// such range (or `len` is 0).
#[must_use]
pub fn place_after(
    from: u64,
    len: u64,
    align: u64,
    ram: Range<u64>,
    avoid: &[Range<u64>],
) -> Option<Range<u64>> {
    if len == 0 {
        return None;
    }
    let mut start = align_up(from.max(ram.start), align)?;
    loop {
        let end = start.checked_add(len)?;
        if end > ram.end {
            return None;
        }
        let blocked_until = avoid
            .iter()
            .filter(|r| r.start < r.end && r.start < end && start < r.end)
            .map(|r| r.end)
            .max();
        match blocked_until {
            None => return Some(start..end),
            // Past `start`, as the overlap means blocked_until > start.
            Some(e) => start = align_up(e, align)?,
        }
    }
}

/// `value` rounded up to a multiple of `align` (a power of two), or `None`
/// past `u64::MAX`.
fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

/// The little-endian `u32` at `at` in the header (`at` is a constant field
/// offset, so the slice is always in bounds).
fn le_u32(h: &[u8; HEADER_SIZE], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&h[at..at + 4]);
    u32::from_le_bytes(b)
}

/// The little-endian `u64` at `at` in the header (`at` is a constant field
/// offset, so the slice is always in bounds).
fn le_u64(h: &[u8; HEADER_SIZE], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&h[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
#[allow(
    clippy::single_range_in_vec_init,
    reason = "lists of one range to avoid are meant"
)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;

    const MIB: u64 = 1 << 20;
    const RAM: Range<u64> = 0x4000_0000..0x6000_0000;

    fn header_bytes(text_offset: u64, image_size: u64, flags: u64) -> [u8; HEADER_SIZE] {
        let mut h = [0u8; HEADER_SIZE];
        // "MZ" + branch, as an EFI-stub kernel starts.
        h[0..4].copy_from_slice(&0xfa40_5a4d_u32.to_le_bytes());
        h[4..8].copy_from_slice(&0x1400_0000_u32.to_le_bytes());
        h[0x08..0x10].copy_from_slice(&text_offset.to_le_bytes());
        h[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(&MAGIC.to_le_bytes());
        h
    }

    fn header(text_offset: u64, image_size: u64) -> ImageHeader {
        ImageHeader::parse(&header_bytes(text_offset, image_size, 0b1010)).unwrap()
    }

    #[test]
    fn parses_fields() {
        let mut file: Vec<u8> = header_bytes(0, 0x200_0000, 0b1010).to_vec();
        file.extend_from_slice(&[0xaa; 100]);
        let h = ImageHeader::parse(&file).unwrap();
        assert_eq!(h.code0, 0xfa40_5a4d);
        assert_eq!(h.code1, 0x1400_0000);
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.image_size, 0x200_0000);
        assert_eq!(h.flags, 0b1010);
        assert_eq!(h.page_size(), PageSize::Size4K);
        assert!(h.placement_anywhere());
        assert_eq!(h.effective_text_offset(), 0);
        assert_eq!(h.effective_size(file.len() as u64), 0x200_0000);
        assert_eq!(h.check_file_len(file.len() as u64), Ok(()));
    }

    #[test]
    fn page_sizes() {
        let sizes = [
            (PageSize::Unspecified, None),
            (PageSize::Size4K, Some(4096)),
            (PageSize::Size16K, Some(16384)),
            (PageSize::Size64K, Some(65536)),
        ];
        for (bits, (size, bytes)) in sizes.into_iter().enumerate() {
            let h = ImageHeader::parse(&header_bytes(0, MIB, (bits as u64) << 1)).unwrap();
            assert_eq!(h.page_size(), size);
            assert_eq!(h.page_size().bytes(), bytes);
            assert!(!h.placement_anywhere());
        }
    }

    #[test]
    fn too_short() {
        let h = header_bytes(0, MIB, 0);
        let err = ImageHeader::parse(&h[..63]).unwrap_err();
        assert_eq!(err, ImageError::TooShort { len: 63 });
        assert!(err.to_string().contains("not an arm64 Image"));
        assert_eq!(
            ImageHeader::parse(&[]).unwrap_err(),
            ImageError::TooShort { len: 0 }
        );
    }

    #[test]
    fn bad_magic() {
        let mut h = header_bytes(0, MIB, 0);
        h[0x38..0x3c].copy_from_slice(&0x1234_5678_u32.to_le_bytes());
        let err = ImageHeader::parse(&h).unwrap_err();
        assert_eq!(err, ImageError::BadMagic { found: 0x1234_5678 });
        assert_eq!(
            err.to_string(),
            "not an arm64 Image: bad magic 0x12345678 at offset 0x38 (expected 0x644d5241)"
        );
        // An ELF file is not an Image either.
        let mut elf = vec![0u8; 128];
        elf[..4].copy_from_slice(b"\x7fELF");
        assert!(matches!(
            ImageHeader::parse(&elf),
            Err(ImageError::BadMagic { found: 0 })
        ));
    }

    #[test]
    fn big_endian_rejected() {
        let err = ImageHeader::parse(&header_bytes(0, MIB, 0b1011)).unwrap_err();
        assert_eq!(err, ImageError::BigEndian { flags: 0b1011 });
        assert!(err.to_string().contains("big-endian"));
        assert!(err.to_string().contains("0xb"));
    }

    #[test]
    fn text_offset_checks() {
        let err = ImageHeader::parse(&header_bytes(0x8_0004, MIB, 0)).unwrap_err();
        assert_eq!(
            err,
            ImageError::TextOffsetMisaligned {
                text_offset: 0x8_0004
            }
        );
        assert!(err.to_string().contains("0x80004"));
        let err = ImageHeader::parse(&header_bytes(2 * MIB, MIB, 0)).unwrap_err();
        assert_eq!(
            err,
            ImageError::TextOffsetTooLarge {
                text_offset: 2 * MIB
            }
        );
        assert!(err.to_string().contains("0x200000"));
        // Any 8-byte-aligned offset below 2 MiB is allowed.
        assert_eq!(header(0x1f_fff8, MIB).text_offset, 0x1f_fff8);
        assert_eq!(header(0x1008, MIB).effective_text_offset(), 0x1008);
    }

    #[test]
    fn old_kernel_without_image_size() {
        // Pre-3.17: image_size 0, text_offset possibly big-endian garbage.
        let h = ImageHeader::parse(&header_bytes(0x0000_0800_0000_0000, 0, 0)).unwrap();
        assert_eq!(h.effective_text_offset(), OLD_TEXT_OFFSET);
        assert_eq!(h.effective_size(0x123_4000), 0x123_4000);
        assert_eq!(h.check_file_len(u64::MAX), Ok(()));
    }

    #[test]
    fn file_longer_than_image_size() {
        let h = header(0, 0x1000);
        assert_eq!(h.check_file_len(0x1000), Ok(()));
        let err = h.check_file_len(0x1001).unwrap_err();
        assert_eq!(
            err,
            ImageError::ImageSizeTooSmall {
                image_size: 0x1000,
                file_len: 0x1001
            }
        );
        assert!(err.to_string().contains("0x1000"));
        assert!(err.to_string().contains("0x1001"));
        assert_eq!(h.check_file_len(10), Err(ImageError::TooShort { len: 10 }));
        assert_eq!(
            place(&h, 0x1001, RAM, &[], 0),
            Err(PlaceError::Image(ImageError::ImageSizeTooSmall {
                image_size: 0x1000,
                file_len: 0x1001
            }))
        );
    }

    #[test]
    fn place_after_skips_reservations_and_stops_at_the_end_of_ram() {
        let ram = 0x4000_0000..0x4010_0000;
        assert_eq!(
            place_after(0x4000_0001, 0x1800, 4096, ram.clone(), &[]),
            Some(0x4000_1000..0x4000_2800)
        );
        // A reservation in the way, and one touching the end of the first: both skipped.
        let avoid = [0x4000_2000..0x4000_3000, 0x4000_3000..0x4000_3800];
        assert_eq!(
            place_after(0x4000_1000, 0x1800, 4096, ram.clone(), &avoid),
            Some(0x4000_4000..0x4000_5800)
        );
        // An empty avoided range blocks nothing.
        assert_eq!(
            place_after(
                0x4000_1000,
                0x1000,
                4096,
                ram.clone(),
                &[0x4000_1800..0x4000_1800]
            ),
            Some(0x4000_1000..0x4000_2000)
        );
        // Exactly to the end of RAM fits; a byte more does not; nor does 0 bytes.
        assert_eq!(
            place_after(0x400f_f000, 0x1000, 4096, ram.clone(), &[]),
            Some(0x400f_f000..0x4010_0000)
        );
        assert_eq!(
            place_after(0x400f_f000, 0x1001, 4096, ram.clone(), &[]),
            None
        );
        assert_eq!(place_after(0x4000_0000, 0, 4096, ram.clone(), &[]), None);
        // A reservation to the end of RAM leaves no room; near u64::MAX nothing wraps.
        assert_eq!(
            place_after(0x4000_0000, 0x1000, 4096, ram, &[0x4000_0800..0x4010_0000]),
            None
        );
        assert_eq!(place_after(u64::MAX - 10, 4, 4096, 0..u64::MAX, &[]), None);
    }

    #[test]
    fn fits_at_first_base() {
        let h = header(0, 16 * MIB);
        assert_eq!(
            place(&h, 10 * MIB, RAM, &[], 0),
            Ok(0x4000_0000..0x4100_0000)
        );
        // The payload area of QEMU virt (docs/CONTRACTS.md).
        assert_eq!(
            place(&h, 10 * MIB, RAM, &[], 0x4020_0000),
            Ok(0x4020_0000..0x4120_0000)
        );
        // An unaligned lowest base or RAM start rounds up to 2 MiB.
        assert_eq!(
            place(&h, 10 * MIB, RAM, &[], 0x4020_0001),
            Ok(0x4040_0000..0x4140_0000)
        );
        assert_eq!(
            place(&h, 10 * MIB, 0x4000_1000..0x6000_0000, &[], 0),
            Ok(0x4020_0000..0x4120_0000)
        );
    }

    #[test]
    fn pushed_past_avoided_ranges() {
        let h = header(0, 4 * MIB);
        // DTB and firmware RAM at the start of RAM (QEMU virt).
        let avoid = [0x4000_0000..0x4011_0000];
        assert_eq!(place(&h, MIB, RAM, &avoid, 0), Ok(0x4020_0000..0x4060_0000));
        // Several ranges, unsorted, each pushing the image further; an empty
        // range and one that only touches the image's end are no obstacle.
        let avoid = [
            0x4050_0000..0x4050_1000,
            0x4000_0000..0x4020_0000,
            0x4100_0000..0x4100_0000,
            0x4090_0000..0x40a0_0000,
        ];
        assert_eq!(place(&h, MIB, RAM, &avoid, 0), Ok(0x40a0_0000..0x40e0_0000));
        let touching = [0x4040_0000..0x4050_0000];
        assert_eq!(
            place(&h, MIB, RAM, &touching, 0),
            Ok(0x4000_0000..0x4040_0000)
        );
    }

    #[test]
    fn avoid_range_and_text_offset() {
        // An obstacle ending just below base + text_offset lets the first
        // base through: only the image bytes matter, not the gap below them.
        let h = header(0x8_0000, 4 * MIB);
        let avoid = [0x4000_0000..0x4008_0000];
        assert_eq!(place(&h, MIB, RAM, &avoid, 0), Ok(0x4008_0000..0x4048_0000));
        let avoid = [0x4000_0000..0x4008_1000];
        assert_eq!(place(&h, MIB, RAM, &avoid, 0), Ok(0x4028_0000..0x4068_0000));
    }

    #[test]
    fn text_offset_0x80000() {
        let h = header(0x8_0000, 16 * MIB);
        assert_eq!(
            place(&h, 8 * MIB, RAM, &[], 0x4020_0000),
            Ok(0x4028_0000..0x4128_0000)
        );
    }

    #[test]
    fn image_size_zero() {
        let h = header(0, 0);
        assert_eq!(
            place(&h, 0x123_4567, RAM, &[], 0),
            Ok(0x4008_0000..0x4008_0000 + 0x123_4567)
        );
    }

    #[test]
    fn exact_fit_at_ram_end() {
        let h = header(0x8_0000, 8 * MIB - 0x8_0000);
        let ram = 0x4000_0000..0x4080_0000;
        assert_eq!(
            place(&h, MIB, ram.clone(), &[], 0),
            Ok(0x4008_0000..0x4080_0000)
        );
        // Pushed to the last base by an obstacle, still exactly fitting.
        let ram = 0x4000_0000..0x40a0_0000;
        let avoid = [0x4000_0000..0x4010_0000];
        assert_eq!(place(&h, MIB, ram, &avoid, 0), Ok(0x4028_0000..0x40a0_0000));
        // One byte more does not fit.
        let h = header(0x8_0000, 8 * MIB - 0x8_0000 + 1);
        assert!(matches!(
            place(&h, MIB, 0x4000_0000..0x4080_0000, &[], 0),
            Err(PlaceError::DoesNotFit { .. })
        ));
    }

    #[test]
    fn too_big() {
        let h = header(0, 0x2000_0001);
        let err = place(&h, MIB, RAM, &[], 0).unwrap_err();
        assert_eq!(
            err,
            PlaceError::DoesNotFit {
                size: 0x2000_0001,
                text_offset: 0,
                lowest_base: 0,
                avoided: 0,
                ram_start: 0x4000_0000,
                ram_end: 0x6000_0000,
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("does not fit in RAM"), "{msg}");
        assert!(msg.contains("0x20000001"), "{msg}");
        assert!(msg.contains("0x40000000..0x60000000"), "{msg}");
        // Fits only where an avoided range is.
        let h = header(0, 0x1000_0000);
        let avoid = [0x4f00_0000..0x5100_0000];
        assert!(matches!(
            place(&h, MIB, RAM, &avoid, 0),
            Err(PlaceError::DoesNotFit { avoided: 1, .. })
        ));
        // Lowest base above RAM, empty RAM.
        assert!(place(&h, MIB, RAM, &[], 0x7000_0000).is_err());
        assert!(place(&h, MIB, 0x4000_0000..0x4000_0000, &[], 0).is_err());
    }

    #[test]
    fn beyond_48_bits() {
        let h = header(0, 4 * MIB);
        let ram = PHYS_LIMIT_48 - 2 * MIB..PHYS_LIMIT_48 + 64 * MIB;
        let err = place(&h, MIB, ram, &[], 0).unwrap_err();
        assert_eq!(
            err,
            PlaceError::Beyond48Bit {
                start: PHYS_LIMIT_48 - 2 * MIB,
                end: PHYS_LIMIT_48 + 2 * MIB
            }
        );
        assert!(err.to_string().contains("48-bit"));
        // Ending exactly at the limit is fine.
        let h = header(0, 2 * MIB);
        let ram = PHYS_LIMIT_48 - 2 * MIB..PHYS_LIMIT_48 + 64 * MIB;
        assert_eq!(
            place(&h, MIB, ram, &[], 0),
            Ok(PHYS_LIMIT_48 - 2 * MIB..PHYS_LIMIT_48)
        );
    }

    #[test]
    fn no_overflow_at_top_of_address_space() {
        let h = header(0x8_0000, 4 * MIB);
        let top = u64::MAX - MIB..u64::MAX;
        assert!(place(&h, MIB, top.clone(), &[], 0).is_err());
        assert!(place(&h, MIB, RAM, &[], u64::MAX).is_err());
        let avoid = [0x4000_0000..u64::MAX];
        assert!(place(&h, MIB, 0x4000_0000..u64::MAX, &avoid, 0).is_err());
        let old = header(0, 0);
        assert!(place(&old, u64::MAX, RAM, &[], 0).is_err());
    }

    #[test]
    fn reserved_flag_bits_are_reported() {
        let mut h = [0u8; HEADER_SIZE];
        h[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(&MAGIC.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&0b1010u64.to_le_bytes());
        assert_eq!(ImageHeader::parse(&h).unwrap().reserved_flags(), 0);
        h[0x18..0x20].copy_from_slice(&((1u64 << 4) | (1 << 63) | 0b1010).to_le_bytes());
        assert_eq!(
            ImageHeader::parse(&h).unwrap().reserved_flags(),
            (1 << 4) | (1 << 63)
        );
    }
}
