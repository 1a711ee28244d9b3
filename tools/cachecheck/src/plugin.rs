//! The QEMU glue: instruments every translated block and feeds the model.
//!
//! - Every instruction gets a memory callback (QEMU calls it only for instructions that
//!   access memory) carrying its PC; the physical address comes from
//!   `qemu_plugin_get_hwaddr`, MMIO is told apart by `qemu_plugin_hwaddr_is_io`.
//! - Every block gets an execution callback (registered with `R_REGS`) that models the
//!   instruction fetch of its bytes and, when the vCPU's regime is not known, reads
//!   `cpsr`, `SCTLR` (SCTLR_EL1), `SCTLR_EL2` and `HCR_EL2`.
//! - The regime becomes unknown after `ERET`, `HVC`/`SMC`/`SVC` (every vCPU: a PSCI call
//!   can start another), `MSR` to SCTLR_EL1/EL2 or HCR_EL2, a vCPU resume, and at every
//!   block starting on a 128-byte boundary (exception vectors: an interrupt or a trap
//!   changes the EL without an instruction the plugin sees).
//! - `DC`/`IC` instructions get an execution callback that reads Xt; API v4 has no
//!   VA-to-PA translation, so the VA is taken as the PA (hypstub runs with VA = PA);
//!   operations on other addresses are counted, not applied.
//! - fw_cfg DMA (QEMU virt): a store to the DMA address register starts a transfer that
//!   QEMU performs directly on guest RAM; the plugin reads the descriptor from the stores
//!   it saw just before and applies the transfer to the model.

// The QEMU-facing half (callbacks, registration) is not built for the host unit tests,
// which have no QEMU to link against; the tests cover the options, the regime, the
// fw_cfg DMA decoding and the report.
#![cfg_attr(test, allow(unused_imports, dead_code))]

use std::collections::VecDeque;
use std::ffi::{c_uint, c_void};
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, OnceLock};

use qemu_plugin::sys::{
    qemu_plugin_cb_flags, qemu_plugin_get_hwaddr, qemu_plugin_hwaddr_is_io,
    qemu_plugin_hwaddr_phys_addr, qemu_plugin_insn_data, qemu_plugin_insn_vaddr,
    qemu_plugin_mem_get_value, qemu_plugin_mem_is_store, qemu_plugin_mem_rw,
    qemu_plugin_mem_size_shift, qemu_plugin_mem_value_type, qemu_plugin_meminfo_t,
    qemu_plugin_register_vcpu_insn_exec_cb, qemu_plugin_register_vcpu_mem_cb,
    qemu_plugin_register_vcpu_tb_exec_cb, qemu_plugin_tb, qemu_plugin_tb_get_insn,
    qemu_plugin_tb_n_insns, qemu_plugin_tb_vaddr,
};
use qemu_plugin::{
    install::{Args, Info},
    plugin::{HasCallbacks, Register},
    register::RegisterDescriptor,
    PluginId, VCPUIndex,
};

use crate::decode::{decode, DcOp, IcOp, Insn, XZR};
use crate::model::{Config, Kind, Model, Violation, Who};

/// Options from the `-plugin` argument list (`key=value`, comma-separated by QEMU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `possibly-cached=on`: every line starts clean but present.
    pub possibly_cached: bool,
    /// `strict=on`: ignore CTR_EL0.IDC/DIC.
    pub strict: bool,
    /// `ours=A-B:C-D`: the firmware's code ranges; violations elsewhere are "outside
    /// hypstub".
    pub ours: Vec<Range<u64>>,
    /// `ram=A-B:...`: where VA = PA may be assumed for maintenance and fetches; empty:
    /// any address below 2^48.
    pub ram: Vec<Range<u64>>,
    /// `fw-cfg-dma=ADDR|off`: the fw_cfg DMA address register (QEMU virt: 0x9020010).
    pub fw_cfg_dma: Option<u64>,
    /// `soft-restart=on|off`: the page an `HVC_SOFT_RESTART` from our code enters (the
    /// relocation engine's control page) becomes ours.
    pub soft_restart: bool,
    /// `max-outside=N`: violations outside hypstub listed one per line (the rest are
    /// only counted).
    pub max_outside: usize,
    /// `trace-regime=on`: print each change of a vCPU's EL or cacheability (for checking
    /// the plugin itself).
    pub trace_regime: bool,
    /// `polled=A-B:...`: words other CPUs poll with their MMU off (the Pi's spin-table
    /// release words): a poll before the writer's clean is flagged only if the line is
    /// never cleaned.
    pub polled: Vec<Range<u64>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            possibly_cached: false,
            strict: false,
            ours: Vec::new(),
            ram: Vec::new(),
            fw_cfg_dma: Some(0x0902_0010),
            soft_restart: true,
            max_outside: 20,
            trace_regime: false,
            polled: Vec::new(),
        }
    }
}

