//! Writing a FIT (U-Boot's Flattened Image Tree) holding a kernel and,
//! optionally, an initrd and a DTB, for boards whose firmware loads the
//! payload as one FIT (the Raspberry Pi 4), and for QEMU virt's `-kernel`.
//!
//! [`write_fit`] writes the layout `mkimage -f` writes from an `.its` with
//! embedded data and sha256 hashes. [`write_fit_with`] can also write what
//! `mkimage -E -B <align>` writes: each image's bytes after the DTB, at
//! `data-offset` from its end, every image and the DTB itself padded to the
//! alignment (U-Boot's tools/fit_image.c, fit_extract_data(): the DTB's
//! `totalsize` is rounded up, so a reader's "`totalsize` rounded to 4 plus
//! `data-offset`" lands on the boundary); and `crc32` hashes instead of
//! `sha256`. `cargo xtask build --board rpi4 --kernel ...` writes its
//! `payload.itb` that way ([`crate::rpi4::write_folder`], [`FitLayout::PI`]):
//! the kernel's and the initrd's bytes start on pages of the FIT, so that
//! the firmware's engine copies them from there, and CRC-32 costs a fraction
//! of SHA-256 (docs/fit.md). `loader::fit` (which the tests here round-trip
//! through) and U-Boot's `mkimage -l` read both.

use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::ToPropertyValue;
use sha2::{Digest as _, Sha256};

/// A property whose name is a constant of this module, so valid.
fn prop<T: ToPropertyValue>(name: &str, value: T) -> DeviceTreeProperty {
    DeviceTreeProperty::new_unchecked(name, value)
}

/// The hash algorithm of every image's `hash-1` node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitHash {
    /// `sha256`: 32 bytes.
    Sha256,
    /// `crc32`: U-Boot's (zlib's CRC-32), 4 bytes big-endian.
    Crc32,
}

/// How [`write_fit_with`] lays a FIT out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitLayout {
    /// Every image's hash.
    pub hash: FitHash,
    /// `Some(align)`: the images' bytes external, `mkimage -E -B align` style (a power
    /// of two, at least 4); `None`: embedded in `data`.
    pub external_align: Option<u32>,
}

impl FitLayout {
    /// [`write_fit`]'s: embedded data, sha256.
    pub const EMBEDDED_SHA256: Self = Self {
        hash: FitHash::Sha256,
        external_align: None,
    };
    /// The Pi 4 folder's: external data on 4 KiB pages, crc32.
    pub const PI: Self = Self {
        hash: FitHash::Crc32,
        external_align: Some(4096),
    };
}

/// One image node: its metadata, a `hash-1` node, and `data` or (with `external`, its
/// offset in the external data) `data-offset` and `data-size`.
fn image(
    name: &str,
    kind: &str,
    os: Option<&str>,
    data: &[u8],
    hash: FitHash,
    external: Option<u32>,
) -> DeviceTreeNode {
    let mut node = DeviceTreeNode::new_unchecked(name);
    node.add_property(prop("description", name));
    match external {
        None => node.add_property(prop("data", data)),
        Some(offset) => {
            node.add_property(prop("data-offset", offset));
            node.add_property(prop("data-size", size32(data.len())));
        }
    }
    node.add_property(prop("type", kind));
    node.add_property(prop("arch", "arm64"));
    if let Some(os) = os {
        node.add_property(prop("os", os));
    }
    node.add_property(prop("compression", "none"));
    let mut node_hash = DeviceTreeNode::new_unchecked("hash-1");
    match hash {
        FitHash::Sha256 => {
            let digest: [u8; 32] = Sha256::digest(data).into();
            node_hash.add_property(prop("algo", "sha256"));
            node_hash.add_property(prop("value", digest));
        }
        FitHash::Crc32 => {
            node_hash.add_property(prop("algo", "crc32"));
            node_hash.add_property(prop("value", crc32fast::hash(data)));
        }
    }
    node.add_child(node_hash);
    node
}

