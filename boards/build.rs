//! Passes each board binary its linker script, for the bare-metal target only (on the host
//! the binaries are empty stubs so that `cargo test`/`clippy` on the workspace work).

use std::path::PathBuf;

fn main() {
    let linker = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("..")
        .join("linker");
    println!("cargo:rerun-if-changed={}", linker.display());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg=-L{}", linker.display());
        println!(
            "cargo:rustc-link-arg-bin=qemu-virt=-T{}",
            linker.join("qemu-virt.ld").display()
        );
        println!(
            "cargo:rustc-link-arg-bin=rpi4=-T{}",
            linker.join("rpi4.ld").display()
        );
        println!(
            "cargo:rustc-link-arg-bin=rpi4-armstub=-T{}",
            linker.join("rpi4-armstub.ld").display()
        );
    }
}
