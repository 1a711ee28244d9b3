//! Reading a FIT (U-Boot's Flattened Image Tree): the kernel, initrd and DTB
//! of one configuration, and checking their hashes (SHA-256 or CRC-32).
//!
//! A FIT is a DTB (U-Boot doc/usage/fit/source_file_format.rst). Its
//! `/images` node has one child per image (`data`, `type`, `arch`,
//! `compression`, optional `load` and `entry`, and `hash-N` subnodes with
//! `algo` and `value`); its `/configurations` node names the `default`
//! configuration, whose `kernel`, `ramdisk` and `fdt` properties name images.
//! Image data is either in the `data` property or, as `mkimage -E` writes it,
//! after the DTB: `data-offset` bytes past its end (`totalsize` rounded up to
//! 4 bytes), or at `data-position` from the start of the FIT; `data-size`
//! gives its length either way.
//!
//! Deliberately narrow, so that it stays small and its checks strict: only
//! `compression = "none"`, only `arch = "arm64"`, only `sha256` and `crc32` hashes
//! (an unknown `algo` is an error, not skipped), one `fdt` per configuration (no
//! overlays), and no signatures (`signature-N` nodes are not read). Reading a
//! configuration checks its structure; [`Image::verify`] or [`verify_all`]
//! checks the bytes, and an image without any hash fails verification.
//!
//! `crc32` is U-Boot's CRC-32 (the zlib one, CRC-32/ISO-HDLC), its `value` four bytes
//! big-endian, as `mkimage` writes it. Like `sha256` without a signature it guards against
//! accidents (a bad copy, a truncated file, a flipped bit), not against an adversary; the
//! folder `cargo xtask build --board rpi4` writes uses it because it costs a fraction of
//! SHA-256 (docs/fit.md).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use dtoolkit::error::{FdtParseError, PropertyError};
use dtoolkit::fdt::{Fdt, FdtNode, FdtProperty};
use dtoolkit::{Node, Property};
use thiserror::Error;

use crate::dt::{FDT_HEADER_SIZE, FDT_MAGIC};
use crate::sha256::Compress;

/// How the hashes of a FIT's images are computed: SHA-256's compression function and a
/// CRC-32 update, each the portable code or one using the CPU's instructions.
#[derive(Debug, Clone, Copy)]
pub struct Hashers {
    /// SHA-256's compression function ([`crate::sha256::digest_with`]).
    pub sha256: Compress,
    /// CRC-32 over more bytes: the running CRC (the finished value of the bytes so far, 0
    /// at the start) and the next bytes, to the new value ([`crc32_portable`]).
    pub crc32: fn(u32, &[u8]) -> u32,
}

impl Hashers {
    /// The portable code for both.
    pub const PORTABLE: Self = Self {
        sha256: crate::sha256::compress_portable,
        crc32: crc32_portable,
    };
}

/// CRC-32/ISO-HDLC, zlib's and U-Boot's `crc32`, by the `crc` crate's table-driven code.
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32 (zlib's, as U-Boot's `crc32` hash) of `data` after `crc`, with the `crc` crate's
/// portable code (plain table lookups: no architecture-specific code, which on the
/// soft-float target could not use SIMD anyway).
#[must_use]
pub fn crc32_portable(crc: u32, data: &[u8]) -> u32 {
    // The register holds the complement of the finished value (init and xorout are all
    // ones); `crc` takes it bit-reflected, as this algorithm's register is.
    let mut d = CRC32.digest_with_initial((!crc).reverse_bits());
    d.update(data);
    d.finalize()
}

/// A hash algorithm a FIT's `hash-N` node may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    /// `sha256`.
    Sha256,
    /// `crc32`.
    Crc32,
}

impl HashAlgo {
    /// Its `algo` name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Crc32 => "crc32",
        }
    }
}

/// A hash value: a SHA-256 digest or a CRC-32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashValue {
    /// A SHA-256 digest.
    Sha256(Sha256Digest),
    /// A CRC-32.
    Crc32(u32),
}

