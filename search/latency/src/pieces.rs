//! The ONNX models that get measured: profiling pieces and whole networks, with seeded random weights
//! (latency does not depend on the weights' values).

use crate::LatencyError;
use hsconas_export::{onnx, BatchDim, GraphWeights, OnnxOptions, Weights};
use hsconas_models::build::{self, Piece};
use hsconas_models::graph::Graph;
use hsconas_models::{Arch, NetConfig};

/// Seed of the random weights of every measured model.
const WEIGHT_SEED: u64 = 0;

fn to_onnx(graph: &Graph, batch: usize, metadata: (&str, String)) -> Result<Vec<u8>, LatencyError> {
    let options = OnnxOptions {
        batch: BatchDim::Fixed(batch),
        metadata: vec![(metadata.0.to_string(), metadata.1)],
        ..OnnxOptions::default()
    };
    Ok(onnx::to_bytes(
        graph,
        &Weights::random(graph, WEIGHT_SEED),
        &options,
    )?)
}

/// One piece at the input shape it sees inside the network.
pub fn piece_onnx(piece: Piece, config: &NetConfig, batch: usize) -> Result<Vec<u8>, LatencyError> {
    to_onnx(&build::piece(piece, config)?, batch, ("piece", piece.key()))
}

/// A whole network.
pub fn network_onnx(
    arch: &Arch,
    config: &NetConfig,
    batch: usize,
) -> Result<Vec<u8>, LatencyError> {
    to_onnx(
        &build::network(arch, config)?,
        batch,
        ("architecture", arch.to_string()),
    )
}

/// MACs per sample and trainable parameters of a network (the proxies the latency model is compared with).
pub fn macs_and_params(arch: &Arch, config: &NetConfig) -> Result<(usize, usize), LatencyError> {
    let graph = build::network(arch, config)?;
    Ok((graph.macs(), graph.param_count()))
}
