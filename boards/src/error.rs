//! Everything that can stop a boot before the point of no return, each with its message.

use thiserror::Error;

/// Why the EL1 stage cannot hand over to the payload.
#[derive(Debug, Error)]
pub enum BootError {
    /// fw_cfg (QEMU) could not provide the payload or command line.
    #[error(transparent)]
    FwCfg(#[from] crate::qemu_virt::fw_cfg::FwCfgError),
    /// A `hypstub.*` option or the command line is wrong.
    #[error(transparent)]
    Option(#[from] loader::options::OptionError),
    /// The payload is not a usable arm64 Image.
    #[error("payload: {0}")]
    Image(#[from] loader::image::ImageError),
    /// The payload cannot be placed in RAM.
    #[error("payload: {0}")]
    Place(#[from] loader::image::PlaceError),
    /// The DTB is malformed or cannot take the edits.
    #[error("DTB: {0}")]
    Fdt(#[from] loader::fdt::FdtError),
    /// The DTB describes no RAM the firmware can use.
    #[error("DTB: no /memory range contains {0:#x}, where this board's RAM starts")]
    NoRam(u64),
    /// The initrd does not fit after the payload.
    #[error("initrd: {size} bytes do not fit in RAM at {at:#x} (RAM ends at {ram_end:#x})")]
    InitrdDoesNotFit {
        /// Its size.
        size: u64,
        /// Where it would go.
        at: u64,
        /// The end of RAM.
        ram_end: u64,
    },
    /// Entering at EL2 needs the relocation engine, which is not there yet.
    #[error("hypstub.el=2 is not available yet (it needs the relocation engine); boot with hypstub.el=1 to enter the payload at EL1 under the stub")]
    El2NotAvailable,
}
