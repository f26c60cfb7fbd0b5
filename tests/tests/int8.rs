//! INT8 export through the real ONNX Runtime: the QDQ models pass `onnx.checker`, ONNX Runtime fuses
//! every convolution into an integer kernel (no DequantizeLinear -> Conv pair left in its optimised
//! graph), and the outputs match the FP32 model's within what quantisation can explain.

use hsconas_devices::metrics::pearson;
use hsconas_export::quant::{
    int8_onnx, kernel_report, Int8Flavour, Int8Options, NodeSelection, WeightRange,
};
use hsconas_export::{fold_batch_norms, onnx, GraphWeights, OnnxOptions, Weights};
use hsconas_models::build::{self, Piece};
use hsconas_models::graph::{Graph, NodeOp};
use hsconas_models::reference::Reference;
use hsconas_models::{Arch, NetConfig};
use hsconas_runtime::backend::{BackendConfig, OrtBackend};
use hsconas_tests::{random_input, run_oracle, OracleCase};

fn config(input_size: usize) -> NetConfig {
    NetConfig {
        input_size,
        classes: 10,
        ..NetConfig::default()
    }
}

fn images(n: usize, size: usize, seed: u64) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| random_input(3 * size * size, seed + i as u64))
        .collect()
}

fn arch() -> Arch {
    "shuffle3:0.5,xception:1.0,skip,shuffle5:0.7,shuffle7:0.3,shuffle3:1.0,xception:0.6,shuffle3:1.0,\
     shuffle3:0.8,shuffle5:1.0,shuffle3:1.0,skip,shuffle3:1.0,xception:1.0,shuffle3:1.0,shuffle3:1.0,\
     shuffle7:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0"
        .parse()
        .expect("architecture")
}

fn fp32_bytes(graph: &Graph, weights: &Weights) -> Vec<u8> {
    let (g, w) = fold_batch_norms(graph, weights).expect("folds");
    onnx::to_bytes(&g, &w, &OnnxOptions::default()).expect("exports")
}

/// The kernels ONNX Runtime (CPU, fully optimised) runs for `model`.
fn ort_kernels(model: &[u8]) -> hsconas_export::quant::KernelReport {
    let backend = OrtBackend::new(BackendConfig::default()).expect("ONNX Runtime loads");
    let optimised = backend.optimised_model(model).expect("session builds");
    kernel_report(&optimised).expect("decodes")
}

#[test]
fn onnx_runtime_fuses_every_cpu_flavour_convolution_and_loads_the_tensorrt_flavour() {
    let graph = build::network(&arch(), &config(32)).expect("builds");
    let weights = Weights::random(&graph, 1);
    let convs = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, NodeOp::Conv(_)))
        .count();
    for flavour in [Int8Flavour::Cpu, Int8Flavour::TensorRt] {
        let options = Int8Options {
            flavour,
            ..Int8Options::default()
        };
        let tensorrt = flavour == Int8Flavour::TensorRt;
        let out = int8_onnx(
            &graph,
            &weights,
            &images(8, 32, 10),
            &OnnxOptions::default(),
            &options,
        )
        .expect("exports");
        let report = ort_kernels(&out.bytes);
        if tensorrt {
            // The tensorrt flavour is for TensorRT, which builds its own INT8 engine. On ONNX Runtime's
            // CPU kernels it loads and runs, partly fused: its symmetric ReLU outputs keep their ReLUs,
            // and its int8 activations meet the int8-to-uint8 conversion that skips shared tensors.
            assert!(report.count("QLinearConv") > 0, "{:?}", report.operators);
            continue;
        }
        assert!(
            report.unfused.is_empty(),
            "{flavour:?}: convolutions left in FP32 behind a DequantizeLinear: {:?}\n{:?}",
            report.unfused,
            report.operators
        );
        assert_eq!(
            report.count("QLinearConv"),
            convs,
            "{flavour:?}: {:?}",
            report.operators
        );
    }
    // The FP32 model has no integer kernel: the count above comes from the rewrite.
    assert_eq!(
        ort_kernels(&fp32_bytes(&graph, &weights)).count("QLinearConv"),
        0
    );
}

#[test]
fn a_mixed_network_fuses_its_int8_layers_only() {
    let graph = build::network(&arch(), &config(32)).expect("builds");
    let weights = Weights::random(&graph, 2);
    let layer_convs = |prefix: &str| {
        graph
            .nodes
            .iter()
            .filter(|n| matches!(n.op, NodeOp::Conv(_)) && n.name.starts_with(prefix))
            .count()
    };
    let options = Int8Options {
        selection: NodeSelection::Prefixes(vec!["layers.15.".into(), "layers.18.".into()]),
        ..Int8Options::default()
    };
    let out = int8_onnx(
        &graph,
        &weights,
        &images(4, 32, 20),
        &OnnxOptions::default(),
        &options,
    )
    .expect("exports");
    let report = ort_kernels(&out.bytes);
    assert!(report.unfused.is_empty(), "{:?}", report.unfused);
    assert_eq!(
        report.count("QLinearConv"),
        layer_convs("layers.15.") + layer_convs("layers.18."),
        "{:?}",
        report.operators
    );
}

