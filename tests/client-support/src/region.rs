//! Physical address ranges and the two questions the client asks about them: does a range
//! lie inside RAM, and do two ranges overlap (booting.rst: the Image, including its .bss,
//! the DTB and the initrd must each stay intact, so none may overlap another).

use core::fmt;

/// The physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Region {
    /// The empty range at 0, to fill arrays with.
    pub const EMPTY: Self = Self { start: 0, end: 0 };

    /// `[start, start + len)`, or `None` when that wraps around the address space.
    pub fn from_len(start: u64, len: u64) -> Option<Self> {
        Some(Self {
            start,
            end: start.checked_add(len)?,
        })
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// Whether both ranges share a byte (an empty range shares none).
    pub fn overlaps(&self, other: &Self) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    /// Whether the range lies wholly inside one of `ram`'s ranges.
    pub fn within(&self, ram: &[Self]) -> bool {
        ram.iter()
            .any(|bank| bank.start <= self.start && self.end <= bank.end)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Region {
        Region { start, end }
    }

    #[test]
    fn overlaps() {
        assert!(r(0, 10).overlaps(&r(9, 20)));
        assert!(r(9, 20).overlaps(&r(0, 10)));
        assert!(r(0, 100).overlaps(&r(10, 20)));
        assert!(!r(0, 10).overlaps(&r(10, 20)));
        assert!(!r(10, 20).overlaps(&r(0, 10)));
        assert!(!r(5, 5).overlaps(&r(0, 10)));
    }

    #[test]
    fn within() {
        let ram = [r(0x4000_0000, 0x6000_0000), r(0x1_0000_0000, 0x1_1000_0000)];
        assert!(r(0x4000_0000, 0x6000_0000).within(&ram));
        assert!(r(0x1_0000_1000, 0x1_0000_2000).within(&ram));
        assert!(!r(0x5fff_f000, 0x6000_1000).within(&ram));
        assert!(!r(0x3fff_f000, 0x4000_1000).within(&ram));
        assert!(!r(0x4000_0000, 0x4000_1000).within(&[]));
    }

    #[test]
    fn from_len_and_display() {
        assert_eq!(Region::from_len(0x10, 0x20), Some(r(0x10, 0x30)));
        assert_eq!(Region::from_len(u64::MAX, 2), None);
        assert_eq!(r(0x10, 0x30).len(), 0x20);
        assert!(r(0x10, 0x10).is_empty() && !r(0x10, 0x11).is_empty());
        assert_eq!(r(0x10, 0x30).to_string(), "[0x10, 0x30)");
    }
}
