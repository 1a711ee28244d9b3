//! Reading the relocation figures from the serial console.
//!
//! The EL1 planner and the EL2 engine each print one line (numbers in decimal):
//!
//! ```text
//! reloc: <N> bytes staged in <S> pages; <L> list pages, <T> page-table pages; engine at 0x..., argument block at 0x...; copy with the MMU and caches on
//! reloc: copied <B> bytes (<P> pages) in <K> ticks at <F> Hz: <U> us, <R> MiB/s with the MMU and caches on
//! ```
//!
//! (`... copy with the MMU off` / `... with the MMU off` when copying without it). K is
//! the generic counter's ticks spent copying (walking the list, copying, cache
//! maintenance) and F its frequency (CNTFRQ_EL0).

/// Which way the engine copied, as the console says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMmu {
    /// "with the MMU and caches on"
    On,
    /// "with the MMU off"
    Off,
}

impl CopyMmu {
    fn from_tail(tail: &str) -> Option<CopyMmu> {
        match tail.trim_end() {
            "with the MMU and caches on" => Some(CopyMmu::On),
            "with the MMU off" => Some(CopyMmu::Off),
            _ => None,
        }
    }
}

/// The planner's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannerLine {
    /// Bytes staged (payload, DTB and whatever else is copied).
    pub staged_bytes: u64,
    /// Pages they occupy.
    pub staged_pages: u64,
    /// Pages of the page list.
    pub list_pages: u64,
    /// Pages of the EL2 identity map (0 without the MMU).
    pub table_pages: u64,
    /// How the engine is asked to copy.
    pub mmu: CopyMmu,
}

/// The engine's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineLine {
    /// Bytes copied (whole pages).
    pub bytes: u64,
    /// Pages copied.
    pub pages: u64,
    /// Counter ticks spent copying.
    pub ticks: u64,
    /// Counter frequency in Hz.
    pub freq_hz: u64,
    /// The engine's own figure: microseconds.
    pub micros: u64,
    /// The engine's own figure: MiB/s.
    pub mib_per_s: u64,
    /// How it copied.
    pub mmu: CopyMmu,
}

impl EngineLine {
    /// Seconds spent copying, by the guest's counter.
    pub fn seconds(&self) -> f64 {
        self.ticks as f64 / self.freq_hz as f64
    }

    /// MiB/s from the ticks (more digits than the engine prints).
    pub fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / (1u64 << 20) as f64 / self.seconds()
    }

    /// Nanoseconds of guest time spent copying. Under `-icount shift=0` every instruction
    /// advances the guest's clock by exactly 1 ns, so this is also the number of
    /// instructions executed.
    pub fn guest_nanos(&self) -> f64 {
        self.ticks as f64 * 1e9 / self.freq_hz as f64
    }
}

/// A cursor over one line: expect literal text, read decimal numbers.
struct Scan<'a>(&'a str);

impl<'a> Scan<'a> {
    fn lit(&mut self, text: &str) -> Option<()> {
        self.0 = self.0.strip_prefix(text)?;
        Some(())
    }

    fn num(&mut self) -> Option<u64> {
        let end = self
            .0
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.0.len());
        let (digits, rest) = self.0.split_at(end);
        self.0 = rest;
        digits.parse().ok()
    }

    /// Skips past the next `text`.
    fn past(&mut self, text: &str) -> Option<()> {
        let at = self.0.find(text)?;
        self.0 = &self.0[at + text.len()..];
        Some(())
    }
}

/// For each line of `log` with `reloc: ` followed somewhere by `needle`: the text after
/// `reloc: ` (the firmware's timestamp and level, when present, come before it).
fn reloc_lines<'a>(log: &'a str, needle: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    log.lines().filter_map(move |line| {
        let at = line.find("reloc: ")?;
        let rest = &line[at + "reloc: ".len()..];
        rest.contains(needle).then_some(rest)
    })
}

