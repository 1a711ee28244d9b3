//! `loader::fdt` against the DTB QEMU 10 generates for the machine hypstub
//! targets, and against corrupted copies of it.
//!
//! `data/qemu-virt-gicv3.dtb` came from
//! `qemu-system-aarch64 -M virt,virtualization=on,gic-version=3,dumpdtb=... -cpu max -m 512M -smp 4`
//! (QEMU 10.0.2). Like the blob QEMU puts in RAM, its `totalsize` is the
//! whole 1 MiB area, most of it free space.

use dtoolkit::fdt::Fdt;
use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::{Node, Property};
use loader::fdt::{Dtb, Edits, FdtError, PsciMethod, FDT_HEADER_SIZE};

const QEMU_VIRT: &[u8] = include_bytes!("data/qemu-virt-gicv3.dtb");
const MIB: usize = 1 << 20;
/// `-m 512M` on QEMU virt.
const QEMU_RAM: core::ops::Range<u64> = 0x4000_0000..0x6000_0000;

/// The QEMU blob re-serialised without its free space, so that it has no
/// room to grow and every byte of it matters.
fn packed() -> Vec<u8> {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    dtb.apply(&Edits::new()).unwrap();
    dtb.as_bytes().to_vec()
}

fn reservations(dtb: &Dtb<'_>) -> Vec<(u64, u64)> {
    dtb.fdt()
        .memory_reservations()
        .map(|r| (r.address(), r.size()))
        .collect()
}

#[test]
fn reads_qemu_virt() {
    assert_eq!(QEMU_VIRT.len(), MIB);
    let mut buf = QEMU_VIRT.to_vec();
    let dtb = Dtb::new(&mut buf).unwrap();
    assert_eq!(dtb.size(), MIB);
    assert_eq!(dtb.capacity(), MIB);
    assert_eq!(dtb.memory().unwrap(), [QEMU_RAM]);
    assert_eq!(dtb.psci_method(), Ok(Some(PsciMethod::Smc)));
    assert_eq!(dtb.cpu_count(), Ok(4));
    assert_eq!(dtb.bootargs(), Ok(None));
    assert_eq!(dtb.initrd(), Ok(None));
    assert!(reservations(&dtb).is_empty());
}

#[test]
fn set_bootargs_and_read_back() {
    let mut buf = QEMU_VIRT.to_vec();
    let before = DeviceTree::from_fdt(&Fdt::new(QEMU_VIRT).unwrap());
    let mut dtb = Dtb::new(&mut buf).unwrap();
    dtb.set_bootargs("console=ttyAMA0 earlycon root=/dev/vda")
        .unwrap();
    assert_eq!(
        dtb.bootargs(),
        Ok(Some("console=ttyAMA0 earlycon root=/dev/vda"))
    );
    // Packed: the free space inside the old totalsize is gone.
    assert!(dtb.size() < 16 * 1024, "{}", dtb.size());
    // Everything else is as it was.
    assert_eq!(dtb.memory().unwrap(), [QEMU_RAM]);
    assert_eq!(dtb.cpu_count(), Ok(4));
    assert_eq!(dtb.psci_method(), Ok(Some(PsciMethod::Smc)));
    let mut expected = before.clone();
    expected.find_node_mut("/chosen").unwrap().add_property(
        DeviceTreeProperty::new("bootargs", "console=ttyAMA0 earlycon root=/dev/vda").unwrap(),
    );
    assert_eq!(DeviceTree::from_fdt(&dtb.fdt()), expected);

    // Replacing it again, with a longer and then a shorter line.
    let long = "x".repeat(3000);
    dtb.set_bootargs(&long).unwrap();
    assert_eq!(dtb.bootargs(), Ok(Some(long.as_str())));
    dtb.set_bootargs("").unwrap();
    assert_eq!(dtb.bootargs(), Ok(Some("")));
    assert_eq!(Dtb::new(&mut buf).unwrap().bootargs(), Ok(Some("")));
}

#[test]
fn add_memreserve_and_read_back() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    dtb.add_memreserve(0x4010_0000, 0x1_0000).unwrap();
    assert_eq!(reservations(&dtb), [(0x4010_0000, 0x1_0000)]);
    dtb.add_memreserve(0x5000_0000, 0x20_0000).unwrap();
    assert_eq!(
        reservations(&dtb),
        [(0x4010_0000, 0x1_0000), (0x5000_0000, 0x20_0000)]
    );
    // As dtoolkit and any other reader see it after a fresh look.
    let size = dtb.size();
    let fdt = Fdt::new(&buf[..size]).unwrap();
    assert_eq!(fdt.memory_reservations().count(), 2);
}

