//! The stub's exception handling at EL2: the hyp-stub ABI, SMCCC/PSCI from EL1, the CPU_ON
//! path, faults of a payload at EL1 before it has vectors, and reports of everything else.
//! Called from `vectors.S` through the functions that [`crate::platform!`] generates.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

use crate::abi::{self, Action, Bounds, Checked, Conduit, Features, Refusal};
use crate::console;
use crate::cpus::{self, Target};
use crate::esr::{self, Slot};
use crate::memory;
use crate::regs::{self, CpuFeatures};
use crate::{Frame, Platform};

/// ESR_EL2.EC values of the calls the stub serves (Arm ARM D19.2 ESR_EL2).
const EC_HVC64: u8 = 0x16;
const EC_SMC64: u8 = 0x17;

unsafe extern "C" {
    /// The stub's vector table (`vectors.S`).
    static hypstub_el2_vectors: u8;
    /// The EL1 vectors a payload at EL1 starts with (`vectors.S`).
    static hypstub_el1_payload_vectors: u8;
    /// Where CPUs started through the stub arrive (`vectors.S`).
    fn hypstub_el2_secondary_entry();
}

/// The physical address of the stub's vector table (the stub runs with the MMU off, so
/// addresses are physical).
#[must_use]
pub fn stub_vectors() -> u64 {
    core::ptr::addr_of!(hypstub_el2_vectors) as u64
}

/// The physical address of the EL1 vectors a payload at EL1 starts with.
#[must_use]
pub fn payload_el1_vectors() -> u64 {
    core::ptr::addr_of!(hypstub_el1_payload_vectors) as u64
}

/// Installs the stub's vectors in VBAR_EL2.
pub fn install_vectors() {
    VBAR_EL2.set(stub_vectors());
    barrier::isb(barrier::SY);
}

/// Aims VBAR_EL1 at the stub's EL1 vectors for a payload, so that a fault of the payload
/// before it installs its own is reported as its own (not the firmware's, not a silent loop).
pub fn install_payload_el1_vectors() {
    VBAR_EL1.set(payload_el1_vectors());
    barrier::isb(barrier::SY);
}

/// This CPU's slot, if the board's numbering gives it one.
fn own_slot<P: Platform>() -> Option<usize> {
    P::cpu_slot(MPIDR_EL1.get() & 0xff_00ff_ffff)
}

/// Handles the exception that came through vector `slot`, with the interrupted registers in
/// `frame`. Returns to the interrupted code (or to a new place set in ELR_EL2/SPSR_EL2), or
/// reports and stops the machine.
pub fn handle<P: Platform>(frame: &mut Frame, slot: u64) {
    let cpu = own_slot::<P>();
    let nested = cpu.is_some_and(cpus::enter_handler);
    let slot = Slot::from_index(slot);
    let esr = ESR_EL2.get();
    if nested {
        report_and_stop::<P>(frame, slot, esr, Whose::Stub);
    }
    let conduit = match (slot, esr::exception_class(esr)) {
        (Slot::LowerA64Sync, EC_HVC64) if is_payload_fault_hvc(esr) => {
            report_payload_el1_fault::<P>(frame, esr)
        }
        (Slot::LowerA64Sync, EC_HVC64) => Conduit::Hvc,
        (Slot::LowerA64Sync, EC_SMC64) => {
            // A trapped SMC leaves ELR_EL2 at the SMC itself (Arm ARM D1.10.2, "Trapped SMC
            // instructions"): step over it.
            ELR_EL2.set(ELR_EL2.get() + 4);
            Conduit::Smc
        }
        _ => report_and_stop::<P>(frame, slot, esr, whose(slot)),
    };
    serve::<P>(frame, conduit);
    if let Some(cpu) = cpu {
        cpus::leave_handler(cpu);
    }
}

