//! Links the bare-metal build of `soak-client` with `link.ld` (run address 0x4020_0000, the
//! arm64 Image layout, the digest record last). Host builds, where `main.rs` is only a stub,
//! use the default linking.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    }
}