#[test]
fn initrd_properties() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    dtb.set_initrd(0x4800_0000, 0x4880_0000).unwrap();
    assert_eq!(dtb.initrd(), Ok(Some(0x4800_0000..0x4880_0000)));
    let chosen = dtb.fdt().find_node("/chosen").unwrap();
    use dtoolkit::{Node, Property};
    let start = chosen.property("linux,initrd-start").unwrap();
    let end = chosen.property("linux,initrd-end").unwrap();
    assert_eq!(start.value_as::<u64>(), Ok(0x4800_0000));
    assert_eq!(end.value_as::<u64>(), Ok(0x4880_0000));
}

#[test]
fn all_edits_in_one_rewrite() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    dtb.apply(
        &Edits::new()
            .bootargs("quiet")
            .memreserve(0x4010_0000, 0x1_0000)
            .initrd(0x4800_0000, 0x4900_0000),
    )
    .unwrap();
    assert_eq!(dtb.bootargs(), Ok(Some("quiet")));
    assert_eq!(reservations(&dtb), [(0x4010_0000, 0x1_0000)]);
    assert_eq!(dtb.initrd(), Ok(Some(0x4800_0000..0x4900_0000)));
}

#[test]
fn edit_that_does_not_fit_leaves_buffer_untouched() {
    let mut buf = packed();
    let len = buf.len();
    let original = buf.clone();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert_eq!(dtb.capacity(), len);
    let err = dtb.set_bootargs("console=ttyAMA0").unwrap_err();
    let FdtError::DoesNotFit { needed, capacity } = err else {
        panic!("{err:?}");
    };
    assert!(needed > len);
    assert_eq!(capacity, len);
    let msg = err.to_string();
    assert!(msg.contains("does not fit in the DTB area"), "{msg}");
    assert!(msg.contains(&needed.to_string()), "{msg}");
    assert!(msg.contains(&len.to_string()), "{msg}");
    assert!(matches!(
        dtb.add_memreserve(0x4010_0000, 0x1000),
        Err(FdtError::DoesNotFit { .. })
    ));
    // Still readable, still the same.
    assert_eq!(dtb.cpu_count(), Ok(4));
    assert_eq!(buf, original);

    // A few bytes of room are not enough for a long line either.
    let mut buf = original.clone();
    buf.resize(len + 16, 0xa5);
    let before = buf.clone();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert!(matches!(
        dtb.set_bootargs("console=ttyAMA0 root=/dev/vda"),
        Err(FdtError::DoesNotFit { .. })
    ));
    assert_eq!(buf, before);
}

#[test]
fn capacity_is_capped_at_2_mib() {
    let mut buf = packed();
    buf.resize(3 * MIB, 0);
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert_eq!(dtb.capacity(), 2 * MIB);
    let long = "y".repeat(2 * MIB);
    assert!(matches!(
        dtb.set_bootargs(&long),
        Err(FdtError::DoesNotFit {
            capacity: 0x20_0000,
            ..
        })
    ));
}

#[test]
fn wrong_magic() {
    let mut buf = QEMU_VIRT.to_vec();
    buf[0] = 0xd1;
    let err = Dtb::new(&mut buf).unwrap_err();
    assert_eq!(err, FdtError::BadMagic { found: 0xd10d_feed });
    assert!(err.to_string().contains("0xd10dfeed"));
    assert!(err.to_string().contains("0xd00dfeed"));
}

#[test]
fn totalsize_larger_than_buffer() {
    let mut buf = QEMU_VIRT[..MIB - 1].to_vec();
    let err = Dtb::new(&mut buf).unwrap_err();
    assert_eq!(
        err,
        FdtError::TooLarge {
            totalsize: MIB,
            capacity: MIB - 1
        }
    );
    assert!(err.to_string().contains("1048576"));
    assert!(err.to_string().contains("1048575"));
    let mut buf = packed();
    buf[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(Dtb::new(&mut buf), Err(FdtError::TooLarge { .. })));
}

#[test]
fn too_small_for_header() {
    for len in 0..FDT_HEADER_SIZE {
        let mut buf = QEMU_VIRT[..len].to_vec();
        assert_eq!(
            Dtb::new(&mut buf).unwrap_err(),
            FdtError::TooSmall { capacity: len }
        );
    }
}

