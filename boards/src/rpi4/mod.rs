//! Raspberry Pi 4 (BCM2711): the memory map of `kernel8.img`, its early translation tables,
//! the stub's platform hooks (no PSCI: the Pi's CPUs use a spin table), the page shared
//! between the EL1 stage, the stub and parked secondary CPUs, and power-off through the PM
//! block. See docs/rpi4.md.
//!
//! The Pi firmware (or hypstub's armstub) enters `kernel8.img` at 0x8_0000 at EL2 with the
//! MMU off and x0 = DTB, the secondaries waiting at EL2 on the spin table in page 0. The
//! firmware puts the payload (`initramfs payload.itb followkernel`) right after the file, so
//! all of the firmware's RAM lies below it, between page 0 and 0x8_0000 (`memory_map.rs`,
//! re-exported here; the linker script takes its numbers from the same file).

#[cfg(target_arch = "aarch64")]
mod board;
pub mod cpus;
mod memory_map;

use core::cell::UnsafeCell;
use core::ops::Range;

#[cfg(target_arch = "aarch64")]
pub use board::Rpi4Board;
pub use memory_map::*;

use crate::console::ConsoleUart;
use crate::el1::mmu::{EarlyTables, Kind, Run};

/// The board's name in the banner.
pub const NAME: &str = "rpi4";
/// The first PL011 (UART0) and the mini-UART's AUX_MU_IO, where a console is looked for
/// when the DTB cannot be read.
pub const FALLBACK_UARTS: [ConsoleUart; 2] = [
    ConsoleUart::MiniUart(0xfe21_5040),
    ConsoleUart::Pl011(0xfe20_1000),
];
/// The power management block (watchdog and reset; BCM2711 has it at 0x7e10_0000 on the
/// VPU bus).
pub const PM: u64 = 0xfe10_0000;

const MIB2: u64 = 2 << 20;
const GIB: u64 = 1 << 30;

// The early map's tables ([`HYPSTUB_RPI4_EARLY`]), by index.
const L1: usize = 0;
const L2_LOW: usize = 1;
const L2_DEVICES: usize = 2;
const L3_LOW: usize = 3;
const RESIDENT_PAGES: core::ops::Range<usize> =
    (RESIDENT.start / 4096) as usize..(RESIDENT.end / 4096) as usize;
const CODE_PAGE: usize = (EARLY_CODE.start / 4096) as usize;
const DEVICE_BLOCK: usize = ((DEVICES.start - 3 * GIB) / MIB2) as usize;

/// The EL1 stage's early map, which `entry.S` writes into [`HYPSTUB_RPI4_EARLY`]:
/// - level 1: the first GiB through `L2_LOW`, 3..4 GiB through `L2_DEVICES`;
/// - `L2_LOW`: the low 2 MiB through `L3_LOW`, the rest as data in 2 MiB blocks (the DTB
///   and the payload are somewhere in it);
/// - `L2_DEVICES`: the peripherals as Device memory; RAM there (4 and 8 GiB boards) waits
///   for the full map;
/// - `L3_LOW`: page 0 and the shared page as data (the EL1 stage reads and writes the spin
///   table), the stub's RAM unmapped, the EL1 stage's RAM as data, the image (and whatever
///   follows it up to 2 MiB) as code.
#[unsafe(no_mangle)]
pub static HYPSTUB_RPI4_EARLY_RUNS: [Run; 8] = [
    Run::table(L1, 0, L2_LOW),
    Run::table(L1, 3, L2_DEVICES),
    Run::table(L2_LOW, 0, L3_LOW),
    Run::blocks_2m(L2_LOW, 1, 511, MIB2, Kind::Data),
    Run::blocks_2m(
        L2_DEVICES,
        DEVICE_BLOCK,
        512 - DEVICE_BLOCK,
        DEVICES.start,
        Kind::Device,
    ),
    Run::pages(L3_LOW, 0, RESIDENT_PAGES.start, 0, Kind::Data),
    Run::pages(
        L3_LOW,
        RESIDENT_PAGES.end,
        CODE_PAGE - RESIDENT_PAGES.end,
        RESIDENT.end,
        Kind::Data,
    ),
    Run::pages(
        L3_LOW,
        CODE_PAGE,
        512 - CODE_PAGE,
        EARLY_CODE.start,
        Kind::Code,
    ),
];