/// Carries out one call from EL1.
fn serve<P: Platform>(frame: &mut Frame, conduit: Conduit) {
    let f = CpuFeatures::read();
    let stub = P::stub_memory();
    let features = Features {
        gicv3_sysregs: f.gicv3_sysregs,
        psci: P::HAS_PSCI,
        memory: Bounds {
            pa_bits: f.pa_bits,
            stub: &stub,
            ram: memory::banks(),
        },
    };
    let x = [frame.x[0], frame.x[1], frame.x[2], frame.x[3], frame.x[4]];
    match abi::decide(&x, conduit, features) {
        Action::Reply { x0, x1 } => {
            frame.x[0] = x0;
            if let Some(x1) = x1 {
                frame.x[1] = x1;
            }
        }
        Action::Refuse {
            call,
            addr,
            why,
            x0,
        } => {
            refusal::<P>(call, addr, why);
            frame.x[0] = x0;
        }
        Action::SetVectors { vbar } => {
            // Only a table in RAM the EL1 stage reported is read: anywhere else the read
            // itself could fault at EL2. With the MMU off this reads memory, as the CPU's
            // fetch of the slot would.
            // SAFETY: `vbar + 0x400` is inside a RAM bank (checked by `decide`), 4-byte
            // aligned; reading RAM has no side effects.
            let udf = !features.memory.ram.is_empty()
                && unsafe { ((vbar + abi::LOWER_A64_SYNC_OFFSET) as *const u32).read_volatile() }
                    == abi::UDF_0;
            if udf {
                refusal::<P>(Checked::SetVectors, vbar, Refusal::Udf);
                frame.x[0] = abi::HVC_STUB_ERR;
            } else {
                VBAR_EL2.set(vbar);
                barrier::isb(barrier::SY);
                frame.x[0] = 0;
            }
        }
        Action::ResetVectors => {
            install_vectors();
            frame.x[0] = 0;
        }
        Action::SoftRestart { entry, args } => {
            if !memory::handed_off() {
                // The EL1 stage's last call: what runs at EL1 from now on is the payload's.
                memory::set_handed_off();
                install_payload_el1_vectors();
            }
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
        Action::ForwardPsci { args } => {
            let mut all: [u64; 18] = frame.x[..18].try_into().unwrap_or([0; 18]);
            all[..4].copy_from_slice(&args);
            let r = P::psci(all);
            frame.x[..4].copy_from_slice(&r);
        }
        Action::CpuOn {
            target,
            entry,
            context_id,
        } => {
            frame.x[0] = cpu_on::<P>(target, entry, context_id);
        }
        Action::AddRam { bank } => {
            frame.x[0] = add_ram::<P>(bank);
        }
    }
}

/// Says on the console why a call was refused.
fn refusal<P: Platform>(call: Checked, addr: u64, why: Refusal) {
    let put = P::console_write;
    match call {
        Checked::SetVectors => console::line(
            put,
            format_args!(
                "el2-stub: HVC_SET_VECTORS to {addr:#x} refused (HVC_STUB_ERR): {why}; the vectors are unchanged"
            ),
        ),
        Checked::SoftRestart => console::line(
            put,
            format_args!("el2-stub: HVC_SOFT_RESTART to {addr:#x} refused (HVC_STUB_ERR): {why}"),
        ),
        Checked::CpuOn(mpidr) => console::line(
            put,
            format_args!(
                "el2-stub: CPU_ON of MPIDR {mpidr:#x} at entry {addr:#x} refused (INVALID_ADDRESS): {why}"
            ),
        ),
    }
}

/// `HYPSTUB_ADD_RAM`: records a bank before the hand-off; refuses it after, or when it is
/// not a bank.
fn add_ram<P: Platform>(bank: Result<(u64, u64), Refusal>) -> u64 {
    let put = P::console_write;
    if memory::handed_off() {
        console::line(
            put,
            format_args!("el2-stub: HYPSTUB_ADD_RAM refused: the payload has been entered; RAM is only reported before"),
        );
        return abi::SMCCC_NOT_SUPPORTED;
    }
    match bank {
        Ok(b) if memory::add_bank(b) => 0,
        Ok(b) => {
            console::line(
                put,
                format_args!(
                    "el2-stub: HYPSTUB_ADD_RAM {:#x}..{:#x} refused: the stub records at most {} RAM banks",
                    b.0,
                    b.1,
                    abi::MAX_RAM_BANKS
                ),
            );
            abi::SMCCC_INVALID_PARAMETER
        }
        Err(why) => {
            console::line(
                put,
                format_args!("el2-stub: HYPSTUB_ADD_RAM refused: {why}"),
            );
            abi::SMCCC_INVALID_PARAMETER
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
                "el2-stub: CPU_ON of MPIDR {target:#x} refused (INVALID_PARAMETERS): the stub has {} CPU slots, for MPIDR Aff0 0 to {} with Aff1..Aff3 zero (see Platform::cpu_slot)",
                cpus::MAX_CPUS,
                cpus::MAX_CPUS - 1
            ),
        );
        return abi::PSCI_INVALID_PARAMETERS;
    };
    if cpus::pending(slot) {
        // A CPU_ON for this CPU was accepted and the CPU has not taken its mailbox yet:
        // writing it now could change where that CPU goes.
        return abi::PSCI_ON_PENDING;
    }
    cpus::set_target(slot, Target { entry, context_id });
    // The mailbox write must reach memory before the target can run (it reads it with its
    // MMU off). Arm ARM B2.3.12: DSB completes the store.
    barrier::dsb(barrier::SY);
    let mut args = [0u64; 18];
    args[0] = u64::from(smccc::psci::PSCI_CPU_ON_64);
    args[1] = target;
    args[2] = hypstub_el2_secondary_entry as *const () as u64;
    args[3] = slot as u64;
    let r = P::psci(args)[0];
    if r != 0 {
        // Refused (ALREADY_ON, INVALID_PARAMETERS, ...): no CPU will take this mailbox, so
        // free it, or the next CPU_ON for the slot would see it pending.
        cpus::set_target(slot, Target::default());
    }
    r
}

