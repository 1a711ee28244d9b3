//! The Raspberry Pi 4 behind [`Board`]: everything comes from the DTB the firmware passes
//! (the command line from `/chosen/bootargs`, RAM banks, reservations, spin-table CPUs, the
//! payload FIT in `linux,initrd-start/-end`); secondary CPUs are taken over from the spin
//! table when the payload runs at EL1.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0, MPIDR_EL1};
use el2_stub::Platform as _;
use loader::dt::{Dtb, Edits};
use loader::options::El;
use log::info;

use super::cpus::{check_release_addr, cpu_node_name, ranges, release_pages};
use super::{firmware_dtb, ConsoleUart, Rpi4, EL1_RAM, HYPSTUB_RPI4_SHARED as SHARED};
use super::{DEVICES, IMAGE_BASE, PM, RESIDENT, SPIN_PAGE};
use crate::boot::free_area;
use crate::el1::cache::{Cache, CpuCache};
use crate::error::BootError;
use crate::flow::{Board, EngineConsole, Memory, Written};
use crate::payload::{read_fit, Payload};

/// Room for the payload DTB to grow by (bootargs, reservations, properties).
const DTB_ROOM: usize = 64 << 10;
/// RAM the EL1 stage adds to its heap once all RAM is mapped: the DTB rewrite, the FIT's
/// bookkeeping and the tables of the full map live there.
const WORK_AREA: u64 = 8 << 20;
/// How long a secondary CPU has to reach its parking place.
const PARK_TIMEOUT_MS: u64 = 1000;

/// The board: the firmware's DTB and what it says.
pub struct Rpi4Board {
    dtb: &'static mut [u8],
    dtb_range: Range<u64>,
    uart: ConsoleUart,
    image_end: u64,
    ram: Vec<Range<u64>>,
    reserved: Vec<Range<u64>>,
    cpus: Vec<(u64, Option<u64>)>,
    fit: Option<Range<u64>>,
    /// With `hypstub.el=1`: each CPU node's new `cpu-release-addr`.
    release_paths: Vec<(String, u64)>,
}

impl Rpi4Board {
    /// The board as the firmware's DTB at `dtb` describes it; `uart` is the console found
    /// there, `image_end` the end of kernel8.img's bytes.
    ///
    /// # Safety
    /// Once only, at EL1 with the early tables on.
    ///
    /// # Errors
    /// No readable DTB at `dtb`.
    pub unsafe fn new(dtb: u64, uart: ConsoleUart, image_end: u64) -> Result<Self, BootError> {
        // SAFETY: per the caller's contract.
        let blob = unsafe { firmware_dtb(dtb) }.map_err(BootError::Board)?;
        Ok(Self {
            dtb_range: dtb..dtb + blob.len() as u64,
            dtb: blob,
            uart,
            image_end: image_end.next_multiple_of(4096),
            ram: Vec::new(),
            reserved: Vec::new(),
            cpus: Vec::new(),
            fit: None,
            release_paths: Vec::new(),
        })
    }

    /// kernel8.img's code and read-only data.
    fn code(&self) -> Range<u64> {
        IMAGE_BASE..self.image_end
    }
}

impl Board for Rpi4Board {
    const HAS_PSCI: bool = false;

    fn command_line(&mut self) -> Result<String, BootError> {
        let freq = CNTFRQ_EL0.get();
        if freq == 0 {
            return Err(BootError::Board(
                "CNTFRQ_EL0 is 0: the armstub did not program the counter frequency, and Linux cannot run without it".into(),
            ));
        }
        info!("timer: CNTFRQ_EL0 = {freq} Hz");
        Ok(String::from(
            Dtb::new(&mut *self.dtb)?.bootargs()?.unwrap_or(""),
        ))
    }

