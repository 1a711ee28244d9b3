//! Console output on QEMU virt's PL011 UART at 0x0900_0000 (docs/memory-map.md):
//! polled, without locks or interrupts. The boot loader, firmware or QEMU has already set
//! the UART up, so the clients only write bytes. el2-client's `entry.S` has its own
//! few-line copy of [`Console::put`] (fed these constants) for the one message it prints
//! before any Rust can run.

use core::fmt;
use core::hint::spin_loop;
use core::ptr::{read_volatile, write_volatile};

/// The PL011's base address on QEMU virt.
pub const PL011_BASE: usize = 0x0900_0000;
/// UARTDR: writing the low byte queues it for transmission.
pub const UARTDR: usize = 0x00;
/// UARTFR: flag register.
pub const UARTFR: usize = 0x18;
/// UARTFR.TXFF (bit 5): transmit FIFO full.
pub const UARTFR_TXFF_BIT: u32 = 5;

/// The serial console; `core::fmt::Write` on it never fails.
pub struct Console;

impl Console {
    fn put(byte: u8) {
        // SAFETY: on QEMU virt a PL011 sits at PL011_BASE and nothing else is there; with the
        // MMU off this is an aligned Device access to its read-only flag register.
        while unsafe { read_volatile((PL011_BASE + UARTFR) as *const u32) } & (1 << UARTFR_TXFF_BIT)
            != 0
        {
            spin_loop();
        }
        // SAFETY: as above; writing UARTDR only queues one byte.
        unsafe { write_volatile((PL011_BASE + UARTDR) as *mut u32, u32::from(byte)) };
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                Self::put(b'\r');
            }
            Self::put(byte);
        }
        Ok(())
    }
}

/// Prints one line on the console, like `println!`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        // Console::write_str never fails.
        let _ = writeln!($crate::console::Console, $($arg)*);
    }};
}

/// Bytes from outside (the command line) shown as text: as they are when they are UTF-8,
/// as a placeholder otherwise.
pub fn text(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).unwrap_or("<not UTF-8>")
}
