//! `loader::dt` against the DTB QEMU 10 generates for the machine hypstub
//! targets, against trees shaped like the Raspberry Pi 4's (as its firmware
//! hands them on: `/soc` behind `ranges`, the mini-UART or PL011 as console,
//! spin-table CPUs, RAM split into banks), and against corrupted copies of
//! both.
//!
//! `data/qemu-virt-gicv3.dtb` came from
//! `qemu-system-aarch64 -M virt,virtualization=on,gic-version=3,dumpdtb=... -cpu max -m 512M -smp 4`
//! (QEMU 10.0.2). Like the blob QEMU puts in RAM, its `totalsize` is the
//! whole 1 MiB area, most of it free space.

use dtoolkit::fdt::Fdt;
use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::{Node, Property};
use loader::dt::{Console, ConsoleKind, DtError, Dtb, Edits, FDT_HEADER_SIZE};

const QEMU_VIRT: &[u8] = include_bytes!("data/qemu-virt-gicv3.dtb");
const MIB: usize = 1 << 20;
/// `-m 512M` on QEMU virt.
const QEMU_RAM: core::ops::Range<u64> = 0x4000_0000..0x6000_0000;
/// QEMU virt's CPUs (`-smp 4`): MPIDRs 0..3, started with PSCI.
const QEMU_CPUS: [(u64, Option<u64>); 4] = [(0, None), (1, None), (2, None), (3, None)];

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

/// `/psci/method`, as the payload reads it.
fn psci_method(dtb: &Dtb<'_>) -> Option<String> {
    let method = dtb.fdt().find_node("/psci")?.property("method")?;
    Some(method.value_as::<&str>().ok()?.into())
}

/// `/chosen/stdout-path`, as the payload reads it.
fn stdout_path(dtb: &Dtb<'_>) -> Option<String> {
    let path = dtb.fdt().find_node("/chosen")?.property("stdout-path")?;
    Some(path.value_as::<&str>().ok()?.into())
}

/// The number of CPUs [`Dtb::spin_table`] finds.
fn cpu_count(dtb: &Dtb<'_>) -> Result<usize, DtError> {
    dtb.spin_table().map(|cpus| cpus.len())
}

/// `read` of the checked DTB of `t`.
fn with<T>(t: &DeviceTree, read: impl FnOnce(&Dtb<'_>) -> T) -> T {
    let mut blob = t.to_dtb();
    read(&Dtb::new(&mut blob).unwrap())
}

#[test]
fn reads_qemu_virt() {
    assert_eq!(QEMU_VIRT.len(), MIB);
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert_eq!(dtb.size(), MIB);
    assert_eq!(dtb.memory().unwrap(), [QEMU_RAM]);
    assert_eq!(psci_method(&dtb).as_deref(), Some("smc"));
    assert_eq!(cpu_count(&dtb), Ok(4));
    assert_eq!(dtb.spin_table().unwrap(), QEMU_CPUS);
    assert_eq!(dtb.bootargs(), Ok(None));
    assert_eq!(dtb.initrd(), Ok(None));
    assert!(reservations(&dtb).is_empty());
    assert_eq!(dtb.reserved().unwrap(), []);
    assert_eq!(
        dtb.console().unwrap(),
        Console {
            path: "/pl011@9000000".into(),
            base: 0x0900_0000,
            kind: ConsoleKind::Pl011,
        }
    );
    // The whole 1 MiB is the room.
    assert!(matches!(
        dtb.apply(&Edits::new().bootargs(&"x".repeat(MIB + 1))),
        Err(DtError::DoesNotFit { capacity: MIB, .. })
    ));
}

#[test]
fn set_bootargs_and_read_back() {
    let mut buf = QEMU_VIRT.to_vec();
    let before = DeviceTree::from_fdt(&Fdt::new(QEMU_VIRT).unwrap());
    let mut dtb = Dtb::new(&mut buf).unwrap();
    dtb.apply(&Edits::new().bootargs("console=ttyAMA0 earlycon root=/dev/vda"))
        .unwrap();
    assert_eq!(
        dtb.bootargs(),
        Ok(Some("console=ttyAMA0 earlycon root=/dev/vda"))
    );
    // Packed: the free space inside the old totalsize is gone.
    assert!(dtb.size() < 16 * 1024, "{}", dtb.size());
    // Everything else is as it was.
    assert_eq!(dtb.memory().unwrap(), [QEMU_RAM]);
    assert_eq!(cpu_count(&dtb), Ok(4));
    assert_eq!(psci_method(&dtb).as_deref(), Some("smc"));
    let mut expected = before.clone();
    expected.find_node_mut("/chosen").unwrap().add_property(
        DeviceTreeProperty::new("bootargs", "console=ttyAMA0 earlycon root=/dev/vda").unwrap(),
    );
    assert_eq!(DeviceTree::from_fdt(&dtb.fdt()), expected);

    // Replacing it again, with a longer and then a shorter line.
    let long = "x".repeat(3000);
    dtb.apply(&Edits::new().bootargs(&long)).unwrap();
    assert_eq!(dtb.bootargs(), Ok(Some(long.as_str())));
    dtb.apply(&Edits::new().bootargs("")).unwrap();
    assert_eq!(dtb.bootargs(), Ok(Some("")));
    assert_eq!(Dtb::new(&mut buf).unwrap().bootargs(), Ok(Some("")));
}

#[test]
fn add_memreserve_and_read_back() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    dtb.apply(&Edits::new().memreserve(0x4010_0000, 0x1_0000))
        .unwrap();
    assert_eq!(reservations(&dtb), [(0x4010_0000, 0x1_0000)]);
    dtb.apply(&Edits::new().memreserve(0x5000_0000, 0x20_0000))
        .unwrap();
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
    dtb.apply(&Edits::new().initrd(0x4800_0000, 0x4880_0000))
        .unwrap();
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
    assert_eq!(
        dtb.reserved().unwrap(),
        core::slice::from_ref(&(0x4010_0000..0x4011_0000))
    );
    assert_eq!(dtb.initrd(), Ok(Some(0x4800_0000..0x4900_0000)));
}