fn parse_num(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    r.map_err(|_| format!("not a number: `{s}`"))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{key}: expected on or off, not `{v}`")),
    }
}

/// Parses `A-B:C-D` (end exclusive).
pub fn parse_ranges(s: &str) -> Result<Vec<Range<u64>>, String> {
    s.split(':')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (a, b) = r
                .split_once('-')
                .ok_or_else(|| format!("not a range A-B: `{r}`"))?;
            let (a, b) = (parse_num(a)?, parse_num(b)?);
            if a >= b {
                return Err(format!("empty range `{r}`"));
            }
            Ok(a..b)
        })
        .collect()
}

impl Options {
    /// Parses QEMU's argument list (each `key=value`).
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut o = Options::default();
        for arg in args {
            let (k, v) = arg
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, not `{arg}`"))?;
            match k {
                "possibly-cached" => o.possibly_cached = parse_bool(k, v)?,
                "strict" => o.strict = parse_bool(k, v)?,
                "ours" => o.ours = parse_ranges(v)?,
                "ram" => o.ram = parse_ranges(v)?,
                "fw-cfg-dma" if v == "off" => o.fw_cfg_dma = None,
                "fw-cfg-dma" => o.fw_cfg_dma = Some(parse_num(v)?),
                "soft-restart" => o.soft_restart = parse_bool(k, v)?,
                "max-outside" => o.max_outside = parse_num(v)? as usize,
                "trace-regime" => o.trace_regime = parse_bool(k, v)?,
                "polled" => o.polled = parse_ranges(v)?,
                _ => return Err(format!("unknown option `{k}`")),
            }
        }
        Ok(o)
    }

    /// Whether an address may be taken as a physical address (VA = PA).
    fn plausible_pa(&self, va: u64) -> bool {
        if self.ram.is_empty() {
            va < 1 << 48
        } else {
            self.ram.iter().chain(&self.ours).any(|r| r.contains(&va))
        }
    }
}

/// SCTLR_ELx.M, C, I and HCR_EL2.DC, TGE, E2H.
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;
const HCR_DC: u64 = 1 << 12;
const HCR_TGE: u64 = 1 << 27;
const HCR_E2H: u64 = 1 << 34;

/// Whether data accesses and instruction fetches are cacheable at `el`, from the system
/// registers. MAIR attributes are not walked: with the MMU on, RAM is taken as Normal
/// write-back (devices are MMIO to QEMU and never reach the model).
pub fn regime(el: u8, sctlr_el1: u64, sctlr_el2: u64, hcr_el2: u64) -> (bool, bool) {
    let from = |s: u64| (s & SCTLR_M != 0 && s & SCTLR_C != 0, s & SCTLR_I != 0);
    match el {
        2 => from(sctlr_el2),
        0 if hcr_el2 & (HCR_E2H | HCR_TGE) == HCR_E2H | HCR_TGE => from(sctlr_el2),
        0 | 1 if hcr_el2 & HCR_DC != 0 => (true, true),
        0 | 1 => from(sctlr_el1),
        _ => (false, false),
    }
}

#[derive(Default)]
struct Regs {
    x: Vec<Option<RegisterDescriptor<'static>>>,
    cpsr: Option<RegisterDescriptor<'static>>,
    sctlr_el1: Option<RegisterDescriptor<'static>>,
    sctlr_el2: Option<RegisterDescriptor<'static>>,
    hcr_el2: Option<RegisterDescriptor<'static>>,
    ctr_el0: Option<RegisterDescriptor<'static>>,
}