/// Relative error of `b` against `a`: the largest difference over the largest magnitude of `a`.
/// 7-bit weights on an x86 CPU without VNNI, whose U8S8 kernels saturate with full-range ones (on the
/// AMD EPYC VM the space network's logits moved by 0.29 of their scale with full-range weights against
/// about 0.06 on the Intel VNNI VM): what a model for this CPU is exported with.
fn weight_range_for_this_cpu() -> WeightRange {
    if hsconas_runtime::fingerprint::x86_without_vnni() {
        WeightRange::Reduced
    } else {
        WeightRange::Full
    }
}

fn max_relative(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

#[test]
fn quantised_models_pass_the_checker_and_follow_the_fp32_outputs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cases = Vec::new();
    let mut labels = Vec::new();
    let networks: Vec<(String, Graph)> = vec![
        (
            "space network at 32".into(),
            build::network(&arch(), &config(32)).expect("builds"),
        ),
        (
            "mobilenet_v3_large at 64".into(),
            Reference::MobilenetV3Large
                .build(64, 10, false)
                .expect("builds"),
        ),
        (
            "mobilenet_v2 at 64".into(),
            Reference::MobilenetV2.build(64, 10, false).expect("builds"),
        ),
    ];
    for (i, (label, graph)) in networks.iter().enumerate() {
        let size = graph.input.h;
        let weights = Weights::random(graph, 30 + i as u64);
        let calibration = images(16, size, 100 * i as u64);
        let int8 = int8_onnx(
            graph,
            &weights,
            &calibration,
            &OnnxOptions::default(),
            &Int8Options {
                weight_range: weight_range_for_this_cpu(),
                ..Int8Options::default()
            },
        )
        .expect("exports");
        let x = random_input(3 * size * size, 7 + i as u64);
        for (kind, bytes) in [("fp32", fp32_bytes(graph, &weights)), ("int8", int8.bytes)] {
            let model = dir.path().join(format!("{i}-{kind}.onnx"));
            std::fs::write(&model, bytes).expect("writes");
            cases.push(OracleCase {
                model,
                shape: vec![1, 3, size, size],
                input: x.clone(),
            });
        }
        labels.push(label.clone());
    }
    let outputs = run_oracle(dir.path(), &cases);
    for (k, label) in labels.iter().enumerate() {
        let (fp32, int8) = (&outputs[2 * k].1, &outputs[2 * k + 1].1);
        let error = max_relative(fp32, int8);
        // Random weights through 20-50 integer layers. When this test was written it saw about 0.06
        // for the space network and about 0.3 for the references, whose random weights leave
        // activations that 8 bits resolve poorly (ONNX Runtime's own quantize_static on the same
        // weights and images was in the same range while running part of each model in FP32). A wrong
        // scale, zero point or axis anywhere moves the logits by their own magnitude and decorrelates
        // them.
        let bound = if k == 0 { 0.1 } else { 0.4 };
        assert!(
            error < bound,
            "{label}: INT8 logits differ by {error:.3} of their scale"
        );
        let as_f64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let correlation = pearson(&as_f64(fp32), &as_f64(int8));
        assert!(correlation > 0.95, "{label}: correlation {correlation:.3}");
        assert!(
            error > 0.0,
            "{label}: identical outputs, nothing was quantised"
        );
    }
}

