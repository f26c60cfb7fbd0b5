//! What every hsconas crate needs, defined once:
//!
//! - [`fs::write_atomic`]: files replaced atomically (temporary file, `fsync`, rename, `fsync` of the folder).
//! - [`stats`]: the one percentile definition (linear interpolation between closest ranks), the relative
//!   error used to compare outputs of two engines, and the one-standard-error rule of model selection;
//!   [`golden`]: the golden input of generated crates.
//! - [`HostTensor`]: a dense row-major `f32` tensor, the form tensors take between crates, and
//!   [`Weights`]: named tensors, read from and written to safetensors files.
//! - [`progress::progress_bar`]: the progress bars of long jobs.
//! - [`logging::init`]: the binaries' log output on standard error.
//! - [`pipe`]: quiet exits when standard output is closed early (`hsconas arch sample | head`).
//! - [`package_dir!`]: a package's directory for its tests, read at run time ([`testing`]).
//!
//! Some definitions also go into the Rust crate `hsconas export crate` generates, which cannot depend on
//! this crate; their source lives in `src/snippets/` and is both compiled here and pasted there, so
//! the two can never drift apart.

pub mod fs;
pub mod golden;
pub mod intervals;
pub mod logging;
pub mod pipe;
pub mod progress;
pub mod stats;
mod tensor;
pub mod testing;
pub mod weights;

pub use fs::{write_atomic, FsError};
pub use tensor::HostTensor;
pub use weights::{Weights, WeightsError};

/// Sources shared with generated code (see the crate documentation).
pub mod snippets {
    /// [`crate::stats::percentile`].
    pub const PERCENTILE: &str = include_str!("snippets/percentile.rs");
    /// [`crate::stats::relative_error`].
    pub const RELATIVE_ERROR: &str = include_str!("snippets/relative_error.rs");
    /// [`crate::golden::golden_input`].
    pub const GOLDEN_INPUT: &str = include_str!("snippets/golden_input.rs");
}