/// The early map's tables (table 0 is the root, TTBR0_EL1 of the EL1 stage), in `.bss`:
/// written by `entry.S` from [`HYPSTUB_RPI4_EARLY_RUNS`] with the MMU off.
#[unsafe(no_mangle)]
pub static mut HYPSTUB_RPI4_EARLY: EarlyTables<4> = EarlyTables::ZERO;

const _: () = assert!(DEVICES.start.is_multiple_of(MIB2) && EARLY_CODE.start.is_multiple_of(4096));

/// One cache line (64 bytes on the Cortex-A72) of words, so that what different agents
/// write never shares a line (a write-back of one would undo the other).
#[repr(C, align(64))]
pub struct Line(pub [u64; 8]);

/// The page shared by the EL1 stage (MMU on), the stub (EL2, MMU off) and parked secondary
/// CPUs (EL1, MMU off). Each group on its own cache line; the writer of a cacheable copy
/// cleans it to PoC for the MMU-off readers.
#[repr(C)]
pub struct Shared {
    /// Word 0: console kind (0 none, 1 PL011, 2 mini-UART); word 1: its address. Written by
    /// the EL1 stage once it has read the DTB, read by the stub for its messages.
    pub console: Line,
    /// Per CPU (by MPIDR Aff0): 1 once the CPU has the stub installed and is parked at EL1.
    /// Written by the parked CPU with its MMU off.
    pub parked: Line,
    /// Per CPU: the release word a parked CPU polls (the payload's `cpu-release-addr` with
    /// `hypstub.el=1`); non-zero = jump there.
    pub release: Line,
}

/// [`Shared`] in its section (`linker/rpi4.ld` puts `.hypstub_shared` at [`SHARED`]).
pub struct SharedCell(UnsafeCell<Shared>);

// SAFETY: every access is a volatile access to one word through raw pointers, ordered by
// barriers and cache maintenance as each user documents; no references to the contents are
// handed out.
unsafe impl Sync for SharedCell {}

/// The shared page.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".hypstub_shared")]
pub static HYPSTUB_RPI4_SHARED: SharedCell = SharedCell(UnsafeCell::new(Shared {
    console: Line([0; 8]),
    parked: Line([0; 8]),
    release: Line([0; 8]),
}));

/// Byte offsets in [`Shared`], for the assembly.
pub const SHARED_PARKED: usize = core::mem::offset_of!(Shared, parked);
/// See [`SHARED_PARKED`].
pub const SHARED_RELEASE: usize = core::mem::offset_of!(Shared, release);

impl SharedCell {
    fn word(&self, line: usize, i: usize) -> *mut u64 {
        let base = self.0.get().cast::<u64>();
        base.wrapping_add(line * 8 + i)
    }

    /// The console the stub prints on, if the EL1 stage has named one.
    #[must_use]
    pub fn console(&self) -> Option<ConsoleUart> {
        // SAFETY: words of the shared static, read volatile (another agent writes them).
        let (kind, base) = unsafe {
            (
                self.word(0, 0).read_volatile(),
                self.word(0, 1).read_volatile() as usize,
            )
        };
        match kind {
            1 => Some(ConsoleUart::Pl011(base)),
            2 => Some(ConsoleUart::MiniUart(base)),
            _ => None,
        }
    }

    /// Records the console for the stub. The caller cleans [`Self::console_line`] to PoC
    /// when its caches are on.
    pub fn set_console(&self, uart: ConsoleUart) {
        let kind = match uart {
            ConsoleUart::Pl011(_) => 1,
            ConsoleUart::MiniUart(_) => 2,
        };
        // SAFETY: words of the shared static; the EL1 stage is the only writer.
        unsafe {
            self.word(0, 1).write_volatile(uart.base() as u64);
            self.word(0, 0).write_volatile(kind);
        }
    }

