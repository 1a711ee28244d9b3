//! U-Boot as the boot bench's peer: Debian's `u-boot-qemu` build for `qemu_arm64` as
//! `-bios`, with its environment in the second flash bank.
//!
//! **Where U-Boot looks.** `configs/qemu_arm64_defconfig` (U-Boot 2023.01, the version
//! Debian 12 ships) sets `CONFIG_ENV_IS_IN_FLASH=y`, `CONFIG_ENV_ADDR=0x4000000` and
//! `CONFIG_ENV_SIZE=0x40000`, without a redundant copy. On QEMU `virt` the first flash
//! bank (`-bios`) is 0..64 MiB, so 0x4000000 is the first byte of the second bank:
//! `-drive if=pflash,unit=1,format=raw,readonly=on,file=<env image>`, a 64 MiB file (QEMU
//! wants the bank's full size).
//!
//! **The format** (U-Boot's `env_t` without the redundant flag byte): a little-endian
//! CRC-32 (the zlib/IEEE one) of the rest of the 0x40000 bytes, then `key=value` strings,
//! each ending in NUL, an empty string after the last, zeros to the end. A bad CRC makes
//! U-Boot fall back to its built-in environment (`bootdelay=2` and a distro boot that scans
//! disks and the network), so [`parse_env`] checks what [`env_image`] wrote.
//!
//! **The environment** ([`ENV`]): `bootdelay=0` and a `bootcmd` that takes `-kernel` and
//! `-initrd` from fw_cfg (`qfw load`, which also sets `bootargs` from `-append`) and
//! enters the kernel with `booti`, passing the DTB QEMU wrote (`fdtcontroladdr`).
//! `fdt_high` and `initrd_high` all ones tell `booti` to leave the DTB and the initrd where
//! they are (U-Boot compares them with `~0UL`, 64 bits here): the fastest way U-Boot has,
//! and it checks nothing for a plain Image, so it is the bar to beat, not a straw man.

use std::fmt::Write as _;

/// The Debian package (an all-architecture package; bookworm has 2023.01).
pub const PACKAGE: &str = "u-boot-qemu";

/// The image for QEMU `virt` with a 64-bit CPU, inside [`PACKAGE`].
pub const FILE: &str = "usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// The size of one `virt` flash bank: the environment image's file size.
pub const FLASH_BANK_SIZE: usize = 64 << 20;

/// `CONFIG_ENV_SIZE` of `qemu_arm64` (CRC included).
pub const ENV_SIZE: usize = 0x40000;

/// Where in the second bank the environment starts (`CONFIG_ENV_ADDR` 0x4000000, the
/// bank's first byte).
pub const ENV_OFFSET: usize = 0;

/// The environment the bench boots with.
pub const ENV: [(&str, &str); 6] = [
    ("bootdelay", "0"),
    ("kernel_addr_r", "0x40400000"),
    ("ramdisk_addr_r", "0x44000000"),
    ("fdt_high", "0xffffffffffffffff"),
    ("initrd_high", "0xffffffffffffffff"),
    (
        "bootcmd",
        "qfw load ${kernel_addr_r} ${ramdisk_addr_r} && booti ${kernel_addr_r} \
         ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}",
    ),
];

/// The start of U-Boot's banner (`U-Boot 2023.01+dfsg-2+deb12u3 (...)`).
pub const BANNER: &str = "U-Boot 20";

/// What `qfw load` prints once it has read the kernel and initrd.
pub const QFW_LOADED: &str = "loading kernel to address";

/// What `booti` prints just before it jumps.
pub const STARTING_KERNEL: &str = "Starting kernel ...";

/// What U-Boot prints when the flash environment was not accepted (bad CRC).
pub const DEFAULT_ENV: &str = "Using default environment";

/// The CRC-32 U-Boot's environment uses (zlib's: reflected polynomial 0xEDB88320, initial
/// and final value all ones). Bitwise: xtask writes one 256 KiB block per bench.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Why an environment cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A name is empty or holds `=` or NUL; a value holds NUL.
    #[error("U-Boot environment entry `{0}`: names must be non-empty without `=` or NUL, values without NUL")]
    BadEntry(String),
    /// The entries do not fit in the environment.
    #[error(
        "the U-Boot environment needs {needed} bytes, more than the {ENV_SIZE} of CONFIG_ENV_SIZE"
    )]
    TooBig {
        /// Bytes the entries take (CRC included).
        needed: usize,
    },
    /// The image is shorter than one environment.
    #[error("an environment image of {0} bytes is shorter than CONFIG_ENV_SIZE ({ENV_SIZE})")]
    Short(usize),
    /// The stored CRC does not match.
    #[error("the environment's CRC-32 is {stored:#010x}, its data's {actual:#010x}")]
    Crc {
        /// In the image.
        stored: u32,
        /// Of the data.
        actual: u32,
    },
    /// The data is not NUL-separated `key=value` strings ending in an empty one.
    #[error("the environment's data is not `key=value` strings ending in an empty one: {0}")]
    Malformed(String),
}

