//! Bad or borderline input to the EL1 boot stage on QEMU `virt`, each answered as
//! docs/CONTRACTS.md says (the console text and QEMU's exit status both checked):
//!
//! - an empty `-kernel` is refused, never run as the demo; an empty `-initrd` boots as no
//!   initrd, and the log says fw_cfg cannot tell the two apart;
//! - RAM too small for the firmware's own 2 MiB is said before any of it is used, and
//!   exactly 2 MiB runs the firmware, which then refuses the payload it has no room for;
//! - a FIT's DTB: the payload is told the machine's RAM (not the FIT's DTB's 16 GiB, nor
//!   none), and every `/memreserve/` and `/reserved-memory` range of it (`no-map` too) is
//!   avoided by the kernel, the initrd and the DTB;
//! - an initrd, or a DTB, that does not fit is named with its size and the RAM;
//! - reserved Image header flag bits are warned about, and the Image boots as the known
//!   bits say.
//!
//! The payloads: el2-client (which reports its RAM, initrd and DTB as it finds them) and a
//! tiny position-independent Image written here that prints a line and powers off.

use std::path::{Path, PathBuf};

use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use hypstub_tests::{
    boot, crc32c, el2_client, machine, pseudo_random_bytes, write_asset, Boot, ImageHeader,
};
use xtask::fit::write_fit;
use xtask::runner::QemuRun;

/// What the tiny payload prints once entered.
const TINY_ENTERED: &str = "tiny payload: entered";

/// Where tests write their inputs.
fn asset_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad_input")
}