#[cfg(test)]
fn read(_reg: &Option<RegisterDescriptor<'static>>) -> u64 {
    0
}

#[cfg(not(test))]
fn read(reg: &Option<RegisterDescriptor<'static>>) -> u64 {
    let Some(reg) = reg else { return 0 };
    let bytes = reg.read().unwrap_or_default();
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(b)
}

#[derive(Default)]
struct Vcpu {
    known: bool,
    el: u8,
    data_c: bool,
    inst_c: bool,
    regs: Regs,
}

impl Vcpu {
    fn refresh(&mut self) {
        let cpsr = read(&self.regs.cpsr);
        self.el = ((cpsr >> 2) & 3) as u8;
        let (d, i) = regime(
            self.el,
            read(&self.regs.sctlr_el1),
            read(&self.regs.sctlr_el2),
            read(&self.regs.hcr_el2),
        );
        self.data_c = d;
        self.inst_c = i;
        self.known = true;
    }

    fn x(&self, rt: u8) -> u64 {
        if rt == XZR {
            return 0;
        }
        self.regs.x.get(rt as usize).map(read).unwrap_or_default()
    }
}

struct State {
    opts: Options,
    model: Model,
    vcpus: Vec<Vcpu>,
    ctr_read: bool,
    /// Pages entered by HVC_SOFT_RESTART from our code.
    dynamic_ours: Vec<Range<u64>>,
    /// The last RAM stores: (pa, len, value), newest last.
    recent: VecDeque<(u64, u64, u128)>,
    dma_high: u64,
    dma_transfers: u64,
    dma_unknown: u64,
    unmapped_ops: u64,
}

const RECENT: usize = 64;

static STATE: OnceLock<Mutex<State>> = OnceLock::new();

fn state() -> Option<MutexGuard<'static, State>> {
    STATE
        .get()
        .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()))
}

impl State {
    fn vcpu(&mut self, idx: VCPUIndex) -> &mut Vcpu {
        let i = idx as usize;
        if self.vcpus.len() <= i {
            self.vcpus.resize_with(i + 1, Vcpu::default);
        }
        let v = &mut self.vcpus[i];
        if !v.known {
            let before = (v.el, v.data_c, v.inst_c);
            v.refresh();
            if self.opts.trace_regime && before != (v.el, v.data_c, v.inst_c) {
                let line = format!(
                    "cachecheck: vCPU {i}: EL{} data {} instructions {}\n",
                    v.el,
                    if v.data_c {
                        "cacheable"
                    } else {
                        "non-cacheable"
                    },
                    if v.inst_c {
                        "cacheable"
                    } else {
                        "non-cacheable"
                    },
                );
                trace(&line);
            }
        }
        if !self.ctr_read {
            let ctr = read(&self.vcpus[i].regs.ctr_el0);
            self.model
                .set_ctr(ctr & (1 << 28) != 0, ctr & (1 << 29) != 0);
            self.ctr_read = true;
        }
        &mut self.vcpus[i]
    }

    fn who(&mut self, idx: VCPUIndex, pc: u64) -> (Who, bool, bool) {
        let v = self.vcpu(idx);
        (Who { pc, el: v.el }, v.data_c, v.inst_c)
    }

    fn is_ours(&self, pc: u64) -> bool {
        self.opts
            .ours
            .iter()
            .chain(&self.dynamic_ours)
            .any(|r| r.contains(&pc))
    }

    fn violation_is_ours(&self, v: &Violation) -> bool {
        self.is_ours(v.who.pc)
            || (v.kind.blames_writer() && v.last_store.is_some_and(|w| self.is_ours(w.pc)))
    }

    /// The descriptor bytes at `pa` as the CPU last stored them.
    fn recent_bytes(&self, pa: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = vec![None; len];
        for &(spa, slen, value) in self.recent.iter().rev() {
            for (i, slot) in out.iter_mut().enumerate() {
                let a = pa + i as u64;
                if slot.is_none() && (spa..spa + slen).contains(&a) {
                    *slot = Some(value.to_le_bytes()[(a - spa) as usize]);
                }
            }
        }
        out.into_iter().collect()
    }

