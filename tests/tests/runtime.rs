//! The runtime's backends and commands on real exported models: ONNX Runtime (loaded dynamically) and
//! tract, the same checks over both.

use hsconas_export::{onnx, BatchDim, GraphWeights, OnnxOptions, Weights};
use hsconas_models::build;
use hsconas_models::{Arch, NetConfig};
use hsconas_runtime::backend::{self, BackendConfig, HostTensor};
use hsconas_runtime::timing::{measure, random_inputs};
use hsconas_runtime::RuntimeError;
use hsconas_tests::{piece_onnx, relative_error, run_bin, run_bin_env, write_pieces};
use hsconas_vocabulary::Protocol;
use hsconas_vocabulary::{Engine, ExecutionProvider};

fn config(kind: Engine) -> BackendConfig {
    BackendConfig {
        kind,
        ..BackendConfig::default()
    }
}

fn small_net(batch: BatchDim) -> Vec<u8> {
    let arch: Arch = "shuffle3:0.5,shuffle5:0.3,skip,xception:0.2,shuffle7:0.4,skip,shuffle3:1.0,xception:0.5,\
                      shuffle5:0.6,skip,shuffle3:0.1,shuffle7:0.9,xception:0.7,skip,shuffle5:0.2,shuffle3:0.8,\
                      xception:0.3,skip,shuffle7:0.5,shuffle3:0.4"
        .parse()
        .expect("valid");
    let graph = build::network(
        &arch,
        &NetConfig {
            input_size: 32,
            classes: 10,
            ..NetConfig::default()
        },
    )
    .expect("builds");
    onnx::to_bytes(
        &graph,
        &Weights::random(&graph, 1),
        &OnnxOptions {
            batch,
            ..OnnxOptions::default()
        },
    )
    .expect("exports")
}

/// Runs a check on both backends (the runtime's "same test over every backend").
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            let check: fn(Engine) = $body;
            check(Engine::Ort);
            check(Engine::Tract);
        }
    };
}

on_both_backends!(loads_describes_and_runs_with_a_symbolic_batch, |kind| {
    let engine = backend::build(&config(kind)).expect("backend");
    let mut model = engine.load(&small_net(BatchDim::Symbolic)).expect("loads");
    assert_eq!(model.inputs().len(), 1);
    assert_eq!(
        model.inputs()[0].shape,
        vec![None, Some(3), Some(32), Some(32)],
        "{kind}"
    );
    assert_eq!(model.provider(), ExecutionProvider::Cpu);
    for batch in [1, 3] {
        let inputs = random_inputs(model.inputs(), batch, 5);
        let out = model.run(&inputs).expect("runs");
        assert_eq!(out[0].shape, vec![batch, 10], "{kind}");
    }
});

on_both_backends!(malformed_models_and_wrong_inputs_are_clear_errors, |kind| {
    let engine = backend::build(&config(kind)).expect("backend");
    for bad in [
        &b"not an onnx model"[..],
        &small_net(BatchDim::Fixed(1))[..100],
    ] {
        match engine.load(bad) {
            Err(RuntimeError::BadModel(_)) => {}
            Err(other) => panic!("{kind}: wrong error {other}"),
            Ok(_) => panic!("{kind}: a malformed model loaded"),
        }
    }
    let mut model = engine.load(&small_net(BatchDim::Fixed(1))).expect("loads");
    let wrong = HostTensor {
        shape: vec![1, 3, 16, 16],
        data: vec![0.0; 3 * 256],
    };
    let err = model.run(&[wrong]).expect_err("wrong shape").to_string();
    assert!(
        err.contains("[1, 3, 16, 16]") && err.contains("[1, 3, 32, 32]"),
        "{kind}: {err}"
    );
    let short = HostTensor {
        shape: vec![1, 3, 32, 32],
        data: vec![0.0; 10],
    };
    assert!(
        matches!(model.run(&[short]), Err(RuntimeError::BadInput(_))),
        "{kind}"
    );
    assert!(
        matches!(model.run(&[]), Err(RuntimeError::BadInput(_))),
        "{kind}"
    );
});

