//! The ABIs hypstub's stages share, in one place that depends on no stage: the EL1 boot
//! stage writes them, the EL2 stub (`el2-stub`) and the relocation engine (`reloc`) read
//! or write them, and neither of the two depends on the other for them.
//!
//! - [`reloc_args`]: the relocation argument block, the one pointer HVC_SOFT_RESTART hands
//!   to the engine (docs/reloc-args.md).
//! - [`regs`]: the architectural values the stub and the engine write to SCTLR_ELx and
//!   SPSR_EL2, by field name where `aarch64-cpu` names the field (Arm ARM D19.2).
//!
//! Plain `no_std` Rust with no hardware access: everything here is tested on the host.

#![cfg_attr(not(test), no_std)]

pub mod regs;
pub mod reloc_args;

/// The page size of the page list, the staging pool and the EL2 identity map: 4 KiB.
pub const PAGE_SIZE: u64 = 4096;
