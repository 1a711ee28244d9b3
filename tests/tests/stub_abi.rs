//! The stub's answers to bad calls and its reports of faults, from abi-client at EL1 on
//! QEMU virt (docs/hyp-abi.md, docs/CONTRACTS.md): each refused call prints one
//! `el2-stub: ... refused ...` line and the client still passes (it checks the error codes
//! and that the stub keeps answering); each fault on purpose (`abi.fault=...`) is reported
//! as the payload's, with its registers, and the machine powers off (status 0) without the
//! client's PASS.

use hypstub_tests::{abi_client, boot, machine};
use xtask::runner::{Gic, QemuRun};

fn client(append: &str) -> QemuRun {
    machine()
        .kernel(abi_client())
        .append(format!("hypstub.el=1 {append}"))
}

/// Every bad HVC_SET_VECTORS, HVC_SOFT_RESTART and CPU_ON gets its error code (checked by
/// the client) and one console line naming why; the stub answers on and the client passes.
#[test]
fn bad_calls_are_refused_with_a_reason() {
    boot("stub_abi_bad_calls", &client("").smp(2).gic(Gic::V3))
        .assert_success()
        .assert_contains("abi-client: ok set_vectors_beyond_pa")
        .assert_contains("abi-client: ok cpu_on_refused_twice")
        .assert_contains("abi-client: ok bad_calls_stub_still_answers")
        .assert_contains("abi-client: PASS")
        .assert_lacks("abi-client: FAIL")
        .assert_contains(
            "el2-stub: HVC_SET_VECTORS to 0x1000000000000000 refused (HVC_STUB_ERR): beyond the CPU's",
        )
        .assert_contains("el2-stub: HVC_SET_VECTORS to 0x40100000 refused (HVC_STUB_ERR): inside the stub's own memory 0x40100000..0x40108000; the vectors are unchanged")
        .assert_contains("el2-stub: HVC_SET_VECTORS to 0x800 refused (HVC_STUB_ERR): not inside RAM")
        .assert_contains("(HVC_STUB_ERR): its lower-EL synchronous slot (offset 0x400) is udf #0")
        .assert_contains("el2-stub: HVC_SOFT_RESTART to 0x1000000000000000 refused (HVC_STUB_ERR): beyond the CPU's")
        .assert_contains("el2-stub: HVC_SOFT_RESTART to 0x40100000 refused (HVC_STUB_ERR): inside the stub's own memory")
        .assert_contains("el2-stub: HVC_SOFT_RESTART to 0x800 refused (HVC_STUB_ERR): not inside RAM")
        .assert_contains("at entry 0x1000000000000000 refused (INVALID_ADDRESS): beyond the CPU's")
        .assert_contains("at entry 0x40100000 refused (INVALID_ADDRESS): inside the stub's own memory")
        .assert_contains("at entry 0x800 refused (INVALID_ADDRESS): not inside RAM")
        .assert_contains("el2-stub: HYPSTUB_ADD_RAM refused: the payload has been entered")
        .assert_contains("the stub has 8 CPU slots, for MPIDR Aff0 0 to 7");
}

/// A BRK on the boot CPU with the VBAR_EL1 it was entered with: the stub's EL1 vectors for
/// a payload report it as the payload's, with ESR/ELR/FAR_EL1, and power off.
#[test]
fn boot_cpu_fault_before_its_vectors_is_the_payloads() {
    boot("stub_abi_el1_fault", &client("abi.fault=el1"))
        .assert_success()
        .assert_contains("abi-client: faulting at EL1 on the boot CPU on purpose")
        .assert_contains(
            "EL1 fault: payload fault at EL1 before it installed its own vectors: BRK instruction",
        )
        .assert_contains("ESR_EL1=0x00000000f2000000 (EC=0x3c")
        .assert_contains("ELR_EL1=0x00000000402")
        .assert_contains("FAR_EL1=")
        .assert_contains("MPIDR_EL1=0x80000000")
        .assert_contains("hypstub: system stopped")
        .assert_lacks("the firmware's EL1 stage")
        .assert_lacks("abi-client: PASS");
}

/// A secondary started by CPU_ON at a BRK: before, it looped silently through VBAR_EL1 = 0;
/// now it is on the stub's EL1 vectors too, and its fault is reported and stops the machine.
#[test]
fn secondary_fault_before_its_vectors_is_the_payloads() {
    boot(
        "stub_abi_el1_secondary_fault",
        &client("abi.fault=el1-secondary").smp(2),
    )
    .assert_success()
    .assert_contains("abi-client: starting MPIDR 0x1 at a BRK on purpose")
    .assert_contains(
        "EL1 fault: payload fault at EL1 before it installed its own vectors: BRK instruction",
    )
    .assert_contains("ESR_EL1=0x00000000f2000001 (EC=0x3c")
    .assert_contains("MPIDR_EL1=0x80000001")
    .assert_contains("hypstub: system stopped")
    .assert_lacks("abi-client: FAIL")
    .assert_lacks("abi-client: PASS");
}

/// A UDF at EL2 in code entered by HVC_SOFT_RESTART is the payload's, and said so.
#[test]
fn el2_fault_names_the_payload() {
    boot("stub_abi_el2_fault", &client("abi.fault=el2"))
        .assert_success()
        .assert_contains("EL2 fault: unknown reason (undefined instruction) (synchronous, current EL); the payload's, at EL2")
        .assert_contains("ESR_EL2=")
        .assert_contains("hypstub: system stopped")
        .assert_lacks("the stub's own fault")
        .assert_lacks("abi-client: PASS");
}

/// `-smp 16` at EL1: the CPUs with Aff0 8..15 are named at boot; the client still passes on
/// the first 8 and the stub refuses the rest with the slot count.
#[test]
fn cpus_without_a_slot_are_named_at_boot() {
    boot("stub_abi_smp16", &client("").smp(16).gic(Gic::V3))
        .assert_success()
        .assert_contains("cpus: 8 of the 16 CPUs (MPIDR 0x8 to 0xf) can never be started through the stub with hypstub.el=1: it has 8 CPU slots, for MPIDR Aff0 0 to 7")
        .assert_contains("abi-client: PASS")
        .assert_lacks("abi-client: FAIL");
}