/// The second flash bank's image: [`ENV_SIZE`] bytes of environment at [`ENV_OFFSET`]
/// holding `entries`, then zeros to [`FLASH_BANK_SIZE`].
pub fn env_image(entries: &[(&str, &str)]) -> Result<Vec<u8>, EnvError> {
    let mut data = Vec::new();
    for &(key, value) in entries {
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            return Err(EnvError::BadEntry(format!("{key}={value}")));
        }
        data.extend_from_slice(key.as_bytes());
        data.push(b'=');
        data.extend_from_slice(value.as_bytes());
        data.push(0);
    }
    data.push(0);
    let needed = 4 + data.len();
    if needed > ENV_SIZE {
        return Err(EnvError::TooBig { needed });
    }
    data.resize(ENV_SIZE - 4, 0);
    let mut image = vec![0u8; FLASH_BANK_SIZE];
    let env = &mut image[ENV_OFFSET..ENV_OFFSET + ENV_SIZE];
    env[..4].copy_from_slice(&crc32(&data).to_le_bytes());
    env[4..].copy_from_slice(&data);
    Ok(image)
}

/// Reads the environment at [`ENV_OFFSET`] of `image` as U-Boot does: the CRC over the
/// data must match, then the `key=value` strings up to the empty one.
pub fn parse_env(image: &[u8]) -> Result<Vec<(String, String)>, EnvError> {
    let env = image
        .get(ENV_OFFSET..ENV_OFFSET + ENV_SIZE)
        .ok_or(EnvError::Short(image.len()))?;
    let stored = u32::from_le_bytes([env[0], env[1], env[2], env[3]]);
    let data = &env[4..];
    let actual = crc32(data);
    if stored != actual {
        return Err(EnvError::Crc { stored, actual });
    }
    let mut entries = Vec::new();
    let mut rest = data;
    loop {
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(EnvError::Malformed("no empty string at the end".into()));
        };
        if end == 0 {
            return Ok(entries);
        }
        let text = String::from_utf8_lossy(&rest[..end]);
        let Some((key, value)) = text.split_once('=') else {
            return Err(EnvError::Malformed(format!("`{text}` has no `=`")));
        };
        entries.push((key.to_owned(), value.to_owned()));
        rest = &rest[end + 1..];
    }
}

/// The environment as `key=value` lines, for the bench's header.
pub fn describe(entries: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (key, value) in entries {
        let _ = writeln!(s, "  {key}={value}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        // The check value of CRC-32/ISO-HDLC (zlib's crc32).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn env_image_round_trips() {
        let image = env_image(&ENV).unwrap();
        assert_eq!(image.len(), FLASH_BANK_SIZE);
        let entries = parse_env(&image).unwrap();
        let expected: Vec<(String, String)> = ENV
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(entries, expected);
        // The layout U-Boot reads: CRC, then the first string, zeros after the end.
        assert_eq!(&image[4..16], b"bootdelay=0\0");
        assert!(image[ENV_SIZE..].iter().all(|&b| b == 0));
        let stored = u32::from_le_bytes(image[..4].try_into().unwrap());
        assert_eq!(stored, crc32(&image[4..ENV_SIZE]));
    }

    #[test]
    fn a_tiny_env_byte_for_byte() {
        let image = env_image(&[("a", "1"), ("bc", "")]).unwrap();
        assert_eq!(&image[4..12], b"a=1\0bc=\0");
        assert_eq!(image[12], 0);
        let mut data = b"a=1\0bc=\0\0".to_vec();
        data.resize(ENV_SIZE - 4, 0);
        assert_eq!(image[..4], crc32(&data).to_le_bytes());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(matches!(
            env_image(&[("a=b", "1")]),
            Err(EnvError::BadEntry(_))
        ));
        assert!(matches!(
            env_image(&[("", "1")]),
            Err(EnvError::BadEntry(_))
        ));
        assert!(matches!(
            env_image(&[("a", "x\0y")]),
            Err(EnvError::BadEntry(_))
        ));
        let big = "x".repeat(ENV_SIZE);
        assert!(matches!(
            env_image(&[("a", &big)]),
            Err(EnvError::TooBig { .. })
        ));
        // Exactly full: CRC + "a=" + value + NUL + final NUL.
        let full = "x".repeat(ENV_SIZE - 4 - 2 - 2);
        assert!(parse_env(&env_image(&[("a", &full)]).unwrap()).is_ok());
        let mut image = env_image(&ENV).unwrap();
        image[100] ^= 1;
        assert!(matches!(parse_env(&image), Err(EnvError::Crc { .. })));
        assert!(matches!(parse_env(&image[..10]), Err(EnvError::Short(10))));
        // A valid CRC over data without the final empty string.
        let mut data = vec![b'x'; ENV_SIZE - 4];
        let mut bad = crc32(&data).to_le_bytes().to_vec();
        bad.append(&mut data);
        assert!(matches!(parse_env(&bad), Err(EnvError::Malformed(_))));
    }
}
