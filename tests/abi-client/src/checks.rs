//! The checks, one function per numbered step of the client (see the crate docs), and the
//! [`Checker`] that prints and counts their results.
//!
//! Each result is one console line, `abi-client: ok <name>` or
//! `abi-client: FAIL <name>: got 0x.. expected ..`; names are stable (tests grep for them).

use core::hint::spin_loop;

use crate::calls::{
    call, soft_restart, Conduit, El2Routine, HVC_FINALISE_EL2, HVC_GET_ICH_VTR_EL2,
    HVC_RESET_VECTORS, HVC_SET_VECTORS, HVC_STUB_ERR, HYPSTUB_ADD_RAM, PSCI_ALREADY_ON,
    PSCI_CPU_ON, PSCI_CPU_ON_32, PSCI_FEATURES, PSCI_INVALID_ADDRESS, PSCI_VERSION,
    SMCCC_NOT_SUPPORTED, SMCCC_VERSION, SMCCC_VERSION_1_1,
};
use crate::regs::{self, Deadline};
use crate::shared::{
    self, mailbox, rec, EL2_RECORD, ENTRY_VBAR_EL1, MAX_CPUS, STRAY_SLOT, ZERO_TABLE,
};
use crate::start::{self, CLIENT_MAGIC, CONTEXT_BASE};
use client_support::fdt::{self, Fdt};
use client_support::say;

/// QEMU virt's RAM starts here (docs/memory-map.md); the DTB must be in RAM.
const RAM_BASE: u64 = 0x4000_0000;
/// DAIF with D, A, I and F all set (bits 9:6).
const DAIF_MASKED: u64 = 0x3c0;
/// SCTLR_ELx.M, the stage 1 MMU enable.
const SCTLR_M: u64 = 1 << 0;
/// SCTLR_ELx.C, the data cache enable.
const SCTLR_C: u64 = 1 << 2;
/// The affinity fields of MPIDR_EL1 (Aff3 in 39:32, Aff2..Aff0 in 23:0), as PSCI wants them.
const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;
/// An MPIDR no QEMU virt configuration the client runs on has (Aff0 = 255).
const MISSING_MPIDR: u64 = 0xff;
/// An id below 0x8000_0000 that hyp-abi.rst does not define, and that the client's own EL2
/// vector table answers with [`CLIENT_MAGIC`].
const UNKNOWN_STUB_ID: u64 = 0x7777;
/// The stub's resident RAM on QEMU virt (docs/memory-map.md): never a vector table or entry.
const STUB_RAM: u64 = 0x4010_0000;
/// In QEMU virt's flash, outside RAM (the stub's own EL2 vectors are there).
const FLASH_ADDRESS: u64 = 0x800;
/// Beyond any CPU's physical address range (at most 52 bits), 2 KiB aligned.
const BEYOND_PA: u64 = 1 << 60;
/// How long a secondary CPU gets to report in.
const SECONDARY_TIMEOUT_MS: u64 = 2000;

pub use client_support::checks::Checker;

/// The machine state at entry, before anything could change it.
pub struct EntryState {
    /// x0..x3 as the boot loader set them.
    pub regs: [u64; 4],
    /// CurrentEL.EL.
    pub el: u64,
    /// DAIF.
    pub daif: u64,
    /// SCTLR_EL1.
    pub sctlr_el1: u64,
}

impl EntryState {
    /// Reads the registers that describe the entry state; call it first thing.
    pub fn capture(regs: [u64; 4]) -> Self {
        Self {
            regs,
            el: regs::current_el(),
            daif: regs::daif(),
            sctlr_el1: regs::sctlr_el1(),
        }
    }
}