impl HashValue {
    /// Its algorithm.
    #[must_use]
    pub fn algo(&self) -> HashAlgo {
        match self {
            Self::Sha256(_) => HashAlgo::Sha256,
            Self::Crc32(_) => HashAlgo::Crc32,
        }
    }
}

impl fmt::Display for HashValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha256(d) => d.fmt(f),
            Self::Crc32(c) => write!(f, "{c:08x}"),
        }
    }
}

/// Offset of `totalsize` in the FDT header.
const TOTALSIZE_OFFSET: usize = 4;

/// The only architecture accepted (U-Boot's name for AArch64).
const ARCH: &str = "arm64";

/// A SHA-256 digest, shown as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// What is wrong with a FIT, or with the configuration or image asked for.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FitError {
    /// The bytes cannot even hold an FDT header.
    #[error("FIT of {len} bytes is smaller than the {FDT_HEADER_SIZE}-byte FDT header")]
    TooSmall {
        /// Length of the bytes given.
        len: usize,
    },
    /// The bytes do not start with the FDT magic number.
    #[error("not a FIT: bad magic {found:#010x} at offset 0 (expected {FDT_MAGIC:#010x})")]
    BadMagic {
        /// The value found at offset 0.
        found: u32,
    },
    /// The header's `totalsize` is more than the bytes given.
    #[error("FIT totalsize {totalsize} bytes (offset 0x4) exceeds the {len} bytes given")]
    TooLarge {
        /// The header's `totalsize`.
        totalsize: usize,
        /// Length of the bytes given.
        len: usize,
    },
    /// `dtoolkit` found the header or structure block inconsistent.
    #[error("malformed FIT: {0}")]
    Malformed(FdtParseError),
    /// A well-formed DTB without `/images`.
    #[error("not a FIT: the DTB has no /images node")]
    NoImages,
    /// No `/configurations` node.
    #[error("FIT has no /configurations node")]
    NoConfigurations,
    /// `/configurations` has no `default`.
    #[error("FIT node /configurations has no default property")]
    NoDefault,
    /// The configuration asked for does not exist.
    #[error("FIT has no configuration /configurations/{name}")]
    NoConfig {
        /// Name of the configuration.
        name: String,
    },
    /// The configuration names no kernel.
    #[error("FIT has no kernel: /configurations/{config} has no kernel property")]
    NoKernel {
        /// Name of the configuration.
        config: String,
    },
    /// The configuration names an image that `/images` does not have.
    #[error(
        "FIT configuration {config} names {role} image \"{image}\", which /images does not have"
    )]
    NoImage {
        /// Name of the configuration.
        config: String,
        /// `kernel`, `ramdisk` or `fdt`.
        role: &'static str,
        /// The image name given.
        image: String,
    },
    /// The configuration lists more than one DTB (base plus overlays).
    #[error("FIT configuration {config} lists {count} fdt images; overlays are not supported")]
    FdtOverlays {
        /// Name of the configuration.
        config: String,
        /// How many it lists.
        count: usize,
    },
    /// A property has the wrong length or is not a string.
    #[error("FIT property {path}: {problem}")]
    BadProperty {
        /// Path of the property.
        path: String,
        /// What is wrong with its value.
        problem: PropertyError,
    },
    /// A required property is missing.
    #[error("FIT property {path} is missing")]
    MissingProperty {
        /// Path of the property.
        path: String,
    },
    /// An image is used in a role its `type` does not fit.
    #[error("FIT image {image} is used as the {role} but has type \"{found}\" (expected \"{expected}\")")]
    WrongType {
        /// Name of the image.
        image: String,
        /// `kernel`, `ramdisk` or `fdt`.
        role: &'static str,
        /// The `type` found.
        found: String,
        /// The `type` the role needs.
        expected: &'static str,
    },
    /// An image for another architecture.
    #[error("FIT image {image} has arch \"{found}\" (expected \"{ARCH}\")")]
    Arch {
        /// Name of the image.
        image: String,
        /// The `arch` found.
        found: String,
    },
    /// A compressed image.
    #[error("FIT image {image} has compression \"{found}\"; only \"none\" is supported")]
    Compression {
        /// Name of the image.
        image: String,
        /// The `compression` found.
        found: String,
    },
    /// An image with neither embedded nor external data.
    #[error("FIT image {image} has no data, data-offset or data-position property")]
    NoData {
        /// Name of the image.
        image: String,
    },
    /// External data that does not lie within the bytes given.
    #[error("FIT image {image}: external data at {start:#x} + {size:#x} lies outside the {len:#x}-byte FIT")]
    DataOutOfBounds {
        /// Name of the image.
        image: String,
        /// Offset of the data from the start of the FIT.
        start: u64,
        /// `data-size`.
        size: u64,
        /// Length of the bytes given.
        len: usize,
    },
    /// A hash node with an algorithm other than sha256 and crc32.
    #[error("FIT image {image} {hash}: algo \"{algo}\" is not supported (only sha256 and crc32)")]
    HashAlgo {
        /// Name of the image.
        image: String,
        /// Name of the hash node.
        hash: String,
        /// The `algo` found.
        algo: String,
    },
    /// An image with no hash node, asked to verify.
    #[error("FIT image {image} has no hash to verify")]
    NoHash {
        /// Name of the image.
        image: String,
    },
    /// An image whose data does not match its hash.
    #[error("FIT image {image} {hash}: {} mismatch: expected {expected}, computed {computed}", expected.algo().name())]
    HashMismatch {
        /// Name of the image.
        image: String,
        /// Name of the hash node.
        hash: String,
        /// The value in the FIT.
        expected: HashValue,
        /// The value computed over the data (same algorithm).
        computed: HashValue,
    },
}

