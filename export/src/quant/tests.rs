//! The QDQ rewrite's structure on a network of the space, calibration's contract and its refusals.
//! (Numerical agreement with the FP32 model is checked through ONNX Runtime in `tests/tests/int8.rs`:
//! tract applies only the first scale of a per-channel DequantizeLinear.)

use std::collections::HashMap;

use hsconas_models::build;
use hsconas_models::graph::Graph;
use hsconas_models::{Arch, NetConfig};
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

use super::*;
use crate::{GraphWeights, OnnxOptions, Weights};

const ARCH: &str =
    "shuffle3:0.5,xception:1.0,skip,shuffle5:0.7,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,\
    shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,\
    shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0";

fn network() -> (Graph, Weights) {
    let arch: Arch = ARCH.parse().expect("architecture");
    let config = NetConfig {
        input_size: 32,
        classes: 10,
        ..NetConfig::default()
    };
    let graph = build::network(&arch, &config).expect("builds");
    let weights = Weights::random(&graph, 7);
    (graph, weights)
}

fn images(n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            (0..3 * 32 * 32)
                .map(|k| (((k * 7 + i * 13) % 97) as f32 / 48.0) - 1.0)
                .collect()
        })
        .collect()
}

struct Decoded {
    nodes: Vec<NodeProto>,
    producer: HashMap<String, NodeProto>,
    initializers: HashMap<String, TensorProto>,
}

fn decode(bytes: &[u8]) -> Decoded {
    let graph = ModelProto::decode(bytes)
        .expect("protobuf")
        .graph
        .expect("graph");
    let mut producer = HashMap::new();
    for n in &graph.node {
        for o in &n.output {
            producer.insert(o.clone(), n.clone());
        }
    }
    Decoded {
        nodes: graph.node,
        producer,
        initializers: graph
            .initializer
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect(),
    }
}

