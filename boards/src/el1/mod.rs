//! What every board's EL1 stage shares: the switch to MMU-on and to the full map, the EL1
//! vectors and their fault reports, cache maintenance, and physical memory as the
//! relocation planner sees it.

pub mod cache;
pub mod map;
pub mod mmu;

/// Physical memory through the EL1 stage's identity map (VA = PA), for the relocation
/// planner.
#[derive(Debug)]
pub struct IdentityMemory(());

impl IdentityMemory {
    /// Physical memory as the EL1 stage's identity map shows it.
    ///
    /// # Safety
    /// The full map must be active (every RAM page the planner may hand out is mapped as
    /// data, VA = PA), and the caller must pass it only to a planner, which reads and writes
    /// only pages it allocated from free RAM -- never the firmware's own memory.
    #[must_use]
    pub unsafe fn new() -> Self {
        Self(())
    }
}

impl reloc::mem::Memory for IdentityMemory {
    fn bytes(&self, pa: u64, len: usize) -> &[u8] {
        // SAFETY: per `IdentityMemory::new`'s contract, the map is active and the planner asks
        // only for pages it allocated from free RAM, which nothing else uses meanwhile.
        unsafe { core::slice::from_raw_parts(pa as *const u8, len) }
    }

    fn bytes_mut(&mut self, pa: u64, len: usize) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` keeps the planner's writes one at a time.
        unsafe { core::slice::from_raw_parts_mut(pa as *mut u8, len) }
    }
}

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    concat!(el2_stub::frame_macros!(), include_str!("el1.S")),
    MAIR_EL1 = const mmu::MAIR_EL1,
    TCR_EL1 = const mmu::TCR_EL1,
    SCTLR_EL1_MMU_ON = const mmu::SCTLR_EL1_MMU_ON,
    FRAME_SIZE = const core::mem::size_of::<el2_stub::Frame>(),
    HVC_SOFT_RESTART = const el2_stub::abi::HVC_SOFT_RESTART,
    SKIP_EL1_INVALIDATE = const cfg!(feature = "test-skip-el1-invalidate") as u32,
);

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    /// Loads MAIR/TCR/TTBR0_EL1, invalidates `[start, end)` by VA and the EL1 TLB, and
    /// turns the MMU and caches on.
    pub fn hypstub_el1_mmu_on(ttbr0: u64, start: u64, end: u64);
    /// Switches to the tables at `ttbr0` with `tcr` (MMU off for the few instructions it
    /// takes).
    pub fn hypstub_el1_switch_tables(ttbr0: u64, tcr: u64);
    /// Cleans and invalidates `[a_start, a_end)` and `[b_start, b_end)` to PoC, then
    /// issues HVC_SOFT_RESTART to `engine` with `block`. Returns the stub's answer only if it
    /// refuses.
    pub fn hypstub_el1_soft_restart(
        engine: u64,
        block: u64,
        a_start: u64,
        a_end: u64,
        b_start: u64,
        b_end: u64,
    ) -> u64;
    /// The EL1 stage's vector table.
    pub static hypstub_el1_vectors: u8;
}

/// Installs the EL1 stage's vectors, so that any fault at EL1 is reported.
#[cfg(target_arch = "aarch64")]
pub fn install_vectors() {
    use aarch64_cpu::registers::{Writeable, VBAR_EL1};
    VBAR_EL1.set(core::ptr::addr_of!(hypstub_el1_vectors) as u64);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Reports an exception taken by the EL1 stage and stops the machine through `stop`.
#[cfg(target_arch = "aarch64")]
pub fn report_fault(put: fn(&str), frame: &el2_stub::Frame, slot: u64, stop: fn() -> !) -> ! {
    use aarch64_cpu::registers::{Readable, ELR_EL1, ESR_EL1, FAR_EL1, SPSR_EL1};
    use el2_stub::console::line;
    use el2_stub::esr::{self, Slot};
    let slot = Slot::from_index(slot);
    let esr = ESR_EL1.get();
    line(
        put,
        format_args!(
            "EL1 fault: {} ({}), in the firmware's EL1 stage",
            esr::describe(slot, esr),
            slot.describe()
        ),
    );
    line(
        put,
        format_args!(
            "  ESR_EL1={esr:#018x} (EC={:#04x} ISS={:#09x})",
            esr::exception_class(esr),
            esr & 0x1ff_ffff
        ),
    );
    line(
        put,
        format_args!(
            "  ELR_EL1={:#018x} FAR_EL1={:#018x} SPSR_EL1={:#018x} x30={:#x}",
            ELR_EL1.get(),
            FAR_EL1.get(),
            SPSR_EL1.get(),
            frame.x[30]
        ),
    );
    line(put, format_args!("hypstub: system stopped"));
    stop()
}
