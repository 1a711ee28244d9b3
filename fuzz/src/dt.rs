//! `loader::dt`: a DTB checked once, and the edits the boot flow makes to it.
//!
//! Input: a DTB (its `totalsize` bytes), then the parameters of the edits: the room after
//! it, the payload's command line, an initrd, RAM for a FIT's DTB, reservations to add (the
//! flow adds those the DTB does not hold yet), the stub's `no-map` RAM (`hypstub.el=1`), and
//! the boards' edits (`stdout-path`, nodes to disable, a 64-bit `cpu-release-addr`).
//!
//! Checked: an accepted DTB is unchanged by the reads; an edit that succeeds leaves a DTB
//! that passes `Dtb::new` again within the room, says back what was written (command line,
//! initrd, RAM, every reservation, `stdout-path`, the property, `status = "disabled"`), keeps
//! `boot_cpuid_phys`, and leaves what was not edited as it was (the CPUs, the console, RAM,
//! the reservations already there); an edit that fails leaves the DTB untouched; and the
//! result is the tree the model's rewrite (`Dtb::apply_with_model`) makes of the same edits.

use core::ops::Range;

use dtoolkit::{Node, Property};
use loader::dt::{Dtb, Edits};

use crate::input::{merged, Reader, Writer};
use crate::seeds::{Inputs, Seeds};

/// Node names the boards disable, and some of QEMU virt's.
const DISABLE: [&str; 6] = [
    "/soc/interrupt-controller@7ef00100",
    "/soc/i2c@7ef04500",
    "flash@0",
    "/pl011@9000000",
    "memory@40000000",
    "/cpus/cpu@1",
];
/// `stdout-path` values the boards write.
const STDOUT: [&str; 4] = [
    "serial0:115200n8",
    "serial1:115200n8",
    "/pl011@9000000",
    "/soc/serial@7e201000",
];
/// Nodes a `cpu-release-addr` is written to.
const CPUS: [&str; 3] = ["/cpus/cpu@1", "/cpus/cpu@3", "/nothere"];