    fn memory(&mut self) -> Result<Memory, BootError> {
        let fw_dtb = Dtb::new(&mut *self.dtb)?;
        self.ram = fw_dtb.memory()?;
        self.reserved = fw_dtb.reserved()?;
        self.cpus = fw_dtb.spin_table()?;
        self.fit = fw_dtb.initrd()?;
        let blob = self.dtb_range.clone();
        info!(
            "dtb: at {:#x}, {} bytes; RAM {}; {} CPUs; reserved {}",
            blob.start,
            blob.end - blob.start,
            ranges(&self.ram),
            self.cpus.len(),
            ranges(&self.reserved)
        );
        // hypstub's RAM and image were in use before the DTB could be read: memory the DTB
        // reserves there (TF-A's BL31 as an armstub, say) has been overwritten already.
        let own = super::SHARED.start..self.image_end;
        if let Some(r) = self
            .reserved
            .iter()
            .chain(core::iter::once(&blob))
            .find(|r| r.start < own.end && own.start < r.end)
        {
            return Err(BootError::Board(alloc::format!(
                "the DTB reserves or puts {:#x}..{:#x}, inside hypstub's own RAM and image {:#x}..{:#x}: an armstub that keeps code there (TF-A's BL31) cannot be used with hypstub",
                r.start, r.end, own.start, own.end
            )));
        }
        // The EL1 stage runs in the first bank already (the DTB is read only now): refuse a
        // first bank that cannot hold what it uses, before the work area is.
        let bank0 = super::first_bank(&self.ram, WORK_AREA).map_err(BootError::Board)?;
        let code = self.code();
        crate::handover::map_all_ram(&self.ram, core::slice::from_ref(&RESIDENT), &code, &DEVICES)?;

        // A bigger heap, in free RAM away from everything the firmware was given.
        let mut avoid = alloc::vec![0..super::EARLY_CODE.end, blob.clone()];
        avoid.extend(self.reserved.iter().cloned());
        avoid.extend(self.fit.iter().cloned());
        let work = free_area(&bank0, &avoid, WORK_AREA, 2 << 20).ok_or(BootError::Board(
            alloc::format!(
                "no free {} MiB in RAM {:#x}..{:#x} for the firmware's work area",
                WORK_AREA >> 20,
                bank0.start,
                bank0.end
            ),
        ))?;
        // SAFETY: free RAM (checked above), mapped as data by the full map, used by nothing
        // else; it stays busy for the planner.
        unsafe { crate::runtime::add_to_heap(work.clone()) };
        info!(
            "el1: work area {:#x}..{:#x} added to the heap",
            work.start, work.end
        );

        // Wherever the DTB puts the release words, the CPUs waiting on them read them until
        // the payload releases them: their pages are never written by the relocation.
        let release = release_pages(&self.cpus);
        let mut protected = alloc::vec![(SPIN_PAGE, "the armstub and its spin table")];
        protected.extend(
            release
                .iter()
                .map(|r| (r.clone(), "a spin-table release word")),
        );
        protected.extend(
            self.reserved
                .iter()
                .map(|r| (r.clone(), "reserved memory in the DTB")),
        );
        let stub_ram = super::SHARED.start..RESIDENT.end;
        let mut reserve = alloc::vec![SPIN_PAGE];
        reserve.extend(release);
        Ok(Memory {
            ram: self.ram.clone(),
            payload_bank: bank0,
            protected,
            stub: alloc::vec![
                (stub_ram.clone(), "the stub's resident RAM"),
                (code.clone(), "the stub's code"),
            ],
            resident: RESIDENT,
            busy: alloc::vec![stub_ram, EL1_RAM, code, work.clone(), blob],
            reserve,
            firmware_reserved: self.reserved.clone(),
            written: Written {
                stage: EL1_RAM,
                work,
            },
        })
    }

