//! `loader::dtfacts` against trees shaped like the Raspberry Pi 4's (as its
//! firmware hands them on: `/soc` behind `ranges`, the mini-UART or PL011 as
//! console, spin-table CPUs, RAM split into banks), against QEMU virt's own
//! DTB, and against corrupted blobs.

use dtoolkit::fdt::Fdt;
use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use loader::dtfacts::{
    console, memory_banks, reserved, spin_table, translate, Console, ConsoleKind, DtError,
};

const QEMU_VIRT: &[u8] = include_bytes!("data/qemu-virt-gicv3.dtb");
/// `-m 512M` on QEMU virt.
const QEMU_RAM: core::ops::Range<u64> = 0x4000_0000..0x6000_0000;

/// Pi 4 spin-table release addresses (REFERENCE.md section 5).
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

fn dtb(t: &DeviceTree) -> Vec<u8> {
    t.to_dtb()
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
    let blob = dtb(&pi4(None));
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(
        memory_banks(&fdt).unwrap(),
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
    let blob = dtb(&t);
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(
        memory_banks(&fdt).unwrap(),
        [
            0..0x3b40_0000,
            0x4000_0000..0xfc00_0000,
            0x1_0000_0000..0x2_0000_0000
        ]
    );
}

#[test]
fn memory_errors() {
    let mut t = pi4(None);
    t.root.remove_child("memory@0");
    let blob = dtb(&t);
    assert_eq!(
        memory_banks(&Fdt::new(&blob).unwrap()),
        Err(DtError::NoMemory)
    );

    let mut t = pi4(None);
    t.find_node_mut("/memory@0")
        .unwrap()
        .add_property(prop("reg", vec![0u32, 0, 0x1000, 7]));
    let blob = dtb(&t);
    let err = memory_banks(&Fdt::new(&blob).unwrap()).unwrap_err();
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
    let blob = dtb(&t);
    assert!(matches!(
        memory_banks(&Fdt::new(&blob).unwrap()),
        Err(DtError::Overflow { .. })
    ));

    let mut t = pi4(None);
    t.root.add_property(prop("#address-cells", 3u32));
    let blob = dtb(&t);
    let err = memory_banks(&Fdt::new(&blob).unwrap()).unwrap_err();
    assert_eq!(
        err,
        DtError::Cells {
            path: "/#address-cells".into(),
            value: 3
        }
    );
}

#[test]
fn pi4_translation_through_soc_ranges() {
    let blob = dtb(&pi4(None));
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(
        translate(&fdt, "/soc/serial@7e201000", 0x7e20_1000),
        Ok(0xfe20_1000)
    );
    // The last byte of the first range, and the second and third ranges.
    assert_eq!(
        translate(&fdt, "/soc/serial@7e201000", 0x7f7f_ffff),
        Ok(0xff7f_ffff)
    );
    assert_eq!(
        translate(&fdt, "/soc/serial@7e201000", 0x7c00_0010),
        Ok(0xfc00_0010)
    );
    assert_eq!(
        translate(&fdt, "/soc/serial@7e201000", 0x4000_1000),
        Ok(0xff80_1000)
    );
    // A child of the root is on the CPU's bus already.
    assert_eq!(translate(&fdt, "/memory@0", 0x1234), Ok(0x1234));
    // Just past the first range, and below every range.
    let err = translate(&fdt, "/soc/serial@7e201000", 0x7f80_0000).unwrap_err();
    assert_eq!(
        err,
        DtError::OutsideRanges {
            bus: "/soc".into(),
            addr: 0x7f80_0000
        }
    );
    assert!(err.to_string().contains("0x7f800000"), "{err}");
    assert!(matches!(
        translate(&fdt, "/soc/serial@7e201000", 0x1000),
        Err(DtError::OutsideRanges { .. })
    ));
    assert_eq!(
        translate(&fdt, "/soc/serial@0", 0),
        Err(DtError::NoNode {
            path: "/soc/serial@0".into()
        })
    );
    assert!(matches!(
        translate(&fdt, "soc", 0),
        Err(DtError::NoNode { .. })
    ));
}

#[test]
fn translation_through_nested_and_empty_ranges() {
    // /scb (2 address cells) with an identity `ranges`, and under it a bus
    // like the Pi 4's /emmc2bus with a 2-cell child, 2-cell parent range.
    let mut t = pi4(None);
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
        vec![prop("reg", vec![0u32, 0x7e34_0000, 0x100])],
    ));
    scb.add_child(bus);
    // A bus with no `ranges`: its children are not CPU-addressable.
    let mut i2c = node(
        "i2c@7e804000",
        vec![prop("#address-cells", 1u32), prop("#size-cells", 0u32)],
    );
    i2c.add_child(node("eeprom@50", vec![prop("reg", 0x50u32)]));
    scb.add_child(i2c);
    t.root.add_child(scb);
    let blob = dtb(&t);
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(
        translate(&fdt, "/scb/emmc2bus/mmc@7e340000", 0x7e34_0000),
        Ok(0xfe34_0000)
    );
    let err = translate(&fdt, "/scb/i2c@7e804000/eeprom@50", 0x50).unwrap_err();
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
    let blob = dtb(&pi4(Some("serial0:115200n8")));
    assert_eq!(console(&Fdt::new(&blob).unwrap()), Ok(mini_uart()));
    let blob = dtb(&pi4(Some("serial1")));
    assert_eq!(console(&Fdt::new(&blob).unwrap()), Ok(pl011()));
}

