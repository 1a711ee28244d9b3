//! The EL1 boot flow every board shares, from the command line to the point of no return,
//! behind the [`Board`] trait: what boards really differ in (where the command line, RAM
//! and payload come from, what the firmware occupies, secondary CPUs, the console, how to
//! stop) is a hook; the rest is here once.
//!
//! The order, each step able to fail with a message before anything is overwritten:
//!
//! 1. options: [`Board::command_line`], `hypstub.*` parsed and removed (`loader::options`);
//! 2. memory: [`Board::memory`] reads RAM and maps all of it, and says what the firmware
//!    occupies ([`Memory`]);
//! 3. payload: [`Board::payload`] (fw_cfg, a FIT, the board's own source) or, when there is
//!    none, the built-in demo ([`crate::demo`]);
//! 4. the arm64 Image header checked and the image placed (`loader::image`), the initrd
//!    after it;
//! 5. with `hypstub.el=1`, [`Board::take_over_cpus`];
//! 6. the payload's DTB ([`Board::dtb_buffer`]: the board's, or a FIT's) edited: bootargs,
//!    initrd, RAM for a FIT's DTB, reservations, the stub's RAM with `hypstub.el=1`, and
//!    [`Board::edit_dtb`]; then placed after the initrd;
//! 7. staging, planning and cleaning to PoC ([`crate::handover::relocate`]), with
//!    [`Board::load`] for parts a device writes itself (fw_cfg DMA);
//! 8. [`run`]: HVC_SOFT_RESTART ([`crate::handover::enter`]), or the error and
//!    [`Board::stop`].

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use loader::dt::{Dtb, Edits};
use loader::image::{self, ImageHeader};
use loader::options::{self, El};
use log::info;
use reloc::plan::Layout;

use crate::boot::report_options;
use crate::error::BootError;
use crate::handover::{self, Bytes, Handoff, PayloadEntry, Segment};
use crate::payload::{Payload, Source};

/// What the firmware knows of memory once all RAM is mapped ([`Board::memory`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Every RAM bank; all of it mapped as data.
    pub ram: Vec<Range<u64>>,
    /// The bank the image, initrd and DTB go to (booting.rst: near the base of RAM).
    pub payload_bank: Range<u64>,
    /// Never a destination nor staging, whatever the EL (the spin table, memory the DTB
    /// reserves), each with the reason given in errors.
    pub protected: Vec<(Range<u64>, &'static str)>,
    /// Protected as well when the stub stays (`hypstub.el=1`): its resident RAM, and
    /// wherever else its code and data are.
    pub stub: Vec<(Range<u64>, &'static str)>,
    /// The stub's resident RAM, reserved with `no-map` in the payload's DTB with
    /// `hypstub.el=1`.
    pub resident: Range<u64>,
    /// In use by the firmware until the HVC: staging never goes there, destinations may (the
    /// EL1 stage's RAM, the DTB it reads, its work area, the stub's RAM).
    pub busy: Vec<Range<u64>>,
    /// What the payload's DTB must reserve (`/memreserve/`), unless it does already.
    pub reserve: Vec<Range<u64>>,
    /// What the firmware's own DTB reserved: kept when a FIT brings its own DTB.
    pub firmware_reserved: Vec<Range<u64>>,
    /// RAM the EL1 stage wrote through its caches that a destination may cover: cleaned
    /// and invalidated to PoC just before the HVC.
    pub written: Written,
}

/// The two ranges of RAM cleaned and invalidated just before HVC_SOFT_RESTART.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The EL1 stage's own RAM: stack, `.data`, `.bss`, first heap.
    pub stage: Range<u64>,
    /// Other RAM it wrote: the DTB area it edited in place, or its work area.
    pub work: Range<u64>,
}

/// Which part of the payload a [`Source::Device`] stands for, in [`Board::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The kernel.
    Kernel,
    /// The initrd.
    Initrd,
}

/// The console the relocation engine prints on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConsole {
    /// The UART's base address (a PL011, or the mini-UART's AUX_MU_IO).
    pub base: u64,
    /// It is a BCM2835 mini-UART, not a PL011.
    pub mini_uart: bool,
}

/// What a board provides to the boot flow. Every hook runs in the EL1 stage with its MMU
/// and caches on; each returns an error instead of stopping, so that the flow reports it
/// the same way on every board.
pub trait Board {
    /// The platform has PSCI: the demo checks it is forwarded, and the engine may power
    /// off through it after a failure.
    const HAS_PSCI: bool;

    /// The kernel command line the firmware was given, `hypstub.*` options included.
    ///
    /// # Errors
    /// It cannot be read.
    fn command_line(&mut self) -> Result<String, BootError>;