    /// The address range of the console words.
    #[must_use]
    pub fn console_line(&self) -> Range<u64> {
        let a = self.word(0, 0) as u64;
        a..a + 64
    }

    /// Address of CPU `slot`'s parked flag.
    #[must_use]
    pub fn parked_addr(&self, slot: usize) -> u64 {
        self.word(1, slot) as u64
    }

    /// Address of CPU `slot`'s release word.
    #[must_use]
    pub fn release_addr(&self, slot: usize) -> u64 {
        self.word(2, slot) as u64
    }
}

#[cfg(target_arch = "aarch64")]
/// The stub's view of the board.
pub struct Rpi4;

#[cfg(target_arch = "aarch64")]
// SAFETY: the hooks read the shared page's console words and write only UART and PM
// registers; no locks, atomics, heap or FP.
unsafe impl el2_stub::Platform for Rpi4 {
    const HAS_PSCI: bool = false;

    fn console_write(s: &str) {
        // The DTB's console once the EL1 stage has named it, else both UARTs: a fault at
        // EL2 before that is reported too.
        console_raw(s);
    }

    fn psci(_args: [u64; 18]) -> [u64; 4] {
        // Never called without PSCI (HAS_PSCI is false); answer as SMCCC says for an
        // unknown function all the same.
        [smccc::psci::error::NOT_SUPPORTED as u64, 0, 0, 0]
    }

    fn stop() -> ! {
        power_off()
    }

    fn stub_memory() -> [Range<u64>; 2] {
        // The page shared with parked CPUs and the resident RAM, then kernel8.img's code
        // (the stub's vectors and handlers run from it).
        [
            SHARED.start..RESIDENT.end,
            IMAGE_BASE..crate::runtime::image_end().next_multiple_of(4096),
        ]
    }
}

#[cfg(target_arch = "aarch64")]
/// Powers the board off as Linux's bcm2835_wdt does: PM_RSTS asks the firmware to halt
/// (partition 63), then a watchdog reset after 10 ticks; QEMU's raspi4b exits. Parks the CPU
/// if that does not happen. Works at EL2 (MMU off) and at EL1 (PM mapped as Device memory).
pub fn power_off() -> ! {
    const PASSWORD: u32 = 0x5a00_0000;
    // The watchdog fires 10 ticks (about 150 us) after the last write: let the console send
    // the line that says why first.
    let console = HYPSTUB_RPI4_SHARED.console();
    for uart in console.as_slice().iter().chain(if console.is_none() {
        &FALLBACK_UARTS[..]
    } else {
        &[]
    }) {
        // SAFETY: the DTB's console or the Pi's two UARTs, Device memory or MMU off.
        unsafe { uart.drain() };
    }
    let reg = |off: u64| (PM + off) as *mut u32;
    // SAFETY: the PM block's RSTS, WDOG and RSTC registers (BCM2711 PM_* offsets 0x20,
    // 0x24, 0x1c), mapped as Device memory or reached with the MMU off.
    unsafe {
        reg(0x20).write_volatile(PASSWORD | 0x555);
        reg(0x24).write_volatile(PASSWORD | 10);
        reg(0x1c).write_volatile(PASSWORD | 0x20);
    }
    loop {
        aarch64_cpu::asm::wfe();
    }
}

#[cfg(target_arch = "aarch64")]
/// Puts `s` on the stub's console (the DTB's), or on both of the Pi's UARTs when the DTB has
/// not been read yet, without a lock (fault reports, panics).
pub fn console_raw(s: &str) {
    match HYPSTUB_RPI4_SHARED.console() {
        // SAFETY: the DTB's console, mapped as Device memory at EL1 / MMU off at EL2.
        Some(uart) => unsafe { uart.write_raw(s) },
        None => {
            for uart in FALLBACK_UARTS {
                // SAFETY: the Pi 4's two UARTs in low-peripheral mode, mapped as Device
                // memory by the early tables; a last resort before the DTB names one.
                unsafe { uart.write_raw(s) };
            }
        }
    }
}

