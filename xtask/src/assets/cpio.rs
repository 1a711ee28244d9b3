//! A writer for the "newc" cpio format, the one Linux unpacks as an initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Each entry is a 110-byte ASCII header, `070701` followed by thirteen 8-digit hex
//! fields (inode, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
//! rdevminor, namesize including the NUL, check), then the name and its NUL padded to a
//! multiple of 4 bytes, then the data padded to a multiple of 4. The archive ends with an
//! entry named `TRAILER!!!`.
//!
//! Everything is owned by root with mtime 0, and inodes are numbered in order, so the
//! same entries always give the same bytes (and the same SHA-256).

/// The newc magic.
pub const MAGIC: &[u8; 6] = b"070701";

/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// File type bits of `mode` (stat(2)).
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A directory with these permission bits.
    Dir {
        /// Path inside the archive, without a leading `/`.
        name: &'a str,
        /// Permission bits, e.g. 0o755.
        perm: u32,
    },
    /// A regular file.
    File {
        /// Path inside the archive.
        name: &'a str,
        /// Permission bits.
        perm: u32,
        /// Contents.
        data: &'a [u8],
    },
    /// A character device node.
    CharDev {
        /// Path inside the archive.
        name: &'a str,
        /// Permission bits.
        perm: u32,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

/// Writes `entries`, in order, and the trailer.
///
/// The kernel creates each member as it unpacks it, so a directory must come before
/// anything inside it.
pub fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        // Inode 0 is avoided: some readers treat it as "no inode".
        let ino = u32::try_from(i + 1).expect("fewer than 2^32 entries");
        let (name, mode, nlink, data, rdev) = match *entry {
            Entry::Dir { name, perm } => (name, S_IFDIR | perm, 2, &[][..], (0, 0)),
            Entry::File { name, perm, data } => (name, S_IFREG | perm, 1, data, (0, 0)),
            Entry::CharDev {
                name,
                perm,
                major,
                minor,
            } => (name, S_IFCHR | perm, 1, &[][..], (major, minor)),
        };
        member(&mut out, ino, mode, nlink, name, data, rdev);
    }
    member(&mut out, 0, 0, 1, TRAILER, &[], (0, 0));
    out
}

fn member(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    name: &str,
    data: &[u8],
    (rdev_major, rdev_minor): (u32, u32),
) {
    let size = u32::try_from(data.len()).expect("a cpio member is smaller than 4 GiB");
    let namesize = u32::try_from(name.len() + 1).expect("a short name");
    // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
    // rdevminor, namesize, check (used only by the "070702" variant).
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev_major, rdev_minor, namesize, 0,
    ];
    out.extend_from_slice(MAGIC);
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the reader below finds of a member: name, mode, data, (rdev major, minor).
    type Member = (String, u32, Vec<u8>, (u32, u32));

    /// A minimal newc reader, enough to check the writer against the format's rules.
    fn read(mut bytes: &[u8]) -> Vec<Member> {
        let mut members = Vec::new();
        let mut offset = 0;
        loop {
            assert_eq!(&bytes[..6], MAGIC, "magic at offset {offset}");
            let field = |i: usize| {
                let text = std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(text, 16).unwrap()
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let rdev = (field(9), field(10));
            let name = std::str::from_utf8(&bytes[110..110 + namesize - 1])
                .unwrap()
                .to_owned();
            assert_eq!(bytes[110 + namesize - 1], 0, "name NUL-terminated");
            let data_at = (110 + namesize).next_multiple_of(4);
            let data = bytes[data_at..data_at + size].to_vec();
            let next = (data_at + size).next_multiple_of(4);
            assert!(bytes[data_at + size..next].iter().all(|&b| b == 0));
            offset += next;
            bytes = &bytes[next..];
            if name == TRAILER {
                assert!(bytes.is_empty(), "nothing after the trailer");
                return members;
            }
            members.push((name, mode, data, rdev));
        }
    }

    #[test]
    fn round_trip() {
        let entries = [
            Entry::Dir {
                name: "bin",
                perm: 0o755,
            },
            Entry::File {
                name: "bin/x",
                perm: 0o755,
                data: b"hello",
            },
            Entry::CharDev {
                name: "dev/console",
                perm: 0o600,
                major: 5,
                minor: 1,
            },
            Entry::File {
                name: "empty",
                perm: 0o644,
                data: b"",
            },
        ];
        let bytes = archive(&entries);
        assert_eq!(bytes.len() % 4, 0);
        let members = read(&bytes);
        assert_eq!(members.len(), 4);
        assert_eq!(members[0].0, "bin");
        assert_eq!(members[0].1, 0o040_755);
        assert_eq!(
            members[1],
            ("bin/x".into(), 0o100_755, b"hello".to_vec(), (0, 0))
        );
        assert_eq!(members[2].1, 0o020_600);
        assert_eq!(members[2].3, (5, 1));
        assert_eq!(members[3].2, b"");
    }

    #[test]
    fn header_is_exact() {
        let bytes = archive(&[Entry::File {
            name: "init",
            perm: 0o755,
            data: b"ab",
        }]);
        // ino 1, mode 0100755, uid 0, gid 0, nlink 1, mtime 0, size 2, dev 0:0, rdev 0:0,
        // namesize 5, check 0; "init\0" padded to 116; "ab" padded to 120.
        let header = "070701\
                      00000001000081ed000000000000000000000001000000000000000200000000\
                      00000000000000000000000000000005 00000000"
            .replace(' ', "");
        assert_eq!(&bytes[..110], header.as_bytes());
        assert_eq!(&bytes[110..116], b"init\0\0");
        assert_eq!(&bytes[116..120], b"ab\0\0");
        assert_eq!(&bytes[120..126], MAGIC);
    }

    #[test]
    fn deterministic() {
        let entries = [Entry::File {
            name: "f",
            perm: 0o644,
            data: b"123",
        }];
        assert_eq!(archive(&entries), archive(&entries));
    }
}
