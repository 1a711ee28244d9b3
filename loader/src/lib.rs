//! The format work of hypstub's EL1 boot stage: everything between "here are
//! the payload's bytes and the DTB" and "here is where each goes".
//!
//! - [`image`]: the arm64 Linux `Image` header (booting.rst) and the choice
//!   of a load address in RAM that avoids what must not be overwritten.
//! - [`options`]: the `hypstub.*` firmware options, read from and removed
//!   from the kernel command line (docs/options.md).
//! - [`fdt`]: reading RAM, PSCI, CPUs and the command line from the DTB, and
//!   patching `/chosen` and the memory reservations in place.
//! - [`dtfacts`]: board facts from a DTB: RAM banks, bus-to-CPU address
//!   translation, the console UART and the CPUs' spin-table addresses.
//! - `fit` (feature `fit`): the kernel, initrd and DTB of a FIT image's default
//!   configuration, and their SHA-256 hashes.
//!
//! This is plain `no_std` Rust with a heap (`alloc`): no hardware access, no
//! unsafe code, no board knowledge, so `cargo test -p loader` runs all of it
//! on the host. It may depend on `dtoolkit` (FDT parsing and writing), `log`
//! (for the level type of `hypstub.log`), `sha2` (FIT hashes) and
//! `thiserror`, and on no other hypstub crate; boards call it, never the
//! reverse. Input from outside the
//! firmware (headers, DTBs, command lines) never makes it panic: every
//! problem is an error naming the field and the values involved.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod dtfacts;
pub mod fdt;
#[cfg(feature = "fit")]
pub mod fit;
pub mod image;
pub mod options;