/// The DTB the firmware passed in x0, read in place.
///
/// # Safety
/// Only at EL1 with the early tables on, and the only access to the DTB while the slice
/// lives.
///
/// # Errors
/// There is no readable DTB there.
#[cfg(target_arch = "aarch64")]
pub unsafe fn firmware_dtb(dtb: u64) -> Result<&'static mut [u8], alloc::string::String> {
    use loader::dt::FDT_HEADER_SIZE;
    cpus::check_dtb_addr(dtb)?;
    // SAFETY: inside the early map's first GiB (checked), which is RAM mapped as data.
    let header = unsafe { &*(dtb as *const [u8; FDT_HEADER_SIZE]) };
    let size = cpus::dtb_size(dtb, header)?;
    // SAFETY: as above, the whole tree inside the first GiB (checked); the caller's
    // contract makes it the only access.
    Ok(unsafe { core::slice::from_raw_parts_mut(dtb as *mut u8, size as usize) })
}

/// The console the firmware's DTB at `dtb` names, mapped by the early tables.
///
/// # Safety
/// As for [`firmware_dtb`].
///
/// # Errors
/// No DTB, no console in it, or one this firmware does not map.
#[cfg(target_arch = "aarch64")]
pub unsafe fn find_console(dtb: u64) -> Result<ConsoleUart, alloc::string::String> {
    // SAFETY: per the caller's contract.
    let blob = unsafe { firmware_dtb(dtb) }?;
    let c = loader::dt::Dtb::new(blob)
        .and_then(|dtb| dtb.console())
        .map_err(|e| alloc::format!("DTB: {e}"))?;
    cpus::console_uart(&c)
}

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    /// Where the stub sends the boot CPU at EL1 (`entry.S`).
    pub fn rpi4_el1_entry();
    /// Where a secondary CPU is sent from the firmware's spin table (`entry.S`), at EL2.
    pub fn rpi4_secondary_entry();
    /// Where a secondary CPU parks at EL1 with the MMU off, x0 = its slot (`entry.S`).
    pub fn rpi4_park();
}

// What the shared page and the assembly assume (the memory map checks itself).
const _: () = {
    assert!(core::mem::size_of::<Shared>() as u64 <= SHARED.end - SHARED.start);
    assert!(el2_stub::cpus::MAX_CPUS <= 8, "one Line per group");
};

/// RAM the EL1 stage needs in the first bank: its own RAM and image (the first 2 MiB) and,
/// past them, room for its work area of `work` bytes (2 MiB aligned).
#[must_use]
pub fn first_bank_needed(work: u64) -> u64 {
    EARLY_CODE.end + work
}