/// Step 1, booting.rst's entry contract: EL1, x0 = a DTB, x1..x3 = 0, DAIF masked, MMU off.
/// Returns the device tree when it can be read.
pub fn entry_state(t: &mut Checker, entry: &EntryState) -> Option<Fdt<'static>> {
    t.expect_eq("entry_el", entry.el, 1);
    for (i, &value) in entry.regs.iter().enumerate().skip(1) {
        t.expect_eq(format_args!("entry_x{i}"), value, 0);
    }
    t.expect_eq("entry_daif", entry.daif, DAIF_MASKED);
    t.expect_eq("entry_sctlr_el1_m", entry.sctlr_el1 & SCTLR_M, 0);
    // A payload at EL1 starts on the stub's EL1 vectors (so that its early faults are
    // reported): a 2 KiB-aligned table, not 0.
    let vbar = ENTRY_VBAR_EL1.read(0);
    t.expect(
        "entry_vbar_el1",
        vbar != 0 && vbar.is_multiple_of(0x800),
        vbar,
        "a 2 KiB-aligned vector table",
    );

    // Touch x0 only where a DTB can be: 8-byte aligned (booting.rst) in RAM.
    let dtb = entry.regs[0];
    if !dtb.is_multiple_of(8) || dtb < RAM_BASE {
        t.fail(
            "entry_dtb",
            format_args!("x0 = {dtb:#x} is not an aligned RAM address"),
        );
        return None;
    }
    // SAFETY: `dtb` is 8-byte aligned and in RAM (checked above), so this is an aligned read
    // of memory that exists; the device tree is big-endian.
    let magic = u32::from_be(unsafe { (dtb as *const u32).read_volatile() });
    if !t.expect_eq("entry_dtb", magic.into(), 0xd00d_feed) {
        return None;
    }
    // SAFETY: a DTB header is at `dtb` (magic checked above); the boot loader leaves the
    // whole blob in RAM for the payload and nothing else writes it while the client runs.
    match unsafe { Fdt::from_addr(dtb as usize) } {
        Ok(fdt) => {
            t.pass("dtb");
            Some(fdt)
        }
        Err(err) => {
            t.fail("dtb", err);
            None
        }
    }
}

/// Step 2: SMCCC_VERSION is v1.1 through both conduits.
pub fn smccc_version(t: &mut Checker) {
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let ret = call(conduit, SMCCC_VERSION, [0; 3]);
        t.expect_eq(
            format_args!("smccc_version_{conduit}"),
            ret.x0,
            SMCCC_VERSION_1_1,
        );
    }
}

/// Step 3: hyp-abi.rst ids the stub does not implement answer HVC_STUB_ERR.
pub fn unknown_stub_ids(t: &mut Checker) {
    for id in [5, 0x1234, 0x7fff_ffff] {
        let ret = call(Conduit::Hvc, id, [0; 3]);
        t.expect_eq(
            format_args!("stub_unknown_id_{id:#x}"),
            ret.x0,
            HVC_STUB_ERR,
        );
    }
    let ret = call(Conduit::Hvc, HVC_FINALISE_EL2, [0; 3]);
    t.expect_eq("finalise_el2", ret.x0, HVC_STUB_ERR);
}

/// Step 4: HVC_GET_ICH_VTR_EL2 answers when there is a GICv3 CPU interface
/// (ID_AA64PFR0_EL1.GIC, bits 27:24), and is refused otherwise.
pub fn ich_vtr(t: &mut Checker) {
    let gic = (regs::id_aa64pfr0_el1() >> 24) & 0xf;
    let ret = call(Conduit::Hvc, HVC_GET_ICH_VTR_EL2, [0; 3]);
    if gic != 0 {
        t.expect_eq("get_ich_vtr_el2", ret.x0, 0);
        t.expect("get_ich_vtr_el2_value", ret.x1 != 0, ret.x1, "non-zero");
    } else {
        t.expect_eq("get_ich_vtr_el2_without_gicv3", ret.x0, HVC_STUB_ERR);
    }
}

/// Step 5: SMCCC ids nobody owns answer NOT_SUPPORTED (SMCCC: unknown function identifier).
pub fn unknown_smccc_ids(t: &mut Checker) {
    // A SiP service call (SMC64) and an OEM service call (SMC32).
    for (conduit, id) in [(Conduit::Smc, 0xC200_0001), (Conduit::Hvc, 0x8600_0001)] {
        let ret = call(conduit, id, [0; 3]);
        t.expect_eq(
            format_args!("smccc_unknown_{id:#x}_{conduit}"),
            ret.x0,
            SMCCC_NOT_SUPPORTED,
        );
    }
}

