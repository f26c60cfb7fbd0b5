//! Why training, a checkpoint or a network's weights failed.

use std::path::PathBuf;

use hsconas_export::ExportError;
use hsconas_foundation::FsError;
use hsconas_models::ModelError;

/// Errors of training and of the networks in libtorch.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Settings training cannot run with.
    #[error("{0}")]
    Invalid(String),
    /// The loss stopped being a number.
    #[error("the loss became {loss} at step {step} (learning rate {lr:.4} too high?)")]
    Diverged {
        /// The loss.
        loss: f64,
        /// The optimiser step.
        step: u64,
        /// The learning rate of that step.
        lr: f64,
    },
    /// CUDA was asked for and libtorch sees none.
    #[error(
        "--cuda was given but libtorch sees no CUDA device (hsconas doctor shows what it found)"
    )]
    NoCuda,
    /// A checkpoint that cannot be parsed (truncated or corrupt).
    #[error("{} is not a valid checkpoint (truncated or corrupt)", path.display())]
    Corrupt {
        /// The checkpoint.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A safetensors file without hsconas's training state.
    #[error("{} is not an hsconas training checkpoint", path.display())]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
    },
    /// A training state written by an incompatible build.
    #[error("{} holds a training state this build cannot read", path.display())]
    UnreadableState {
        /// The checkpoint.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint or output folder that does not belong to this run.
    #[error("{}: {message}", path.display())]
    Mismatch {
        /// The checkpoint or folder.
        path: PathBuf,
        /// What differs and what to do.
        message: String,
    },
    /// A tensor a network needs is missing.
    #[error("no tensor '{0}'")]
    MissingTensor(String),
    /// libtorch failed.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// A safetensors file could not be written or a tensor of it read.
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// JSON that could not be written.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A file-system step failed (with the path and what was being done).
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A network could not be built.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Weights that do not fit a network.
    #[error(transparent)]
    Export(#[from] ExportError),
}