    /// Reads RAM, maps all of it ([`crate::handover::map_all_ram`]) and says what the
    /// firmware occupies.
    ///
    /// # Errors
    /// RAM cannot be read or mapped, or overlaps the firmware.
    fn memory(&mut self) -> Result<Memory, BootError>;

    /// The payload, checked as far as its source allows (a FIT's hashes), or `None` for
    /// the built-in demo.
    ///
    /// # Errors
    /// The payload is there but unusable.
    fn payload(&mut self, memory: &Memory) -> Result<Option<Payload<'static>>, BootError>;

    /// The built-in demo payload, configured for this board's console and power-off.
    fn demo_payload(&self) -> Cow<'static, [u8]>;

    /// The lowest base the image may be placed at (`loader::image::place`); by default the
    /// start of the payload bank.
    fn lowest_base(&self, header: &ImageHeader) -> u64 {
        let _ = header;
        0
    }

    /// With `hypstub.el=1`, before the DTB is edited: gives the secondary CPUs the stub (the
    /// Pi's spin table). PSCI boards need nothing: the stub redirects CPU_ON.
    ///
    /// # Errors
    /// A CPU cannot be taken over.
    fn take_over_cpus(&mut self, memory: &Memory) -> Result<(), BootError> {
        let _ = memory;
        Ok(())
    }

    /// The payload's DTB, in a buffer with room for the edits: the board's own, or
    /// `replacement` (a FIT's DTB) copied into it.
    ///
    /// # Errors
    /// There is no room for it.
    fn dtb_buffer(&mut self, replacement: Option<&[u8]>) -> Result<&'static mut [u8], BootError>;

    /// The board's own edits of the payload's DTB, added to the flow's.
    fn edit_dtb<'a>(&'a self, el: El, edits: Edits<'a>) -> Edits<'a> {
        let _ = el;
        edits
    }

    /// Fills the staging `runs` of a part whose [`Source::Device`] writes them itself,
    /// with its own cache maintenance.
    ///
    /// # Errors
    /// The device failed.
    fn load(&mut self, part: Part, runs: &[Range<u64>]) -> Result<(), BootError> {
        let _ = runs;
        Err(BootError::Board(alloc::format!(
            "the board has no device to load the {part:?} from"
        )))
    }

    /// The console the relocation engine prints on.
    fn engine_console(&self) -> EngineConsole;

    /// Stops the machine for good after an error: powers it off if it can.
    fn stop() -> !;
}

/// Boots: [`boot`], then the point of no return, or the error and [`Board::stop`].
pub fn run<B: Board>(board: &mut B) -> ! {
    match boot(board) {
        Ok((h, written)) => handover::enter(&h, &written, B::stop),
        Err(e) => handover::stop_with(&e, B::stop),
    }
}

