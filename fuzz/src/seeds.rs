//! Seeds: each target's own (made by the project's code: real layouts, argument blocks and
//! page lists the planner writes, DTB edits the boot flow makes), built from the outside
//! inputs `cargo xtask fuzz` gathers at run time (QEMU virt's DTBs, Debian's Raspberry Pi 4
//! DTB and kernel header, FITs written by `xtask::fit`, real command lines).
//!
//! `cargo xtask fuzz` runs each target binary once with `HYPSTUB_FUZZ_INPUTS` (the folder
//! of outside inputs, one subfolder per kind: `dtb`, `fit`, `kernel`, `cmdline`) and
//! `HYPSTUB_FUZZ_SEEDS` (the target's seed folder) set; [`hook`] then writes the target's
//! seeds there and exits before libFuzzer starts.

use std::path::{Path, PathBuf};

/// The folder of outside inputs.
pub const INPUTS_ENV: &str = "HYPSTUB_FUZZ_INPUTS";
/// The folder to write the target's seeds into.
pub const SEEDS_ENV: &str = "HYPSTUB_FUZZ_SEEDS";

/// The outside inputs, by kind.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// DTBs (QEMU virt's dumps, Debian's Pi 4 DTB and its QEMU version).
    pub dtb: Vec<(String, Vec<u8>)>,
    /// FITs.
    pub fit: Vec<(String, Vec<u8>)>,
    /// Kernel headers (the first bytes of Debian's kernel).
    pub kernel: Vec<(String, Vec<u8>)>,
    /// Command lines.
    pub cmdline: Vec<(String, Vec<u8>)>,
}

impl Inputs {
    /// Reads every file of `dir/<kind>/`; a missing folder is an empty kind.
    pub fn read(dir: &Path) -> std::io::Result<Self> {
        let kind = |name: &str| -> std::io::Result<Vec<(String, Vec<u8>)>> {
            let sub = dir.join(name);
            if !sub.is_dir() {
                return Ok(Vec::new());
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(&sub)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            files.sort();
            files
                .into_iter()
                .map(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy().into();
                    Ok((name, std::fs::read(&p)?))
                })
                .collect()
        };
        Ok(Self {
            dtb: kind("dtb")?,
            fit: kind("fit")?,
            kernel: kind("kernel")?,
            cmdline: kind("cmdline")?,
        })
    }
}

/// A target's seeds, as (file name, bytes).
pub type Seeds = Vec<(String, Vec<u8>)>;

/// With [`SEEDS_ENV`] set: writes `make(inputs)` into that folder and exits; otherwise
/// returns, and libFuzzer runs.
pub fn hook(target: &str, make: fn(&Inputs) -> Seeds) {
    let Some(out) = std::env::var_os(SEEDS_ENV) else {
        return;
    };
    let inputs = match std::env::var_os(INPUTS_ENV) {
        Some(dir) => Inputs::read(Path::new(&dir)).unwrap_or_else(|e| {
            eprintln!(
                "{target}: cannot read the inputs in {}: {e}",
                dir.to_string_lossy()
            );
            std::process::exit(2)
        }),
        None => Inputs::default(),
    };
    let out = PathBuf::from(out);
    let seeds = make(&inputs);
    let written = std::fs::create_dir_all(&out).and_then(|()| {
        seeds
            .iter()
            .try_for_each(|(name, bytes)| std::fs::write(out.join(name), bytes))
    });
    if let Err(e) = written {
        eprintln!("{target}: cannot write seeds to {}: {e}", out.display());
        std::process::exit(2);
    }
    println!("{target}: {} seeds in {}", seeds.len(), out.display());
    std::process::exit(0);
}
