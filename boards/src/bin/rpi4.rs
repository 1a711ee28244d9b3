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
    extern crate alloc;

    use alloc::string::String;
    use alloc::vec::Vec;
    use core::ops::Range;

    use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
    use buddy_system_allocator::LockedHeap;
    use el2_stub::console::line;
    use el2_stub::regs::{self, CpuFeatures};
    use hypstub_boards::boot::{pa_bits, report_options, yes};
    use hypstub_boards::console::ConsoleUart;
    use hypstub_boards::el1::cache::{Cache, CpuCache};
    use hypstub_boards::error::BootError;
    use hypstub_boards::handover::{self, Bytes, Entry, Handoff, Segment};
    use hypstub_boards::payload::{read_fit, Payload};
    use hypstub_boards::rpi4::{self as board, Rpi4, HYPSTUB_RPI4_SHARED as SHARED};
    use hypstub_boards::{console, demo, el1};
    use loader::dtfacts::{self, ConsoleKind};
    use loader::fdt::{Dtb, Edits, FDT_HEADER_SIZE, FDT_MAGIC};
    use loader::image::{self, ImageHeader};
    use loader::options::{self, El};
    use log::{info, LevelFilter};
    use reloc::plan::Layout;

    el2_stub::platform!(Rpi4);

    // The board's entry points (each board binary assembles its own).
    core::arch::global_asm!(
        concat!(include_str!("../ram_init.S"), include_str!("../rpi4/entry.S")),
        SCTLR_EL2_MMU_OFF = const el2_stub::regs::SCTLR_EL2_MMU_OFF,
        STACK_SIZE = const el2_stub::cpus::STACK_SIZE,
        MAX_CPUS = const el2_stub::cpus::MAX_CPUS,
        EARLY_START = const board::SHARED.start,
        EARLY_END = const board::EARLY_CODE.end,
        SHARED_PARKED = const board::SHARED_PARKED,
        SHARED_RELEASE = const board::SHARED_RELEASE,
        PL011_FALLBACK = const board::FALLBACK_UARTS[1].base(),
        MINI_UART_FALLBACK = const board::FALLBACK_UARTS[0].base(),
    );

    #[global_allocator]
    static HEAP: LockedHeap<32> = LockedHeap::empty();

    unsafe extern "C" {
        static __heap_start: u8;
        static __heap_end: u8;
        static __el1_stack_top: u8;
        static __image_end: u8;
    }

    /// Room for the payload DTB to grow by (bootargs, reservations, properties).
    const DTB_ROOM: usize = 64 << 10;
    /// RAM the EL1 stage adds to its heap once all RAM is mapped: the DTB rewrite, the FIT's
    /// bookkeeping and the tables of the full map live there.
    const WORK_AREA: u64 = 8 << 20;
    /// How long a secondary CPU has to reach its parking place.
    const PARK_TIMEOUT_MS: u64 = 1000;

    /// The boot CPU at EL2, MMU off, on its EL2 stack, RAM sections ready. The console is not
    /// known before the DTB is read at EL1: nothing is printed here unless the EL is wrong.
    #[unsafe(no_mangle)]
    extern "C" fn rpi4_el2_main(current_el: u64, dtb: u64) -> ! {
        if current_el != 2 {
            wrong_el(current_el);
        }
        regs::init_el2_for_el1(&CpuFeatures::read());
        el2_stub::handler::install_vectors();
        regs::drop_to_el1(
            board::rpi4_el1_entry as *const () as u64,
            core::ptr::addr_of!(__el1_stack_top) as u64,
            dtb,
        )
    }

    /// Started at the wrong EL: say so on both UARTs (the DTB has not been read), and stop.
    fn wrong_el(el: u64) -> ! {
        let hint = match el {
            3 => "kernel8.img runs after an armstub: the Pi firmware's own, or hypstub's armstub8-hypstub.bin (armstub= in config.txt); it cannot start at EL3 itself",
            _ => "the Pi firmware's armstub enters kernel8.img at EL2; something dropped to EL1 before hypstub",
        };
        line(
            board::console_raw,
            format_args!("hypstub: started at EL{el}, but the stub needs EL2: {hint}"),
        );
        line(board::console_raw, format_args!("hypstub: stopping"));
        loop {
            aarch64_cpu::asm::wfe();
        }
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
        init_heap(core::ptr::addr_of!(__heap_start) as usize, heap_size());
        let uart = match find_console(dtb) {
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
            heap_size() / 1024,
            match uart {
                ConsoleUart::Pl011(_) => "PL011",
                ConsoleUart::MiniUart(_) => "mini-UART",
            },
            uart.base()
        );
        match boot(dtb) {
            // The EL1 stage's RAM and its work area were written through the caches; the
            // firmware's DTB and the FIT were only read.
            Ok((h, work)) => handover::enter(&h, &board::EL1_RAM, &work, board::power_off),
            Err(e) => handover::stop_with(&e, board::power_off),
        }
    }

    /// The DTB the firmware passed, read in place.
    ///
    /// # Safety
    /// Only at EL1 with the early tables on.
    unsafe fn firmware_dtb(dtb: u64) -> Result<&'static mut [u8], String> {
        if dtb == 0 || !dtb.is_multiple_of(8) {
            return Err(alloc::format!(
                "x0 = {dtb:#x} is not a DTB address: boot with a device tree (the Pi firmware passes one; QEMU needs -dtb)"
            ));
        }
        if dtb + FDT_HEADER_SIZE as u64 > board::EARLY_RAM_END {
            return Err(alloc::format!(
                "the DTB at {dtb:#x} is above the first GiB, which is all this firmware maps before reading it"
            ));
        }
        // SAFETY: inside the early map's first GiB, which is RAM mapped as data.
        let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, FDT_HEADER_SIZE) };
        let word = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        if word(0) != FDT_MAGIC {
            return Err(alloc::format!(
                "x0 = {dtb:#x} holds {:#010x}, not the FDT magic {FDT_MAGIC:#010x}: boot with a device tree (QEMU: -dtb)",
                word(0)
            ));
        }
        let size = u64::from(word(4));
        if dtb + size > board::EARLY_RAM_END {
            return Err(alloc::format!(
                "the DTB at {dtb:#x} ({size} bytes) runs past the first GiB"
            ));
        }
        // SAFETY: as above; the firmware's DTB is read only through this slice.
        Ok(unsafe { core::slice::from_raw_parts_mut(dtb as *mut u8, size as usize) })
    }

    /// The console the DTB names, mapped by the early tables.
    fn find_console(dtb: u64) -> Result<ConsoleUart, String> {
        // SAFETY: at EL1 with the early tables on.
        let blob = unsafe { firmware_dtb(dtb) }?;
        let dtb = Dtb::new(blob).map_err(|e| alloc::format!("DTB: {e}"))?;
        let c = dtfacts::console(&dtb.fdt()).map_err(|e| alloc::format!("DTB: {e}"))?;
        if !board::DEVICES.contains(&c.base) {
            return Err(alloc::format!(
                "the console {} at {:#x} is outside the peripherals at {:#x}..{:#x} (low-peripheral mode) that this firmware maps",
                c.path, c.base, board::DEVICES.start, board::DEVICES.end
            ));
        }
        Ok(match c.kind {
            ConsoleKind::Pl011 => ConsoleUart::Pl011(c.base as usize),
            ConsoleKind::MiniUart => ConsoleUart::MiniUart(c.base as usize),
        })
    }

    /// Everything before the point of no return.
    fn boot(dtb_addr: u64) -> Result<(Handoff, Range<u64>), BootError> {
        let freq = CNTFRQ_EL0.get();
        if freq == 0 {
            return Err(BootError::Board(
                "CNTFRQ_EL0 is 0: the armstub did not program the counter frequency, and Linux cannot run without it".into(),
            ));
        }
        info!("timer: CNTFRQ_EL0 = {freq} Hz");
        // SAFETY: at EL1 with the early tables on; checked by find_console already.
        let blob = unsafe { firmware_dtb(dtb_addr) }.map_err(BootError::Board)?;
        let blob_range = dtb_addr..dtb_addr + blob.len() as u64;
        let fw_dtb = Dtb::new(blob)?;
        let cmdline = String::from(fw_dtb.bootargs()?.unwrap_or(""));
        let (opts, payload_cmdline) = options::parse(&cmdline)?;
        log::set_max_level(opts.log);
        report_options(&opts, &cmdline);
        let fdt = fw_dtb.fdt();
        let ram = dtfacts::memory_banks(&fdt)?;
        let reserved = dtfacts::reserved(&fdt)?;
        let cpus = dtfacts::spin_table(&fdt)?;
        let fit_range = fw_dtb.initrd()?;
        info!(
            "dtb: at {dtb_addr:#x}, {} bytes; RAM {}; {} CPUs; reserved {}",
            blob_range.end - blob_range.start,
            ranges(&ram),
            cpus.len(),
            ranges(&reserved)
        );
        // hypstub's RAM and image were in use before the DTB could be read: memory the DTB
        // reserves there (TF-A's BL31 as an armstub, say) has been overwritten already.
        let image_end = (core::ptr::addr_of!(__image_end) as u64).next_multiple_of(4096);
        let own = board::SHARED.start..image_end;
        if let Some(r) = reserved
            .iter()
            .chain(core::iter::once(&blob_range))
            .find(|r| r.start < own.end && own.start < r.end)
        {
            return Err(BootError::Board(alloc::format!(
                "the DTB reserves or puts {:#x}..{:#x}, inside hypstub's own RAM and image {:#x}..{:#x}: an armstub that keeps code there (TF-A's BL31) cannot be used with hypstub",
                r.start, r.end, own.start, own.end
            )));
        }
        let bank0 = ram
            .iter()
            .find(|r| r.contains(&board::IMAGE_BASE))
            .cloned()
            .ok_or(BootError::NoRam(board::IMAGE_BASE))?;

        let code = board::IMAGE_BASE..image_end;
        handover::map_all_ram(
            &ram,
            core::slice::from_ref(&board::RESIDENT),
            &code,
            &board::DEVICES,
        )?;

        // A bigger heap, in free RAM away from everything the firmware was given.
        let mut avoid = alloc::vec![0..board::EARLY_CODE.end, blob_range.clone()];
        avoid.extend(reserved.iter().cloned());
        avoid.extend(fit_range.iter().cloned());
        let work = hypstub_boards::boot::free_area(&bank0, &avoid, WORK_AREA, 2 << 20).ok_or(
            BootError::Board(alloc::format!(
                "no free {} MiB in RAM {:#x}..{:#x} for the firmware's work area",
                WORK_AREA >> 20,
                bank0.start,
                bank0.end
            )),
        )?;
        // SAFETY: free RAM (checked above), mapped as data by the full map, used by nothing
        // else; it stays busy for the planner.
        unsafe {
            HEAP.lock()
                .add_to_heap(work.start as usize, work.end as usize)
        };
        info!(
            "el1: work area {:#x}..{:#x} added to the heap",
            work.start, work.end
        );

        // The payload.
        if let Some(r) = &fit_range {
            if r.start >= r.end || !ram.iter().any(|b| b.start <= r.start && r.end <= b.end) {
                return Err(BootError::Board(alloc::format!(
                    "DTB: /chosen linux,initrd-start/-end {:#x}..{:#x} is not a range inside RAM",
                    r.start,
                    r.end
                )));
            }
        }
        let demo_bytes;
        let payload = match &fit_range {
            // SAFETY: the initrd range from /chosen, inside RAM (mapped as data by the full
            // map), which nothing writes before the payload is staged.
            Some(r) => unsafe { read_fit(r) }?,
            None => {
                info!("payload: no initrd in /chosen: running the built-in demo");
                if !demo::run(false) {
                    return Err(BootError::DemoFailed);
                }
                demo_bytes = demo::payload_for(current_console(), Some(board::PM));
                Payload {
                    kernel: &demo_bytes,
                    ramdisk: None,
                    fdt: None,
                    source: None,
                }
            }
        };
        let size = payload.kernel.len() as u64;
        let header = ImageHeader::parse(
            payload
                .kernel
                .get(..image::HEADER_SIZE)
                .unwrap_or(payload.kernel),
        )?;
        let el = if opts.el == El::One { 1 } else { 2 };

        // What no destination and no staging page may touch.
        let mut protected: Vec<(Range<u64>, &'static str)> =
            alloc::vec![(board::SPIN_PAGE, "the armstub and its spin table")];
        // Wherever the DTB puts the release words, the CPUs waiting on them read them until
        // the payload releases them: their pages are never written by the relocation.
        let release_pages: Vec<Range<u64>> = cpus
            .iter()
            .filter_map(|(_, r)| *r)
            .map(|a| a & !0xfff..(a & !0xfff) + 0x1000)
            .collect();
        protected.extend(
            release_pages
                .iter()
                .map(|r| (r.clone(), "a spin-table release word")),
        );
        protected.extend(
            reserved
                .iter()
                .map(|r| (r.clone(), "reserved memory in the DTB")),
        );
        if el == 1 {
            protected.push((
                board::SHARED.start..board::RESIDENT.end,
                "the stub's resident RAM",
            ));
            protected.push((code.clone(), "the stub's code"));
        }
        let avoid: Vec<Range<u64>> = protected.iter().map(|(r, _)| r.clone()).collect();
        let image = image::place(&header, size, bank0.clone(), &avoid, 0)?;
        info!(
            "payload: arm64 Image, {size} bytes, text_offset {:#x}, image_size {:#x}: destination {:#x}..{:#x}",
            header.effective_text_offset(),
            header.effective_size(size),
            image.start,
            image.end
        );
        options::check_length(&payload_cmdline, options::LINUX_COMMAND_LINE_SIZE)?;
        let initrd = payload.ramdisk.map(|r| {
            let start = image.end.next_multiple_of(4096);
            start..start + r.len() as u64
        });

        // Secondary CPUs: at EL2 the payload releases them from the firmware's spin table
        // itself; at EL1 they must have the stub first, so hypstub takes them over now.
        let release_paths: Vec<(String, u64)> = if el == 1 {
            take_over_secondaries(&cpus)?
        } else {
            Vec::new()
        };

        // The payload's DTB: the FIT's if it has one, else the firmware's, in the heap with
        // room to grow.
        let base_dtb = match payload.fdt {
            Some(f) => {
                info!("dtb: using the FIT's device tree ({} bytes)", f.len());
                f
            }
            None => fw_dtb.as_bytes(),
        };
        let mut dtb_buf = alloc::vec![0u8; base_dtb.len() + DTB_ROOM];
        dtb_buf[..base_dtb.len()].copy_from_slice(base_dtb);
        let mut dtb = Dtb::new(&mut dtb_buf)?;
        let mut edits = Edits::new().bootargs(&payload_cmdline);
        if payload.fdt.is_some() {
            // A DTB from the FIT does not know this board's RAM; the firmware's does.
            edits = edits.memory(&ram);
        }
        if let Some(r) = &initrd {
            edits = edits.initrd(r.start, r.end);
        }
        // What the payload's DTB must reserve: the spin-table release words (booting.rst)
        // and page 0, and -- when the DTB comes from the FIT -- everything the firmware's DTB
        // reserved. Whatever the DTB being edited reserves already is not added again
        // (Debian's Pi 4 DTB has page 0).
        let already = dtfacts::reserved(&dtb.fdt())?;
        let mut to_reserve = alloc::vec![board::SPIN_PAGE];
        to_reserve.extend(release_pages.iter().cloned());
        if payload.fdt.is_some() {
            to_reserve.extend(reserved.iter().cloned());
        }
        to_reserve.sort_by_key(|r| r.start);
        to_reserve.dedup();
        for r in to_reserve {
            if !already.iter().any(|x| x.start <= r.start && r.end <= x.end) {
                edits = edits.memreserve(r.start, r.end - r.start);
            }
        }
        if el == 1 {
            // The stub's RAM with no-map: the payload never maps it, so never holds a cached
            // copy of what the stub writes there with its MMU off. The shared page stays
            // mapped (the payload writes the release words there, and cleans them), and so
            // does the code (read only, never changed).
            edits = edits
                .memreserve(board::SHARED.start, board::SHARED.end - board::SHARED.start)
                .reserve_no_map(
                    "hypstub",
                    board::RESIDENT.start,
                    board::RESIDENT.end - board::RESIDENT.start,
                )
                .memreserve(code.start, code.end - code.start);
            for (path, addr) in &release_paths {
                edits = edits.property_u64(path, "cpu-release-addr", *addr);
            }
        }
        dtb.apply(&edits)?;
        let dtb_len = dtb.size() as u64;
        let dtb_dest = initrd
            .as_ref()
            .map_or(image.end, |r| r.end)
            .next_multiple_of(4096);
        info!(
            "dtb: bootargs \"{payload_cmdline}\"{}; moves to {dtb_dest:#x}",
            if el == 1 {
                "; the stub's RAM and code reserved, CPUs released from the stub's mailboxes"
            } else {
                ""
            }
        );

        let uart = current_console();
        let mut busy = alloc::vec![
            board::SHARED.start..board::RESIDENT.end,
            board::EL1_RAM,
            code.clone(),
            work.clone(),
            blob_range.clone(),
            image.clone(),
        ];
        busy.extend(payload.source.iter().cloned());
        let layout = Layout {
            ram: ram.clone(),
            protected,
            busy,
            console: Some(uart.base() as u64),
            console_mini_uart: matches!(uart, ConsoleUart::MiniUart(_)),
            pa_bits: pa_bits(),
        };
        let mut segments = alloc::vec![Segment {
            name: "payload",
            dest: image.start..image.start + size,
            bytes: Bytes::Copy(payload.kernel),
        }];
        if let (Some(r), Some(bytes)) = (&initrd, payload.ramdisk) {
            segments.push(Segment {
                name: "initrd",
                dest: r.clone(),
                bytes: Bytes::Copy(bytes),
            });
        }
        segments.push(Segment {
            name: "dtb",
            dest: dtb_dest..dtb_dest + dtb_len,
            bytes: Bytes::Copy(dtb.as_bytes()),
        });
        let handoff = handover::relocate(
            layout,
            &segments,
            &Entry {
                pc: image.start,
                regs: [dtb_dest, 0, 0, 0],
                el,
                copy: opts.copy,
                verify: opts.verify,
                // No PSCI: the engine parks after reporting a failure.
                psci_stop: false,
            },
            &mut |_, _| Ok(()),
            None,
        )?;
        Ok((handoff, work))
    }

    /// Releases every secondary CPU from the firmware's spin table into the stub
    /// (`rpi4_secondary_entry`), waits until each is parked at EL1 on the stub's mailboxes,
    /// and returns the new `cpu-release-addr` of each CPU node.
    fn take_over_secondaries(cpus: &[(u64, Option<u64>)]) -> Result<Vec<(String, u64)>, BootError> {
        let entry = board::rpi4_secondary_entry as *const () as u64;
        let boot_mpidr = {
            use aarch64_cpu::registers::MPIDR_EL1;
            MPIDR_EL1.get() & 0xff_ffff
        };
        let mut out = Vec::new();
        let mut waiting = Vec::new();
        for (i, (mpidr, release)) in cpus.iter().enumerate() {
            let slot = (*mpidr & 0xff) as usize;
            let Some(release) = release else {
                return Err(BootError::Board(alloc::format!(
                    "CPU {i} (MPIDR {mpidr:#x}) is not started by a spin table; with hypstub.el=1 this firmware needs spin-table CPUs"
                )));
            };
            if slot >= el2_stub::cpus::MAX_CPUS || *mpidr & !0xff != 0 {
                return Err(BootError::Board(alloc::format!(
                    "CPU {i} has MPIDR {mpidr:#x}; the stub has slots for Aff0 < {}",
                    el2_stub::cpus::MAX_CPUS
                )));
            }
            out.push((
                alloc::format!("/cpus/{}", cpu_node_name(*mpidr)),
                SHARED.release_addr(slot),
            ));
            if *mpidr == boot_mpidr {
                continue;
            }
            // SAFETY: the release word named by the DTB, in RAM mapped as data; only the
            // parked CPU reads it (MMU off), so clean it to PoC.
            unsafe { (*release as *mut u64).write_volatile(entry) };
            CpuCache.clean(*release..*release + 8);
            waiting.push((i, slot));
        }
        aarch64_cpu::asm::sev();
        let freq = CNTFRQ_EL0.get().max(1);
        let deadline = CNTPCT_EL0.get() + freq * PARK_TIMEOUT_MS / 1000;
        for (i, slot) in &waiting {
            let flag = SHARED.parked_addr(*slot);
            loop {
                // The parked CPU writes with its MMU off: drop any cached copy first.
                CpuCache.clean_invalidate(flag..flag + 8);
                // SAFETY: the shared page, mapped as data.
                if unsafe { (flag as *const u64).read_volatile() } == 1 {
                    break;
                }
                if CNTPCT_EL0.get() > deadline {
                    return Err(BootError::Board(alloc::format!(
                        "CPU {i} did not reach the stub within {PARK_TIMEOUT_MS} ms of its release through the spin table"
                    )));
                }
                core::hint::spin_loop();
            }
        }
        info!(
            "cpus: {} secondary CPUs have the stub and are parked at EL1; their cpu-release-addr now points into the stub's page at {:#x}",
            waiting.len(),
            board::SHARED.start
        );
        Ok(out)
    }

    /// The DTB's name for the CPU whose `reg` is `mpidr`: `cpu@<reg>`, as the Pi's DTB
    /// writes it.
    fn cpu_node_name(mpidr: u64) -> String {
        alloc::format!("cpu@{mpidr:x}")
    }

    fn current_console() -> ConsoleUart {
        SHARED.console().unwrap_or(board::FALLBACK_UARTS[0])
    }

    fn ranges(rs: &[Range<u64>]) -> String {
        if rs.is_empty() {
            return "none".into();
        }
        rs.iter()
            .map(|r| alloc::format!("{:#x}..{:#x}", r.start, r.end))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn init_heap(start: usize, size: usize) {
        // SAFETY: [start, start + size) is RAM the linker script reserves for the heap,
        // mapped as data, used by nothing else.
        unsafe { HEAP.lock().init(start, size) };
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