/// Every reader and (with `edit`) an edit, on whatever `Dtb::new` accepted:
/// none may panic. Returns whether the blob was accepted.
fn exercise(buf: &mut [u8], edit: bool) -> bool {
    let Ok(mut dtb) = Dtb::new(buf) else {
        return false;
    };
    let _ = dtb.memory();
    let _ = dtb.bootargs();
    let _ = dtb.initrd();
    let _ = dtb.psci_method();
    let _ = dtb.cpu_count();
    let _ = dtb.fdt().memory_reservations().count();
    if !edit {
        return true;
    }
    let _ = dtb.apply(
        &Edits::new()
            .bootargs("console=ttyAMA0")
            .memreserve(0x4010_0000, 0x1_0000)
            .initrd(0x4800_0000, 0x4900_0000),
    );
    let _ = dtb.cpu_count();
    true
}

#[test]
fn truncated_at_every_length() {
    let blob = packed();
    for len in 0..blob.len() {
        // The buffer ends early: totalsize no longer fits.
        let mut buf = blob[..len].to_vec();
        assert!(Dtb::new(&mut buf).is_err(), "{len}");
        // The header agrees with the shorter blob: the structure or strings
        // block is cut.
        let mut buf = blob[..len].to_vec();
        if let Some(totalsize) = buf.get_mut(4..8) {
            totalsize.copy_from_slice(&(len as u32).to_be_bytes());
        }
        assert!(!exercise(&mut buf, true), "accepted at {len} bytes");
    }
}

/// A small tree with what the readers look for and a memory reservation,
/// so that a byte flip anywhere in it is likely to matter.
fn small_tree() -> Vec<u8> {
    let mut tree = DeviceTree::new();
    tree.memory_reservations
        .push(MemoryReservation::new(0x4010_0000, 0x1_0000));
    let root = &mut tree.root;
    root.add_property(DeviceTreeProperty::new("#address-cells", 2u32).unwrap());
    root.add_property(DeviceTreeProperty::new("#size-cells", 2u32).unwrap());
    root.add_property(DeviceTreeProperty::new("compatible", "linux,dummy-virt").unwrap());
    root.add_child(
        DeviceTreeNode::builder("memory@40000000")
            .unwrap()
            .property(DeviceTreeProperty::new("device_type", "memory").unwrap())
            .property(
                DeviceTreeProperty::new("reg", vec![0u32, 0x4000_0000, 0, 0x2000_0000]).unwrap(),
            )
            .build(),
    );
    let mut cpus = DeviceTreeNode::builder("cpus")
        .unwrap()
        .property(DeviceTreeProperty::new("#address-cells", 1u32).unwrap())
        .property(DeviceTreeProperty::new("#size-cells", 0u32).unwrap())
        .build();
    for i in 0..2u32 {
        cpus.add_child(
            DeviceTreeNode::builder(format!("cpu@{i}"))
                .unwrap()
                .property(DeviceTreeProperty::new("device_type", "cpu").unwrap())
                .property(DeviceTreeProperty::new("reg", i).unwrap())
                .property(DeviceTreeProperty::new("enable-method", "psci").unwrap())
                .build(),
        );
    }
    root.add_child(cpus);
    root.add_child(
        DeviceTreeNode::builder("psci")
            .unwrap()
            .property(DeviceTreeProperty::new("compatible", "arm,psci-1.0").unwrap())
            .property(DeviceTreeProperty::new("method", "smc").unwrap())
            .build(),
    );
    root.add_child(
        DeviceTreeNode::builder("chosen")
            .unwrap()
            .property(DeviceTreeProperty::new("bootargs", "hypstub.el=1 quiet").unwrap())
            .property(DeviceTreeProperty::new("linux,initrd-start", 0x4800_0000u64).unwrap())
            .property(DeviceTreeProperty::new("linux,initrd-end", 0x4900_0000u32).unwrap())
            .build(),
    );
    tree.to_dtb()
}

/// Flips bits of bytes of `blob`, with room to grow behind it, and
/// exercises the result. `sparse` tries one byte of each 4-byte word (a
/// different one in each word) with one mask; otherwise every byte gets three
/// masks. With `edit_every` = n, every n-th case also gets an edit. Returns
/// how many cases were accepted.
fn flip_bytes(blob: &[u8], sparse: bool, edit_every: usize) -> usize {
    let mut room = blob.to_vec();
    room.resize(blob.len() + 4096, 0);
    let masks: &[u8] = if sparse { &[0xff] } else { &[0x01, 0x80, 0xff] };
    let mut accepted = 0;
    let mut case = 0;
    for offset in 0..blob.len() {
        if sparse && offset % 4 != (offset / 4) % 4 {
            continue;
        }
        for &mask in masks {
            let mut buf = room.clone();
            buf[offset] ^= mask;
            if exercise(&mut buf, case % edit_every == 0) {
                accepted += 1;
            }
            case += 1;
        }
    }
    accepted
}

