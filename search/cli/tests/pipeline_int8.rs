//! `hsconas run --mode constraint` with a mixed-precision table, end to end: the search puts each layer
//! at its faster precision, the retrained winner's INT8 layers are kept within the budget (`hsconas export
//! int8-budget`, measured on the device), and the network kept is exported and shipped as an INT8
//! model and crate. The table is profiled here (real ONNX Runtime, input 32, a short protocol); at 32
//! pixels INT8 rarely pays on a CPU, so the test makes it pay by dividing the INT8 entries by 5 and
//! gives the table an empty calibration with no correction (the fixture of a device where INT8 is
//! fast); everything after that is real.

mod common;

use common::{hsconas, ok, profile_mixed_table_32, root};
use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_models::{Arch, SearchSpace};

#[test]
fn a_run_on_a_mixed_table_keeps_the_int8_loss_in_budget_and_ships_int8() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let table = tmp.path().join("mixed.json");
    let t = table.to_str().expect("utf-8");
    profile_mixed_table_32(&table);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&table).expect("table")).expect("JSON");
    for (key, entry) in json["entries"].as_object_mut().expect("entries") {
        if key.ends_with("@int8") {
            for stat in ["min_ms", "p10_ms", "median_ms", "p90_ms", "mean_ms"] {
                let v = entry[stat].as_f64().expect("a statistic");
                entry[stat] = serde_json::json!(v / 5.0);
            }
        }
    }
    json["calibration"] = serde_json::json!({
        "bias_ms": 0.0, "linear": null, "correction": "none", "seed": 1, "requested": 0, "samples": []
    });
    std::fs::write(&table, serde_json::to_vec(&json).expect("JSON")).expect("write table");

    let out = tmp.path().join("run");
    let data = root().join("data/cifar10-sample.tar.gz");
    let args = [
        "run",
        "--data",
        data.to_str().expect("utf-8"),
        "--table",
        t,
        "--target-ms",
        "5",
        "--preset",
        "tiny",
        "--threads",
        "1",
        "--mode",
        "constraint",
        "--max-int8-loss",
        "100",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    let run = ok(hsconas(&args));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary"))
            .expect("summary JSON");
    let winner: Arch = summary["arch"]
        .as_str()
        .expect("arch")
        .parse()
        .expect("valid");
    assert!(!winner.is_fp32(), "INT8 pays on this table: {winner}");
    let budget = &summary["int8_budget"];
    assert_eq!(
        budget["marked_arch"].as_str(),
        Some(winner.to_string().as_str())
    );
    assert_eq!(budget["max_int8_loss"], 100.0);
    // A budget of 100 points keeps every INT8 layer; the network shipped is the one kept.
    assert_eq!(budget["kept_arch"], budget["marked_arch"]);
    assert_eq!(summary["shipped_arch"], budget["kept_arch"]);
    assert_eq!(
        summary["files"]["shipped"]
            .as_str()
            .map(std::path::Path::new),
        Some(out.join("int8").as_path())
    );
    // Under the budget (constraint mode) the search's default is fastest: every layer with weights at
    // the precision this table predicts faster (which one depends on the pieces measured here: early
    // layers at input 32 can stay slower in INT8 even with their entries divided by 5).
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("search/search.json")).expect("report"))
            .expect("report JSON");
    assert_eq!(report["settings"]["evolution"]["fastest_precision"], true);
    let model =
        LatencyModel::from_table(&LatencyTable::load(&table).expect("the table")).expect("a model");
    assert_eq!(
        model.fastest_precisions(&winner, &SearchSpace::full()),
        winner,
        "every layer at its faster precision"
    );
    assert!(
        budget["latency"]["measured_ms"][0]
            .as_f64()
            .expect("measured")
            > 0.0
    );
    assert!(stdout.contains("int8      kept"), "{stdout}");
    let onnx = std::fs::read(out.join("model.onnx")).expect("model.onnx");
    let has = |needle: &[u8]| onnx.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"QuantizeLinear") && has(b"DequantizeLinear"),
        "an INT8 model"
    );
    let manifest = std::fs::read_to_string(out.join("crate/Cargo.toml")).expect("crate");
    assert!(manifest.contains("default = [\"ort\"]"), "{manifest}");
    // The kept network's test top-1 in the report is the shipped model's, measured by ONNX Runtime.
    let evaluated = ok(hsconas(&[
        "export",
        "evaluate",
        "--model",
        out.join("model.onnx").to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
        "--json",
    ]));
    let evaluated: serde_json::Value = serde_json::from_slice(&evaluated.stdout).expect("JSON");
    assert_eq!(
        evaluated["top1"].as_f64(),
        budget["kept"]["test_top1"].as_f64(),
        "{evaluated}"
    );

    // A rerun has nothing left to do, the budget included.
    let again = ok(hsconas(&args));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(stderr.matches("skipped").count(), 8, "{stderr}");
    assert!(
        stderr.contains("int8-budget.json exists: skipped"),
        "{stderr}"
    );
}
