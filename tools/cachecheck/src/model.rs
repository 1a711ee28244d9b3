//! The cache model: pure Rust, no QEMU.
//!
//! One shared data cache (the Point of Coherency is shared by every CPU, so one model
//! serves them all) and one instruction cache, both by 64-byte line of physical address.
//! Each line the program touches has a state:
//!
//! - the data cache: not present (`Invalid`), present and equal to memory (`Clean`),
//!   present and newer than memory (`Dirty`), or present and older than memory because
//!   memory changed behind it (`Stale`: a non-cacheable store or a DMA write while the
//!   line was in the cache); and whether dirty data has reached the Point of Unification
//!   (what instruction fetches read);
//! - the instruction cache: whether it may hold an older copy of the line than the Point
//!   of Unification, i.e. the line was written (or made visible at the PoU) after the last
//!   `IC IALLU`/`IVAU` that covered it.
//!
//! The operations are the accesses (cacheable or not, as the caller decides from the
//! translation regime), DMA by other masters, and the maintenance instructions. Each
//! violation is reported once per (line, kind).

use std::collections::{HashMap, HashSet};

use crate::decode::DcOp;

/// Line size of the model, in bytes.
pub const LINE: u64 = 64;

/// How the model is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// Every line starts "possibly cached": clean but present in the data cache (as on a
    /// real machine after earlier software ran with its caches on), so a later
    /// non-cacheable writer followed by a cacheable reader without an invalidate is
    /// caught. Off: every line starts not present.
    pub possibly_cached: bool,
    /// Ignore CTR_EL0.IDC and DIC: demand the clean to PoU and the I-cache invalidate even
    /// where the CPU says they are not needed.
    pub strict: bool,
    /// CTR_EL0.IDC: data-cache clean to the PoU is not needed for instruction-to-data
    /// coherence.
    pub idc: bool,
    /// CTR_EL0.DIC: instruction-cache invalidation is not needed for
    /// instruction-to-data coherence.
    pub dic: bool,
}

/// The kinds of violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// 1: a non-cacheable load or fetch (or a DMA read) of a line dirty in the cache: the
    /// clean is missing.
    DirtyRead,
    /// 2: a cacheable load or fetch of a line whose memory changed behind the cache (or a
    /// cacheable store merged into such a line): the invalidate is missing.
    Stale,
    /// 3: `DC IVAC` of a dirty line (its data is lost), or a non-cacheable store or DMA
    /// write over a dirty line (a later write-back overwrites it).
    DirtyLost,
    /// 4: an instruction fetch of code written but not cleaned to the PoU and invalidated
    /// from the instruction cache.
    StaleCode,
}

impl Kind {
    /// The number used in reports (1 to 4).
    pub fn number(self) -> u8 {
        match self {
            Kind::DirtyRead => 1,
            Kind::Stale => 2,
            Kind::DirtyLost => 3,
            Kind::StaleCode => 4,
        }
    }

    /// Whether the violation is blamed on the writer of the dirty data as well as the
    /// instruction that hit it (a missing clean is the writer's to do).
    pub fn blames_writer(self) -> bool {
        matches!(self, Kind::DirtyRead | Kind::DirtyLost | Kind::StaleCode)
    }
}

/// Who made an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Who {
    /// The program counter of the instruction (for DMA, the store that started it).
    pub pc: u64,
    /// Its exception level.
    pub el: u8,
}

/// One reported violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The kind.
    pub kind: Kind,
    /// What happened, in a few words.
    pub what: &'static str,
    /// The instruction that hit it.
    pub who: Who,
    /// The physical address of the access (its first byte in the line).
    pub pa: u64,
    /// The last cacheable store to the line, if any.
    pub last_store: Option<Who>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum D {
    Invalid,
    Clean,
    Dirty,
    Stale,
}

