//! `loader::fit` against FIT images built here with `dtoolkit`'s model, laid
//! out as `mkimage` lays them out (embedded data, or external data after the
//! DTB as `mkimage -E` writes it), and against corrupted copies of them.

use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::Property as _;
use loader::fit::{
    crc32_portable, verify_all, verify_all_with, Fit, FitError, HashValue, Hashers, ImageKind,
    Sha256Digest, Verified,
};
use sha2::{Digest as _, Sha256};

const KERNEL: &[u8] = b"KERNEL-IMAGE-BYTES-0123456789abcdef";
const RAMDISK: &[u8] = b"ramdisk: a cpio archive would be here";
const DTB: &[u8] = b"\xd0\x0d\xfe\xed pretend device tree";

fn prop<T: dtoolkit::ToPropertyValue>(name: &str, value: T) -> DeviceTreeProperty {
    DeviceTreeProperty::new(name, value).unwrap()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Where an image's bytes go.
#[derive(Clone, Copy)]
enum Layout {
    /// In its `data` property.
    Embedded,
    /// After the DTB, at `data-offset` from its 4-byte-aligned end.
    External,
    /// After the DTB, at `data-position` from the start of the FIT.
    Position,
}

/// A FIT under construction: images and one configuration, with knobs for
/// the tests to break it.
struct Builder {
    layout: Layout,
    /// `(node name, type, data)`.
    images: Vec<(&'static str, &'static str, Vec<u8>)>,
    /// `(property, image name)` of `conf-1`.
    config: Vec<(&'static str, &'static str)>,
    default: Option<&'static str>,
    compression: &'static str,
    algo: &'static str,
    /// A sha256 value whatever `algo` says.
    sha_value: bool,
    hash: bool,
}

impl Builder {
    fn new() -> Self {
        Self {
            layout: Layout::Embedded,
            images: vec![
                ("kernel", "kernel", KERNEL.to_vec()),
                ("ramdisk", "ramdisk", RAMDISK.to_vec()),
                ("fdt-1", "flat_dt", DTB.to_vec()),
            ],
            config: vec![
                ("kernel", "kernel"),
                ("ramdisk", "ramdisk"),
                ("fdt", "fdt-1"),
            ],
            default: Some("conf-1"),
            compression: "none",
            algo: "sha256",
            sha_value: false,
            hash: true,
        }
    }

    fn build(&self) -> Vec<u8> {
        let mut external = Vec::new();
        let mut images = DeviceTreeNode::new("images").unwrap();
        for (name, kind, data) in &self.images {
            let mut node = DeviceTreeNode::builder(*name)
                .unwrap()
                .property(prop("description", *name))
                .property(prop("type", *kind))
                .property(prop("arch", "arm64"))
                .property(prop("os", "linux"))
                .property(prop("compression", self.compression));
            if *kind == "kernel" {
                node = node
                    .property(prop("load", 0x8_0000u32))
                    .property(prop("entry", 0x8_0000u64));
            }
            if self.hash {
                let hash = DeviceTreeNode::builder("hash-1")
                    .unwrap()
                    .property(prop("algo", self.algo));
                let hash = if self.algo == "crc32" && !self.sha_value {
                    hash.property(prop("value", crc32fast::hash(data)))
                } else {
                    hash.property(prop("value", sha256(data)))
                };
                let hash = hash.build();
                node = node.child(hash);
            }
            node = match self.layout {
                Layout::Embedded => node.property(prop("data", data.clone())),
                Layout::External | Layout::Position => {
                    // Aligned like mkimage's, with no padding after the
                    // last image, so that every byte of the file matters.
                    external.resize(external.len().next_multiple_of(4), 0);
                    let offset = external.len() as u32;
                    external.extend_from_slice(data);
                    node.property(prop("data-offset", offset))
                        .property(prop("data-size", data.len() as u32))
                }
            };
            images.add_child(node.build());
        }
        let mut conf = DeviceTreeNode::builder("conf-1")
            .unwrap()
            .property(prop("description", "the only one"));
        for (role, image) in &self.config {
            conf = conf.property(prop(role, *image));
        }
        let mut configs = DeviceTreeNode::builder("configurations")
            .unwrap()
            .child(conf.build());
        if let Some(default) = self.default {
            configs = configs.property(prop("default", default));
        }
        let mut tree = DeviceTree::new();
        tree.root.add_property(prop("description", "test FIT"));
        tree.root.add_property(prop("#address-cells", 1u32));
        tree.root.add_child(images);
        tree.root.add_child(configs.build());

        if let Layout::Position = self.layout {
            // Swap data-offset for data-position first (the strings block
            // changes), then add the DTB's end, which values do not change.
            let images = tree.root.child_mut("images").unwrap();
            for node in images.children_mut() {
                let offset = node.remove_property("data-offset").unwrap();
                let offset: u32 = (&offset).value_as().unwrap();
                node.add_property(prop("data-position", offset));
            }
            let base = tree.to_dtb().len().next_multiple_of(4) as u32;
            let images = tree.root.child_mut("images").unwrap();
            for node in images.children_mut() {
                let position = node.property_mut("data-position").unwrap();
                let offset: u32 = (&*position).value_as().unwrap();
                position.set_value(base + offset);
            }
        }
        let mut fit = tree.to_dtb();
        if !external.is_empty() {
            fit.resize(fit.len().next_multiple_of(4), 0);
            fit.extend_from_slice(&external);
        }
        fit
    }
}

/// Parses, reads the default configuration and verifies it: everything a
/// board would do with the bytes.
fn load(bytes: &[u8]) -> Result<(), FitError> {
    let fit = Fit::parse(bytes)?;
    let config = fit.default_config()?;
    verify_all(&config)
}

#[test]
fn good_fit_verifies() {
    let bytes = Builder::new().build();
    let fit = Fit::parse(&bytes).unwrap();
    assert_eq!(fit.default_name(), Ok("conf-1"));
    let config = fit.default_config().unwrap();
    assert_eq!(config.name, "conf-1");
    assert_eq!(config.description, Some("the only one"));
    assert_eq!(config.kernel.name, "kernel");
    assert_eq!(config.kernel.data, KERNEL);
    assert_eq!(config.kernel.kind, ImageKind::Kernel);
    assert_eq!(config.kernel.os, Some("linux"));
    assert_eq!(config.kernel.load, Some(0x8_0000));
    assert_eq!(config.kernel.entry, Some(0x8_0000));
    assert_eq!(config.kernel.hashes.len(), 1);
    assert_eq!(config.kernel.hashes[0].name, "hash-1");
    assert_eq!(
        config.kernel.hashes[0].value,
        HashValue::Sha256(Sha256Digest(sha256(KERNEL)))
    );
    let ramdisk = config.ramdisk.as_ref().unwrap();
    assert_eq!((ramdisk.data, ramdisk.kind), (RAMDISK, ImageKind::Ramdisk));
    assert_eq!(ramdisk.load, None);
    let fdt = config.fdt.as_ref().unwrap();
    assert_eq!(
        (fdt.name, fdt.data, fdt.kind),
        ("fdt-1", DTB, ImageKind::FlatDt)
    );
    assert_eq!(config.images().count(), 3);
    for image in config.images() {
        image.verify().unwrap();
    }
    verify_all(&config).unwrap();
    assert_eq!(fit.config("conf-1"), Ok(config));
}

#[test]
fn kernel_only() {
    let mut b = Builder::new();
    b.config.retain(|(role, _)| *role == "kernel");
    let bytes = b.build();
    let config = Fit::parse(&bytes).unwrap().default_config().unwrap();
    assert_eq!((&config.ramdisk, &config.fdt), (&None, &None));
    verify_all(&config).unwrap();
}

#[test]
fn corrupted_data_byte_is_a_hash_mismatch() {
    let mut bytes = Builder::new().build();
    let at = bytes
        .windows(KERNEL.len())
        .position(|w| w == KERNEL)
        .unwrap();
    bytes[at + 3] ^= 0x20;
    let fit = Fit::parse(&bytes).unwrap();
    let config = fit.default_config().unwrap();
    let err = verify_all(&config).unwrap_err();
    let mut corrupted = KERNEL.to_vec();
    corrupted[3] ^= 0x20;
    assert_eq!(
        err,
        FitError::HashMismatch {
            image: "kernel".into(),
            hash: "hash-1".into(),
            expected: HashValue::Sha256(Sha256Digest(sha256(KERNEL))),
            computed: HashValue::Sha256(Sha256Digest(sha256(&corrupted))),
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("kernel hash-1"), "{msg}");
    assert!(
        msg.contains(&Sha256Digest(sha256(KERNEL)).to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&Sha256Digest(sha256(&corrupted)).to_string()),
        "{msg}"
    );
    // The other images are still good.
    config.ramdisk.unwrap().verify().unwrap();
}

#[test]
fn missing_kernel() {
    let mut b = Builder::new();
    b.config.retain(|(role, _)| *role != "kernel");
    let bytes = b.build();
    let err = Fit::parse(&bytes).unwrap().default_config().unwrap_err();
    assert_eq!(
        err,
        FitError::NoKernel {
            config: "conf-1".into()
        }
    );
    assert!(err.to_string().starts_with("FIT has no kernel"), "{err}");
}

#[test]
fn missing_default() {
    let mut b = Builder::new();
    b.default = None;
    let bytes = b.build();
    let fit = Fit::parse(&bytes).unwrap();
    assert_eq!(fit.default_config(), Err(FitError::NoDefault));
    assert!(FitError::NoDefault.to_string().contains("default"));
    // The configuration is still there by name.
    assert!(fit.config("conf-1").is_ok());

    let mut b = Builder::new();
    b.default = Some("conf-2");
    let bytes = b.build();
    let err = Fit::parse(&bytes).unwrap().default_config().unwrap_err();
    assert_eq!(
        err,
        FitError::NoConfig {
            name: "conf-2".into()
        }
    );
    assert!(err.to_string().contains("/configurations/conf-2"), "{err}");
}

#[test]
fn unknown_compression() {
    let mut b = Builder::new();
    b.compression = "gzip";
    let bytes = b.build();
    let err = Fit::parse(&bytes).unwrap().default_config().unwrap_err();
    assert_eq!(
        err,
        FitError::Compression {
            image: "kernel".into(),
            found: "gzip".into()
        }
    );
    assert!(err.to_string().contains("\"gzip\""), "{err}");
}

#[test]
fn unknown_hash_algorithm() {
    let mut b = Builder::new();
    b.algo = "md5";
    let bytes = b.build();
    let err = Fit::parse(&bytes).unwrap().default_config().unwrap_err();
    assert!(matches!(&err, FitError::HashAlgo { algo, .. } if algo == "md5"));
    assert!(
        err.to_string().contains("\"md5\" is not supported"),
        "{err}"
    );
}

#[test]
fn no_hash_does_not_verify() {
    let mut b = Builder::new();
    b.hash = false;
    let bytes = b.build();
    let config = Fit::parse(&bytes).unwrap().default_config().unwrap();
    let err = verify_all(&config).unwrap_err();
    assert_eq!(
        err,
        FitError::NoHash {
            image: "kernel".into()
        }
    );
    assert!(err.to_string().contains("no hash to verify"), "{err}");
}

#[test]
fn configuration_names_missing_or_wrong_image() {
    let mut b = Builder::new();
    b.config[1] = ("ramdisk", "ramdisk-2");
    let bytes = b.build();
    let err = Fit::parse(&bytes).unwrap().default_config().unwrap_err();
    assert_eq!(
        err,
        FitError::NoImage {
            config: "conf-1".into(),
            role: "ramdisk",
            image: "ramdisk-2".into()
        }
    );
    assert!(err.to_string().contains("\"ramdisk-2\""), "{err}");

    let mut b = Builder::new();
    b.config[2] = ("fdt", "ramdisk");
    let bytes = b.build();
    let err = Fit::parse(&bytes).unwrap().default_config().unwrap_err();
    assert!(matches!(&err, FitError::WrongType { role: "fdt", .. }));
    assert!(err.to_string().contains("\"flat_dt\""), "{err}");
}

#[test]
fn not_a_fit() {
    assert_eq!(Fit::parse(&[]).err(), Some(FitError::TooSmall { len: 0 }));
    let mut tree = DeviceTree::new();
    tree.root.add_property(prop("model", "plain DTB"));
    let dtb = tree.to_dtb();
    assert_eq!(Fit::parse(&dtb).err(), Some(FitError::NoImages));
    let mut bad = dtb.clone();
    bad[0] = 0;
    assert!(matches!(
        Fit::parse(&bad),
        Err(FitError::BadMagic { found: 0x000d_feed })
    ));
    let err = Fit::parse(&dtb[..dtb.len() - 1]).unwrap_err();
    assert!(matches!(err, FitError::TooLarge { .. }), "{err}");
}

#[test]
fn external_data() {
    for layout in [Layout::External, Layout::Position] {
        let mut b = Builder::new();
        b.layout = layout;
        let bytes = b.build();
        let fit = Fit::parse(&bytes).unwrap();
        let config = fit.default_config().unwrap();
        assert_eq!(config.kernel.data, KERNEL);
        assert_eq!(config.ramdisk.as_ref().unwrap().data, RAMDISK);
        assert_eq!(config.fdt.as_ref().unwrap().data, DTB);
        verify_all(&config).unwrap();

        // Cut inside the external data: the DTB part is whole, the last
        // image out of bounds.
        let cut = &bytes[..bytes.len() - 8];
        let err = Fit::parse(cut).unwrap().default_config().unwrap_err();
        assert!(
            matches!(&err, FitError::DataOutOfBounds { image, .. } if image == "fdt-1"),
            "{err}"
        );
        assert!(err.to_string().contains("lies outside"), "{err}");
    }
}

#[test]
fn external_data_offsets_out_of_bounds() {
    let mut b = Builder::new();
    b.layout = Layout::External;
    let bytes = b.build();
    let fit = Fit::parse(&bytes).unwrap();
    let mut tree = DeviceTree::from_fdt(&fit.fdt());
    let kernel = tree
        .root
        .child_mut("images")
        .unwrap()
        .child_mut("kernel")
        .unwrap();
    kernel.add_property(prop("data-offset", u32::MAX));
    kernel.add_property(prop("data-size", u32::MAX));
    let mut bad = tree.to_dtb();
    bad.resize(bad.len().next_multiple_of(4), 0);
    bad.extend_from_slice(&bytes[fit.fdt().data().len().next_multiple_of(4)..]);
    let err = Fit::parse(&bad).unwrap().default_config().unwrap_err();
    assert!(
        matches!(&err, FitError::DataOutOfBounds { image, size: 0xffff_ffff, .. } if image == "kernel"),
        "{err}"
    );

    // data-offset without data-size.
    kernel_without_size(&bytes);
}

fn kernel_without_size(bytes: &[u8]) {
    let fit = Fit::parse(bytes).unwrap();
    let mut tree = DeviceTree::from_fdt(&fit.fdt());
    let kernel = tree
        .root
        .child_mut("images")
        .unwrap()
        .child_mut("kernel")
        .unwrap();
    kernel.remove_property("data-size").unwrap();
    let bad = tree.to_dtb();
    let err = Fit::parse(&bad).unwrap().default_config().unwrap_err();
    assert_eq!(
        err,
        FitError::MissingProperty {
            path: "/images/kernel/data-size".into()
        }
    );
}

#[test]
fn truncation_never_panics() {
    for layout in [Layout::Embedded, Layout::External, Layout::Position] {
        let mut b = Builder::new();
        b.layout = layout;
        let bytes = b.build();
        for len in 0..bytes.len() {
            assert!(load(&bytes[..len]).is_err(), "length {len} accepted");
        }
        load(&bytes).unwrap();
    }
}

#[test]
fn byte_flips_never_panic() {
    for layout in [Layout::Embedded, Layout::External] {
        let mut b = Builder::new();
        b.layout = layout;
        let bytes = b.build();
        for at in 0..bytes.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[at] ^= mask;
                // Some flips are harmless (padding, a description); none may
                // panic, and none in an image's bytes may verify.
                let _ = load(&bad);
            }
            let mut bad = bytes.clone();
            bad[at] = 0;
            let _ = load(&bad);
        }
    }
    // A flip in any image's data is always caught.
    let bytes = Builder::new().build();
    let at = bytes
        .windows(RAMDISK.len())
        .position(|w| w == RAMDISK)
        .unwrap();
    for i in 0..RAMDISK.len() {
        let mut bad = bytes.clone();
        bad[at + i] ^= 1;
        assert!(
            matches!(load(&bad), Err(FitError::HashMismatch { ref image, .. }) if image == "ramdisk")
        );
    }
}

