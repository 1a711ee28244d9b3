//! The relocation argument block: the one pointer the relocation engine gets (the table of
//! fields is in docs/reloc-args.md).
//!
//! HVC_SOFT_RESTART carries only three registers to its target, so the engine takes the
//! physical address of this block in x0. The block starts with a magic number, a version and
//! its own size: an engine rejects a block whose magic, version or size it does not know, and
//! a later version only appends fields (bumping `version` and growing `size`). Every field is
//! a little-endian integer, with no padding.
//!
//! The engine's assembly reads the fields at the offsets in [`offsets`], which come from the
//! Rust layout (`core::mem::offset_of!`) and are pinned by compile-time assertions, so the
//! layout cannot drift without breaking the build.

use core::mem::size_of;

use thiserror::Error;

/// `magic`: "HYPRELOC" as little-endian bytes.
pub const MAGIC: u64 = u64::from_le_bytes(*b"HYPRELOC");
/// The version this crate writes and the only one the engine accepts. Version 2 was version
/// 1 (same fields, same size) plus the meaning of [`FLAG_CONSOLE_MINI_UART`]; version 3 is
/// version 2 with [`Digest::hash64`] in place of a CRC-32C (the `reloc` crate's `digest`
/// module). The engine ships with the planner in one image, so it knows only this one.
pub const VERSION: u32 = 3;
/// `size` of the block, in bytes (0x80): the same for versions 1 to 3, which differ only in
/// the meaning of a flag and of the digests.
pub const SIZE: u32 = size_of::<ArgBlock>() as u32;

/// `flags` bit 0: copy with the EL2 MMU and caches on, using `ttbr0`, `tcr` and `mair`. When
/// clear, the engine copies with the MMU off and those three fields are 0.
pub const FLAG_MMU: u64 = 1 << 0;
/// `flags` bit 1: on a failure after the point of no return (bad block, digest mismatch, EL2
/// fault) the engine powers the machine off with PSCI SYSTEM_OFF through `smc #0`; when clear
/// it parks the CPU.
pub const FLAG_PSCI_STOP: u64 = 1 << 1;
/// `flags` bit 2 (version 2): `console` is a BCM2835 auxiliary mini-UART (its AUX_MU_IO
/// register; AUX_MU_LSR at +0x14), as on the Raspberry Pi 4; when clear it is a PL011.
pub const FLAG_CONSOLE_MINI_UART: u64 = 1 << 2;

/// The relocation argument block, version 3 (docs/reloc-args.md has the table of fields).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArgBlock {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`VERSION`].
    pub version: u32,
    /// Size of the block in bytes: [`SIZE`].
    pub size: u32,
    /// The first page-list entry, normally `IND_INDIRECTION | first list page` (see
    /// the `reloc` crate's `list` module).
    pub head: u64,
    /// Physical address the payload is entered at; non-zero, 4-byte aligned.
    pub entry: u64,
    /// x0..x3 for the payload (Linux: x0 = DTB, x1 = x2 = x3 = 0).
    pub regs: [u64; 4],
    /// The exception level the payload is entered at: 1 or 2.
    pub el: u64,
    /// [`FLAG_MMU`], [`FLAG_PSCI_STOP`], [`FLAG_CONSOLE_MINI_UART`]; other bits are 0.
    pub flags: u64,
    /// TTBR0_EL2 for the copy (the root of the EL2 identity map), or 0 without [`FLAG_MMU`].
    pub ttbr0: u64,
    /// TCR_EL2 for the copy, or 0 without [`FLAG_MMU`].
    pub tcr: u64,
    /// MAIR_EL2 for the copy, or 0 without [`FLAG_MMU`].
    pub mair: u64,
    /// Physical address of the UART the engine may print on (a PL011, or a mini-UART with
    /// [`FLAG_CONSOLE_MINI_UART`]); 0 = silent.
    pub console: u64,
    /// Physical address of `digest_count` [`Digest`]s, or 0.
    pub digests: u64,
    /// Number of [`Digest`]s at `digests`; 0 = no check.
    pub digest_count: u64,
}

