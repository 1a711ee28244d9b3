//! The bench payloads: arm64 Images of 16, 64 or 256 MiB that print one line and power
//! off, so that a benchmark (or a test) can see that the payload really ran.
//!
//! Layout of a payload of `size` bytes:
//!
//! | offset | what |
//! |---|---|
//! | 0x00 | arm64 Image header (Linux Documentation/arch/arm64/booting.rst): code0 = `b .+0x40`, code1 = 0, text_offset = 0, image_size = `size`, flags = 0b1010 (little-endian, 4 KiB pages, anywhere in RAM), magic "ARM\x64" at 0x38 |
//! | 0x40 | the code below ([`code`]) |
//! | after the code | pseudo-random bytes (xorshift64 from [`SEED`]) up to `size` |
//!
//! The code, entered at EL2 or EL1 with the MMU off (booting.rst), writes
//! [`MESSAGE`] to QEMU virt's PL011 data register at 0x0900_0000, one `str` per byte (the
//! firmware has enabled the UART, and QEMU's PL011 takes a 23-byte string without a FIFO
//! wait), then calls PSCI SYSTEM_OFF with `smc #0` (QEMU virt with `virtualization=on`
//! and no EL3 uses the SMC conduit), and spins if that ever returns:
//!
//! ```text
//! movz x1, #0x0900, lsl #16        // x1 = the PL011 at 0x0900_0000
//! movz w2, #'b'  ;  str w2, [x1]   // once per byte of MESSAGE
//! ...
//! movz w0, #0x0008                 // w0 = 0x8400_0008, PSCI SYSTEM_OFF
//! movk w0, #0x8400, lsl #16
//! smc  #0
//! b    .
//! ```
//!
//! The encodings are in [`crate::a64`]. Payloads are written once to
//! `<target>/hypstub/bench/bench-<N>MiB.bin` and reused while their size and first page
//! match what this module would write.

