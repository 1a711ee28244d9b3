//! hypstub firmware for QEMU `-M virt,virtualization=on` (`-bios` image).
//!
//! The boot story: `entry.S` starts the boot CPU at EL2 with a stack; [`el2_main`] sets up
//! EL2 and the stub and drops to EL1; the EL1 stage turns its MMU on ([`el1_main`]), reads
//! the payload and command line from fw_cfg, checks and places the payload, edits the DTB,
//! and enters the payload at EL1 with the stub resident (or runs the built-in demo).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "qemu-virt is bare-metal firmware: build it with `cargo xtask build --board qemu-virt`"
    );
}

#[cfg(target_os = "none")]
mod firmware {
    extern crate alloc;

    use core::ops::Range;

    use buddy_system_allocator::LockedHeap;
    use el2_stub::console::line;
    use el2_stub::regs::{self, CpuFeatures};
    use hypstub_boards::error::BootError;
    use hypstub_boards::qemu_virt::fw_cfg::{self, FwCfg};
    use hypstub_boards::qemu_virt::{self as board, QemuVirt};
    use hypstub_boards::{console, demo, el1};
    use loader::fdt::{Dtb, Edits};
    use loader::image::{self, ImageHeader};
    use loader::options::{self, El, Options};
    use log::{error, info, LevelFilter};

    el2_stub::platform!(QemuVirt);

    #[global_allocator]
    static HEAP: LockedHeap<32> = LockedHeap::empty();

