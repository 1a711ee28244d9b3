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
//!    none, the built-in demo (`crate::demo`);
//! 4. the arm64 Image header checked and the image placed (`loader::image`), the initrd
//!    after it, both clear of everything protected: the board's reservations and every
//!    reservation of a FIT's DTB (`/memreserve/`, `/reserved-memory`);
//! 5. with `hypstub.el=1`, [`Board::take_over_cpus`];
//! 6. the payload's DTB ([`Board::dtb_buffer`]: the board's, or a FIT's) edited: bootargs,
//!    initrd, RAM for a FIT's DTB, reservations, the stub's RAM with `hypstub.el=1`, and
//!    [`Board::edit_dtb`]; then placed after the initrd, clear of the same ranges (an
//!    initrd or DTB with no room is named with its size and the RAM);
//!
//! Steps 1 to 6 are [`prepare`], plain Rust over the hooks, tested on the host with a fake
//! board; `boot` (aarch64) adds:
//!
//! 7. staging, planning and cleaning to PoC (`handover::relocate`), with [`Board::load`]
//!    for parts a device writes itself (fw_cfg DMA);
//! 8. `run`: HVC_SOFT_RESTART (`handover::enter`), or the error and [`Board::stop`].

/// The types of the [`Board`] hooks' signatures that come from `loader`, so a board can be
/// written against this module alone.
pub use loader::dt::Edits;
pub use loader::image::ImageHeader;
pub use loader::options::El;

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use loader::dt::Dtb;
use loader::image;
use loader::options;
use log::info;
use reloc::plan::Layout;

use crate::boot::report_options;
use crate::error::BootError;
#[cfg(target_arch = "aarch64")]
use crate::handover::{self, Handoff};
use crate::handover::{Bytes, PayloadEntry, Segment};
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

    /// Reads RAM, maps all of it (`handover::map_all_ram`) and says what the
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
    /// with its own cache maintenance; when the part is loaded in place (`hypstub.inplace`),
    /// `runs` is its destination, in whole pages, clear of everything the firmware uses.
    /// Either way the EL1 stage has not written `runs` since its caches went on (free RAM:
    /// `handover::relocate` loads right after staging, before it copies a byte or the
    /// planner writes a page), so none of their lines is dirty: a DMA needs no clean before
    /// it, only the invalidate after.
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

/// Boots: `boot`, then the point of no return, or the error and [`Board::stop`].
#[cfg(target_arch = "aarch64")]
pub fn run<B: Board>(board: &mut B) -> ! {
    match boot(board) {
        Ok((h, written)) => handover::enter(&h, &written, B::stop),
        Err(e) => handover::stop_with(&e, B::stop),
    }
}

/// Everything before the point of no return: [`prepare`], then staging, planning and
/// cleaning; the handoff for the engine and the RAM to clean just before the HVC.
///
/// # Errors
/// The first step that fails, with its message; nothing the payload needs is overwritten.
#[cfg(target_arch = "aarch64")]
pub fn boot<B: Board>(board: &mut B) -> Result<(Handoff, Written), BootError> {
    let plan = prepare(
        board,
        || crate::demo::run(B::HAS_PSCI),
        crate::boot::pa_bits(),
    )?;
    let mut load = |i: usize, runs: &[Range<u64>]| {
        board.load(if i == 0 { Part::Kernel } else { Part::Initrd }, runs)
    };
    #[cfg(feature = "test-corrupt-staging")]
    let tamper: Option<&handover::Tamper> = Some(&corrupt_first_staged_page);
    #[cfg(not(feature = "test-corrupt-staging"))]
    let tamper = None;
    let handoff = handover::relocate(plan.layout, &plan.segments, &plan.entry, &mut load, tamper)?;
    Ok((handoff, plan.written))
}

/// What [`prepare`] decided: everything the relocation needs, nothing written yet but the
/// payload's DTB.
pub struct Prepared {
    /// The planner's view of memory.
    pub layout: Layout,
    /// The kernel, the initrd if any, and the DTB: their destinations and bytes.
    pub segments: Vec<Segment<'static>>,
    /// How the engine enters the payload.
    pub entry: PayloadEntry,
    /// The RAM to clean just before the HVC.
    pub written: Written,
}