/// Reads the planner's line from a console log.
pub fn planner_line(log: &str) -> Option<PlannerLine> {
    reloc_lines(log, " bytes staged in ").find_map(|rest| {
        let mut s = Scan(rest);
        let staged_bytes = s.num()?;
        s.lit(" bytes staged in ")?;
        let staged_pages = s.num()?;
        s.lit(" pages; ")?;
        let list_pages = s.num()?;
        s.lit(" list pages, ")?;
        let table_pages = s.num()?;
        s.lit(" page-table pages;")?;
        s.past("; copy ")?;
        let mmu = CopyMmu::from_tail(s.0)?;
        Some(PlannerLine {
            staged_bytes,
            staged_pages,
            list_pages,
            table_pages,
            mmu,
        })
    })
}

/// Reads the engine's line from a console log.
pub fn engine_line(log: &str) -> Option<EngineLine> {
    reloc_lines(log, "copied ").find_map(|rest| {
        let mut s = Scan(rest);
        s.lit("copied ")?;
        let bytes = s.num()?;
        s.lit(" bytes (")?;
        let pages = s.num()?;
        s.lit(" pages) in ")?;
        let ticks = s.num()?;
        s.lit(" ticks at ")?;
        let freq_hz = s.num()?;
        s.lit(" Hz: ")?;
        let micros = s.num()?;
        s.lit(" us, ")?;
        let mib_per_s = s.num()?;
        s.lit(" MiB/s ")?;
        let mmu = CopyMmu::from_tail(s.0)?;
        (freq_hz > 0 && ticks > 0).then_some(EngineLine {
            bytes,
            pages,
            ticks,
            freq_hz,
            micros,
            mib_per_s,
            mmu,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[    0.045882] INFO  reloc: 4226774 bytes staged in 1033 pages; 3 list pages, 5 page-table pages; engine at 0x4049c000, argument block at 0x404a1000; copy with the MMU and caches on
[    0.046476] INFO  reloc: HVC_SOFT_RESTART to the engine at 0x4049c000 with the block at 0x404a1000
reloc: copied 4231168 bytes (1033 pages) in 7489410 ticks at 1000000000 Hz: 7489 us, 538 MiB/s with the MMU and caches on
reloc: digests of every destination range match
";

    #[test]
    fn reads_both_lines() {
        assert_eq!(
            planner_line(LOG),
            Some(PlannerLine {
                staged_bytes: 4_226_774,
                staged_pages: 1033,
                list_pages: 3,
                table_pages: 5,
                mmu: CopyMmu::On,
            })
        );
        let engine = engine_line(LOG).unwrap();
        assert_eq!(
            engine,
            EngineLine {
                bytes: 4_231_168,
                pages: 1033,
                ticks: 7_489_410,
                freq_hz: 1_000_000_000,
                micros: 7489,
                mib_per_s: 538,
                mmu: CopyMmu::On,
            }
        );
        assert!((engine.guest_nanos() - 7_489_410.0).abs() < 1e-6);
        assert!((engine.mib_per_second() - 538.8).abs() < 0.1);
    }

    #[test]
    fn mmu_off_and_other_frequencies() {
        let log = "INFO  reloc: 30102 bytes staged in 8 pages; 1 list pages, 0 page-table pages; \
                   engine at 0x4021b000, argument block at 0x40226000; copy with the MMU off\r\n\
                   reloc: copied 32768 bytes (8 pages) in 625 ticks at 62500000 Hz: 10 us, \
                   3125 MiB/s with the MMU off\r\n";
        let planner = planner_line(log).unwrap();
        assert_eq!((planner.table_pages, planner.mmu), (0, CopyMmu::Off));
        let engine = engine_line(log).unwrap();
        assert_eq!(engine.mmu, CopyMmu::Off);
        assert!((engine.guest_nanos() - 10_000.0).abs() < 1e-6);
    }

    #[test]
    fn rejects_other_lines() {
        assert_eq!(
            planner_line("reloc: digests of every destination range match"),
            None
        );
        assert_eq!(engine_line("reloc: copied lots of bytes"), None);
        assert_eq!(
            engine_line("reloc: copied 1 bytes (1 pages) in 0 ticks at 0 Hz: 0 us, 0 MiB/s with the MMU off"),
            None
        );
        assert_eq!(engine_line(""), None);
    }
}