#[test]
fn a_single_layer_stays_within_the_rounding_of_its_input_and_weights() {
    // The stem piece: convolution (BN folded) and ReLU; the output is the ReLU's, in FP32, so the
    // only errors are the input's rounding (half a step s_x) and each weight's (half a step s_w[c]):
    // |dy| <= sum over the kernel's taps of |w| s_x/2 + |x| s_w/2 + s_x s_w/4, plus half a bias step.
    let graph = build::piece(Piece::Stem, &config(32)).expect("builds");
    let NodeOp::Conv(conv) = graph.nodes[0].op else {
        panic!("the stem starts with a convolution")
    };
    let weights = Weights::random(&graph, 5);
    let calibration = images(8, 32, 40);
    let int8 = int8_onnx(
        &graph,
        &weights,
        &calibration,
        &OnnxOptions::default(),
        &Int8Options::default(),
    )
    .expect("exports");
    let x = calibration[0].clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cases = Vec::new();
    for (kind, bytes) in [("fp32", fp32_bytes(&graph, &weights)), ("int8", int8.bytes)] {
        let model = dir.path().join(format!("{kind}.onnx"));
        std::fs::write(&model, bytes).expect("writes");
        cases.push(OracleCase {
            model,
            shape: vec![1, 3, 32, 32],
            input: x.clone(),
        });
    }
    let outputs = run_oracle(dir.path(), &cases);
    let (fp32, q) = (&outputs[0].1, &outputs[1].1);

    let input_range = int8.ranges.ranges["input"];
    let s_x = (input_range.max.max(0.0) - input_range.min.min(0.0)) / 255.0;
    let (folded, folded_weights) = fold_batch_norms(&graph, &weights).expect("folds");
    let kernel = folded_weights
        .get(&format!("{}.weight", folded.nodes[0].name))
        .expect("folded kernel");
    let taps = conv.cin / conv.groups * conv.kernel * conv.kernel;
    let x_max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let per_channel = fp32.len() / conv.cout;
    let mut tightest = f32::INFINITY;
    for c in 0..conv.cout {
        let w = &kernel.data[c * taps..(c + 1) * taps];
        let w_max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s_w = w_max / 127.0;
        let bound = taps as f32 * (w_max * s_x / 2.0 + x_max * s_w / 2.0 + s_x * s_w / 4.0)
            + s_x * s_w / 2.0
            + 1e-5;
        let range = c * per_channel..(c + 1) * per_channel;
        let worst = fp32[range.clone()]
            .iter()
            .zip(&q[range])
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= bound,
            "channel {c}: error {worst} above the bound {bound}"
        );
        tightest = tightest.min(bound);
    }
    // The bound is not vacuous: it is small against the outputs themselves.
    let y_max = fp32.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        tightest < 0.25 * y_max,
        "bound {tightest} against outputs up to {y_max}"
    );
}

/// `model`'s output for each input through ONNX Runtime (CPU, one thread, fully optimised), with its
/// U8U8 kernels (`session.x64quantprecision`) or without.
fn ort_outputs(
    model: &[u8],
    inputs: &[Vec<f32>],
    size: usize,
    x64_quant_precision: bool,
) -> Vec<Vec<f32>> {
    let engine = hsconas_runtime::backend::build(&BackendConfig {
        x64_quant_precision,
        ..BackendConfig::default()
    })
    .expect("ONNX Runtime loads");
    let mut loaded = engine.load(model).expect("loads");
    inputs
        .iter()
        .map(|x| {
            let input = hsconas_runtime::backend::HostTensor {
                shape: vec![1, 3, size, size],
                data: x.clone(),
            };
            loaded.run(&[input]).expect("runs").remove(0).data
        })
        .collect()
}

#[test]
fn seven_bit_weights_make_the_fast_kernels_exact_where_full_ones_saturate() {
    // ONNX Runtime's U8S8 kernels on x86 CPUs without VNNI add pairs of uint8 x int8 products in
    // int16 (VPMADDUBSW), which saturates with full-range weights; its U8U8 kernels
    // (session.x64quantprecision) cannot. With 7-bit weights no pair can reach int16's limit, so both
    // kernels compute the same integers and the outputs agree exactly on every CPU. With full-range
    // weights they agree exactly on a VNNI CPU (no int16 step) and differ on one without VNNI.
    let graph = build::network(&arch(), &config(32)).expect("builds");
    let weights = Weights::random(&graph, 11);
    let calibration = images(8, 32, 60);
    let export = |weight_range| {
        int8_onnx(
            &graph,
            &weights,
            &calibration,
            &OnnxOptions::default(),
            &Int8Options {
                weight_range,
                ..Int8Options::default()
            },
        )
        .expect("exports")
        .bytes
    };
    let inputs = images(4, 32, 70);
    let reduced = export(WeightRange::Reduced);
    assert_eq!(
        ort_outputs(&reduced, &inputs, 32, false),
        ort_outputs(&reduced, &inputs, 32, true),
        "7-bit weights: the U8S8 and U8U8 kernels disagree"
    );
    let full = export(WeightRange::Full);
    let (fast, exact) = (
        ort_outputs(&full, &inputs, 32, false),
        ort_outputs(&full, &inputs, 32, true),
    );
    if hsconas_runtime::fingerprint::x86_without_vnni() {
        assert_ne!(
            fast, exact,
            "full-range weights on a CPU without VNNI: no saturation seen"
        );
    } else {
        assert_eq!(fast, exact, "full-range weights on this CPU");
    }
}