#[test]
fn edit_that_does_not_fit_leaves_buffer_untouched() {
    let mut buf = packed();
    let len = buf.len();
    let original = buf.clone();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    let err = dtb
        .apply(&Edits::new().bootargs("console=ttyAMA0"))
        .unwrap_err();
    let DtError::DoesNotFit { needed, capacity } = err else {
        panic!("{err:?}");
    };
    assert!(needed > len);
    assert_eq!(capacity, len);
    let msg = err.to_string();
    assert!(msg.contains("does not fit in the DTB area"), "{msg}");
    assert!(msg.contains(&needed.to_string()), "{msg}");
    assert!(msg.contains(&len.to_string()), "{msg}");
    assert!(matches!(
        dtb.apply(&Edits::new().memreserve(0x4010_0000, 0x1000)),
        Err(DtError::DoesNotFit { .. })
    ));
    // Still readable, still the same.
    assert_eq!(cpu_count(&dtb), Ok(4));
    assert_eq!(buf, original);

    // A few bytes of room are not enough for a long line either.
    let mut buf = original.clone();
    buf.resize(len + 16, 0xa5);
    let before = buf.clone();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert!(matches!(
        dtb.apply(&Edits::new().bootargs("console=ttyAMA0 root=/dev/vda")),
        Err(DtError::DoesNotFit { .. })
    ));
    assert_eq!(buf, before);
}