/// Runs on a CPU started through `cpu_on`, on its own stack, MMU off: sets up its EL2, aims
/// ELR_EL2/SPSR_EL2 at the caller's entry at EL1 with the payload's first EL1 vectors, and
/// returns the context id for x0.
pub fn secondary<P: Platform>(slot: u64) -> u64 {
    // A fresh start: the CPU_OFF this CPU last made (through the stub, which forwarded it)
    // never came back to clear its handling mark.
    cpus::leave_handler(slot as usize);
    let f = CpuFeatures::read();
    regs::init_el2_for_el1(&f);
    install_vectors();
    let Some(t) = cpus::take_target(slot as usize) else {
        console::line(
            P::console_write,
            format_args!(
                "el2-stub: a CPU arrived for slot {slot} (MPIDR {:#x}) with no CPU_ON recorded for it; stopping",
                MPIDR_EL1.get()
            ),
        );
        P::stop()
    };
    install_payload_el1_vectors();
    ELR_EL2.set(t.entry);
    SPSR_EL2.set(regs::SPSR_EL1H_DAIF);
    t.context_id
}

/// Whether an HVC is one of the stub's payload EL1 vectors: its immediate (ESR_EL2.ISS
/// bits 15:0 for an HVC, Arm ARM D19.2) is one of theirs, and it was made from inside that
/// table (ELR_EL2 is the instruction after the HVC).
fn is_payload_fault_hvc(esr: u64) -> bool {
    let imm = (esr & 0xffff) as u16;
    let table = payload_el1_vectors();
    let pc = ELR_EL2.get().wrapping_sub(4);
    imm.wrapping_sub(abi::PAYLOAD_FAULT_HVC) < 16
        && (table..table + abi::VECTOR_TABLE_SIZE).contains(&pc)
}

/// A fault of the payload at EL1 before it installed its own vectors, as the stub's EL1
/// vectors pass it on: report ESR_EL1/ELR_EL1/FAR_EL1 (the HVC changed none of them) and
/// stop the machine.
fn report_payload_el1_fault<P: Platform>(frame: &Frame, esr_el2: u64) -> ! {
    let put = P::console_write;
    let slot = Slot::from_index((esr_el2 & 0xffff) - u64::from(abi::PAYLOAD_FAULT_HVC));
    let esr = ESR_EL1.get();
    console::line(
        put,
        format_args!(
            "EL1 fault: payload fault at EL1 before it installed its own vectors: {} ({})",
            esr::describe(slot, esr),
            slot.describe()
        ),
    );
    fault_registers_and_stop::<P>(
        frame,
        1,
        [esr, ELR_EL1.get(), FAR_EL1.get(), SPSR_EL1.get()],
    )
}