/// What an image is, from its `type` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `kernel`: an OS kernel with a load address.
    Kernel,
    /// `kernel_noload`: an OS kernel that runs where it is put.
    KernelNoload,
    /// `ramdisk`: an initial RAM disk.
    Ramdisk,
    /// `flat_dt`: a device tree blob.
    FlatDt,
}

impl ImageKind {
    /// The kind named by a `type` value, if it is one of these.
    fn from_type(value: &str) -> Option<Self> {
        match value {
            "kernel" => Some(Self::Kernel),
            "kernel_noload" => Some(Self::KernelNoload),
            "ramdisk" => Some(Self::Ramdisk),
            "flat_dt" => Some(Self::FlatDt),
            _ => None,
        }
    }
}

/// One `hash-N` node of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hash<'a> {
    /// Name of the node (`hash-1`).
    pub name: &'a str,
    /// Its `value`, of the node's `algo`.
    pub value: HashValue,
}

/// One image of a configuration, its data borrowed from the FIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image<'a> {
    /// Name of the node under `/images`.
    pub name: &'a str,
    /// The image's bytes (embedded or external).
    pub data: &'a [u8],
    /// Its `type`.
    pub kind: ImageKind,
    /// Its `description`, if any.
    pub description: Option<&'a str>,
    /// Its `os`, if any.
    pub os: Option<&'a str>,
    /// Its `load` address, if any.
    pub load: Option<u64>,
    /// Its `entry` address, if any.
    pub entry: Option<u64>,
    /// Its hashes, in node order (sha256 or crc32).
    pub hashes: Vec<Hash<'a>>,
}

impl Image<'_> {
    /// Checks every hash of the image against its data.
    ///
    /// # Errors
    /// The image has no hash ([`FitError::NoHash`]), or a hash does not
    /// match ([`FitError::HashMismatch`]).
    pub fn verify(&self) -> Result<(), FitError> {
        self.verify_with(&Hashers::PORTABLE).map(|_| ())
    }

    /// [`verify`](Self::verify) with the hashes computed by `hashers` (the portable code,
    /// or code using the CPU's SHA-256 and CRC-32 instructions). Each algorithm the image's
    /// hash nodes name is computed once over its data. Returns which algorithms were checked.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_with(&self, hashers: &Hashers) -> Result<Verified, FitError> {
        if self.hashes.is_empty() {
            return Err(FitError::NoHash {
                image: self.name.into(),
            });
        }
        let mut sha256 = None;
        let mut crc32 = None;
        let mut verified = Verified::default();
        for hash in &self.hashes {
            let computed = match hash.value {
                HashValue::Sha256(_) => {
                    verified.sha256 = true;
                    *sha256.get_or_insert_with(|| {
                        HashValue::Sha256(Sha256Digest(crate::sha256::digest_with(
                            hashers.sha256,
                            self.data,
                        )))
                    })
                }
                HashValue::Crc32(_) => {
                    verified.crc32 = true;
                    *crc32.get_or_insert_with(|| HashValue::Crc32((hashers.crc32)(0, self.data)))
                }
            };
            if hash.value != computed {
                return Err(FitError::HashMismatch {
                    image: self.name.into(),
                    hash: hash.name.into(),
                    expected: hash.value,
                    computed,
                });
            }
        }
        Ok(verified)
    }
}

