//! The payload's parts as the boot flow stages them ([`Payload`], [`Source`]), and reading
//! them from a FIT in memory: what every board that takes a FIT shares (the Pi 4, whose firmware loads the FIT
//! as the initramfs; QEMU virt, which reads a FIT given as `-kernel` from fw_cfg).
//!
//! Reading a FIT checks all of it before anything is staged: its structure and the default
//! configuration (`loader::fit`), then every image's hashes (SHA-256 or CRC-32). The kernel's arm64 header is
//! checked by the caller, like any other kernel's.

use core::ops::Range;

use log::info;

use crate::error::BootError;

/// Where the bytes of the kernel or the initrd come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source<'a> {
    /// Copied from memory by the CPU: a part of a FIT, the built-in demo, an image built
    /// into the firmware.
    Memory(&'a [u8]),
    /// This many bytes, which the board's device writes into the staging pages itself
    /// (fw_cfg DMA; `flow::Board::load`).
    Device(u64),
}

impl Source<'_> {
    /// Its length in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        match self {
            Source::Memory(b) => b.len() as u64,
            Source::Device(n) => *n,
        }
    }

    /// Whether it has no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The payload's parts as the boot flow stages them, borrowed from where they are now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The kernel: an arm64 Image.
    pub kernel: Source<'a>,
    /// The kernel's first bytes (its arm64 Image header; zeros past its end).
    pub header: [u8; loader::image::HEADER_SIZE],
    /// The initrd, if any.
    pub initrd: Option<Source<'a>>,
    /// A DTB to use as the payload's instead of the firmware's, if any.
    pub fdt: Option<&'a [u8]>,
    /// Where the payload's bytes are now (a FIT in RAM), which staging must not overwrite.
    pub source: Option<Range<u64>>,
}

impl<'a> Payload<'a> {
    /// A kernel in memory, with no initrd and no DTB of its own.
    #[must_use]
    pub fn in_memory(kernel: &'a [u8]) -> Self {
        Payload {
            kernel: Source::Memory(kernel),
            header: header_of(kernel),
            initrd: None,
            fdt: None,
            source: None,
        }
    }
}

/// The first bytes of an image in memory, zeros past its end.
#[must_use]
pub fn header_of(bytes: &[u8]) -> [u8; loader::image::HEADER_SIZE] {
    let mut h = [0u8; loader::image::HEADER_SIZE];
    let n = bytes.len().min(h.len());
    h[..n].copy_from_slice(&bytes[..n]);
    h
}

/// Reads the FIT in `bytes`, which sits at physical address `at`: parses it, logs its
/// default configuration, and checks the hashes (SHA-256, CRC-32) of every image of that configuration,
/// timing the check with `ticks` (a counter running at `freq` Hz).
///
/// # Errors
/// [`BootError::Fit`]: the FIT is malformed, has no default configuration or no kernel, an
/// image is of the wrong type, architecture or compression, has no hash, or does not match
/// its hash.
pub fn parse_fit<'a>(
    bytes: &'a [u8],
    at: u64,
    ticks: impl Fn() -> u64,
    freq: u64,
) -> Result<Payload<'a>, BootError> {
    let fit = loader::fit::Fit::parse(bytes)?;
    let config = fit.default_config()?;
    let count = config.images().count();
    info!(
        "fit: {} bytes at {at:#x}; configuration {}{}: kernel \"{}\"{}{}",
        bytes.len(),
        config.name,
        config
            .description
            .map(|d| alloc::format!(" ({d})"))
            .unwrap_or_default(),
        config.kernel.name,
        config
            .ramdisk
            .as_ref()
            .map(|i| alloc::format!(", ramdisk \"{}\"", i.name))
            .unwrap_or_default(),
        config
            .fdt
            .as_ref()
            .map(|i| alloc::format!(", fdt \"{}\"", i.name))
            .unwrap_or_default(),
    );
    let t0 = ticks();
    let hashers = loader::fit::Hashers {
        sha256: crate::sha256::compressor(),
        crc32: crate::crc32::updater(),
    };
    let verified = loader::fit::verify_all_with(&config, &hashers)?;
    let ms = ticks().wrapping_sub(t0) * 1000 / freq.max(1);
    info!(
        "fit: {} of all {count} images verified in {ms} ms",
        verified.names()
    );
    Ok(Payload {
        kernel: Source::Memory(config.kernel.data),
        header: header_of(config.kernel.data),
        initrd: config.ramdisk.as_ref().map(|i| Source::Memory(i.data)),
        fdt: config.fdt.as_ref().map(|i| i.data),
        source: Some(at..at + bytes.len() as u64),
    })
}

