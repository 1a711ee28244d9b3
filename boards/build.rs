//! Links each board binary with its linker script and its board's memory map, for the
//! bare-metal target only (on the host the binaries are empty stubs so that
//! `cargo test`/`clippy` on the workspace work).
//!
//! The memory maps are Rust: `src/<board>/memory_map.rs`, which the library re-exports and
//! this script compiles too. Every number a board's linker script needs reaches the linker
//! as `--defsym=HYPSTUB_<NAME>=<value>` ([`qemu_virt_symbols`], [`rpi4_symbols`]), so the
//! scripts in `linker/` restate none. Firmware built on the library for QEMU virt
//! (`examples/pflash-boot`) links with the same script and the same symbols, which it reads
//! from this package's `links` metadata: `DEP_HYPSTUB_BOARDS_LINKER_DIR` (the directory of
//! the scripts, for `-L`) and `DEP_HYPSTUB_BOARDS_QEMU_VIRT_DEFSYMS` (the `--defsym=...`
//! arguments, separated by spaces).

use std::path::PathBuf;

// Only part of each map concerns the linker.
#[allow(dead_code)]
#[path = "src/qemu_virt/memory_map.rs"]
mod qemu_virt;
#[allow(dead_code)]
#[path = "src/rpi4/memory_map.rs"]
mod rpi4;

/// What `linker/qemu-virt.ld` and `linker/sections.ld` read of QEMU virt's memory map.
fn qemu_virt_symbols() -> Vec<(&'static str, u64)> {
    use qemu_virt::*;
    vec![
        ("HYPSTUB_IMAGE_START", IMAGE.start),
        ("HYPSTUB_IMAGE_END", IMAGE.end),
        ("HYPSTUB_RESIDENT_START", RESIDENT.start),
        ("HYPSTUB_RESIDENT_END", RESIDENT.end),
        ("HYPSTUB_EL1_RAM_START", EL1_RAM.start),
        ("HYPSTUB_EL1_RAM_END", EL1_RAM.end),
        ("HYPSTUB_EL1_STACK_SIZE", EL1_STACK_SIZE),
    ]
}

/// What `linker/rpi4.ld` and `linker/sections.ld` read of the Raspberry Pi 4's memory map.
fn rpi4_symbols() -> Vec<(&'static str, u64)> {
    use rpi4::*;
    vec![
        ("HYPSTUB_SHARED_START", SHARED.start),
        ("HYPSTUB_SHARED_END", SHARED.end),
        ("HYPSTUB_RESIDENT_START", RESIDENT.start),
        ("HYPSTUB_RESIDENT_END", RESIDENT.end),
        ("HYPSTUB_EL1_RAM_START", EL1_RAM.start),
        ("HYPSTUB_EL1_RAM_END", EL1_RAM.end),
        ("HYPSTUB_EL1_STACK_SIZE", EL1_STACK_SIZE),
        ("HYPSTUB_IMAGE_START", EARLY_CODE.start),
        ("HYPSTUB_IMAGE_END", EARLY_CODE.end),
    ]
}

/// The linker arguments that define `symbols`.
fn defsyms(symbols: &[(&str, u64)]) -> Vec<String> {
    symbols
        .iter()
        .map(|(name, value)| format!("--defsym={name}={value:#x}"))
        .collect()
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let linker = manifest.join("..").join("linker");
    println!("cargo::rerun-if-changed={}", linker.display());
    for board in ["qemu_virt", "rpi4"] {
        let map = manifest.join("src").join(board).join("memory_map.rs");
        println!("cargo::rerun-if-changed={}", map.display());
    }
    let qemu_virt = defsyms(&qemu_virt_symbols());
    println!("cargo::metadata=LINKER_DIR={}", linker.display());
    println!("cargo::metadata=QEMU_VIRT_DEFSYMS={}", qemu_virt.join(" "));
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo::rustc-link-arg=-L{}", linker.display());
        let boards = [
            ("qemu-virt", "qemu-virt.ld", qemu_virt),
            ("rpi4", "rpi4.ld", defsyms(&rpi4_symbols())),
            ("rpi4-armstub", "rpi4-armstub.ld", Vec::new()),
        ];
        for (bin, script, args) in boards {
            println!(
                "cargo::rustc-link-arg-bin={bin}=-T{}",
                linker.join(script).display()
            );
            for arg in args {
                println!("cargo::rustc-link-arg-bin={bin}={arg}");
            }
        }
    }
}
