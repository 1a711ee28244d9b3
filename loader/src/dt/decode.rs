//! Property values as the readers and edits need them: cell counts, `reg` and `ranges`
//! entries, numbers, strings and `status`, every problem a [`DtError`] naming the property.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::RangeInclusive;

use dtoolkit::error::PropertyError;
use dtoolkit::fdt::{FdtNode, FdtProperty};
use dtoolkit::{Node, Property};

use super::DtError;

/// `#address-cells` or `#size-cells` (`name`) of `node` at `path`, or `default` when
/// absent; at most 2 (0 is a bus without addresses or sizes, as `/cpus`' `#size-cells`).
pub(super) fn cells(
    node: &FdtNode<'_>,
    path: &str,
    name: &str,
    default: u32,
) -> Result<usize, DtError> {
    cells_in(node, path, name, default, 0..=2, "at most 2")
}

/// As [`cells`], but 1 or 2: for RAM and reservations, whose addresses and sizes the
/// readers and edits need as numbers.
pub(super) fn number_cells(
    node: &FdtNode<'_>,
    path: &str,
    name: &str,
    default: u32,
) -> Result<usize, DtError> {
    cells_in(node, path, name, default, 1..=2, "1 or 2")
}

/// A cell count within `accepted` ([`DtError::Cells`] with `expected` otherwise).
fn cells_in(
    node: &FdtNode<'_>,
    path: &str,
    name: &str,
    default: u32,
    accepted: RangeInclusive<u32>,
    expected: &'static str,
) -> Result<usize, DtError> {
    let prop_path = || format!("{}/{name}", path.trim_end_matches('/'));
    let value = match node.property(name) {
        None => default,
        Some(p) => p
            .value_as::<u32>()
            .map_err(|problem| DtError::BadProperty {
                path: prop_path(),
                problem,
            })?,
    };
    if accepted.contains(&value) {
        Ok(value as usize)
    } else {
        Err(DtError::Cells {
            path: prop_path(),
            value,
            expected,
        })
    }
}

/// The (address, size) pairs of `node`'s `reg` (`path` is the node's); empty without one.
pub(super) fn reg(
    node: &FdtNode<'_>,
    path: &str,
    address_cells: usize,
    size_cells: usize,
) -> Result<Vec<(u64, u64)>, DtError> {
    let Some(reg) = node.property("reg") else {
        return Ok(Vec::new());
    };
    let entries = entries(
        reg.value(),
        &format!("{path}/reg"),
        [address_cells, size_cells],
    )?;
    Ok(entries
        .into_iter()
        .map(|[base, size]| (base, size))
        .collect())
}

/// Splits `value` into entries of `N` fields, the fields `widths` cells wide (each 0 to 2
/// cells), read as big-endian numbers.
pub(super) fn entries<const N: usize>(
    value: &[u8],
    path: &str,
    widths: [usize; N],
) -> Result<Vec<[u64; N]>, DtError> {
    let entry: usize = widths.iter().sum::<usize>() * 4;
    if entry == 0 || !value.len().is_multiple_of(entry) {
        return Err(DtError::EntryLength {
            path: path.into(),
            len: value.len(),
            entry,
        });
    }
    Ok(value
        .chunks_exact(entry)
        .map(|chunk| {
            let mut fields = [0; N];
            let mut at = 0;
            for (field, width) in fields.iter_mut().zip(widths) {
                *field = be_cells(chunk.get(at..at + width * 4).unwrap_or_default());
                at += width * 4;
            }
            fields
        })
        .collect())
}

/// The end of `base + size`, or an error naming `path`'s `reg`.
pub(super) fn end(path: &str, base: u64, size: u64) -> Result<u64, DtError> {
    base.checked_add(size).ok_or_else(|| DtError::Overflow {
        path: format!("{path}/reg"),
        base,
        size,
    })
}

/// A property holding a 32- or 64-bit big-endian number (`path` is the property's).
pub(super) fn number(prop: &FdtProperty<'_>, path: &str) -> Result<u64, DtError> {
    match prop.value().len() {
        4 | 8 => Ok(be_cells(prop.value())),
        _ => Err(DtError::BadProperty {
            path: path.into(),
            problem: PropertyError::InvalidLength,
        }),
    }
}

/// A string property's value (`path` is the property's).
pub(super) fn string<'a>(prop: &FdtProperty<'a>, path: &str) -> Result<&'a str, DtError> {
    prop.value_as::<&'a str>()
        .map_err(|problem| DtError::BadProperty {
            path: path.into(),
            problem,
        })
}

/// `None` if the node is available (no `status`, or "okay"/"ok", as Linux's
/// `of_device_is_available()`), else its status.
pub(super) fn status(node: &FdtNode<'_>) -> Option<String> {
    let prop = node.property("status")?;
    match prop.value() {
        b"okay\0" | b"ok\0" => None,
        other => Some(lossy(other)),
    }
}

/// A property value for a message: UTF-8 (lossy), trailing NULs dropped.
pub(super) fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).trim_end_matches('\0').into()
}

/// Up to two big-endian cells as a number (callers pass at most 8 bytes).
fn be_cells(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}