/// The first RAM bank (the one holding the image at [`IMAGE_BASE`]), if it is large enough
/// for what the EL1 stage needs ([`first_bank_needed`]).
///
/// # Errors
/// "RAM too small", with what is needed and what the DTB gives.
pub fn first_bank(ram: &[Range<u64>], work: u64) -> Result<Range<u64>, alloc::string::String> {
    let needed = first_bank_needed(work);
    let given = ram
        .iter()
        .find(|r| r.contains(&IMAGE_BASE))
        .filter(|r| r.start == 0);
    match given {
        Some(r) if r.end >= needed => Ok(r.clone()),
        _ => Err(alloc::format!(
            "RAM too small: {} KiB needed, {} KiB given: the DTB's first RAM bank{} must hold the firmware's own RAM and image (0..{:#x}) and its {} MiB work area",
            needed >> 10,
            given.map_or(0, |r| r.end >> 10),
            given.map_or(alloc::string::String::new(), |r| alloc::format!(" 0x0..{:#x}", r.end)),
            EARLY_CODE.end,
            work >> 20
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn the_first_bank_must_hold_the_firmware_and_its_work_area() {
        let work = 8 << 20;
        assert_eq!(first_bank(&[0..0x3b40_0000], work), Ok(0..0x3b40_0000));
        assert_eq!(
            first_bank(&[0..10 << 20, 1 << 30..2 << 30], work),
            Ok(0..10 << 20)
        );
        assert_eq!(
            first_bank(&[0..0x80_0000], work).unwrap_err(),
            "RAM too small: 10240 KiB needed, 8192 KiB given: the DTB's first RAM bank 0x0..0x800000 must hold the firmware's own RAM and image (0..0x200000) and its 8 MiB work area"
        );
        // No bank at 0, or none holding the image: nothing given.
        let e = first_bank(&[0x1000_0000..0x2000_0000], work).unwrap_err();
        assert!(
            e.starts_with("RAM too small: 10240 KiB needed, 0 KiB given:"),
            "{e}"
        );
        let e = first_bank(&[0..0x4_0000], work).unwrap_err();
        assert!(e.contains("0 KiB given"), "{e}");
    }

    #[test]
    fn early_map() {
        use crate::el1::mmu::{apply, Descriptor};
        let base = 0x2_0000;
        let t = apply::<4>(&HYPSTUB_RPI4_EARLY_RUNS, base);
        let page = |pa: u64| t.0[L3_LOW][(pa / 4096) as usize];
        assert_ne!(page(0), 0, "the spin table is reachable");
        assert_eq!(
            page(RESIDENT.start),
            0,
            "the stub's RAM is not mapped at EL1"
        );
        assert_eq!(page(RESIDENT.end - 4096), 0);
        assert_eq!(
            page(SHARED.start),
            Descriptor::page(SHARED.start, Kind::Data).bits()
        );
        assert_ne!(page(EL1_RAM.start) & (1 << 53), 0, "RAM is not executable");
        assert_eq!(
            page(EL1_RAM.end - 4096),
            Descriptor::page(EL1_RAM.end - 4096, Kind::Data).bits()
        );
        assert_eq!(page(IMAGE_BASE) & (1 << 53), 0, "the image is executable");
        assert_eq!((page(IMAGE_BASE) >> 6) & 3, 0b10, "and read-only");
        let last = EARLY_CODE.end - 4096;
        assert_eq!(page(last), Descriptor::page(last, Kind::Code).bits());
        let dev = t.0[L2_DEVICES][((0xfe20_1000 - 3 * GIB) / MIB2) as usize];
        assert_eq!((dev >> 2) & 7, 0, "the PL011 is Device memory");
        assert_eq!(dev, Descriptor::block(0xfe20_0000, Kind::Device).bits());
        assert_eq!(
            t.0[L2_DEVICES][0], 0,
            "RAM above 3 GiB waits for the full map"
        );
        assert_eq!(t.0[L2_LOW][1], Descriptor::block(MIB2, Kind::Data).bits());
        assert_eq!(
            t.0[L2_LOW][511],
            Descriptor::block(GIB - MIB2, Kind::Data).bits()
        );
        assert_eq!(t.0[L1][0], base + 0x1000 + 3, "level 1 -> L2_LOW");
        assert_eq!(t.0[L1][3], base + 0x2000 + 3, "level 1 -> L2_DEVICES");
        assert_eq!(t.0[L2_LOW][0], base + 0x3000 + 3, "L2_LOW -> L3_LOW");
        assert_eq!(t.0[L1][1..3], [0; 2]);
    }

    #[test]
    fn shared_words_are_on_separate_lines() {
        let s = &HYPSTUB_RPI4_SHARED;
        assert_eq!(s.parked_addr(0) - s.console_line().start, 64);
        assert_eq!(s.release_addr(0) - s.parked_addr(0), 64);
        assert_eq!(s.release_addr(3) - s.release_addr(0), 24);
    }
}