    fn fw_cfg_dma(&mut self, desc: u64, who: Who) {
        self.dma_transfers += 1;
        let Some(d) = self.recent_bytes(desc, 16) else {
            self.dma_unknown += 1;
            self.model.dma_read(desc, 16, who);
            return;
        };
        let control = u32::from_be_bytes(d[0..4].try_into().unwrap_or_default());
        let length = u32::from_be_bytes(d[4..8].try_into().unwrap_or_default());
        let address = u64::from_be_bytes(d[8..16].try_into().unwrap_or_default());
        self.model.dma_read(desc, 16, who);
        if control & 2 != 0 {
            self.model.dma_write(address, length.into(), who);
        } else if control & 16 != 0 {
            self.model.dma_read(address, length.into(), who);
        }
        // QEMU writes the control word back when done.
        self.model.dma_write(desc, 4, who);
    }

    fn mmio_store(&mut self, pa: u64, len: u64, value: u128, who: Who) {
        let Some(reg) = self.opts.fw_cfg_dma else {
            return;
        };
        match (pa.wrapping_sub(reg), len) {
            (0, 8) => self.fw_cfg_dma((value as u64).swap_bytes(), who),
            (0, 4) => self.dma_high = u64::from((value as u32).swap_bytes()) << 32,
            (4, 4) => {
                let desc = self.dma_high | u64::from((value as u32).swap_bytes());
                self.fw_cfg_dma(desc, who);
            }
            _ => {}
        }
    }

    fn report(&self) -> String {
        let mut out = String::new();
        let (ours, outside): (Vec<&Violation>, Vec<&Violation>) = self
            .model
            .violations()
            .iter()
            .partition(|v| self.violation_is_ours(v));
        for v in &ours {
            let _ = writeln!(out, "cachecheck: violation: {}", describe(v));
        }
        for v in outside.iter().take(self.opts.max_outside) {
            let _ = writeln!(
                out,
                "cachecheck: violation outside hypstub: {}",
                describe(v)
            );
        }
        if outside.len() > self.opts.max_outside {
            let _ = writeln!(
                out,
                "cachecheck: ... and {} more outside hypstub",
                outside.len() - self.opts.max_outside
            );
        }
        let c = self.model.config();
        let _ = writeln!(
            out,
            "cachecheck: options possibly-cached={} strict={} CTR_EL0.IDC={} DIC={}; \
             {} fw_cfg DMA transfers ({} descriptors not seen); {} maintenance ops not on \
             a RAM address (counted, not applied)",
            on(c.possibly_cached),
            on(c.strict),
            c.idc as u8,
            c.dic as u8,
            self.dma_transfers,
            self.dma_unknown,
            self.unmapped_ops
        );
        let _ = writeln!(
            out,
            "cachecheck: {} lines tracked, {} maintenance ops, {} violations ({} outside hypstub)",
            self.model.lines_tracked(),
            self.model.maintenance_ops,
            ours.len() + outside.len(),
            outside.len()
        );
        out
    }
}

#[cfg(not(test))]
fn trace(line: &str) {
    let _ = qemu_plugin::qemu_plugin_outs(line);
}

#[cfg(test)]
fn trace(_line: &str) {}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// One violation as a report line (without the prefix).
pub fn describe(v: &Violation) -> String {
    let kind = match v.kind {
        Kind::DirtyRead => "1 clean missing",
        Kind::Stale => "2 stale data",
        Kind::DirtyLost => "3 dirty data lost",
        Kind::StaleCode => "4 stale code",
    };
    let store = match v.last_store {
        Some(w) => format!("{:#x} (EL{})", w.pc, w.el),
        None => "none".to_string(),
    };
    format!(
        "kind {kind}: {}: pc={:#x} EL{} pa={:#x} line={:#x}; last cacheable store to the line at pc={store}",
        v.what,
        v.who.pc,
        v.who.el,
        v.pa,
        v.pa & !(crate::model::LINE - 1)
    )
}

