//! The checks, one function per step of the client (see `main.rs`), and the [`Checker`]
//! that prints and counts their results.
//!
//! Each result is one console line, `el2-client: ok <name>` or
//! `el2-client: FAIL <name>: got 0x.. expected ..`; names are stable (tests grep for them).
//! Lines without `ok`/`FAIL` are information for whoever reads the log.

use core::hint::black_box;

use crate::cmdline;
use crate::image::{BLOB, BLOB_CRC32C, LINK_BASE, RAM_BASE, TEXT_OFFSET};
use crate::regs;
use crate::start::{self, IMAGE_FLAGS, IMAGE_MAGIC};
use client_support::console::text;
use client_support::crc32c;
use client_support::fdt::{Fdt, FDT_MAGIC, MAX_SIZE};
use client_support::region::Region;
use client_support::say;

/// DAIF with D, A, I and F all set (bits 9:6).
const DAIF_MASKED: u64 = 0x3c0;
/// SCTLR_ELx.M, the stage 1 MMU enable.
const SCTLR_M: u64 = 1 << 0;
/// SCTLR_ELx.C, the data cache enable.
const SCTLR_C: u64 = 1 << 2;
/// SCTLR_ELx.I, the instruction cache enable (booting.rst allows either value).
const SCTLR_I: u64 = 1 << 12;
/// The option the test passes with the CRC32C of the initrd file.
const INITRD_CRC_OPTION: &[u8] = b"client.initrd_crc=";
/// Options addressed to the firmware, which it must not pass on to the payload.
const FIRMWARE_OPTION_PREFIX: &[u8] = b"hypstub.";
/// How many RAM ranges the client keeps from the DTB's memory nodes.
const MAX_RAM_RANGES: usize = 8;

pub use client_support::checks::Checker;

/// The machine state at entry, as `entry.S` captured it before anything could change it.
pub struct EntryState {
    /// x0..x3 as the firmware set them.
    pub regs: [u64; 4],
    /// CurrentEL.EL.
    pub el: u64,
    /// DAIF.
    pub daif: u64,
    /// SCTLR_ELx of the entry EL (SCTLR_EL2 when entered at EL2).
    pub sctlr: u64,
}

/// The device tree the firmware passed in x0, once its header has been checked.
pub struct Dtb {
    /// Where it is: [x0, x0 + totalsize).
    pub region: Region,
    /// Its contents.
    pub fdt: Fdt<'static>,
}

/// What the client found out about the initrd while checking the memory layout.
pub enum Initrd {
    /// No `linux,initrd-*` properties (or no device tree to look in).
    Absent,
    /// A range in RAM that overlaps nothing else the client knows of: safe to read.
    Readable(Region),
    /// Named but unusable (outside RAM, overlapping, or malformed): `no_overlap` said why.
    Unusable,
}

/// Step 1: the client's own image is where it is linked, and its header is what link.ld
/// and build.rs made it (the loader did not move or damage the first bytes).
pub fn image(t: &mut Checker) {
    // entry.S already stopped if these differ; this line documents where the client ran.
    t.expect_eq("load_address", regs::runtime_base(), LINK_BASE);
    let (start, end) = start::linked_image();
    say!(
        "el2-client: image at {} (text_offset {TEXT_OFFSET:#x}, RAM base {RAM_BASE:#x})",
        Region { start, end }
    );
    // SAFETY: the header is the first 64 bytes of the client's own loaded image (start is
    // 8-byte aligned: link.ld puts it at a 4 KiB-aligned address), and nothing writes them.
    let field = |offset: u64| unsafe { ((start + offset) as *const u64).read_volatile() };
    let fields = [
        ("text_offset", field(0x08), TEXT_OFFSET),
        ("image_size", field(0x10), end - start),
        ("flags", field(0x18), IMAGE_FLAGS),
        ("magic", field(0x38) & 0xffff_ffff, IMAGE_MAGIC.into()),
    ];
    match fields.iter().find(|(_, got, expected)| got != expected) {
        None => t.pass("image_header"),
        Some((name, got, expected)) => t.fail(
            "image_header",
            format_args!("{name}: got {got:#x} expected {expected:#x}"),
        ),
    }
}

/// Step 2, booting.rst's entry contract at EL2: x1..x3 = 0, DAIF masked, MMU and data
/// cache off.
pub fn entry_state(t: &mut Checker, entry: &EntryState) {
    t.expect_eq("entry_el", entry.el, 2);
    for (i, &value) in entry.regs.iter().enumerate().skip(1) {
        t.expect_eq(format_args!("entry_x{i}"), value, 0);
    }
    t.expect_eq("entry_daif", entry.daif, DAIF_MASKED);
    let el = entry.el;
    let sctlr = entry.sctlr;
    say!(
        "el2-client: SCTLR_EL{el}={sctlr:#x} (M={} C={} I={})",
        u8::from(sctlr & SCTLR_M != 0),
        u8::from(sctlr & SCTLR_C != 0),
        u8::from(sctlr & SCTLR_I != 0),
    );
    t.expect_eq(format_args!("entry_sctlr_el{el}_m"), sctlr & SCTLR_M, 0);
    t.expect_eq(format_args!("entry_sctlr_el{el}_c"), sctlr & SCTLR_C, 0);
}