#[test]
fn pi4_console_from_full_path() {
    let blob = dtb(&pi4(Some("/soc/serial@7e201000:115200")));
    assert_eq!(console(&Fdt::new(&blob).unwrap()), Ok(pl011()));
    // Without the unit address, as `find_node` allows: the path given back
    // is the node's full one (the first `serial` child is the PL011).
    let blob = dtb(&pi4(Some("/soc/serial")));
    assert_eq!(console(&Fdt::new(&blob).unwrap()), Ok(pl011()));
}

#[test]
fn pi4_console_from_serial0_without_stdout_path() {
    let blob = dtb(&pi4(None));
    assert_eq!(console(&Fdt::new(&blob).unwrap()), Ok(mini_uart()));
    let mut t = pi4(None);
    t.root.remove_child("chosen");
    let blob = dtb(&t);
    assert_eq!(console(&Fdt::new(&blob).unwrap()), Ok(mini_uart()));
}

#[test]
fn console_errors() {
    let blob = dtb(&pi4(Some("serial2:115200")));
    let err = console(&Fdt::new(&blob).unwrap()).unwrap_err();
    assert_eq!(
        err,
        DtError::NoAlias {
            alias: "serial2".into()
        }
    );
    assert!(err.to_string().contains("serial2"), "{err}");

    let mut t = pi4(None);
    t.root.remove_child("aliases");
    let blob = dtb(&t);
    assert_eq!(console(&Fdt::new(&blob).unwrap()), Err(DtError::NoConsole));

    let mut t = pi4(Some("serial1"));
    t.find_node_mut("/soc/serial@7e201000")
        .unwrap()
        .add_property(prop("status", "disabled"));
    let blob = dtb(&t);
    let err = console(&Fdt::new(&blob).unwrap()).unwrap_err();
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
    let blob = dtb(&t);
    let err = console(&Fdt::new(&blob).unwrap()).unwrap_err();
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
    let blob = dtb(&t);
    assert_eq!(
        console(&Fdt::new(&blob).unwrap()),
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
    let blob = dtb(&t);
    assert_eq!(
        console(&Fdt::new(&blob).unwrap()),
        Err(DtError::NoNode {
            path: "/soc/serial@7e215000".into()
        })
    );

    // /soc without ranges: the UART has no CPU address.
    let mut t = pi4(Some("serial1"));
    t.find_node_mut("/soc").unwrap().remove_property("ranges");
    let blob = dtb(&t);
    assert_eq!(
        console(&Fdt::new(&blob).unwrap()),
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
    let blob = dtb(&t);
    assert_eq!(
        console(&Fdt::new(&blob).unwrap()),
        Err(DtError::EmptyReg {
            node: "/soc/serial@7e201000".into()
        })
    );

    // stdout-path that is not a string.
    let mut t = pi4(None);
    t.find_node_mut("/chosen")
        .unwrap()
        .add_property(prop("stdout-path", vec![0xffu8, 0xfe, 0]));
    let blob = dtb(&t);
    assert!(matches!(
        console(&Fdt::new(&blob).unwrap()),
        Err(DtError::BadProperty { path, .. }) if path == "/chosen/stdout-path"
    ));
}

#[test]
fn pi4_spin_table() {
    let blob = dtb(&pi4(None));
    let fdt = Fdt::new(&blob).unwrap();
    let expected: Vec<_> = (0..4).map(|i| (i as u64, Some(RELEASE[i]))).collect();
    assert_eq!(spin_table(&fdt).unwrap(), expected);
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
    let blob = dtb(&t);
    assert_eq!(
        spin_table(&Fdt::new(&blob).unwrap()).unwrap(),
        [(0x1_0000_0000, Some(0x8000_0000)), (0x101, None)]
    );
}

#[test]
fn spin_table_errors() {
    let mut t = pi4(None);
    t.find_node_mut("/cpus/cpu@2")
        .unwrap()
        .remove_property("cpu-release-addr");
    let blob = dtb(&t);
    let err = spin_table(&Fdt::new(&blob).unwrap()).unwrap_err();
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
    let blob = dtb(&t);
    assert!(matches!(
        spin_table(&Fdt::new(&blob).unwrap()),
        Err(DtError::BadProperty { path, .. }) if path == "/cpus/cpu@1/cpu-release-addr"
    ));

    let mut t = pi4(None);
    t.find_node_mut("/cpus/cpu@3")
        .unwrap()
        .add_property(prop("enable-method", "brcm,bcm2836-smp"));
    let blob = dtb(&t);
    let err = spin_table(&Fdt::new(&blob).unwrap()).unwrap_err();
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
    let blob = dtb(&t);
    assert!(matches!(
        spin_table(&Fdt::new(&blob).unwrap()),
        Err(DtError::MissingProperty {
            property: "enable-method",
            ..
        })
    ));

    let mut t = pi4(None);
    t.find_node_mut("/cpus/cpu@0")
        .unwrap()
        .remove_property("reg");
    let blob = dtb(&t);
    assert_eq!(
        spin_table(&Fdt::new(&blob).unwrap()),
        Err(DtError::EmptyReg {
            node: "/cpus/cpu@0".into()
        })
    );

    let mut t = pi4(None);
    t.root.remove_child("cpus");
    let blob = dtb(&t);
    assert_eq!(spin_table(&Fdt::new(&blob).unwrap()), Err(DtError::NoCpus));
}

#[test]
fn qemu_virt() {
    let fdt = Fdt::new(QEMU_VIRT).unwrap();
    assert_eq!(memory_banks(&fdt).unwrap(), [QEMU_RAM]);
    assert_eq!(
        console(&fdt).unwrap(),
        Console {
            path: "/pl011@9000000".into(),
            base: 0x0900_0000,
            kind: ConsoleKind::Pl011,
        }
    );
    assert_eq!(
        spin_table(&fdt).unwrap(),
        [(0, None), (1, None), (2, None), (3, None)]
    );
}

/// Every reader on `blob`, if dtoolkit accepts it: none may panic.
fn exercise(blob: &[u8]) {
    let Ok(fdt) = Fdt::new(blob) else {
        return;
    };
    let _ = memory_banks(&fdt);
    let _ = console(&fdt);
    let _ = spin_table(&fdt);
    let _ = translate(&fdt, "/soc/serial@7e201000", 0x7e20_1000);
    let _ = translate(&fdt, "/soc/serial", 0x7e21_5040);
}

#[test]
fn corrupted_blobs_never_panic() {
    let blob = dtb(&pi4(Some("serial0:115200n8")));
    for len in 0..blob.len() {
        exercise(&blob[..len]);
        // The header agrees with the shorter blob.
        let mut cut = blob[..len].to_vec();
        if let Some(totalsize) = cut.get_mut(4..8) {
            totalsize.copy_from_slice(&(len as u32).to_be_bytes());
        }
        exercise(&cut);
    }
    let mut accepted = 0;
    for offset in 0..blob.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut buf = blob.clone();
            buf[offset] ^= mask;
            if Fdt::new(&buf).is_ok() {
                accepted += 1;
            }
            exercise(&buf);
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
    let blob = dtb(&t);
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(reserved(&fdt).unwrap(), [0..0x1000, 0x1000..0x80000]);
    let blob = dtb(&pi4(None));
    assert_eq!(reserved(&Fdt::new(&blob).unwrap()).unwrap(), []);
}
