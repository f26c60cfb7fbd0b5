use std::path::PathBuf;

use thiserror::Error;

/// Why an export failed. Messages name the tensor, the node or the file.
#[derive(Debug, Error)]
pub enum ExportError {
    /// A tensor the network needs is not in the weights.
    #[error("weights have no tensor '{name}' (needed with shape {shape:?})")]
    MissingTensor {
        /// Parameter name.
        name: String,
        /// Expected shape.
        shape: Vec<usize>,
    },
    /// A tensor has the wrong shape.
    #[error("tensor '{name}' has shape {found:?}, the network needs {expected:?}")]
    WrongShape {
        /// Parameter name.
        name: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape in the weights.
        found: Vec<usize>,
    },
    /// Weights that cannot be read or written.
    #[error(transparent)]
    Weights(#[from] hsconas_foundation::WeightsError),
    /// A `model.json` that is missing, unreadable or inconsistent.
    #[error("'{path}': {reason}")]
    BadModelInfo {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// tract could not run the exported model to record the golden output.
    #[error("computing the golden output with tract: {0}")]
    Golden(String),
    /// Bytes that do not decode as an ONNX model.
    #[error("not an ONNX model: {0}")]
    NotOnnx(String),
    /// A batch size of zero or an unsupported opset.
    #[error("invalid export option: {0}")]
    BadOption(String),
    /// A calibration set that is missing, empty, of the wrong shape or holds non-finite values, or a
    /// model tract could not run to calibrate.
    #[error("INT8 calibration: {0}")]
    Calibration(String),
    /// A model, tensor or range that cannot be quantised (named in the message).
    #[error("INT8 quantisation: {0}")]
    Quantize(String),
    /// A file-system step failed (what was done, to which path, and why).
    #[error(transparent)]
    Fs(#[from] hsconas_foundation::FsError),
}
