//! The stub's exception handling at EL2: the hyp-stub ABI, SMCCC/PSCI from EL1, the CPU_ON
//! path, and reports of everything else. Called from `vectors.S` through the functions that
//! [`crate::platform!`] generates.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

use crate::abi::{self, Action, Conduit, Features};
use crate::console;
use crate::cpus::{self, Target};
use crate::esr::{self, Slot};
use crate::regs::{self, CpuFeatures};
use crate::{Frame, Platform};

/// ESR_EL2.EC values of the calls the stub serves (Arm ARM D19.2 ESR_EL2).
const EC_HVC64: u8 = 0x16;
const EC_SMC64: u8 = 0x17;

unsafe extern "C" {
    /// The stub's vector table (`vectors.S`).
    static hypstub_el2_vectors: u8;
    /// Where CPUs started through the stub arrive (`vectors.S`).
    fn hypstub_el2_secondary_entry();
}

/// The physical address of the stub's vector table (the stub runs with the MMU off, so
/// addresses are physical).
#[must_use]
pub fn stub_vectors() -> u64 {
    core::ptr::addr_of!(hypstub_el2_vectors) as u64
}

/// Installs the stub's vectors in VBAR_EL2.
pub fn install_vectors() {
    VBAR_EL2.set(stub_vectors());
    barrier::isb(barrier::SY);
}

/// Handles the exception that came through vector `slot`, with the interrupted registers in
/// `frame`. Returns to the interrupted code (or to a new place set in ELR_EL2/SPSR_EL2), or
/// reports and stops the machine.
pub fn handle<P: Platform>(frame: &mut Frame, slot: u64) {
    let slot = Slot::from_index(slot);
    let esr = ESR_EL2.get();
    let conduit = match (slot, esr::exception_class(esr)) {
        (Slot::LowerA64Sync, EC_HVC64) => Conduit::Hvc,
        (Slot::LowerA64Sync, EC_SMC64) => {
            // A trapped SMC leaves ELR_EL2 at the SMC itself (Arm ARM D1.10.2, "Trapped SMC
            // instructions"): step over it.
            ELR_EL2.set(ELR_EL2.get() + 4);
            Conduit::Smc
        }
        _ => report_and_stop::<P>(frame, slot, esr),
    };
    let f = CpuFeatures::read();
    let features = Features {
        gicv3_sysregs: f.gicv3_sysregs,
        psci: P::HAS_PSCI,
    };
    let x = [frame.x[0], frame.x[1], frame.x[2], frame.x[3], frame.x[4]];
    match abi::decide(&x, conduit, features) {
        Action::Reply { x0, x1 } => {
            frame.x[0] = x0;
            if let Some(x1) = x1 {
                frame.x[1] = x1;
            }
        }
        Action::SetVectors { vbar } => {
            VBAR_EL2.set(vbar);
            barrier::isb(barrier::SY);
            frame.x[0] = 0;
        }
        Action::ResetVectors => {
            install_vectors();
            frame.x[0] = 0;
        }
        Action::SoftRestart { entry, args } => {
            // hyp-abi.rst: the entry runs at EL2 with the EL2 MMU and caches off and
            // interrupts masked. Whoever owned EL2 since may have turned them on.
            SCTLR_EL2.set(regs::SCTLR_EL2_MMU_OFF);
            barrier::isb(barrier::SY);
            ELR_EL2.set(entry);
            SPSR_EL2.set(regs::SPSR_EL2H_DAIF);
            frame.x[..3].copy_from_slice(&args);
        }
        Action::GetIchVtr => {
            frame.x[0] = 0;
            frame.x[1] = ICH_VTR_EL2.get();
        }
        Action::ForwardPsci => {
            let r = P::psci(frame.x[..18].try_into().unwrap_or([0; 18]));
            frame.x[..4].copy_from_slice(&r);
        }
        Action::CpuOn {
            target,
            entry,
            context_id,
        } => {
            frame.x[0] = cpu_on::<P>(target, entry, context_id);
        }
    }
}

/// PSCI CPU_ON, redirected: the platform starts the target in the stub (at EL2), which sets
/// the CPU's EL2 up and only then enters the caller's `entry` at EL1.
fn cpu_on<P: Platform>(target: u64, entry: u64, context_id: u64) -> u64 {
    let Some(slot) = P::cpu_slot(target) else {
        console::line(
            P::console_write,
            format_args!(
            "el2-stub: CPU_ON of MPIDR {target:#x} refused: this board's stub has no slot for it (at most {} CPUs; see Platform::cpu_slot)",
            cpus::MAX_CPUS
        ),
        );
        return abi::PSCI_INVALID_PARAMETERS;
    };
    cpus::set_target(slot, Target { entry, context_id });
    // The mailbox write must reach memory before the target can run (it reads it with its
    // MMU off). Arm ARM B2.3.12: DSB completes the store.
    barrier::dsb(barrier::SY);
    let mut args = [0u64; 18];
    args[0] = u64::from(smccc::psci::PSCI_CPU_ON_64);
    args[1] = target;
    args[2] = hypstub_el2_secondary_entry as *const () as u64;
    args[3] = slot as u64;
    P::psci(args)[0]
}

/// Runs on a CPU started through `cpu_on`, on its own stack, MMU off: sets up its EL2, aims
/// ELR_EL2/SPSR_EL2 at the caller's entry at EL1, and returns the context id for x0.
pub fn secondary<P: Platform>(slot: u64) -> u64 {
    let f = CpuFeatures::read();
    regs::init_el2_for_el1(&f);
    install_vectors();
    let Some(t) = cpus::target(slot as usize) else {
        P::stop()
    };
    ELR_EL2.set(t.entry);
    SPSR_EL2.set(regs::SPSR_EL1H_DAIF);
    t.context_id
}

/// Reports an exception the stub does not expect, with everything that describes it, and
/// stops the machine.
pub fn report_and_stop<P: Platform>(frame: &Frame, slot: Slot, esr: u64) -> ! {
    let put = P::console_write;
    let ec = esr::exception_class(esr);
    console::line(
        put,
        format_args!(
            "EL2 fault: {} ({})",
            esr::describe(slot, esr),
            slot.describe()
        ),
    );
    console::line(
        put,
        format_args!(
            "  ESR_EL2={esr:#018x} (EC={ec:#04x} IL={} ISS={:#09x})",
            (esr >> 25) & 1,
            esr & 0x1ff_ffff
        ),
    );
    console::line(
        put,
        format_args!(
            "  ELR_EL2={:#018x} FAR_EL2={:#018x} SPSR_EL2={:#018x}",
            ELR_EL2.get(),
            FAR_EL2.get(),
            SPSR_EL2.get()
        ),
    );
    console::line(
        put,
        format_args!(
            "  MPIDR_EL1={:#x} x0={:#x} x1={:#x} x2={:#x} x3={:#x} x30={:#x}",
            MPIDR_EL1.get(),
            frame.x[0],
            frame.x[1],
            frame.x[2],
            frame.x[3],
            frame.x[30]
        ),
    );
    console::line(put, format_args!("hypstub: system stopped"));
    P::stop()
}
