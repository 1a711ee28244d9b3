//! The example's board: QEMU virt as hypstub's own firmware sees it (command line, RAM and
//! DTB from QEMU), except that the payload is the FIT in the second flash bank.

use alloc::borrow::Cow;
use alloc::string::String;
use core::ops::Range;

use hypstub_boards::error::BootError;
use hypstub_boards::flow::{Board, EngineConsole, Memory, Part};
use hypstub_boards::payload::{read_fit, Payload};
use hypstub_boards::qemu_virt::{QemuVirtBoard, FLASH, FLASH_BANK_SIZE};
use loader::dt::{Edits, FDT_MAGIC};
use loader::image::ImageHeader;
use loader::options::El;
use log::info;

/// QEMU virt's second flash bank (`-drive if=pflash,unit=1`), mapped by the early tables.
const FLASH1: Range<u64> = FLASH_BANK_SIZE..FLASH.end;

/// hypstub's QEMU virt board, with the payload taken from [`FLASH1`].
pub struct PflashBoard(QemuVirtBoard);

impl PflashBoard {
    /// # Safety
    /// As [`QemuVirtBoard::new`]: once, at EL1 with the early tables on.
    pub unsafe fn new(heap: usize) -> Result<Self, BootError> {
        // SAFETY: the caller's contract, passed on.
        Ok(Self(unsafe { QemuVirtBoard::new(heap) }?))
    }
}

impl Board for PflashBoard {
    const HAS_PSCI: bool = true;

    fn payload(&mut self, _memory: &Memory) -> Result<Option<Payload<'static>>, BootError> {
        // SAFETY: flash bank 1 is mapped read-only by the early tables and never written.
        let header = unsafe { core::slice::from_raw_parts(FLASH1.start as *const u8, 8) };
        let word =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        if word(0) != FDT_MAGIC {
            info!(
                "pflash-boot: no FIT at {:#x} (found {:#010x}): running the demo",
                FLASH1.start,
                word(0)
            );
            return Ok(None);
        }
        let size = u64::from(word(4));
        if size > FLASH1.end - FLASH1.start {
            return Err(BootError::Board(alloc::format!(
                "pflash-boot: the FIT says it is {size} bytes, more than the flash bank"
            )));
        }
        // SAFETY: inside the flash bank (checked), mapped and never written while in use.
        let mut payload = unsafe { read_fit(&(FLASH1.start..FLASH1.start + size)) }?;
        // It is in flash, which no staging page can overwrite.
        payload.source = None;
        Ok(Some(payload))
    }

    // Everything else is QEMU virt's, as hypstub's own firmware does it.
    fn command_line(&mut self) -> Result<String, BootError> {
        self.0.command_line()
    }
    fn memory(&mut self) -> Result<Memory, BootError> {
        self.0.memory()
    }
    fn demo_payload(&self) -> Cow<'static, [u8]> {
        self.0.demo_payload()
    }
    fn lowest_base(&self, header: &ImageHeader) -> u64 {
        self.0.lowest_base(header)
    }
    fn dtb_buffer(&mut self, replacement: Option<&[u8]>) -> Result<&'static mut [u8], BootError> {
        self.0.dtb_buffer(replacement)
    }
    fn edit_dtb<'a>(&'a self, el: El, edits: Edits<'a>) -> Edits<'a> {
        self.0.edit_dtb(el, edits)
    }
    fn load(&mut self, part: Part, runs: &[Range<u64>]) -> Result<(), BootError> {
        self.0.load(part, runs)
    }
    fn engine_console(&self) -> EngineConsole {
        self.0.engine_console()
    }
    fn stop() -> ! {
        QemuVirtBoard::stop()
    }
}