#[derive(Debug, Clone, Copy)]
struct Line {
    d: D,
    /// Dirty data not yet at the Point of Unification (only meaningful when `d` is Dirty).
    pou_dirty: bool,
    /// The instruction cache may hold an older copy if this equals the model's current
    /// I-cache epoch (bumped by every `IC IALLU`).
    ic_mark: Option<u64>,
    last_store: Option<Who>,
    /// The bytes of the line written by cacheable stores since it became dirty (bit `i` =
    /// byte `i`): a non-cacheable reader of other bytes of a dirty line reads what the
    /// program last wrote there, which memory still holds, so only these bytes make a
    /// missing clean visible (kind 1). Meaningful only when `d` is Dirty.
    dirty_bytes: u64,
}

/// The bytes of line `n` that `[pa, pa + len)` covers, as a mask (bit `i` = byte `i`).
fn byte_mask(n: u64, pa: u64, len: u64) -> u64 {
    let start = pa.max(n * LINE);
    let end = pa.saturating_add(len.max(1)).min((n + 1) * LINE);
    if end <= start {
        return 0;
    }
    let (lo, hi) = (start - n * LINE, end - n * LINE);
    let upto = |b: u64| if b >= 64 { u64::MAX } else { (1u64 << b) - 1 };
    upto(hi) & !upto(lo)
}

/// The model.
#[derive(Debug, Default)]
pub struct Model {
    config: Config,
    /// Words other CPUs poll with their MMU off (spin-table release words): a poll that
    /// reads before the writer's clean just reads the old value and polls again, so a
    /// non-cacheable load of dirty bytes there is held back, dropped when the line is
    /// cleaned, and flagged only if it never is ([`Model::finish`]).
    polled: Vec<(u64, u64)>,
    /// Held-back polls: line -> (who, pa).
    pending_polls: HashMap<u64, (Who, u64)>,
    lines: HashMap<u64, Line>,
    ic_epoch: u64,
    seen: HashSet<(u64, Kind)>,
    violations: Vec<Violation>,
    /// Maintenance operations applied (by VA taken as PA), plus `IC IALLU`.
    pub maintenance_ops: u64,
}

fn lines_of(pa: u64, len: u64) -> impl Iterator<Item = u64> {
    let first = pa / LINE;
    let last = if len == 0 {
        first
    } else {
        pa.saturating_add(len - 1) / LINE
    };
    first..=last
}

impl Model {
    /// A model with nothing cached (or everything possibly cached, as configured).
    pub fn new(config: Config) -> Self {
        Model {
            config,
            ..Model::default()
        }
    }

    /// Marks `[start, end)` as polled by other CPUs (see the field `polled`).
    pub fn add_polled(&mut self, start: u64, end: u64) {
        self.polled.push((start, end));
    }

    fn is_polled(&self, pa: u64, len: u64) -> bool {
        self.polled
            .iter()
            .any(|&(s, e)| pa < e && s < pa.saturating_add(len))
    }

    /// At the end of the run: every held-back poll of a line that was never cleaned
    /// afterwards is a missing clean (kind 1).
    pub fn finish(&mut self) {
        let mut pending: Vec<(u64, (Who, u64))> = self.pending_polls.drain().collect();
        pending.sort_by_key(|&(n, _)| n);
        for (n, (who, pa)) in pending {
            self.flag(
                n,
                Kind::DirtyRead,
                "non-cacheable poll of a word dirty in the cache, never cleaned (clean missing)",
                who,
                pa,
            );
        }
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.config
    }

    /// Sets CTR_EL0.IDC and DIC (read from the CPU once it is known).
    pub fn set_ctr(&mut self, idc: bool, dic: bool) {
        self.config.idc = idc;
        self.config.dic = dic;
    }

    /// Lines the model holds state for.
    pub fn lines_tracked(&self) -> usize {
        self.lines.len()
    }

