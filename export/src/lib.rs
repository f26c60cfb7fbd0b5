//! Export of HSCoNAS layer graphs: weights ([`Weights`], safetensors or a seeded random initialisation),
//! ONNX models ([`onnx`]) of whole networks, reference networks and single profiling pieces, trained
//! networks with batch norms folded and their metadata ([`trained_onnx`], [`ModelInfo`]), and generated
//! Rust inference crates ([`generate_crate`]), and INT8 QDQ models calibrated on images ([`quant`]).
//!
//! The ONNX protobuf types are the prost-generated ones that `tract-onnx` maintains
//! (`tract_onnx::pb`); nothing here encodes protobuf by hand.

mod crate_gen;
mod error;
mod fold;
mod model_info;
pub mod onnx;
pub mod quant;
mod trained;
mod weights;

pub use crate_gen::{
    generate_crate, tract_logits, validate_crate_name, write_crate, CrateModel, CrateOptions,
    GeneratedCrate,
};
pub use error::ExportError;
pub use fold::fold_batch_norms;
pub use hsconas_foundation::Weights;
pub use model_info::{
    producer, Accuracy, ModelInfo, Normalisation, ReferenceInfo, MODEL_INFO_FILE, WEIGHTS_FILE,
};
pub use onnx::{BatchDim, OnnxOptions};
pub use trained::{trained_graph, trained_onnx, TrainedExport};
pub use weights::GraphWeights;