#[test]
fn crc32_is_zlibs() {
    // The CRC-32/ISO-HDLC check value, and the same in pieces.
    assert_eq!(crc32_portable(0, b"123456789"), 0xcbf4_3926);
    assert_eq!(
        crc32_portable(crc32_portable(0, b"1234"), b"56789"),
        0xcbf4_3926
    );
    assert_eq!(crc32_portable(0, b""), 0);
    // The same as crc32fast (an independent implementation) at every length up to 300,
    // whole and split anywhere.
    let data: Vec<u8> = (0u32..300).map(|i| (i * 131 + i / 7) as u8).collect();
    for len in 0..data.len() {
        let want = crc32fast::hash(&data[..len]);
        assert_eq!(crc32_portable(0, &data[..len]), want, "length {len}");
        let (a, b) = data[..len].split_at(len / 3);
        assert_eq!(
            crc32_portable(crc32_portable(0, a), b),
            want,
            "length {len}"
        );
    }
}

#[test]
fn crc32_fits_verify_embedded_and_external() {
    for layout in [Layout::Embedded, Layout::External, Layout::Position] {
        let mut b = Builder::new();
        b.algo = "crc32";
        b.layout = layout;
        let bytes = b.build();
        let config = Fit::parse(&bytes).unwrap().default_config().unwrap();
        assert_eq!(
            config.kernel.hashes[0].value,
            HashValue::Crc32(crc32fast::hash(KERNEL))
        );
        let v = verify_all_with(&config, &Hashers::PORTABLE).unwrap();
        assert_eq!(
            v,
            Verified {
                sha256: false,
                crc32: true
            }
        );
        assert_eq!(v.names(), "crc32");
    }
}

