//! INT8 export: a layer graph, its weights and calibration images -> a QDQ ONNX model.
//!
//! Batch norms are folded first; the FP32 model runs on the calibration images to measure each
//! activation's range ([`calibrate`]); the model is rewritten with `QuantizeLinear` /
//! `DequantizeLinear` around the selected nodes ([`quantize_model`]): per-channel symmetric int8
//! weights (`axis = 0`), per-tensor int8 activations, int32 biases with scale = input scale x weight
//! scale. Two flavours: [`Int8Flavour::Cpu`] (asymmetric uint8 activations, what ONNX Runtime's x86
//! kernels run) and [`Int8Flavour::TensorRt`] (symmetric int8, zero points 0, which TensorRT requires).

mod calibrate;
mod kernels;
mod params;
mod qdq;
#[cfg(test)]
mod tests;

pub use calibrate::{calibrate, ActivationRanges, RangeMethod};
pub use hsconas_vocabulary::{Int8Flavour, WeightRange};
pub use kernels::{kernel_report, KernelReport};
pub use params::{
    activation_params, quantize_bias, quantize_per_channel, ActivationScheme, ChannelQuantized,
    Element, QuantParams, Range,
};
pub use qdq::{quantize_model, tensors_to_calibrate, NodeSelection, QdqSummary, QUANTIZABLE};

use hsconas_models::graph::Graph;
use prost::Message;

use crate::{fold_batch_norms, onnx, BatchDim, ExportError, OnnxOptions, Weights};

/// The activation scheme a flavour's runtime needs.
pub fn activation_scheme(flavour: Int8Flavour) -> ActivationScheme {
    match flavour {
        Int8Flavour::Cpu => ActivationScheme::Asymmetric,
        Int8Flavour::TensorRt => ActivationScheme::Symmetric,
    }
}

/// How many seeded random inputs calibrate a model that is timed rather than scored (a profiling piece,
/// or a network of a latency table's calibration or validation).
pub const SEEDED_CALIBRATION_INPUTS: usize = 8;

/// `count` seeded random inputs of `shape` (`c x h x w` values each) to calibrate a model whose timing,
/// not accuracy, matters: the timing does not depend on the values, but the kernels ONNX Runtime picks
/// depend on the range's sign, so `nonnegative` gives values in `[0, 2)` (a block or the head reads
/// ReLU outputs, whose quantised ReLUs ONNX Runtime then folds as in the network) and otherwise
/// `[-2, 2)` (normalised pixels). The same arguments always give the same inputs.
pub fn seeded_inputs(shape: [usize; 3], count: usize, nonnegative: bool) -> Vec<Vec<f32>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let n = shape.iter().product::<usize>();
    let low = if nonnegative { 0.0 } else { -2.0 };
    (0..count)
        .map(|_| (0..n).map(|_| rng.random_range(low..2.0)).collect())
        .collect()
}

/// How a network is quantised.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Options {
    /// Target runtime.
    pub flavour: Int8Flavour,
    /// How activation ranges are read from the calibration images.
    pub method: RangeMethod,
    /// Which nodes are quantised.
    pub selection: NodeSelection,
    /// Quantise the graph output too (a profiling piece: its output is an activation the next layer
    /// reads, quantised at the layer's exit). Off for networks: the logits stay FP32.
    pub quantize_output: bool,
    /// Weight resolution: [`WeightRange::Reduced`] for x86 CPUs without VNNI, whose U8S8 kernels
    /// saturate with full-range weights.
    pub weight_range: WeightRange,
}

impl Default for Int8Options {
    /// CPU flavour, min/max ranges, every node.
    fn default() -> Self {
        Int8Options {
            flavour: Int8Flavour::Cpu,
            method: RangeMethod::MinMax,
            selection: NodeSelection::All,
            quantize_output: false,
            weight_range: WeightRange::Full,
        }
    }
}

/// A quantised model and what was done to make it.
#[derive(Debug, Clone)]
pub struct Int8Export {
    /// The serialised QDQ ONNX model.
    pub bytes: Vec<u8>,
    /// What the rewrite quantised.
    pub summary: QdqSummary,
    /// The calibration ranges it used.
    pub ranges: ActivationRanges,
}

/// Folds `graph`'s batch norms, calibrates the FP32 network on `images` (each the graph's input,
/// `c x h x w` values: normalised pixels from the training split, never the test split, for a network)
/// and returns the QDQ model with `options`' batch and metadata plus the INT8 settings (`precision`,
/// `int8_flavour`, `int8_calibration`, `int8_calibration_images`, `int8_weight_range`).
pub fn int8_onnx(
    graph: &Graph,
    weights: &Weights,
    images: &[Vec<f32>],
    options: &OnnxOptions,
    int8: &Int8Options,
) -> Result<Int8Export, ExportError> {
    let (folded, folded_weights) = fold_batch_norms(graph, weights)?;
    let input = [graph.input.c, graph.input.h, graph.input.w];
    let single = OnnxOptions {
        batch: BatchDim::Fixed(1),
        ..options.clone()
    };
    let mut fp32_single = onnx::to_model(&folded, &folded_weights, &single)?;
    if int8.quantize_output {
        expose_output(&mut fp32_single);
    }
    let tensors = tensors_to_calibrate(&fp32_single, &int8.selection)?;
    let ranges = calibrate(
        &fp32_single.encode_to_vec(),
        &tensors,
        images,
        input,
        int8.method,
    )?;
    let mut metadata = options.metadata.clone();
    metadata.retain(|(k, _)| !k.starts_with("int8_") && k != "precision");
    metadata.extend([
        ("precision".to_string(), "int8".to_string()),
        ("int8_flavour".to_string(), int8.flavour.name().to_string()),
        ("int8_calibration".to_string(), int8.method.name()),
        (
            "int8_calibration_images".to_string(),
            images.len().to_string(),
        ),
        (
            "int8_weight_range".to_string(),
            int8.weight_range.name().to_string(),
        ),
    ]);
    let mut fp32 = onnx::to_model(
        &folded,
        &folded_weights,
        &OnnxOptions {
            metadata,
            ..options.clone()
        },
    )?;
    if int8.quantize_output {
        expose_output(&mut fp32);
    }
    let (model, summary) = quantize_model(
        &fp32,
        &ranges,
        activation_scheme(int8.flavour),
        int8.weight_range,
        &int8.selection,
    )?;
    Ok(Int8Export {
        bytes: model.encode_to_vec(),
        summary,
        ranges,
    })
}

/// Renames what produces the graph output to `<output>.fp32` and adds `Identity` to the output, so that
/// the output's producer is an inner tensor the rewrite quantises (and ONNX Runtime removes the Identity).
fn expose_output(model: &mut tract_onnx::pb::ModelProto) {
    let Some(graph) = model.graph.as_mut() else {
        return;
    };
    let Some(output) = graph.output.first().map(|o| o.name.clone()) else {
        return;
    };
    let inner = format!("{output}.fp32");
    for node in &mut graph.node {
        for out in node.output.iter_mut().filter(|o| **o == output) {
            out.clone_from(&inner);
        }
    }
    graph.node.push(tract_onnx::pb::NodeProto {
        input: vec![inner],
        output: vec![output],
        name: "output.identity".into(),
        op_type: "Identity".into(),
        ..Default::default()
    });
}
