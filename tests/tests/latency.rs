//! The latency model end to end through the `hsconas` binary, on this machine's real ONNX Runtime at
//! CIFAR size (input 32) with a short protocol: profiling (local, killed and resumed, and remote through
//! the agent on loopback), calibration, prediction against the hand sum, validation with plots, and the
//! refusals (another device, other settings, incomplete or corrupt tables, bad architectures).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hsconas_tests::table_json::{
    arch_string, check_reference_in_every_group, entries, normalised_p10, read_json,
    reference_state, trace,
};
use hsconas_tests::{
    fails_with, ok, profile_args, run_bin, workspace_bin, RunningAgent, FAST_PROTOCOL as FAST,
};
use serde_json::Value;

/// Profiles with the short protocol and the reference network normalised group by group (`ratio-1`, so
/// the tests can redo the arithmetic by hand).
fn profile_fast(out: &Path) -> Value {
    let out_s = out.to_str().expect("utf-8 path");
    let mut args = profile_args(out_s, &FAST);
    args.extend(["--drift-model", "ratio-1", "--json"]);
    let summary: Value = serde_json::from_str(&ok(run_bin("hsconas", &args)).stdout).expect("JSON");
    assert_eq!(summary["entries"], 818);
    let table = read_json(out);
    check_reference_in_every_group(&table, 16, false);
    table
}