/// TB user data: bit 63 = the block's VA is not a plausible PA; bits 62..52 = number of
/// instructions; bits 51..0 = the VA.
fn tb_udata(vaddr: u64, insns: usize, plausible: bool) -> u64 {
    let n = (insns as u64).min(0x7ff);
    ((!plausible as u64) << 63) | (n << 52) | (vaddr & ((1 << 52) - 1))
}

#[cfg(not(test))]
unsafe extern "C" fn on_tb_exec(vcpu: c_uint, udata: *mut c_void) {
    let u = udata as u64;
    let pc = u & ((1 << 52) - 1);
    let Some(mut s) = state() else { return };
    if pc & 0x7f == 0 {
        let i = vcpu as usize;
        if let Some(v) = s.vcpus.get_mut(i) {
            v.known = false;
        }
    }
    let (who, _, inst_c) = s.who(vcpu, pc);
    if u >> 63 == 0 && who.el > 0 {
        let len = ((u >> 52) & 0x7ff) * 4;
        s.model.fetch(pc, len, inst_c, who);
    }
}

#[cfg(not(test))]
unsafe extern "C" fn on_mem(
    vcpu: c_uint,
    info: qemu_plugin_meminfo_t,
    vaddr: u64,
    udata: *mut c_void,
) {
    // SAFETY: `info` is the handle QEMU passed to this callback, valid for its duration.
    let hw = unsafe { qemu_plugin_get_hwaddr(info, vaddr) };
    if hw.is_null() {
        return;
    }
    // SAFETY: `hw` was returned non-null by qemu_plugin_get_hwaddr for this access.
    let (io, pa) = unsafe {
        (
            qemu_plugin_hwaddr_is_io(hw),
            qemu_plugin_hwaddr_phys_addr(hw),
        )
    };
    // SAFETY: as above, `info` is valid for this callback.
    let (store, shift) = unsafe {
        (
            qemu_plugin_mem_is_store(info),
            qemu_plugin_mem_size_shift(info),
        )
    };
    let len = 1u64 << shift;
    let value = if store {
        // SAFETY: as above; the value of a store is available in its (after) callback.
        mem_value(unsafe { qemu_plugin_mem_get_value(info) })
    } else {
        0
    };
    let Some(mut s) = state() else { return };
    let (who, data_c, _) = s.who(vcpu, udata as u64);
    if io {
        if store {
            s.mmio_store(pa, len, value, who);
        }
        return;
    }
    if store {
        if s.recent.len() == RECENT {
            s.recent.pop_front();
        }
        s.recent.push_back((pa, len, value));
        s.model.store(pa, len, data_c, who);
    } else {
        s.model.load(pa, len, data_c, who);
    }
}

#[cfg(not(test))]
fn mem_value(v: qemu_plugin::sys::qemu_plugin_mem_value) -> u128 {
    // SAFETY: the union member read is the one `type_` names.
    unsafe {
        match v.type_ {
            qemu_plugin_mem_value_type::QEMU_PLUGIN_MEM_VALUE_U8 => v.data.u8_.into(),
            qemu_plugin_mem_value_type::QEMU_PLUGIN_MEM_VALUE_U16 => v.data.u16_.into(),
            qemu_plugin_mem_value_type::QEMU_PLUGIN_MEM_VALUE_U32 => v.data.u32_.into(),
            qemu_plugin_mem_value_type::QEMU_PLUGIN_MEM_VALUE_U64 => v.data.u64_.into(),
            qemu_plugin_mem_value_type::QEMU_PLUGIN_MEM_VALUE_U128 => {
                (u128::from(v.data.u128_.high) << 64) | u128::from(v.data.u128_.low)
            }
        }
    }
}

#[cfg(not(test))]
/// What a system instruction's callback needs: the instruction and its PC.
struct SysInsn {
    insn: Insn,
    pc: u64,
}

