//! The runtime on older ONNX Runtime releases: 1.17.3, the oldest this build loads (`ort`'s `api-17`, the
//! generation of ONNX Runtime that JetPack 6 ships for Jetsons), benches and profiles; 1.16.3, one release
//! below, is refused with an error that names both versions. `scripts/setup.sh` fetches both libraries
//! (npm's `onnxruntime-node`, which ships the plain shared library) into `HSCONAS_OLD_ORT_DIR`.

use std::path::{Path, PathBuf};

use hsconas_export::BatchDim;
use hsconas_models::NetConfig;
use hsconas_tests::{piece_onnx, run_bin_env, write_pieces, Outcome};

/// The older library of release `version`, as scripts/setup.sh installed it.
fn old_library(version: &str) -> PathBuf {
    let dir = std::env::var_os("HSCONAS_OLD_ORT_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("HSCONAS_OLD_ORT_DIR").map(PathBuf::from))
        .expect("HSCONAS_OLD_ORT_DIR is set by .cargo/config.toml");
    let lib = dir.join(format!("libonnxruntime.so.{version}"));
    assert!(
        lib.exists(),
        "{} is missing: run scripts/setup.sh (it fetches ONNX Runtime {version})",
        lib.display()
    );
    lib
}

/// Runs `hsconas-runtime` with `ORT_DYLIB_PATH` pointing at `library`.
fn runtime_on(library: &Path, args: &[&str]) -> Outcome {
    run_bin_env("hsconas-runtime", args, &[("ORT_DYLIB_PATH", library)])
}

fn config() -> NetConfig {
    NetConfig {
        input_size: 32,
        classes: 10,
        ..NetConfig::default()
    }
}

#[test]
fn onnxruntime_1_17_loads_benches_and_profiles() {
    let lib = old_library("1.17.3");
    let info = runtime_on(&lib, &["info", "--json"]);
    assert_eq!(info.code, Some(0), "{}", info.stderr);
    let info: serde_json::Value = serde_json::from_str(&info.stdout).expect("JSON");
    let backends = &info["backends"];
    assert_eq!(
        backends["ort_version"].as_str(),
        Some("onnxruntime 1.17.3"),
        "{backends}"
    );
    assert_eq!(backends["ort_minimum"].as_str(), Some("1.17"));
    assert!(backends["ort_providers"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p == "cpu")));

    let dir = tempfile::tempdir().expect("temp dir");
    let config = config();
    let model = dir.path().join("layer.onnx");
    std::fs::write(
        &model,
        piece_onnx("L3:shuffle5:0.5", &config, BatchDim::Fixed(1)),
    )
    .expect("written");
    let bench = runtime_on(
        &lib,
        &[
            "bench",
            model.to_str().expect("utf-8"),
            "--runs",
            "5",
            "--min-time-ms",
            "5",
            "--json",
        ],
    );
    assert_eq!(bench.code, Some(0), "{}", bench.stderr);
    let report: serde_json::Value = serde_json::from_str(&bench.stdout).expect("JSON");
    assert_eq!(report["provider"], "cpu");
    assert!(
        report["backend"]
            .as_str()
            .is_some_and(|b| b.contains("1.17.3")),
        "{report}"
    );
    assert!(report["p10_ms"].as_f64().is_some_and(|ms| ms > 0.0));

    // A profile of pieces, as `hsconas profile` drives it.
    let entries = write_pieces(dir.path(), &["stem", "L1:xception:0.2", "head"], &config);
    let manifest = dir.path().join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({ "models": entries }).to_string(),
    )
    .expect("manifest");
    let results = dir.path().join("results.json");
    let profile = runtime_on(
        &lib,
        &[
            "measure",
            manifest.to_str().expect("utf-8"),
            "--out",
            results.to_str().expect("utf-8"),
            "--runs",
            "5",
            "--min-time-ms",
            "5",
        ],
    );
    assert_eq!(profile.code, Some(0), "{}", profile.stderr);
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&results).expect("results")).expect("JSON");
    for key in ["stem", "L1:xception:0.2", "head"] {
        assert!(
            results["results"][key]["p10_ms"]
                .as_f64()
                .is_some_and(|ms| ms > 0.0),
            "{key}: {results}"
        );
    }
    assert!(
        results.to_string().contains("onnxruntime 1.17.3"),
        "the results do not record the release that measured them"
    );
}

#[test]
fn onnxruntime_below_the_floor_is_refused_clearly() {
    let lib = old_library("1.16.3");
    let info = runtime_on(&lib, &["info"]);
    assert_eq!(info.code, Some(0), "{}", info.stderr);
    assert!(
        info.stdout.contains(
            "ONNX Runtime 1.16.3 is older than 1.17, the oldest release this build loads"
        ),
        "{}",
        info.stdout
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("stem.onnx");
    std::fs::write(&model, piece_onnx("stem", &config(), BatchDim::Fixed(1))).expect("written");
    let bench = runtime_on(&lib, &["bench", model.to_str().expect("utf-8")]);
    assert_eq!(bench.code, Some(1), "{}", bench.stderr);
    assert!(
        bench.stderr.contains("older than 1.17") && bench.stderr.contains("1.17 or newer"),
        "{}",
        bench.stderr
    );
    // The tract backend needs no ONNX Runtime and still works on the same machine.
    let tract = runtime_on(
        &lib,
        &[
            "bench",
            model.to_str().expect("utf-8"),
            "--backend",
            "tract",
            "--runs",
            "3",
            "--min-time-ms",
            "1",
        ],
    );
    assert_eq!(tract.code, Some(0), "{}", tract.stderr);
}
