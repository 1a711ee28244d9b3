//! Links the example with hypstub's QEMU virt memory map, for the bare-metal target only:
//! linker/qemu-virt.ld (which includes linker/sections.ld) and the `--defsym` symbols that
//! give it its numbers, both from hypstub-boards' build script (its `links` metadata,
//! DEP_HYPSTUB_BOARDS_*), so the example links exactly as hypstub's own qemu-virt image.

fn main() {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: hypstub-boards' build script provides it (links)")
        })
    };
    let linker = var("DEP_HYPSTUB_BOARDS_LINKER_DIR");
    let defsyms = var("DEP_HYPSTUB_BOARDS_QEMU_VIRT_DEFSYMS");
    println!("cargo::rerun-if-changed={linker}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo::rustc-link-arg=-L{linker}");
        let script = std::path::Path::new(&linker).join("qemu-virt.ld");
        println!("cargo::rustc-link-arg=-T{}", script.display());
        for arg in defsyms.split_whitespace() {
            println!("cargo::rustc-link-arg={arg}");
        }
    }
}
