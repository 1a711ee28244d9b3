//! The Pi 4's DTB facts as the board checks them before acting on them: the firmware's DTB
//! where x0 points, the console it names, the spin-table CPUs and their release words.
//! Plain Rust, tested on the host.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use loader::dt::{Console, ConsoleKind, FDT_HEADER_SIZE, FDT_MAGIC};

use super::{DEVICES, EARLY_RAM_END};
use crate::console::ConsoleUart;

/// Checks `dtb`, the firmware's x0, before anything reads there: non-zero, 8-byte aligned,
/// its header inside the first GiB (all that the early tables map).
///
/// # Errors
/// What is wrong, and what to do.
pub fn check_dtb_addr(dtb: u64) -> Result<(), String> {
    if dtb == 0 || !dtb.is_multiple_of(8) {
        return Err(alloc::format!(
            "x0 = {dtb:#x} is not a DTB address: boot with a device tree (the Pi firmware passes one; QEMU needs -dtb)"
        ));
    }
    // Checked: an x0 near 2^64 would wrap past the test in a release build (found by
    // fuzzing).
    if dtb
        .checked_add(FDT_HEADER_SIZE as u64)
        .is_none_or(|end| end > EARLY_RAM_END)
    {
        return Err(alloc::format!(
            "the DTB at {dtb:#x} is above the first GiB, which is all this firmware maps before reading it"
        ));
    }
    Ok(())
}

/// The size of the DTB at `dtb` whose first bytes are `header`.
///
/// # Errors
/// No FDT magic, or the tree runs past the first GiB.
pub fn dtb_size(dtb: u64, header: &[u8; FDT_HEADER_SIZE]) -> Result<u64, String> {
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
    if dtb.checked_add(size).is_none_or(|end| end > EARLY_RAM_END) {
        return Err(alloc::format!(
            "the DTB at {dtb:#x} ({size} bytes) runs past the first GiB"
        ));
    }
    Ok(size)
}

/// The UART of the DTB's console, if the early tables map it.
///
/// # Errors
/// It is outside the low-peripheral window.
pub fn console_uart(c: &Console) -> Result<ConsoleUart, String> {
    if !DEVICES.contains(&c.base) {
        return Err(alloc::format!(
            "the console {} at {:#x} is outside the peripherals at {:#x}..{:#x} (low-peripheral mode) that this firmware maps",
            c.path, c.base, DEVICES.start, DEVICES.end
        ));
    }
    Ok(match c.kind {
        ConsoleKind::Pl011 => ConsoleUart::Pl011(c.base as usize),
        ConsoleKind::MiniUart => ConsoleUart::MiniUart(c.base as usize),
    })
}

/// The pages of the CPUs' release words (spin-table `cpu-release-addr`s).
#[must_use]
pub fn release_pages(cpus: &[(u64, Option<u64>)]) -> Vec<Range<u64>> {
    cpus.iter()
        .filter_map(|(_, r)| *r)
        .map(|a| a & !0xfff..(a & !0xfff).saturating_add(0x1000))
        .collect()
}

/// Checks CPU `i`'s `cpu-release-addr` before hypstub writes its entry there: an aligned
/// 64-bit word inside RAM and outside hypstub's own RAM and image (`own`).
///
/// # Errors
/// Where it points instead.
pub fn check_release_addr(
    i: usize,
    addr: u64,
    ram: &[Range<u64>],
    own: &Range<u64>,
) -> Result<(), String> {
    if !addr.is_multiple_of(8) {
        return Err(alloc::format!(
            "CPU {i}'s cpu-release-addr {addr:#x} is not 8-byte aligned"
        ));
    }
    // A word cut short at 2^64 is not in any bank, not even one ending at 2^64 - 1 (the
    // `dtfacts` fuzz target checks this).
    let word = addr..addr.saturating_add(8);
    if word.end - word.start < 8
        || !ram
            .iter()
            .any(|b| b.start <= word.start && word.end <= b.end)
    {
        return Err(alloc::format!(
            "CPU {i}'s cpu-release-addr {addr:#x} is not in RAM ({})",
            ranges(ram)
        ));
    }
    if word.start < own.end && own.start < word.end {
        return Err(alloc::format!(
            "CPU {i}'s cpu-release-addr {addr:#x} is inside hypstub's own RAM and image {:#x}..{:#x}",
            own.start, own.end
        ));
    }
    Ok(())
}

/// The DTB's name for the CPU whose `reg` is `mpidr`: `cpu@<reg>`, as the Pi's DTB writes
/// it.
#[must_use]
pub fn cpu_node_name(mpidr: u64) -> String {
    alloc::format!("cpu@{mpidr:x}")
}

