//! hypstub's boards: for each board its memory map, console, early translation tables,
//! the stub's platform hooks and where payloads come from; plus what every board's EL1
//! stage shares (`el1`, `console`, `demo`, `boot`, `payload`: the parts of a FIT, checked).
//! Each board's firmware `main` is a binary in `src/bin/`, reading as the boot story.
//!
//! Depends on `el2-stub` (the EL2 stub), `loader` (payload formats, options, DTB edits) and
//! `reloc`; nothing depends on it.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod boot;
pub mod console;
pub mod crc32;
#[cfg(target_arch = "aarch64")]
pub mod demo;
pub mod el1;
pub mod error;
pub mod flow;
pub mod handover;
pub mod payload;
pub mod qemu_virt;
pub mod rpi4;
#[cfg(target_arch = "aarch64")]
pub mod runtime;
pub mod sha256;