/// Step 3: x0 is the physical address of a device tree: 8-byte aligned, magic 0xd00dfeed,
/// totalsize at most 2 MiB (booting.rst), and its structure walks cleanly. Returns it when
/// it can be read.
pub fn device_tree(t: &mut Checker, x0: u64) -> Option<Dtb> {
    let aligned = x0.is_multiple_of(8);
    t.expect(
        "entry_dtb_aligned",
        aligned,
        x0,
        "an 8-byte aligned address",
    );
    // Read x0 only where a DTB can be: aligned, in RAM (the DTB's own memory node is not
    // known yet, so "in RAM" here means at or above its base).
    if !aligned || x0 < RAM_BASE {
        t.fail(
            "entry_dtb_magic",
            format_args!("x0 = {x0:#x} is not an aligned RAM address; not read"),
        );
        return None;
    }
    // SAFETY: `x0` is 8-byte aligned and in RAM (checked above), so this is an aligned read
    // of memory that exists; the device tree is big-endian.
    let magic = u32::from_be(unsafe { (x0 as *const u32).read_volatile() });
    if !t.expect_eq("entry_dtb_magic", magic.into(), FDT_MAGIC.into()) {
        return None;
    }
    // SAFETY: x0 is aligned RAM (above), so its first 8 bytes are readable.
    let total = match unsafe { Fdt::total_size_at(x0 as usize) } {
        Ok(total) => total,
        Err(err) => {
            t.fail("dtb_size", err);
            return None;
        }
    };
    if !t.expect(
        "dtb_size",
        total <= MAX_SIZE,
        total as u64,
        format_args!("<= {MAX_SIZE:#x}"),
    ) {
        return None;
    }
    let Some(region) = Region::from_len(x0, total as u64) else {
        t.fail("dtb_readable", "x0 + totalsize wraps around");
        return None;
    };
    say!("el2-client: DTB at {region}");
    // SAFETY: a DTB header is at x0 (magic checked above), its totalsize is at most 2 MiB,
    // and the firmware leaves the blob in RAM for the payload; nothing else writes it while
    // the client runs. (Were part of it not RAM, the read faults and the client's vectors
    // report it.)
    let fdt = match unsafe { Fdt::from_addr(x0 as usize) }.and_then(|fdt| {
        fdt.validate()?;
        Ok(fdt)
    }) {
        Ok(fdt) => fdt,
        Err(err) => {
            t.fail("dtb_readable", err);
            return None;
        }
    };
    t.pass("dtb_readable");
    Some(Dtb { region, fdt })
}

/// Step 4: the CRC32C in use is right (the check value, and the instructions agree with the
/// table on an unaligned stretch), and the 4 MiB block reads back with the CRC32C build.rs
/// computed: the whole image was loaded, unchanged.
pub fn image_intact(t: &mut Checker) {
    let hw = regs::has_crc32();
    say!(
        "el2-client: CRC32C {}",
        if hw {
            "with the CRC32C instructions (FEAT_CRC32)"
        } else {
            "with a table (no FEAT_CRC32)"
        }
    );
    let check = crc32c(hw, b"123456789");
    let mut selftest_ok = t.expect_eq("crc32c_selftest", check.into(), 0xe306_9283);
    if hw && selftest_ok {
        // Odd start and length, so the head, doubleword and tail paths all run.
        let stretch = &black_box(&BLOB)[3..3 + 4099];
        let table = crc32c::crc32c(stretch);
        let instructions = crc32c(true, stretch);
        selftest_ok = t.expect_eq(
            "crc32c_instructions_match_table",
            instructions.into(),
            table.into(),
        );
    }
    if !selftest_ok {
        t.fail("image_intact", "not checked: the CRC32C self-test failed");
        return;
    }
    // black_box: the CRC must be computed from the bytes in memory, not from what the
    // compiler knows the block should contain.
    let crc = crc32c(hw, black_box(&BLOB));
    t.expect_eq("image_intact", crc.into(), BLOB_CRC32C.into());
}

/// Step 5: the command line the payload sees carries no option addressed to the firmware
/// (`hypstub.*`): the firmware consumes its own options. Returns the command line.
pub fn bootargs_clean(t: &mut Checker, dtb: Option<&Dtb>) -> Option<&'static [u8]> {
    let Some(dtb) = dtb else {
        t.fail(
            "bootargs_clean",
            "no device tree to read /chosen/bootargs from",
        );
        return None;
    };
    let args = match dtb.fdt.bootargs() {
        Ok(args) => args.unwrap_or_default(),
        Err(err) => {
            t.fail("bootargs_clean", err);
            return None;
        }
    };
    say!("el2-client: bootargs \"{}\"", text(args));
    match cmdline::word_with_prefix(args, FIRMWARE_OPTION_PREFIX) {
        None => t.pass("bootargs_clean"),
        Some(word) => t.fail(
            "bootargs_clean",
            format_args!("the firmware's option {} reached the payload", text(word)),
        ),
    }
    Some(args)
}