/// The boot flow up to the plan (steps 1 to 6): options, memory, the payload (or
/// `run_demo`, which says whether the demo passed, when there is none), placement, the
/// secondary CPUs, the edited DTB. Plain Rust over the board's hooks: tested on the host.
///
/// # Errors
/// The first step that fails, with its message; nothing has been written but the DTB.
pub fn prepare<B: Board>(
    board: &mut B,
    run_demo: impl FnOnce() -> bool,
    pa_bits: u32,
) -> Result<Prepared, BootError> {
    let cmdline = board.command_line()?;
    let (opts, payload_cmdline) = options::parse(&cmdline)?;
    log::set_max_level(opts.log);
    report_options(&opts, &cmdline);
    let memory = board.memory()?;

    let payload = match board.payload(&memory)? {
        Some(p) => p,
        None => {
            if !run_demo() {
                return Err(BootError::DemoFailed);
            }
            let bytes: &'static [u8] = match board.demo_payload() {
                Cow::Borrowed(b) => b,
                // It lives until the HVC: the engine copies it to its destination.
                Cow::Owned(v) => v.leak(),
            };
            Payload::in_memory(bytes)
        }
    };

    let size = payload.kernel.len();
    let header = ImageHeader::parse(&payload.header)?;
    if header.reserved_flags() != 0 {
        log::warn!(
            "payload: the Image header sets flag bits {:#x}, which booting.rst reserves (bits 4-63); booting it as the known bits say",
            header.reserved_flags()
        );
    }
    let el = opts.el;
    let mut protected = memory.protected.clone();
    if el == El::One {
        protected.extend(memory.stub.iter().cloned());
    }
    // Everything the DTB passed on reserves is never a destination: the board's own DTB's
    // reservations are in `memory.protected`; a FIT's DTB is read here, its `/memreserve/`
    // entries and `/reserved-memory` nodes (`no-map` or not) alike.
    if let Some(f) = payload.fdt {
        let mut copy = f.to_vec();
        for r in Dtb::new(&mut copy)?.reserved()? {
            protected.push((r, "memory the FIT's DTB reserves"));
        }
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
    let bank = memory.payload_bank.clone();
    // The initrd on the first free page after the image, clear of everything protected.
    let initrd = match &payload.initrd {
        None => None,
        Some(src) => Some(
            image::place_after(image.end, src.len(), 4096, bank.clone(), &avoid).ok_or(
                BootError::InitrdDoesNotFit {
                    what: match src {
                        Source::Device(_) => "the -initrd file",
                        Source::Memory(_) => "the FIT's ramdisk",
                    },
                    size: src.len(),
                    after: image.end,
                    ram: bank.clone(),
                },
            )?,
        ),
    };

    if el == El::One {
        board.take_over_cpus(&memory)?;
    }

    if let Some(f) = payload.fdt {
        info!("dtb: using the FIT's device tree ({} bytes)", f.len());
    }
    let dtb_buf: &'static mut [u8] = board.dtb_buffer(payload.fdt)?;
    let mut dtb = Dtb::new(&mut *dtb_buf)?;
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
    // Edited in place: its first `dtb_len` bytes are the payload's DTB, read-only from here.
    let dtb_bytes: &'static [u8] = dtb_buf;
    if let Some(r) = &initrd {
        info!(
            "initrd: {} bytes: destination {:#x}..{:#x}",
            r.end - r.start,
            r.start,
            r.end
        );
    }
    let after = initrd.as_ref().map_or(image.end, |r| r.end);
    let dtb_dest = image::place_after(after, dtb_len, 4096, bank.clone(), &avoid)
        .ok_or(BootError::DtbDoesNotFit {
            size: dtb_len,
            after,
            ram: bank,
        })?
        .start;
    info!(
        "dtb: bootargs \"{payload_cmdline}\"{}; moves to {dtb_dest:#x}",
        if el == El::One {
            "; the stub's RAM reserved"
        } else {
            ""
        }
    );

    // Staging pages in free RAM, none inside a destination, none where the firmware still
    // is; the image span past the image's bytes is busy too (its .bss is the payload's from
    // its first instruction; the bytes themselves are a destination), and so is where the
    // payload's bytes are now (a FIT). Not the destinations: one the firmware's RAM leaves
    // free may be loaded in place.
    let mut busy = memory.busy.clone();
    let bss = (image.start + size).div_ceil(4096) * 4096..image.end;
    if bss.start < bss.end {
        busy.push(bss);
    }
    busy.extend(payload.source.iter().cloned());
    let console = board.engine_console();
    let layout = Layout {
        ram: memory.ram.clone(),
        protected,
        busy,
        console: Some(console.base),
        console_mini_uart: console.mini_uart,
        pa_bits,
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
        bytes: Bytes::Copy(&dtb_bytes[..dtb_len as usize]),
    });
    Ok(Prepared {
        layout,
        segments,
        entry: PayloadEntry {
            pc: image.start,
            regs: [dtb_dest, 0, 0, 0],
            el,
            copy: opts.copy,
            verify: opts.verify,
            in_place: opts.inplace,
            psci_stop: B::HAS_PSCI,
        },
        written: memory.written,
    })
}