/// Everything before the point of no return: the handoff for the engine and the RAM to
/// clean just before the HVC.
///
/// # Errors
/// The first step that fails, with its message; nothing the payload needs is overwritten.
pub fn boot<B: Board>(board: &mut B) -> Result<(Handoff, Written), BootError> {
    let cmdline = board.command_line()?;
    let (opts, payload_cmdline) = options::parse(&cmdline)?;
    log::set_max_level(opts.log);
    report_options(&opts, &cmdline);
    let memory = board.memory()?;

    let demo_bytes;
    let payload = match board.payload(&memory)? {
        Some(p) => p,
        None => {
            if !crate::demo::run(B::HAS_PSCI) {
                return Err(BootError::DemoFailed);
            }
            demo_bytes = board.demo_payload();
            Payload::in_memory(&demo_bytes)
        }
    };

    let size = payload.kernel.len();
    let header = ImageHeader::parse(&payload.header)?;
    let el = opts.el;
    let mut protected = memory.protected.clone();
    if el == El::One {
        protected.extend(memory.stub.iter().cloned());
    }
    let avoid: Vec<Range<u64>> = protected.iter().map(|(r, _)| r.clone()).collect();
    let image = image::place(
        &header,
        size,
        memory.payload_bank.clone(),
        &avoid,
        board.lowest_base(&header),
    )?;
    info!(
        "payload: arm64 Image, {size} bytes, text_offset {:#x}, image_size {:#x}: destination {:#x}..{:#x}",
        header.effective_text_offset(),
        header.effective_size(size),
        image.start,
        image.end
    );
    options::check_length(&payload_cmdline, options::LINUX_COMMAND_LINE_SIZE)?;
    let initrd = payload.initrd.as_ref().map(|src| {
        let start = image.end.next_multiple_of(4096);
        start..start + src.len()
    });

    if el == El::One {
        board.take_over_cpus(&memory)?;
    }

    if let Some(f) = payload.fdt {
        info!("dtb: using the FIT's device tree ({} bytes)", f.len());
    }
    let mut dtb = Dtb::new(board.dtb_buffer(payload.fdt)?)?;
    {
        // DTB edits before anything is loaded: if the DTB cannot take them, nothing is lost.
        let mut edits = Edits::new().bootargs(&payload_cmdline);
        if payload.fdt.is_some() {
            // A DTB from a FIT does not know this machine's RAM; the firmware does.
            edits = edits.memory(&memory.ram);
        }
        if let Some(r) = &initrd {
            edits = edits.initrd(r.start, r.end);
        }
        let mut to_reserve = memory.reserve.clone();
        if payload.fdt.is_some() {
            to_reserve.extend(memory.firmware_reserved.iter().cloned());
        }
        to_reserve.sort_by_key(|r| r.start);
        to_reserve.dedup();
        if !to_reserve.is_empty() {
            // What the DTB being edited reserves already is not added again.
            let already = dtb.reserved()?;
            for r in to_reserve {
                if !already.iter().any(|x| x.start <= r.start && r.end <= x.end) {
                    edits = edits.memreserve(r.start, r.end - r.start);
                }
            }
        }
        if el == El::One {
            // The stub stays: its RAM is reserved with no-map, so the payload never maps it
            // and never holds a cached copy of what the stub writes with its MMU off.
            edits = edits.reserve_no_map(
                "hypstub",
                memory.resident.start,
                memory.resident.end - memory.resident.start,
            );
        }
        let edits = board.edit_dtb(el, edits);
        dtb.apply(&edits)?;
    }
    // The DTB moves too, after the image and the initrd: where the firmware found it is
    // where a payload may want to be.
    let dtb_len = dtb.size() as u64;
    let dtb_dest = initrd
        .as_ref()
        .map_or(image.end, |r| r.end)
        .next_multiple_of(4096);
    info!(
        "dtb: bootargs \"{payload_cmdline}\"{}; moves to {dtb_dest:#x}",
        if el == El::One {
            "; the stub's RAM reserved"
        } else {
            ""
        }
    );

    // Staging pages in free RAM, none inside a destination, none where the firmware still
    // is; the whole image span is busy too (its .bss is the payload's from its first
    // instruction), and so is where the payload's bytes are now (a FIT).
    let mut busy = memory.busy.clone();
    busy.push(image.clone());
    busy.extend(payload.source.iter().cloned());
    let console = board.engine_console();
    let layout = Layout {
        ram: memory.ram.clone(),
        protected,
        busy,
        console: Some(console.base),
        console_mini_uart: console.mini_uart,
        pa_bits: crate::boot::pa_bits(),
    };
    let mut segments = alloc::vec![Segment {
        name: "payload",
        dest: image.start..image.start + size,
        bytes: bytes(&payload.kernel),
    }];
    if let (Some(r), Some(src)) = (&initrd, &payload.initrd) {
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
    let mut load = |i: usize, runs: &[Range<u64>]| {
        board.load(if i == 0 { Part::Kernel } else { Part::Initrd }, runs)
    };
    #[cfg(feature = "test-corrupt-staging")]
    let tamper: Option<&handover::Tamper> = Some(&corrupt_first_staged_page);
    #[cfg(not(feature = "test-corrupt-staging"))]
    let tamper = None;
    let handoff = handover::relocate(
        layout,
        &segments,
        &PayloadEntry {
            pc: image.start,
            regs: [dtb_dest, 0, 0, 0],
            el,
            copy: opts.copy,
            verify: opts.verify,
            psci_stop: B::HAS_PSCI,
        },
        &mut load,
        tamper,
    )?;
    Ok((handoff, memory.written))
}

fn bytes<'a>(s: &Source<'a>) -> Bytes<'a> {
    match s {
        Source::Device(_) => Bytes::Device,
        Source::Memory(b) => Bytes::Copy(b),
    }
}

#[cfg(feature = "test-corrupt-staging")]
fn corrupt_first_staged_page(runs: &[Range<u64>], written: &mut Vec<Range<u64>>) {
    let p = runs[0].start;
    log::warn!("test hook: corrupting the staged byte at {p:#x} after planning");
    // SAFETY: the first staging page of the payload, mapped as data.
    unsafe { (p as *mut u8).write_volatile(!(p as *const u8).read_volatile()) };
    written.push(p..p + 4096);
}
