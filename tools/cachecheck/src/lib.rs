//! cachecheck: a QEMU TCG plugin that models a write-back data cache and the instruction
//! cache per 64-byte line, so that a missing cache clean or invalidate, which QEMU's TCG
//! (no caches) never shows, becomes a reported violation. See README.md.

pub mod decode;
pub mod model;
pub mod plugin;
