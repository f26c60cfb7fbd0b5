//! Export of HSCoNAS layer graphs: weights ([`Weights`], safetensors or a seeded random initialisation)
//! and ONNX models ([`onnx`]) of whole networks, reference networks and single profiling pieces.
//!
//! The ONNX protobuf types are the prost-generated ones that `tract-onnx` maintains
//! (`tract_onnx::pb`); nothing here encodes protobuf by hand.

mod error;
mod fsutil;
pub mod onnx;
mod weights;

pub use error::ExportError;
pub use fsutil::write_atomic;
pub use onnx::{Batch, OnnxOptions};
pub use weights::{Tensor, Weights};