#[test]
fn capacity_is_capped_at_2_mib() {
    let mut buf = packed();
    buf.resize(3 * MIB, 0);
    let mut dtb = Dtb::new(&mut buf).unwrap();
    let long = "y".repeat(2 * MIB);
    assert!(matches!(
        dtb.apply(&Edits::new().bootargs(&long)),
        Err(DtError::DoesNotFit {
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
    assert_eq!(err, DtError::BadMagic { found: 0xd10d_feed });
    assert!(err.to_string().contains("0xd10dfeed"));
    assert!(err.to_string().contains("0xd00dfeed"));
}

#[test]
fn totalsize_larger_than_buffer() {
    let mut buf = QEMU_VIRT[..MIB - 1].to_vec();
    let err = Dtb::new(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DtError::TooLarge {
            totalsize: MIB,
            capacity: MIB - 1
        }
    );
    assert!(err.to_string().contains("1048576"));
    assert!(err.to_string().contains("1048575"));
    let mut buf = packed();
    buf[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(Dtb::new(&mut buf), Err(DtError::TooLarge { .. })));
}

#[test]
fn too_small_for_header() {
    for len in 0..FDT_HEADER_SIZE {
        let mut buf = QEMU_VIRT[..len].to_vec();
        assert_eq!(
            Dtb::new(&mut buf).unwrap_err(),
            DtError::TooSmall { capacity: len }
        );
    }
}

/// Every reader and (with `edit`) an edit, on whatever `Dtb::new` accepted:
/// none may panic. Returns whether the blob was accepted.
fn exercise(buf: &mut [u8], edit: bool) -> bool {
    let Ok(mut dtb) = Dtb::new(buf) else {
        return false;
    };
    read_all(&dtb);
    if !edit {
        return true;
    }
    let _ = dtb.apply(
        &Edits::new()
            .bootargs("console=ttyAMA0")
            .memreserve(0x4010_0000, 0x1_0000)
            .initrd(0x4800_0000, 0x4900_0000),
    );
    read_all(&dtb);
    true
}

/// Every reader, results ignored: only that none panics matters.
fn read_all(dtb: &Dtb<'_>) {
    let _ = dtb.memory();
    let _ = dtb.reserved();
    let _ = dtb.bootargs();
    let _ = dtb.initrd();
    let _ = dtb.console();
    let _ = dtb.spin_table();
    let _ = dtb.fdt().memory_reservations().count();
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
    assert_eq!(cpu_count(&dtb), Ok(2));
    assert_eq!(psci_method(&dtb).as_deref(), Some("smc"));
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
/// `cargo test -p loader --release --test dt -- --ignored`.
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
    for i in 0..4u32 {
        cpus.add_child(
            DeviceTreeNode::builder(format!("cpu@{i}"))
                .unwrap()
                .property(DeviceTreeProperty::new("reg", vec![0, i]).unwrap())
                .property(DeviceTreeProperty::new("enable-method", "spin-table").unwrap())
                .property(DeviceTreeProperty::new("cpu-release-addr", RELEASE[i as usize]).unwrap())
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
    assert_eq!(psci_method(&dtb), None);
    assert_eq!(cpu_count(&dtb), Ok(4));
    assert_eq!(
        dtb.spin_table().unwrap(),
        (0..4)
            .map(|i| (i, Some(RELEASE[i as usize])))
            .collect::<Vec<_>>()
    );
    assert_eq!(dtb.bootargs(), Ok(None));
    dtb.apply(&Edits::new().bootargs("console=ttyS0,115200"))
        .unwrap();
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
    assert_eq!(stdout_path(&dtb).as_deref(), Some("/pl011@9000000"));
    dtb.apply(&Edits::new().stdout_path("serial0:115200n8").bootargs("x"))
        .unwrap();
    assert_eq!(stdout_path(&dtb).as_deref(), Some("serial0:115200n8"));
    assert_eq!(dtb.bootargs(), Ok(Some("x")));

    // A tree without /chosen gets one.
    let mut buf = DeviceTree::new().to_dtb();
    buf.resize(buf.len() + 256, 0);
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert_eq!(stdout_path(&dtb), None);
    dtb.apply(&Edits::new().stdout_path("serial1:115200n8"))
        .unwrap();
    assert_eq!(stdout_path(&dtb).as_deref(), Some("serial1:115200n8"));

    // A NUL is refused and changes nothing.
    let before = buf.clone();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    let err = dtb
        .apply(&Edits::new().stdout_path("serial0\0junk"))
        .unwrap_err();
    assert_eq!(err, DtError::StdoutPathNul { offset: 7 });
    assert!(err.to_string().contains("stdout-path"), "{err}");
    assert_eq!(buf, before);
}

#[test]
fn reserve_no_map_creates_reserved_memory_and_adds_to_it() {
    let mut buf = QEMU_VIRT.to_vec();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert!(dtb.fdt().find_node("/reserved-memory").is_none());
    dtb.apply(&Edits::new().reserve_no_map("hypstub", 0x4010_0000, 0x8000))
        .unwrap();
    let fdt = dtb.fdt();
    let node = fdt
        .find_node("/reserved-memory/hypstub@40100000")
        .expect("node added");
    assert!(node.property("no-map").is_some());
    let reserved = dtb.reserved().unwrap();
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0], 0x4010_0000..0x4010_8000);
    // A second one goes into the existing node.
    dtb.apply(&Edits::new().reserve_no_map("more", 0x4800_0000, 0x1000))
        .unwrap();
    assert_eq!(
        dtb.reserved().unwrap(),
        [0x4010_0000..0x4010_8000, 0x4800_0000..0x4800_1000]
    );
}

// Trees shaped like the Raspberry Pi 4's.

/// Pi 4 spin-table release addresses (docs/rpi4.md).
const RELEASE: [u64; 4] = [0xd8, 0xe0, 0xe8, 0xf0];

fn prop<T: dtoolkit::ToPropertyValue>(name: &str, value: T) -> DeviceTreeProperty {
    DeviceTreeProperty::new(name, value).unwrap()
}

fn node(name: &str, props: Vec<DeviceTreeProperty>) -> DeviceTreeNode {
    props
        .into_iter()
        .fold(DeviceTreeNode::builder(name).unwrap(), |b, p| b.property(p))
        .build()
}

/// A Pi 4 (4 GiB) tree as its firmware passes it on, with
/// `/chosen/stdout-path` = `stdout` if given.
fn pi4(stdout: Option<&str>) -> DeviceTree {
    let mut t = DeviceTree::new();
    let root = &mut t.root;
    root.add_property(prop("#address-cells", 2u32));
    root.add_property(prop("#size-cells", 1u32));
    root.add_property(prop(
        "compatible",
        vec!["raspberrypi,4-model-b", "brcm,bcm2711"],
    ));
    root.add_child(node(
        "memory@0",
        vec![
            prop("device_type", "memory"),
            prop(
                "reg",
                vec![0u32, 0, 0x3b40_0000, 0, 0x4000_0000, 0xbc00_0000],
            ),
        ],
    ));
    let mut soc = node(
        "soc",
        vec![
            prop("compatible", "simple-bus"),
            prop("#address-cells", 1u32),
            prop("#size-cells", 1u32),
            prop(
                "ranges",
                vec![
                    0x7e00_0000u32,
                    0,
                    0xfe00_0000,
                    0x180_0000,
                    0x7c00_0000,
                    0,
                    0xfc00_0000,
                    0x200_0000,
                    0x4000_0000,
                    0,
                    0xff80_0000,
                    0x80_0000,
                ],
            ),
        ],
    );
    soc.add_child(node(
        "serial@7e201000",
        vec![
            prop("compatible", vec!["arm,pl011", "arm,primecell"]),
            prop("reg", vec![0x7e20_1000u32, 0x200]),
            prop("status", "okay"),
        ],
    ));
    soc.add_child(node(
        "serial@7e215040",
        vec![
            prop("compatible", "brcm,bcm2835-aux-uart"),
            prop("reg", vec![0x7e21_5040u32, 0x40]),
            prop("status", "okay"),
        ],
    ));
    root.add_child(soc);
    root.add_child(node(
        "aliases",
        vec![
            prop("serial0", "/soc/serial@7e215040"),
            prop("serial1", "/soc/serial@7e201000"),
        ],
    ));
    let mut chosen = DeviceTreeNode::new("chosen").unwrap();
    if let Some(stdout) = stdout {
        chosen.add_property(prop("stdout-path", stdout));
    }
    root.add_child(chosen);
    let mut cpus = node(
        "cpus",
        vec![prop("#address-cells", 1u32), prop("#size-cells", 0u32)],
    );
    for (i, release) in RELEASE.into_iter().enumerate() {
        cpus.add_child(node(
            &format!("cpu@{i}"),
            vec![
                prop("device_type", "cpu"),
                prop("compatible", "arm,cortex-a72"),
                prop("reg", i as u32),
                prop("enable-method", "spin-table"),
                prop("cpu-release-addr", release),
            ],
        ));
    }
    root.add_child(cpus);
    t
}

fn mini_uart() -> Console {
    Console {
        path: "/soc/serial@7e215040".into(),
        base: 0xfe21_5040,
        kind: ConsoleKind::MiniUart,
    }
}

fn pl011() -> Console {
    Console {
        path: "/soc/serial@7e201000".into(),
        base: 0xfe20_1000,
        kind: ConsoleKind::Pl011,
    }
}

#[test]
fn pi4_memory_banks() {
    assert_eq!(
        with(&pi4(None), |d| d.memory()).unwrap(),
        [0..0x3b40_0000, 0x4000_0000..0xfc00_0000]
    );
}

#[test]
fn pi4_8gib_banks_in_several_nodes_are_merged() {
    // As on an 8 GiB board: the RAM above 4 GiB in 2 GiB chunks (one size
    // cell cannot say 4 GiB), given out of order and in a second node.
    let mut t = pi4(None);
    t.find_node_mut("/memory@0").unwrap().add_property(prop(
        "reg",
        vec![
            0u32,
            0,
            0x3b40_0000,
            1,
            0x8000_0000,
            0x8000_0000,
            0,
            0x4000_0000,
            0xbc00_0000,
        ],
    ));
    t.root.add_child(node(
        "memory@100000000",
        vec![
            prop("device_type", "memory"),
            prop("reg", vec![1u32, 0, 0x8000_0000, 1, 0x4000_0000, 0x1000]),
        ],
    ));
    // Not RAM: no device_type, or disabled.
    t.root.add_child(node(
        "memory@300000000",
        vec![
            prop("device_type", "memory"),
            prop("status", "disabled"),
            prop("reg", vec![3u32, 0, 0x1000]),
        ],
    ));
    t.root.add_child(node(
        "sram@400000000",
        vec![prop("reg", vec![4u32, 0, 0x1000])],
    ));
    assert_eq!(
        with(&t, |d| d.memory()).unwrap(),
        [
            0..0x3b40_0000,
            0x4000_0000..0xfc00_0000,
            0x1_0000_0000..0x2_0000_0000
        ]
    );
}

#[test]
fn pi4_memory_errors() {
    let mut t = pi4(None);
    t.root.remove_child("memory@0");
    assert_eq!(with(&t, |d| d.memory()), Err(DtError::NoMemory));

    let mut t = pi4(None);
    t.find_node_mut("/memory@0")
        .unwrap()
        .add_property(prop("reg", vec![0u32, 0, 0x1000, 7]));
    let err = with(&t, |d| d.memory()).unwrap_err();
    assert_eq!(
        err,
        DtError::EntryLength {
            path: "/memory@0/reg".into(),
            len: 16,
            entry: 12
        }
    );
    assert!(
        err.to_string().contains("/memory@0/reg is 16 bytes"),
        "{err}"
    );

    let mut t = pi4(None);
    t.find_node_mut("/memory@0")
        .unwrap()
        .add_property(prop("reg", vec![0xffff_ffffu32, 0xffff_f000, 0x2000]));
    assert!(matches!(
        with(&t, |d| d.memory()),
        Err(DtError::Overflow { .. })
    ));

    let mut t = pi4(None);
    t.root.add_property(prop("#address-cells", 3u32));
    let err = with(&t, |d| d.memory()).unwrap_err();
    assert_eq!(
        err,
        DtError::Cells {
            path: "/#address-cells".into(),
            value: 3,
            expected: "1 or 2",
        }
    );
}

/// The console's CPU address with the PL011 (`serial1`, the console) at `bus_addr` on
/// `/soc`.
fn pl011_at(bus_addr: u32) -> Result<u64, DtError> {
    let mut t = pi4(Some("serial1"));
    t.find_node_mut("/soc/serial@7e201000")
        .unwrap()
        .add_property(prop("reg", vec![bus_addr, 0x200]));
    with(&t, |d| d.console()).map(|c| c.base)
}

#[test]
fn pi4_translation_through_soc_ranges() {
    assert_eq!(pl011_at(0x7e20_1000), Ok(0xfe20_1000));
    // The last byte of the first range, and the second and third ranges.
    assert_eq!(pl011_at(0x7f7f_ffff), Ok(0xff7f_ffff));
    assert_eq!(pl011_at(0x7c00_0010), Ok(0xfc00_0010));
    assert_eq!(pl011_at(0x4000_1000), Ok(0xff80_1000));
    // A child of the root is on the CPU's bus already.
    let mut t = pi4(Some("/serial@1234"));
    t.root.add_child(node(
        "serial@1234",
        vec![
            prop("compatible", "arm,pl011"),
            prop("reg", vec![0u32, 0x1234, 0x100]),
        ],
    ));
    assert_eq!(with(&t, |d| d.console()).map(|c| c.base), Ok(0x1234));
    // Just past the first range, and below every range.
    let err = pl011_at(0x7f80_0000).unwrap_err();
    assert_eq!(
        err,
        DtError::OutsideRanges {
            bus: "/soc".into(),
            addr: 0x7f80_0000
        }
    );
    assert!(err.to_string().contains("0x7f800000"), "{err}");
    assert!(matches!(
        pl011_at(0x1000),
        Err(DtError::OutsideRanges { .. })
    ));
    assert_eq!(
        with(&pi4(Some("/soc/serial@0")), |d| d.console()),
        Err(DtError::NoNode {
            path: "/soc/serial@0".into()
        })
    );
    // An alias that is not an absolute path.
    let mut t = pi4(Some("serial0"));
    t.find_node_mut("/aliases")
        .unwrap()
        .add_property(prop("serial0", "soc"));
    assert!(matches!(
        with(&t, |d| d.console()),
        Err(DtError::NoNode { .. })
    ));
}

#[test]
fn translation_through_nested_and_empty_ranges() {
    // /scb (2 address cells) with an identity `ranges`, and under it a bus
    // like the Pi 4's /emmc2bus with a 2-cell child, 2-cell parent range.
    let scb = |stdout: &str| {
        let mut t = pi4(Some(stdout));
        let mut scb = node(
            "scb",
            vec![
                prop("#address-cells", 2u32),
                prop("#size-cells", 1u32),
                prop("ranges", Vec::<u8>::new()),
            ],
        );
        let mut bus = node(
            "emmc2bus",
            vec![
                prop("#address-cells", 2u32),
                prop("#size-cells", 1u32),
                prop(
                    "ranges",
                    vec![0u32, 0x7e00_0000, 0, 0xfe00_0000, 0x180_0000],
                ),
            ],
        );
        bus.add_child(node(
            "mmc@7e340000",
            vec![
                prop("compatible", "arm,pl011"),
                prop("reg", vec![0u32, 0x7e34_0000, 0x100]),
            ],
        ));
        scb.add_child(bus);
        // A bus with no `ranges`: its children are not CPU-addressable.
        let mut i2c = node(
            "i2c@7e804000",
            vec![prop("#address-cells", 1u32), prop("#size-cells", 0u32)],
        );
        i2c.add_child(node(
            "eeprom@50",
            vec![prop("compatible", "arm,pl011"), prop("reg", 0x50u32)],
        ));
        scb.add_child(i2c);
        t.root.add_child(scb);
        with(&t, |d| d.console()).map(|c| c.base)
    };
    assert_eq!(scb("/scb/emmc2bus/mmc@7e340000"), Ok(0xfe34_0000));
    let err = scb("/scb/i2c@7e804000/eeprom@50").unwrap_err();
    assert_eq!(
        err,
        DtError::NoRanges {
            bus: "/scb/i2c@7e804000".into(),
            addr: 0x50
        }
    );
    assert!(err.to_string().contains("not translatable"), "{err}");
}

#[test]
fn pi4_console_from_stdout_path_alias() {
    assert_eq!(
        with(&pi4(Some("serial0:115200n8")), |d| d.console()),
        Ok(mini_uart())
    );
    assert_eq!(with(&pi4(Some("serial1")), |d| d.console()), Ok(pl011()));
}

#[test]
fn pi4_console_from_full_path() {
    assert_eq!(
        with(&pi4(Some("/soc/serial@7e201000:115200")), |d| d.console()),
        Ok(pl011())
    );
    // Without the unit address, as `find_node` allows: the path given back
    // is the node's full one (the first `serial` child is the PL011).
    assert_eq!(
        with(&pi4(Some("/soc/serial")), |d| d.console()),
        Ok(pl011())
    );
}

#[test]
fn pi4_console_from_serial0_without_stdout_path() {
    assert_eq!(with(&pi4(None), |d| d.console()), Ok(mini_uart()));
    let mut t = pi4(None);
    t.root.remove_child("chosen");
    assert_eq!(with(&t, |d| d.console()), Ok(mini_uart()));
}

#[test]
fn console_errors() {
    let err = with(&pi4(Some("serial2:115200")), |d| d.console()).unwrap_err();
    assert_eq!(
        err,
        DtError::NoAlias {
            alias: "serial2".into()
        }
    );
    assert!(err.to_string().contains("serial2"), "{err}");

    let mut t = pi4(None);
    t.root.remove_child("aliases");
    assert_eq!(with(&t, |d| d.console()), Err(DtError::NoConsole));

    let mut t = pi4(Some("serial1"));
    t.find_node_mut("/soc/serial@7e201000")
        .unwrap()
        .add_property(prop("status", "disabled"));
    let err = with(&t, |d| d.console()).unwrap_err();
    assert_eq!(
        err,
        DtError::ConsoleDisabled {
            path: "/soc/serial@7e201000".into(),
            status: "disabled".into()
        }
    );
    assert!(err.to_string().contains("\"disabled\""), "{err}");

    let mut t = pi4(Some("serial0"));
    t.find_node_mut("/soc/serial@7e215040")
        .unwrap()
        .add_property(prop("compatible", vec!["ns16550a", "snps,dw-apb-uart"]));
    let err = with(&t, |d| d.console()).unwrap_err();
    assert_eq!(
        err,
        DtError::UnknownConsole {
            path: "/soc/serial@7e215040".into(),
            compatible: "ns16550a, snps,dw-apb-uart".into()
        }
    );
    assert!(err.to_string().contains("ns16550a"), "{err}");

    let mut t = pi4(Some("serial0"));
    t.find_node_mut("/soc/serial@7e215040")
        .unwrap()
        .remove_property("compatible");
    assert_eq!(
        with(&t, |d| d.console()),
        Err(DtError::MissingProperty {
            node: "/soc/serial@7e215040".into(),
            property: "compatible"
        })
    );

    // The alias points at nothing.
    let mut t = pi4(Some("serial0"));
    t.find_node_mut("/aliases")
        .unwrap()
        .add_property(prop("serial0", "/soc/serial@7e215000"));
    assert_eq!(
        with(&t, |d| d.console()),
        Err(DtError::NoNode {
            path: "/soc/serial@7e215000".into()
        })
    );

    // /soc without ranges: the UART has no CPU address.
    let mut t = pi4(Some("serial1"));
    t.find_node_mut("/soc").unwrap().remove_property("ranges");
    assert_eq!(
        with(&t, |d| d.console()),
        Err(DtError::NoRanges {
            bus: "/soc".into(),
            addr: 0x7e20_1000
        })
    );

    // No reg at all.
    let mut t = pi4(Some("serial1"));
    t.find_node_mut("/soc/serial@7e201000")
        .unwrap()
        .remove_property("reg");
    assert_eq!(
        with(&t, |d| d.console()),
        Err(DtError::EmptyReg {
            node: "/soc/serial@7e201000".into()
        })
    );

    // stdout-path that is not a string.
    let mut t = pi4(None);
    t.find_node_mut("/chosen")
        .unwrap()
        .add_property(prop("stdout-path", vec![0xffu8, 0xfe, 0]));
    assert!(matches!(
        with(&t, |d| d.console()),
        Err(DtError::BadProperty { path, .. }) if path == "/chosen/stdout-path"
    ));
}

#[test]
fn pi4_spin_table() {
    let expected: Vec<_> = (0..4).map(|i| (i as u64, Some(RELEASE[i]))).collect();
    assert_eq!(with(&pi4(None), |d| d.spin_table()).unwrap(), expected);
}

#[test]
fn spin_table_cells_and_widths() {
    // Two-cell MPIDRs and a one-cell release address are read too.
    let mut t = DeviceTree::new();
    let mut cpus = node(
        "cpus",
        vec![prop("#address-cells", 2u32), prop("#size-cells", 0u32)],
    );
    cpus.add_child(node("cpu-map", vec![]));
    cpus.add_child(node(
        "cpu@100000000",
        vec![
            prop("reg", vec![1u32, 0]),
            prop("enable-method", "spin-table"),
            prop("cpu-release-addr", 0x8000_0000u32),
        ],
    ));
    cpus.add_child(node(
        "cpu@101",
        vec![
            prop("reg", vec![0u32, 0x101]),
            prop("enable-method", "psci"),
        ],
    ));
    t.root.add_child(cpus);
    assert_eq!(
        with(&t, |d| d.spin_table()).unwrap(),
        [(0x1_0000_0000, Some(0x8000_0000)), (0x101, None)]
    );
}

#[test]
fn spin_table_errors() {
    let mut t = pi4(None);
    t.find_node_mut("/cpus/cpu@2")
        .unwrap()
        .remove_property("cpu-release-addr");
    let err = with(&t, |d| d.spin_table()).unwrap_err();
    assert_eq!(
        err,
        DtError::MissingProperty {
            node: "/cpus/cpu@2".into(),
            property: "cpu-release-addr"
        }
    );
    assert!(
        err.to_string()
            .contains("/cpus/cpu@2 has no cpu-release-addr"),
        "{err}"
    );

    let mut t = pi4(None);
    t.find_node_mut("/cpus/cpu@1")
        .unwrap()
        .add_property(prop("cpu-release-addr", vec![0u8; 6]));
    assert!(matches!(
        with(&t, |d| d.spin_table()),
        Err(DtError::BadProperty { path, .. }) if path == "/cpus/cpu@1/cpu-release-addr"
    ));

    let mut t = pi4(None);
    t.find_node_mut("/cpus/cpu@3")
        .unwrap()
        .add_property(prop("enable-method", "brcm,bcm2836-smp"));
    let err = with(&t, |d| d.spin_table()).unwrap_err();
    assert_eq!(
        err,
        DtError::EnableMethod {
            path: "/cpus/cpu@3".into(),
            method: "brcm,bcm2836-smp".into()
        }
    );

    let mut t = pi4(None);
    t.find_node_mut("/cpus/cpu@0")
        .unwrap()
        .remove_property("enable-method");
    assert!(matches!(
        with(&t, |d| d.spin_table()),
        Err(DtError::MissingProperty {
            property: "enable-method",
            ..
        })
    ));

    let mut t = pi4(None);
    t.find_node_mut("/cpus/cpu@0")
        .unwrap()
        .remove_property("reg");
    assert_eq!(
        with(&t, |d| d.spin_table()),
        Err(DtError::EmptyReg {
            node: "/cpus/cpu@0".into()
        })
    );

    let mut t = pi4(None);
    t.root.remove_child("cpus");
    assert_eq!(with(&t, |d| d.spin_table()), Err(DtError::NoCpus));
}

#[test]
fn corrupted_pi4_blobs_never_panic() {
    let blob = pi4(Some("serial0:115200n8")).to_dtb();
    for len in 0..blob.len() {
        exercise(&mut blob[..len].to_vec(), false);
        // The header agrees with the shorter blob.
        let mut cut = blob[..len].to_vec();
        if let Some(totalsize) = cut.get_mut(4..8) {
            totalsize.copy_from_slice(&(len as u32).to_be_bytes());
        }
        exercise(&mut cut, false);
    }
    let mut accepted = 0;
    for offset in 0..blob.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut buf = blob.clone();
            buf[offset] ^= mask;
            if exercise(&mut buf, false) {
                accepted += 1;
            }
        }
    }
    // Flips inside property values leave a valid blob with odd values.
    assert!(accepted > 0);
}

#[test]
fn pi4_reserved_memory_from_the_header_and_reserved_memory_node() {
    let mut t = pi4(None);
    t.memory_reservations
        .push(MemoryReservation::new(0, 0x1000));
    let mut rm = node(
        "reserved-memory",
        vec![
            prop("#address-cells", 2u32),
            prop("#size-cells", 1u32),
            prop("ranges", [0u8; 0]),
        ],
    );
    rm.add_child(node(
        "bl31@1000",
        vec![
            prop("reg", vec![0u32, 0x1000, 0x7f000]),
            prop("no-map", [0u8; 0]),
        ],
    ));
    // Size 0 (the Pi's nvram placeholder), no reg (a dynamic CMA pool) and disabled: none.
    rm.add_child(node("nvram@0", vec![prop("reg", vec![0u32, 0, 0])]));
    rm.add_child(node(
        "linux,cma",
        vec![prop("size", 0x400_0000u32), prop("reusable", [0u8; 0])],
    ));
    rm.add_child(node(
        "off@2000",
        vec![
            prop("reg", vec![0u32, 0x2000, 0x1000]),
            prop("status", "disabled"),
        ],
    ));
    t.root.add_child(rm);
    assert_eq!(
        with(&t, |d| d.reserved()).unwrap(),
        [0..0x1000, 0x1000..0x80000]
    );
    assert_eq!(with(&pi4(None), |d| d.reserved()).unwrap(), []);
}

/// `blob`'s tree as dtoolkit serialises it, with `boot_cpuid_phys`: what must not depend
/// on which rewrite made the blob.
fn canonical(blob: &[u8]) -> (Vec<u8>, u32) {
    let fdt = Fdt::new(blob).unwrap();
    (DeviceTree::from_fdt(&fdt).to_dtb(), fdt.boot_cpuid_phys())
}

#[test]
fn token_pass_makes_the_tree_the_model_makes() {
    // `Dtb::apply` edits /chosen and the reservations with a pass over the tokens; the
    // model's rewrite must give the same tree, whatever /chosen looks like: QEMU's (with
    // stdout-path and seeds), one with a child and the properties already set, none.
    let mut with_child = DeviceTree::from_fdt(&Fdt::new(&small_tree()).unwrap());
    with_child
        .find_node_mut("/chosen")
        .unwrap()
        .add_child(DeviceTreeNode::new("framebuffer@0").unwrap());
    let mut without = DeviceTree::from_fdt(&Fdt::new(&small_tree()).unwrap());
    without.root.remove_child("chosen");
    let mut cpuid = small_tree();
    cpuid[31] = 3;
    let blobs = [
        QEMU_VIRT.to_vec(),
        packed(),
        small_tree(),
        cpuid,
        with_child.to_dtb(),
        without.to_dtb(),
    ];
    let long = "y".repeat(5000);
    let edits = [
        Edits::new(),
        Edits::new().bootargs("console=ttyAMA0 panic=-1"),
        Edits::new()
            .bootargs("console=ttyAMA0 panic=-1")
            .initrd(0x4221_0000, 0x423d_3948),
        Edits::new().memreserve(0x4010_0000, 0x8000),
        Edits::new()
            .initrd(1, 2)
            .stdout_path("serial0:115200n8")
            .bootargs(&long)
            .memreserve(0x4010_0000, 0x8000)
            .memreserve(0, 0x1000),
        Edits::new().bootargs(""),
    ];
    for (b, blob) in blobs.iter().enumerate() {
        for (e, edit) in edits.iter().enumerate() {
            let (mut one, mut two) = (blob.clone(), blob.clone());
            one.resize(blob.len() + 8192, 0);
            two.resize(blob.len() + 8192, 0);
            let mut pass = Dtb::new(&mut one).unwrap();
            pass.apply(edit).unwrap();
            let mut model = Dtb::new(&mut two).unwrap();
            model.apply_with_model(edit).unwrap();
            assert_eq!(
                canonical(pass.as_bytes()),
                canonical(model.as_bytes()),
                "blob {b}, edits {e}"
            );
            // Packed: no free space, no NOPs.
            assert!(pass.size() <= model.size() + 1024, "blob {b}, edits {e}");
            let strings = u32::from_be_bytes(pass.as_bytes()[32..36].try_into().unwrap());
            let off = u32::from_be_bytes(pass.as_bytes()[12..16].try_into().unwrap());
            assert_eq!((off + strings) as usize, pass.size(), "blob {b}, edits {e}");
        }
    }
}

#[test]
fn token_pass_does_not_fit_leaves_buffer_untouched() {
    let mut buf = packed();
    let before = buf.clone();
    let mut dtb = Dtb::new(&mut buf).unwrap();
    assert!(matches!(
        dtb.apply(&Edits::new().bootargs("console=ttyAMA0 root=/dev/vda")),
        Err(DtError::DoesNotFit { .. })
    ));
    assert_eq!(buf, before);
}