/// The totalsize a DTB's header claims, if it has one.
fn totalsize(data: &[u8]) -> usize {
    data.get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .min(data.len())
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let (blob, params) = data.split_at(totalsize(data));
    let mut r = Reader::new(params);
    let room = usize::from(r.u16());
    let mut buf = if blob.len() < 8 {
        data.to_vec()
    } else {
        blob.to_vec()
    };
    buf.resize(buf.len() + room, 0);
    let capacity = buf.len().min(loader::dt::MAX_DTB_SIZE);
    let mut dtb = match Dtb::new(&mut buf) {
        Ok(dtb) => dtb,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let before = dtb.as_bytes().to_vec();
    let memory = dtb.memory();
    let reserved = dtb.reserved();
    let cpus = dtb.spin_table();
    let console = dtb.console();
    let _ = (dtb.bootargs(), dtb.initrd());
    assert_eq!(dtb.as_bytes(), &before[..], "a read changed the DTB");
    let cpuid = dtb.fdt().boot_cpuid_phys();

    // The flow's edits.
    let bootargs = r.string(200);
    let initrd = r.bool().then(|| r.range());
    let ram: Option<Vec<Range<u64>>> = r
        .bool()
        .then(|| (0..r.u8() % 4 + 1).map(|_| r.range()).collect());
    let reserve: Vec<Range<u64>> = (0..r.u8() % 4).map(|_| r.range()).collect();
    let no_map = r.bool().then(|| r.range());
    let stdout = r.bool().then(|| STDOUT[usize::from(r.u8()) % STDOUT.len()]);
    let disable: Vec<&str> = (0..r.u8() % 3)
        .map(|_| DISABLE[usize::from(r.u8()) % DISABLE.len()])
        .collect();
    let release = r
        .bool()
        .then(|| (CPUS[usize::from(r.u8()) % CPUS.len()], r.u64()));

    let mut edits = Edits::new().bootargs(&bootargs);
    if let Some(ram) = &ram {
        edits = edits.memory(ram);
    }
    if let Some(i) = &initrd {
        edits = edits.initrd(i.start, i.end);
    }
    let already = reserved.clone().unwrap_or_default();
    let mut added = Vec::new();
    for x in &reserve {
        if !already.iter().any(|a| a.start <= x.start && x.end <= a.end) {
            edits = edits.memreserve(x.start, x.end - x.start);
            added.push(x.clone());
        }
    }
    if let Some(n) = &no_map {
        edits = edits.reserve_no_map("hypstub", n.start, n.end - n.start);
    }
    if let Some(s) = stdout {
        edits = edits.stdout_path(s);
    }
    for d in &disable {
        edits = edits.disable(d);
    }
    if let Some((path, value)) = release {
        edits = edits.property_u64(path, "cpu-release-addr", value);
    }

    // The reference: the same edits through dtoolkit's model, which `apply` uses for all
    // but edits of /chosen and the reservations (those it makes with a pass over the
    // tokens, which must give the same tree).
    let mut reference = buf_copy(&dtb, capacity);
    let model = Dtb::new(&mut reference).map(|mut d| {
        let r = d.apply_with_model(&edits);
        (r, d.as_bytes().to_vec())
    });
    let result = dtb.apply(&edits);
    match (&result, model) {
        (Ok(()), Ok((Ok(()), m))) => assert_eq!(
            canonical(dtb.as_bytes()),
            canonical(&m),
            "the token pass and the model made different trees"
        ),
        // The pass keeps the strings block whole, so it may need more room.
        (Err(loader::dt::DtError::DoesNotFit { .. }), Ok((Ok(()), _))) => {}
        (r, Ok((m, _))) => assert_eq!(r.is_ok(), m.is_ok(), "{r:?} against the model's {m:?}"),
        (_, Err(e)) => panic!("the DTB's copy does not pass Dtb::new: {e}"),
    }
    if let Err(e) = result {
        assert!(!e.to_string().is_empty());
        assert_eq!(
            dtb.as_bytes(),
            &before[..],
            "a failed edit changed the DTB: {e}"
        );
        return;
    }
    assert!(dtb.size() <= capacity);
    let mut again = dtb.as_bytes().to_vec();
    let after = Dtb::new(&mut again).expect("the edited DTB does not pass Dtb::new");
    assert_eq!(
        after.fdt().boot_cpuid_phys(),
        cpuid,
        "boot_cpuid_phys changed"
    );
    assert_eq!(after.bootargs(), Ok(Some(bootargs.as_str())));
    if let Some(i) = &initrd {
        assert_eq!(after.initrd(), Ok(Some(i.clone())));
    }
    // The flow reads the reservations before it adds any: only a DTB whose reservations
    // read can be checked for them.
    if let Ok(old) = &reserved {
        let now = after
            .reserved()
            .expect("the edited reservations do not read back");
        for x in added.iter().chain(&no_map).filter(|x| x.start < x.end) {
            assert!(
                now.contains(x),
                "reservation {x:#x?} is not in the edited DTB"
            );
        }
        if disable.is_empty() {
            for x in old {
                assert!(now.contains(x), "reservation {x:#x?} was lost");
            }
        }
    }
    if disable.is_empty() {
        match &ram {
            Some(ram) => assert_eq!(
                after.memory(),
                Ok(merged(ram)),
                "RAM edit reads back otherwise"
            ),
            None => assert_eq!(after.memory(), memory, "RAM changed"),
        }
        if stdout.is_none() {
            assert_eq!(after.console(), console, "the console changed");
        }
        if release.is_none() {
            assert_eq!(after.spin_table(), cpus, "the CPUs changed");
        }
    }
    let fdt = after.fdt();
    if let Some(s) = stdout {
        let p = fdt
            .find_node("/chosen")
            .and_then(|c| c.property("stdout-path"));
        assert_eq!(
            p.map(|p| p.value().to_vec()),
            Some(format!("{s}\0").into_bytes())
        );
    }
    if let Some((path, value)) = release {
        if let Some(node) = fdt.find_node(path) {
            let p = node
                .property("cpu-release-addr")
                .map(|p| p.value().to_vec());
            assert_eq!(p, Some(value.to_be_bytes().to_vec()));
        }
    }
    for d in &disable {
        let path = if d.starts_with('/') {
            d.to_string()
        } else {
            format!("/{d}")
        };
        if let Some(node) = fdt.find_node(&path) {
            let p = node.property("status").map(|p| p.value().to_vec());
            assert_eq!(p, Some(b"disabled\0".to_vec()), "{path} is not disabled");
        }
    }
}

/// A copy of `dtb` with the same room (`capacity` bytes in all).
fn buf_copy(dtb: &Dtb<'_>, capacity: usize) -> Vec<u8> {
    let mut b = dtb.as_bytes().to_vec();
    b.resize(capacity, 0);
    b
}

/// `blob`'s tree as dtoolkit serialises it, with `boot_cpuid_phys`.
fn canonical(blob: &[u8]) -> (Vec<u8>, u32) {
    let fdt = dtoolkit::fdt::Fdt::new(blob).expect("an edited DTB dtoolkit refuses");
    (
        dtoolkit::model::DeviceTree::from_fdt(&fdt).to_dtb(),
        fdt.boot_cpuid_phys(),
    )
}

/// Each DTB of the inputs as it comes, and with the edits of QEMU virt at EL2 and at EL1,
/// a FIT's DTB (RAM set), and the Pi 4 (a mini-UART `stdout-path`, a release address).
pub fn seeds(inputs: &Inputs) -> Seeds {
    let mut out = Vec::new();
    for (name, dtb) in &inputs.dtb {
        let dtb = &dtb[..totalsize(dtb)];
        out.push((name.clone(), dtb.to_vec()));
        let el2 = Writer::default()
            .bytes(dtb)
            .u16(4096)
            .string("console=ttyAMA0 root=/dev/vda")
            .bool(true)
            .range(0x4800_0000..0x4900_0000)
            .bool(false)
            .u8(1)
            .range(0x4000_0000..0x4010_0000)
            .done();
        let el1 = Writer::default()
            .bytes(dtb)
            .u16(4096)
            .string("console=ttyAMA0")
            .bool(false)
            .bool(false)
            .u8(0)
            .bool(true)
            .range(0x4010_0000..0x4012_0000)
            .done();
        let fit = Writer::default()
            .bytes(dtb)
            .u16(8192)
            .string("")
            .bool(false)
            .bool(true)
            .u8(1)
            .range(0x4000_0000..0x8000_0000)
            .range(0x1_0000_0000..0x1_4000_0000)
            .u8(2)
            .range(0..0x1000)
            .range(0x4000_0000..0x4010_0000)
            .done();
        let pi = Writer::default()
            .bytes(dtb)
            .u16(2048)
            .string("console=ttyS1,115200 clk_ignore_unused")
            .bool(false)
            .bool(false)
            .u8(0)
            .bool(true)
            .range(0x2000..0x2_2000)
            .bool(true)
            .u8(1)
            .u8(2)
            .u8(0)
            .u8(1)
            .bool(true)
            .u8(0)
            .u64(0x1000)
            .done();
        for (kind, seed) in [("el2", el2), ("el1", el1), ("fit", fit), ("rpi4", pi)] {
            out.push((format!("{name}-{kind}"), seed));
        }
    }
    out
}