/// Which algorithms a verification checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verified {
    /// At least one sha256 hash.
    pub sha256: bool,
    /// At least one crc32 hash.
    pub crc32: bool,
}

impl Verified {
    /// Both sets together.
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        Self {
            sha256: self.sha256 || other.sha256,
            crc32: self.crc32 || other.crc32,
        }
    }

    /// The algorithms, for a log line: `sha256`, `crc32`, `sha256 and crc32`, or `no hash`.
    #[must_use]
    pub fn names(self) -> &'static str {
        match (self.sha256, self.crc32) {
            (true, true) => "sha256 and crc32",
            (true, false) => "sha256",
            (false, true) => "crc32",
            (false, false) => "no hash",
        }
    }
}

/// One configuration: the images to boot together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config<'a> {
    /// Name of the node under `/configurations`.
    pub name: &'a str,
    /// Its `description`, if any.
    pub description: Option<&'a str>,
    /// The kernel (required).
    pub kernel: Image<'a>,
    /// The initrd, if the configuration names one.
    pub ramdisk: Option<Image<'a>>,
    /// The DTB, if the configuration names one.
    pub fdt: Option<Image<'a>>,
}

impl<'a> Config<'a> {
    /// The configuration's images: kernel, then ramdisk and fdt if present.
    pub fn images(&self) -> impl Iterator<Item = &Image<'a>> {
        core::iter::once(&self.kernel)
            .chain(self.ramdisk.as_ref())
            .chain(self.fdt.as_ref())
    }
}

/// Checks every image of `config` ([`Image::verify`]), kernel first.
///
/// # Errors
/// The first image that has no hash or does not match it.
pub fn verify_all(config: &Config<'_>) -> Result<(), FitError> {
    verify_all_with(config, &Hashers::PORTABLE).map(|_| ())
}

/// [`verify_all`] with the hashes computed by `hashers` ([`Image::verify_with`]); returns
/// which algorithms were checked, over all the images.
///
/// # Errors
/// As [`verify_all`].
pub fn verify_all_with(config: &Config<'_>, hashers: &Hashers) -> Result<Verified, FitError> {
    config.images().try_fold(Verified::default(), |v, i| {
        Ok(v.and(i.verify_with(hashers)?))
    })
}

/// A FIT whose DTB part has been checked, with the bytes that follow it
/// (external data).
#[derive(Debug, Clone, Copy)]
pub struct Fit<'a> {
    /// All the bytes given: the DTB and any external data after it.
    bytes: &'a [u8],
    /// The DTB part, validated by `Fdt::new`.
    fdt: Fdt<'a>,
    /// Its `totalsize`.
    totalsize: usize,
}