on_both_backends!(measures_a_prepared_model, |kind| {
    let engine = backend::build(&config(kind)).expect("backend");
    let mut model = engine.load(&small_net(BatchDim::Fixed(2))).expect("loads");
    model
        .prepare(&random_inputs(model.inputs(), 1, 0))
        .expect("prepares");
    let protocol = Protocol {
        warmup: 2,
        min_runs: 5,
        min_time_ms: 20.0,
        ..Protocol::default()
    };
    let stats = measure(model.as_mut(), &protocol).expect("measures");
    assert!(stats.runs >= 5);
    assert!(stats.min_ms > 0.0 && stats.min_ms <= stats.p10_ms && stats.p10_ms <= stats.median_ms);
    assert!(stats.median_ms <= stats.p90_ms && stats.mean_ms * stats.runs as f64 >= 20.0 * 0.999);
});

#[test]
fn ort_and_tract_agree_on_exported_models() {
    let mut pieces = vec![small_net(BatchDim::Fixed(2))];
    let config_224 = NetConfig::default();
    for key in ["L1:shuffle7:0.3", "L6:xception:0.5"] {
        pieces.push(piece_onnx(key, &config_224, BatchDim::Fixed(1)));
    }
    let ort = backend::build(&config(Engine::Ort)).expect("ort");
    let tract = backend::build(&config(Engine::Tract)).expect("tract");
    for bytes in pieces {
        let mut a = ort.load(&bytes).expect("ort loads");
        let mut b = tract.load(&bytes).expect("tract loads");
        let inputs = random_inputs(a.inputs(), 1, 4);
        let ya = a.run(&inputs).expect("ort runs");
        let yb = b.run(&inputs).expect("tract runs");
        assert_eq!(ya[0].shape, yb[0].shape);
        assert!(relative_error(&yb[0].data, &ya[0].data) < 1e-4);
    }
}

#[test]
fn bench_prints_the_statistics_as_json_on_both_backends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("net.onnx");
    std::fs::write(&model, small_net(BatchDim::Fixed(1))).expect("written");
    for kind in ["ort", "tract"] {
        let out = run_bin(
            "hsconas-runtime",
            &[
                "bench",
                model.to_str().expect("utf-8"),
                "--backend",
                kind,
                "--runs",
                "5",
                "--min-time-ms",
                "10",
                "--pin",
                "0",
                "--json",
            ],
        );
        assert_eq!(out.code, Some(0), "{kind}: {}", out.stderr);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        for key in [
            "median_ms",
            "p10_ms",
            "p90_ms",
            "mean_ms",
            "stdev_ms",
            "min_ms",
        ] {
            assert!(
                report[key].as_f64().is_some_and(|v| v > 0.0),
                "{kind}: {key} in {report}"
            );
        }
        let stat = |key: &str| report[key].as_f64().unwrap_or(f64::NAN);
        let order = [
            stat("min_ms"),
            stat("p10_ms"),
            stat("median_ms"),
            stat("p90_ms"),
        ];
        assert!(
            order.windows(2).all(|w| w[0] <= w[1]),
            "{kind}: min <= p10 <= median <= p90 fails: {order:?}"
        );
        assert!(
            stat("min_ms") <= stat("mean_ms") && stat("stdev_ms") < stat("mean_ms") * 10.0,
            "{kind}: mean and spread: {report}"
        );
        assert!(report["runs"].as_u64().is_some_and(|r| r >= 5));
        assert!(report["fingerprint"]["logical_cpus"]
            .as_u64()
            .is_some_and(|n| n >= 1));
        assert!(report["backend"]
            .as_str()
            .is_some_and(|b| b.starts_with(if kind == "ort" {
                "onnxruntime 1."
            } else {
                "tract"
            })));
    }
}