/// Whose code took an exception the stub does not serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whose {
    /// The stub's own: an exception while it handled another, or at EL2 before the
    /// hand-off.
    Stub,
    /// The payload's, at EL1 (through the stub's vectors: an exception routed to EL2) or at
    /// EL2 (code entered by HVC_SOFT_RESTART or the hand-off, still on the stub's vectors).
    Payload,
    /// The firmware's EL1 stage, before the hand-off.
    El1Stage,
}

/// Whose an exception through `slot` is, outside the stub's own handling.
fn whose(slot: Slot) -> Whose {
    let lower = matches!(
        slot,
        Slot::LowerA64Sync
            | Slot::LowerA64Irq
            | Slot::LowerA64Fiq
            | Slot::LowerA64SError
            | Slot::LowerA32
    );
    match (lower, memory::handed_off()) {
        (_, true) => Whose::Payload,
        (true, false) => Whose::El1Stage,
        (false, false) => Whose::Stub,
    }
}

/// Reports an exception the stub does not expect, with everything that describes it and
/// whose it is, and stops the machine.
pub fn report_and_stop<P: Platform>(frame: &Frame, slot: Slot, esr: u64, who: Whose) -> ! {
    let put = P::console_write;
    let ec = esr::exception_class(esr);
    let current_el = !matches!(
        slot,
        Slot::LowerA64Sync
            | Slot::LowerA64Irq
            | Slot::LowerA64Fiq
            | Slot::LowerA64SError
            | Slot::LowerA32
    );
    let owner = match (who, current_el) {
        (Whose::Stub, _) => "the stub's own fault (hypstub's EL2 code)",
        (Whose::El1Stage, _) => "the firmware's EL1 stage's",
        (Whose::Payload, false) => "the payload's, from EL1",
        (Whose::Payload, true) => {
            "the payload's, at EL2 (code entered by HVC_SOFT_RESTART or the hand-off, before it installed its own vectors)"
        }
    };
    console::line(
        put,
        format_args!(
            "EL2 fault: {} ({}); {owner}",
            esr::describe(slot, esr),
            slot.describe()
        ),
    );
    if current_el && matches!(ec, EC_HVC64 | EC_SMC64) || matches!(slot, Slot::CurrentSp0Sync) {
        // Nothing at EL2 makes calls, and the stub never runs on SP_EL0: either code at EL2
        // made one, or something jumped into the stub's vector table, and ESR_EL2 is left
        // from an earlier exception (a HVC_SOFT_RESTART whose entry was the table itself).
        console::line(
            put,
            format_args!(
                "  (at EL2 itself: no stub call exists from EL2; if ELR_EL2 below is a HVC_SOFT_RESTART's entry, that entry jumped into a vector table and ESR_EL2 is stale)"
            ),
        );
    }
    fault_registers_and_stop::<P>(
        frame,
        2,
        [esr, ELR_EL2.get(), FAR_EL2.get(), SPSR_EL2.get()],
    )
}

/// The end of every fault report: the syndrome, return, fault-address and saved-state
/// registers of exception level `el` (`[ESR, ELR, FAR, SPSR]`), the CPU and the
/// interrupted context's first registers; then the machine stops.
fn fault_registers_and_stop<P: Platform>(
    frame: &Frame,
    el: u8,
    [esr, elr, far, spsr]: [u64; 4],
) -> ! {
    let put = P::console_write;
    console::line(
        put,
        format_args!(
            "  ESR_EL{el}={esr:#018x} (EC={:#04x} IL={} ISS={:#09x})",
            esr::exception_class(esr),
            (esr >> 25) & 1,
            esr & 0x1ff_ffff
        ),
    );
    console::line(
        put,
        format_args!("  ELR_EL{el}={elr:#018x} FAR_EL{el}={far:#018x} SPSR_EL{el}={spsr:#018x}"),
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