#[cfg(not(test))]
unsafe extern "C" fn on_sys(vcpu: c_uint, udata: *mut c_void) {
    // SAFETY: `udata` is a leaked `SysInsn` made at translation time; never freed.
    let SysInsn { insn, pc } = unsafe { &*(udata as *const SysInsn) };
    let (insn, pc) = (*insn, *pc);
    let Some(mut s) = state() else { return };
    let (who, data_c, _) = s.who(vcpu, pc);
    match insn {
        Insn::Dc(op, rt) => {
            let va = s.vcpu(vcpu).x(rt);
            if op == DcOp::SetWay || !s.opts.plausible_pa(va) {
                s.unmapped_ops += 1;
                s.model.count_unmapped_op();
            } else {
                s.model.dc(op, va, data_c, who);
            }
        }
        Insn::Ic(IcOp::Iallu, _) => s.model.ic_iallu(),
        Insn::Ic(IcOp::Ivau, rt) => {
            let va = s.vcpu(vcpu).x(rt);
            if s.opts.plausible_pa(va) {
                s.model.ic_ivau(va);
            } else {
                s.unmapped_ops += 1;
                s.model.count_unmapped_op();
            }
        }
        Insn::Msr(..) | Insn::Eret => s.vcpu(vcpu).known = false,
        Insn::Hvc | Insn::Call => {
            if insn == Insn::Hvc && s.opts.soft_restart && s.is_ours(pc) {
                // HVC_SOFT_RESTART (1): x1 is where the stub enters at EL2.
                let v = s.vcpu(vcpu);
                let (x0, x1) = (v.x(0), v.x(1));
                if x0 == 1 {
                    let page = x1 & !0xfff;
                    s.dynamic_ours.push(page..page + 0x1000);
                }
            }
            for v in &mut s.vcpus {
                v.known = false;
            }
        }
    }
}

#[cfg(not(test))]
/// The plugin object the qemu-plugin crate drives.
#[derive(Default)]
pub struct CacheCheck;

#[cfg(not(test))]
impl Register for CacheCheck {
    fn register(&mut self, id: PluginId, args: &Args, _info: &Info) -> qemu_plugin::Result<()> {
        let opts = match Options::parse(args.raw.iter().map(String::as_str)) {
            Ok(o) => o,
            Err(e) => {
                let _ = qemu_plugin::qemu_plugin_outs(format!("cachecheck: bad option: {e}\n"));
                std::process::exit(1);
            }
        };
        let config = Config {
            possibly_cached: opts.possibly_cached,
            strict: opts.strict,
            ..Config::default()
        };
        let mut model = Model::new(config);
        for r in &opts.polled {
            model.add_polled(r.start, r.end);
        }
        let _ = STATE.set(Mutex::new(State {
            opts,
            model,
            vcpus: Vec::new(),
            ctr_read: false,
            dynamic_ours: Vec::new(),
            recent: VecDeque::with_capacity(RECENT),
            dma_high: 0,
            dma_transfers: 0,
            dma_unknown: 0,
            unmapped_ops: 0,
        }));
        // Replaces the crate's own translation hook (one per plugin): the raw API gives
        // the instruction handles the callbacks are registered on.
        qemu_plugin::qemu_plugin_register_vcpu_tb_trans_cb(id, Some(on_tb_trans))?;
        qemu_plugin::qemu_plugin_register_atexit_cb(id, |_| {
            if let Some(mut s) = state() {
                s.model.finish();
                let _ = qemu_plugin::qemu_plugin_outs(s.report());
            }
        })?;
        Ok(())
    }
}

#[cfg(not(test))]
impl HasCallbacks for CacheCheck {
    fn on_vcpu_init(&mut self, _id: PluginId, vcpu: VCPUIndex) -> qemu_plugin::Result<()> {
        let descs = qemu_plugin::qemu_plugin_get_registers()?;
        let mut regs = Regs {
            x: vec![None; 31],
            ..Regs::default()
        };
        for d in descs {
            let slot = match d.name.as_str() {
                "cpsr" => &mut regs.cpsr,
                "SCTLR" => &mut regs.sctlr_el1,
                "SCTLR_EL2" => &mut regs.sctlr_el2,
                "HCR_EL2" => &mut regs.hcr_el2,
                "CTR_EL0" => &mut regs.ctr_el0,
                n => match n.strip_prefix('x').and_then(|i| i.parse::<usize>().ok()) {
                    Some(i) if i < 31 => &mut regs.x[i],
                    _ => continue,
                },
            };
            *slot = Some(d);
        }
        if let Some(mut s) = state() {
            let i = vcpu as usize;
            if s.vcpus.len() <= i {
                s.vcpus.resize_with(i + 1, Vcpu::default);
            }
            s.vcpus[i] = Vcpu {
                regs,
                ..Vcpu::default()
            };
        }
        Ok(())
    }

