//! `hsconas export onnx --precision int8` and `@int8` layer marks as a user types them: a mixed
//! network calibrated on the committed CIFAR-10 sample, what ONNX Runtime runs for it, and the clear
//! errors of every misuse (no calibration set, FP16, kept batch norms, marks without INT8, a latency
//! prediction of a marked network, evaluating a model without its metadata).

use std::collections::HashMap;
use std::path::PathBuf;

use hsconas_tests::{fails_with, ok, run_bin};
use prost::Message;
use tract_onnx::pb::ModelProto;

fn sample() -> String {
    let path = hsconas_foundation::package_dir!().join("../data/cifar10-sample.tar.gz");
    path.to_str().expect("utf-8").to_string()
}

fn table() -> PathBuf {
    hsconas_foundation::package_dir!().join("../devices/tables/local-cpu-A-32.json")
}

/// Layers 4 and 16 (1-based) marked INT8, the rest FP32.
fn marked_arch() -> String {
    let mut layers = vec!["shuffle3:0.5"; 20];
    layers[3] = "shuffle5:0.7@int8";
    layers[15] = "xception:1.0@int8";
    layers.join(",")
}

fn export(extra: &[&str]) -> hsconas_tests::Outcome {
    let mut args = vec!["export", "onnx", "--input-size", "32", "--classes", "10"];
    args.extend_from_slice(extra);
    run_bin("hsconas", &args)
}