impl<'a> Fit<'a> {
    /// Checks the DTB at the start of `bytes` (which may go on past its
    /// `totalsize` with external data) and that it has `/images`.
    ///
    /// # Errors
    /// Too short for a header, bad magic, `totalsize` beyond `bytes`, a
    /// malformed blob, or no `/images` node.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FitError> {
        let Some(header) = bytes.first_chunk::<FDT_HEADER_SIZE>() else {
            return Err(FitError::TooSmall { len: bytes.len() });
        };
        let magic = be_u32(header, 0).unwrap_or_default();
        if magic != FDT_MAGIC {
            return Err(FitError::BadMagic { found: magic });
        }
        let totalsize = be_u32(header, TOTALSIZE_OFFSET).unwrap_or_default() as usize;
        let Some(blob) = bytes.get(..totalsize) else {
            return Err(FitError::TooLarge {
                totalsize,
                len: bytes.len(),
            });
        };
        let fdt = Fdt::new(blob).map_err(FitError::Malformed)?;
        if fdt.find_node("/images").is_none() {
            return Err(FitError::NoImages);
        }
        Ok(Self {
            bytes,
            fdt,
            totalsize,
        })
    }

    /// `dtoolkit`'s view of the DTB part.
    pub fn fdt(&self) -> Fdt<'a> {
        self.fdt
    }

    /// The name in `/configurations/default`.
    ///
    /// # Errors
    /// No `/configurations`, no `default`, or a `default` that is not a
    /// string.
    pub fn default_name(&self) -> Result<&'a str, FitError> {
        let configs = self
            .fdt
            .find_node("/configurations")
            .ok_or(FitError::NoConfigurations)?;
        let default = configs.property("default").ok_or(FitError::NoDefault)?;
        string(&default, || "/configurations/default".into())
    }

    /// The default configuration ([`Fit::config`] of [`Fit::default_name`]).
    ///
    /// # Errors
    /// As for those two.
    pub fn default_config(&self) -> Result<Config<'a>, FitError> {
        self.config(self.default_name()?)
    }

    /// The configuration `/configurations/<name>`, with its images read and
    /// checked (type for the role, arch, compression, data in bounds, hash
    /// algorithms); their data is not hashed until [`Image::verify`].
    ///
    /// # Errors
    /// A missing configuration or kernel, an image the configuration names
    /// that does not exist or does not pass those checks.
    pub fn config(&self, name: &str) -> Result<Config<'a>, FitError> {
        let configs = self
            .fdt
            .find_node("/configurations")
            .ok_or(FitError::NoConfigurations)?;
        let node = child(&configs, name).ok_or_else(|| FitError::NoConfig { name: name.into() })?;
        let name = node.name();
        let path = |prop: &str| format!("/configurations/{name}/{prop}");
        let description = optional_string(&node, "description", path)?;
        let kernel = self
            .role(&node, Role::Kernel)?
            .ok_or_else(|| FitError::NoKernel {
                config: name.into(),
            })?;
        Ok(Config {
            name,
            description,
            kernel,
            ramdisk: self.role(&node, Role::Ramdisk)?,
            fdt: self.role(&node, Role::Fdt)?,
        })
    }

    /// The image that configuration `config` names for `role`, if any.
    fn role(&self, config: &FdtNode<'a>, role: Role) -> Result<Option<Image<'a>>, FitError> {
        let Some(prop) = config.property(role.property()) else {
            return Ok(None);
        };
        let config_name = config.name();
        let path = || format!("/configurations/{config_name}/{}", role.property());
        let value = prop.value();
        // A string list (base DTB plus overlays) has a NUL before the last.
        let count = value.iter().filter(|&&b| b == 0).count();
        if role == Role::Fdt && count > 1 {
            return Err(FitError::FdtOverlays {
                config: config_name.into(),
                count,
            });
        }
        let image_name = string(&prop, path)?;
        let images = self.fdt.find_node("/images").ok_or(FitError::NoImages)?;
        let node = child(&images, image_name).ok_or_else(|| FitError::NoImage {
            config: config_name.into(),
            role: role.property(),
            image: image_name.into(),
        })?;
        self.image(&node, role).map(Some)
    }

    /// Reads and checks the image node `node` for `role`.
    fn image(&self, node: &FdtNode<'a>, role: Role) -> Result<Image<'a>, FitError> {
        let name = node.name();
        let path = |prop: &str| format!("/images/{name}/{prop}");

        let found = optional_string(node, "type", path)?
            .ok_or_else(|| FitError::MissingProperty { path: path("type") })?;
        let kind = ImageKind::from_type(found)
            .filter(|&kind| role.accepts(kind))
            .ok_or_else(|| FitError::WrongType {
                image: name.into(),
                role: role.property(),
                found: found.into(),
                expected: role.expected_type(),
            })?;

        // U-Boot checks the arch of kernels and ramdisks; a DTB's is taken
        // if given.
        match optional_string(node, "arch", path)? {
            Some(ARCH) => {}
            Some(found) => {
                return Err(FitError::Arch {
                    image: name.into(),
                    found: found.into(),
                })
            }
            None if role == Role::Fdt => {}
            None => return Err(FitError::MissingProperty { path: path("arch") }),
        }
        // An absent compression means none, as in U-Boot's fit_image_load().
        match optional_string(node, "compression", path)? {
            None | Some("none") => {}
            Some(found) => {
                return Err(FitError::Compression {
                    image: name.into(),
                    found: found.into(),
                })
            }
        }

        Ok(Image {
            name,
            data: self.data(node)?,
            kind,
            description: optional_string(node, "description", path)?,
            os: optional_string(node, "os", path)?,
            load: optional_address(node, "load", path)?,
            entry: optional_address(node, "entry", path)?,
            hashes: hashes(node)?,
        })
    }

    /// The image's data: external (`data-position` or `data-offset`, as
    /// U-Boot's fit_image_get_data_and_size() prefers them) or `data`.
    fn data(&self, node: &FdtNode<'a>) -> Result<&'a [u8], FitError> {
        let name = node.name();
        let path = |prop: &str| format!("/images/{name}/{prop}");
        let start = if let Some(position) = optional_u32(node, "data-position", path)? {
            u64::from(position)
        } else if let Some(offset) = optional_u32(node, "data-offset", path)? {
            // mkimage -E puts the data after the DTB, 4-byte aligned.
            (self.totalsize as u64).next_multiple_of(4) + u64::from(offset)
        } else if let Some(data) = node.property("data") {
            return Ok(bytes(&data));
        } else {
            return Err(FitError::NoData { image: name.into() });
        };
        let size =
            optional_u32(node, "data-size", path)?.ok_or_else(|| FitError::MissingProperty {
                path: path("data-size"),
            })?;
        let size = u64::from(size);
        let out_of_bounds = || FitError::DataOutOfBounds {
            image: name.into(),
            start,
            size,
            len: self.bytes.len(),
        };
        let end = start.checked_add(size).ok_or_else(out_of_bounds)?;
        let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
            return Err(out_of_bounds());
        };
        self.bytes.get(start..end).ok_or_else(out_of_bounds)
    }
}

/// The three places a configuration names images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Kernel,
    Ramdisk,
    Fdt,
}

