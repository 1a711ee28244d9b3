//! Links the example with hypstub's QEMU virt memory map (linker/qemu-virt.ld, which
//! includes linker/sections.ld), for the bare-metal target only.

use std::path::PathBuf;

fn main() {
    let linker = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../linker");
    println!("cargo:rerun-if-changed={}", linker.display());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg=-L{}", linker.display());
        println!(
            "cargo:rustc-link-arg=-T{}",
            linker.join("qemu-virt.ld").display()
        );
    }
}