/// [`parse_fit`] of the FIT in RAM at `r`, timed with the generic timer.
///
/// Whoever put it there (the Pi firmware with its caches off, a DMA master) wrote to memory,
/// not through this CPU's caches: it is cleaned and invalidated first, so that no stale line
/// hides it.
///
/// # Safety
/// `r` must be RAM mapped as data (VA = PA) by the EL1 stage's tables, and nothing may
/// write it while the returned [`Payload`] is in use.
#[cfg(target_arch = "aarch64")]
pub unsafe fn read_fit(r: &Range<u64>) -> Result<Payload<'static>, BootError> {
    use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};

    use crate::el1::cache::{Cache, CpuCache};

    CpuCache.clean_invalidate(r.clone());
    // SAFETY: mapped RAM, read only, not written while borrowed (the caller's contract).
    let bytes =
        unsafe { core::slice::from_raw_parts(r.start as *const u8, (r.end - r.start) as usize) };
    parse_fit(bytes, r.start, || CNTPCT_EL0.get(), CNTFRQ_EL0.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
    use sha2::{Digest as _, Sha256};

    fn prop<T: dtoolkit::ToPropertyValue>(name: &str, value: T) -> DeviceTreeProperty {
        DeviceTreeProperty::new_unchecked(name, value)
    }

    /// A FIT laid out as `xtask::fit::write_fit` writes it (optional kernel and ramdisk),
    /// with the kernel's hash taken of `kernel_hashed`.
    fn fit(kernel: Option<&[u8]>, kernel_hashed: &[u8], ramdisk: Option<&[u8]>) -> Vec<u8> {
        let image = |name: &str, kind: &str, data: &[u8], hashed: &[u8]| {
            let mut node = DeviceTreeNode::new_unchecked(name);
            node.add_property(prop("data", data));
            node.add_property(prop("type", kind));
            node.add_property(prop("arch", "arm64"));
            node.add_property(prop("compression", "none"));
            let mut hash = DeviceTreeNode::new_unchecked("hash-1");
            hash.add_property(prop("algo", "sha256"));
            let digest: [u8; 32] = Sha256::digest(hashed).into();
            hash.add_property(prop("value", digest));
            node.add_child(hash);
            node
        };
        let mut images = DeviceTreeNode::new_unchecked("images");
        let mut conf = DeviceTreeNode::new_unchecked("conf-1");
        if let Some(k) = kernel {
            images.add_child(image("kernel", "kernel", k, kernel_hashed));
            conf.add_property(prop("kernel", "kernel"));
        }
        if let Some(r) = ramdisk {
            images.add_child(image("ramdisk", "ramdisk", r, r));
            conf.add_property(prop("ramdisk", "ramdisk"));
        }
        let mut configs = DeviceTreeNode::new_unchecked("configurations");
        configs.add_property(prop("default", "conf-1"));
        configs.add_child(conf);
        let mut tree = DeviceTree::new();
        tree.root.add_child(images);
        tree.root.add_child(configs);
        tree.to_dtb()
    }

    #[test]
    fn reads_every_part_and_where_it_is() {
        let bytes = fit(Some(b"kernel"), b"kernel", Some(b"initrd"));
        let clock = core::cell::Cell::new(0u64);
        let ticks = || {
            clock.set(clock.get() + 500);
            clock.get()
        };
        let p = parse_fit(&bytes, 0x5000_0000, ticks, 1000).unwrap();
        assert_eq!(p.kernel, Source::Memory(b"kernel"));
        assert_eq!(p.header[..6], *b"kernel");
        assert_eq!(p.header[6..], [0; 58]);
        assert_eq!(p.initrd, Some(Source::Memory(b"initrd")));
        assert_eq!(p.fdt, None);
        assert_eq!(
            p.source,
            Some(0x5000_0000..0x5000_0000 + bytes.len() as u64)
        );
    }

    #[test]
    fn a_wrong_hash_stops_it() {
        let bytes = fit(Some(b"kernel"), b"another kernel", None);
        let e = parse_fit(&bytes, 0, || 0, 1).unwrap_err();
        assert!(
            matches!(
                e,
                BootError::Fit(loader::fit::FitError::HashMismatch { .. })
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("fit: "), "{e}");
        assert!(e.to_string().contains("sha256 mismatch"), "{e}");
    }

    #[test]
    fn a_fit_without_a_kernel_stops_it() {
        let bytes = fit(None, b"", Some(b"initrd"));
        let e = parse_fit(&bytes, 0, || 0, 1).unwrap_err();
        assert!(e.to_string().contains("FIT has no kernel"), "{e}");
    }

    #[test]
    fn not_a_fit() {
        let e = parse_fit(
            b"MZ not a FIT at all, just bytes....................",
            0,
            || 0,
            1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a FIT"), "{e}");
    }
}