/// A length as the FDT's 32-bit cell.
fn size32(len: usize) -> u32 {
    u32::try_from(len).expect("a FIT image is at most 4 GiB")
}

/// A FIT with the images embedded: `/images/kernel` (type `kernel`, os
/// `linux`), `/images/ramdisk` (type `ramdisk`, os `linux`) and
/// `/images/fdt-1` (type `flat_dt`) when given, each with `arch = "arm64"`,
/// `compression = "none"` and a sha256 `hash-1`; and
/// `/configurations/conf-1`, the `default`, naming them.
///
/// No `load` or `entry`: the firmware places the kernel as booting.rst asks
/// (from its `Image` header), and no `timestamp`, so the output depends only
/// on the inputs.
///
/// # Panics
/// If the FIT would exceed 4 GiB (the FDT format's 32-bit sizes).
pub fn write_fit(
    kernel: &[u8],
    ramdisk: Option<&[u8]>,
    fdt: Option<&[u8]>,
    description: &str,
) -> Vec<u8> {
    write_fit_with(
        kernel,
        ramdisk,
        fdt,
        description,
        FitLayout::EMBEDDED_SHA256,
    )
}

/// [`write_fit`] laid out as `layout` says: the same nodes, with `crc32` hashes and the
/// images' bytes external and aligned if asked.
///
/// # Panics
/// As [`write_fit`], or for an `external_align` that is not a power of two of at least 4.
pub fn write_fit_with(
    kernel: &[u8],
    ramdisk: Option<&[u8]>,
    fdt: Option<&[u8]>,
    description: &str,
    layout: FitLayout,
) -> Vec<u8> {
    if let Some(a) = layout.external_align {
        assert!(a.is_power_of_two() && a >= 4, "alignment {a}");
    }
    let align = layout.external_align.map_or(1, |a| a as usize);
    let mut images = DeviceTreeNode::new_unchecked("images");
    let mut conf = DeviceTreeNode::new_unchecked("conf-1");
    conf.add_property(prop("description", description));
    // The external data: each image's bytes padded to the alignment, in node order.
    let mut external = Vec::new();
    let mut add = |name: &str, kind: &str, os: Option<&str>, data: &[u8]| {
        let offset = layout.external_align.map(|_| {
            let at = size32(external.len());
            external.extend_from_slice(data);
            external.resize(external.len().next_multiple_of(align), 0);
            at
        });
        images.add_child(image(name, kind, os, data, layout.hash, offset));
    };

    add("kernel", "kernel", Some("linux"), kernel);
    conf.add_property(prop("kernel", "kernel"));
    if let Some(ramdisk) = ramdisk {
        add("ramdisk", "ramdisk", Some("linux"), ramdisk);
        conf.add_property(prop("ramdisk", "ramdisk"));
    }
    if let Some(fdt) = fdt {
        add("fdt-1", "flat_dt", None, fdt);
        conf.add_property(prop("fdt", "fdt-1"));
    }

    let mut configs = DeviceTreeNode::new_unchecked("configurations");
    configs.add_property(prop("default", "conf-1"));
    configs.add_child(conf);

    let mut tree = DeviceTree::new();
    tree.root.add_property(prop("description", description));
    // mkimage writes this too; image addresses (none here) are one cell.
    tree.root.add_property(prop("#address-cells", 1u32));
    tree.root.add_child(images);
    tree.root.add_child(configs);
    let mut fit = tree.to_dtb();
    if layout.external_align.is_some() {
        // The DTB padded to the alignment, its totalsize saying so, then the data.
        fit.resize(fit.len().next_multiple_of(align), 0);
        let total = size32(fit.len()).to_be_bytes();
        fit[4..8].copy_from_slice(&total);
        fit.extend_from_slice(&external);
    }
    fit
}

#[cfg(test)]
mod tests {
    use loader::fit::{verify_all, Fit, FitError, HashValue, ImageKind};

    use super::*;