    unsafe extern "C" {
        static __heap_start: u8;
        static __heap_end: u8;
        static __el1_stack_top: u8;
    }

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
        let f = CpuFeatures::read();
        regs::init_el2_for_el1(&f);
        el2_stub::handler::install_vectors();
        line(put, format_args!(
            "el2-stub: EL2 set up (GICv3 system registers: {}, SVE: {}, PAuth: {}), vectors at {:#x}, resident RAM {:#x}..{:#x}",
            yes(f.gicv3_sysregs), yes(f.sve), yes(f.pauth),
            el2_stub::handler::stub_vectors(), board::RESIDENT.start, board::RESIDENT.end
        ));
        line(put, format_args!("el2-stub: dropping to the EL1 stage"));
        regs::drop_to_el1(
            board::qemu_virt_el1_entry as *const () as u64,
            core::ptr::addr_of!(__el1_stack_top) as u64,
            board::DTB.start,
        )
    }

    fn yes(b: bool) -> &'static str {
        if b {
            "yes"
        } else {
            "no"
        }
    }

    /// Started at the wrong EL: say what QEMU option is missing, and stop.
    fn wrong_el(el: u64) -> ! {
        let put = board::console_raw;
        let hint = match el {
            1 => "QEMU gave no EL2: run it with -M virt,virtualization=on",
            3 => "QEMU started at EL3: run it without secure=on (hypstub does not replace EL3 firmware on virt)",
            _ => "unexpected exception level",
        };
        line(
            put,
            format_args!("hypstub: started at EL{el}, but the stub needs EL2: {hint}"),
        );
        line(put, format_args!("hypstub: stopping"));
        if el == 1 {
            // Without EL2, QEMU's PSCI conduit is HVC.
            let _ = smccc::psci::system_off::<smccc::Hvc>();
        }
        loop {
            aarch64_cpu::asm::wfe();
        }
    }

    /// The boot CPU at EL1, MMU and caches on (early tables), x0 = DTB.
    #[unsafe(no_mangle)]
    extern "C" fn qemu_virt_el1_main(dtb: u64) -> ! {
        el1::install_vectors();
        // SAFETY: the early tables map the PL011 as Device memory; the logger is its only
        // owner from here on (the raw writer only appends whole lines).
        unsafe { console::init(board::PL011, LevelFilter::Info) };
        init_heap();
        info!("el1: MMU and caches on; heap {} KiB", heap_size() / 1024);
        match boot(dtb) {
            Ok(handoff) => enter(handoff),
            Err(e) => stop_with(&e),
        }
    }

    /// What the hand-off needs.
    struct Handoff {
        entry: u64,
        dtb: u64,
    }

    /// Everything before the point of no return: each step can fail with a message.
    fn boot(dtb_addr: u64) -> Result<Handoff, BootError> {
        let mut fw = FwCfg::probe(fw_cfg::DmaDevice::new(
            fw_cfg::Mmio {
                base: board::FW_CFG,
            },
            el1::cache::CpuCache,
        ))?;
        let cmdline = fw.cmdline()?;
        let (opts, payload_cmdline) = options::parse(&cmdline)?;
        log::set_max_level(opts.log);
        report_options(&opts, &cmdline);

        // SAFETY: at EL1 with the early tables on, and the only use of the DTB area.
        let mut dtb = Dtb::new(unsafe { board::dtb_area() })?;
        let ram = ram_range(&dtb)?;
        info!(
            "dtb: at {dtb_addr:#x}, RAM {:#x}..{:#x} ({} MiB)",
            ram.start,
            ram.end,
            (ram.end - ram.start) >> 20
        );

        let size = fw.kernel_size()?;
        if size == 0 {
            let ok = demo::run();
            info!("demo: powering off");
            if !ok {
                error!("demo: some answers were wrong (see above)");
            }
            board::power_off();
        }

        let header = ImageHeader::parse(&fw.kernel_header()?)?;
        let dest = image::place(
            &header,
            u64::from(size),
            ram.clone(),
            &[board::DTB, board::RESIDENT, board::EL1_RAM],
            board::PAYLOAD_LOWEST,
        )?;
        info!(
            "payload: arm64 Image, {size} bytes, text_offset {:#x}, image_size {:#x}: placed at {:#x}..{:#x}",
            header.effective_text_offset(),
            header.effective_size(u64::from(size)),
            dest.start,
            dest.end
        );
        if opts.el == El::Two {
            return Err(BootError::El2NotAvailable);
        }
        options::check_length(&payload_cmdline, options::LINUX_COMMAND_LINE_SIZE)?;

        let initrd = match fw.initrd_size()? {
            0 => None,
            n => {
                let start = dest.end.next_multiple_of(4096);
                let r = start..start + u64::from(n);
                if r.end > ram.end {
                    return Err(BootError::InitrdDoesNotFit {
                        size: u64::from(n),
                        at: start,
                        ram_end: ram.end,
                    });
                }
                Some(r)
            }
        };

        // Edits first: if the DTB cannot take them, nothing has been loaded yet.
        let mut edits = Edits::new().bootargs(&payload_cmdline).memreserve(
            board::RESIDENT.start,
            board::RESIDENT.end - board::RESIDENT.start,
        );
        if let Some(r) = &initrd {
            edits = edits.initrd(r.start, r.end);
        }
        dtb.apply(&edits)?;
        info!(
            "dtb: bootargs \"{payload_cmdline}\"; stub RAM {:#x}..{:#x} reserved",
            board::RESIDENT.start,
            board::RESIDENT.end
        );
        let dtb_len = dtb.size() as u64;
        // The payload reads the DTB with its MMU off.
        use el1::cache::Cache;
        el1::cache::CpuCache.clean(dtb_addr..dtb_addr + dtb_len);

        fw.load_kernel(dest.start..dest.start + u64::from(size))?;
        if let Some(r) = initrd {
            fw.load_initrd(r.clone())?;
            info!(
                "initrd: {} bytes at {:#x}..{:#x}",
                r.end - r.start,
                r.start,
                r.end
            );
        }
        Ok(Handoff {
            entry: dest.start,
            dtb: dtb_addr,
        })
    }

    fn report_options(opts: &Options, raw: &str) {
        info!(
            "options: el={} copy={:?} verify={} log={} (command line \"{raw}\")",
            if opts.el == El::One { 1 } else { 2 },
            opts.copy,
            if opts.verify { "on" } else { "off" },
            opts.log
        );
    }

    fn ram_range(dtb: &Dtb<'_>) -> Result<Range<u64>, BootError> {
        dtb.memory()?
            .into_iter()
            .find(|r| r.contains(&board::RAM_START))
            .ok_or(BootError::NoRam(board::RAM_START))
    }

    /// The point of no return: MMU off, enter the payload at EL1.
    fn enter(h: Handoff) -> ! {
        info!(
            "payload: entering at EL1 at {:#x} with x0 = DTB {:#x}; the stub stays at EL2",
            h.entry, h.dtb
        );
        // SAFETY: the payload is loaded and checked, the DTB cleaned to PoC; the hand-off
        // cleans the EL1 stage's own RAM and never returns.
        unsafe {
            el1::hypstub_el1_handoff(h.entry, h.dtb, board::EL1_RAM.start, board::EL1_RAM.end)
        }
    }

    fn stop_with(e: &BootError) -> ! {
        error!("{e}");
        error!("hypstub: stopping: nothing was loaded; fix the above and boot again");
        board::power_off()
    }

    fn init_heap() {
        let start = core::ptr::addr_of!(__heap_start) as usize;
        // SAFETY: [__heap_start, __heap_end) is RAM the linker script reserves for the heap,
        // mapped as data, used by nothing else.
        unsafe { HEAP.lock().init(start, heap_size()) };
    }

    fn heap_size() -> usize {
        core::ptr::addr_of!(__heap_end) as usize - core::ptr::addr_of!(__heap_start) as usize
    }

    /// Any fault the EL1 stage takes.
    #[unsafe(no_mangle)]
    extern "C" fn hypstub_el1_exception(frame: &el2_stub::Frame, slot: u64) -> ! {
        el1::report_fault(board::console_raw, frame, slot, || board::power_off())
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        line(board::console_raw, format_args!("hypstub: panic: {info}"));
        line(board::console_raw, format_args!("hypstub: system stopped"));
        board::power_off()
    }
}
