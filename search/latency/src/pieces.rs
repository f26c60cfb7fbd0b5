//! The ONNX models that get measured: profiling pieces and whole networks, with seeded random weights
//! (latency does not depend on the weights' values), in FP32 or, for a mixed-precision table, with their
//! INT8 layers quantised as `hsconas export onnx --precision int8` quantises them.

use crate::LatencyError;
use hsconas_devices::Int8Pieces;
use hsconas_export::quant::{
    int8_onnx, seeded_inputs, Int8Options, NodeSelection, RangeMethod, SEEDED_CALIBRATION_INPUTS,
};
use hsconas_export::{onnx, BatchDim, GraphWeights, OnnxOptions, Weights};
use hsconas_models::build::{self, layer_module, Piece};
use hsconas_models::graph::Graph;
use hsconas_models::{Arch, NetConfig};
use hsconas_vocabulary::Precision;

/// Seed of the random weights of every measured model.
const WEIGHT_SEED: u64 = 0;

/// What of a model is INT8.
enum Quantised {
    /// Nothing: an FP32 model.
    Nothing,
    /// A profiling block, whole, its output too (the next layer reads it quantised).
    Block,
    /// These 0-based layers of a network (input quantised at each one's entry, output dequantised at
    /// its exit).
    Layers(Vec<usize>),
}

fn to_onnx(
    graph: &Graph,
    batch: usize,
    metadata: (&str, String),
    quantised: Quantised,
    int8: Option<&Int8Pieces>,
) -> Result<Vec<u8>, LatencyError> {
    let options = OnnxOptions {
        batch: BatchDim::Fixed(batch),
        metadata: vec![(metadata.0.to_string(), metadata.1.clone())],
        ..OnnxOptions::default()
    };
    let weights = Weights::random(graph, WEIGHT_SEED);
    let (selection, quantize_output, nonnegative) = match quantised {
        Quantised::Nothing => return Ok(onnx::to_bytes(graph, &weights, &options)?),
        Quantised::Block => (NodeSelection::All, true, true),
        Quantised::Layers(layers) => (
            NodeSelection::Prefixes(
                layers
                    .iter()
                    .map(|&l| format!("{}.", layer_module(l)))
                    .collect(),
            ),
            false,
            false,
        ),
    };
    let int8 = int8.ok_or_else(|| {
        LatencyError::Invalid(format!(
            "'{}' has INT8 layers and the table measured FP32 pieces only",
            metadata.1
        ))
    })?;
    let shape = [graph.input.c, graph.input.h, graph.input.w];
    let inputs = seeded_inputs(shape, SEEDED_CALIBRATION_INPUTS, nonnegative);
    let quantisation = Int8Options {
        flavour: int8.flavour,
        method: RangeMethod::MinMax,
        selection,
        quantize_output,
        weight_range: int8.weight_range,
    };
    Ok(int8_onnx(graph, &weights, &inputs, &options, &quantisation)?.bytes)
}

/// One piece at the input shape it sees inside the network; an INT8 block is quantised whole (input and
/// output too) with `int8`'s settings, calibrated on seeded random inputs, as `hsconas export onnx --piece
/// KEY --precision int8` writes it.
pub fn piece_onnx(
    piece: Piece,
    config: &NetConfig,
    batch: usize,
    int8: Option<&Int8Pieces>,
) -> Result<Vec<u8>, LatencyError> {
    let quantised = match piece.precision() {
        Precision::Int8 => Quantised::Block,
        _ => Quantised::Nothing,
    };
    to_onnx(
        &build::piece(piece, config)?,
        batch,
        ("piece", piece.key()),
        quantised,
        int8,
    )
}

/// A whole network; its `@int8` layers quantised with `int8`'s settings (an error without them),
/// calibrated on seeded random inputs.
pub fn network_onnx(
    arch: &Arch,
    config: &NetConfig,
    batch: usize,
    int8: Option<&Int8Pieces>,
) -> Result<Vec<u8>, LatencyError> {
    let quantised = if arch.is_fp32() {
        Quantised::Nothing
    } else {
        Quantised::Layers(arch.int8_layers())
    };
    to_onnx(
        &build::network(arch, config)?,
        batch,
        ("architecture", arch.to_string()),
        quantised,
        int8,
    )
}

/// MACs per sample and trainable parameters of a network (the proxies the latency model is compared with).
pub fn macs_and_params(arch: &Arch, config: &NetConfig) -> Result<(usize, usize), LatencyError> {
    let graph = build::network(arch, config)?;
    Ok((graph.macs(), graph.param_count()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_export::quant::kernel_report;
    use hsconas_vocabulary::{Int8Flavour, WeightRange};

    const INT8: Int8Pieces = Int8Pieces {
        flavour: Int8Flavour::Cpu,
        weight_range: WeightRange::Reduced,
        calibration_inputs: SEEDED_CALIBRATION_INPUTS,
    };

    fn quantize_nodes(onnx: &[u8]) -> usize {
        kernel_report(onnx).expect("reads").count("QuantizeLinear")
    }

    #[test]
    fn int8_pieces_and_marked_layers_are_quantised_and_fp32_ones_are_not() {
        let config = NetConfig {
            input_size: 32,
            classes: 10,
            ..NetConfig::default()
        };
        let fp32: Piece = "L6:shuffle5:0.5".parse().expect("piece");
        let int8: Piece = "L6:shuffle5:0.5@int8".parse().expect("piece");
        assert_eq!(
            quantize_nodes(&piece_onnx(fp32, &config, 1, Some(&INT8)).expect("fp32")),
            0
        );
        let quantised = piece_onnx(int8, &config, 1, Some(&INT8)).expect("int8");
        assert!(quantize_nodes(&quantised) > 0);
        assert_eq!(
            quantised,
            piece_onnx(int8, &config, 1, Some(&INT8)).expect("again"),
            "the same piece exports to the same bytes (seeded weights and calibration)"
        );
        let err = piece_onnx(int8, &config, 1, None).expect_err("FP32 table");
        assert!(err.to_string().contains("FP32 pieces only"), "{err}");

        let arch: Arch = "shuffle3:0.5,shuffle5:1.0,skip,xception:0.3,shuffle7:0.8,skip,shuffle3:0.1,\
                          shuffle5:0.6,xception:1.0,shuffle3:0.9,skip,shuffle7:0.2,shuffle3:0.4,\
                          shuffle5:0.5,skip,xception:0.7,shuffle7:1.0,shuffle3:0.3,skip,shuffle5:0.2"
            .parse()
            .expect("arch");
        assert_eq!(
            quantize_nodes(&network_onnx(&arch, &config, 1, None).expect("fp32")),
            0
        );
        let one = arch
            .with_precision(8, Precision::Int8)
            .expect("xception layer");
        let two = one
            .with_precision(16, Precision::Int8)
            .expect("shuffle7 layer");
        let (q1, q2) = (
            quantize_nodes(&network_onnx(&one, &config, 1, Some(&INT8)).expect("one")),
            quantize_nodes(&network_onnx(&two, &config, 1, Some(&INT8)).expect("two")),
        );
        assert!(0 < q1 && q1 < q2, "{q1} then {q2} QuantizeLinear nodes");
        assert!(network_onnx(&one, &config, 1, None).is_err());
    }
}