/// Step 6: PSCI answers through the stub: a version of at least 1.0, and PSCI_FEATURES
/// reports SMCCC_VERSION as implemented (PSCI_FEATURES; SMCCC 1.1 discovery relies on it).
pub fn psci_version_features(t: &mut Checker) {
    let version = call(Conduit::Smc, PSCI_VERSION, [0; 3]).x0;
    t.expect("psci_version", version >= 0x1_0000, version, ">= 0x10000");
    let features = call(Conduit::Smc, PSCI_FEATURES, [SMCCC_VERSION, 0, 0]).x0;
    t.expect_eq("psci_features_smccc_version", features, 0);
}

/// Step 7: HVC_SOFT_RESTART runs its target at EL2 with x0..x2 = the caller's x2..x4, the
/// EL2 MMU and data cache off and DAIF masked (hyp-abi.rst). Returns the stub's VBAR_EL2 as
/// the target saw it, when it is a plausible vector table address.
pub fn soft_restart_registers(t: &mut Checker) -> Option<u64> {
    const ARGS: [u64; 3] = [0x1111_2222_3333_4444, 0x5555, 0x6666];
    for word in 0..rec::WORDS {
        EL2_RECORD.write(word, 0);
    }
    soft_restart(El2Routine::Record, ARGS);
    if EL2_RECORD.read(rec::RAN) == 0 {
        t.fail(
            "soft_restart",
            "the EL2 entry never ran (the stub returned from the HVC)",
        );
        return None;
    }
    t.pass("soft_restart");
    let el = regs::el_of(EL2_RECORD.read(rec::CURRENT_EL));
    t.expect_eq("soft_restart_el", el, 2);
    for (i, (word, arg)) in [rec::X0, rec::X1, rec::X2]
        .into_iter()
        .zip(ARGS)
        .enumerate()
    {
        t.expect_eq(
            format_args!("soft_restart_x{i}"),
            EL2_RECORD.read(word),
            arg,
        );
    }
    let sctlr = EL2_RECORD.read(rec::SCTLR_EL2);
    t.expect_eq("soft_restart_sctlr_el2_m_c", sctlr & (SCTLR_M | SCTLR_C), 0);
    t.expect_eq("soft_restart_daif", EL2_RECORD.read(rec::DAIF), DAIF_MASKED);
    let vbar = EL2_RECORD.read(rec::VBAR_EL2);
    let plausible = vbar != 0 && vbar.is_multiple_of(0x800);
    t.expect(
        "soft_restart_vbar_el2",
        plausible,
        vbar,
        "a 2 KiB-aligned table",
    )
    .then_some(vbar)
}

/// Step 8: HVC_SET_VECTORS refuses a table that is not 2 KiB aligned and leaves the stub's
/// vectors in place.
pub fn set_vectors_misaligned(t: &mut Checker) {
    let misaligned = start::client_el2_vectors() + 0x100;
    let ret = call(Conduit::Hvc, HVC_SET_VECTORS, [misaligned, 0, 0]);
    t.expect_eq("set_vectors_misaligned", ret.x0, HVC_STUB_ERR);
    // Were the stub's vectors replaced anyway, this call would not come back.
    let ret = call(Conduit::Hvc, UNKNOWN_STUB_ID, [0; 3]);
    t.expect_eq("set_vectors_misaligned_stub_kept", ret.x0, HVC_STUB_ERR);
}

