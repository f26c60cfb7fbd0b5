//! `hsconas search --precision` end to end: a mixed-precision table profiled on this machine (real ONNX
//! Runtime, input 32, a short protocol), then searches with the built-in predictor on the committed
//! CIFAR-10 sample: by default a mixed table searches each layer's precision (candidates with INT8 layers,
//! the accuracy the FP32 network's, the best re-measured as mixed networks); `--precision fp32` and `int8`
//! restrict it (an all-INT8 search's latencies are the INT8 entries' sums); an FP32 table refuses INT8
//! layers.

mod common;

use std::path::Path;
use std::process::Output;

use common::{hsconas, root};
use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_models::Arch;
use hsconas_tests::FAST_PROTOCOL;

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

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
    let mut profile = vec![
        "profile",
        "--device",
        "local-cpu",
        "--input-size",
        "32",
        "--precision",
        "mixed",
        "--out",
        t,
    ];
    profile.extend(FAST_PROTOCOL);
    ok(hsconas(&profile));
    ok(hsconas(&["calibrate", "--table", t, "--samples", "4"]));
    let model =
        LatencyModel::from_table(&LatencyTable::load(&table).expect("table")).expect("model");
    let predictor = hsconas_nas::predictor::Predictor::built_in().expect("built in");

    // The default with a mixed table: mixed. Accuracy is the FP32 network's; latency uses the INT8 entries.
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
