//! Everything the EL1 boot stage prepares for the relocation engine, up to the point of no
//! return (docs/architecture.md, docs/reloc-args.md).
//!
//! The EL1 stage loads a payload into *staging* pages anywhere in free RAM, then asks the EL2
//! stub (HVC_SOFT_RESTART) to run the relocation engine at EL2 with one pointer to an
//! argument block. The engine turns on an EL2 identity map, copies each staged page to its
//! destination by walking a Linux-kexec-style page list, optionally checks CRC32C digests of
//! the destinations, turns the MMU off and enters the payload. This crate builds all of that:
//!
//! - [`args`]: the argument block ABI the engine reads ([`args::ArgBlock`], its field
//!   offsets for the assembly, and the checks the engine makes). docs/reloc-args.md documents it.
//! - [`list`]: Linux's page-list format (arch/arm64/kernel/relocate_kernel.S), a writer, and
//!   a walker that interprets a list exactly as the engine does.
//! - [`mem`]: the [`Memory`](mem::Memory) trait through which the builder writes physical
//!   memory, and a sparse [`FakeMemory`](mem::FakeMemory) for tests.
//! - [`digest`]: CRC-32C, the digest the engine checks, portable and with the Armv8 CRC32
//!   instructions.
//! - [`plan`]: the [`Planner`](plan::Planner): validates destinations, allocates staging
//!   runs and every page the engine reads (never inside a destination), writes the list,
//!   the EL2 identity map (aarch64-paging) and the block, and lists the ranges to clean to
//!   the Point of Coherency before the HVC.
//! - [`engine`]: the engine itself (`engine.S`, EL2 assembly, position-independent), whose
//!   bytes the planner copies into the control page.
//!
//! Design principles: every check that can fail runs before the point of no return and
//! ends in an error enum naming the values involved (no panics on bad input); nothing here
//! touches hardware except the optional CRC32 instructions (and the engine, which only runs
//! at EL2), so `cargo test -p reloc` runs everything on the host, against
//! [`FakeMemory`](mem::FakeMemory). The crate depends on `aarch64-paging`,
//! `buddy_system_allocator`, `thiserror` and `hypstub-abi` (the argument block and the
//! engine's register values), and on nothing board-specific.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod digest;
pub mod engine;
pub mod list;
pub mod mem;
pub mod plan;

/// The argument block ABI (it lives in `hypstub-abi`, which the stub can use too).
pub use hypstub_abi::reloc_args as args;

pub use list::{IND_DESTINATION, IND_DONE, IND_INDIRECTION, IND_SOURCE};

/// The page size of the page list, the staging pool and the EL2 identity map: 4 KiB.
pub const PAGE_SIZE: u64 = hypstub_abi::PAGE_SIZE;

// Physical addresses are `u64` and aarch64-paging works in `usize`: the two must agree.
const _: () = assert!(usize::BITS == 64);
