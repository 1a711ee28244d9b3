//! The console: the `log` crate over a PL011 (`arm-pl011-uart`) or a BCM2835 mini-UART, each
//! line timestamped from the generic counter, plus a lock-free writer for the paths that may
//! not take a lock (the EL2 stub with its MMU off, fault reports).

use core::fmt::Write;
use core::ptr::NonNull;

use arm_pl011_uart::{PL011Registers, Uart, UniqueMmioPointer};
use el2_stub::console::{now, write_timestamp};
use log::{LevelFilter, Log, Metadata, Record};
use spin::mutex::SpinMutex;
use spin::Once;

/// How many times a raw writer polls a UART for room before it drops the byte.
const SPIN_LIMIT: u32 = 1_000_000;
/// PL011 UARTFR.BUSY: still transmitting.
const UARTFR_BUSY: u32 = 1 << 3;
/// AUX_MU_LSR bit 6: the transmitter is idle (FIFO empty, last bit sent).
const AUX_MU_LSR_TX_IDLE: u32 = 1 << 6;

/// PL011 register offsets used by the lock-free path (PL011 TRM, 3.2).
const UARTDR: usize = 0x00;
const UARTFR: usize = 0x18;
const UARTFR_TXFF: u32 = 1 << 5;

/// Writes `s` to the PL011 at `base` byte by byte, waiting while the transmit FIFO is full.
/// Takes no lock, so it is safe with the MMU off and from fault handlers; output may
/// interleave with the logger's.
///
/// # Safety
/// `base` must be the address of a PL011's registers, mapped as Device memory (or the MMU
/// off), and nothing else may be reconfiguring that UART.
pub unsafe fn pl011_write_raw(base: usize, s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            // SAFETY: forwarded from the caller.
            unsafe { pl011_put(base, b'\r') };
        }
        // SAFETY: forwarded from the caller.
        unsafe { pl011_put(base, b) };
    }
}

/// # Safety
/// As [`pl011_write_raw`].
unsafe fn pl011_put(base: usize, b: u8) {
    let fr = (base + UARTFR) as *const u32;
    let dr = (base + UARTDR) as *mut u32;
    // A PL011 nobody enabled (UARTCR.UARTEN = 0: the Pi 4's drives Bluetooth when the
    // mini-UART is the console) may never drain: give up on the byte after a bounded wait
    // rather than hang on a console.
    let mut tries = SPIN_LIMIT;
    // SAFETY: the caller guarantees these are the PL011's flag and data registers.
    unsafe {
        while fr.read_volatile() & UARTFR_TXFF != 0 {
            tries -= 1;
            if tries == 0 {
                return;
            }
            core::hint::spin_loop();
        }
        dr.write_volatile(u32::from(b));
    }
}

/// Mini-UART register offsets from AUX_MU_IO (BCM2711 ARM Peripherals, 11.5): the DTB's
/// `reg` of a `brcm,bcm2835-aux-uart` starts at AUX_MU_IO.
const AUX_MU_LSR: usize = 0x14;
/// AUX_MU_LSR bit 5: the transmit FIFO can accept at least one byte.
const AUX_MU_LSR_TX_EMPTY: u32 = 1 << 5;

/// Writes `s` to the BCM2835 auxiliary mini-UART whose AUX_MU_IO register is at `base`, byte
/// by byte, waiting for room. The Pi firmware has set its baud rate (`enable_uart=1`); this
/// only transmits. Lock-free, like [`pl011_write_raw`].
///
/// # Safety
/// `base` must be a mini-UART's AUX_MU_IO register, mapped as Device memory (or the MMU off),
/// and nothing else may be reconfiguring that UART.
pub unsafe fn mini_uart_write_raw(base: usize, s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            // SAFETY: forwarded from the caller.
            unsafe { mini_uart_put(base, b'\r') };
        }
        // SAFETY: forwarded from the caller.
        unsafe { mini_uart_put(base, b) };
    }
}

/// # Safety
/// As [`mini_uart_write_raw`].
unsafe fn mini_uart_put(base: usize, b: u8) {
    let lsr = (base + AUX_MU_LSR) as *const u32;
    let io = base as *mut u32;
    // A mini-UART the firmware did not enable (no `enable_uart=1`) may never report room:
    // give up on the byte after a bounded wait rather than hang the boot on a console.
    let mut tries = SPIN_LIMIT;
    // SAFETY: the caller guarantees these are the mini-UART's LSR and IO registers.
    unsafe {
        while lsr.read_volatile() & AUX_MU_LSR_TX_EMPTY == 0 {
            tries -= 1;
            if tries == 0 {
                return;
            }
            core::hint::spin_loop();
        }
        io.write_volatile(u32::from(b));
    }
}