/// One digest the engine checks after copying and before entering the payload.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    /// Physical address of the first byte of the range.
    pub start: u64,
    /// Length of the range in bytes.
    pub len: u64,
    /// Hash64 of the range (the `reloc` crate's `digest` module, docs/reloc-args.md).
    pub hash64: u64,
}

/// Byte offsets of every field, for the engine's assembly
/// (`global_asm!(..., OFF = const offsets::HEAD)`).
pub mod offsets {
    use core::mem::{offset_of, size_of};

    use super::{ArgBlock, Digest};

    /// `ArgBlock::magic`.
    pub const MAGIC: usize = offset_of!(ArgBlock, magic);
    /// `ArgBlock::version`.
    pub const VERSION: usize = offset_of!(ArgBlock, version);
    /// `ArgBlock::size`.
    pub const SIZE: usize = offset_of!(ArgBlock, size);
    /// `ArgBlock::head`.
    pub const HEAD: usize = offset_of!(ArgBlock, head);
    /// `ArgBlock::entry`.
    pub const ENTRY: usize = offset_of!(ArgBlock, entry);
    /// `ArgBlock::regs`: x0 at `REGS`, x1 at `REGS + 8`, and so on.
    pub const REGS: usize = offset_of!(ArgBlock, regs);
    /// `ArgBlock::el`.
    pub const EL: usize = offset_of!(ArgBlock, el);
    /// `ArgBlock::flags`.
    pub const FLAGS: usize = offset_of!(ArgBlock, flags);
    /// `ArgBlock::ttbr0`.
    pub const TTBR0: usize = offset_of!(ArgBlock, ttbr0);
    /// `ArgBlock::tcr`.
    pub const TCR: usize = offset_of!(ArgBlock, tcr);
    /// `ArgBlock::mair`.
    pub const MAIR: usize = offset_of!(ArgBlock, mair);
    /// `ArgBlock::console`.
    pub const CONSOLE: usize = offset_of!(ArgBlock, console);
    /// `ArgBlock::digests`.
    pub const DIGESTS: usize = offset_of!(ArgBlock, digests);
    /// `ArgBlock::digest_count`.
    pub const DIGEST_COUNT: usize = offset_of!(ArgBlock, digest_count);
    /// Size of a block (versions 1 to 3).
    pub const BLOCK_SIZE: usize = size_of::<ArgBlock>();

    /// `Digest::start`.
    pub const DIGEST_START: usize = offset_of!(Digest, start);
    /// `Digest::len`.
    pub const DIGEST_LEN: usize = offset_of!(Digest, len);
    /// `Digest::hash64`.
    pub const DIGEST_HASH64: usize = offset_of!(Digest, hash64);
    /// Size of one `Digest`: the stride of the digest array.
    pub const DIGEST_SIZE: usize = size_of::<Digest>();
}

// The layout is an ABI (docs/reloc-args.md): pin every offset so that a change breaks the build.
const _: () = assert!(offsets::MAGIC == 0x00);
const _: () = assert!(offsets::VERSION == 0x08);
const _: () = assert!(offsets::SIZE == 0x0c);
const _: () = assert!(offsets::HEAD == 0x10);
const _: () = assert!(offsets::ENTRY == 0x18);
const _: () = assert!(offsets::REGS == 0x20);
const _: () = assert!(offsets::EL == 0x40);
const _: () = assert!(offsets::FLAGS == 0x48);
const _: () = assert!(offsets::TTBR0 == 0x50);
const _: () = assert!(offsets::TCR == 0x58);
const _: () = assert!(offsets::MAIR == 0x60);
const _: () = assert!(offsets::CONSOLE == 0x68);
const _: () = assert!(offsets::DIGESTS == 0x70);
const _: () = assert!(offsets::DIGEST_COUNT == 0x78);
const _: () = assert!(offsets::BLOCK_SIZE == 0x80);
const _: () = assert!(SIZE == 0x80);
const _: () = assert!(offsets::DIGEST_START == 0x00);
const _: () = assert!(offsets::DIGEST_LEN == 0x08);
const _: () = assert!(offsets::DIGEST_HASH64 == 0x10);
const _: () = assert!(offsets::DIGEST_SIZE == 0x18);

