//! The latency model's code replayed on committed measurements: the committed tables
//! (`devices/tables/`) and the networks a validation measured on a real device with them
//! (`docs/evidence/reproduce/latency-model/*.validation.json.gz`, 50 random networks each, measured end to
//! end on the AMD EPYC VM). The model must reproduce each network's table sum and the prediction error the
//! report states (and the docs copy from it, checked by `docs_evidence`): a change to how tables are
//! summed, corrected or scored that moves those numbers fails here, deterministically, without a device.

use hsconas_devices::metrics::PredictorAccuracy;
use hsconas_devices::{Correction, LatencyTable};
use hsconas_models::Arch;
use hsconas_tests::{read_evidence, repo_root};

#[test]
fn committed_measurements_replay_to_the_stated_prediction_error() {
    let root = repo_root();
    for size in [32, 224] {
        let table =
            LatencyTable::load(&root.join(format!("devices/tables/local-cpu-A-{size}.json")))
                .expect("the committed table");
        let path = root.join(format!(
            "docs/evidence/reproduce/latency-model/local-cpu-A-{size}.validation.json.gz"
        ));
        let report: serde_json::Value =
            serde_json::from_slice(&read_evidence(&path).expect("the report")).expect("JSON");
        let networks = report["networks"].as_array().expect("networks");
        assert!(networks.len() >= 20, "{size}: {} networks", networks.len());
        let (mut sums, mut measured, mut archs) = (Vec::new(), Vec::new(), Vec::new());
        for n in networks {
            let arch: Arch = serde_json::from_value(n["arch"].clone()).expect("an architecture");
            let sum = table.table_sum_ms(&arch).expect("every piece in the table");
            let stated = n["table_sum_ms"].as_f64().expect("table_sum_ms");
            assert!(
                (sum - stated).abs() <= 1e-9 * stated.max(1.0),
                "{size}: {arch}: the model sums {sum} ms, the report {stated} ms"
            );
            sums.push(sum);
            archs.push(arch);
            measured.push(n["measured_ms"].as_f64().expect("measured_ms"));
        }
        // Each predictor of the report (the raw sum, + B, the line) recomputed from the sums.
        let bias = Correction::bias(report["bias_ms"].as_f64().expect("bias_ms"));
        let line: Correction =
            serde_json::from_value(report["linear"].clone()).expect("the linear correction");
        for (name, correction) in [
            ("table", Correction::NONE),
            ("table + B", bias),
            ("table, linear", line),
        ] {
            let predicted: Vec<f64> = sums
                .iter()
                .zip(&archs)
                .map(|(&s, arch)| correction.predict(s, arch))
                .collect();
            let accuracy = PredictorAccuracy::of(&predicted, &measured);
            let stated = report["predictors"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["name"] == name))
                .map(|p| p["accuracy"].clone())
                .unwrap_or_else(|| panic!("{size}: no predictor {name}"));
            for (key, value) in [
                ("rmspe_percent", accuracy.rmspe_percent),
                ("within_5_percent", accuracy.within_5_percent),
                ("kendall_tau", accuracy.kendall_tau),
            ] {
                let expected = stated[key].as_f64().expect("a number");
                assert!(
                    (value - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                    "{size}, {name}: {key} {value}, stated {expected}"
                );
            }
        }
    }
}