fn f32s(t: &TensorProto) -> Vec<f32> {
    t.raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn export(selection: NodeSelection, flavour: Int8Flavour) -> Int8Export {
    export_with(
        Int8Options {
            flavour,
            selection,
            ..Int8Options::default()
        },
        4,
    )
}

/// The test network exported with `options`, calibrated on `images` random inputs.
fn export_with(options: Int8Options, calibration_images: usize) -> Int8Export {
    let (graph, weights) = network();
    int8_onnx(
        &graph,
        &weights,
        &images(calibration_images),
        &OnnxOptions::default(),
        &options,
    )
    .expect("exports")
}

#[test]
fn every_convolution_reads_dequantized_int8_tensors() {
    let out = export(NodeSelection::All, Int8Flavour::Cpu);
    let m = decode(&out.bytes);
    let op_of = |t: &str| m.producer.get(t).map(|n| n.op_type.as_str());
    let convs: Vec<&NodeProto> = m.nodes.iter().filter(|n| n.op_type == "Conv").collect();
    assert!(convs.len() > 40);
    for conv in &convs {
        for (slot, input) in conv.input.iter().enumerate() {
            assert_eq!(
                op_of(input),
                Some("DequantizeLinear"),
                "{} input {slot}",
                conv.name
            );
        }
        let w_dq = &m.producer[&conv.input[1]];
        let axis = w_dq
            .attribute
            .iter()
            .find(|a| a.name == "axis")
            .map(|a| a.i);
        assert_eq!(
            axis,
            Some(0),
            "{}: per-channel weights on the output axis",
            conv.name
        );
        assert_eq!(
            m.initializers[&w_dq.input[0]].data_type,
            DataType::Int8 as i32
        );
        let b_dq = &m.producer[&conv.input[2]];
        assert_eq!(
            m.initializers[&b_dq.input[0]].data_type,
            DataType::Int32 as i32
        );
        // Bias scale = input scale x weight scale, channel by channel.
        let x_scale = f32s(&m.initializers[&m.producer[&conv.input[0]].input[1]])[0];
        let w_scales = f32s(&m.initializers[&w_dq.input[1]]);
        let b_scales = f32s(&m.initializers[&b_dq.input[1]]);
        for (b, w) in b_scales.iter().zip(&w_scales) {
            assert!((b - x_scale * w).abs() <= 1e-6 * b.abs(), "{}", conv.name);
        }
    }
    // No FP32 weight is left, and ReLUs read their convolution directly (fused by ONNX Runtime).
    assert!(m
        .initializers
        .values()
        .all(|t| !t.name.ends_with(".weight") || t.data_type != DataType::Float as i32));
    for relu in m.nodes.iter().filter(|n| n.op_type == "Relu") {
        assert_eq!(op_of(&relu.input[0]), Some("Conv"), "{}", relu.name);
    }
    // The logits stay FP32, from the classifier.
    assert_eq!(op_of("output"), Some("Gemm"));
    assert_eq!(out.summary.int8_weights, convs.len() + 1);
    assert_eq!(out.summary.fp32_nodes, 0);
    assert_eq!(out.ranges.images, 4);
}

#[test]
fn the_split_and_concatenation_share_one_scale() {
    let out = export(NodeSelection::All, Int8Flavour::Cpu);
    let m = decode(&out.bytes);
    let scale_of = |t: &str| m.producer[&format!("{t}.q")].input[1].clone();
    // Layer 1 splits layer 0's output into a pass-through half and a branch, and concatenates them.
    let shared = scale_of("layers.0.cat");
    for t in ["layers.1.pass", "layers.1.split", "layers.1.cat"] {
        assert_eq!(scale_of(t), shared, "{t}");
    }
    // A convolution's own output inside a branch has a scale of its own.
    assert_ne!(scale_of("layers.1.main.4"), shared);
    assert!(out.summary.scale_groups < out.summary.quantized_tensors);
}

#[test]
fn tensorrt_flavour_has_zero_zero_points() {
    let out = export(NodeSelection::All, Int8Flavour::TensorRt);
    let m = decode(&out.bytes);
    let mut checked = 0;
    for n in m.nodes.iter().filter(|n| n.op_type == "QuantizeLinear") {
        let zp = &m.initializers[&n.input[2]];
        assert_eq!(zp.data_type, DataType::Int8 as i32, "{}", n.name);
        assert!(zp.raw_data.iter().all(|&b| b == 0), "{}", n.name);
        checked += 1;
    }
    assert!(checked > 50);
    let cpu = decode(&export(NodeSelection::All, Int8Flavour::Cpu).bytes);
    let after_relu = &cpu.initializers[&cpu.producer["layers.0.cat.q"].input[2]];
    assert_eq!(after_relu.data_type, DataType::Uint8 as i32);
    assert_eq!(
        after_relu.raw_data,
        vec![0],
        "ReLU outputs start at zero point 0"
    );
}

#[test]
fn a_selection_quantizes_only_its_layer() {
    let out = export(
        NodeSelection::Prefixes(vec!["layers.3.".into()]),
        Int8Flavour::Cpu,
    );
    let m = decode(&out.bytes);
    let convs = |prefix: &str| {
        m.nodes
            .iter()
            .filter(|n| n.op_type == "Conv" && n.name.starts_with(prefix))
            .map(|n| {
                m.producer
                    .get(&n.input[1])
                    .map_or("initializer".into(), |p| p.op_type.clone())
            })
            .collect::<Vec<_>>()
    };
    assert!(convs("layers.3.").iter().all(|op| op == "DequantizeLinear"));
    for other in ["stem.", "layers.1.", "layers.4.", "layers.19."] {
        let ops = convs(other);
        assert!(
            !ops.is_empty() && ops.iter().all(|op| op != "DequantizeLinear"),
            "{other}"
        );
    }
    // Quantised at the block's entry (the previous block's output) and at its exit.
    assert!(m.producer.contains_key("layers.1.cat.q"));
    assert!(m.producer.contains_key("layers.3.cat.q"));
    assert!(!m.producer.contains_key("layers.4.cat.q"));
    assert!(out.summary.fp32_nodes > out.summary.quantized_nodes);
}

#[test]
fn calibration_measures_the_images_and_refuses_bad_sets() {
    let (graph, weights) = network();
    let (folded, folded_weights) = crate::fold_batch_norms(&graph, &weights).expect("folds");
    let fp32 =
        crate::onnx::to_bytes(&folded, &folded_weights, &OnnxOptions::default()).expect("onnx");
    let set = images(3);
    let ranges = calibrate(
        &fp32,
        &["input".to_string()],
        &set,
        [3, 32, 32],
        RangeMethod::MinMax,
    )
    .expect("runs");
    let all: Vec<f32> = set.concat();
    let lo = all.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = all.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(ranges.ranges["input"], Range { min: lo, max: hi });

    let err = |images: &[Vec<f32>]| {
        calibrate(
            &fp32,
            &["input".to_string()],
            images,
            [3, 32, 32],
            RangeMethod::MinMax,
        )
        .expect_err("an error")
        .to_string()
    };
    assert!(err(&[]).contains("no calibration images"));
    assert!(err(&[vec![0.0; 10]]).contains("has 10 values"));
    let mut nan = images(1);
    nan[0][5] = f32::NAN;
    assert!(err(&nan).contains("non-finite"));
    let missing = calibrate(
        &fp32,
        &["no.such.tensor".to_string()],
        &set,
        [3, 32, 32],
        RangeMethod::MinMax,
    );
    assert!(missing.is_err());
}

#[test]
fn a_tensor_without_a_range_is_named() {
    let (graph, weights) = network();
    let (folded, folded_weights) = crate::fold_batch_norms(&graph, &weights).expect("folds");
    let model =
        crate::onnx::to_model(&folded, &folded_weights, &OnnxOptions::default()).expect("onnx");
    let mut ranges = ActivationRanges {
        method: RangeMethod::MinMax,
        images: 1,
        ranges: tensors_to_calibrate(&model, &NodeSelection::All)
            .expect("plan")
            .into_iter()
            .map(|t| {
                (
                    t,
                    Range {
                        min: -1.0,
                        max: 1.0,
                    },
                )
            })
            .collect(),
    };
    assert!(quantize_model(
        &model,
        &ranges,
        ActivationScheme::Asymmetric,
        WeightRange::Full,
        &NodeSelection::All
    )
    .is_ok());
    ranges.ranges.remove("layers.1.cat");
    let err = quantize_model(
        &model,
        &ranges,
        ActivationScheme::Asymmetric,
        WeightRange::Full,
        &NodeSelection::All,
    )
    .expect_err("an error");
    assert!(err.to_string().contains("'layers.1.cat'"), "{err}");
}

#[test]
fn the_kernel_report_finds_a_convolution_left_behind_a_dequantize() {
    let out = export(NodeSelection::All, Int8Flavour::Cpu);
    // The unoptimised QDQ model is exactly that: every convolution reads DequantizeLinear outputs.
    let report = kernel_report(&out.bytes).expect("decodes");
    assert_eq!(
        report.unfused.len(),
        report.count("Conv") + report.count("Gemm")
    );
    assert!(report.count("QuantizeLinear") > 0);
    // In a mixed network, FP32 convolutions reading a dequantised activation are not fusions that failed.
    let mixed = export(
        NodeSelection::Prefixes(vec!["layers.3.".into()]),
        Int8Flavour::Cpu,
    );
    let report = kernel_report(&mixed.bytes).expect("decodes");
    assert!(!report.unfused.is_empty());
    assert!(
        report.unfused.iter().all(|n| n.starts_with("layers.3.")),
        "{:?}",
        report.unfused
    );
    assert!(kernel_report(b"not a model").is_err());
}

#[test]
fn a_quantised_output_leaves_through_dequantize() {
    let out = export_with(
        Int8Options {
            quantize_output: true,
            ..Int8Options::default()
        },
        2,
    );
    let m = decode(&out.bytes);
    let identity = &m.producer["output"];
    assert_eq!(identity.op_type, "Identity");
    assert_eq!(m.producer[&identity.input[0]].op_type, "DequantizeLinear");
    assert!(m.producer.contains_key("output.fp32.q"));
}

#[test]
fn reduced_weights_stay_within_seven_bits_and_are_recorded() {
    /// The largest magnitude among the model's int8 weights, and how many weight tensors it has.
    fn widest_weight(out: &Int8Export) -> (i32, usize) {
        let m = decode(&out.bytes);
        let weights: Vec<&TensorProto> = m
            .initializers
            .iter()
            .filter(|(name, _)| name.ends_with(".int8"))
            .map(|(_, t)| t)
            .collect();
        let widest = weights
            .iter()
            .flat_map(|t| t.raw_data.iter().map(|b| i32::from(*b as i8).abs()))
            .max()
            .unwrap_or(0);
        (widest, weights.len())
    }
    let reduced = export_with(
        Int8Options {
            weight_range: WeightRange::Reduced,
            ..Int8Options::default()
        },
        2,
    );
    // Each channel's largest weight maps to +-64 (+-127 at full range), and none goes beyond.
    let (widest, tensors) = widest_weight(&reduced);
    assert!(tensors > 40);
    assert_eq!(widest, 64);
    let full = export(NodeSelection::All, Int8Flavour::Cpu);
    assert_eq!(widest_weight(&full).0, 127);
    let metadata = crate::onnx::metadata(&reduced.bytes).expect("decodes");
    assert_eq!(
        metadata.get("int8_weight_range").map(String::as_str),
        Some("reduced"),
        "{metadata:?}"
    );
}
