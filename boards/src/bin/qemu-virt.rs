//! hypstub firmware for QEMU `-M virt,virtualization=on` (`-bios` image).
//!
//! The boot story: `entry.S` starts the boot CPU at EL2 with a stack; `qemu_virt_el2_main`
//! sets up EL2 and the stub and drops to EL1; the EL1 stage (`qemu_virt_el1_main`) turns its
//! MMU on, reads the payload and command line from fw_cfg (or takes the built-in demo) --
//! `-kernel` is an arm64 Image, or a FIT read whole into free RAM and checked there --,
//! checks and places the payload, edits the DTB, stages everything with the relocation
//! planner and issues HVC_SOFT_RESTART; the engine copies and enters the payload at EL2
//! (default) or at EL1 with the stub resident.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "qemu-virt is bare-metal firmware: build it with `cargo xtask build --board qemu-virt`"
    );
}

#[cfg(target_os = "none")]
mod firmware {
    use el2_stub::console::line;
    use hypstub_boards::boot::yes;
    use hypstub_boards::qemu_virt::{self as board, QemuVirt, QemuVirtBoard};
    use hypstub_boards::{console, el1, flow, handover, runtime};
    use log::{info, LevelFilter};

    el2_stub::platform!(QemuVirt);
    hypstub_boards::el1_runtime!(console: board::console_raw, stop: board::power_off);

    // The board's entry points (each board binary assembles its own, so that one image
    // never carries another board's `_start`).
    core::arch::global_asm!(
        concat!(include_str!("../ram_init.S"), include_str!("../qemu_virt/entry.S")),
        SCTLR_EL2_MMU_OFF = const el2_stub::regs::SCTLR_EL2_MMU_OFF,
        STACK_SIZE = const el2_stub::cpus::STACK_SIZE,
        RAM_START = const board::RAM_START,
        PAYLOAD_LOWEST = const board::PAYLOAD_LOWEST,
        PL011 = const board::PL011,
        EARLY_RUNS = const board::HYPSTUB_QEMU_VIRT_EARLY_RUNS.len(),
    );

    /// The boot CPU at EL2, MMU off, on its EL2 stack, RAM sections ready.
    #[unsafe(no_mangle)]
    extern "C" fn qemu_virt_el2_main(current_el: u64) -> ! {
        let put = board::console_raw;
        line(
            put,
            format_args!("hypstub {} on {}", env!("CARGO_PKG_VERSION"), board::NAME),
        );
        if current_el != 2 {
            wrong_el(current_el);
        }
        runtime::start_el1(board::qemu_virt_el1_entry, board::DTB.start, |f| {
            line(put, format_args!(
                "el2-stub: EL2 set up (GICv3 system registers: {}, SVE: {}, PAuth: {}), vectors at {:#x}, resident RAM {:#x}..{:#x}",
                yes(f.gicv3_sysregs), yes(f.sve), yes(f.pauth),
                el2_stub::handler::stub_vectors(), board::RESIDENT.start, board::RESIDENT.end
            ));
            line(put, format_args!("el2-stub: dropping to the EL1 stage"));
        })
    }

    /// Started at the wrong EL: say what QEMU option is missing, and stop.
    fn wrong_el(el: u64) -> ! {
        if el == 1 {
            // Without EL2, QEMU's PSCI conduit is HVC.
            let hint = "QEMU gave no EL2: run it with -M virt,virtualization=on";
            line(
                board::console_raw,
                format_args!("hypstub: started at EL1, but the stub needs EL2: {hint}"),
            );
            line(board::console_raw, format_args!("hypstub: stopping"));
            let _ = smccc::psci::system_off::<smccc::Hvc>();
        }
        let hint = match el {
            3 => "QEMU started at EL3: run it without secure=on (hypstub does not replace EL3 firmware on virt)",
            _ => "unexpected exception level",
        };
        runtime::wrong_el(board::console_raw, el, hint)
    }

    /// The boot CPU at EL1, MMU and caches on (early tables), x0 = DTB.
    #[unsafe(no_mangle)]
    extern "C" fn qemu_virt_el1_main(_dtb: u64) -> ! {
        el1::install_vectors();
        // SAFETY: the early tables map the PL011 as Device memory; the logger is its only
        // owner from here on (the raw writer only appends whole lines).
        unsafe { console::init(board::PL011, LevelFilter::Info) };
        runtime::init_heap();
        info!(
            "el1: MMU and caches on; heap {} KiB",
            runtime::heap_size() / 1024
        );
        // SAFETY: once, at EL1 with the early tables on.
        match unsafe { QemuVirtBoard::new(runtime::heap_size()) } {
            Ok(mut b) => flow::run(&mut b),
            Err(e) => handover::stop_with(&e, board::power_off),
        }
    }
}
