//! The byte reader every target decodes its input with, and the writer seeds are encoded
//! with: little-endian fields read in order, zeros once the input runs out (so every input
//! decodes, and a seed is just its fields written in the same order).

/// Reads fields from the front of a fuzz input.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next `n` bytes, or fewer at the end.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (now, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        now
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0; N];
        let src = self.bytes(N);
        b[..src.len()].copy_from_slice(src);
        b
    }

    /// A byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A flag: the low bit of a byte.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// A range `start..start + len` from two `u64`s (saturating: a range may be empty).
    pub fn range(&mut self) -> core::ops::Range<u64> {
        let start = self.u64();
        let len = self.u64();
        start..start.saturating_add(len)
    }

    /// A string of at most `max` bytes, its length in a byte before it (invalid UTF-8
    /// replaced).
    pub fn string(&mut self, max: usize) -> String {
        let len = usize::from(self.u8()).min(max);
        String::from_utf8_lossy(self.bytes(len)).into_owned()
    }
}

/// Writes fields as [`Reader`] reads them: how seeds are made.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// A byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A flag.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// A range as [`Reader::range`] reads it.
    pub fn range(&mut self, r: core::ops::Range<u64>) -> &mut Self {
        self.u64(r.start).u64(r.end - r.start)
    }

    /// A string as [`Reader::string`] reads it (at most 255 bytes).
    pub fn string(&mut self, s: &str) -> &mut Self {
        let b = &s.as_bytes()[..s.len().min(255)];
        self.u8(b.len() as u8);
        self.0.extend_from_slice(b);
        self
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }

    /// The encoded seed.
    pub fn done(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.0)
    }
}

/// Whether `a` and `b` share a byte.
pub fn overlaps(a: &core::ops::Range<u64>, b: &core::ops::Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Ranges as `Dtb::memory` and the planner merge RAM banks: empty ones dropped, sorted,
/// overlapping or touching ones joined.
pub fn merged(ranges: &[core::ops::Range<u64>]) -> Vec<core::ops::Range<u64>> {
    let mut v: Vec<_> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    v.sort_by_key(|r| r.start);
    let mut out: Vec<core::ops::Range<u64>> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}
