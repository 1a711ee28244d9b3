//! Writing a FIT (U-Boot's Flattened Image Tree) holding a kernel and,
//! optionally, an initrd and a DTB, for boards whose firmware loads the
//! payload as one FIT (the Raspberry Pi 4), and for QEMU virt's `-kernel`.
//!
//! `cargo xtask build --board rpi4 --kernel ...` writes its `payload.itb`
//! with [`write_fit`] ([`crate::rpi4::write_folder`]). The layout is
//! the one `mkimage -f` writes from an `.its` with embedded data, so that
//! `loader::fit` (which the tests here round-trip through) and U-Boot's
//! `mkimage -l` both read it.

use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::ToPropertyValue;
use sha2::{Digest as _, Sha256};

/// A property whose name is a constant of this module, so valid.
fn prop<T: ToPropertyValue>(name: &str, value: T) -> DeviceTreeProperty {
    DeviceTreeProperty::new_unchecked(name, value)
}

/// One image node: `data`, its metadata and a `hash-1` sha256 node.
fn image(name: &str, kind: &str, os: Option<&str>, data: &[u8]) -> DeviceTreeNode {
    let mut node = DeviceTreeNode::new_unchecked(name);
    node.add_property(prop("description", name));
    node.add_property(prop("data", data));
    node.add_property(prop("type", kind));
    node.add_property(prop("arch", "arm64"));
    if let Some(os) = os {
        node.add_property(prop("os", os));
    }
    node.add_property(prop("compression", "none"));
    let digest: [u8; 32] = Sha256::digest(data).into();
    let mut hash = DeviceTreeNode::new_unchecked("hash-1");
    hash.add_property(prop("algo", "sha256"));
    hash.add_property(prop("value", digest));
    node.add_child(hash);
    node
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
    let mut images = DeviceTreeNode::new_unchecked("images");
    let mut conf = DeviceTreeNode::new_unchecked("conf-1");
    conf.add_property(prop("description", description));

    images.add_child(image("kernel", "kernel", Some("linux"), kernel));
    conf.add_property(prop("kernel", "kernel"));
    if let Some(ramdisk) = ramdisk {
        images.add_child(image("ramdisk", "ramdisk", Some("linux"), ramdisk));
        conf.add_property(prop("ramdisk", "ramdisk"));
    }
    if let Some(fdt) = fdt {
        images.add_child(image("fdt-1", "flat_dt", None, fdt));
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
    tree.to_dtb()
}

#[cfg(test)]
mod tests {
    use loader::fit::{verify_all, Fit, FitError, ImageKind};

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
