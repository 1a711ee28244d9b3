//! hypstub's fuzz targets: every parser and planner entry point that takes input from
//! outside the firmware, each with the invariants it promises checked on every input (not
//! only "no panic"). `fuzz_targets/<name>.rs` is one line per target (the [`target!`]
//! macro); the logic, the seeds and the checks live in the module of the same name, so that
//! a crash reads as a failed assertion naming the broken promise.
//!
//! | target | entry points |
//! |---|---|
//! | [`image`] | `loader::image`: `ImageHeader::parse`, `check_file_len`, `place` |
//! | [`options`] | `loader::options::parse`, `check_length` |
//! | [`dt`] | `loader::dt::Dtb::new` and `apply` with the edits the boot flow makes |
//! | [`dtfacts`] | the DTB facts: RAM, reservations, `/chosen`, console, CPUs, and the Pi 4's checks of them (`hypstub_boards::rpi4::cpus`) |
//! | [`fit`] | `loader::fit` with verification, and the boot flow's `hypstub_boards::payload::parse_fit` |
//! | [`args`] | `hypstub_abi::reloc_args`: the argument block's encoding and `validate`, digests |
//! | [`list`] | `reloc::list`: `walk` against the engine's reading of a list, `ListWriter` round trips |
//! | [`plan`] | `reloc::plan::Planner`: destinations, staging, the engine's pages, the list, the identity map |
//!
//! Built with libFuzzer (`libfuzzer-sys`) and coverage instrumentation from stable codegen
//! flags by `cargo xtask fuzz` (docs/fuzzing.md says why and how).

#![allow(
    clippy::single_range_in_vec_init,
    reason = "lists of one range are meant in the layouts"
)]

pub mod args;
pub mod dt;
pub mod dtfacts;
pub mod fit;
pub mod image;
pub mod input;
pub mod list;
pub mod mem;
pub mod options;
pub mod plan;
pub mod seeds;

/// A fuzz target's body: `hypstub_fuzz::target!(image);` in `fuzz_targets/image.rs` runs
/// `image::run` on every input and, when `cargo xtask fuzz` asks for seeds
/// ([`seeds::hook`]), writes `image::seeds` and exits.
#[macro_export]
macro_rules! target {
    ($name:ident) => {
        libfuzzer_sys::fuzz_target!(
            init: $crate::seeds::hook(stringify!($name), $crate::$name::seeds),
            |data: &[u8]| $crate::$name::run(data)
        );
    };
}
