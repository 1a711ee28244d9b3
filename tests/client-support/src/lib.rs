//! Code shared by the bare-metal test clients `abi-client`, `el2-client` and `soak-client`
//! (tests/*-client): the PL011 console ([`console`], [`say!`]), the device-tree walk
//! ([`fdt`], host-tested), physical address ranges ([`region`]), CRC32C ([`crc32c`], also
//! used by xtask), soak-client's embedded image digest ([`image_digest`]), words shared
//! with assembly and other CPUs ([`shared::SharedWords`]), and the [`checks::Checker`]
//! that prints and counts check results under the client's name.
//!
//! It builds for `aarch64-unknown-none-softfloat` (the clients) and for the host (where
//! `cargo test -p client-support` runs the unit tests). Everything here runs with the MMU
//! off: no atomics, aligned accesses only.

#![cfg_attr(not(test), no_std)]

pub mod checks;
pub mod console;
pub mod crc32c;
pub mod fdt;
pub mod image_digest;
pub mod region;
pub mod shared;
