//! The DTB facts a board takes from the DTB it is given (a Raspberry Pi 4's firmware fills
//! in RAM, the console and the CPUs): `loader::dt`'s readers and the Pi 4's checks of what
//! they return (`hypstub_boards::rpi4::cpus`).
//!
//! Input: a DTB (its `totalsize` bytes), then the parameters: the x0 the firmware passed,
//! and hypstub's own RAM and image.
//!
//! Checked: RAM is non-empty, sorted, each bank non-empty and apart from the next;
//! reservations and the initrd are ranges that do not run backwards; the command line holds
//! no NUL; a console has a full path, and the Pi accepts it exactly when it lies in the
//! peripherals it maps, with the driver of its kind; the CPUs are non-empty and each release
//! address has its page listed; the Pi's checks of x0, the DTB's size and each
//! `cpu-release-addr` accept exactly what their documentation says (nothing that wraps
//! around the address space).

use hypstub_boards::console::ConsoleUart;
use hypstub_boards::rpi4::{cpus, DEVICES, EARLY_RAM_END};
use loader::dt::{ConsoleKind, Dtb, FDT_HEADER_SIZE, FDT_MAGIC};

use crate::input::{overlaps, Reader, Writer};
use crate::seeds::{Inputs, Seeds};

fn totalsize(data: &[u8]) -> usize {
    data.get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .min(data.len())
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let split = totalsize(data).max(FDT_HEADER_SIZE.min(data.len()));
    let (blob, params) = data.split_at(split);
    let mut r = Reader::new(params);
    let x0 = r.u64();
    let own = r.range();

    // x0 and the header, as the Pi checks them before reading the DTB.
    let addr_ok = x0 != 0
        && x0.is_multiple_of(8)
        && x0
            .checked_add(FDT_HEADER_SIZE as u64)
            .is_some_and(|e| e <= EARLY_RAM_END);
    assert_eq!(
        cpus::check_dtb_addr(x0).is_ok(),
        addr_ok,
        "check_dtb_addr({x0:#x})"
    );
    if let Some(header) = blob.first_chunk::<FDT_HEADER_SIZE>() {
        let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let size = u64::from(u32::from_be_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        let ok = magic == FDT_MAGIC && x0.checked_add(size).is_some_and(|e| e <= EARLY_RAM_END);
        let got = cpus::dtb_size(x0, header);
        assert_eq!(got.is_ok(), ok, "dtb_size({x0:#x}, {size:#x}): {got:?}");
        if let Ok(got) = got {
            assert_eq!(got, size);
        }
    }

    let mut buf = blob.to_vec();
    let Ok(dtb) = Dtb::new(&mut buf) else {
        return;
    };
    let ram = dtb.memory();
    if let Ok(ram) = &ram {
        assert!(!ram.is_empty());
        for w in ram.windows(2) {
            assert!(
                w[0].end < w[1].start,
                "RAM banks {:#x?} are not sorted and apart",
                w
            );
        }
        assert!(ram.iter().all(|b| b.start < b.end));
    }
    if let Ok(reserved) = dtb.reserved() {
        assert!(
            reserved.iter().all(|x| x.start < x.end),
            "an empty reservation: {reserved:#x?}"
        );
    }
    if let Ok(Some(i)) = dtb.initrd() {
        assert!(i.start <= i.end);
    }
    if let Ok(Some(args)) = dtb.bootargs() {
        assert!(!args.contains('\0'));
    }
    if let Ok(c) = dtb.console() {
        assert!(c.path.starts_with('/'), "console path {}", c.path);
        match cpus::console_uart(&c) {
            Ok(uart) => {
                assert!(
                    DEVICES.contains(&c.base),
                    "console {:#x} outside the peripherals",
                    c.base
                );
                let expected = match c.kind {
                    ConsoleKind::Pl011 => ConsoleUart::Pl011(c.base as usize),
                    ConsoleKind::MiniUart => ConsoleUart::MiniUart(c.base as usize),
                };
                assert_eq!(uart, expected);
            }
            Err(e) => assert!(!DEVICES.contains(&c.base), "{e}"),
        }
    }
    let Ok(cpu_list) = dtb.spin_table() else {
        return;
    };
    assert!(!cpu_list.is_empty());
    let pages = cpus::release_pages(&cpu_list);
    let releases: Vec<u64> = cpu_list.iter().filter_map(|&(_, r)| r).collect();
    assert_eq!(pages.len(), releases.len());
    for (p, &a) in pages.iter().zip(&releases) {
        assert!(p.start % 4096 == 0 && p.contains(&a));
    }
    let ram = ram.unwrap_or_default();
    for (i, &a) in releases.iter().enumerate() {
        let word = a.checked_add(8).map(|e| a..e);
        let ok = a % 8 == 0
            && word.as_ref().is_some_and(|w| {
                ram.iter().any(|b| b.start <= w.start && w.end <= b.end) && !overlaps(w, &own)
            });
        let got = cpus::check_release_addr(i, a, &ram, &own);
        assert_eq!(
            got.is_ok(),
            ok,
            "check_release_addr({a:#x}, RAM {ram:#x?}, own {own:#x?}): {got:?}"
        );
    }
    for &(mpidr, _) in &cpu_list {
        assert!(cpus::cpu_node_name(mpidr).starts_with("cpu@"));
    }
}

/// Each DTB of the inputs, with x0 where the Pi firmware puts it and hypstub's RAM.
pub fn seeds(inputs: &Inputs) -> Seeds {
    inputs
        .dtb
        .iter()
        .map(|(name, dtb)| {
            let dtb = &dtb[..totalsize(dtb)];
            let seed = Writer::default()
                .bytes(dtb)
                .u64(0x0800_0000)
                .range(0x1000..0x20_0000)
                .done();
            (name.clone(), seed)
        })
        .collect()
}
