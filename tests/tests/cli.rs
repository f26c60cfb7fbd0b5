//! The `hsconas` binary as a user types it: `arch info`, `arch sample`, `export onnx`, `train` flags.

use std::collections::HashMap;

use hsconas_tests::run_bin;
use prost::Message;
use tract_onnx::pb::ModelProto;

fn uniform(entry: &str) -> String {
    vec![entry; 20].join(",")
}

fn info_json(args: &[&str]) -> serde_json::Value {
    let mut full = vec!["arch", "info", "--json"];
    full.extend_from_slice(args);
    let out = run_bin("hsconas", &full);
    assert_eq!(out.code, Some(0), "arch info failed: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("arch info --json prints JSON")
}

/// docs/DESIGN.md section 2's test vectors, through the command line.
#[test]
fn arch_info_gives_the_design_test_vectors() {
    let vectors = [
        ("shuffle3:1.0", "A", "224", "1000", 2_501_960, 196_384_256),
        ("shuffle3:1.0", "B", "224", "1000", 3_337_200, 323_968_496),
        ("shuffle3:1.0", "A", "32", "10", 1_487_210, 15_958_016),
        ("xception:0.5", "A", "224", "1000", 2_219_168, 128_759_552),
        ("xception:0.5", "B", "224", "1000", 2_838_918, 203_517_872),
        ("xception:0.5", "A", "32", "10", 1_204_418, 10_437_632),
    ];
    for (entry, layout, size, classes, params, macs) in vectors {
        let arch = uniform(entry);
        let info = info_json(&[
            "--arch",
            &arch,
            "--layout",
            layout,
            "--input-size",
            size,
            "--classes",
            classes,
        ]);
        assert_eq!(info["params"], params, "{entry} {layout} {size}");
        assert_eq!(info["macs"], macs, "{entry} {layout} {size}");
        let layers = info["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 22);
        let sum: u64 = layers
            .iter()
            .map(|l| l["params"].as_u64().expect("params"))
            .sum();
        assert_eq!(sum, params);
    }
    // The human table shows the same total.
    let out = run_bin(
        "hsconas",
        &["arch", "info", "--arch", &uniform("shuffle3:1.0")],
    );
    assert!(
        out.stdout.contains("2,501,960") && out.stdout.contains("196,384,256"),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_architectures_fail_cleanly_and_name_the_problem() {
    let with = |layer: usize, entry: &str| {
        let mut v = vec!["shuffle5:0.5"; 20];
        v[layer] = entry;
        v.join(",")
    };
    let cases = [
        (
            uniform("shuffle3:1.0").replacen("shuffle3:1.0,", "", 1),
            "found 19",
        ),
        (with(6, "conv3:0.5"), "layer 7: unknown operator 'conv3'"),
        (with(2, "shuffle3:1.5"), "layer 3: channel scale '1.5'"),
        (
            with(8, "skip"),
            "layer 9: 'skip' is not allowed in a stride-2 layer",
        ),
        (
            with(11, "xception"),
            "layer 12: 'xception' needs a channel scale",
        ),
    ];
    for (arch, needle) in cases {
        let out = run_bin("hsconas", &["arch", "info", "--arch", &arch]);
        assert_eq!(out.code, Some(1), "{arch}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "{arch}: stderr was {:?}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    let bad_layout = run_bin(
        "hsconas",
        &[
            "arch",
            "info",
            "--arch",
            &uniform("shuffle3:1.0"),
            "--layout",
            "47,128,256,512",
        ],
    );
    assert_eq!(bad_layout.code, Some(1));
    assert!(bad_layout.stderr.contains("odd"), "{}", bad_layout.stderr);
    let bad_piece = run_bin(
        "hsconas",
        &[
            "export",
            "onnx",
            "--piece",
            "L21:skip",
            "--out",
            "/dev/null",
        ],
    );
    assert_eq!(bad_piece.code, Some(1));
    assert!(
        bad_piece.stderr.contains("outside 1..=20"),
        "{}",
        bad_piece.stderr
    );
}

#[test]
fn arch_sample_is_reproducible_and_valid() {
    let a = run_bin(
        "hsconas",
        &["arch", "sample", "--seed", "11", "--count", "5"],
    );
    let b = run_bin(
        "hsconas",
        &["arch", "sample", "--seed", "11", "--count", "5"],
    );
    assert_eq!(a.code, Some(0));
    assert_eq!(a.stdout, b.stdout);
    let lines: Vec<&str> = a.stdout.lines().collect();
    assert_eq!(lines.len(), 5);
    for line in lines {
        let info = info_json(&["--arch", line]);
        assert_eq!(
            info["arch"], line,
            "sampled architectures are printed in canonical form"
        );
    }
}

/// Trainable parameters of an ONNX model: conv weights and biases, BN scale and shift, Gemm weight and bias.
fn onnx_param_count(bytes: &[u8]) -> usize {
    let model = ModelProto::decode(bytes).expect("valid protobuf");
    let graph = model.graph.expect("graph");
    let sizes: HashMap<&str, usize> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t.dims.iter().product::<i64>() as usize))
        .collect();
    let mut total = 0;
    for node in &graph.node {
        let params: &[usize] = match node.op_type.as_str() {
            "Conv" | "Gemm" => &[1, 2],
            "BatchNormalization" => &[1, 2],
            _ => &[],
        };
        for &i in params {
            if let Some(name) = node.input.get(i) {
                total += sizes.get(name.as_str()).copied().unwrap_or(0);
            }
        }
    }
    total
}

#[test]
fn onnx_initialiser_counts_equal_arch_info() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sampled = run_bin(
        "hsconas",
        &["arch", "sample", "--seed", "3", "--count", "2"],
    );
    for (i, arch) in sampled.stdout.lines().enumerate() {
        for (layout, size, classes) in [("A", "224", "1000"), ("B", "32", "10")] {
            let info = info_json(&[
                "--arch",
                arch,
                "--layout",
                layout,
                "--input-size",
                size,
                "--classes",
                classes,
            ]);
            let path = dir.path().join(format!("{i}{layout}.onnx"));
            let path_str = path.to_str().expect("utf-8 path");
            let out = run_bin(
                "hsconas",
                &[
                    "export",
                    "onnx",
                    "--arch",
                    arch,
                    "--layout",
                    layout,
                    "--input-size",
                    size,
                    "--classes",
                    classes,
                    // Batch norms kept: the count is the IR's trainable parameters.
                    "--keep-bn",
                    "--out",
                    path_str,
                ],
            );
            assert_eq!(out.code, Some(0), "{}", out.stderr);
            let bytes = std::fs::read(&path).expect("written");
            assert_eq!(
                onnx_param_count(&bytes) as u64,
                info["params"].as_u64().expect("params"),
                "{arch} {layout}"
            );
        }
    }
    let path = dir.path().join("mnasnet.onnx");
    let out = run_bin(
        "hsconas",
        &[
            "export",
            "onnx",
            "--reference",
            "mnasnet1_0",
            "--keep-bn",
            "--out",
            path.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        onnx_param_count(&std::fs::read(&path).expect("written")),
        4_383_312
    );
}

/// The fixed dimensions of the model's first input (a symbolic one fails the test).
fn input_dims(model: &ModelProto) -> Vec<i64> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    use tract_onnx::pb::type_proto::Value as Type;
    let input = &model.graph.as_ref().expect("graph").input[0];
    let Some(Type::TensorType(tensor)) = input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        panic!("input is not a tensor: {input:?}");
    };
    let shape = tensor.shape.as_ref().expect("a shape");
    shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Dim::DimValue(v)) => v,
            ref other => panic!("dimension {other:?} is not fixed"),
        })
        .collect()
}