impl Role {
    /// The configuration property naming the image.
    fn property(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Ramdisk => "ramdisk",
            Self::Fdt => "fdt",
        }
    }

    /// The `type` shown in errors.
    fn expected_type(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Ramdisk => "ramdisk",
            Self::Fdt => "flat_dt",
        }
    }

    /// Whether an image of `kind` can fill this role.
    fn accepts(self, kind: ImageKind) -> bool {
        matches!(
            (self, kind),
            (Self::Kernel, ImageKind::Kernel | ImageKind::KernelNoload)
                | (Self::Ramdisk, ImageKind::Ramdisk)
                | (Self::Fdt, ImageKind::FlatDt)
        )
    }
}

/// The `hash*` subnodes of an image (U-Boot matches the name prefix), each
/// required to be sha256 with a 32-byte value or crc32 with a 4-byte one (big-endian).
fn hashes<'a>(image: &FdtNode<'a>) -> Result<Vec<Hash<'a>>, FitError> {
    let image_name = image.name();
    let mut hashes = Vec::new();
    for node in image.children().filter(|c| c.name().starts_with("hash")) {
        let name = node.name();
        let path = |prop: &str| format!("/images/{image_name}/{name}/{prop}");
        let algo = optional_string(&node, "algo", path)?
            .ok_or_else(|| FitError::MissingProperty { path: path("algo") })?;
        let algo = match algo {
            "sha256" => HashAlgo::Sha256,
            "crc32" => HashAlgo::Crc32,
            _ => {
                return Err(FitError::HashAlgo {
                    image: image_name.into(),
                    hash: name.into(),
                    algo: algo.into(),
                })
            }
        };
        let value = node
            .property("value")
            .ok_or_else(|| FitError::MissingProperty {
                path: path("value"),
            })?;
        let bad = |problem| FitError::BadProperty {
            path: path("value"),
            problem,
        };
        let value = match algo {
            HashAlgo::Sha256 => {
                HashValue::Sha256(Sha256Digest(value.value_as::<[u8; 32]>().map_err(bad)?))
            }
            HashAlgo::Crc32 => HashValue::Crc32(value.value_as::<u32>().map_err(bad)?),
        };
        hashes.push(Hash { name, value });
    }
    Ok(hashes)
}