#[test]
fn small_tree_reads_as_built() {
    let mut buf = small_tree();
    let dtb = Dtb::new(&mut buf).unwrap();
    assert_eq!(dtb.memory().unwrap(), [QEMU_RAM]);
    assert_eq!(dtb.cpu_count(), Ok(2));
    assert_eq!(dtb.psci_method(), Ok(Some(PsciMethod::Smc)));
    assert_eq!(dtb.bootargs(), Ok(Some("hypstub.el=1 quiet")));
    assert_eq!(dtb.initrd(), Ok(Some(0x4800_0000..0x4900_0000)));
    assert_eq!(reservations(&dtb), [(0x4010_0000, 0x1_0000)]);
}

#[test]
fn byte_flips_at_every_offset_of_a_small_tree() {
    let blob = small_tree();
    let accepted = flip_bytes(&blob, false, 1);
    // Flips inside property values leave a valid blob, and those were
    // edited too.
    assert!(accepted > 0);
    assert!(accepted < blob.len() * 3);
}

#[test]
fn byte_flips_across_qemu_virt() {
    // A quarter of the offsets and an edit every 8th case keep this quick in
    // a debug build; `byte_flips_soak` does all of it.
    let blob = packed();
    assert!(flip_bytes(&blob, true, 8) > 0);
}

/// The full corruption run: every offset of the QEMU blob with three masks,
/// each accepted blob edited, and many random multi-byte corruptions. A few
/// seconds in a release build, minutes in a debug one:
/// `cargo test -p loader --release --test fdt -- --ignored`.
#[test]
#[ignore = "slow; run with --ignored, preferably with --release"]
fn byte_flips_soak() {
    let blob = packed();
    flip_bytes(&blob, false, 1);
    random_corruptions(&blob, 100_000);
    random_corruptions(&small_tree(), 100_000);
}

#[test]
fn header_fields_set_to_odd_values() {
    let blob = packed();
    let values = [
        0,
        1,
        3,
        4,
        8,
        16,
        17,
        0x28,
        0x38,
        blob.len() as u32 - 1,
        blob.len() as u32,
        blob.len() as u32 + 1,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX - 3,
        u32::MAX,
    ];
    for field in (4..FDT_HEADER_SIZE).step_by(4) {
        for value in values {
            let mut buf = blob.clone();
            buf.resize(blob.len() + 256, 0);
            buf[field..field + 4].copy_from_slice(&value.to_be_bytes());
            exercise(&mut buf, true);
        }
    }
}

/// `count` copies of `blob`, each with 1 to 8 random bytes replaced,
/// exercised with an edit.
fn random_corruptions(blob: &[u8], count: usize) {
    // xorshift64*: deterministic, so a failure can be reproduced.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for _ in 0..count {
        let mut buf = blob.to_vec();
        buf.resize(blob.len() + 1024, 0);
        for _ in 0..1 + next() % 8 {
            let offset = (next() % blob.len() as u64) as usize;
            buf[offset] = next() as u8;
        }
        exercise(&mut buf, true);
    }
}

#[test]
fn random_corruption() {
    random_corruptions(&packed(), 300);
    random_corruptions(&small_tree(), 3000);
}

#[test]
fn model_built_tree() {
    // A tree as a board might describe a Raspberry Pi 4: one-cell sizes, two
    // memory nodes, no PSCI, spin-table CPUs.
    let mut tree = DeviceTree::new();
    let root = &mut tree.root;
    root.add_property(DeviceTreeProperty::new("#address-cells", 2u32).unwrap());
    root.add_property(DeviceTreeProperty::new("#size-cells", 1u32).unwrap());
    root.add_child(
        DeviceTreeNode::builder("memory@0")
            .unwrap()
            .property(DeviceTreeProperty::new("device_type", "memory").unwrap())
            .property(
                DeviceTreeProperty::new(
                    "reg",
                    vec![0u32, 0, 0x3b40_0000, 0, 0x4000_0000, 0xbc00_0000],
                )
                .unwrap(),
            )
            .build(),
    );
    let mut cpus = DeviceTreeNode::new("cpus").unwrap();
    for i in 0..4 {
        cpus.add_child(
            DeviceTreeNode::builder(format!("cpu@{i}"))
                .unwrap()
                .property(DeviceTreeProperty::new("enable-method", "spin-table").unwrap())
                .build(),
        );
    }
    root.add_child(cpus);
    let mut buf = tree.to_dtb();
    buf.resize(buf.len() + 512, 0);
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert_eq!(
        dtb.memory().unwrap(),
        [0..0x3b40_0000, 0x4000_0000..0xfc00_0000]
    );
    assert_eq!(dtb.psci_method(), Ok(None));
    assert_eq!(dtb.cpu_count(), Ok(4));
    assert_eq!(dtb.bootargs(), Ok(None));
    dtb.set_bootargs("console=ttyS0,115200").unwrap();
    assert_eq!(dtb.bootargs(), Ok(Some("console=ttyS0,115200")));
    assert!(dtb.fdt().find_node("/chosen").is_some());
}

