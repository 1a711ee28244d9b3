//! pflash-boot: a custom bootloader for QEMU `virt` built on hypstub's crates, to show what
//! embedding takes (docs/embedding.md). It boots the FIT (kernel, optional initrd and DTB,
//! SHA-256 hashes) it finds at the start of the second flash bank, at EL2 through the stub
//! and the relocation engine:
//!
//!     qemu-system-aarch64 -M virt,virtualization=on -cpu max -m 1G -nographic \
//!         -bios pflash-boot.bin \
//!         -drive if=pflash,unit=1,format=raw,readonly=on,file=payload-flash.img \
//!         -append "console=ttyAMA0"
//!
//! What it writes itself: the two `main` functions below (the boot story) and the
//! [`board::PflashBoard`] hooks. What it takes from the library: the reset entry and early
//! tables (`hypstub-boards` feature `qemu-virt-entry`), the EL2 stub (`el2-stub`), the
//! EL1 runtime (`el1_runtime!`), the boot flow (`flow::run`) and, inside it, the FIT
//! reader, the DTB edits and the relocation engine.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pflash-boot is bare-metal firmware: `cargo xtask build-example` builds it");
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod board;

#[cfg(target_os = "none")]
mod firmware {
    use el2_stub::console::line;
    use hypstub_boards::qemu_virt::{self as virt, QemuVirt};
    use hypstub_boards::{console, el1, flow, handover, runtime};
    use log::{info, LevelFilter};

    use crate::board::PflashBoard;

    // The stub's platform hooks (console, PSCI through SMC, power-off) and the EL1
    // runtime (allocator, panic and fault reports) come with QEMU virt's board module.
    el2_stub::platform!(QemuVirt);
    hypstub_boards::el1_runtime!(console: virt::console_raw, stop: virt::power_off);

    /// The boot CPU at EL2, MMU off, on its EL2 stack (the library's reset entry).
    #[unsafe(no_mangle)]
    extern "C" fn qemu_virt_el2_main(current_el: u64) -> ! {
        line(
            virt::console_raw,
            format_args!("pflash-boot: on hypstub's crates"),
        );
        if current_el != 2 {
            runtime::wrong_el(
                virt::console_raw,
                current_el,
                "run QEMU with -M virt,virtualization=on",
            );
        }
        runtime::start_el1(virt::qemu_virt_el1_entry, virt::DTB.start, |_| {})
    }

    /// The boot CPU at EL1, MMU and caches on (the library's early tables).
    #[unsafe(no_mangle)]
    extern "C" fn qemu_virt_el1_main(_dtb: u64) -> ! {
        el1::install_vectors();
        // SAFETY: the early tables map the PL011 as Device memory; the logger owns it now.
        unsafe { console::init(virt::PL011, LevelFilter::Info) };
        runtime::init_heap();
        info!("pflash-boot: EL1 stage up; looking for a FIT in the second flash bank");
        // SAFETY: once, at EL1 with the early tables on.
        match unsafe { PflashBoard::new(runtime::heap_size()) } {
            Ok(mut board) => flow::run(&mut board),
            Err(e) => handover::stop_with(&e, virt::power_off),
        }
    }
}