    fn on_vcpu_resume(&mut self, _id: PluginId, vcpu: VCPUIndex) -> qemu_plugin::Result<()> {
        if let Some(mut s) = state() {
            if let Some(v) = s.vcpus.get_mut(vcpu as usize) {
                v.known = false;
            }
        }
        Ok(())
    }
}

#[cfg(not(test))]
unsafe extern "C" fn on_tb_trans(_id: PluginId, tb: *mut qemu_plugin_tb) {
    // SAFETY: `tb` is the block QEMU is translating, valid during this callback.
    let (vaddr, n) = unsafe { (qemu_plugin_tb_vaddr(tb), qemu_plugin_tb_n_insns(tb)) };
    let plausible = match state() {
        Some(s) => s.opts.plausible_pa(vaddr),
        None => return,
    };
    let udata = tb_udata(vaddr, n, plausible);
    // SAFETY: as above; the user data is a plain integer, not a pointer.
    unsafe {
        qemu_plugin_register_vcpu_tb_exec_cb(
            tb,
            Some(on_tb_exec),
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_R_REGS,
            udata as *mut c_void,
        );
    }
    for i in 0..n {
        // SAFETY: `i` is below the block's instruction count.
        let insn = unsafe { qemu_plugin_tb_get_insn(tb, i) };
        let mut word = [0u8; 4];
        // SAFETY: `insn` belongs to the block being translated; `word` has room for the
        // 4 bytes asked for.
        let (pc, got) = unsafe {
            (
                qemu_plugin_insn_vaddr(insn),
                qemu_plugin_insn_data(insn, word.as_mut_ptr().cast(), word.len()),
            )
        };
        // SAFETY: as above; the user data is the PC, a plain integer.
        unsafe {
            qemu_plugin_register_vcpu_mem_cb(
                insn,
                Some(on_mem),
                qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
                qemu_plugin_mem_rw::QEMU_PLUGIN_MEM_RW,
                pc as *mut c_void,
            );
        }
        if got != 4 {
            continue;
        }
        if let Some(decoded) = decode(u32::from_le_bytes(word)) {
            let udata = Box::into_raw(Box::new(SysInsn { insn: decoded, pc }));
            // SAFETY: as above; `udata` is leaked, so it outlives every execution.
            unsafe {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn,
                    Some(on_sys),
                    qemu_plugin_cb_flags::QEMU_PLUGIN_CB_R_REGS,
                    udata.cast(),
                );
            }
        }
    }
}

