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
    extern crate alloc;

    use core::ops::Range;

    use buddy_system_allocator::LockedHeap;
    use el2_stub::console::line;
    use el2_stub::regs::{self, CpuFeatures};
    use hypstub_boards::boot::{free_area, pa_bits, report_options, yes};
    use hypstub_boards::error::BootError;
    use hypstub_boards::handover::{self, Bytes, Entry, Handoff, Segment};
    use hypstub_boards::payload::{read_fit, Payload};
    use hypstub_boards::qemu_virt::fw_cfg::{self, FwCfg};
    use hypstub_boards::qemu_virt::{self as board, QemuVirt};
    use hypstub_boards::{console, demo, el1};
    use loader::fdt::{Dtb, Edits, FDT_MAGIC};
    use loader::image::{self, ImageHeader};
    use loader::options::{self, El};
    use log::{info, LevelFilter};
    use reloc::plan::Layout;

    el2_stub::platform!(QemuVirt);

    // The board's entry points (each board binary assembles its own, so that one image
    // never carries another board's `_start`).
    core::arch::global_asm!(
        concat!(include_str!("../ram_init.S"), include_str!("../qemu_virt/entry.S")),
        SCTLR_EL2_MMU_OFF = const el2_stub::regs::SCTLR_EL2_MMU_OFF,
        STACK_SIZE = const el2_stub::cpus::STACK_SIZE,
        RAM_START = const board::RAM_START,
        PAYLOAD_LOWEST = const board::PAYLOAD_LOWEST,
    );

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
            // The stub's RAM needs no maintenance (the EL1 stage never maps it); the DTB area
            // and the EL1 stage's RAM were written through the caches.
            Ok(h) => handover::enter(&h, &board::DTB, &board::EL1_RAM, board::power_off),
            Err(e) => handover::stop_with(&e, board::power_off),
        }
    }

    /// Where the bytes of the kernel or the initrd come from.
    enum Source {
        /// Read straight from fw_cfg into the staging pages: the user's `-kernel` (an arm64
        /// Image) or `-initrd`, of this many bytes.
        FwCfg(u32),
        /// Copied from memory: a part of the FIT given as `-kernel`, or the built-in demo
        /// payload in the image.
        Memory(&'static [u8]),
    }

    impl Source {
        fn len(&self) -> u64 {
            match self {
                Source::FwCfg(n) => u64::from(*n),
                Source::Memory(b) => b.len() as u64,
            }
        }
    }

    /// Everything before the point of no return: each step can fail with a message, and
    /// nothing the payload will need is overwritten until the engine runs.
    fn boot(dtb_addr: u64) -> Result<Handoff, BootError> {
        let mut fw = FwCfg::probe(fw_cfg::DmaDevice::new(
            fw_cfg::Mmio {
                base: board::FW_CFG,
            },
            el1::cache::CpuCache,
        ))?;
        let cmdline = fw.cmdline()?;
        let (opts, payload_cmdline) = options::parse(&cmdline)?;
        #[cfg(feature = "test-el1-fault")]
        if cmdline.split_whitespace().any(|w| w == "test.el1_fault") {
            log::warn!("test hook: reading the stub's RAM, which the EL1 stage does not map");
            // SAFETY: none needed for the hardware: the address is unmapped at EL1, so the
            // read faults and the EL1 vectors report it; it is a test of exactly that.
            let _ = unsafe { core::ptr::read_volatile(board::RESIDENT.start as *const u64) };
        }
        log::set_max_level(opts.log);
        report_options(&opts, &cmdline);

        // SAFETY: at EL1 with the early tables on, and the only use of the DTB area.
        let dtb_area = unsafe { board::dtb_area() };
        let ram = ram_range(&Dtb::new(&mut *dtb_area)?)?;
        info!(
            "dtb: at {dtb_addr:#x}, RAM {:#x}..{:#x} ({} MiB)",
            ram.start,
            ram.end,
            (ram.end - ram.start) >> 20
        );
        handover::map_all_ram(
            core::slice::from_ref(&ram),
            core::slice::from_ref(&board::RESIDENT),
            &board::FLASH,
            &board::DEVICES,
        )?;

        // The payload: the demo, a FIT, or an arm64 Image.
        let (kernel, header, fit) = match fw.kernel_size()? {
            0 => {
                if !demo::run(true) {
                    return Err(BootError::DemoFailed);
                }
                let bytes = demo::payload();
                (Source::Memory(bytes), header_of(bytes), None)
            }
            n => {
                let header = fw.kernel_header()?;
                if header[..4] == FDT_MAGIC.to_be_bytes() {
                    let fit = read_fit_from_fw_cfg(&mut fw, n, &ram)?;
                    (Source::Memory(fit.kernel), header_of(fit.kernel), Some(fit))
                } else {
                    (Source::FwCfg(n), header, None)
                }
            }
        };
        // The initrd: the FIT's, or `-initrd`; never both, as which one is meant cannot
        // be told.
        let initrd_source = match (fit.as_ref().and_then(|f| f.ramdisk), fw.initrd_size()?) {
            (Some(_), n @ 1..) => return Err(BootError::FitAndInitrd { initrd: n }),
            (Some(bytes), 0) => Some(Source::Memory(bytes)),
            (None, 0) => None,
            (None, n) => Some(Source::FwCfg(n)),
        };
        let size = kernel.len();
        let header = ImageHeader::parse(&header)?;
        let el = if opts.el == El::One { 1 } else { 2 };
        // Only a payload at EL1 keeps the stub; at EL2 the payload owns EL2 and the stub's
        // RAM is free once the engine runs.
        let protected: &[Range<u64>] = if el == 1 {
            core::slice::from_ref(&board::RESIDENT)
        } else {
            &[]
        };
        let image = image::place(
            &header,
            size,
            ram.clone(),
            protected,
            board::lowest_base(&header),
        )?;
        info!(
            "payload: arm64 Image, {size} bytes, text_offset {:#x}, image_size {:#x}: destination {:#x}..{:#x}",
            header.effective_text_offset(),
            header.effective_size(size),
            image.start,
            image.end
        );
        options::check_length(&payload_cmdline, options::LINUX_COMMAND_LINE_SIZE)?;
        let initrd = initrd_source.as_ref().map(|src| {
            let start = image.end.next_multiple_of(4096);
            start..start + src.len()
        });

        // The payload's DTB: QEMU's, or the FIT's copied over it (QEMU's has told the RAM
        // already), in the DTB area, whose 1 MiB is room for the edits.
        if let Some(f) = fit.as_ref().and_then(|f| f.fdt) {
            let room = dtb_area.len();
            dtb_area
                .get_mut(..f.len())
                .ok_or(BootError::FitFdtTooLarge {
                    size: f.len(),
                    room,
                })?
                .copy_from_slice(f);
            info!("dtb: using the FIT's device tree ({} bytes)", f.len());
        }
        let mut dtb = Dtb::new(dtb_area)?;

        // DTB edits first: if the DTB cannot take them, nothing has been loaded yet.
        let mut edits = Edits::new().bootargs(&payload_cmdline);
        if el == 1 {
            // The stub stays: its RAM is reserved with no-map (the payload never maps it, so
            // never holds a cached copy of what the stub writes with its MMU off), and the
            // flash it runs from must not be reprogrammed by a payload driver (QEMU describes
            // it as `cfi-flash`).
            edits = edits
                .reserve_no_map(
                    "hypstub",
                    board::RESIDENT.start,
                    board::RESIDENT.end - board::RESIDENT.start,
                )
                .disable(board::FLASH_NODE);
        }
        if let Some(r) = &initrd {
            edits = edits.initrd(r.start, r.end);
        }
        // The rewrite works on a copy of the tree in the heap (about ten times its content:
        // the structure and strings blocks, header words 0x24 and 0x20; QEMU's totalsize also
        // counts the free room it leaves).
        let word = |at: usize| {
            dtb.as_bytes()
                .get(at..at + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let content = word(0x20) + word(0x24);
        if content.saturating_mul(10) > heap_size() {
            return Err(BootError::DtbTooLarge {
                size: content,
                heap: heap_size(),
            });
        }
        dtb.apply(&edits)?;
        // The DTB moves too, after the image and the initrd: where QEMU left it is where a
        // payload may want to be (booting.rst: as close as possible to the base of RAM).
        let dtb_len = dtb.size() as u64;
        let dtb_dest = initrd
            .as_ref()
            .map_or(image.end, |r| r.end)
            .next_multiple_of(4096);
        info!(
            "dtb: bootargs \"{payload_cmdline}\"{}; moves to {dtb_dest:#x}",
            if el == 1 {
                "; the stub's RAM reserved"
            } else {
                ""
            }
        );

        // The plan: staging pages in free RAM, none inside a destination, none where the
        // EL1 stage or the DTB still are.
        let layout = Layout {
            ram: alloc::vec![ram.clone()],
            protected: protected
                .iter()
                .map(|r| (r.clone(), "the stub's resident RAM"))
                .collect(),
            // Destinations may cover these, staging may not: the DTB until it is staged, the
            // EL1 stage, the whole image span (its .bss too is the payload's from its first
            // instruction), and the stub's RAM, which the EL1 stage does not map and the stub
            // uses until the HVC even when the payload will not keep it. The FIT, where the
            // kernel, initrd and DTB are copied from, likewise.
            busy: [board::DTB, board::EL1_RAM, image.clone(), board::RESIDENT]
                .into_iter()
                .chain(fit.as_ref().and_then(|f| f.source.clone()))
                .collect(),
            console: Some(board::PL011 as u64),
            console_mini_uart: false,
            pa_bits: pa_bits(),
        };
        let bytes = |s: &Source| match s {
            Source::FwCfg(_) => Bytes::Device,
            Source::Memory(b) => Bytes::Copy(b),
        };
        let mut segments = alloc::vec![Segment {
            name: "payload",
            dest: image.start..image.start + size,
            bytes: bytes(&kernel),
        }];
        if let (Some(r), Some(src)) = (&initrd, &initrd_source) {
            segments.push(Segment {
                name: "initrd",
                dest: r.clone(),
                bytes: bytes(src),
            });
        }
        segments.push(Segment {
            name: "dtb",
            dest: dtb_dest..dtb_dest + dtb_len,
            bytes: Bytes::Copy(dtb.as_bytes()),
        });
        // Only the kernel (segment 0) and the initrd (1) can come from fw_cfg.
        let mut load = |i: usize, runs: &[Range<u64>]| -> Result<(), BootError> {
            if i == 0 {
                fw.load_kernel_runs(runs)?;
            } else {
                fw.load_initrd_runs(runs)?;
            }
            Ok(())
        };
        #[cfg(feature = "test-corrupt-staging")]
        let tamper: Option<&handover::Tamper> = Some(&corrupt_first_staged_page);
        #[cfg(not(feature = "test-corrupt-staging"))]
        let tamper = None;
        handover::relocate(
            layout,
            &segments,
            &Entry {
                pc: image.start,
                regs: [dtb_dest, 0, 0, 0],
                el,
                copy: opts.copy,
                verify: opts.verify,
                psci_stop: true,
            },
            &mut load,
            tamper,
        )
    }

    /// The `-kernel` item, which starts with the FDT magic, read whole into the highest free
    /// RAM (away from the firmware, the DTB and the low RAM where payloads go), then parsed
    /// and every hash of its default configuration checked. Its range stays busy: nothing is
    /// staged over it.
    fn read_fit_from_fw_cfg(
        fw: &mut FwCfg<fw_cfg::DmaDevice<fw_cfg::Mmio, el1::cache::CpuCache>>,
        size: u32,
        ram: &Range<u64>,
    ) -> Result<Payload<'static>, BootError> {
        let len = u64::from(size);
        let firmware = board::RAM_START..board::PAYLOAD_LOWEST;
        let area = free_area(
            ram,
            core::slice::from_ref(&firmware),
            len.next_multiple_of(4096),
            4096,
        )
        .ok_or(BootError::FitTooLarge {
            size: len,
            ram: ram.clone(),
        })?;
        let at = area.start..area.start + len;
        fw.load_kernel(at.clone())?;
        info!(
            "fw_cfg: -kernel is a FIT: {len} bytes read to {:#x}..{:#x}",
            at.start, at.end
        );
        // SAFETY: free RAM (above the firmware's, inside the RAM `map_all_ram` mapped as
        // data), written only by the DMA above; busy for the planner, so nothing writes it
        // before the payload is staged.
        unsafe { read_fit(&at) }
    }

    /// The first bytes of an image in memory, as fw_cfg would read them (zeros past its end).
    fn header_of(bytes: &[u8]) -> [u8; fw_cfg::HEADER_LEN] {
        let mut h = [0u8; fw_cfg::HEADER_LEN];
        let n = bytes.len().min(h.len());
        h[..n].copy_from_slice(&bytes[..n]);
        h
    }

    #[cfg(feature = "test-corrupt-staging")]
    fn corrupt_first_staged_page(runs: &[Range<u64>], written: &mut alloc::vec::Vec<Range<u64>>) {
        let p = runs[0].start;
        log::warn!("test hook: corrupting the staged byte at {p:#x} after planning");
        // SAFETY: the first staging page of the payload, mapped as data.
        unsafe { (p as *mut u8).write_volatile(!(p as *const u8).read_volatile()) };
        written.push(p..p + 4096);
    }

    fn ram_range(dtb: &Dtb<'_>) -> Result<Range<u64>, BootError> {
        dtb.memory()?
            .into_iter()
            .find(|r| r.contains(&board::RAM_START))
            .ok_or(BootError::NoRam(board::RAM_START))
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