    fn payload(&mut self, _memory: &Memory) -> Result<Option<Payload<'static>>, BootError> {
        let Some(r) = self.fit.clone() else {
            info!("payload: no initrd in /chosen: running the built-in demo");
            return Ok(None);
        };
        if r.start >= r.end
            || !self
                .ram
                .iter()
                .any(|b| b.start <= r.start && r.end <= b.end)
        {
            return Err(BootError::Board(alloc::format!(
                "DTB: /chosen linux,initrd-start/-end {:#x}..{:#x} is not a range inside RAM",
                r.start,
                r.end
            )));
        }
        // SAFETY: the initrd range from /chosen, inside RAM (mapped as data by the full map),
        // which nothing writes before the payload is staged.
        Ok(Some(unsafe { read_fit(&r) }?))
    }

    fn demo_payload(&self) -> Cow<'static, [u8]> {
        Cow::Owned(crate::demo::payload_for(self.uart, Some(PM)))
    }

    /// Releases every secondary CPU from the firmware's spin table into the stub
    /// (`rpi4_secondary_entry`), waits until each is parked at EL1 on the stub's mailboxes,
    /// and records the new `cpu-release-addr` of each CPU node.
    fn take_over_cpus(&mut self, memory: &Memory) -> Result<(), BootError> {
        let entry = super::rpi4_secondary_entry as *const () as u64;
        let boot_mpidr = MPIDR_EL1.get() & 0xff_ffff;
        let own = super::SHARED.start..self.image_end;
        let mut waiting = Vec::new();
        for (i, (mpidr, release)) in self.cpus.iter().enumerate() {
            let Some(release) = release else {
                return Err(BootError::Board(alloc::format!(
                    "CPU {i} (MPIDR {mpidr:#x}) is not started by a spin table; with hypstub.el=1 this firmware needs spin-table CPUs"
                )));
            };
            let slot = Rpi4::cpu_slot(*mpidr).ok_or_else(|| {
                BootError::Board(alloc::format!(
                    "CPU {i} has MPIDR {mpidr:#x}; the stub has {} CPU slots, for MPIDR Aff0 0 to {} with Aff1..Aff3 zero",
                    el2_stub::cpus::MAX_CPUS,
                    el2_stub::cpus::MAX_CPUS - 1
                ))
            })?;
            self.release_paths.push((
                alloc::format!("/cpus/{}", cpu_node_name(*mpidr)),
                SHARED.release_addr(slot),
            ));
            if *mpidr == boot_mpidr {
                continue;
            }
            check_release_addr(i, *release, &memory.ram, &own).map_err(BootError::Board)?;
            // SAFETY: the release word named by the DTB, checked to be RAM outside hypstub's
            // own, mapped as data; only the parked CPU reads it (MMU off), so clean it to PoC.
            unsafe { (*release as *mut u64).write_volatile(entry) };
            #[cfg(not(feature = "test-skip-release-clean"))]
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
            super::SHARED.start
        );
        Ok(())
    }

    fn dtb_buffer(&mut self, replacement: Option<&[u8]>) -> Result<&'static mut [u8], BootError> {
        // The FIT's DTB if it has one, else the firmware's, in the heap with room to grow.
        let firmware = Dtb::new(&mut *self.dtb)?;
        let base: &[u8] = replacement.unwrap_or(firmware.as_bytes());
        let mut buf = alloc::vec![0u8; base.len() + DTB_ROOM];
        buf[..base.len()].copy_from_slice(base);
        // It lives until the HVC: the engine copies it to its destination.
        Ok(buf.leak())
    }

    fn edit_dtb<'a>(&'a self, el: El, mut edits: Edits<'a>) -> Edits<'a> {
        if el == El::One {
            // The shared page stays mapped for the payload (it writes the release words
            // there, and cleans them), and so does the code (read only, never changed).
            let shared = super::SHARED;
            let code = self.code();
            edits = edits
                .memreserve(shared.start, shared.end - shared.start)
                .memreserve(code.start, code.end - code.start);
            for (path, addr) in &self.release_paths {
                edits = edits.property_u64(path, "cpu-release-addr", *addr);
            }
        }
        edits
    }

    fn engine_console(&self) -> EngineConsole {
        EngineConsole {
            base: self.uart.base() as u64,
            mini_uart: matches!(self.uart, ConsoleUart::MiniUart(_)),
        }
    }

    fn stop() -> ! {
        super::power_off()
    }
}
