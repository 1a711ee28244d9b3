//! `loader::fit` with verification, and the boot flow's reading of a FIT
//! (`hypstub_boards::payload::parse_fit`).
//!
//! Input: the FIT (its DTB and any external data after it).
//!
//! Checked: every image of an accepted configuration has the type of its role and data
//! inside the FIT; verification passes exactly when every image has a hash and each equals
//! the SHA-256 of its data (a mismatch reports the digest of the data); changing one byte of
//! a verified kernel's data (embedded or after the DTB) makes verification fail; the boot
//! flow takes a FIT exactly when it verifies, and takes the verified kernel, its header,
//! the ramdisk and the DTB from it, and says where the FIT lies.

use dtoolkit::{Node, Property};
use hypstub_boards::payload::{self, Source};
use loader::fit::{
    crc32_portable, verify_all, Config, Fit, FitError, HashValue, Image, ImageKind, Sha256Digest,
};
use sha2::{Digest as _, Sha256};

use crate::seeds::{Inputs, Seeds};

/// Where the fuzz input says the FIT lies in memory.
const AT: u64 = 0x1000_0000;

fn within(data: &[u8], part: &[u8]) -> Option<usize> {
    let off = (part.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    (off + part.len() <= data.len()).then_some(off)
}

/// `data`'s hash by the algorithm of `like`, computed independently of `loader::fit`'s
/// verification (`sha2` directly; `crc32fast` through the one-call helper).
fn hash_like(like: &HashValue, data: &[u8]) -> HashValue {
    match like {
        HashValue::Sha256(_) => HashValue::Sha256(Sha256Digest(Sha256::digest(data).into())),
        HashValue::Crc32(_) => HashValue::Crc32(crc32_portable(0, data)),
    }
}

/// Whether `image`'s data is its node's `data` property, or lies after the DTB part
/// (`totalsize`): bytes whose change cannot change the tree.
fn data_outside_structure(fit: &Fit<'_>, image: &Image<'_>, data: &[u8], totalsize: usize) -> bool {
    let embedded = fit
        .fdt()
        .find_node(&format!("/images/{}", image.name))
        .and_then(|n| n.property("data"))
        .is_some_and(|p| {
            p.value().as_ptr() == image.data.as_ptr() && p.value().len() == image.data.len()
        });
    embedded || within(data, image.data).is_some_and(|off| off >= totalsize)
}

fn check_config(data: &[u8], config: &Config<'_>) {
    assert!(matches!(
        config.kernel.kind,
        ImageKind::Kernel | ImageKind::KernelNoload
    ));
    if let Some(r) = &config.ramdisk {
        assert_eq!(r.kind, ImageKind::Ramdisk);
    }
    if let Some(f) = &config.fdt {
        assert_eq!(f.kind, ImageKind::FlatDt);
    }
    for image in config.images() {
        assert!(
            within(data, image.data).is_some(),
            "image {} data outside the FIT",
            image.name
        );
        let ok = !image.hashes.is_empty()
            && image
                .hashes
                .iter()
                .all(|h| h.value == hash_like(&h.value, image.data));
        match image.verify() {
            Ok(()) => assert!(ok, "image {} verified against a wrong hash", image.name),
            Err(FitError::HashMismatch { computed, .. }) => {
                assert!(!ok);
                assert_eq!(computed, hash_like(&computed, image.data));
            }
            Err(FitError::NoHash { .. }) => assert!(image.hashes.is_empty()),
            Err(e) => panic!("verify: unexpected {e}"),
        }
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let parsed = Fit::parse(data).and_then(|fit| Ok((fit, fit.default_config()?)));
    let flow = payload::parse_fit(data, AT, || 0, 1);
    let (fit, config) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(
                flow.is_err(),
                "the boot flow took a FIT loader::fit refuses"
            );
            return;
        }
    };
    check_config(data, &config);
    let verified = verify_all(&config);
    match (&verified, &flow) {
        (Ok(()), Ok(p)) => {
            assert_eq!(p.kernel, Source::Memory(config.kernel.data));
            assert_eq!(p.header, payload::header_of(config.kernel.data));
            assert_eq!(
                p.initrd,
                config.ramdisk.as_ref().map(|i| Source::Memory(i.data))
            );
            assert_eq!(p.fdt, config.fdt.as_ref().map(|i| i.data));
            assert_eq!(p.source, Some(AT..AT + data.len() as u64));
        }
        (Err(_), Err(_)) => return,
        _ => panic!("the boot flow and verify_all disagree: {verified:?}"),
    }

    // One byte of the verified kernel changed: verification must fail.
    let kernel = &config.kernel;
    let totalsize = data
        .get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let Some(off) = within(data, kernel.data) else {
        return;
    };
    if kernel.data.is_empty() || !data_outside_structure(&fit, kernel, data, totalsize) {
        return;
    }
    let mut changed = data.to_vec();
    let at = off + kernel.data.len() / 2;
    changed[at] ^= 0x01;
    let config = Fit::parse(&changed)
        .and_then(|f| f.default_config())
        .expect("changing image data changed the FIT's structure");
    assert!(
        config.kernel.verify().is_err(),
        "a changed kernel still verifies"
    );
    assert!(
        payload::parse_fit(&changed, AT, || 0, 1).is_err(),
        "the boot flow took a changed kernel"
    );
}

/// The FITs of the inputs (written by `xtask::fit`).
pub fn seeds(inputs: &Inputs) -> Seeds {
    inputs.fit.clone()
}