#[test]
fn a_marked_network_quantises_its_marked_layers_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("mixed.onnx");
    let data = sample();
    let arch = marked_arch();
    let done = ok(export(&[
        "--arch",
        &arch,
        "--precision",
        "int8",
        "--calibration",
        &data,
        "--calibration-images",
        "32",
        "--out",
        out.to_str().expect("utf-8"),
    ]));
    assert!(
        done.stderr
            .contains("layer(s) 4, 16 (marked @int8), the rest FP32"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains("calibrated on 32 training images"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr
            .contains("every quantised convolution runs as an integer kernel"),
        "{}",
        done.stderr
    );
    let model = ModelProto::decode(&std::fs::read(&out).expect("written")[..]).expect("ONNX");
    let meta: HashMap<String, String> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    assert_eq!(meta["precision"], "int8");
    assert_eq!(meta["int8_calibration"], "minmax");
    assert_eq!(meta["int8_calibration_images"], "32");
    assert!(meta["architecture"].contains("shuffle5:0.7@int8"));
    // Weights in int8 exactly for the marked layers' convolutions.
    let int8_weights: Vec<&str> = model
        .graph
        .as_ref()
        .expect("graph")
        .initializer
        .iter()
        .filter(|t| t.name.ends_with(".weight.int8"))
        .map(|t| t.name.as_str())
        .collect();
    for layer in ["layers.3.", "layers.15."] {
        assert!(
            int8_weights.iter().any(|n| n.starts_with(layer)),
            "{layer}: {int8_weights:?}"
        );
    }
    assert!(
        int8_weights
            .iter()
            .all(|n| n.starts_with("layers.3.") || n.starts_with("layers.15.")),
        "{int8_weights:?}"
    );
}

#[test]
fn a_profiling_piece_exports_in_int8_with_its_output_quantised() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("piece.onnx");
    let done = ok(run_bin(
        "hsconas",
        &[
            "export",
            "onnx",
            "--piece",
            "L12:shuffle5:1.0",
            "--input-size",
            "64",
            "--precision",
            "int8",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    ));
    assert!(
        done.stderr.contains("INT8 (cpu flavour) for the piece"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains("seeded random inputs"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr
            .contains("every quantised convolution runs as an integer kernel"),
        "{}",
        done.stderr
    );
    let model = ModelProto::decode(&std::fs::read(&out).expect("written")[..]).expect("ONNX");
    let graph = model.graph.expect("graph");
    let producer = graph
        .node
        .iter()
        .find(|n| n.output.iter().any(|o| o == "output"))
        .expect("something writes the output");
    // The layer's exit: the output passes through QuantizeLinear/DequantizeLinear (then Identity).
    let read = &producer.input[0];
    let dq = graph
        .node
        .iter()
        .find(|n| n.output.iter().any(|o| o == read))
        .expect("the identity reads a node");
    assert_eq!(dq.op_type, "DequantizeLinear");
    let data = sample();
    fails_with(
        run_bin(
            "hsconas",
            &[
                "export",
                "onnx",
                "--piece",
                "L12:shuffle5:1.0",
                "--precision",
                "int8",
                "--calibration",
                &data,
                "--out",
                out.to_str().expect("utf-8"),
            ],
        ),
        "--calibration does not apply to --piece",
    );
}

#[test]
fn misuses_are_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("m.onnx");
    let out = out.to_str().expect("utf-8");
    let data = sample();
    let plain = vec!["shuffle3:0.5"; 20].join(",");
    let arch = marked_arch();
    fails_with(
        export(&["--arch", &plain, "--precision", "int8", "--out", out]),
        "--precision int8 needs --calibration DATA",
    );
    fails_with(
        export(&["--arch", &plain, "--precision", "fp16", "--out", out]),
        "--precision fp16 is not an export format",
    );
    fails_with(
        export(&[
            "--arch",
            &plain,
            "--precision",
            "int8",
            "--keep-bn",
            "--calibration",
            &data,
            "--out",
            out,
        ]),
        "--keep-bn does not apply to --precision int8",
    );
    fails_with(
        export(&["--arch", &arch, "--out", out]),
        "the architecture marks layer(s) 4, 16 as int8",
    );
    fails_with(
        export(&["--arch", &plain, "--calibration", &data, "--out", out]),
        "apply to --precision int8 only",
    );
    fails_with(
        export(&["--arch", &plain, "--int8-flavour", "tensorrt", "--out", out]),
        "apply to --precision int8 only",
    );
    // A value clap refuses: a usage error (exit code 2) naming what is accepted.
    let usage = export(&[
        "--arch",
        &plain,
        "--precision",
        "int8",
        "--calibration",
        &data,
        "--calibration-method",
        "entropy",
        "--out",
        out,
    ]);
    assert_eq!(usage.code, Some(2), "{usage:?}");
    assert!(
        usage
            .stderr
            .contains("expected 'minmax', 'percentile' or 'percentile:<p>'"),
        "{}",
        usage.stderr
    );
    let mut skip = vec!["shuffle3:0.5"; 20];
    skip[5] = "skip@int8";
    fails_with(
        export(&["--arch", &skip.join(","), "--out", out]),
        "layer 6: precision 'int8' does not apply to 'skip'",
    );
    fails_with(
        export(&[
            "--arch",
            &plain,
            "--precision",
            "int8",
            "--calibration",
            "/no/such/data",
            "--out",
            out,
        ]),
        "reading the calibration images from /no/such/data",
    );
    assert!(!std::path::Path::new(out).exists(), "nothing written");
    let table = table();
    fails_with(
        run_bin(
            "hsconas",
            &[
                "latency",
                "predict",
                "--table",
                table.to_str().expect("utf-8"),
                "--arch",
                &arch,
            ],
        ),
        "this latency table measured FP32 pieces only",
    );
    fails_with(
        run_bin(
            "hsconas",
            &[
                "latency",
                "precision",
                "--table",
                table.to_str().expect("utf-8"),
            ],
        ),
        "profile the device with `hsconas profile --precision mixed`",
    );
    // A model without a trained network's metadata cannot be normalised for evaluation.
    ok(export(&["--arch", &plain, "--out", out]));
    fails_with(
        run_bin(
            "hsconas",
            &["export", "evaluate", "--model", out, "--data", &data],
        ),
        "the model's metadata has no 'mean'",
    );
}