/// Providers are registered in the order asked; one that cannot run here is a warning naming it and the
/// provider that ran is reported, or, under `--require-provider`, an error.
#[test]
fn unavailable_providers_are_named_and_can_be_required() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("net.onnx");
    std::fs::write(&model, small_net(BatchDim::Fixed(1))).expect("written");
    let m = model.to_str().expect("utf-8");
    let fast = ["--runs", "3", "--min-time-ms", "1", "--json"];
    let mut args = vec!["bench", m, "--provider", "tensorrt,cuda,cpu", "--placement"];
    args.extend(fast);
    let out = run_bin("hsconas-runtime", &args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let ran = report["provider"].as_str().expect("provider").to_string();
    // ONNX Runtime's profiler says which provider ran the kernels: all of them on the CPU here.
    let placement = report["placement"].as_object().expect("placement");
    if ran == "cpu" {
        assert_eq!(placement.keys().collect::<Vec<_>>(), ["cpu"], "{report}");
        assert!(
            placement["cpu"].as_u64().is_some_and(|n| n >= 5),
            "{report}"
        );
        assert!(report["input_copy_ms"].is_null(), "{report}");
    } else {
        assert!(placement.contains_key(&ran), "{report}");
        assert!(report["input_copy_ms"].as_f64().is_some(), "{report}");
    }
    for gpu in ["tensorrt", "cuda"] {
        if ran != gpu {
            assert!(
                out.stderr
                    .contains(&format!("execution provider {gpu} is not available")),
                "{gpu} did not run and is not named: {}",
                out.stderr
            );
        }
    }
    let mut args = vec!["bench", m, "--provider", "cuda", "--require-provider"];
    args.extend(fast);
    let required = run_bin("hsconas-runtime", &args);
    if ran == "cpu" {
        assert_eq!(required.code, Some(1), "{}", required.stderr);
        assert!(
            required
                .stderr
                .contains("cuda is required but not available"),
            "{}",
            required.stderr
        );
    } else {
        assert_eq!(required.code, Some(0), "{}", required.stderr);
    }
}