#[cfg(not(test))]
qemu_plugin::register!(CacheCheck);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = Options::parse([
            "possibly-cached=on",
            "strict=on",
            "ours=0x0-0x08000000:0x40000000-0x40200000",
            "fw-cfg-dma=off",
        ])
        .unwrap();
        assert!(o.possibly_cached && o.strict);
        assert_eq!(o.ours, vec![0..0x0800_0000, 0x4000_0000..0x4020_0000]);
        assert_eq!(o.fw_cfg_dma, None);
        assert_eq!(Options::parse([]).unwrap(), Options::default());
        assert!(Options::parse(["nope=1"]).is_err());
        assert!(Options::parse(["ours=5-3"]).is_err());
        assert!(Options::parse(["strict=maybe"]).is_err());
    }

    #[test]
    fn plausible_pa() {
        let o = Options::default();
        assert!(o.plausible_pa(0x4000_0000));
        assert!(!o.plausible_pa(0xffff_8000_0000_0000));
        let o = Options::parse(["ram=0x40000000-0x80000000", "ours=0x0-0x1000"]).unwrap();
        assert!(o.plausible_pa(0x4000_0000) && o.plausible_pa(0x800));
        assert!(!o.plausible_pa(0x9000_0000));
    }

    #[test]
    fn regimes() {
        let mc = SCTLR_M | SCTLR_C | SCTLR_I;
        assert_eq!(regime(2, 0, mc, 0), (true, true));
        assert_eq!(regime(2, mc, SCTLR_I, 0), (false, true));
        assert_eq!(regime(1, mc, 0, 0), (true, true));
        assert_eq!(regime(1, SCTLR_M, 0, 0), (false, false));
        assert_eq!(regime(1, 0, 0, HCR_DC), (true, true));
        assert_eq!(regime(0, 0, mc, HCR_E2H | HCR_TGE), (true, true));
        assert_eq!(regime(3, mc, mc, 0), (false, false));
    }

    #[test]
    fn tb_user_data() {
        let u = tb_udata(0x4020_0000, 12, true);
        assert_eq!(u & ((1 << 52) - 1), 0x4020_0000);
        assert_eq!((u >> 52) & 0x7ff, 12);
        assert_eq!(u >> 63, 0);
        assert_eq!(tb_udata(0xffff_8000_0000_0000, 1, false) >> 63, 1);
    }

    #[test]
    fn report_lines() {
        let mut s = State {
            opts: Options::parse(["ours=0x0-0x1000"]).unwrap(),
            model: Model::new(Config::default()),
            vcpus: Vec::new(),
            ctr_read: true,
            dynamic_ours: Vec::from_iter(Some(0x4800_0000..0x4800_1000)),
            recent: VecDeque::new(),
            dma_high: 0,
            dma_transfers: 0,
            dma_unknown: 0,
            unmapped_ops: 0,
        };
        let ours = Who { pc: 0x800, el: 1 };
        let linux = Who {
            pc: 0x4020_0000,
            el: 2,
        };
        s.model.store(0x4000_0000, 8, true, ours);
        s.model.load(0x4000_0000, 8, false, linux); // blamed on our store
        s.model.store(0x4100_0000, 8, true, linux);
        s.model.load(0x4100_0000, 8, false, linux); // Linux's own
        s.model.store(0x4200_0000, 8, true, linux);
        s.model.load(
            0x4200_0000,
            8,
            false,
            Who {
                pc: 0x4800_0010,
                el: 2,
            },
        ); // the engine
        let r = s.report();
        assert!(r.ends_with(
            "cachecheck: 3 lines tracked, 0 maintenance ops, 3 violations (1 outside hypstub)\n"
        ));
        assert_eq!(r.matches("cachecheck: violation: kind 1").count(), 2);
        assert_eq!(r.matches("violation outside hypstub: kind 1").count(), 1);
    }

    #[test]
    fn fw_cfg_dma_from_recent_stores() {
        let mut s = State {
            opts: Options::default(),
            model: Model::new(Config::default()),
            vcpus: Vec::new(),
            ctr_read: true,
            dynamic_ours: Vec::new(),
            recent: VecDeque::new(),
            dma_high: 0,
            dma_transfers: 0,
            dma_unknown: 0,
            unmapped_ops: 0,
        };
        let desc = 0x4012_0000u64;
        let who = Who { pc: 0x100, el: 1 };
        // control = read (2), length = 0x100, address = 0x4400_0000, all big-endian,
        // stored as the CPU would (little-endian registers holding swapped values).
        s.recent.push_back((desc, 4, u128::from(2u32.swap_bytes())));
        s.recent
            .push_back((desc + 4, 4, u128::from(0x100u32.swap_bytes())));
        s.recent
            .push_back((desc + 8, 8, u128::from(0x4400_0000u64.swap_bytes())));
        // The buffer was in the cache, dirty.
        s.model.store(0x4400_0040, 8, true, who);
        s.mmio_store(0x0902_0010, 8, u128::from(desc.swap_bytes()), who);
        assert_eq!(s.dma_transfers, 1);
        assert_eq!(s.dma_unknown, 0);
        let kinds: Vec<u8> = s
            .model
            .violations()
            .iter()
            .map(|v| v.kind.number())
            .collect();
        assert_eq!(kinds, [3]);
        assert_eq!(s.model.violations()[0].pa, 0x4400_0040);
        // Split into two 32-bit halves: the low half starts it.
        s.mmio_store(0x0902_0010, 4, 0, who);
        s.mmio_store(0x0902_0014, 4, u128::from((desc as u32).swap_bytes()), who);
        assert_eq!(s.dma_transfers, 2);
    }
}