/// Why the engine would reject a block ([`validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ArgError {
    /// `magic` is not [`MAGIC`].
    #[error(
        "argument block magic {found:#018x} at offset 0x0 is not {MAGIC:#018x} (\"HYPRELOC\")"
    )]
    BadMagic {
        /// The `magic` field.
        found: u64,
    },
    /// `version` is not one this engine knows.
    #[error("argument block version {found} at offset 0x8 is unknown (this engine knows version {VERSION})")]
    BadVersion {
        /// The `version` field.
        found: u32,
    },
    /// `size` is not the size of the block's version.
    #[error("argument block size {found:#x} at offset 0xc is not {SIZE:#x}, the size of version {VERSION}")]
    BadSize {
        /// The `size` field.
        found: u32,
    },
    /// `el` is neither 1 nor 2.
    #[error("argument block el {el} at offset 0x40 is not 1 or 2")]
    BadEl {
        /// The `el` field.
        el: u64,
    },
    /// `entry` is 0 or not 4-byte aligned.
    #[error("argument block entry {entry:#x} at offset 0x18 is zero or not 4-byte aligned")]
    BadEntry {
        /// The `entry` field.
        entry: u64,
    },
    /// [`FLAG_MMU`] is set but `ttbr0` is 0 or not 4 KiB aligned.
    #[error("argument block has FLAG_MMU but ttbr0 {ttbr0:#x} at offset 0x50 is zero or not 4 KiB aligned")]
    BadTtbr0 {
        /// The `ttbr0` field.
        ttbr0: u64,
    },
}

impl ArgBlock {
    /// A block of this [`VERSION`] with `magic`, `version` and `size` filled in and every other field 0.
    pub const fn new() -> Self {
        Self {
            magic: MAGIC,
            version: VERSION,
            size: SIZE,
            head: 0,
            entry: 0,
            regs: [0; 4],
            el: 0,
            flags: 0,
            ttbr0: 0,
            tcr: 0,
            mair: 0,
            console: 0,
            digests: 0,
            digest_count: 0,
        }
    }

    /// The block as the engine reads it from memory: little-endian, at [`offsets`].
    pub fn to_bytes(&self) -> [u8; offsets::BLOCK_SIZE] {
        let mut b = [0; offsets::BLOCK_SIZE];
        put(&mut b, offsets::MAGIC, &self.magic.to_le_bytes());
        put(&mut b, offsets::VERSION, &self.version.to_le_bytes());
        put(&mut b, offsets::SIZE, &self.size.to_le_bytes());
        put(&mut b, offsets::HEAD, &self.head.to_le_bytes());
        put(&mut b, offsets::ENTRY, &self.entry.to_le_bytes());
        for (i, r) in self.regs.iter().enumerate() {
            put(&mut b, offsets::REGS + 8 * i, &r.to_le_bytes());
        }
        put(&mut b, offsets::EL, &self.el.to_le_bytes());
        put(&mut b, offsets::FLAGS, &self.flags.to_le_bytes());
        put(&mut b, offsets::TTBR0, &self.ttbr0.to_le_bytes());
        put(&mut b, offsets::TCR, &self.tcr.to_le_bytes());
        put(&mut b, offsets::MAIR, &self.mair.to_le_bytes());
        put(&mut b, offsets::CONSOLE, &self.console.to_le_bytes());
        put(&mut b, offsets::DIGESTS, &self.digests.to_le_bytes());
        put(
            &mut b,
            offsets::DIGEST_COUNT,
            &self.digest_count.to_le_bytes(),
        );
        b
    }