/// A console UART and where its registers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleUart {
    /// An Arm PL011 at this address.
    Pl011(usize),
    /// A BCM2835 mini-UART with AUX_MU_IO at this address.
    MiniUart(usize),
}

impl ConsoleUart {
    /// Waits, a bounded time, until the UART has sent every byte it holds: before a reset
    /// or power-off that would cut the last line short (at 115200 baud a full FIFO takes
    /// milliseconds).
    ///
    /// # Safety
    /// As [`Self::write_raw`].
    pub unsafe fn drain(self) {
        let (reg, done): (usize, fn(u32) -> bool) = match self {
            Self::Pl011(b) => (b + UARTFR, |v| v & UARTFR_BUSY == 0),
            Self::MiniUart(b) => (b + AUX_MU_LSR, |v| v & AUX_MU_LSR_TX_IDLE != 0),
        };
        for _ in 0..SPIN_LIMIT {
            // SAFETY: the caller guarantees a UART of this kind at this address.
            if done(unsafe { (reg as *const u32).read_volatile() }) {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// The address of its registers.
    #[must_use]
    pub const fn base(self) -> usize {
        match self {
            Self::Pl011(b) | Self::MiniUart(b) => b,
        }
    }

    /// Writes `s` without a lock ([`pl011_write_raw`], [`mini_uart_write_raw`]).
    ///
    /// # Safety
    /// As those functions.
    pub unsafe fn write_raw(self, s: &str) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match self {
                Self::Pl011(b) => pl011_write_raw(b, s),
                Self::MiniUart(b) => mini_uart_write_raw(b, s),
            }
        }
    }
}

/// What the logger writes to.
enum Sink {
    Pl011(Uart<'static>),
    MiniUart(usize),
}

impl Write for Sink {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        match self {
            Self::Pl011(u) => u.write_str(s),
            Self::MiniUart(base) => {
                // SAFETY: `init`'s caller guaranteed a mapped mini-UART that only the logger
                // (and lock-free whole-line writers) use.
                unsafe { mini_uart_write_raw(*base, s) };
                Ok(())
            }
        }
    }
}

struct Logger {
    uart: SpinMutex<Sink>,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut uart = self.uart.lock();
        let (count, freq) = now();
        let mut w = Crlf(&mut *uart);
        // A console write cannot fail in a way we could report anywhere else.
        let _ = write_timestamp(&mut w, count, freq);
        let _ = writeln!(w, "{:<5} {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

/// Turns `\n` into `\r\n` for terminals.
struct Crlf<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Crlf<'_, W> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for (i, part) in s.split('\n').enumerate() {
            if i > 0 {
                self.0.write_str("\r\n")?;
            }
            self.0.write_str(part)?;
        }
        Ok(())
    }
}

static LOGGER: Once<Logger> = Once::new();

/// Starts the logger on the PL011 at `base`, at `level`. Call once, at EL1 with the MMU and
/// caches on (the logger's lock uses exclusive accesses).
///
/// # Safety
/// `base` must be the address of a PL011's registers, mapped as Device memory, and no other
/// code may take ownership of that UART.
pub unsafe fn init(base: usize, level: LevelFilter) {
    // SAFETY: forwarded from the caller.
    unsafe { init_on(ConsoleUart::Pl011(base), level) }
}

/// Starts the logger on `uart`, at `level`. Call once, at EL1 with the MMU and caches on (the
/// logger's lock uses exclusive accesses).
///
/// # Safety
/// `uart` must name a UART of that kind, mapped as Device memory, that no other code takes
/// ownership of.
pub unsafe fn init_on(uart: ConsoleUart, level: LevelFilter) {
    let logger = LOGGER.call_once(|| {
        let sink = match uart {
            ConsoleUart::Pl011(base) => {
                // SAFETY: the caller guarantees `base` is a mapped PL011 that nothing else
                // owns.
                let regs = unsafe {
                    UniqueMmioPointer::new(NonNull::new_unchecked(base as *mut PL011Registers))
                };
                Sink::Pl011(Uart::new(regs))
            }
            ConsoleUart::MiniUart(base) => Sink::MiniUart(base),
        };
        Logger {
            uart: SpinMutex::new(sink),
        }
    });
    // A second call finds the logger already set; nothing to do then.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}
