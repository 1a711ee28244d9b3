//! The format work of hypstub's EL1 boot stage: everything between "here are
//! the payload's bytes and the DTB" and "here is where each goes".
//!
//! - [`image`]: the arm64 Linux `Image` header (booting.rst) and the choice
//!   of a load address in RAM that avoids what must not be overwritten.
//! - [`options`]: the `hypstub.*` firmware options, read from and removed
//!   from the kernel command line (docs/options.md).
//! - [`dt`]: the device tree: a DTB checked once, then what it says (RAM
//!   banks, reserved memory, the command line and initrd, the console UART
//!   with its address translated through the buses' `ranges`, the CPUs'
//!   spin-table addresses) and the edits of `/chosen`, RAM, reservations and
//!   nodes, made in place in one rewrite, with one error type.
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

pub mod dt;
#[cfg(feature = "fit")]
pub mod fit;
pub mod image;
pub mod options;
#[cfg(feature = "fit")]
pub mod sha256;
