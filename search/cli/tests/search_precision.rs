//! `hsconas search --precision` end to end: a mixed-precision table profiled on this machine (real ONNX
//! Runtime, input 32, a short protocol), then searches with the built-in predictor on the committed
//! CIFAR-10 sample: by default under the paper's penalty a mixed table searches each layer's precision
//! (`mixed`: candidates with INT8 layers, the accuracy the FP32 network's, the best re-measured as mixed
//! networks); `fp32` and `int8` restrict it (an all-INT8 search's latencies are the INT8 entries' sums);
//! under a budget the default, `fastest`, evaluates only candidates whose layers take their faster
//! precision; an FP32 table refuses INT8 layers. Then a mixed candidate trained on the sample keeps its
//! INT8 loss within a budget
//! (`hsconas export int8-budget`, with the table's prediction and a measurement of what changed), and
//! the network kept becomes an inference crate that runs INT8 with ONNX Runtime (and tract).

mod common;

use std::path::Path;
use std::process::Output;

use common::{cargo, hsconas, ok, profile_mixed_table_32, root};
use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_models::Arch;

fn search(table: &Path, out: &Path, extra: &[&str]) -> Output {
    let data = root().join("data/cifar10-sample.tar.gz");
    let mut args = vec![
        "search",
        "--table",
        table.to_str().expect("utf-8"),
        "--target-ms",
        "0.7",
        "--data",
        data.to_str().expect("utf-8"),
        "--population",
        "8",
        "--generations",
        "3",
        "--parents",
        "3",
        "--threads",
        "1",
        "--json",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend(extra);
    hsconas(&args)
}

fn candidates(report: &serde_json::Value) -> Vec<Arch> {
    report["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| serde_json::from_value(c["arch"].clone()).expect("arch"))
        .collect()
}

#[test]
fn a_mixed_table_searches_precision_with_operator_and_width() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let table = tmp.path().join("mixed.json");
    let t = table.to_str().expect("utf-8");
    profile_mixed_table_32(&table);
    ok(hsconas(&["calibrate", "--table", t, "--samples", "4"]));
    let model =
        LatencyModel::from_table(&LatencyTable::load(&table).expect("table")).expect("model");
    let predictor = hsconas_nas::predictor::Predictor::built_in().expect("built in");

    // The default with a mixed table under the paper's penalty, mixed: precision searched. Accuracy is
    // the FP32 network's; latency uses the INT8 entries.
    let out = ok(search(
        &table,
        &tmp.path().join("mixed"),
        &["--remeasure", "2"],
    ));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        report["settings"]["precisions"],
        serde_json::json!(["fp32", "int8"])
    );
    assert_eq!(report["settings"]["evolution"]["fastest_precision"], false);
    let archs = candidates(&report);
    assert!(archs.iter().any(|a| !a.is_fp32()), "INT8 layers searched");
    for (c, arch) in report["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .zip(&archs)
    {
        let accuracy = c["accuracy"].as_f64().expect("accuracy");
        let fp32 = predictor.predict(&arch.as_fp32()).expect("predicts") / 100.0;
        assert!((accuracy - fp32).abs() < 1e-12, "{arch}");
    }
    let remeasured = report["remeasured"].as_array().expect("remeasured");
    assert!(
        !remeasured.is_empty(),
        "the best candidates were measured on the device"
    );
    let mixed = archs
        .iter()
        .find(|a| !a.is_fp32())
        .expect("a mixed candidate");
    budget_of_a_trained_candidate(&table, &model, mixed, tmp.path());

    // --precision fp32 keeps every layer FP32 (and the report says nothing of precision); int8 makes
    // every layer with weights INT8.
    let out = ok(search(
        &table,
        &tmp.path().join("fp32"),
        &["--precision", "fp32", "--remeasure", "0"],
    ));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(report["settings"].get("precisions").is_none());
    assert!(candidates(&report).iter().all(Arch::is_fp32));
    let out = ok(search(
        &table,
        &tmp.path().join("int8"),
        &["--precision", "int8", "--remeasure", "0"],
    ));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let archs = candidates(&report);
    for (c, arch) in report["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .zip(&archs)
    {
        let blocks = arch.choices().iter().filter(|c| !c.is_skip()).count();
        assert_eq!(arch.int8_layers().len(), blocks, "{arch}");
        // Nothing re-measured: the latency is the table's, from the INT8 entries.
        assert!(
            (c["latency_ms"].as_f64().expect("latency") - model.predict_ms(arch)).abs() < 1e-9,
            "{arch}"
        );
    }

    // The default with a mixed table under a budget, fastest: every candidate's layers at the precision
    // the (calibrated) model predicts faster. (Under the paper's penalty the default is mixed.)
    let out = ok(search(
        &table,
        &tmp.path().join("fastest"),
        &["--mode", "constraint", "--remeasure", "0"],
    ));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["settings"]["evolution"]["fastest_precision"], true);
    let space = hsconas_models::SearchSpace::full()
        .with_precisions(
            &[
                hsconas_vocabulary::Precision::Fp32,
                hsconas_vocabulary::Precision::Int8,
            ]
            .into(),
        )
        .expect("mixed space");
    let archs = candidates(&report);
    for arch in &archs {
        assert_eq!(&model.fastest_precisions(arch, &space), arch, "{arch}");
    }

    // An FP32 table cannot search INT8 layers.
    let committed = root().join("devices/tables/local-cpu-A-32.json");
    let refused = search(
        &committed,
        &tmp.path().join("refused"),
        &["--precision", "mixed"],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("--precision mixed needs a mixed-precision table"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// `hsconas export int8-budget ARGS --json` on the sample, parsed.
fn int8_budget(weights: &Path, out: &Path, extra: &[&str]) -> Output {
    let data = root().join("data/cifar10-sample.tar.gz");
    let mut args = vec![
        "export",
        "int8-budget",
        "--weights",
        weights.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
        "--calibration-images",
        "64",
        "--out",
        out.to_str().expect("utf-8"),
        "--json",
    ];
    args.extend(extra);
    hsconas(&args)
}

/// The top-1 `hsconas export evaluate` measures for `model` on the sample's test split.
fn evaluate(model: &Path) -> f64 {
    let data = root().join("data/cifar10-sample.tar.gz");
    let out = ok(hsconas(&[
        "export",
        "evaluate",
        "--model",
        model.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["top1"].as_f64().expect("top1")
}

/// `arch` trained for one epoch on the sample; with a budget of 0 points layers return to FP32, most
/// sensitive first, while the validation loss is above 0 (how many depends on what the one-epoch network
/// loses in INT8: the order and the stopping point are checked whatever it is; the greedy rule itself
/// is unit-tested in `int8_budget.rs`), every score agrees with `hsconas export evaluate`, and the
/// latency is the table's prediction and a measurement; a generous budget keeps every mark; misuses
/// are clear errors.
fn budget_of_a_trained_candidate(table: &Path, model: &LatencyModel, arch: &Arch, dir: &Path) {
    let data = root().join("data/cifar10-sample.tar.gz");
    let weights = dir.join("trained");
    ok(hsconas(&[
        "train",
        "--arch",
        &arch.to_string(),
        "--data",
        data.to_str().expect("utf-8"),
        "--epochs",
        "1",
        "--warmup-epochs",
        "0",
        "--batch-size",
        "50",
        "--threads",
        "1",
        "--out",
        weights.to_str().expect("utf-8"),
    ]));
    let out = dir.join("budget-0");
    let t = table.to_str().expect("utf-8");
    let run = ok(int8_budget(
        &weights,
        &out,
        &["--max-int8-loss", "0", "--table", t, "--measure"],
    ));
    let r: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("int8-budget.json")).expect("report"))
            .expect("JSON");
    assert_eq!(r, written, "the report printed is the one written");
    let marked: Arch = r["marked_arch"]
        .as_str()
        .expect("arch")
        .parse()
        .expect("arch");
    assert_eq!(&marked, arch);
    let fp32_val = r["fp32"]["val_top1"].as_f64().expect("fp32");
    let loss = |top1: &serde_json::Value| fp32_val - top1.as_f64().expect("top1");
    // Sensitivities: one per marked layer, most sensitive first.
    let sensitivity = r["sensitivity"].as_array().expect("sensitivity");
    let layers: Vec<usize> = sensitivity
        .iter()
        .map(|s| s["layer"].as_u64().expect("layer") as usize - 1)
        .collect();
    let mut sorted = layers.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, arch.int8_layers());
    for pair in sensitivity.windows(2) {
        assert!(pair[0]["drop"].as_f64() >= pair[1]["drop"].as_f64());
    }
    for s in sensitivity {
        assert!((s["drop"].as_f64().expect("drop") - loss(&s["val_top1"])).abs() < 1e-9);
    }
    // Layers return most sensitive first, each while the loss is above the budget, until it is not.
    let returned = r["returned"].as_array().expect("returned");
    let returned_layers: Vec<usize> = returned
        .iter()
        .map(|x| x["layer"].as_u64().expect("layer") as usize - 1)
        .collect();
    assert_eq!(returned_layers, layers[..returned.len()]);
    let mut losses = vec![loss(&r["marked"]["val_top1"])];
    losses.extend(returned.iter().map(|x| x["loss"].as_f64().expect("loss")));
    for l in &losses[..losses.len() - 1] {
        assert!(
            *l > 0.0,
            "returned a layer with the loss within the budget: {losses:?}"
        );
    }
    assert!(*losses.last().expect("loss") <= 0.0, "{losses:?}");
    assert_eq!(r["within_budget"], true);
    let kept: Arch = r["kept_arch"]
        .as_str()
        .expect("arch")
        .parse()
        .expect("arch");
    let mut expected: Vec<usize> = arch.int8_layers();
    expected.retain(|l| !returned_layers.contains(l));
    assert_eq!(kept.int8_layers(), expected);
    assert_eq!(kept.as_fp32(), arch.as_fp32(), "only precisions change");
    // Scores agree with `hsconas export evaluate` on the files.
    let model_file = out.join("model.onnx");
    assert_eq!(
        r["kept"]["test_top1"].as_f64().expect("test"),
        evaluate(&model_file)
    );
    // The same weights without the marks: the FP32 network (`export onnx` refuses marks without INT8).
    let fp32_net = dir.join("fp32-net");
    std::fs::create_dir_all(&fp32_net).expect("dir");
    std::fs::copy(
        weights.join("weights.safetensors"),
        fp32_net.join("weights.safetensors"),
    )
    .expect("copy");
    let mut info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(weights.join("model.json")).expect("model.json"))
            .expect("JSON");
    info["architecture"] = arch.as_fp32().to_string().into();
    std::fs::write(fp32_net.join("model.json"), info.to_string()).expect("write");
    let fp32_file = dir.join("fp32.onnx");
    ok(hsconas(&[
        "export",
        "onnx",
        "--weights",
        fp32_net.to_str().expect("utf-8"),
        "--out",
        fp32_file.to_str().expect("utf-8"),
    ]));
    assert_eq!(
        r["fp32"]["test_top1"].as_f64().expect("test"),
        evaluate(&fp32_file)
    );
    // Latency: the table's predictions, and both networks measured.
    let latency = &r["latency"];
    for (key, a) in [("marked_predicted_ms", arch), ("kept_predicted_ms", &kept)] {
        assert!((latency[key].as_f64().expect("ms") - model.predict_ms(a)).abs() < 1e-9);
    }
    let measured = latency["measured_ms"].as_array().expect("measured");
    assert!(measured.iter().all(|m| m.as_f64().expect("ms") > 0.0));

    // A generous budget keeps every mark (and without --table the report has no latency).
    let run = ok(int8_budget(
        &weights,
        &dir.join("budget-100"),
        &["--max-int8-loss", "100"],
    ));
    let r: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON");
    assert_eq!(r["returned"], serde_json::json!([]));
    assert_eq!(r["kept_arch"], r["marked_arch"]);
    assert_eq!(r["kept"], r["marked"]);
    assert!(r.get("latency").is_none());
    int8_crate_of_the_network_kept(&dir.join("budget-100"), arch, dir);

    // Misuses: a negative budget, a network without INT8 marks, truncated weights.
    let refused = int8_budget(&weights, &dir.join("x"), &["--max-int8-loss", "-1"]);
    assert_fails_with(&refused, "--max-int8-loss must be");
    assert_fails_with(
        &int8_budget(&fp32_net, &dir.join("x"), &[]),
        "marks no layer @int8",
    );
    let bytes = std::fs::read(weights.join("weights.safetensors")).expect("weights");
    std::fs::write(
        fp32_net.join("weights.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .expect("write");
    info["architecture"] = arch.to_string().into();
    std::fs::write(fp32_net.join("model.json"), info.to_string()).expect("write");
    let truncated = int8_budget(&fp32_net, &dir.join("x"), &[]);
    assert!(!truncated.status.success());
    assert!(
        !dir.join("x").join("model.onnx").exists(),
        "nothing written"
    );
}

fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(needle), "{stderr}");
}

/// `hsconas export crate --precision int8` of the network `hsconas export int8-budget` kept in `kept`
/// (all of `arch`'s marks): the crate ships the INT8 model, defaults to ONNX Runtime, is formatted and
/// clippy-clean, and its golden test (ONNX Runtime's logits) passes with ONNX Runtime alone and with
/// both backends.
fn int8_crate_of_the_network_kept(kept: &Path, arch: &Arch, dir: &Path) {
    let data = root().join("data/cifar10-sample.tar.gz");
    let krate = dir.join("int8-net");
    let out = ok(hsconas(&[
        "export",
        "crate",
        "--weights",
        kept.to_str().expect("utf-8"),
        "--name",
        "int8-net",
        "--precision",
        "int8",
        "--calibration",
        data.to_str().expect("utf-8"),
        "--calibration-images",
        "64",
        "--out",
        krate.to_str().expect("utf-8"),
        "--json",
    ]));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(summary["precision"], "int8");
    assert_eq!(summary["architecture"], arch.to_string());
    let model = std::fs::read(krate.join("model.onnx")).expect("model");
    let meta = hsconas_export::onnx::metadata(&model).expect("ONNX");
    assert_eq!(meta["precision"], "int8");
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).expect("Cargo.toml");
    assert!(manifest.contains("default = [\"ort\"]"), "{manifest}");
    std::fs::copy(root().join("Cargo.lock"), krate.join("Cargo.lock")).expect("lock file");
    ok(cargo(&krate, &["fmt", "--check"]));
    ok(cargo(
        &krate,
        &[
            "clippy",
            "--offline",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ));
    for features in [&[][..], &["--features", "tract"][..]] {
        let test = [&["test", "--offline"][..], features].concat();
        let out = ok(cargo(&krate, &test));
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(log.contains("golden_output ... ok"), "{log}");
    }
}