    /// Every violation so far, in the order found.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    fn need_pou_clean(&self) -> bool {
        self.config.strict || !self.config.idc
    }

    fn need_ic_inval(&self) -> bool {
        self.config.strict || !self.config.dic
    }

    fn line(&mut self, n: u64) -> &mut Line {
        let d = if self.config.possibly_cached {
            D::Clean
        } else {
            D::Invalid
        };
        self.lines.entry(n).or_insert(Line {
            d,
            pou_dirty: false,
            ic_mark: None,
            last_store: None,
            dirty_bytes: 0,
        })
    }

    fn flag(&mut self, n: u64, kind: Kind, what: &'static str, who: Who, pa: u64) {
        if self.seen.insert((n, kind)) {
            let last_store = self.lines.get(&n).and_then(|l| l.last_store);
            let pa = pa.max(n * LINE);
            self.violations.push(Violation {
                kind,
                what,
                who,
                pa,
                last_store,
            });
        }
    }

    /// A load of `len` bytes at `pa`.
    pub fn load(&mut self, pa: u64, len: u64, cacheable: bool, who: Who) {
        for n in lines_of(pa, len) {
            let d = self.line(n).d;
            match (cacheable, d) {
                (true, D::Invalid) => self.line(n).d = D::Clean,
                (true, D::Stale) => self.flag(
                    n,
                    Kind::Stale,
                    "cacheable load of a line changed in memory behind the cache (invalidate missing)",
                    who,
                    pa,
                ),
                (false, D::Dirty)
                    if self.line(n).dirty_bytes & byte_mask(n, pa, len) != 0
                        && self.is_polled(pa, len) =>
                {
                    self.pending_polls.entry(n).or_insert((who, pa));
                }
                (false, D::Dirty) if self.line(n).dirty_bytes & byte_mask(n, pa, len) != 0 => {
                    self.flag(
                        n,
                        Kind::DirtyRead,
                        "non-cacheable load of a line dirty in the cache (clean missing)",
                        who,
                        pa,
                    )
                }
                _ => {}
            }
        }
    }

    /// A store of `len` bytes at `pa`.
    pub fn store(&mut self, pa: u64, len: u64, cacheable: bool, who: Who) {
        for n in lines_of(pa, len) {
            if cacheable {
                if self.line(n).d == D::Stale {
                    self.flag(
                        n,
                        Kind::Stale,
                        "cacheable store into a line changed in memory behind the cache (invalidate missing)",
                        who,
                        pa,
                    );
                }
                let epoch = self.ic_epoch;
                let line = self.line(n);
                if line.d != D::Dirty {
                    line.dirty_bytes = 0;
                }
                line.dirty_bytes |= byte_mask(n, pa, len);
                line.d = D::Dirty;
                line.pou_dirty = true;
                line.ic_mark = Some(epoch);
                line.last_store = Some(who);
            } else {
                self.write_behind(
                    n,
                    pa,
                    who,
                    "non-cacheable store over a line dirty in the cache (a later write-back overwrites it)",
                );
            }
        }
    }

    /// Memory written without the cache (a non-cacheable store, DMA).
    fn write_behind(&mut self, n: u64, pa: u64, who: Who, what: &'static str) {
        let epoch = self.ic_epoch;
        let d = self.line(n).d;
        match d {
            D::Dirty => self.flag(n, Kind::DirtyLost, what, who, pa),
            D::Clean => self.line(n).d = D::Stale,
            D::Invalid | D::Stale => {}
        }
        self.line(n).ic_mark = Some(epoch);
    }

    /// An instruction fetch of `len` bytes at `pa`; `cacheable`: through the instruction
    /// cache (SCTLR_ELx.I), else straight from memory.
    pub fn fetch(&mut self, pa: u64, len: u64, cacheable: bool, who: Who) {
        for n in lines_of(pa, len) {
            let line = *self.line(n);
            if !cacheable {
                if line.d == D::Dirty && line.dirty_bytes & byte_mask(n, pa, len) != 0 {
                    self.flag(
                        n,
                        Kind::DirtyRead,
                        "non-cacheable instruction fetch of a line dirty in the data cache (clean missing)",
                        who,
                        pa,
                    );
                }
                continue;
            }
            if line.d == D::Stale {
                self.flag(
                    n,
                    Kind::Stale,
                    "cacheable instruction fetch of a line changed in memory behind the cache (invalidate missing)",
                    who,
                    pa,
                );
            }
            if line.d == D::Dirty && line.pou_dirty && self.need_pou_clean() {
                self.flag(
                    n,
                    Kind::StaleCode,
                    "instruction fetch of code not cleaned to the PoU",
                    who,
                    pa,
                );
            } else if line.ic_mark == Some(self.ic_epoch) && self.need_ic_inval() {
                self.flag(
                    n,
                    Kind::StaleCode,
                    "instruction fetch of code written but not invalidated from the I-cache",
                    who,
                    pa,
                );
            }
        }
    }

    /// Another master read `len` bytes at `pa` from memory (e.g. a DMA descriptor or a
    /// buffer sent to a device).
    pub fn dma_read(&mut self, pa: u64, len: u64, who: Who) {
        for n in lines_of(pa, len) {
            let line = *self.line(n);
            if line.d == D::Dirty && line.dirty_bytes & byte_mask(n, pa, len) != 0 {
                self.flag(
                    n,
                    Kind::DirtyRead,
                    "DMA read of a line dirty in the cache (clean missing)",
                    who,
                    pa,
                );
            }
        }
    }

    /// Another master wrote `len` bytes at `pa` in memory.
    pub fn dma_write(&mut self, pa: u64, len: u64, who: Who) {
        for n in lines_of(pa, len) {
            self.write_behind(
                n,
                pa,
                who,
                "DMA write over a line dirty in the cache (a later write-back overwrites it)",
            );
        }
    }

    /// A data-cache operation on the line holding `pa` (by VA, taken as PA).
    pub fn dc(&mut self, op: DcOp, pa: u64, cacheable: bool, who: Who) {
        self.maintenance_ops += 1;
        let n = pa / LINE;
        match op {
            DcOp::SetWay => {}
            DcOp::Zva => self.store(n * LINE, LINE, cacheable, who),
            DcOp::Cvau => {
                let epoch = self.ic_epoch;
                let line = self.line(n);
                if line.d == D::Dirty && line.pou_dirty {
                    line.pou_dirty = false;
                    // The I-cache may have filled from the PoU before this clean.
                    line.ic_mark = Some(epoch);
                }
            }
            DcOp::Cvac => {
                self.pending_polls.remove(&n);
                let epoch = self.ic_epoch;
                let line = self.line(n);
                if line.d == D::Dirty {
                    if line.pou_dirty {
                        line.ic_mark = Some(epoch);
                    }
                    line.d = D::Clean;
                    line.pou_dirty = false;
                }
            }
            DcOp::Civac => {
                self.pending_polls.remove(&n);
                let epoch = self.ic_epoch;
                let line = self.line(n);
                if line.d == D::Dirty && line.pou_dirty {
                    line.ic_mark = Some(epoch);
                }
                line.d = D::Invalid;
                line.pou_dirty = false;
            }
            DcOp::Ivac => {
                if self.line(n).d == D::Dirty {
                    self.flag(
                        n,
                        Kind::DirtyLost,
                        "DC IVAC of a dirty line (its data is lost)",
                        who,
                        pa,
                    );
                }
                let line = self.line(n);
                line.d = D::Invalid;
                line.pou_dirty = false;
            }
        }
    }

    /// `IC IALLU` / `IC IALLUIS`.
    pub fn ic_iallu(&mut self) {
        self.maintenance_ops += 1;
        self.ic_epoch += 1;
    }

    /// `IC IVAU` of the line holding `pa` (by VA, taken as PA).
    pub fn ic_ivau(&mut self, pa: u64) {
        self.maintenance_ops += 1;
        let line = self.line(pa / LINE);
        // Invalidating while the data is still dirty at the PoU does not help: the I-cache
        // can refill with the old data.
        if !(line.d == D::Dirty && line.pou_dirty) {
            line.ic_mark = None;
        }
    }

    /// Counts a maintenance operation the model could not apply (an address that is not a
    /// physical one).
    pub fn count_unmapped_op(&mut self) {
        self.maintenance_ops += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u64 = 0x4010_0040;
    const W: Who = Who { pc: 0x1000, el: 1 };
    const R: Who = Who { pc: 0x2000, el: 2 };

    fn model() -> Model {
        Model::new(Config::default())
    }

    fn kinds(m: &Model) -> Vec<u8> {
        m.violations().iter().map(|v| v.kind.number()).collect()
    }

    #[test]
    fn missing_clean_before_mmu_off_read() {
        let mut m = model();
        m.store(A, 8, true, W);
        m.load(A, 8, false, R);
        assert_eq!(kinds(&m), [1]);
        let v = &m.violations()[0];
        assert_eq!(v.who, R);
        assert_eq!(v.pa, A);
        assert_eq!(v.last_store, Some(W));
        // Reported once per line and kind.
        m.load(A + 8, 8, false, R);
        assert_eq!(m.violations().len(), 1);
    }

    #[test]
    fn clean_then_mmu_off_read_is_fine() {
        for op in [DcOp::Cvac, DcOp::Civac] {
            let mut m = model();
            m.store(A, 8, true, W);
            m.dc(op, A + 0x30, true, W);
            m.load(A, 8, false, R);
            assert!(m.violations().is_empty(), "{op:?}");
            assert_eq!(m.maintenance_ops, 1);
        }
    }

    #[test]
    fn clean_covers_only_its_line() {
        let mut m = model();
        m.store(A, 0x80, true, W); // two lines
        m.dc(DcOp::Cvac, A, true, W);
        m.load(A, 0x80, false, R);
        assert_eq!(kinds(&m), [1]);
        assert_eq!(m.violations()[0].pa, A + LINE);
    }

    #[test]
    fn cvau_is_not_a_clean_to_poc() {
        let mut m = model();
        m.store(A, 8, true, W);
        m.dc(DcOp::Cvau, A, true, W);
        m.load(A, 8, false, R);
        assert_eq!(kinds(&m), [1]);
    }

    #[test]
    fn dma_without_invalidate_is_stale() {
        let mut m = model();
        m.load(A, 8, true, R); // the line is now in the cache
        m.dma_write(A, 64, W);
        m.load(A, 8, true, R);
        assert_eq!(kinds(&m), [2]);
    }

    #[test]
    fn invalidate_after_dma_is_fine() {
        for op in [DcOp::Ivac, DcOp::Civac] {
            let mut m = model();
            m.load(A, 8, true, R);
            m.dma_write(A, 64, W);
            m.dc(op, A, true, R);
            m.load(A, 8, true, R);
            assert!(m.violations().is_empty(), "{op:?}");
        }
    }

    #[test]
    fn dma_into_a_dirty_line() {
        let mut m = model();
        m.store(A, 8, true, W);
        m.dma_write(A, 64, R);
        assert_eq!(kinds(&m), [3]);
        assert_eq!(m.violations()[0].last_store, Some(W));
    }

    #[test]
    fn clean_invalidate_then_dma_then_invalidate_is_fine() {
        let mut m = model();
        m.store(A, 8, true, W);
        m.dc(DcOp::Civac, A, true, W);
        m.dma_write(A, 64, R);
        m.dc(DcOp::Ivac, A, true, W);
        m.load(A, 8, true, W);
        assert!(m.violations().is_empty());
    }

    #[test]
    fn dma_read_of_a_dirty_descriptor() {
        let mut m = model();
        m.store(A, 16, true, W);
        m.dma_read(A, 16, R);
        assert_eq!(kinds(&m), [1]);
        let mut m = model();
        m.store(A, 16, true, W);
        m.dc(DcOp::Cvac, A, true, W);
        m.dma_read(A, 16, R);
        assert!(m.violations().is_empty());
    }

    #[test]
    fn ivac_of_a_dirty_line_loses_data() {
        let mut m = model();
        m.store(A, 8, true, W);
        m.dc(DcOp::Ivac, A, true, R);
        assert_eq!(kinds(&m), [3]);
        // Afterwards the line is gone: a non-cacheable read is fine.
        m.load(A, 8, false, R);
        assert_eq!(kinds(&m), [3]);
    }

    #[test]
    fn non_cacheable_store_over_dirty_line() {
        let mut m = model();
        m.store(A, 8, true, W);
        m.store(A, 8, false, R);
        assert_eq!(kinds(&m), [3]);
    }

    #[test]
    fn non_cacheable_traffic_alone_is_fine() {
        let mut m = model();
        m.store(A, 8, false, W);
        m.load(A, 8, false, R);
        m.fetch(A, 4, false, R);
        // Without possibly-cached, a line never cached cannot be stale.
        m.load(A, 8, true, R);
        assert!(m.violations().is_empty());
    }

    #[test]
    fn possibly_cached_catches_a_missing_invalidate() {
        let cfg = Config {
            possibly_cached: true,
            ..Config::default()
        };
        let mut m = Model::new(cfg);
        m.store(A, 8, false, W); // e.g. MMU-off RAM set-up
        m.load(A, 8, true, R); // MMU on, no invalidate first
        assert_eq!(kinds(&m), [2]);

        let mut m = Model::new(cfg);
        m.store(A, 8, false, W);
        m.dc(DcOp::Ivac, A, false, R);
        m.load(A, 8, true, R);
        assert!(m.violations().is_empty());
        // A cacheable store into a stale line merges old bytes: flagged too.
        let mut m = Model::new(cfg);
        m.store(A, 8, false, W);
        m.store(A + 8, 8, true, R);
        assert_eq!(kinds(&m), [2]);
    }

    #[test]
    fn code_written_and_executed() {
        let mut m = model();
        m.store(A, 64, true, W);
        m.fetch(A, 4, true, R);
        assert_eq!(kinds(&m), [4]);
        assert_eq!(
            m.violations()[0].what,
            "instruction fetch of code not cleaned to the PoU"
        );

        // Cleaned but not invalidated from the I-cache.
        let mut m = model();
        m.store(A, 64, true, W);
        m.dc(DcOp::Cvau, A, true, W);
        m.fetch(A, 4, true, R);
        assert_eq!(kinds(&m), [4]);
    }

    #[test]
    fn code_cleaned_and_invalidated_is_fine() {
        for clean in [DcOp::Cvau, DcOp::Cvac, DcOp::Civac] {
            let mut m = model();
            m.store(A, 64, true, W);
            m.dc(clean, A, true, W);
            m.ic_iallu();
            m.fetch(A, 4, true, R);
            if clean != DcOp::Cvau {
                // Only a clean to the PoC serves a fetch with the I-cache off.
                m.fetch(A, 4, false, R);
            }
            assert!(m.violations().is_empty(), "{clean:?}");
        }
        let mut m = model();
        m.store(A, 64, true, W);
        m.dc(DcOp::Cvau, A, true, W);
        m.ic_ivau(A);
        m.fetch(A, 4, true, R);
        assert!(m.violations().is_empty());
    }

    #[test]
    fn invalidating_the_icache_before_the_clean_is_not_enough() {
        let mut m = model();
        m.store(A, 64, true, W);
        m.ic_iallu();
        m.dc(DcOp::Cvau, A, true, W);
        m.fetch(A, 4, true, R);
        assert_eq!(kinds(&m), [4]);
    }

    #[test]
    fn code_copied_with_the_mmu_off_needs_the_icache_invalidate() {
        let mut m = model();
        m.store(A, 64, false, W);
        m.fetch(A, 4, true, R);
        assert_eq!(kinds(&m), [4]);
        let mut m = model();
        m.store(A, 64, false, W);
        m.ic_iallu();
        m.fetch(A, 4, true, R);
        assert!(m.violations().is_empty());
    }

    #[test]
    fn ctr_idc_and_dic_and_strict() {
        let mut m = model();
        m.set_ctr(true, true);
        m.store(A, 64, true, W);
        m.fetch(A, 4, true, R);
        assert!(m.violations().is_empty());

        let mut m = Model::new(Config {
            strict: true,
            ..Config::default()
        });
        m.set_ctr(true, true);
        m.store(A, 64, true, W);
        m.fetch(A, 4, true, R);
        assert_eq!(kinds(&m), [4]);

        // IDC alone: the clean is not needed, the invalidate is.
        let mut m = model();
        m.set_ctr(true, false);
        m.store(A, 64, true, W);
        m.fetch(A, 4, true, R);
        assert_eq!(kinds(&m), [4]);
        let mut m = model();
        m.set_ctr(true, false);
        m.store(A, 64, true, W);
        m.ic_iallu();
        m.fetch(A, 4, true, R);
        assert!(m.violations().is_empty());
    }

    #[test]
    fn non_cacheable_fetch_of_dirty_code() {
        let mut m = model();
        m.store(A, 64, true, W);
        m.ic_iallu();
        m.fetch(A, 4, false, R);
        assert_eq!(kinds(&m), [1]);
    }

    #[test]
    fn zva_is_a_store_of_the_line() {
        let mut m = model();
        m.dc(DcOp::Zva, A + 8, true, W);
        m.load(A + 0x38, 8, false, R);
        assert_eq!(kinds(&m), [1]);
        assert_eq!(m.maintenance_ops, 1);
    }

    #[test]
    fn the_engine_sequence_with_the_mmu_on() {
        // Staged pages written by EL1 and cleaned; the engine copies with its caches on,
        // cleans the destination, turns the MMU off, invalidates the I-cache and jumps.
        let mut m = model();
        let (src, dst) = (0x4800_0000, 0x4020_0000);
        m.store(src, 4096, true, W);
        for off in (0..4096).step_by(64) {
            m.dc(DcOp::Cvac, src + off, true, W);
        }
        m.ic_iallu();
        m.load(src, 4096, true, R);
        m.store(dst, 4096, true, R);
        for off in (0..4096).step_by(64) {
            m.dc(DcOp::Cvac, dst + off, true, R);
        }
        m.ic_iallu();
        m.fetch(dst, 4096, false, R);
        m.load(dst, 4096, false, R);
        m.fetch(dst, 4096, true, R);
        assert!(m.violations().is_empty(), "{:?}", m.violations());
        assert_eq!(m.lines_tracked(), 128);
    }

    #[test]
    fn lines_of_ranges() {
        assert_eq!(lines_of(0x40, 0x40).collect::<Vec<_>>(), [1]);
        assert_eq!(lines_of(0x3f, 2).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(lines_of(0x40, 0).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn a_non_cacheable_reader_of_other_bytes_of_a_dirty_line_is_fine() {
        // The Pi's spin table: four release words in one line, each written and cleaned
        // in turn while the CPUs not yet released poll theirs with the MMU off.
        let mut m = Model::new(Config::default());
        let el1 = Who { pc: 0x9000, el: 1 };
        let cpu3 = Who { pc: 0x310, el: 2 };
        m.store(0xe8, 8, true, el1);
        m.load(0xf0, 8, false, cpu3);
        assert!(m.violations().is_empty(), "{:?}", m.violations());
        // Its own word, written and not cleaned: the missing clean shows.
        m.load(0xe8, 8, false, cpu3);
        assert_eq!(m.violations().len(), 1);
        assert_eq!(m.violations()[0].kind, Kind::DirtyRead);
    }

    #[test]
    fn byte_masks() {
        assert_eq!(byte_mask(0, 0, 64), u64::MAX);
        assert_eq!(byte_mask(3, 0xe8, 8), 0xff << 0x28);
        assert_eq!(
            byte_mask(1, 0x3c, 8),
            0xf,
            "the tail of an access that crosses lines"
        );
        assert_eq!(byte_mask(0, 0x3c, 8), 0xf << 60);
        assert_eq!(byte_mask(2, 0, 8), 0);
    }

    #[test]
    fn a_poll_that_races_the_writers_clean_is_fine_one_never_cleaned_is_not() {
        let el1 = Who { pc: 0x9000, el: 1 };
        let cpu3 = Who { pc: 0x310, el: 2 };
        let mut m = Model::new(Config::default());
        m.add_polled(0xd8, 0xf8);
        m.store(0xf0, 8, true, el1);
        m.load(0xf0, 8, false, cpu3); // polled before the clean: the old value
        m.dc(DcOp::Cvac, 0xf0, true, el1);
        m.load(0xf0, 8, false, cpu3);
        m.finish();
        assert!(m.violations().is_empty(), "{:?}", m.violations());

        let mut m = Model::new(Config::default());
        m.add_polled(0xd8, 0xf8);
        m.store(0xf0, 8, true, el1);
        m.load(0xf0, 8, false, cpu3);
        assert!(m.violations().is_empty(), "held back until the end");
        m.finish();
        assert_eq!(m.violations().len(), 1);
        assert_eq!(m.violations()[0].kind, Kind::DirtyRead);
        assert_eq!(m.violations()[0].who, cpu3);
    }
}
