//! [`SharedWords`]: memory shared between Rust and code that is not Rust (assembly that runs
//! at EL2, outside the compiler's view, or on another CPU).
//!
//! Every access is one aligned 64-bit volatile load or store. With the MMU off these are
//! Device-nGnRnE accesses, which are single-copy atomic and bypass the caches, so no cache
//! maintenance or atomics are needed (and exclusives would not work on Device memory).
//! Layouts are word indices; the assembly gets them as byte offsets (`index * 8`).

use core::cell::UnsafeCell;

/// `N` 64-bit words written by one side and read by the other.
#[repr(C, align(16))]
pub struct SharedWords<const N: usize>(UnsafeCell<[u64; N]>);

// SAFETY: the only accesses are the volatile single-word loads and stores below, which
// cannot tear (aligned 64-bit accesses are single-copy atomic: Arm ARM, "Single-copy
// atomicity"); who writes which word when is the protocol each user documents next to its
// static.
unsafe impl<const N: usize> Sync for SharedWords<N> {}

impl<const N: usize> SharedWords<N> {
    /// All words zero (so a static of this type lives in .bss or another zeroed section).
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }

    /// All words `value` (a non-zero value puts a static of this type in .data).
    pub const fn with(value: u64) -> Self {
        Self(UnsafeCell::new([value; N]))
    }

    /// Address of word 0, for code that is not Rust.
    pub fn as_ptr(&self) -> *mut u64 {
        self.0.get().cast()
    }

    /// Reads word `index`.
    pub fn read(&self, index: usize) -> u64 {
        assert!(index < N, "shared word {index} out of range");
        // SAFETY: `index < N`, so the pointer is inside the array, aligned for u64 and valid
        // for reads; other writers only ever store whole words.
        unsafe { self.as_ptr().add(index).read_volatile() }
    }

    /// Writes word `index`.
    pub fn write(&self, index: usize, value: u64) {
        assert!(index < N, "shared word {index} out of range");
        // SAFETY: as in `read`; no Rust reference to the contents ever exists, so the store
        // aliases nothing.
        unsafe { self.as_ptr().add(index).write_volatile(value) }
    }
}

impl<const N: usize> Default for SharedWords<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let w = SharedWords::<3>::new();
        assert_eq!(w.read(2), 0);
        w.write(2, 0x1234);
        w.write(0, u64::MAX);
        assert_eq!((w.read(0), w.read(1), w.read(2)), (u64::MAX, 0, 0x1234));
        assert_eq!(SharedWords::<2>::with(7).read(1), 7);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn out_of_range_panics() {
        SharedWords::<1>::new().read(1);
    }
}