#[test]
fn disables_a_node_and_ignores_a_missing_one() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    dtb.apply(&Edits::new().disable("flash@0").disable("no-such-node@1"))
        .unwrap();
    let flash = dtb
        .fdt()
        .find_node("/flash@0")
        .expect("QEMU virt has /flash@0");
    let status = flash.property("status").expect("status added");
    assert_eq!(status.value(), b"disabled\0");
}

#[test]
fn property_u64_rewrites_a_nested_node_and_names_a_missing_one() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    let cpu = "/cpus/cpu@1";
    dtb.apply(&Edits::new().property_u64(cpu, "cpu-release-addr", 0x1008))
        .unwrap();
    let fdt = dtb.fdt();
    let node = fdt.find_node(cpu).unwrap();
    assert_eq!(
        node.property("cpu-release-addr").unwrap().value(),
        0x1008u64.to_be_bytes()
    );
    let err = dtb
        .apply(&Edits::new().property_u64("/cpus/cpu@99", "cpu-release-addr", 1))
        .unwrap_err();
    assert_eq!(err.to_string(), "DTB has no node /cpus/cpu@99 to edit");
}

#[test]
fn disables_nodes_by_full_path() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    // QEMU virt's PL011 lives at /pl011@9000000; a path that stops one level short of an
    // existing node, and one under a missing parent, change nothing.
    dtb.apply(
        &Edits::new()
            .disable("/pl011@9000000")
            .disable("/no-such-bus/pl011@9000000")
            .disable("/flash@0/nothing"),
    )
    .unwrap();
    let status = |path: &str| {
        dtb.fdt()
            .find_node(path)
            .and_then(|n| n.property("status").map(|p| p.value().to_vec()))
    };
    assert_eq!(
        status("/pl011@9000000").as_deref(),
        Some(&b"disabled\0"[..])
    );
    assert_eq!(status("/flash@0"), None);
    assert!(dtb.fdt().find_node("/no-such-bus").is_none());
}

#[test]
fn sets_stdout_path() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    // QEMU virt names its console by path.
    assert_eq!(dtb.stdout_path(), Ok(Some("/pl011@9000000")));
    dtb.apply(&Edits::new().stdout_path("serial0:115200n8").bootargs("x"))
        .unwrap();
    assert_eq!(dtb.stdout_path(), Ok(Some("serial0:115200n8")));
    assert_eq!(dtb.bootargs(), Ok(Some("x")));

    // A tree without /chosen gets one.
    let mut buf = DeviceTree::new().to_dtb();
    buf.resize(buf.len() + 256, 0);
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert_eq!(dtb.stdout_path(), Ok(None));
    dtb.apply(&Edits::new().stdout_path("serial1:115200n8"))
        .unwrap();
    assert_eq!(dtb.stdout_path(), Ok(Some("serial1:115200n8")));

    // A NUL is refused and changes nothing.
    let before = buf.clone();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    let err = dtb
        .apply(&Edits::new().stdout_path("serial0\0junk"))
        .unwrap_err();
    assert_eq!(err, FdtError::StdoutPathNul { offset: 7 });
    assert!(err.to_string().contains("stdout-path"), "{err}");
    assert_eq!(buf, before);
}

#[test]
fn reserve_no_map_creates_reserved_memory_and_adds_to_it() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert!(dtb.fdt().find_node("/reserved-memory").is_none());
    dtb.apply(&Edits::new().reserve_no_map("hypstub", 0x4010_0000, 0x2_0000))
        .unwrap();
    let fdt = dtb.fdt();
    let node = fdt
        .find_node("/reserved-memory/hypstub@40100000")
        .expect("node added");
    assert!(node.property("no-map").is_some());
    let reserved = loader::dtfacts::reserved(&fdt).unwrap();
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0], 0x4010_0000..0x4012_0000);
    // A second one goes into the existing node.
    dtb.apply(&Edits::new().reserve_no_map("more", 0x4800_0000, 0x1000))
        .unwrap();
    assert_eq!(
        loader::dtfacts::reserved(&dtb.fdt()).unwrap(),
        [0x4010_0000..0x4012_0000, 0x4800_0000..0x4800_1000]
    );
}
