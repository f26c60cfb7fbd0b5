//! Image data for training and evaluating networks: datasets decoded once into memory ([`ImageSet`]), a
//! seeded stratified validation split, augmentation and normalisation, and batches prepared on background
//! threads.

pub mod augment;
pub mod calibration;
pub mod image_set;
pub mod loader;
pub mod source;
pub mod split;

use std::path::{Path, PathBuf};

pub use augment::{Crop, Transform};
pub use calibration::calibration_tensors;
pub use image_set::ImageSet;
pub use loader::{epoch_batches, shard_batches, Batch, LoaderSettings, Shard};
pub use source::{open, ReadOptions, Splits};
pub use split::{per_class_subset, train_val_split};

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Nothing at the path.
    #[error("no dataset at '{0}'")]
    NotFound(PathBuf),
    /// A file-system step failed (what was done, to which path, and why).
    #[error(transparent)]
    Fs(#[from] hsconas_foundation::FsError),
    /// A layout or content that is not what the format needs (empty class, mixed sizes, truncated file).
    #[error("dataset '{path}': {message}")]
    Format {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An image that cannot be decoded.
    #[error("cannot decode image '{path}': {message}")]
    Image {
        /// The image.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
}

impl DataError {
    fn io(path: &Path, source: std::io::Error) -> DataError {
        DataError::Fs(hsconas_foundation::FsError::new("reading", path, source))
    }
}