/// Ranges as `a..b, c..d`, or `none`.
#[must_use]
pub fn ranges(rs: &[Range<u64>]) -> String {
    if rs.is_empty() {
        return "none".into();
    }
    rs.iter()
        .map(|r| alloc::format!("{:#x}..{:#x}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: &[Range<u64>] = &[0..0x3c00_0000, 0x4000_0000..0xfc00_0000];
    const OWN: Range<u64> = 0x1000..0xc0000;

    #[test]
    fn release_words_in_ram_outside_hypstub_are_accepted() {
        assert_eq!(check_release_addr(1, 0xe0, RAM, &OWN), Ok(()));
        assert_eq!(check_release_addr(1, 0x3bff_fff8, RAM, &OWN), Ok(()));
    }

    #[test]
    fn release_words_elsewhere_are_refused_with_the_reason() {
        let e = check_release_addr(2, 0xfe00_0000, RAM, &OWN).unwrap_err();
        assert!(
            e.contains("CPU 2's cpu-release-addr 0xfe000000 is not in RAM"),
            "{e}"
        );
        let e = check_release_addr(1, 0x3bff_fffc, RAM, &OWN).unwrap_err();
        assert!(e.contains("not 8-byte aligned"), "{e}");
        let e = check_release_addr(3, 0x3c00_0000, RAM, &OWN).unwrap_err();
        assert!(e.contains("not in RAM"), "{e}");
        let e = check_release_addr(1, 0x2000, RAM, &OWN).unwrap_err();
        assert!(e.contains("inside hypstub's own RAM"), "{e}");
    }

    #[test]
    fn release_pages_are_whole_pages() {
        let cpus = [(0, Some(0xd8)), (1, Some(0x1234_5678)), (2, None)];
        assert_eq!(release_pages(&cpus), [0..0x1000, 0x1234_5000..0x1234_6000]);
    }

    #[test]
    fn dtb_address_and_header() {
        assert!(check_dtb_addr(0).unwrap_err().contains("not a DTB address"));
        assert!(check_dtb_addr(0x0800_0004).is_err());
        assert!(check_dtb_addr(0x4000_0000)
            .unwrap_err()
            .contains("above the first GiB"));
        assert_eq!(check_dtb_addr(0x0800_0000), Ok(()));
        let mut h = [0u8; FDT_HEADER_SIZE];
        assert!(dtb_size(0x0800_0000, &h)
            .unwrap_err()
            .contains("not the FDT magic"));
        h[..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&0x1_0000u32.to_be_bytes());
        assert_eq!(dtb_size(0x0800_0000, &h), Ok(0x1_0000));
        assert!(dtb_size(0x3fff_8000, &h)
            .unwrap_err()
            .contains("past the first GiB"));
    }

    #[test]
    #[allow(
        clippy::single_range_in_vec_init,
        reason = "lists of one range are meant"
    )]
    fn addresses_near_the_top_do_not_wrap() {
        // Found by fuzzing (the `dtfacts` target): x0 + 40 and x0 + totalsize wrapped. The
        // release word and its page at the top of the address space: found in review of
        // the same arithmetic.
        assert!(check_dtb_addr(0xffff_ffff_ffff_fff8).is_err());
        let mut h = [0u8; FDT_HEADER_SIZE];
        h[..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&0x1_0000u32.to_be_bytes());
        assert!(dtb_size(0xffff_ffff_ffff_0008, &h).is_err());
        let top = [0xffff_ffff_0000_0000..u64::MAX];
        assert!(check_release_addr(1, 0xffff_ffff_ffff_fff8, &top, &OWN).is_err());
        assert_eq!(
            release_pages(&[(0, Some(0xffff_ffff_ffff_fff8))]),
            [0xffff_ffff_ffff_f000..u64::MAX]
        );
    }

    #[test]
    fn the_console_must_be_in_the_peripheral_window() {
        let c = |base| Console {
            path: "/soc/serial@7e215040".into(),
            base,
            kind: ConsoleKind::MiniUart,
        };
        assert_eq!(
            console_uart(&c(0xfe21_5040)),
            Ok(ConsoleUart::MiniUart(0xfe21_5040))
        );
        let e = console_uart(&c(0x4_7e21_5040)).unwrap_err();
        assert!(e.contains("low-peripheral mode"), "{e}");
    }

    #[test]
    fn ranges_are_listed() {
        assert_eq!(ranges(&[]), "none");
        assert_eq!(
            ranges(&[0..0x1000, 0x2000..0x3000]),
            "0x0..0x1000, 0x2000..0x3000"
        );
    }
}
