//! The built-in demo payload, run when no `-kernel` is given: from EL1 it asks the stub and
//! PSCI what they answer and says what it sees, then powers off. Runs inside the EL1 stage
//! (MMU on), so `cargo xtask run` shows the stub at work with no downloads.

use aarch64_cpu::registers::{CurrentEL, Readable, ID_AA64PFR0_EL1};
use el2_stub::abi::{HVC_GET_ICH_VTR_EL2, HVC_STUB_ERR, STUB_SMCCC_VERSION};
use log::{error, info};

fn hvc(id: u64) -> [u64; 18] {
    smccc::hvc64(id as u32, [0; 17])
}

/// Runs the demo; returns whether everything answered as the ABI says.
pub fn run() -> bool {
    info!("demo: no -kernel given: running the built-in demo payload");
    let mut ok = true;
    let mut check = |what: &str, good: bool| {
        if !good {
            error!("demo: FAIL {what}");
            ok = false;
        }
    };

    let el = CurrentEL.read(CurrentEL::EL);
    info!("demo: CurrentEL={el}");
    check("running at EL1", el == 1);

    let v = hvc(0x8000_0000)[0];
    info!(
        "demo: SMCCC_VERSION -> {}.{} (from the stub, by hvc)",
        v >> 16,
        v & 0xffff
    );
    check("SMCCC_VERSION", v == STUB_SMCCC_VERSION);

    let e = smccc::hvc64(0x1234, [0; 17])[0];
    info!("demo: hyp-stub call 0x1234 -> {e:#x} (HVC_STUB_ERR)");
    check("unknown hyp-stub call", e == HVC_STUB_ERR);

    match smccc::psci::version::<smccc::Smc>() {
        Ok(v) => info!(
            "demo: PSCI_VERSION -> {}.{} (QEMU's, forwarded by the stub)",
            v.major, v.minor
        ),
        Err(e) => check(&alloc::format!("PSCI_VERSION: {e:?}"), false),
    }

    let gicv3 = (ID_AA64PFR0_EL1.get() >> 24) & 0xf != 0;
    let r = hvc(HVC_GET_ICH_VTR_EL2);
    if gicv3 {
        info!(
            "demo: HVC_GET_ICH_VTR_EL2 -> x0={:#x} ICH_VTR_EL2={:#x}",
            r[0], r[1]
        );
        check("HVC_GET_ICH_VTR_EL2", r[0] == 0);
    } else {
        info!(
            "demo: HVC_GET_ICH_VTR_EL2 -> {:#x} (no GICv3 CPU interface)",
            r[0]
        );
        check("HVC_GET_ICH_VTR_EL2 without GICv3", r[0] == HVC_STUB_ERR);
    }

    if ok {
        info!("demo: PASS");
    }
    ok
}
