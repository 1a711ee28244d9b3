//! The boards' memory maps, compiled from the very files the firmware, its linker scripts
//! (through `boards/build.rs`) and the example bootloader use:
//! `boards/src/<board>/memory_map.rs`, constants with no dependencies. xtask takes from them
//! what it writes or checks (config.txt's `kernel_address`, the stub's RAM Linux must see
//! reserved, the flash bank size, ...) instead of restating it, and still depends on no
//! firmware crate.

#[path = "../../boards/src/qemu_virt/memory_map.rs"]
pub mod qemu_virt;

#[path = "../../boards/src/rpi4/memory_map.rs"]
pub mod rpi4;