    /// Reads a block from its memory image (the inverse of [`to_bytes`]). It
    /// checks nothing: pass the result to [`validate`].
    ///
    /// [`to_bytes`]: Self::to_bytes
    pub fn from_bytes(b: &[u8; offsets::BLOCK_SIZE]) -> Self {
        Self {
            magic: get64(b, offsets::MAGIC),
            version: get32(b, offsets::VERSION),
            size: get32(b, offsets::SIZE),
            head: get64(b, offsets::HEAD),
            entry: get64(b, offsets::ENTRY),
            regs: core::array::from_fn(|i| get64(b, offsets::REGS + 8 * i)),
            el: get64(b, offsets::EL),
            flags: get64(b, offsets::FLAGS),
            ttbr0: get64(b, offsets::TTBR0),
            tcr: get64(b, offsets::TCR),
            mair: get64(b, offsets::MAIR),
            console: get64(b, offsets::CONSOLE),
            digests: get64(b, offsets::DIGESTS),
            digest_count: get64(b, offsets::DIGEST_COUNT),
        }
    }
}

impl Digest {
    /// The digest as the engine reads it from memory: little-endian, at the `DIGEST_*`
    /// [`offsets`].
    pub fn to_bytes(&self) -> [u8; offsets::DIGEST_SIZE] {
        let mut b = [0; offsets::DIGEST_SIZE];
        put(&mut b, offsets::DIGEST_START, &self.start.to_le_bytes());
        put(&mut b, offsets::DIGEST_LEN, &self.len.to_le_bytes());
        put(&mut b, offsets::DIGEST_HASH64, &self.hash64.to_le_bytes());
        b
    }
}