/// Writes `bytes` to `name`: a name of one test's own, as tests run in parallel and a file
/// rewritten while another test's QEMU reads it would be read half written.
fn asset(name: &str, bytes: &[u8]) -> PathBuf {
    write_asset(&asset_dir(), name, bytes)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A position-independent arm64 Image (text_offset 0, image_size 4 KiB, `flags`) that
/// writes [`TINY_ENTERED`] to the PL011 and powers off with PSCI SYSTEM_OFF by SMC (it runs
/// at EL2, MMU off).
fn tiny_payload(flags: u64) -> Vec<u8> {
    let code: [u32; 10] = [
        0xd2a1_2001, // 0x40: movz x1, #0x0900, lsl #16   (the PL011)
        0x1000_0123, // 0x44: adr  x3, msg (0x68)
        0x3840_1462, // 0x48: ldrb w2, [x3], #1
        0x3400_0062, // 0x4c: cbz  w2, 0x58
        0xb900_0022, // 0x50: str  w2, [x1]
        0x17ff_fffd, // 0x54: b    0x48
        0x5280_0100, // 0x58: movz w0, #0x0008
        0x72b0_8000, // 0x5c: movk w0, #0x8400, lsl #16   (SYSTEM_OFF)
        0xd400_0003, // 0x60: smc  #0
        0x1400_0000, // 0x64: b    .
    ];
    let mut image = ImageHeader {
        code0: 0x1400_0010, // b 0x40
        code1: 0,
        text_offset: 0,
        image_size: 0x1000,
        flags,
    }
    .to_bytes()
    .to_vec();
    for w in code {
        image.extend_from_slice(&w.to_le_bytes());
    }
    assert_eq!(image.len(), 0x68);
    image.extend_from_slice(TINY_ENTERED.as_bytes());
    image.extend_from_slice(b"\r\n\0");
    image
}

/// The DTB QEMU writes for `run`'s machine, with its `/memory` replaced by `memory` (base,
/// size; none if `None`), `memreserve` added as `/memreserve/` entries and `no_map` as
/// `no-map` children of a new `/reserved-memory`.
fn fit_dtb(
    run: &QemuRun,
    name: &str,
    memory: Option<(u64, u64)>,
    memreserve: &[(u64, u64)],
    no_map: &[(u64, u64)],
) -> Vec<u8> {
    std::fs::create_dir_all(asset_dir()).unwrap();
    let qemu = hypstub_tests::qemu_dumped_dtb(run, &asset_dir().join(name));
    let fdt = dtoolkit::fdt::Fdt::new(&qemu).expect("QEMU's DTB parses");
    let mut t = DeviceTree::from_fdt(&fdt);
    let cells = |(a, b): (u64, u64)| -> Vec<u32> {
        vec![(a >> 32) as u32, a as u32, (b >> 32) as u32, b as u32]
    };
    let old = t.root.remove_child("memory@40000000");
    assert!(old.is_some(), "QEMU's DTB has /memory@40000000");
    if let Some(m) = memory {
        let mut node = DeviceTreeNode::new_unchecked("memory@40000000");
        node.add_property(DeviceTreeProperty::new_unchecked("device_type", "memory"));
        node.add_property(DeviceTreeProperty::new_unchecked("reg", cells(m)));
        t.root.add_child(node);
    }
    for &(base, size) in memreserve {
        t.memory_reservations
            .push(MemoryReservation::new(base, size));
    }
    if !no_map.is_empty() {
        let mut rm = DeviceTreeNode::new_unchecked("reserved-memory");
        rm.add_property(DeviceTreeProperty::new_unchecked("#address-cells", 2u32));
        rm.add_property(DeviceTreeProperty::new_unchecked("#size-cells", 2u32));
        rm.add_property(DeviceTreeProperty::new_unchecked("ranges", &[0u8; 0][..]));
        for &(base, size) in no_map {
            let mut node = DeviceTreeNode::new_unchecked(format!("keep@{base:x}"));
            node.add_property(DeviceTreeProperty::new_unchecked(
                "reg",
                cells((base, size)),
            ));
            node.add_property(DeviceTreeProperty::new_unchecked("no-map", &[0u8; 0][..]));
            rm.add_child(node);
        }
        t.root.add_child(rm);
    }
    t.to_dtb()
}

/// The `[start, end)` range el2-client printed after `prefix` (its `Region` format).
fn client_region(booted: &Boot, prefix: &str) -> (u64, u64) {
    let parse = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok();
    let found = booted.log().lines().find_map(|l| {
        let rest = l.split(prefix).nth(1)?.strip_prefix('[')?;
        let (a, rest) = rest.split_once(',')?;
        let (b, _) = rest.split_once(')')?;
        Some((parse(a)?, parse(b)?))
    });
    match found {
        Some(r) => r,
        None => {
            booted.assert_that(false, &format!("a line `{prefix}[start, end)`"));
            unreachable!()
        }
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

// ---- empty files ----

/// `-kernel` of 0 bytes: refused, and the demo never runs.
#[test]
fn empty_kernel_is_refused() {
    let empty = asset("empty-kernel.bin", &[]);
    boot("empty_kernel_is_refused", &machine().kernel(empty))
        .assert_rejected("fw_cfg: -kernel is an empty file (0 bytes)")
        .assert_lacks("demo:");
}

/// `-initrd` of 0 bytes: fw_cfg shows it as no initrd, and the log says so.
#[test]
fn empty_initrd_boots_as_none_and_says_so() {
    let kernel = asset("tiny-empty-initrd.bin", &tiny_payload(0b0010));
    let empty = asset("empty-initrd.bin", &[]);
    boot(
        "empty_initrd_boots_as_none_and_says_so",
        &machine().kernel(kernel).initrd(empty),
    )
    .assert_success()
    .assert_contains(
        "fw_cfg: no -initrd (an empty -initrd file looks the same in fw_cfg and is booted as none)",
    )
    .assert_lacks("initrd: ")
    .assert_relocated()
    .assert_contains(TINY_ENTERED);
}

// ---- RAM too small ----

/// Below 2 MiB: said from the entry, before the stub's RAM or the EL1 stage's is used; no
/// fault, a clean power-off.
#[test]
fn ram_too_small_for_the_firmware_is_said_before_it_is_used() {
    for (mem, kib) in [("1M", 1024), ("1536K", 1536)] {
        boot(
            &format!("ram_too_small_{mem}"),
            &machine().mem(mem),
        )
        .assert_success()
        .assert_contains(&format!(
            "hypstub: RAM too small: 2048 KiB needed for the firmware's own RAM, {kib} KiB given (QEMU -m): give the machine more RAM; powering off"
        ))
        .assert_lacks("fault")
        .assert_lacks("el2-stub: EL2 set up");
    }
}

/// Exactly 2 MiB: the firmware runs, and refuses the demo payload it has no RAM for.
#[test]
fn two_mib_runs_the_firmware_which_refuses_what_does_not_fit() {
    boot("two_mib", &machine().mem("2M"))
        .assert_lacks("RAM too small")
        .assert_contains("RAM 0x40000000..0x40200000 (2 MiB)")
        .assert_rejected("arm64 Image does not fit in RAM");
}

// ---- what does not fit ----

/// An initrd larger than the RAM: named as the user gave it, with its size and the RAM.
#[test]
fn initrd_larger_than_ram_is_named() {
    let kernel = asset("tiny-large-initrd.bin", &tiny_payload(0b0010));
    let initrd = asset("initrd-40MiB.bin", &vec![0u8; 40 << 20]);
    boot(
        "initrd_larger_than_ram_is_named",
        &machine().mem("32M").kernel(kernel).initrd(initrd),
    )
    .assert_rejected(
        "initrd: the -initrd file is 41943040 bytes (40.0 MiB) and does not fit in RAM 0x40000000..0x42000000 (32 MiB) after the kernel, which ends at 0x40201000",
    )
    .assert_lacks("not inside one RAM bank");
}

/// An initrd that fills RAM to its end leaves no room for the DTB: said so.
#[test]
fn dtb_without_room_is_named() {
    let kernel = asset("tiny-no-dtb-room.bin", &tiny_payload(0b0010));
    // The tiny payload goes to 0x4020_0000..0x4020_1000; the initrd fills the rest of 32 MiB.
    let initrd = asset(
        "initrd-fills-32M.bin",
        &vec![0u8; 0x4200_0000 - 0x4020_1000],
    );
    boot(
        "dtb_without_room_is_named",
        &machine().mem("32M").kernel(kernel).initrd(initrd),
    )
    .assert_contains("initrd: 31453184 bytes: destination 0x40201000..0x42000000")
    .assert_rejected("dtb: the payload's DTB is ")
    .assert_contains(
        "and does not fit in RAM 0x40000000..0x42000000 (32 MiB) after the kernel and initrd, which end at 0x42000000",
    );
}

// ---- a FIT's DTB ----

/// el2-client in a FIT with a 1 MiB ramdisk and a DTB that claims `memory` (or none) and
/// reserves the pages right after the client (no-map), where the initrd would go, and the
/// pages right after the initrd (/memreserve/), where the DTB would go: the client is told
/// the machine's 1 GiB, and the initrd and DTB each land just past their reservation.
fn fit_dtb_case(name: &str, memory: Option<(u64, u64)>) {
    let client = read(el2_client());
    let image_size = u64::from_le_bytes(client[0x10..0x18].try_into().unwrap());
    let image_end = (0x4008_0000 + image_size).next_multiple_of(4096);
    let no_map = (image_end, 1 << 20);
    let ramdisk = pseudo_random_bytes(1 << 20, 0xd7b_0001);
    let initrd_at = no_map.0 + no_map.1;
    let memreserve = (initrd_at + (1 << 20), 64 << 10);
    let dtb_at = memreserve.0 + memreserve.1;

    let base = machine().smp(2).mem("1G");
    let dtb = fit_dtb(
        &base,
        &format!("{name}.dtb"),
        memory,
        &[memreserve],
        &[no_map],
    );
    let itb = asset(
        &format!("{name}.itb"),
        &write_fit(&client, Some(&ramdisk), Some(&dtb), name),
    );
    let run = base
        .kernel(itb)
        .append(format!("client.initrd_crc={:#010x}", crc32c(&ramdisk)));
    let booted = boot(name, &run);
    booted
        .assert_success()
        .assert_contains("dtb: using the FIT's device tree")
        .assert_relocated()
        .assert_contains("el2-client: RAM [0x40000000, 0x80000000)")
        .assert_contains("el2-client: ok initrd_intact")
        .assert_contains("el2-client: PASS")
        .assert_lacks("el2-client: FAIL");
    let image = client_region(&booted, "el2-client: image at ");
    let initrd = client_region(&booted, "el2-client: initrd at ");
    let dtb = client_region(&booted, "el2-client: DTB at ");
    for (what, r) in [("image", image), ("initrd", initrd), ("DTB", dtb)] {
        for (kind, res) in [("no-map", no_map), ("/memreserve/", memreserve)] {
            let res = (res.0, res.0 + res.1);
            booted.assert_that(
                !overlaps(r, res),
                &format!("the {what} {r:x?} clear of the {kind} range {res:x?}"),
            );
        }
    }
    booted
        .assert_that(
            initrd.0 == initrd_at,
            &format!("the initrd at {initrd_at:#x}, just past the no-map range"),
        )
        .assert_that(
            dtb.0 == dtb_at,
            &format!("the DTB at {dtb_at:#x}, just past the /memreserve/ range"),
        );
}

#[test]
fn fit_dtb_claiming_16_gib_gets_the_machines_ram_and_its_reservations_are_avoided() {
    fit_dtb_case("fit_dtb_16g", Some((0x4000_0000, 16 << 30)));
}

#[test]
fn fit_dtb_without_memory_gets_the_machines_ram_and_its_reservations_are_avoided() {
    fit_dtb_case("fit_dtb_no_memory", None);
}

/// A FIT's DTB that reserves where the kernel would go (0x4020_0000, no-map; then
/// /memreserve/d up to 0x4060_0000): the kernel goes to the next free 2 MiB base.
#[test]
fn fit_dtb_reservations_move_the_kernel() {
    let base = machine();
    let dtb = fit_dtb(
        &base,
        "fit_kernel_moves.dtb",
        Some((0x4000_0000, 512 << 20)),
        &[(0x4040_0000, 2 << 20)],
        &[(0x4020_0000, 2 << 20)],
    );
    let itb = asset(
        "fit_kernel_moves.itb",
        &write_fit(&tiny_payload(0b0010), None, Some(&dtb), "kernel moves"),
    );
    boot("fit_dtb_reservations_move_the_kernel", &base.kernel(itb))
        .assert_success()
        .assert_contains("destination 0x40600000..0x40601000")
        .assert_relocated()
        .assert_contains(TINY_ENTERED);
}

// ---- the Image header ----

/// Flag bits booting.rst reserves: a warning naming them; the Image boots.
#[test]
fn reserved_image_flags_are_warned_about() {
    let kernel = asset("tiny-flags.bin", &tiny_payload(0b0010 | 1 << 10));
    boot("reserved_image_flags_are_warned_about", &machine().kernel(kernel))
        .assert_success()
        .assert_contains(
            "WARN  payload: the Image header sets flag bits 0x400, which booting.rst reserves (bits 4-63)",
        )
        .assert_relocated()
        .assert_contains(TINY_ENTERED);
}
