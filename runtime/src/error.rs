use std::path::PathBuf;

use thiserror::Error;

/// Errors of the runtime. Messages say what to install or change where that is the fix.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error(
        "cannot load ONNX Runtime from '{path}': {reason}. Install release 1.17 or newer (pip install \
         onnxruntime==1.31.1, or onnxruntime-gpu for CUDA/TensorRT; on a Jetson, see docs/deploy.md) and point \
         ORT_DYLIB_PATH at its libonnxruntime.so, or run scripts/setup.sh"
    )]
    OrtLibrary {
        /// Where it was looked for.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// The model could not be parsed or prepared by the backend.
    #[error("invalid or unsupported ONNX model: {0}")]
    BadModel(String),
    /// Inputs that do not match the model.
    #[error("bad input: {0}")]
    BadInput(String),
    /// A run failed inside the backend.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The required execution provider cannot run here (`--require-provider`).
    #[error("execution provider {provider} is required but not available: {reason}")]
    ProviderUnavailable {
        /// The provider asked for first.
        provider: String,
        /// Why it could not be registered.
        reason: String,
    },
    /// A setting that cannot be used (zero threads, unknown CPU for pinning, ...).
    #[error("invalid setting: {0}")]
    BadSetting(String),
    /// A name or protocol the vocabulary refuses (an unknown provider, a protocol without runs).
    #[error(transparent)]
    Vocabulary(#[from] hsconas_vocabulary::VocabularyError),
    /// A file-system step failed (what was done, to which path, and why).
    #[error(transparent)]
    Fs(#[from] hsconas_foundation::FsError),
}