/// Checks `block` before the point of no return, in this order: magic, version, size
/// (== [`SIZE`]) -- the checks the engine itself repeats -- then what only the firmware
/// checks: `el` (1 or 2), `entry` (non-zero, 4-byte aligned), and with [`FLAG_MMU`] `ttbr0`
/// (non-zero, 4 KiB aligned).
///
/// # Errors
/// The first check that fails, as an [`ArgError`] naming the field and its value.
pub fn validate(block: &ArgBlock) -> Result<(), ArgError> {
    if block.magic != MAGIC {
        return Err(ArgError::BadMagic { found: block.magic });
    }
    if block.version != VERSION {
        return Err(ArgError::BadVersion {
            found: block.version,
        });
    }
    if block.size != SIZE {
        return Err(ArgError::BadSize { found: block.size });
    }
    if !matches!(block.el, 1 | 2) {
        return Err(ArgError::BadEl { el: block.el });
    }
    if block.entry == 0 || !block.entry.is_multiple_of(4) {
        return Err(ArgError::BadEntry { entry: block.entry });
    }
    if block.flags & FLAG_MMU != 0
        && (block.ttbr0 == 0 || !block.ttbr0.is_multiple_of(crate::PAGE_SIZE))
    {
        return Err(ArgError::BadTtbr0 { ttbr0: block.ttbr0 });
    }
    Ok(())
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

fn get64(b: &[u8; offsets::BLOCK_SIZE], off: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

fn get32(b: &[u8; offsets::BLOCK_SIZE], off: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ArgBlock {
        ArgBlock {
            head: 0x4800_0002,
            entry: 0x4020_0000,
            regs: [0x4400_0000, 0, 0, 0],
            el: 2,
            flags: FLAG_MMU,
            ttbr0: 0x4810_0000,
            tcr: 0x8080_3519,
            mair: 0xff04,
            ..ArgBlock::new()
        }
    }

    #[test]
    fn magic_spells_hypreloc() {
        assert_eq!(&MAGIC.to_le_bytes(), b"HYPRELOC");
        assert_eq!(SIZE, 0x80);
    }

    #[test]
    fn good_block_passes() {
        assert_eq!(validate(&good()), Ok(()));
        // Without FLAG_MMU the translation fields are not looked at.
        let nommu = ArgBlock {
            flags: 0,
            ttbr0: 0,
            tcr: 0,
            mair: 0,
            el: 1,
            ..good()
        };
        assert_eq!(validate(&nommu), Ok(()));
    }

    #[test]
    fn each_check_fails_with_its_value() {
        let cases = [
            (
                ArgBlock {
                    magic: 0x1234,
                    ..good()
                },
                ArgError::BadMagic { found: 0x1234 },
            ),
            (
                ArgBlock {
                    version: 4,
                    ..good()
                },
                ArgError::BadVersion { found: 4 },
            ),
            (
                ArgBlock {
                    size: 0x88,
                    ..good()
                },
                ArgError::BadSize { found: 0x88 },
            ),
            (ArgBlock { el: 3, ..good() }, ArgError::BadEl { el: 3 }),
            (ArgBlock { el: 0, ..good() }, ArgError::BadEl { el: 0 }),
            (
                ArgBlock { entry: 0, ..good() },
                ArgError::BadEntry { entry: 0 },
            ),
            (
                ArgBlock {
                    entry: 0x4020_0002,
                    ..good()
                },
                ArgError::BadEntry { entry: 0x4020_0002 },
            ),
            (
                ArgBlock { ttbr0: 0, ..good() },
                ArgError::BadTtbr0 { ttbr0: 0 },
            ),
            (
                ArgBlock {
                    ttbr0: 0x4810_0800,
                    ..good()
                },
                ArgError::BadTtbr0 { ttbr0: 0x4810_0800 },
            ),
        ];
        for (block, err) in cases {
            assert_eq!(validate(&block), Err(err));
        }
    }

    #[test]
    fn only_version_3_blocks_are_accepted() {
        // Versions 1 and 2 carried CRC-32C digests: an engine of version 3 would misread
        // them, so it refuses them.
        for version in [0, 1, 2, 4] {
            let b = ArgBlock { version, ..good() };
            assert_eq!(validate(&b), Err(ArgError::BadVersion { found: version }));
        }
        assert_eq!(validate(&good()), Ok(()));
    }

    #[test]
    fn checks_run_in_engine_order() {
        // A block wrong everywhere reports the magic first, then the version, and so on.
        let mut b = ArgBlock {
            magic: 0,
            version: 0,
            size: 0,
            el: 0,
            entry: 0,
            flags: FLAG_MMU,
            ttbr0: 0,
            ..good()
        };
        assert!(matches!(validate(&b), Err(ArgError::BadMagic { .. })));
        b.magic = MAGIC;
        assert!(matches!(validate(&b), Err(ArgError::BadVersion { .. })));
        b.version = VERSION;
        assert!(matches!(validate(&b), Err(ArgError::BadSize { .. })));
        b.size = SIZE;
        assert!(matches!(validate(&b), Err(ArgError::BadEl { .. })));
        b.el = 2;
        assert!(matches!(validate(&b), Err(ArgError::BadEntry { .. })));
        b.entry = 0x4000_0000;
        assert!(matches!(validate(&b), Err(ArgError::BadTtbr0 { .. })));
    }

    #[test]
    fn bytes_follow_the_offsets() {
        let b = good();
        let bytes = b.to_bytes();
        assert_eq!(&bytes[offsets::MAGIC..][..8], b"HYPRELOC");
        assert_eq!(bytes[offsets::VERSION], 3);
        assert_eq!(bytes[offsets::SIZE], 0x80);
        assert_eq!(get64(&bytes, offsets::HEAD), 0x4800_0002);
        assert_eq!(get64(&bytes, offsets::REGS), 0x4400_0000);
        assert_eq!(get64(&bytes, offsets::MAIR), 0xff04);
        assert_eq!(ArgBlock::from_bytes(&bytes), b);

        let d = Digest {
            start: 0x4020_0000,
            len: 0x1234,
            hash64: 0x0123_4567_89ab_cdef,
        };
        let db = d.to_bytes();
        assert_eq!(
            &db[offsets::DIGEST_HASH64..][..8],
            &0x0123_4567_89ab_cdefu64.to_le_bytes()
        );
    }

    #[test]
    fn errors_name_the_values_in_hex() {
        let msg = ArgError::BadEntry { entry: 0x4020_0002 }.to_string();
        assert!(msg.contains("0x40200002"), "{msg}");
    }
}
