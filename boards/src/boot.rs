//! Steps of the EL1 stage that every board's boot story takes the same way: reading the
//! CPU's relevant features, reporting the options, filling staging pages.

use core::ops::Range;

use loader::options::{El, Options};
use log::info;

/// The CPU's physical address size (ID_AA64MMFR0_EL1.PARange), for the relocation plan.
#[cfg(target_arch = "aarch64")]
#[must_use]
pub fn pa_bits() -> u32 {
    use aarch64_cpu::registers::{Readable, ID_AA64MMFR0_EL1};
    pa_range_bits(ID_AA64MMFR0_EL1.get() & 0xf)
}

/// ID_AA64ISAR0_EL1 field `shift` (4 bits) is non-zero: the instructions it describes exist
/// (Arm ARM D19.2: SHA2 at 12, CRC32 at 16).
#[cfg(target_arch = "aarch64")]
#[must_use]
pub fn isar0_has(shift: u32) -> bool {
    use aarch64_cpu::registers::{Readable, ID_AA64ISAR0_EL1};
    (ID_AA64ISAR0_EL1.get() >> shift) & 0xf != 0
}

/// Whether to use a CPU's instructions for a hash, decided once: they exist
/// ([`isar0_has`]) and agree with the portable code on a message ([`Probe::usable`]).
#[cfg(target_arch = "aarch64")]
pub struct Probe(core::sync::atomic::AtomicU8);

#[cfg(target_arch = "aarch64")]
impl Probe {
    /// Not yet decided.
    #[must_use]
    pub const fn new() -> Self {
        Self(core::sync::atomic::AtomicU8::new(0))
    }

    /// The decision: on the first call, `present` and then `agrees`, with a warning naming
    /// `what` when the instructions exist but disagree with the portable code.
    pub fn usable(&self, what: &str, present: bool, agrees: impl FnOnce() -> bool) -> bool {
        use core::sync::atomic::Ordering;
        match self.0.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let ok = present && agrees();
                if present && !ok {
                    log::warn!("{what}: the CPU's instructions disagree with the portable code: not using them");
                }
                self.0.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
                ok
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

/// The bits a PARange value stands for: the stub's decoding, so both agree.
pub use el2_stub::regs::pa_range_bits;

/// Logs the options in effect and the command line they came from.
pub fn report_options(opts: &Options, raw: &str) {
    info!(
        "options: el={} copy={:?} verify={} inplace={} log={} (command line \"{raw}\")",
        if opts.el == El::One { 1 } else { 2 },
        opts.copy,
        if opts.verify { "on" } else { "off" },
        if opts.inplace { "on" } else { "off" },
        opts.log
    );
}

/// The MPIDRs among `mpidrs` that `slot` (the board's `el2_stub::Platform::cpu_slot`)
/// gives no stub slot: with `hypstub.el=1` the stub can never start them.
#[must_use]
pub fn cpus_without_slot(
    mpidrs: impl IntoIterator<Item = u64>,
    slot: impl Fn(u64) -> Option<usize>,
) -> alloc::vec::Vec<u64> {
    mpidrs.into_iter().filter(|&m| slot(m).is_none()).collect()
}

/// Warns, with `hypstub.el=1`, about the CPUs the stub can never start (see
/// [`cpus_without_slot`]), before the payload finds out by a refused CPU_ON.
pub fn warn_cpus_without_slot(without: &[u64], total: usize) {
    if let (Some(first), Some(last)) = (without.first(), without.last()) {
        log::warn!(
            "cpus: {} of the {total} CPUs (MPIDR {first:#x} to {last:#x}) can never be started through the stub with hypstub.el=1: it has {} CPU slots, for MPIDR Aff0 0 to {} with Aff1..Aff3 zero; CPU_ON of them will be refused",
            without.len(),
            el2_stub::cpus::MAX_CPUS,
            el2_stub::cpus::MAX_CPUS - 1
        );
    }
}

/// "yes" or "no".
#[must_use]
pub fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Copies `bytes` into the staging `runs` in order, zero-filling what is left of the last
/// one.
///
/// # Safety
/// Every run must be RAM the relocation planner allocated for this segment, mapped as data
/// (VA = PA) and used by nothing else.
pub unsafe fn copy_into(runs: &[Range<u64>], mut bytes: &[u8]) {
    for r in runs {
        let n = ((r.end - r.start) as usize).min(bytes.len());
        // SAFETY: per the caller's contract.
        let dst = unsafe {
            core::slice::from_raw_parts_mut(r.start as *mut u8, (r.end - r.start) as usize)
        };
        dst[..n].copy_from_slice(&bytes[..n]);
        dst[n..].fill(0);
        bytes = &bytes[n..];
    }
}

/// The highest `size`-byte range, aligned to `align` (a power of two), inside `bank` and
/// overlapping none of `avoid`: free RAM for the EL1 stage to work in, away from the low
/// memory where payloads go.
#[must_use]
pub fn free_area(
    bank: &Range<u64>,
    avoid: &[Range<u64>],
    size: u64,
    align: u64,
) -> Option<Range<u64>> {
    let mut end = bank.end;
    loop {
        let start = end.checked_sub(size)? & !(align - 1);
        if start < bank.start {
            return None;
        }
        let r = start..start + size;
        match avoid
            .iter()
            .filter(|a| a.start < r.end && r.start < a.end)
            .map(|a| a.start)
            .min()
        {
            None => return Some(r),
            Some(lowest) => end = lowest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_area_is_the_highest_fit() {
        let bank = 0..0x3c00_0000;
        assert_eq!(
            free_area(&bank, &[], 0x80_0000, 0x20_0000),
            Some(0x3b80_0000..0x3c00_0000)
        );
        // The DTB near the top pushes it below; the FIT below that too.
        let avoid = [
            0x3bf0_0000..0x3bf1_0000,
            0x3b00_0000..0x3b90_0000,
            0..0x20_0000,
        ];
        assert_eq!(
            free_area(&bank, &avoid, 0x80_0000, 0x20_0000),
            Some(0x3a80_0000..0x3b00_0000)
        );
        assert_eq!(
            free_area(
                &(0..0x40_0000),
                core::slice::from_ref(&(0..0x20_0000)),
                0x80_0000,
                0x20_0000
            ),
            None
        );
        assert_eq!(
            free_area(
                &(0..0x80_0000),
                core::slice::from_ref(&(0x10_0000..0x10_1000)),
                0x80_0000,
                0x20_0000
            ),
            None
        );
    }

    #[test]
    fn cpus_past_the_slots_are_named() {
        let cpus = (0..16).map(|aff0| 0x8000_0000 | aff0);
        let without = cpus_without_slot(cpus, el2_stub::cpus::slot_of);
        assert_eq!(without.len(), 8);
        assert_eq!(without[0], 0x8000_0008);
        assert_eq!(without[7], 0x8000_000f);
        assert!(cpus_without_slot([0, 1, 7], el2_stub::cpus::slot_of).is_empty());
    }

    #[test]
    fn copies_and_zero_fills() {
        let mut a = [0xffu8; 8];
        let mut b = [0xffu8; 8];
        let runs = [
            a.as_mut_ptr() as u64..a.as_mut_ptr() as u64 + 8,
            b.as_mut_ptr() as u64..b.as_mut_ptr() as u64 + 8,
        ];
        // SAFETY: the runs are the two local arrays.
        unsafe { copy_into(&runs, &[1; 10]) };
        assert_eq!(a, [1; 8]);
        assert_eq!(b, [1, 1, 0, 0, 0, 0, 0, 0]);
    }
}
