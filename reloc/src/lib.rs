//! The relocation engine's crate: for now, the page-list entry format shared with Linux's
//! kexec (arch/arm64/kernel/relocate_kernel.S). The argument block, the plan builder, the
//! EL2 identity map and the engine arrive with the EL2 boot path.

#![cfg_attr(not(test), no_std)]

/// A page-list entry that sets the destination cursor to its page address.
pub const IND_DESTINATION: u64 = 1 << 0;
/// A page-list entry that continues reading entries from its page.
pub const IND_INDIRECTION: u64 = 1 << 1;
/// The last page-list entry.
pub const IND_DONE: u64 = 1 << 2;
/// A page-list entry whose page is copied to the cursor, which then advances one page.
pub const IND_SOURCE: u64 = 1 << 3;