/// The I/O-binding path GPU providers time with (inputs copied once, outputs left in the provider's
/// memory), checked on the CPU: it runs, and reports the one input copy apart from the timings.
#[test]
fn io_binding_times_the_model_and_reports_the_input_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("net.onnx");
    std::fs::write(&model, small_net(BatchDim::Symbolic)).expect("written");
    let m = model.to_str().expect("utf-8");
    let args = [
        "bench",
        m,
        "--io-binding",
        "--batch",
        "4",
        "--runs",
        "5",
        "--min-time-ms",
        "5",
        "--json",
    ];
    let out = run_bin("hsconas-runtime", &args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert!(
        report["p10_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{report}"
    );
    // A copy was timed (a positive time) and is cheaper than running the model.
    let median = report["median_ms"].as_f64().expect("median_ms");
    for copy in ["input_copy_ms", "output_copy_ms"] {
        assert!(
            report[copy]
                .as_f64()
                .is_some_and(|ms| ms > 0.0 && ms < median),
            "{copy} against median {median}: {report}"
        );
    }
    assert_eq!(report["input_shapes"][0][0], 4);
    // Through the library: a bound model still runs unbound, with the same result as without binding.
    let bound = backend::build(&BackendConfig {
        io_binding: true,
        ..config(Engine::Ort)
    })
    .expect("backend");
    let plain = backend::build(&config(Engine::Ort)).expect("backend");
    let bytes = small_net(BatchDim::Symbolic);
    let (mut a, mut b) = (
        bound.load(&bytes).expect("loads"),
        plain.load(&bytes).expect("loads"),
    );
    let inputs = random_inputs(a.inputs(), 2, 3);
    a.prepare(&inputs).expect("binds");
    a.run_prepared().expect("runs bound");
    assert!(a.input_copy_ms().is_some() && b.input_copy_ms().is_none());
    assert!(a.output_copy_ms().is_some() && b.output_copy_ms().is_none());
    let (ya, yb) = (a.run(&inputs).expect("runs"), b.run(&inputs).expect("runs"));
    assert_eq!(ya[0].data, yb[0].data);
}

/// Finding the placement profiles one run; a model dropped before it was prepared leaves no profile file.
#[test]
fn placement_profiles_leave_no_files_behind() {
    let leftovers = || {
        let prefix = format!("hsconas-placement-{}-", std::process::id());
        std::fs::read_dir(std::env::temp_dir())
            .expect("temp dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count()
    };
    let engine = backend::build(&BackendConfig {
        placement: true,
        ..config(Engine::Ort)
    })
    .expect("backend");
    let bytes = small_net(BatchDim::Fixed(1));
    let mut prepared = engine.load(&bytes).expect("loads");
    let inputs = random_inputs(prepared.inputs(), 1, 0);
    prepared.prepare(&inputs).expect("prepares");
    let placement = prepared.placement().expect("placement").clone();
    assert!(
        placement.get("cpu").is_some_and(|&n| n > 0),
        "{placement:?}"
    );
    drop(engine.load(&bytes).expect("loads"));
    drop(prepared);
    assert_eq!(leftovers(), 0);
}

#[test]
fn bench_reports_bad_models_and_a_missing_onnxruntime_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"definitely not protobuf").expect("written");
    let out = run_bin("hsconas-runtime", &["bench", bad.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("invalid or unsupported ONNX model"),
        "{}",
        out.stderr
    );

    let good = dir.path().join("good.onnx");
    std::fs::write(&good, small_net(BatchDim::Fixed(1))).expect("written");
    let missing = dir.path().join("no-such-libonnxruntime.so");
    let out = run_bin_env(
        "hsconas-runtime",
        &["bench", good.to_str().expect("utf-8")],
        &[("ORT_DYLIB_PATH", &missing)],
    );
    let stderr = out.stderr;
    assert_eq!(out.code, Some(1));
    assert!(
        stderr.contains("cannot load ONNX Runtime") && stderr.contains("ORT_DYLIB_PATH"),
        "{stderr}"
    );
}

#[test]
fn profile_measures_a_manifest_and_resumes_without_losing_results() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = NetConfig {
        input_size: 32,
        classes: 10,
        ..NetConfig::default()
    };
    let keys = ["stem", "L2:shuffle3:0.5", "L5:xception:0.2", "head"];
    let entries = write_pieces(dir.path(), &keys, &config);
    let manifest = dir.path().join("manifest.json");
    let out = dir.path().join("results.json");
    let write_manifest = |n: usize| {
        std::fs::write(
            &manifest,
            serde_json::json!({ "models": entries[..n] }).to_string(),
        )
        .expect("manifest");
    };
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "measure".to_string(),
            manifest.to_str().expect("utf-8").to_string(),
            "--out".into(),
            out.to_str().expect("utf-8").into(),
            "--runs".into(),
            "5".into(),
            "--min-time-ms".into(),
            "5".into(),
            "--group".into(),
            "2".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        run_bin(
            "hsconas-runtime",
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    write_manifest(3);
    let first = run(&[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("results")).expect("JSON");
    assert_eq!(results["results"].as_object().map(|m| m.len()), Some(3));

    write_manifest(4);
    let second = run(&[]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(
        second.stderr.contains("3 of 4 models already measured"),
        "{}",
        second.stderr
    );
    let resumed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("results")).expect("JSON");
    for key in &keys[..3] {
        assert_eq!(
            resumed["results"][key], results["results"][key],
            "{key} was re-measured or lost"
        );
    }
    assert!(resumed["results"]["head"]["p10_ms"]
        .as_f64()
        .is_some_and(|v| v > 0.0));

    let other = run(&["--backend", "tract"]);
    assert_eq!(other.code, Some(1));
    assert!(other.stderr.contains("other settings"), "{}", other.stderr);

    // The same manifest on tract, into its own results file.
    std::fs::remove_file(&out).expect("removed");
    let on_tract = run(&["--backend", "tract"]);
    assert_eq!(on_tract.code, Some(0), "{}", on_tract.stderr);
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("results")).expect("JSON");
    assert!(results["backend"]
        .as_str()
        .is_some_and(|b| b.starts_with("tract")));
    assert_eq!(results["results"].as_object().map(|m| m.len()), Some(4));
}
