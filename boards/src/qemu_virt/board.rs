//! QEMU virt behind [`Board`]: the command line and payload from fw_cfg (`-append`,
//! `-kernel` as an arm64 Image or a FIT, `-initrd`), RAM from QEMU's DTB, which is also the
//! payload's DTB, edited in place in its 1 MiB area.

use alloc::borrow::Cow;
use alloc::string::String;
use core::ops::Range;

use loader::dt::{Dtb, Edits, FDT_MAGIC};
use loader::image::ImageHeader;
use loader::options::El;
use log::info;

use super::fw_cfg::{self, FwCfg};
use super::{dtb_area, DEVICES, DTB, EL1_RAM, FLASH, FLASH_NODE, PAYLOAD_LOWEST, PL011};
use super::{RAM_START, RESIDENT};
use crate::boot::free_area;
use crate::el1::cache::CpuCache;
use crate::error::BootError;
use crate::flow::{Board, EngineConsole, Memory, Part, Written};
use crate::payload::{read_fit, Payload, Source};

type Device = fw_cfg::DmaDevice<fw_cfg::Mmio, CpuCache>;

/// The board: fw_cfg, QEMU's DTB area, and the RAM it describes.
pub struct QemuVirtBoard {
    fw: FwCfg<Device>,
    dtb: Option<&'static mut [u8]>,
    heap: usize,
}

impl QemuVirtBoard {
    /// Finds fw_cfg and takes QEMU's DTB area; `heap` is the EL1 stage's heap size, which
    /// bounds the DTB it can edit.
    ///
    /// # Safety
    /// Once only, at EL1 with the early tables on (fw_cfg is mapped as Device memory, the
    /// DTB area as data, and nothing else uses either).
    ///
    /// # Errors
    /// No fw_cfg with DMA.
    pub unsafe fn new(heap: usize) -> Result<Self, BootError> {
        // SAFETY: fw_cfg's registers at QEMU virt's address, mapped as Device memory by the
        // early tables; this board is their only user (the caller's contract).
        let regs = unsafe { fw_cfg::Mmio::new(super::FW_CFG) };
        let fw = FwCfg::probe(fw_cfg::DmaDevice::new(regs, CpuCache))?;
        // SAFETY: per the caller's contract.
        let dtb = Some(unsafe { dtb_area() });
        Ok(Self { fw, dtb, heap })
    }
}

impl Board for QemuVirtBoard {
    const HAS_PSCI: bool = true;

    fn command_line(&mut self) -> Result<String, BootError> {
        let cmdline = self.fw.cmdline()?;
        #[cfg(feature = "test-el1-fault")]
        if cmdline.split_whitespace().any(|w| w == "test.el1_fault") {
            log::warn!("test hook: reading the stub's RAM, which the EL1 stage does not map");
            // SAFETY: none needed for the hardware: the address is unmapped at EL1, so the
            // read faults and the EL1 vectors report it; it is a test of exactly that.
            let _ = unsafe { core::ptr::read_volatile(RESIDENT.start as *const u64) };
        }
        Ok(cmdline)
    }

    fn memory(&mut self) -> Result<Memory, BootError> {
        let area = self.dtb.as_deref_mut().ok_or(BootError::DtbTaken)?;
        let dtb = Dtb::new(area)?;
        let ram = dtb
            .memory()?
            .into_iter()
            .find(|r| r.contains(&RAM_START))
            .ok_or(BootError::NoRam(RAM_START))?;
        // QEMU's own DTB reserves nothing; one given with -dtb may.
        let reserved = dtb.reserved()?;
        info!(
            "dtb: at {:#x}, RAM {:#x}..{:#x} ({} MiB)",
            DTB.start,
            ram.start,
            ram.end,
            (ram.end - ram.start) >> 20
        );
        crate::handover::map_all_ram(
            core::slice::from_ref(&ram),
            core::slice::from_ref(&RESIDENT),
            &FLASH,
            &DEVICES,
        )?;
        Ok(Memory {
            ram: alloc::vec![ram.clone()],
            payload_bank: ram,
            protected: reserved
                .iter()
                .map(|r| (r.clone(), "reserved memory in QEMU's DTB"))
                .collect(),
            stub: alloc::vec![(RESIDENT, "the stub's resident RAM")],
            resident: RESIDENT,
            // The stub's RAM too: the EL1 stage does not map it, and the stub uses it until
            // the HVC even when the payload will not keep it.
            busy: alloc::vec![DTB, EL1_RAM, RESIDENT],
            reserve: alloc::vec![],
            firmware_reserved: reserved,
            written: Written {
                stage: EL1_RAM,
                work: DTB,
            },
        })
    }

    /// PSCI starts the CPUs (the stub redirects CPU_ON): nothing to take over, but the
    /// CPUs the stub has no slot for are named now, not at the payload's first CPU_ON.
    fn take_over_cpus(&mut self, _memory: &Memory) -> Result<(), BootError> {
        use el2_stub::Platform as _;
        let area = self.dtb.as_deref_mut().ok_or(BootError::DtbTaken)?;
        // Only a warning: a DTB whose /cpus cannot be read is the payload's to judge.
        if let Ok(cpus) = Dtb::new(area)?.spin_table() {
            let without =
                crate::boot::cpus_without_slot(cpus.iter().map(|c| c.0), super::QemuVirt::cpu_slot);
            crate::boot::warn_cpus_without_slot(&without, cpus.len());
        }
        Ok(())
    }