/// Step 6: the client's image, the DTB and the initrd each lie in RAM (per the DTB's memory
/// nodes) and none overlaps another. Returns what it found out about the initrd.
pub fn no_overlap(t: &mut Checker, dtb: Option<&Dtb>) -> Initrd {
    const NAME: &str = "no_overlap";
    let Some(dtb) = dtb else {
        t.fail(NAME, "no device tree to read the memory map from");
        return Initrd::Absent;
    };
    let mut ram = [Region::EMPTY; MAX_RAM_RANGES];
    let ram = match dtb.fdt.memory(&mut ram) {
        Ok(0) => {
            t.fail(NAME, "no memory node in the device tree");
            return Initrd::Unusable;
        }
        Ok(count) => &ram[..count.min(MAX_RAM_RANGES)],
        Err(err) => {
            t.fail(NAME, format_args!("memory nodes: {err}"));
            return Initrd::Unusable;
        }
    };
    for bank in ram {
        say!("el2-client: RAM {bank}");
    }
    let initrd = match dtb.fdt.initrd() {
        Ok(initrd) => initrd,
        Err(err) => {
            t.fail(NAME, format_args!("initrd: {err}"));
            return Initrd::Unusable;
        }
    };
    if let Some(initrd) = initrd {
        say!("el2-client: initrd at {initrd} ({:#x} bytes)", initrd.len());
    }

    let (start, end) = start::linked_image();
    let mut named = [
        ("image", Region { start, end }),
        ("DTB", dtb.region),
        ("", Region::EMPTY),
    ];
    let count = if let Some(initrd) = initrd {
        named[2] = ("initrd", initrd);
        3
    } else {
        2
    };
    let named = &named[..count];
    let overlap = named.iter().enumerate().find_map(|(i, a)| {
        named[i + 1..]
            .iter()
            .find(|b| a.1.overlaps(&b.1))
            .map(|b| (a, b))
    });
    if let Some((name, region)) = named.iter().find(|(_, region)| !region.within(ram)) {
        t.fail(NAME, format_args!("{name} {region} is not inside RAM"));
    } else if let Some(((a, ra), (b, rb))) = overlap {
        t.fail(NAME, format_args!("{a} {ra} overlaps {b} {rb}"));
    } else {
        t.pass(NAME);
        return initrd.map_or(Initrd::Absent, Initrd::Readable);
    }
    initrd.map_or(Initrd::Absent, |_| Initrd::Unusable)
}

/// Step 7: when the test says what the initrd's CRC32C is (`client.initrd_crc=0x...`), the
/// initrd the DTB points to has exactly that CRC32C: loaded whole, where the DTB says.
pub fn initrd_intact(t: &mut Checker, bootargs: Option<&[u8]>, initrd: Initrd) {
    const NAME: &str = "initrd_intact";
    let Some(bootargs) = bootargs else {
        t.fail(NAME, "no command line to read client.initrd_crc= from");
        return;
    };
    let Some(value) = cmdline::value_of(bootargs, INITRD_CRC_OPTION) else {
        t.pass("initrd (none expected)");
        return;
    };
    let Some(expected) = cmdline::parse_hex_u32(value) else {
        t.fail(
            NAME,
            format_args!(
                "client.initrd_crc={} is not a 32-bit hex number",
                text(value)
            ),
        );
        return;
    };
    let region = match initrd {
        Initrd::Readable(region) => region,
        Initrd::Absent => {
            t.fail(
                NAME,
                "no /chosen/linux,initrd-start and -end in the device tree",
            );
            return;
        }
        Initrd::Unusable => {
            t.fail(NAME, "the initrd was not read (see no_overlap)");
            return;
        }
    };
    // SAFETY: the range lies inside RAM per the DTB and overlaps neither the client's image
    // (code, data, stacks) nor the DTB (no_overlap, above); nothing writes it while the
    // client runs, and bytes have no alignment requirement.
    let bytes =
        unsafe { core::slice::from_raw_parts(region.start as *const u8, region.len() as usize) };
    let crc = crc32c(regs::has_crc32(), bytes);
    t.expect_eq(NAME, crc.into(), expected.into());
}

/// The CRC32C of `bytes`, with the CRC32C instructions when `hw` (the caller has checked
/// FEAT_CRC32), with the table otherwise.
fn crc32c(hw: bool, bytes: &[u8]) -> u32 {
    if hw {
        // SAFETY: `hw` is only true when ID_AA64ISAR0_EL1 says FEAT_CRC32 is implemented,
        // which is what the "crc" target feature of update_hw needs.
        crc32c::finish(unsafe { crc32c::update_hw(crc32c::START, bytes) })
    } else {
        crc32c::crc32c(bytes)
    }
}
