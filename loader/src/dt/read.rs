//! What a [`Dtb`] says about RAM, reserved memory, `/chosen` and the CPUs.

use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;

use dtoolkit::fdt::FdtProperty;
use dtoolkit::{Node, Property};

use super::decode::{cells, end, lossy, number, number_cells, reg, status, string};
use super::{DtError, Dtb, INITRD_END, INITRD_START};

impl Dtb<'_> {
    /// RAM: the `reg` ranges of every available child of the root with `device_type =
    /// "memory"`, decoded with the root's `#address-cells` and `#size-cells` (each 1 or 2),
    /// empty ranges dropped, sorted, and with overlapping or touching ranges merged (the Pi
    /// 4 firmware lists 2 GiB chunks of one bank separately, as a one-cell size cannot hold
    /// 4 GiB).
    ///
    /// Only the root's children are looked at, as Linux's `early_init_dt_scan_memory()`
    /// does; `status` other than "okay" excludes a node, as there.
    ///
    /// # Errors
    /// Cell counts other than 1 or 2, a `reg` of the wrong length or running past 64 bits,
    /// or no RAM at all.
    pub fn memory(&self) -> Result<Vec<Range<u64>>, DtError> {
        let fdt = self.fdt();
        let root = fdt.root();
        let address_cells = number_cells(&root, "", "#address-cells", 2)?;
        let size_cells = number_cells(&root, "", "#size-cells", 1)?;
        let mut ram = Vec::new();
        for node in root.children() {
            let is_memory = node
                .property("device_type")
                .is_some_and(|p| p.value() == b"memory\0");
            if !is_memory || status(&node).is_some() {
                continue;
            }
            let path = format!("/{}", node.name());
            for (base, size) in reg(&node, &path, address_cells, size_cells)? {
                if size > 0 {
                    ram.push(base..end(&path, base, size)?);
                }
            }
        }
        ram.sort_unstable_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ram.len());
        for range in ram {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        if merged.is_empty() {
            return Err(DtError::NoMemory);
        }
        Ok(merged)
    }

    /// Memory the DTB says is reserved: every `/memreserve/` entry of the header, then the
    /// `reg` ranges of each available child of `/reserved-memory` (read with that node's
    /// `#address-cells`/`#size-cells`), empty ranges left out. A firmware must neither load
    /// into these nor let a relocation write over them (on a Pi 4, the first is page 0 with
    /// the spin table).
    ///
    /// # Errors
    /// A reservation or `reg` that runs past 64 bits, or malformed cells.
    pub fn reserved(&self) -> Result<Vec<Range<u64>>, DtError> {
        let fdt = self.fdt();
        let mut out = Vec::new();
        for r in fdt.memory_reservations() {
            if r.size() > 0 {
                out.push(r.address()..end("/memreserve/", r.address(), r.size())?);
            }
        }
        if let Some(node) = fdt.find_node("/reserved-memory") {
            let address_cells = cells(&node, "/reserved-memory", "#address-cells", 2)?;
            let size_cells = cells(&node, "/reserved-memory", "#size-cells", 1)?;
            for child in node.children() {
                if status(&child).is_some() || child.property("reg").is_none() {
                    continue;
                }
                let path = format!("/reserved-memory/{}", child.name());
                for (base, size) in reg(&child, &path, address_cells, size_cells)? {
                    if size > 0 {
                        out.push(base..end(&path, base, size)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// `/chosen/bootargs`, if present.
    ///
    /// # Errors
    /// The property is not a NUL-terminated UTF-8 string.
    pub fn bootargs(&self) -> Result<Option<&str>, DtError> {
        match self.chosen_property("bootargs") {
            None => Ok(None),
            Some(prop) => string(&prop, "/chosen/bootargs").map(Some),
        }
    }

    /// The initrd given by `/chosen/linux,initrd-start` and `-end`, if present (32- or
    /// 64-bit values, as Linux reads them).
    ///
    /// # Errors
    /// Only one of the two is present, one has a length other than 4 or 8, or the end is
    /// before the start.
    pub fn initrd(&self) -> Result<Option<Range<u64>>, DtError> {
        let start = self.chosen_property(INITRD_START);
        let end = self.chosen_property(INITRD_END);
        let (start, end) = match (start, end) {
            (None, None) => return Ok(None),
            (Some(start), Some(end)) => (start, end),
            (Some(_), None) => {
                return Err(DtError::InitrdIncomplete {
                    present: INITRD_START,
                    missing: INITRD_END,
                })
            }
            (None, Some(_)) => {
                return Err(DtError::InitrdIncomplete {
                    present: INITRD_END,
                    missing: INITRD_START,
                })
            }
        };
        let start = number(&start, &format!("/chosen/{INITRD_START}"))?;
        let end = number(&end, &format!("/chosen/{INITRD_END}"))?;
        if start > end {
            return Err(DtError::InitrdReversed { start, end });
        }
        Ok(Some(start..end))
    }

    /// How each CPU under `/cpus` is started, in DTB order: its MPIDR (the `reg`, read with
    /// `/cpus`' `#address-cells`) and, for `enable-method = "spin-table"`, its
    /// `cpu-release-addr` (Documentation/arch/arm64/booting.rst section 5), or `None` for
    /// `"psci"`.
    ///
    /// # Errors
    /// No `/cpus/cpu` nodes, a CPU without `reg` or `enable-method`, an unknown method, or
    /// a spin-table CPU without a 32- or 64-bit `cpu-release-addr`.
    pub fn spin_table(&self) -> Result<Vec<(u64, Option<u64>)>, DtError> {
        let fdt = self.fdt();
        let cpus = fdt.find_node("/cpus").ok_or(DtError::NoCpus)?;
        let address_cells = cells(&cpus, "/cpus", "#address-cells", 2)?;
        let size_cells = cells(&cpus, "/cpus", "#size-cells", 0)?;
        let mut out = Vec::new();
        for cpu in cpus
            .children()
            .filter(|c| c.name_without_address() == "cpu")
        {
            let path = format!("/cpus/{}", cpu.name());
            let Some(&(mpidr, _)) = reg(&cpu, &path, address_cells, size_cells)?.first() else {
                return Err(DtError::EmptyReg { node: path });
            };
            let method = cpu
                .property("enable-method")
                .ok_or_else(|| DtError::MissingProperty {
                    node: path.clone(),
                    property: "enable-method",
                })?;
            let release = match method.value() {
                b"psci\0" => None,
                b"spin-table\0" => {
                    let addr = cpu.property("cpu-release-addr").ok_or_else(|| {
                        DtError::MissingProperty {
                            node: path.clone(),
                            property: "cpu-release-addr",
                        }
                    })?;
                    Some(number(&addr, &format!("{path}/cpu-release-addr"))?)
                }
                other => {
                    return Err(DtError::EnableMethod {
                        path,
                        method: lossy(other),
                    })
                }
            };
            out.push((mpidr, release));
        }
        if out.is_empty() {
            return Err(DtError::NoCpus);
        }
        Ok(out)
    }

    /// A property of `/chosen`, if both exist.
    fn chosen_property(&self, name: &str) -> Option<FdtProperty<'_>> {
        self.fdt().find_node("/chosen")?.property(name)
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

    use super::super::test_trees::tree;
    use super::*;

    #[test]
    fn memory_with_one_cell_each() {
        let mut buf = tree(1, 1, &[0x8000_0000, 0x1000_0000, 0, 0x100_0000]).to_dtb();
        let dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(
            dtb.memory().unwrap(),
            vec![0..0x100_0000, 0x8000_0000..0x9000_0000]
        );
    }

    #[test]
    fn memory_with_two_cells_each() {
        let mut buf = tree(2, 2, &[0x8, 0, 0x1, 0, 0, 0x4000_0000, 0, 0]).to_dtb();
        let dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(dtb.memory().unwrap(), vec![0x8_0000_0000..0x9_0000_0000]);
    }

    #[test]
    fn memory_errors() {
        let mut buf = tree(3, 1, &[0, 0, 0, 0]).to_dtb();
        let err = Dtb::new(&mut buf).unwrap().memory().unwrap_err();
        assert_eq!(
            err,
            DtError::Cells {
                path: "/#address-cells".into(),
                value: 3,
                expected: "1 or 2",
            }
        );
        assert!(err.to_string().contains("/#address-cells = 3"));

        let mut buf = tree(2, 0, &[0, 0]).to_dtb();
        assert!(matches!(
            Dtb::new(&mut buf).unwrap().memory(),
            Err(DtError::Cells { value: 0, .. })
        ));

        let mut buf = tree(2, 1, &[0, 0x4000_0000, 0x1000, 7]).to_dtb();
        let err = Dtb::new(&mut buf).unwrap().memory().unwrap_err();
        assert_eq!(
            err,
            DtError::EntryLength {
                path: "/memory@0/reg".into(),
                len: 16,
                entry: 12
            }
        );

        let mut buf = tree(2, 2, &[0xffff_ffff, 0xffff_0000, 0, 0x1_0000]).to_dtb();
        assert!(matches!(
            Dtb::new(&mut buf).unwrap().memory(),
            Err(DtError::Overflow { .. })
        ));

        let mut buf = tree(2, 1, &[0, 0x4000_0000, 0]).to_dtb();
        assert_eq!(Dtb::new(&mut buf).unwrap().memory(), Err(DtError::NoMemory));

        let mut t = tree(2, 1, &[0, 0x4000_0000, 0x1000]);
        t.root
            .add_property(DeviceTreeProperty::new("#size-cells", vec![0u8; 3]).unwrap());
        let mut buf = t.to_dtb();
        assert!(matches!(
            Dtb::new(&mut buf).unwrap().memory(),
            Err(DtError::BadProperty { .. })
        ));
    }

    #[test]
    fn disabled_memory_ignored() {
        let mut t = tree(2, 1, &[0, 0x4000_0000, 0x1000]);
        let memory = DeviceTreeNode::builder("memory@80000000")
            .unwrap()
            .property(DeviceTreeProperty::new("device_type", "memory").unwrap())
            .property(DeviceTreeProperty::new("status", "disabled").unwrap())
            .property(DeviceTreeProperty::new("reg", vec![0u32, 0x8000_0000, 0x1000]).unwrap())
            .build();
        t.root.add_child(memory);
        let mut buf = t.to_dtb();
        let dtb = Dtb::new(&mut buf).unwrap();
        assert_eq!(dtb.memory().unwrap(), vec![0x4000_0000..0x4000_1000]);
    }

    #[test]
    fn no_cpus() {
        let mut t = DeviceTree::new();
        let mut buf = t.to_dtb();
        assert_eq!(
            Dtb::new(&mut buf).unwrap().spin_table(),
            Err(DtError::NoCpus)
        );
        let mut cpus = DeviceTreeNode::new("cpus").unwrap();
        cpus.add_child(DeviceTreeNode::new("cpu-map").unwrap());
        t.root.add_child(cpus.clone());
        let mut buf = t.to_dtb();
        assert_eq!(
            Dtb::new(&mut buf).unwrap().spin_table(),
            Err(DtError::NoCpus)
        );
        for i in 0..3u32 {
            cpus.add_child(
                DeviceTreeNode::builder(format!("cpu@{i}"))
                    .unwrap()
                    .property(DeviceTreeProperty::new("reg", vec![0, i]).unwrap())
                    .property(DeviceTreeProperty::new("enable-method", "psci").unwrap())
                    .build(),
            );
        }
        t.root.add_child(cpus);
        let mut buf = t.to_dtb();
        assert_eq!(Dtb::new(&mut buf).unwrap().spin_table().unwrap().len(), 3);
    }

    #[test]
    fn initrd_reading() {
        let mut t = DeviceTree::new();
        let chosen = DeviceTreeNode::builder("chosen")
            .unwrap()
            .property(DeviceTreeProperty::new(INITRD_START, 0x4800_0000u32).unwrap())
            .build();
        t.root.add_child(chosen);
        let mut buf = t.to_dtb();
        assert_eq!(
            Dtb::new(&mut buf).unwrap().initrd(),
            Err(DtError::InitrdIncomplete {
                present: INITRD_START,
                missing: INITRD_END
            })
        );
        let chosen = t.find_node_mut("/chosen").unwrap();
        chosen.add_property(DeviceTreeProperty::new(INITRD_END, 0x4900_0000u64).unwrap());
        let mut buf = t.to_dtb();
        assert_eq!(
            Dtb::new(&mut buf).unwrap().initrd(),
            Ok(Some(0x4800_0000..0x4900_0000))
        );
        let chosen = t.find_node_mut("/chosen").unwrap();
        chosen.add_property(DeviceTreeProperty::new(INITRD_END, vec![0u8; 3]).unwrap());
        let mut buf = t.to_dtb();
        assert!(matches!(
            Dtb::new(&mut buf).unwrap().initrd(),
            Err(DtError::BadProperty { .. })
        ));
    }
}