    fn payload(&mut self, memory: &Memory) -> Result<Option<Payload<'static>>, BootError> {
        let Some(kernel) = self.fw.kernel_size()? else {
            return Ok(None);
        };
        let header = self.fw.kernel_header()?;
        let mut payload = if header[..4] == FDT_MAGIC.to_be_bytes() {
            read_fit_from_fw_cfg(&mut self.fw, kernel, &memory.payload_bank)?
        } else {
            Payload {
                kernel: Source::Device(u64::from(kernel)),
                header,
                initrd: None,
                fdt: None,
                source: None,
            }
        };
        // The initrd: the FIT's, or `-initrd`; never both, as which one is meant cannot be
        // told.
        payload.initrd = match (payload.initrd.take(), self.fw.initrd_size()?) {
            (Some(_), n @ 1..) => return Err(BootError::FitAndInitrd { initrd: n }),
            (fit, 0) => {
                if fit.is_none() {
                    // fw_cfg shows an empty -initrd file exactly as it shows none
                    // (`FwCfg::initrd_size`): say so, rather than pretend to know.
                    info!("fw_cfg: no -initrd (an empty -initrd file looks the same in fw_cfg and is booted as none)");
                }
                fit
            }
            (None, n) => Some(Source::Device(u64::from(n))),
        };
        Ok(Some(payload))
    }

    fn demo_payload(&self) -> Cow<'static, [u8]> {
        Cow::Borrowed(crate::demo::payload())
    }

    fn lowest_base(&self, header: &ImageHeader) -> u64 {
        super::lowest_base(header)
    }

    fn dtb_buffer(&mut self, replacement: Option<&[u8]>) -> Result<&'static mut [u8], BootError> {
        let area = self.dtb.take().ok_or(BootError::DtbTaken)?;
        // A FIT's DTB goes over QEMU's (whose RAM is known already), in the DTB area, whose
        // 1 MiB is room for the edits.
        if let Some(f) = replacement {
            let room = area.len();
            area.get_mut(..f.len())
                .ok_or(BootError::FitFdtTooLarge {
                    size: f.len(),
                    room,
                })?
                .copy_from_slice(f);
        }
        // The rewrite works on a copy of the tree in the heap (about ten times its content:
        // the structure and strings blocks, header words 0x24 and 0x20; QEMU's totalsize
        // also counts the free room it leaves).
        let word = |at: usize| {
            area.get(at..at + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let content = word(0x20) + word(0x24);
        if content.saturating_mul(10) > self.heap {
            return Err(BootError::DtbTooLarge {
                size: content,
                heap: self.heap,
            });
        }
        Ok(area)
    }

    fn edit_dtb<'a>(&'a self, el: El, edits: Edits<'a>) -> Edits<'a> {
        // The flash the stub runs from must not be reprogrammed by a payload driver while
        // the stub stays (QEMU describes it as `cfi-flash`).
        match el {
            El::One => edits.disable(FLASH_NODE),
            El::Two => edits,
        }
    }

    fn load(&mut self, part: Part, runs: &[Range<u64>]) -> Result<(), BootError> {
        match part {
            // SAFETY: the planner's staging runs for this part, or its destination when it is
            // loaded in place: free RAM (clear of the firmware's busy and protected ranges),
            // mapped as data, written by nothing else until the engine runs, and not written
            // by the EL1 stage since its caches went on (`Board::load`).
            Part::Kernel => unsafe { self.fw.load_kernel_runs(runs) }?,
            // SAFETY: as above.
            Part::Initrd => unsafe { self.fw.load_initrd_runs(runs) }?,
        }
        Ok(())
    }

    fn engine_console(&self) -> EngineConsole {
        EngineConsole {
            base: PL011 as u64,
            mini_uart: false,
        }
    }

    fn stop() -> ! {
        super::power_off()
    }
}

/// The `-kernel` item, which starts with the FDT magic, read whole into the highest free RAM
/// (away from the firmware, the DTB and the low RAM where payloads go), then parsed and
/// every hash of its default configuration checked. Its range stays busy: nothing is staged
/// over it.
fn read_fit_from_fw_cfg(
    fw: &mut FwCfg<Device>,
    size: u32,
    ram: &Range<u64>,
) -> Result<Payload<'static>, BootError> {
    let len = u64::from(size);
    let firmware = RAM_START..PAYLOAD_LOWEST;
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
    // SAFETY: free RAM above the firmware's, inside the RAM `map_all_ram` mapped as data,
    // used by nothing else.
    unsafe { fw.load_kernel(at.clone()) }?;
    info!(
        "fw_cfg: -kernel is a FIT: {len} bytes read to {:#x}..{:#x}",
        at.start, at.end
    );
    // SAFETY: as above, written only by the DMA; busy for the planner, so nothing writes it
    // before the payload is staged.
    unsafe { read_fit(&at) }
}