/// The child of `node` named exactly `name` (dtoolkit's lookup would also
/// match `name@unit`).
fn child<'a>(node: &FdtNode<'a>, name: &str) -> Option<FdtNode<'a>> {
    node.children().find(|c| c.name() == name)
}

/// A property's value as a NUL-terminated UTF-8 string without inner NULs,
/// borrowed from the FIT.
fn string<'a>(prop: &FdtProperty<'a>, path: impl FnOnce() -> String) -> Result<&'a str, FitError> {
    bytes(prop)
        .strip_suffix(b"\0")
        .filter(|s| !s.contains(&0))
        .and_then(|s| core::str::from_utf8(s).ok())
        .ok_or_else(|| FitError::BadProperty {
            path: path(),
            problem: PropertyError::InvalidString,
        })
}

/// A property's value, borrowed from the FIT (`Property::value` would
/// borrow it from `prop`).
fn bytes<'a>(prop: &FdtProperty<'a>) -> &'a [u8] {
    // Converting to bytes cannot fail.
    prop.value_as::<&'a [u8]>().unwrap_or_default()
}

/// A string property of `node`, if present.
fn optional_string<'a>(
    node: &FdtNode<'a>,
    name: &str,
    path: impl Fn(&str) -> String,
) -> Result<Option<&'a str>, FitError> {
    node.property(name)
        .map(|p| string(&p, || path(name)))
        .transpose()
}

/// A one-cell property of `node`, if present.
fn optional_u32(
    node: &FdtNode<'_>,
    name: &str,
    path: impl Fn(&str) -> String,
) -> Result<Option<u32>, FitError> {
    node.property(name)
        .map(|p| {
            p.value_as::<u32>()
                .map_err(|problem| FitError::BadProperty {
                    path: path(name),
                    problem,
                })
        })
        .transpose()
}

/// An address property of `node` (one or two cells, as mkimage writes
/// either), if present.
fn optional_address(
    node: &FdtNode<'_>,
    name: &str,
    path: impl Fn(&str) -> String,
) -> Result<Option<u64>, FitError> {
    let Some(prop) = node.property(name) else {
        return Ok(None);
    };
    match prop.value().len() {
        4 | 8 => Ok(Some(
            prop.value()
                .iter()
                .fold(0, |acc, &b| (acc << 8) | u64::from(b)),
        )),
        _ => Err(FitError::BadProperty {
            path: path(name),
            problem: PropertyError::InvalidLength,
        }),
    }
}

/// The big-endian `u32` at `at`, if the slice holds it.
fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    bytes.get(at..end)?.try_into().ok().map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    #[test]
    fn digest_is_shown_in_hex() {
        let mut d = [0u8; 32];
        d[0] = 0xab;
        d[31] = 0x01;
        let shown = Sha256Digest(d).to_string();
        assert_eq!(shown.len(), 64);
        assert!(shown.starts_with("ab00"));
        assert!(shown.ends_with("0001"));
    }

    #[test]
    fn roles_accept_their_types() {
        assert!(Role::Kernel.accepts(ImageKind::KernelNoload));
        assert!(!Role::Kernel.accepts(ImageKind::Ramdisk));
        assert!(!Role::Fdt.accepts(ImageKind::Kernel));
        assert_eq!(ImageKind::from_type("flat_dt"), Some(ImageKind::FlatDt));
        assert_eq!(ImageKind::from_type("firmware"), None);
    }
}