use std::fs::{self, File};
use std::io::{BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::a64::{self, Reg, Shift};
use crate::output_dir;

/// What the payload prints, followed by a newline.
pub const MARKER: &str = "bench payload: entered";

/// The whole string the payload writes.
pub const MESSAGE: &[u8] = b"bench payload: entered\n";

/// QEMU virt's PL011 (its data register is at offset 0).
pub const UART_BASE: u32 = 0x0900_0000;

/// PSCI SYSTEM_OFF (SMC32 function id), from the PSCI specification (DEN 0022).
pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;

/// Seed of the xorshift64 filler; changing it changes every payload (and the cache
/// notices, as the first page changes).
pub const SEED: u64 = 0x6265_6e63_685f_7631; // "bench_v1"

/// Size of the arm64 Image header; the code starts here.
pub const HEADER_LEN: usize = 0x40;

/// The arm64 Image magic, "ARM\x64" little-endian, at offset 0x38.
const IMAGE_MAGIC: u32 = 0x644d_5241;

/// Image header flags: bit 0 = 0 little-endian, bits 2:1 = 0b01 4 KiB pages, bit 3 = 1
/// the image may be placed anywhere in RAM.
pub const IMAGE_FLAGS: u64 = 0b1010;

/// The payload's instructions, placed at offset [`HEADER_LEN`].
pub fn code() -> Vec<u32> {
    let x0 = Reg::new(0);
    let x1 = Reg::new(1);
    let x2 = Reg::new(2);
    let mut code = Vec::with_capacity(2 * MESSAGE.len() + 5);
    // The UART address has only bits 31:16 set, so one movz loads it.
    const _: () = assert!(UART_BASE & 0xffff == 0);
    code.push(a64::movz_x(x1, (UART_BASE >> 16) as u16, Shift::L16));
    for &byte in MESSAGE {
        code.push(a64::movz_w(x2, u16::from(byte), Shift::L0));
        code.push(a64::str_w(x2, x1, 0));
    }
    code.extend(a64::mov_w32(x0, PSCI_SYSTEM_OFF));
    code.push(a64::smc(0));
    code.push(a64::b(0));
    code
}

/// The 64-byte header of a payload of `size` bytes.
pub fn header(size: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    // code0: branch from offset 0 over the header to the code.
    h[0x00..0x04].copy_from_slice(&a64::b(HEADER_LEN as i32).to_le_bytes());
    // code1 (0x04), text_offset (0x08) stay 0.
    h[0x10..0x18].copy_from_slice(&size.to_le_bytes());
    h[0x18..0x20].copy_from_slice(&IMAGE_FLAGS.to_le_bytes());
    // res2..res4 (0x20..0x38) stay 0.
    h[0x38..0x3c].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
    h
}

/// The bytes of a payload of `size` bytes, in chunks of at most `chunk` bytes (to write a
/// 256 MiB file without holding it in memory). `size` must hold the header and code.
pub fn chunks(size: u64, chunk: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut head = header(size).to_vec();
    head.extend(code().iter().flat_map(|w| w.to_le_bytes()));
    assert!(
        size >= head.len() as u64,
        "a bench payload holds at least its code"
    );
    let mut state = SEED;
    let mut offset = 0u64;
    std::iter::from_fn(move || {
        if offset >= size {
            return None;
        }
        let len = usize::try_from(size - offset).map_or(chunk, |left| left.min(chunk));
        let mut buf = vec![0u8; len.next_multiple_of(8)];
        // The filler is one xorshift64 stream over the whole file (Marsaglia 2003, shifts
        // 13, 7, 17); the header and code then overwrite its start.
        for word in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        buf.truncate(len);
        if offset == 0 {
            let n = head.len().min(len);
            buf[..n].copy_from_slice(&head[..n]);
        }
        offset += len as u64;
        Some(buf)
    })
}

/// The first `len` bytes of a payload of `size` bytes.
pub fn prefix(size: u64, len: usize) -> Vec<u8> {
    chunks(size, len).next().unwrap_or_default()
}

/// Where the payload of `mib` MiB is cached.
pub fn path(mib: u64) -> PathBuf {
    output_dir()
        .join("bench")
        .join(format!("bench-{mib}MiB.bin"))
}

/// How much of a cached file is compared with what [`chunks`] would write.
const CHECKED_PREFIX: usize = 4096;

/// The payload of `mib` MiB (1 to 1024), written to [`path`] unless a file there already
/// has its size and first page. Safe to call from several processes at once: a new file
/// is written under a unique temporary name and renamed into place.
pub fn ensure(mib: u64) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        (1..=1024).contains(&mib),
        "bench payload sizes are 1 to 1024 MiB, not {mib}"
    );
    let size = mib << 20;
    let path = path(mib);
    if is_current(&path, size) {
        return Ok(path);
    }
    let dir = path.parent().context("bench payload path has a parent")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".bench-{mib}MiB.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let written = write(&tmp, size).and_then(|()| {
        fs::rename(&tmp, &path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

fn write(path: &Path, size: u64) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    for chunk in chunks(size, 1 << 20) {
        out.write_all(&chunk)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn is_current(path: &Path, size: u64) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    if file.metadata().map(|m| m.len()).ok() != Some(size) {
        return false;
    }
    let mut first = vec![0u8; CHECKED_PREFIX];
    file.read_exact(&mut first).is_ok() && first == prefix(size, CHECKED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn dword(bytes: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn header_is_a_valid_arm64_image_header() {
        let size = 16 << 20;
        let p = prefix(size, 4096);
        assert_eq!(word(&p, 0x00), 0x1400_0010, "code0: b .+0x40");
        assert_eq!(word(&p, 0x04), 0, "code1");
        assert_eq!(dword(&p, 0x08), 0, "text_offset");
        assert_eq!(dword(&p, 0x10), size, "image_size");
        assert_eq!(dword(&p, 0x18), 0b1010, "flags");
        assert!(p[0x20..0x38].iter().all(|&b| b == 0), "res2..res4");
        assert_eq!(&p[0x38..0x3c], b"ARM\x64");
        assert_eq!(word(&p, 0x3c), 0, "res5");
    }

    #[test]
    fn code_prints_the_message_then_powers_off() {
        let code = code();
        // mov x1, #0x9000000
        assert_eq!(code[0], 0xd2a1_2001);
        // mov w2, #'b'; str w2, [x1]
        assert_eq!(&code[1..3], &[0x5280_0c42, 0xb900_0022]);
        let bytes: Vec<u8> = code[1..1 + 2 * MESSAGE.len()]
            .chunks(2)
            .map(|pair| {
                assert_eq!(pair[1], 0xb900_0022, "each byte is stored to the UART");
                // movz w2: imm16 in bits 20:5.
                assert_eq!(pair[0] & 0xffe0_001f, 0x5280_0002);
                ((pair[0] >> 5) & 0xffff) as u8
            })
            .collect();
        assert_eq!(bytes, MESSAGE);
        // mov w0, #8; movk w0, #0x8400, lsl #16; smc #0; b .
        assert_eq!(
            &code[code.len() - 4..],
            &[0x5280_0100, 0x72b0_8000, 0xd400_0003, 0x1400_0000]
        );
        let p = prefix(1 << 20, 4096);
        for (i, w) in code.iter().enumerate() {
            assert_eq!(word(&p, HEADER_LEN + 4 * i), *w);
        }
    }

    #[test]
    fn chunks_cover_the_size_and_do_not_depend_on_chunking() {
        let size = (1 << 20) + 12;
        let whole: Vec<u8> = chunks(size, 1 << 21).flatten().collect();
        let pieces: Vec<u8> = chunks(size, 4096 + 8).flatten().collect();
        assert_eq!(whole.len() as u64, size);
        assert!(whole == pieces, "chunking changed the bytes");
        // Filler after the code, not zeros.
        let end = HEADER_LEN + 4 * code().len();
        assert!(whole[end..end + 64].iter().any(|&b| b != 0));
        assert!(prefix(size, 4096) == whole[..4096]);
    }

    #[test]
    fn ensure_rejects_silly_sizes() {
        assert!(ensure(0).is_err());
        assert!(ensure(4096).is_err());
        assert!(path(16).ends_with("hypstub/bench/bench-16MiB.bin"));
    }
}