#[test]
fn crc32_mismatch_is_refused_and_named() {
    let mut b = Builder::new();
    b.algo = "crc32";
    let mut bytes = b.build();
    let at = bytes
        .windows(RAMDISK.len())
        .position(|w| w == RAMDISK)
        .unwrap();
    bytes[at] ^= 1;
    let config = Fit::parse(&bytes).unwrap().default_config().unwrap();
    let err = verify_all(&config).unwrap_err();
    let mut corrupted = RAMDISK.to_vec();
    corrupted[0] ^= 1;
    assert_eq!(
        err,
        FitError::HashMismatch {
            image: "ramdisk".into(),
            hash: "hash-1".into(),
            expected: HashValue::Crc32(crc32fast::hash(RAMDISK)),
            computed: HashValue::Crc32(crc32fast::hash(&corrupted)),
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("ramdisk hash-1: crc32 mismatch: expected "),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{:08x}", crc32fast::hash(RAMDISK))),
        "{msg}"
    );
}

#[test]
fn crc32_value_of_the_wrong_length_is_refused() {
    // A sha256-sized value under algo = "crc32".
    let mut b = Builder::new();
    b.algo = "crc32";
    b.sha_value = true;
    let err = load(&b.build()).unwrap_err();
    assert!(
        matches!(&err, FitError::BadProperty { path, .. } if path == "/images/kernel/hash-1/value"),
        "{err:?}"
    );
}

#[test]
fn both_algorithms_are_checked() {
    let mut b = Builder::new();
    b.algo = "crc32";
    let crc = b.build();
    let sha = Builder::new().build();
    let v = verify_all_with(
        &Fit::parse(&crc).unwrap().default_config().unwrap(),
        &Hashers::PORTABLE,
    )
    .unwrap()
    .and(
        verify_all_with(
            &Fit::parse(&sha).unwrap().default_config().unwrap(),
            &Hashers::PORTABLE,
        )
        .unwrap(),
    );
    assert_eq!(v.names(), "sha256 and crc32");
}