#[test]
fn export_stores_metadata_and_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("piece.onnx");
    let out = run_bin(
        "hsconas",
        &[
            "export",
            "onnx",
            "--piece",
            "L5:xception:0.3",
            "--batch",
            "16",
            "--input-size",
            "32",
            "--out",
            path.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let model =
        ModelProto::decode(std::fs::read(&path).expect("written").as_slice()).expect("protobuf");
    let meta: HashMap<String, String> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    assert_eq!(
        meta.get("piece").map(String::as_str),
        Some("L5:xception:0.3")
    );
    // Batch 16 of L5's input at input size 32: 48 channels of stage 1 at 16x16.
    assert_eq!(input_dims(&model), [16, 48, 16, 16]);
    let bad_batch = run_bin(
        "hsconas",
        &[
            "export",
            "onnx",
            "--piece",
            "stem",
            "--batch",
            "0",
            "--out",
            path.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(bad_batch.code, Some(1));
    assert!(bad_batch.stderr.contains("--batch"), "{}", bad_batch.stderr);
}

#[test]
fn device_profiles_are_listed_and_shown() {
    let out = run_bin("hsconas", &["device", "list", "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["local-cpu", "xeon-gold-6136", "gv100", "jetson-xavier"]
    );
    let xavier = run_bin("hsconas", &["device", "show", "jetson-xavier", "--json"]);
    let p: serde_json::Value = serde_json::from_str(&xavier.stdout).expect("JSON");
    assert_eq!(
        (p["batch"].as_u64(), p["provider"].as_str()),
        (Some(16), Some("tensorrt"))
    );
    let missing = run_bin("hsconas", &["device", "show", "no-such-device"]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .contains("no shipped device profile named 'no-such-device'"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(hsconas_tests::workspace_bin("hsconas"))
        .args(["arch", "sample", "--count", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut first = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("a line");
    assert_eq!(first.split(',').count(), 20, "{first}");
    // The reader is gone: the next writes hit a closed pipe.
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(hsconas_foundation::pipe::BROKEN_PIPE_STATUS)),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn train_needs_exactly_one_network_and_names_unknown_references() {
    let data_path = hsconas_foundation::package_dir!().join("../data/cifar10-sample.tar.gz");
    let data = data_path.to_str().expect("UTF-8 path");
    let neither = run_bin("hsconas", &["train", "--data", data]);
    assert_eq!(neither.code, Some(2), "{}", neither.stderr);
    assert!(neither.stderr.contains("--arch"), "{}", neither.stderr);
    let both = run_bin(
        "hsconas",
        &[
            "train",
            "--arch",
            &uniform("shuffle3:1.0"),
            "--reference",
            "mobilenet_v2",
            "--data",
            data,
        ],
    );
    assert_eq!(both.code, Some(2), "{}", both.stderr);
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );
    let stem_alone = run_bin(
        "hsconas",
        &[
            "train",
            "--arch",
            &uniform("shuffle3:1.0"),
            "--small-input-stem",
            "--data",
            data,
        ],
    );
    assert_eq!(stem_alone.code, Some(1), "{}", stem_alone.stderr);
    assert!(
        stem_alone.stderr.contains("--reference networks only"),
        "{}",
        stem_alone.stderr
    );
    let unknown = run_bin(
        "hsconas",
        &["train", "--reference", "resnet50", "--data", data],
    );
    assert_eq!(unknown.code, Some(1), "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("resnet50") && unknown.stderr.contains("shufflenet_v2_x1_0"),
        "{}",
        unknown.stderr
    );
}

/// A `--space` file that would make sampling impossible, and a validation share that leaves nothing to
/// validate on, are clear errors (exit 1), not panics or silent 0% accuracies.
#[test]
fn bad_space_files_and_an_empty_validation_split_are_refused() {
    let data_path = hsconas_foundation::package_dir!().join("../data/cifar10-sample.tar.gz");
    let data = data_path.to_str().expect("UTF-8 path");
    let dir = tempfile::tempdir().expect("temp dir");
    let layer = |ops: &str, scales: &str| format!(r#"{{"ops": [{ops}], "scales": [{scales}]}}"#);
    let full = layer(r#""shuffle3""#, "5");
    // Twenty valid layers with `bad` at 0-based `at`.
    let with = |at: usize, bad: String| -> Vec<String> {
        (0..20)
            .map(|l| if l == at { bad.clone() } else { full.clone() })
            .collect()
    };
    let cases = [
        (
            "no-ops",
            with(3, layer("", "5")),
            "layer 4: no choice is left",
        ),
        (
            "skip-stride2",
            with(8, layer(r#""skip""#, "")),
            "layer 9: 'skip' is not allowed in a stride-2 layer",
        ),
        (
            "bad-scale",
            with(0, layer(r#""xception""#, "12")),
            "layer 1: scale 12",
        ),
        (
            "short",
            vec![full.clone(); 19],
            "a search space has 20 layers, found 19",
        ),
    ];
    for (name, layers, expected) in cases {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, format!(r#"{{"layers": [{}]}}"#, layers.join(","))).expect("write");
        let out = run_bin(
            "hsconas",
            &[
                "supernet",
                "train",
                "--data",
                data,
                "--space",
                path.to_str().expect("utf-8 path"),
                "--out",
                dir.path().join(name).to_str().expect("utf-8 path"),
            ],
        );
        assert_eq!(out.code, Some(1), "{name}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{name}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
    }
    for fraction in ["0", "1", "1.5"] {
        let out = run_bin(
            "hsconas",
            &[
                "data",
                "inspect",
                "--data",
                data,
                "--val-fraction",
                fraction,
            ],
        );
        assert_eq!(
            out.code,
            Some(1),
            "--val-fraction {fraction}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("--val-fraction"),
            "--val-fraction {fraction}: {}",
            out.stderr
        );
    }
}

/// `--train-per-class N` keeps N training images of every class (after the validation share is held out)
/// and leaves the validation and test splits alone.
#[test]
fn train_per_class_takes_a_balanced_subset() {
    let data_path = hsconas_foundation::package_dir!().join("../data/cifar10-sample.tar.gz");
    let data = data_path.to_str().expect("UTF-8 path");
    let inspect = |extra: &[&str]| {
        let mut args = vec!["data", "inspect", "--data", data, "--json"];
        args.extend(extra);
        let out = run_bin("hsconas", &args);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        serde_json::from_str::<serde_json::Value>(&out.stdout).expect("json")
    };
    let all = inspect(&[]);
    let some = inspect(&["--train-per-class", "50"]);
    assert_eq!(all["train"]["images"], 1800);
    assert_eq!(some["train"]["images"], 500);
    for pair in some["train"]["per_class"].as_array().expect("per_class") {
        assert_eq!(pair[1], 50, "{pair}");
    }
    assert_eq!(some["val"], all["val"]);
    assert_eq!(some["test"], all["test"]);
    let zero = run_bin(
        "hsconas",
        &["data", "inspect", "--data", data, "--train-per-class", "0"],
    );
    assert_eq!(zero.code, Some(2), "{}", zero.stderr);
}

/// `hsconas search --help` groups its flags under headings instead of one flat list, each flag under
/// the heading of its purpose.
#[test]
fn search_help_is_grouped_by_purpose() {
    let out = run_bin("hsconas", &["search", "--help"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // The heading each flag is listed under (a heading: a line that starts unindented and ends in ':').
    let mut under: HashMap<String, String> = HashMap::new();
    let mut heading = String::new();
    for line in out.stdout.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            heading = line.trim_end_matches(':').to_string();
        } else if let Some(flag) = line.trim_start().strip_prefix("--") {
            let name = flag.split([' ', '=', '<']).next().unwrap_or("");
            under.insert(name.to_string(), heading.clone());
        }
    }
    for (flag, expected) in [
        ("target-ms", "Objective"),
        ("beta", "Objective"),
        ("estimator", "Accuracy estimator"),
        ("shrink-stages", "Shrinking"),
        ("generations", "Evolution"),
        ("tolerance", "Re-measurement on the device"),
        ("table", "Device and latency model"),
        ("data", "Data"),
        ("out", "Output"),
    ] {
        assert_eq!(
            under.get(flag).map(String::as_str),
            Some(expected),
            "--{flag}\n{}",
            out.stdout
        );
    }
}
