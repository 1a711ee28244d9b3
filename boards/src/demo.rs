//! The built-in demo, run when no payload is given: from EL1 it asks the stub and PSCI what
//! they answer and says what it sees ([`run`], inside the EL1 stage, MMU on); then the
//! firmware relocates the demo payload ([`payload`], `demo_payload.S`) like any other, and it
//! reports how it was entered and powers off. `cargo xtask run` shows the stub at work with
//! no downloads.

use aarch64_cpu::registers::{CurrentEL, Readable, ID_AA64PFR0_EL1};
use el2_stub::abi::{HVC_GET_ICH_VTR_EL2, HVC_STUB_ERR, STUB_SMCCC_VERSION};
use log::{error, info};

fn hvc(id: u64) -> [u64; 18] {
    smccc::hvc64(id as u32, [0; 17])
}

/// Runs the demo; returns whether everything answered as the ABI says. Without PSCI
/// (`has_psci` false: the Raspberry Pi 4) the stub must answer PSCI calls NOT_SUPPORTED.
pub fn run(has_psci: bool) -> bool {
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

    match (smccc::psci::version::<smccc::Smc>(), has_psci) {
        (Ok(v), true) => info!(
            "demo: PSCI_VERSION -> {}.{} (the platform's, forwarded by the stub)",
            v.major, v.minor
        ),
        (Err(smccc::psci::error::Error::NotSupported), false) => {
            info!("demo: PSCI_VERSION -> NOT_SUPPORTED (this board has no PSCI)");
        }
        (r, _) => check(&alloc::format!("PSCI_VERSION: {r:?}"), false),
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

/// Offsets of the demo payload's configuration words (`demo_payload.S`), after its 64-byte
/// Image header: the console's address, its kind (0 PL011, 1 mini-UART), and the power-off
/// method (0 PSCI SYSTEM_OFF, else the BCM2711 PM block's address).
pub const PAYLOAD_CONSOLE: usize = 0x40;
/// See [`PAYLOAD_CONSOLE`].
pub const PAYLOAD_CONSOLE_KIND: usize = 0x48;
/// See [`PAYLOAD_CONSOLE`].
pub const PAYLOAD_POWER_OFF: usize = 0x50;

core::arch::global_asm!(
    include_str!("demo_payload.S"),
    PL011 = const crate::qemu_virt::PL011,
);

unsafe extern "C" {
    static hypstub_demo_payload_start: u8;
    static hypstub_demo_payload_end: u8;
}

/// The built-in demo payload (`demo_payload.S`): an arm64 Image in the firmware's read-only
/// data, configured for QEMU virt (PL011 at 0x0900_0000, PSCI).
#[must_use]
pub fn payload() -> &'static [u8] {
    let start = core::ptr::addr_of!(hypstub_demo_payload_start);
    let end = core::ptr::addr_of!(hypstub_demo_payload_end);
    // SAFETY: the two symbols bound the payload's bytes in read-only data, start first.
    unsafe { core::slice::from_raw_parts(start, end as usize - start as usize) }
}

/// A copy of the demo payload that prints on `console` and powers off through the BCM2711
/// PM block at `pm` (or PSCI when `None`).
#[must_use]
pub fn payload_for(console: crate::console::ConsoleUart, pm: Option<u64>) -> alloc::vec::Vec<u8> {
    use crate::console::ConsoleUart;
    let mut p = payload().to_vec();
    let (base, kind) = match console {
        ConsoleUart::Pl011(b) => (b as u64, 0u64),
        ConsoleUart::MiniUart(b) => (b as u64, 1),
    };
    p[PAYLOAD_CONSOLE..][..8].copy_from_slice(&base.to_le_bytes());
    p[PAYLOAD_CONSOLE_KIND..][..8].copy_from_slice(&kind.to_le_bytes());
    p[PAYLOAD_POWER_OFF..][..8].copy_from_slice(&pm.unwrap_or(0).to_le_bytes());
    p
}