    #[test]
    fn round_trips_through_loader() {
        let kernel = b"kernel bytes".repeat(1000);
        let ramdisk = b"070701 cpio".repeat(77);
        let dtb = b"\xd0\x0d\xfe\xed".repeat(9);
        let fit = write_fit(&kernel, Some(&ramdisk), Some(&dtb), "hypstub test");
        let parsed = Fit::parse(&fit).unwrap();
        assert_eq!(parsed.default_name(), Ok("conf-1"));
        let config = parsed.default_config().unwrap();
        assert_eq!(config.description, Some("hypstub test"));
        assert_eq!(config.kernel.data, &kernel[..]);
        assert_eq!(config.kernel.kind, ImageKind::Kernel);
        assert_eq!(config.kernel.os, Some("linux"));
        assert_eq!(config.kernel.hashes.len(), 1);
        let rd = config.ramdisk.as_ref().unwrap();
        assert_eq!((rd.data, rd.kind), (&ramdisk[..], ImageKind::Ramdisk));
        let fdt = config.fdt.as_ref().unwrap();
        assert_eq!((fdt.data, fdt.kind), (&dtb[..], ImageKind::FlatDt));
        verify_all(&config).unwrap();
    }

    #[test]
    fn pi_layout_is_page_aligned_crc32_and_round_trips() {
        let kernel: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let ramdisk = b"070701 cpio".repeat(77);
        let dtb = b"\xd0\x0d\xfe\xed".repeat(9);
        let fit = write_fit_with(&kernel, Some(&ramdisk), Some(&dtb), "pi", FitLayout::PI);
        let parsed = Fit::parse(&fit).unwrap();
        let config = parsed.default_config().unwrap();
        let base = fit.as_ptr() as usize;
        for (image, data) in config.images().zip([&kernel[..], &ramdisk, &dtb]) {
            assert_eq!(image.data, data);
            assert_eq!(
                (image.data.as_ptr() as usize - base) % 4096,
                0,
                "{}",
                image.name
            );
            assert!(matches!(
                image.hashes[..],
                [loader::fit::Hash {
                    value: HashValue::Crc32(_),
                    ..
                }]
            ));
        }
        // The kernel's bytes on the first page after the DTB, the ramdisk's on the page
        // after the kernel's last; the file ends on a page too.
        let k = config.kernel.data.as_ptr() as usize - base;
        let r = config.ramdisk.as_ref().unwrap().data.as_ptr() as usize - base;
        assert_eq!(r, k + 12288);
        assert_eq!(fit.len() % 4096, 0);
        let v = loader::fit::verify_all_with(&config, &loader::fit::Hashers::PORTABLE).unwrap();
        assert_eq!(v.names(), "crc32");
    }

    #[test]
    fn pi_layout_corruption_is_caught() {
        let kernel = b"the kernel".repeat(500);
        let mut fit = write_fit_with(&kernel, None, None, "k", FitLayout::PI);
        let at = fit.windows(10).position(|w| w == b"the kernel").unwrap();
        fit[at + 4000] ^= 4;
        let config = Fit::parse(&fit).unwrap().default_config().unwrap();
        let e = verify_all(&config).unwrap_err();
        assert!(e.to_string().contains("crc32 mismatch"), "{e}");
    }

    #[test]
    fn kernel_only_and_deterministic() {
        let fit = write_fit(b"k", None, None, "k");
        assert_eq!(fit, write_fit(b"k", None, None, "k"));
        let config = Fit::parse(&fit).unwrap().default_config().unwrap();
        assert_eq!((config.ramdisk, config.fdt), (None, None));
        config.kernel.verify().unwrap();
    }

    #[test]
    fn corruption_is_caught() {
        let mut fit = write_fit(b"the kernel", None, None, "k");
        let at = fit.windows(10).position(|w| w == b"the kernel").unwrap();
        fit[at] = b'T';
        let config = Fit::parse(&fit).unwrap().default_config().unwrap();
        assert!(matches!(
            verify_all(&config),
            Err(FitError::HashMismatch { .. })
        ));
    }
}