fn bytes<'a>(s: &Source<'a>) -> Bytes<'a> {
    match s {
        Source::Device(_) => Bytes::Device,
        Source::Memory(b) => Bytes::Copy(b),
    }
}

#[cfg(all(target_arch = "aarch64", feature = "test-corrupt-staging"))]
fn corrupt_first_staged_page(runs: &[Range<u64>], written: &mut Vec<Range<u64>>) {
    let Some(p) = runs.first().map(|r| r.start) else {
        // Nothing staged to corrupt (the engine reads the payload where it is): say so, so
        // that the test expecting a refusal fails with a reason.
        log::warn!("test hook: the payload has no staged page to corrupt");
        return;
    };
    // The first page the payload's bytes were written to: its staging, or its destination
    // when it was loaded in place (the digest was taken there; the engine must refuse).
    log::warn!("test hook: corrupting the staged byte at {p:#x} after planning");
    // SAFETY: the first staging (or in-place destination) page of the payload, mapped as
    // data.
    unsafe { (p as *mut u8).write_volatile(!(p as *const u8).read_volatile()) };
    written.push(p..p + 4096);
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Range<u64> = 0x4000_0000..0x6000_0000;
    const RESIDENT: Range<u64> = 0x4010_0000..0x4010_8000;
    /// QEMU virt's own DTB (`-machine dumpdtb`), as the firmware finds it.
    const QEMU_DTB: &[u8] = include_bytes!("../../loader/tests/data/qemu-virt-gicv3.dtb");

    /// An arm64 Image of `len` bytes whose header asks for `image_size` bytes at
    /// `text_offset` (booting.rst).
    fn image(len: usize, text_offset: u64, image_size: u64) -> &'static [u8] {
        let mut b = std::vec![0u8; len];
        b[8..16].copy_from_slice(&text_offset.to_le_bytes());
        b[16..24].copy_from_slice(&image_size.to_le_bytes());
        b[0x38..0x3c].copy_from_slice(b"ARM\x64");
        b.leak()
    }

    /// A board with everything in host memory: the payload is `kernel` (or none: the
    /// demo), the DTB QEMU's.
    struct Fake {
        cmdline: &'static str,
        kernel: Option<&'static [u8]>,
        initrd: Option<&'static [u8]>,
        fdt: Option<&'static [u8]>,
        firmware_reserved: Vec<Range<u64>>,
        dtb_taken: bool,
        cpus_taken: bool,
    }

    fn fake(cmdline: &'static str, kernel: Option<&'static [u8]>) -> Fake {
        Fake {
            cmdline,
            kernel,
            initrd: None,
            fdt: None,
            firmware_reserved: Vec::new(),
            dtb_taken: false,
            cpus_taken: false,
        }
    }

    impl Board for Fake {
        const HAS_PSCI: bool = true;
        fn command_line(&mut self) -> Result<String, BootError> {
            Ok(self.cmdline.into())
        }
        fn memory(&mut self) -> Result<Memory, BootError> {
            Ok(Memory {
                ram: std::vec![RAM],
                payload_bank: RAM,
                protected: std::vec![],
                stub: std::vec![(RESIDENT, "the stub's resident RAM")],
                resident: RESIDENT,
                busy: std::vec![0x4000_0000..0x4010_0000, RESIDENT],
                reserve: std::vec![0x4000_0000..0x4000_1000],
                firmware_reserved: self.firmware_reserved.clone(),
                written: Written::default(),
            })
        }
        fn payload(&mut self, _: &Memory) -> Result<Option<Payload<'static>>, BootError> {
            Ok(self.kernel.map(|k| Payload {
                initrd: self.initrd.map(Source::Memory),
                fdt: self.fdt,
                ..Payload::in_memory(k)
            }))
        }
        fn demo_payload(&self) -> Cow<'static, [u8]> {
            Cow::Borrowed(image(4096, 0, 4096))
        }
        fn take_over_cpus(&mut self, _: &Memory) -> Result<(), BootError> {
            self.cpus_taken = true;
            Ok(())
        }
        fn dtb_buffer(
            &mut self,
            replacement: Option<&[u8]>,
        ) -> Result<&'static mut [u8], BootError> {
            self.dtb_taken = true;
            let base = replacement.unwrap_or(QEMU_DTB);
            let mut buf = std::vec![0u8; base.len() + 0x1_0000];
            buf[..base.len()].copy_from_slice(base);
            Ok(buf.leak())
        }
        fn engine_console(&self) -> EngineConsole {
            EngineConsole {
                base: 0x0900_0000,
                mini_uart: false,
            }
        }
        fn stop() -> ! {
            unreachable!("the flow never stops on its own")
        }
    }

    fn dtb_of(plan: &Prepared) -> std::vec::Vec<u8> {
        match plan.segments.last().map(|s| (&s.bytes, s.name)) {
            Some((Bytes::Copy(b), "dtb")) => b.to_vec(),
            _ => panic!("the last segment is the DTB"),
        }
    }

    #[test]
    fn el2_places_image_initrd_and_dtb_in_order() {
        let mut b = fake(
            "console=ttyAMA0 hypstub.log=warn quiet",
            Some(image(0x3000, 0, 0x5000)),
        );
        b.initrd = Some(&[7u8; 0x1800]);
        let plan = prepare(&mut b, || panic!("no demo with a payload"), 44).unwrap();
        let dests: Vec<_> = plan
            .segments
            .iter()
            .map(|s| (s.name, s.dest.clone()))
            .collect();
        // The image at the base of RAM (text_offset 0), the rest of its image_size (its
        // .bss) busy, its bytes a destination (which may be loaded in place); the initrd
        // and the DTB each on the next page.
        assert_eq!(dests[0], ("payload", 0x4000_0000..0x4000_3000));
        assert_eq!(dests[1], ("initrd", 0x4000_5000..0x4000_6800));
        assert_eq!(dests[2].0, "dtb");
        assert_eq!(dests[2].1.start, 0x4000_7000);
        assert_eq!(plan.entry.pc, 0x4000_0000);
        assert_eq!(plan.entry.regs, [0x4000_7000, 0, 0, 0]);
        assert_eq!(plan.entry.el, El::Two);
        assert!(plan.entry.psci_stop);
        assert!(plan.layout.busy.contains(&(0x4000_3000..0x4000_5000)));
        assert!(!plan.layout.busy.contains(&(0x4000_0000..0x4000_5000)));
        assert!(
            plan.layout.protected.is_empty(),
            "at EL2 the stub's RAM is the payload's"
        );
        assert_eq!(plan.layout.pa_bits, 44);
        assert!(!b.cpus_taken);
        let mut dtb = dtb_of(&plan);
        let dtb = Dtb::new(&mut dtb).unwrap();
        assert_eq!(dtb.bootargs().unwrap(), Some("console=ttyAMA0 quiet"));
        assert_eq!(dtb.initrd().unwrap(), Some(0x4000_5000..0x4000_6800));
        let reserved = dtb.reserved().unwrap();
        assert!(
            reserved.contains(&(0x4000_0000..0x4000_1000)),
            "{reserved:x?}"
        );
        assert!(!reserved.contains(&RESIDENT), "{reserved:x?}");
    }

    #[test]
    fn el1_keeps_the_stub_protected_and_reserved() {
        let mut b = fake("hypstub.el=1", Some(image(0x1000, 0, 0)));
        let plan = prepare(&mut b, || panic!("no demo with a payload"), 48).unwrap();
        assert_eq!(plan.entry.el, El::One);
        assert!(
            b.cpus_taken,
            "secondary CPUs are the board's before the DTB is edited"
        );
        assert_eq!(
            plan.layout.protected,
            [(RESIDENT, "the stub's resident RAM")]
        );
        // image_size 0: an old kernel, text_offset 0x80000.
        assert_eq!(plan.segments[0].dest.start, 0x4008_0000);
        let mut dtb = dtb_of(&plan);
        let dtb = Dtb::new(&mut dtb).unwrap();
        assert_eq!(dtb.bootargs().unwrap(), Some(""));
        let reserved = dtb.reserved().unwrap();
        assert!(reserved.contains(&RESIDENT), "{reserved:x?}");
    }

    #[test]
    fn a_fits_dtb_gets_the_ram_and_the_firmwares_reservations() {
        let mut b = fake("", Some(image(0x1000, 0x1000, 0x1000)));
        b.fdt = Some(QEMU_DTB);
        b.firmware_reserved = std::vec![0x5000_0000..0x5000_2000];
        let plan = prepare(&mut b, || panic!("no demo with a payload"), 48).unwrap();
        let mut dtb = dtb_of(&plan);
        let dtb = Dtb::new(&mut dtb).unwrap();
        assert_eq!(dtb.memory().unwrap(), [RAM]);
        let reserved = dtb.reserved().unwrap();
        assert!(
            reserved.contains(&(0x5000_0000..0x5000_2000)),
            "{reserved:x?}"
        );
    }

    /// QEMU's DTB as a FIT might carry it, with its `/memory` replaced by `memory` (none
    /// if empty, as `<base-hi base-lo size-hi size-lo>` cells), a `/memreserve/` of 4 MiB
    /// at the base of RAM, and a `no-map` node of 2 MiB at 0x4060_0000.
    fn fit_dtb(memory: &[u32]) -> &'static [u8] {
        use dtoolkit::memreserve::MemoryReservation;
        use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
        let fdt = dtoolkit::fdt::Fdt::new(QEMU_DTB).unwrap();
        let mut t = DeviceTree::from_fdt(&fdt);
        t.root.remove_child("memory@40000000").unwrap();
        if !memory.is_empty() {
            let mut m = DeviceTreeNode::new_unchecked("memory@40000000");
            m.add_property(DeviceTreeProperty::new_unchecked("device_type", "memory"));
            m.add_property(DeviceTreeProperty::new_unchecked("reg", memory.to_vec()));
            t.root.add_child(m);
        }
        t.memory_reservations
            .push(MemoryReservation::new(0x4000_0000, 0x40_0000));
        let mut rm = DeviceTreeNode::new_unchecked("reserved-memory");
        rm.add_property(DeviceTreeProperty::new_unchecked("#address-cells", 2u32));
        rm.add_property(DeviceTreeProperty::new_unchecked("#size-cells", 2u32));
        rm.add_property(DeviceTreeProperty::new_unchecked("ranges", &[0u8; 0][..]));
        let mut blob = DeviceTreeNode::new_unchecked("blob@40600000");
        blob.add_property(DeviceTreeProperty::new_unchecked(
            "reg",
            std::vec![0u32, 0x4060_0000, 0, 0x20_0000],
        ));
        blob.add_property(DeviceTreeProperty::new_unchecked("no-map", &[0u8; 0][..]));
        rm.add_child(blob);
        t.root.add_child(rm);
        t.to_dtb().leak()
    }

    #[test]
    fn a_fits_dtb_reservations_are_avoided_by_the_kernel_initrd_and_dtb() {
        // The image ends just short of the no-map range; the initrd would run into it.
        for memory in [&[][..], &[0, 0x4000_0000, 4, 0][..]] {
            let mut b = fake("", Some(image(0x1000, 0, 0x1f_f000)));
            b.fdt = Some(fit_dtb(memory));
            b.initrd = Some(&[1u8; 0x2000]);
            let plan = prepare(&mut b, || panic!("no demo with a payload"), 48).unwrap();
            let dests: Vec<_> = plan.segments.iter().map(|s| s.dest.clone()).collect();
            // Past the /memreserve/ at the base of RAM, the initrd past the no-map range, the
            // DTB after it.
            assert_eq!(dests[0], 0x4040_0000..0x4040_1000, "{memory:x?}");
            assert_eq!(dests[1], 0x4080_0000..0x4080_2000);
            assert_eq!(dests[2].start, 0x4080_2000);
            for r in [0x4000_0000..0x4040_0000, 0x4060_0000..0x4080_0000] {
                assert!(
                    plan.layout.protected.iter().any(|(p, _)| *p == r),
                    "{:x?}",
                    plan.layout.protected
                );
                assert!(dests.iter().all(|d| d.end <= r.start || r.end <= d.start));
            }
            // The payload is told the machine's RAM, not the FIT's DTB's (none, or 16 GiB),
            // and keeps the reservations.
            let mut dtb = dtb_of(&plan);
            let dtb = Dtb::new(&mut dtb).unwrap();
            assert_eq!(dtb.memory().unwrap(), [RAM]);
            let reserved = dtb.reserved().unwrap();
            assert!(
                reserved.contains(&(0x4000_0000..0x4040_0000)),
                "{reserved:x?}"
            );
            assert!(
                reserved.contains(&(0x4060_0000..0x4080_0000)),
                "{reserved:x?}"
            );
        }
    }

    #[test]
    fn an_initrd_or_dtb_that_does_not_fit_is_named_with_its_size_and_the_ram() {
        let mut b = fake("", Some(image(0x1000, 0, 0x1000)));
        b.initrd = Some(std::vec![0u8; 0x2000_0000].leak());
        let e = prepare(&mut b, || true, 48).err().unwrap().to_string();
        assert_eq!(
            e,
            "initrd: the FIT's ramdisk is 536870912 bytes (512.0 MiB) and does not fit in RAM \
             0x40000000..0x60000000 (512 MiB) after the kernel, which ends at \
             0x40001000, clear of reserved memory: give the machine more RAM or use a smaller initrd"
        );
        assert!(!b.dtb_taken, "refused before the DTB is touched");
        // An initrd that just fits leaves no room for the DTB.
        let mut b = fake("", Some(image(0x1000, 0, 0x1000)));
        b.initrd = Some(std::vec![0u8; 0x2000_0000 - 0x1000].leak());
        let e = prepare(&mut b, || true, 48).err().unwrap().to_string();
        assert!(
            e.starts_with("dtb: the payload's DTB is ")
                && e.contains(" and does not fit in RAM 0x40000000..0x60000000 (512 MiB) after the kernel and initrd, which end at 0x60000000"),
            "{e}"
        );
    }

    #[test]
    fn without_a_payload_the_demo_runs_first() {
        let mut b = fake("", None);
        let mut ran = false;
        let plan = prepare(
            &mut b,
            || {
                ran = true;
                true
            },
            48,
        )
        .unwrap();
        assert!(ran);
        assert_eq!(plan.segments[0].dest, 0x4000_0000..0x4000_1000);
        let mut b = fake("", None);
        let e = prepare(&mut b, || false, 48).err().unwrap();
        assert!(matches!(e, BootError::DemoFailed), "{e}");
        assert!(!b.dtb_taken);
    }

    #[test]
    fn bad_input_stops_before_the_dtb_is_touched() {
        let mut not_an_image = image(0x1000, 0, 0).to_vec();
        not_an_image[0x38] = b'X';
        let mut b = fake("", Some(not_an_image.leak()));
        let e = prepare(&mut b, || true, 48).err().unwrap();
        assert!(e.to_string().contains("not an arm64 Image"), "{e}");
        assert!(!b.dtb_taken);

        let mut b = fake("", Some(image(0x1000, 0, 0x4000_0000)));
        let e = prepare(&mut b, || true, 48).err().unwrap();
        assert!(e.to_string().contains("does not fit in RAM"), "{e}");
        assert!(!b.dtb_taken);

        let mut b = fake("hypstub.bogus=1", Some(image(0x1000, 0, 0)));
        let e = prepare(&mut b, || true, 48).err().unwrap();
        assert!(e.to_string().contains("unknown option hypstub."), "{e}");
    }
}