/// Step 9: HVC_SET_VECTORS installs the client's EL2 table (an HVC then reaches it), the
/// client's table puts the stub's back, and HVC_RESET_VECTORS works on the stub itself.
pub fn set_vectors(t: &mut Checker, stub_vbar: Option<u64>) {
    let Some(stub_vbar) = stub_vbar else {
        // Without the stub's address, the client's table could not hand EL2 back.
        t.fail(
            "set_vectors",
            "skipped: no stub VBAR_EL2 from the soft_restart check",
        );
        return;
    };
    let ret = call(
        Conduit::Hvc,
        HVC_SET_VECTORS,
        [start::client_el2_vectors(), 0, 0],
    );
    t.expect_eq("set_vectors", ret.x0, 0);
    let ret = call(Conduit::Hvc, UNKNOWN_STUB_ID, [0; 3]);
    t.expect_eq("set_vectors_client_table_live", ret.x0, CLIENT_MAGIC);
    // The client's table answers HVC_RESET_VECTORS by loading x1 into VBAR_EL2 (the stub, if
    // its vectors are still in place, ignores x1 and answers 0 as well).
    let ret = call(Conduit::Hvc, HVC_RESET_VECTORS, [stub_vbar, 0, 0]);
    t.expect_eq("set_vectors_back_to_stub", ret.x0, 0);
    let ret = call(Conduit::Hvc, UNKNOWN_STUB_ID, [0; 3]);
    t.expect_eq("set_vectors_stub_live_again", ret.x0, HVC_STUB_ERR);
    let ret = call(Conduit::Hvc, HVC_RESET_VECTORS, [0; 3]);
    t.expect_eq("reset_vectors", ret.x0, 0);
}

/// Step 10: PSCI CPU_ON through the stub starts each secondary at EL1 with x0 = the context
/// id (the stub traps the SMC and drops the new CPU to EL1), refuses a missing MPIDR, and
/// answers ALREADY_ON for the boot CPU.
pub fn cpu_on(t: &mut Checker, dtb: Option<&Fdt<'_>>) {
    let own = regs::mpidr_el1() & MPIDR_AFFINITY;
    let mut mpidrs = [0; MAX_CPUS];
    match dtb.map(|fdt| fdt.cpu_mpidrs(&mut mpidrs)) {
        None => t.fail("cpu_on", "no device tree to list the CPUs from"),
        Some(Err(err)) => t.fail("cpu_on", format_args!("cannot list the CPUs: {err}")),
        Some(Ok(count)) => {
            if count > MAX_CPUS {
                say!("abi-client: {count} CPUs in the DTB; starting the first {MAX_CPUS}");
            }
            let mut started = 0;
            for (slot, &mpidr) in mpidrs.iter().enumerate().take(count) {
                if mpidr & MPIDR_AFFINITY != own {
                    start_secondary(t, slot, mpidr);
                    started += 1;
                }
            }
            if started == 0 {
                t.pass("cpu_on (no secondaries)");
            }
        }
    }

    let entry = start::secondary_entry();
    let ret = call(
        Conduit::Smc,
        PSCI_CPU_ON,
        [MISSING_MPIDR, entry, CONTEXT_BASE],
    )
    .x0;
    t.expect(
        "cpu_on_missing_mpidr",
        (ret as i64) < 0,
        ret,
        "a negative PSCI error",
    );
    let ret = call(Conduit::Smc, PSCI_CPU_ON, [own, entry, CONTEXT_BASE]).x0;
    t.expect_eq("cpu_on_boot_cpu", ret, PSCI_ALREADY_ON as u64);
}

/// Starts the CPU `mpidr` with the context id for mailbox `slot` and checks what it reports.
fn start_secondary(t: &mut Checker, slot: usize, mpidr: u64) {
    let context = CONTEXT_BASE + slot as u64;
    shared::mailbox_clear(slot);
    shared::mailbox_clear(STRAY_SLOT);
    let ret = call(
        Conduit::Smc,
        PSCI_CPU_ON,
        [mpidr, start::secondary_entry(), context],
    );
    if !t.expect_eq(format_args!("cpu{slot}_on"), ret.x0, 0) {
        return;
    }

    let deadline = Deadline::after_ms(SECONDARY_TIMEOUT_MS);
    let reported = loop {
        if let Some(reported) = [slot, STRAY_SLOT]
            .into_iter()
            .find(|&s| shared::mailbox_read(s, mailbox::ARRIVED) != 0)
        {
            break reported;
        }
        if deadline.passed() {
            t.fail(
                format_args!("cpu{slot}_arrived"),
                format_args!("MPIDR {mpidr:#x} did not report in {SECONDARY_TIMEOUT_MS} ms"),
            );
            return;
        }
        spin_loop();
    };
    // A stray report means x0 was not the context id; the x0 check below says what it was.
    let el = regs::el_of(shared::mailbox_read(reported, mailbox::CURRENT_EL));
    t.expect_eq(format_args!("cpu{slot}_el"), el, 1);
    let x0 = shared::mailbox_read(reported, mailbox::X0);
    t.expect_eq(format_args!("cpu{slot}_context_id"), x0, context);
    let arrived = shared::mailbox_read(reported, mailbox::MPIDR) & MPIDR_AFFINITY;
    t.expect_eq(
        format_args!("cpu{slot}_mpidr"),
        arrived,
        mpidr & MPIDR_AFFINITY,
    );
    // Every CPU the stub starts is on the same EL1 vectors as the boot CPU at its entry.
    let vbar = shared::mailbox_read(reported, mailbox::VBAR_EL1);
    t.expect_eq(
        format_args!("cpu{slot}_entry_vbar_el1"),
        vbar,
        ENTRY_VBAR_EL1.read(0),
    );
}

