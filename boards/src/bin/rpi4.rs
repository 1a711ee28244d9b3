//! hypstub firmware for the Raspberry Pi 4 (`kernel8.img`).
//!
//! The boot story: the Pi firmware's armstub (or hypstub's own) enters `entry.S` at 0x8_0000
//! on the boot CPU at EL2 with x0 = DTB; `rpi4_el2_main` sets up EL2 and the stub and drops to
//! EL1; the EL1 stage (`rpi4_el1_main`) turns its MMU on, finds the console the DTB names,
//! reads the options from /chosen/bootargs (the Pi's cmdline.txt), maps all RAM banks, finds
//! the payload -- a FIT image that the firmware loaded as the initramfs -- verifies every
//! hash in it, places the kernel, takes the secondary CPUs over when the payload runs at EL1,
//! edits the DTB, stages everything with the relocation planner and issues
//! HVC_SOFT_RESTART. Without a payload it runs the built-in demo. See docs/rpi4.md.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("rpi4 is bare-metal firmware: build it with `cargo xtask build --board rpi4`");
}

#[cfg(target_os = "none")]
mod firmware {
    use el2_stub::console::line;
    use el2_stub::regs::{self, CpuFeatures};
    use hypstub_boards::boot::yes;
    use hypstub_boards::console::ConsoleUart;
    use hypstub_boards::el1::cache::{Cache, CpuCache};
    use hypstub_boards::rpi4::{self as board, Rpi4, Rpi4Board, HYPSTUB_RPI4_SHARED as SHARED};
    use hypstub_boards::{console, el1, flow, handover, runtime};
    use log::{info, LevelFilter};

    el2_stub::platform!(Rpi4);
    hypstub_boards::el1_runtime!(console: board::console_raw, stop: board::power_off);

    // The board's entry points (each board binary assembles its own).
    core::arch::global_asm!(
        concat!(include_str!("../ram_init.S"), include_str!("../rpi4/entry.S")),
        SCTLR_EL2_MMU_OFF = const el2_stub::regs::SCTLR_EL2_MMU_OFF,
        STACK_SIZE = const el2_stub::cpus::STACK_SIZE,
        MAX_CPUS = const el2_stub::cpus::MAX_CPUS,
        EARLY_START = const board::SHARED.start,
        EARLY_END = const board::EARLY_CODE.end,
        EARLY_RUNS = const board::HYPSTUB_RPI4_EARLY_RUNS.len(),
        SHARED_PARKED = const board::SHARED_PARKED,
        SHARED_RELEASE = const board::SHARED_RELEASE,
        PL011_FALLBACK = const board::FALLBACK_UARTS[1].base(),
        MINI_UART_FALLBACK = const board::FALLBACK_UARTS[0].base(),
    );

    /// The boot CPU at EL2, MMU off, on its EL2 stack, RAM sections ready. The console is not
    /// known before the DTB is read at EL1: nothing is printed here unless the EL is wrong.
    #[unsafe(no_mangle)]
    extern "C" fn rpi4_el2_main(current_el: u64, dtb: u64) -> ! {
        if current_el != 2 {
            let hint = match current_el {
                3 => "kernel8.img runs after an armstub: the Pi firmware's own, or hypstub's armstub8-hypstub.bin (armstub= in config.txt); it cannot start at EL3 itself",
                _ => "the Pi firmware's armstub enters kernel8.img at EL2; something dropped to EL1 before hypstub",
            };
            runtime::wrong_el(board::console_raw, current_el, hint);
        }
        runtime::start_el1(board::rpi4_el1_entry, dtb, |_| {})
    }

    /// A secondary CPU taken over from the spin table, at EL2 on its stub stack, MMU off.
    #[unsafe(no_mangle)]
    extern "C" fn rpi4_secondary_el2_main(slot: u64) -> ! {
        regs::init_el2_for_el1(&CpuFeatures::read());
        regs::drop_to_el1(board::rpi4_park as *const () as u64, 0, slot)
    }

    /// The boot CPU at EL1, MMU and caches on (early tables), x0 = DTB.
    #[unsafe(no_mangle)]
    extern "C" fn rpi4_el1_main(dtb: u64) -> ! {
        el1::install_vectors();
        runtime::init_heap();
        // SAFETY: at EL1 with the early tables on; the slice is dropped before the board
        // reads the DTB again.
        let uart = match unsafe { board::find_console(dtb) } {
            Ok(uart) => uart,
            Err(e) => {
                line(board::console_raw, format_args!("hypstub: {e}"));
                line(
                    board::console_raw,
                    format_args!("hypstub: stopping: no console (this message went to both UARTs)"),
                );
                board::power_off()
            }
        };
        SHARED.set_console(uart);
        CpuCache.clean(SHARED.console_line());
        // SAFETY: the early tables map the UART as Device memory; the logger is its only
        // owner from here on (the raw writers only append whole lines).
        unsafe { console::init_on(uart, LevelFilter::Info) };
        info!("hypstub {} on {}", env!("CARGO_PKG_VERSION"), board::NAME);
        let f = CpuFeatures::read();
        info!(
            "el2-stub: EL2 set up (GICv3 system registers: {}, SVE: {}, PAuth: {}), vectors at {:#x}, resident RAM {:#x}..{:#x}",
            yes(f.gicv3_sysregs),
            yes(f.sve),
            yes(f.pauth),
            el2_stub::handler::stub_vectors(),
            board::RESIDENT.start,
            board::RESIDENT.end
        );
        info!(
            "el1: MMU and caches on; heap {} KiB; console {} at {:#x} (from the DTB at {dtb:#x})",
            runtime::heap_size() / 1024,
            match uart {
                ConsoleUart::Pl011(_) => "PL011",
                ConsoleUart::MiniUart(_) => "mini-UART",
            },
            uart.base()
        );
        // SAFETY: once, at EL1 with the early tables on.
        match unsafe { Rpi4Board::new(dtb, uart, runtime::image_end()) } {
            Ok(mut b) => flow::run(&mut b),
            Err(e) => handover::stop_with(&e, board::power_off),
        }
    }
}