#[test]
fn profile_calibrate_predict_and_validate_on_this_machine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t32.json");
    let p = path.to_str().expect("utf-8");
    let table = profile_fast(&path);
    let prov = &table["provenance"];
    assert_eq!(
        (
            prov["device"].as_str(),
            prov["input_size"].as_u64(),
            prov["classes"].as_u64(),
            prov["batch"].as_u64()
        ),
        (Some("local-cpu"), Some(32), Some(10), Some(1))
    );
    assert!(prov["backend_version"]
        .as_str()
        .is_some_and(|v| v.starts_with("onnxruntime 1.31")));
    assert!(prov["fingerprint"]["cpu_model"].is_string(), "{prov}");
    for (key, e) in entries(&table) {
        assert_eq!(e["runs"], 3, "{key}");
        assert!(e["p10_ms"].as_f64().is_some_and(|v| v > 0.0), "{key}");
    }

    // Predicting before calibration is the plain table sum; an uncalibrated table cannot be validated.
    fails_with(
        run_bin(
            "hsconas",
            &["latency", "validate", "--table", p, "--samples", "4"],
        ),
        "not calibrated",
    );

    ok(run_bin(
        "hsconas",
        &["calibrate", "--table", p, "--samples", "6", "--seed", "5"],
    ));
    let table = read_json(&path);
    let entries = entries(&table);
    let cal = &table["calibration"];
    let samples = cal["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 6);
    // Table sums of normalised entries; measurements normalised with the calibration's own trace.
    let hand_sum = |arch: &str| {
        let mut sum =
            normalised_p10(&table, &entries["stem"]) + normalised_p10(&table, &entries["head"]);
        for (l, choice) in arch.split(',').enumerate() {
            sum += normalised_p10(&table, &entries[&format!("L{}:{choice}", l + 1)]);
        }
        sum
    };
    let (state, _) = reference_state(&table);
    let calibration_trace = trace(&cal["trace"]);
    assert_eq!(calibration_trace.len(), 1, "6 networks in one group of 10");
    let mut diff = 0.0;
    for s in samples {
        let sum = hand_sum(&arch_string(&s["arch"]));
        assert!((s["table_sum_ms"].as_f64().expect("sum") - sum).abs() < 1e-9);
        let g = s["group"].as_u64().expect("a group") as usize;
        let raw = s["raw_ms"].as_f64().expect("the raw measurement is kept");
        let measured = s["measured_ms"].as_f64().expect("measured");
        assert!((measured - raw / (calibration_trace[g] / state)).abs() < 1e-9);
        diff += measured - sum;
    }
    let bias = cal["bias_ms"].as_f64().expect("B");
    assert!((bias - diff / 6.0).abs() < 1e-9, "B is the mean difference");
    assert!(!path
        .with_file_name("t32.json.calibration.partial.json")
        .exists());

    // Prediction: the hand sum with the stored correction, and its parts.
    let arch = "shuffle3:0.5,shuffle5:1.0,skip,xception:0.3,shuffle7:0.8,skip,shuffle3:0.1,shuffle5:0.6,\
                xception:1.0,shuffle3:0.9,skip,shuffle7:0.2,shuffle3:0.4,shuffle5:0.5,skip,xception:0.7,\
                shuffle7:1.0,shuffle3:0.3,skip,shuffle5:0.2";
    let out = ok(run_bin(
        "hsconas",
        &["latency", "predict", "--table", p, "--arch", arch, "--json"],
    ));
    let pred: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert!(
        !out.stderr.contains("another machine"),
        "a table profiled here belongs here: {}",
        out.stderr
    );
    let sum = hand_sum(arch);
    let correction = match cal["correction"].as_str() {
        Some("linear") => (
            cal["linear"]["scale"].as_f64().expect("scale"),
            cal["linear"]["offset_ms"].as_f64().expect("offset"),
        ),
        Some("none") => (1.0, 0.0),
        _ => (1.0, bias),
    };
    assert!((pred["table_sum_ms"].as_f64().expect("sum") - sum).abs() < 1e-9);
    let expected = correction.0 * sum + correction.1;
    assert!((pred["predicted_ms"].as_f64().expect("predicted") - expected).abs() < 1e-9);
    assert!((pred["bias_ms"].as_f64().expect("bias") - (expected - sum)).abs() < 1e-9);
    let layers = pred["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 20);
    assert_eq!(layers[2]["choice"], "skip");
    let first = layers[0]["ms"].as_f64().expect("ms");
    assert!((first - normalised_p10(&table, &entries["L1:shuffle3:0.5"])).abs() < 1e-12);

    // Validation: held-out networks, every predictor, plots.
    let report_path = dir.path().join("report.json");
    let plot = dir.path().join("v.png");
    let out = ok(run_bin(
        "hsconas",
        &[
            "latency",
            "validate",
            "--table",
            p,
            "--samples",
            "8",
            "--group",
            "3",
            "--out",
            report_path.to_str().expect("utf-8"),
            "--plot",
            plot.to_str().expect("utf-8"),
        ],
    ));
    assert!(out.stdout.contains("Kendall"), "{}", out.stdout);
    assert!(out.stdout.contains("the table's"), "{}", out.stdout);
    let report = read_json(&report_path);
    // The reference in every group of 3 networks; each network normalised with its group's point.
    let drift = &report["drift"];
    let validation_trace = trace(&drift["trace"]);
    assert_eq!(validation_trace.len(), 3, "8 networks in groups of 3");
    let models: Vec<&str> = drift["by_model"]
        .as_array()
        .expect("by_model")
        .iter()
        .map(|m| m["model"]["model"].as_str().expect("model"))
        .collect();
    assert_eq!(
        models,
        ["ratio", "raw", "ratio", "linear"],
        "the table's ratio-1 first"
    );
    let names: Vec<&str> = report["predictors"]
        .as_array()
        .expect("predictors")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for wanted in ["table", "table + B", "MACs", "params"] {
        assert!(names.contains(&wanted), "{names:?}");
    }
    let networks = report["networks"].as_array().expect("networks");
    assert_eq!(networks.len(), 8);
    for n in networks {
        assert!(
            samples.iter().all(|s| s["arch"] != n["arch"]),
            "held-out networks are never calibration networks"
        );
        assert!(n["macs"].as_u64().is_some_and(|m| m > 0));
        let g = n["group"].as_u64().expect("a group") as usize;
        let raw = n["raw_ms"].as_f64().expect("raw kept");
        let measured = n["measured_ms"].as_f64().expect("measured");
        assert!((measured - raw / (validation_trace[g] / state)).abs() < 1e-9);
    }
    for png in [
        plot.clone(),
        dir.path().join("v-macs.png"),
        dir.path().join("v-drift.png"),
    ] {
        let bytes = std::fs::read(&png).expect("plot written");
        assert!(bytes.starts_with(b"\x89PNG"), "{}", png.display());
    }
    let stored = read_json(&path)["validation"].clone();
    assert!(stored["predictors"].is_array());

    // Given networks (a file as `hsconas estimate --archs` reads it): measured, reported, and the table's
    // summary of the random validation left alone.
    let list = dir.path().join("archs.tsv");
    let chosen = [arch_string(&samples[0]["arch"]), arch.replace(' ', "")];
    std::fs::write(
        &list,
        format!(
            "id\tarch\n# two networks\na\t{}\nb\t{}\n",
            chosen[0], chosen[1]
        ),
    )
    .expect("write");
    let given = dir.path().join("given.json");
    ok(run_bin(
        "hsconas",
        &[
            "latency",
            "validate",
            "--table",
            p,
            "--archs",
            list.to_str().expect("utf-8"),
            "--out",
            given.to_str().expect("utf-8"),
        ],
    ));
    let measured: Vec<String> = read_json(&given)["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .map(|n| arch_string(&n["arch"]))
        .collect();
    assert_eq!(measured.len(), 2);
    for a in &chosen {
        assert!(measured.contains(a), "{a} measured: {measured:?}");
    }
    assert_eq!(read_json(&path)["validation"], stored, "summary unchanged");

    // One provider per table: the same table as if measured with CUDA, and a profile that asks for CUDA
    // with CPU as its fallback. On this machine the networks run on the CPU, and that is refused.
    let mut gpu = read_json(&path);
    gpu["provenance"]["device"] = "gpu-test".into();
    gpu["provenance"]["provider"] = "cuda".into();
    let gpu_table = dir.path().join("gpu.json");
    std::fs::write(&gpu_table, serde_json::to_vec(&gpu).expect("JSON")).expect("write");
    let gpu_profile = dir.path().join("gpu-test.toml");
    std::fs::write(
        &gpu_profile,
        "name = \"gpu-test\"\nkind = \"gpu\"\nbackend = \"ort\"\nprovider = \"cuda\"\n\
         fallback_providers = [\"cpu\"]\nbatch = 1\nthreads = 1\nprecision = \"fp32\"\n\
         input_size = 32\nlayout = \"A\"\nstatistic = \"p10\"\n",
    )
    .expect("write");
    let (t, d) = (
        gpu_table.to_str().expect("utf-8"),
        gpu_profile.to_str().expect("utf-8"),
    );
    for args in [
        vec!["calibrate", "--table", t, "--device", d, "--samples", "2"],
        vec![
            "latency",
            "validate",
            "--table",
            t,
            "--device",
            d,
            "--samples",
            "2",
        ],
    ] {
        fails_with(
            run_bin("hsconas", &args),
            "ran on the cpu provider but the table was measured on cuda",
        );
    }
}

#[test]
fn a_killed_profile_resumes_without_losing_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.json");
    let p = path.to_str().expect("utf-8");
    let slow = [
        "--warmup",
        "1",
        "--runs",
        "3",
        "--min-time-ms",
        "4",
        "--group",
        "4",
    ];
    let mut child = Command::new(workspace_bin("hsconas"))
        .args(profile_args(p, &slow))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start profile");
    let start = Instant::now();
    let partial = loop {
        if let Ok(bytes) = std::fs::read(&path) {
            let table: Value = serde_json::from_slice(&bytes).expect("never a torn file");
            if entries(&table).len() >= 12 {
                break table;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no progress written"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().expect("kill");
    child.wait().expect("reap");
    let before = entries(&read_json(&path));
    assert!(before.len() >= entries(&partial).len() && before.len() < 818);

    let out = ok(run_bin("hsconas", &profile_args(p, &slow)));
    assert!(out.stderr.contains("resuming"), "{}", out.stderr);
    let after = entries(&read_json(&path));
    assert_eq!(after.len(), 818);
    for (key, stats) in &before {
        assert_eq!(&after[key], stats, "{key} was measured again or lost");
    }

    // Another protocol on the same file is refused, not mixed in: other runs, or the pieces' burst
    // (recorded in the table's protocol).
    fails_with(
        run_bin("hsconas", &profile_args(p, &["--runs", "7"])),
        "other settings",
    );
    let warm: Vec<&str> = slow.iter().copied().chain(["--burst", "3"]).collect();
    fails_with(
        run_bin("hsconas", &profile_args(p, &warm)),
        "other settings",
    );
}

#[test]
fn remote_profiling_through_the_agent_gives_the_same_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let local = profile_fast(&dir.path().join("local.json"));
    let agent = RunningAgent::start(&["--token", "t0k"]);
    let remote_path = dir.path().join("remote.json");
    let r = remote_path.to_str().expect("utf-8");
    fails_with(
        run_bin(
            "hsconas",
            &profile_args(r, &["--agent", &agent.url, "--token", "wrong"]),
        ),
        "wrong token",
    );
    // The reference timed alone here (`last_alone` in the agent's query), interleaved in the local table.
    let mut args = profile_args(r, &FAST);
    args.extend(["--agent", &agent.url, "--token", "t0k", "--reference-alone"]);
    ok(run_bin("hsconas", &args));
    let remote = read_json(&remote_path);
    assert_eq!(
        entries(&remote).keys().collect::<Vec<_>>(),
        entries(&local).keys().collect::<Vec<_>>()
    );
    assert_eq!(remote["provenance"]["device"], "local-cpu");
    assert!(remote["provenance"]["fingerprint"]["cpu_model"].is_string());
    // The agent timed the reference network in every group too, alone.
    check_reference_in_every_group(&remote, 16, true);
}

#[test]
fn wrong_devices_bad_tables_and_bad_architectures_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.json");
    let p = path.to_str().expect("utf-8");
    profile_fast(&path);
    fails_with(
        run_bin(
            "hsconas",
            &["calibrate", "--table", p, "--device", "jetson-xavier"],
        ),
        "batch: table has 1, profile has 16",
    );
    fails_with(
        run_bin(
            "hsconas",
            &[
                "latency",
                "predict",
                "--table",
                p,
                "--arch",
                "shuffle3:0.5,bogus",
            ],
        ),
        "--arch",
    );
    let mut table = read_json(&path);
    table["entries"]
        .as_object_mut()
        .expect("entries")
        .remove("L20:skip");
    let incomplete = dir.path().join("incomplete.json");
    std::fs::write(&incomplete, table.to_string()).expect("write");
    let i = incomplete.to_str().expect("utf-8");
    fails_with(
        run_bin("hsconas", &["calibrate", "--table", i]),
        "incomplete",
    );
    fails_with(
        run_bin(
            "hsconas",
            &["latency", "throughput", "--table", i, "--count", "10"],
        ),
        "L20:skip",
    );
    // A table from another machine: a warning naming the field, an error under --strict-machine.
    let mut elsewhere = read_json(&path);
    elsewhere["provenance"]["fingerprint"]["cpu_model"] = "AMD EPYC 7B13".into();
    elsewhere["provenance"]["fingerprint"]["logical_cpus"] = 96.into();
    let other = dir.path().join("other-machine.json");
    std::fs::write(&other, elsewhere.to_string()).expect("write");
    let o = other.to_str().expect("utf-8");
    let arch = vec!["shuffle3:0.5"; 20].join(",");
    let warned = ok(run_bin(
        "hsconas",
        &["latency", "predict", "--table", o, "--arch", &arch],
    ));
    for needle in ["another machine", "AMD EPYC 7B13", "logical CPUs: table 96"] {
        assert!(
            warned.stderr.contains(needle),
            "{needle}: {}",
            warned.stderr
        );
    }
    fails_with(
        run_bin(
            "hsconas",
            &[
                "latency",
                "predict",
                "--table",
                o,
                "--arch",
                &arch,
                "--strict-machine",
            ],
        ),
        "another machine",
    );
    let bytes = std::fs::read(&path).expect("read");
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    fails_with(
        run_bin(
            "hsconas",
            &["calibrate", "--table", truncated.to_str().expect("utf-8")],
        ),
        "not a valid latency table",
    );
}

/// `arch sample --near-ms` prints uniform draws whose prediction lies within the tolerance of the value
/// (checked with `latency predict` on the committed table), reproducibly, and says why when the space has
/// none there.
#[test]
fn sampling_near_a_latency_uses_the_table() {
    let table_path =
        hsconas_foundation::package_dir!().join("../devices/tables/local-cpu-A-32.json");
    let table = table_path.to_str().expect("UTF-8 path");
    let sample = |seed: &str, near: &str, extra: &[&str]| {
        let mut args = vec![
            "arch",
            "sample",
            "--table",
            table,
            "--near-ms",
            near,
            "--tolerance",
            "0.02",
            "--count",
            "4",
            "--seed",
            seed,
        ];
        args.extend(extra);
        run_bin("hsconas", &args)
    };
    let first = ok(sample("5", "1.0", &[]));
    assert_eq!(first.stdout, ok(sample("5", "1.0", &[])).stdout);
    assert_ne!(first.stdout, ok(sample("6", "1.0", &[])).stdout);
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(lines.len(), 4);
    for arch in lines {
        let predicted = ok(run_bin(
            "hsconas",
            &[
                "latency", "predict", "--table", table, "--arch", arch, "--json",
            ],
        ));
        let ms = serde_json::from_str::<Value>(&predicted.stdout).expect("json")["predicted_ms"]
            .as_f64()
            .expect("predicted_ms");
        assert!((ms / 1.0 - 1.0).abs() <= 0.02, "{arch}: {ms} ms");
    }
    fails_with(
        sample("5", "0.1", &["--max-draws", "500"]),
        "0 of 4 architectures within 2.0% of 0.1 ms after 500 draws",
    );
    let usage = run_bin("hsconas", &["arch", "sample", "--near-ms", "1.0"]);
    assert_eq!(usage.code, Some(2), "a usage error: {usage:?}");
    assert!(usage.stderr.contains("--table"), "{}", usage.stderr);
}

/// `--once-per-shape` measures one piece of each shape (326) and gives its twins the same entry: the
/// table is complete, twins hold equal entries, pieces of different shapes were measured apart; the
/// table says so, and resuming it as a full profile is refused rather than mixed.
#[test]
fn once_per_shape_measures_each_shape_once_and_copies_its_twins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shapes.json");
    let p = path.to_str().expect("utf-8");
    let mut args = profile_args(p, &FAST);
    args.extend(["--once-per-shape", "--json"]);
    let summary: Value = serde_json::from_str(&ok(run_bin("hsconas", &args)).stdout).expect("JSON");
    assert_eq!(
        (
            &summary["entries"],
            &summary["measured"],
            &summary["once_per_shape"]
        ),
        (&Value::from(818), &Value::from(326), &Value::from(true)),
        "{summary}"
    );
    let table = read_json(&path);
    assert_eq!(table["provenance"]["once_per_shape"], true);
    let mut by_shape: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for (key, entry) in entries(&table) {
        let piece: hsconas_models::build::Piece = key.parse().expect("a piece key");
        by_shape
            .entry(piece.shape())
            .or_default()
            .push(entry.clone());
    }
    assert_eq!(by_shape.len(), 326);
    for (shape, twins) in &by_shape {
        assert!(twins.iter().all(|e| e == &twins[0]), "{shape}: {twins:?}");
    }
    // Measured in 326 / 16 groups, not in the 818 / 16 of every piece: twins were copied, not measured.
    let groups: std::collections::BTreeSet<String> = by_shape
        .values()
        .flatten()
        .map(|e| e["group"].to_string())
        .collect();
    assert_eq!(groups.len(), 326usize.div_ceil(16), "{groups:?}");
    let firsts: Vec<&Value> = by_shape.values().map(|twins| &twins[0]).collect();
    let distinct: std::collections::BTreeSet<String> =
        firsts.iter().map(|e| e["p10_ms"].to_string()).collect();
    assert!(
        distinct.len() > 300,
        "shapes measured apart: {}",
        distinct.len()
    );

    // A full profile does not resume a table of shapes.
    let mut table = table;
    table["entries"]
        .as_object_mut()
        .expect("entries")
        .remove("L20:shuffle3:0.5");
    std::fs::write(&path, table.to_string()).expect("writes");
    fails_with(
        run_bin("hsconas", &profile_args(p, &FAST)),
        "one piece per shape",
    );
}