/// The faults on purpose the command line may ask for at the end (`abi.fault=...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `abi.fault=el2`: a UDF at EL2, through HVC_SOFT_RESTART.
    El2,
    /// `abi.fault=el1`: a BRK on the boot CPU with the VBAR_EL1 it was entered with.
    El1,
    /// `abi.fault=el1-secondary`: a secondary started at a BRK.
    El1Secondary,
}

/// Step 12: which fault the command line asks for, if any.
pub fn fault_requested(dtb: &Fdt<'_>) -> Option<Fault> {
    let Ok(Some(args)) = dtb.bootargs() else {
        return None;
    };
    [
        (&b"abi.fault=el2"[..], Fault::El2),
        (b"abi.fault=el1", Fault::El1),
        (b"abi.fault=el1-secondary", Fault::El1Secondary),
    ]
    .into_iter()
    .find(|(option, _)| fdt::has_option(args, option))
    .map(|(_, fault)| fault)
}

/// Step 12: the fault asked for. The stub must report it and stop the machine, so this
/// comes back only if it does not.
pub fn fault(t: &mut Checker, fault: Fault, dtb: Option<&Fdt<'_>>) {
    match fault {
        Fault::El2 => {
            say!("abi-client: faulting at EL2 on purpose");
            soft_restart(El2Routine::Fault, [0; 3]);
            t.fail(
                "fault_el2",
                "the EL2 fault came back to EL1 instead of stopping the machine",
            );
        }
        Fault::El1 => {
            say!("abi-client: faulting at EL1 on the boot CPU on purpose, on its entry VBAR_EL1");
            start::fault_on_vectors(ENTRY_VBAR_EL1.read(0));
        }
        Fault::El1Secondary => {
            let own = regs::mpidr_el1() & MPIDR_AFFINITY;
            let mut mpidrs = [0; MAX_CPUS];
            let target = dtb
                .and_then(|fdt| fdt.cpu_mpidrs(&mut mpidrs).ok())
                .and_then(|n| mpidrs.iter().take(n).find(|&&m| m & MPIDR_AFFINITY != own))
                .copied();
            let Some(target) = target else {
                t.fail(
                    "fault_el1_secondary",
                    "no secondary CPU in the DTB (-smp 2 or more)",
                );
                return;
            };
            say!("abi-client: starting MPIDR {target:#x} at a BRK on purpose");
            let ret = call(
                Conduit::Smc,
                PSCI_CPU_ON,
                [target, start::secondary_fault_entry(), CONTEXT_BASE],
            );
            // Nothing is printed while the secondary reports, so that its lines stay whole.
            if ret.x0 != 0 {
                t.fail(
                    "fault_el1_secondary_cpu_on",
                    format_args!("CPU_ON answered {:#x}", ret.x0),
                );
            } else {
                // The secondary's report powers the machine off; wait for it.
                let deadline = Deadline::after_ms(SECONDARY_TIMEOUT_MS);
                while !deadline.passed() {
                    spin_loop();
                }
                t.fail(
                    "fault_el1_secondary",
                    "the secondary's fault did not stop the machine",
                );
            }
        }
    }
}

/// Step 10: calls with addresses that cannot be what they claim: each is refused with its
/// error code and a console line, nothing changes, and the stub keeps answering.
pub fn bad_calls(t: &mut Checker) {
    for (name, vbar) in [
        ("set_vectors_beyond_pa", BEYOND_PA),
        ("set_vectors_stub_ram", STUB_RAM),
        ("set_vectors_outside_ram", FLASH_ADDRESS),
        ("set_vectors_udf_table", ZERO_TABLE.0.as_ptr() as u64),
    ] {
        let ret = call(Conduit::Hvc, HVC_SET_VECTORS, [vbar, 0, 0]);
        t.expect_eq(name, ret.x0, HVC_STUB_ERR);
        // Were the vectors replaced anyway, this call would not come back with the stub's
        // answer.
        let ret = call(Conduit::Hvc, UNKNOWN_STUB_ID, [0; 3]);
        t.expect_eq(format_args!("{name}_stub_kept"), ret.x0, HVC_STUB_ERR);
    }
    for (name, entry) in [
        ("soft_restart_beyond_pa", BEYOND_PA),
        ("soft_restart_stub_ram", STUB_RAM),
        ("soft_restart_outside_ram", FLASH_ADDRESS),
    ] {
        // A refused soft restart returns like any call, with x0 = HVC_STUB_ERR; the wrapper
        // discards x0, so the answer is checked by what comes after (still at EL1, the stub
        // answering) and by the console line the QEMU test asserts.
        soft_restart(El2Routine::Refused(entry), [0; 3]);
        let ret = call(Conduit::Hvc, UNKNOWN_STUB_ID, [0; 3]);
        t.expect_eq(format_args!("{name}_stub_kept"), ret.x0, HVC_STUB_ERR);
        t.expect_eq(format_args!("{name}_el"), regs::current_el(), 1);
    }
    let own = regs::mpidr_el1() & MPIDR_AFFINITY;
    for (name, entry) in [
        ("cpu_on_beyond_pa", BEYOND_PA),
        ("cpu_on_stub_ram", STUB_RAM),
        ("cpu_on_outside_ram", FLASH_ADDRESS),
    ] {
        let ret = call(Conduit::Smc, PSCI_CPU_ON, [own, entry, CONTEXT_BASE]).x0;
        t.expect_eq(name, ret, PSCI_INVALID_ADDRESS as u64);
    }
    // PSCI refuses the boot CPU (ALREADY_ON) twice: the stub freed its mailbox after the
    // first refusal (a slot left set would answer ON_PENDING).
    for name in ["cpu_on_refused_once", "cpu_on_refused_twice"] {
        let ret = call(
            Conduit::Smc,
            PSCI_CPU_ON,
            [own, start::secondary_entry(), CONTEXT_BASE],
        )
        .x0;
        t.expect_eq(name, ret, PSCI_ALREADY_ON as u64);
    }
    // SMCCC: the function id is W0; a 32-bit call's arguments are W1..W3.
    let ret = call(Conduit::Hvc, 0xffff_ffff_0000_0000 | SMCCC_VERSION, [0; 3]).x0;
    t.expect_eq("smccc_version_upper_bits_ignored", ret, SMCCC_VERSION_1_1);
    let ret = call(
        Conduit::Smc,
        0xffff_ffff_0000_0000 | PSCI_CPU_ON_32,
        [
            0xffff_ffff_0000_0000 | own,
            start::secondary_entry(),
            CONTEXT_BASE,
        ],
    )
    .x0;
    t.expect_eq(
        "cpu_on_32_upper_bits_ignored",
        ret & 0xffff_ffff,
        PSCI_ALREADY_ON as u64 & 0xffff_ffff,
    );
    // RAM is reported by the firmware before the hand-off, never by a payload.
    let ret = call(Conduit::Hvc, HYPSTUB_ADD_RAM, [0x8000_0000, 0x1000, 0]).x0;
    t.expect_eq("add_ram_after_hand_off", ret, SMCCC_NOT_SUPPORTED);
    let ret = call(Conduit::Hvc, SMCCC_VERSION, [0; 3]).x0;
    t.expect_eq("bad_calls_stub_still_answers", ret, SMCCC_VERSION_1_1);
}
