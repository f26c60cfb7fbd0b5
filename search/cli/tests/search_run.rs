//! `hsconas search` end to end on a briefly trained layout-A supernet, the committed CIFAR-10 sample and
//! the committed `local-cpu` input-32 table: shrinking, evolution, re-measurement with a correction round,
//! fine-tuning after each stage, the report and plots; a killed search resumes to exactly the result of an uninterrupted one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hsconas_models::{Arch, SearchSpace};
use hsconas_nas::SearchReport;

fn root() -> PathBuf {
    hsconas_foundation::package_dir!().join("../..")
}

fn hsconas(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hsconas"))
        .args(args)
        .output()
        .expect("hsconas runs")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A layout-A supernet after a few steps (the search needs weights, not good ones).
fn supernet(dir: &Path) -> PathBuf {
    let data = root().join("data/cifar10-sample.tar.gz");
    let out = hsconas(&strings(&[
        "supernet",
        "train",
        "--data",
        data.to_str().expect("utf-8"),
        "--max-steps",
        "2",
        "--batch-size",
        "32",
        "--eval-subnets",
        "0",
        "--threads",
        "1",
        "--out",
        dir.to_str().expect("utf-8"),
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("checkpoint.safetensors")
}

fn search_args(checkpoint: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let data = root().join("data/cifar10-sample.tar.gz");
    let table = root().join("devices/tables/local-cpu-A-32.json");
    let mut args = strings(&[
        "search",
        "--supernet",
        checkpoint.to_str().expect("utf-8"),
        "--table",
        table.to_str().expect("utf-8"),
        "--target-ms",
        "0.7",
        "--data",
        data.to_str().expect("utf-8"),
        "--shrink",
        "--shrink-stages",
        "20/19",
        "--shrink-samples",
        "2",
        "--population",
        "6",
        "--generations",
        "4",
        "--parents",
        "2",
        "--eval-images",
        "50",
        "--bn-batches",
        "1",
        "--threads",
        "1",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    args.extend(strings(extra));
    args
}

fn report(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn search_shrinks_evolves_remeasures_and_reports() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ckpt = supernet(&tmp.path().join("supernet"));
    let out = tmp.path().join("search");
    let r = report(&hsconas(&search_args(
        &ckpt,
        &out,
        &[
            "--remeasure",
            "2",
            "--tolerance",
            "0",
            "--max-rounds",
            "1",
            "--extra-generations",
            "1",
            "--random-baseline",
            "--json",
        ],
    )));
    assert_eq!(
        r["settings"]["estimator"], "supernet",
        "given a supernet and no --estimator, the search uses the supernet"
    );
    // Two shrunk layers, each fixed to the operator with the best Q.
    let decisions = r["shrinking"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 2);
    for d in decisions {
        let best = d["qualities"]
            .as_array()
            .expect("qualities")
            .iter()
            .max_by(|a, b| {
                a["q"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b["q"].as_f64().unwrap_or(0.0))
            })
            .expect("a quality");
        assert_eq!(best["op"], d["chosen"]);
    }
    let space: SearchSpace = serde_json::from_value(r["space"].clone()).expect("space");
    assert_eq!(space.layers()[19].ops.len(), 1);
    assert_eq!(space.layers()[18].ops.len(), 1);
    // Tolerance 0 always misses: one correction round, one more generation, two more re-measured.
    assert_eq!(r["correction_rounds"], 1);
    assert_eq!(r["generations"].as_array().expect("generations").len(), 5);
    let remeasured = r["remeasured"].as_array().expect("remeasured");
    assert_eq!(remeasured.len(), 4);
    for m in remeasured {
        assert!(m["measured_ms"].as_f64().expect("ms") > 0.0);
    }
    // The supernet was fine-tuned after each stage; the candidates scored before the last fine-tuning
    // are dropped, so every reported candidate was evaluated once, in the shrunk space, with the final
    // weights.
    for stage in ["finetune-1", "finetune-2"] {
        assert!(
            out.join(stage).join("checkpoint.safetensors").exists(),
            "{stage}"
        );
    }
    // The report reads back through the type that wrote it (what `hsconas run` and the reproduce report use).
    let typed: SearchReport =
        serde_json::from_value(r.clone()).expect("search.json is a SearchReport");
    assert_eq!(typed.evaluations, typed.candidates.len());
    assert_eq!(
        typed.winner.as_ref().map(|w| w.arch.to_string()),
        r["winner"]["arch"].as_str().map(String::from)
    );
    let candidates = r["candidates"].as_array().expect("candidates");
    let archs: Vec<Arch> = candidates
        .iter()
        .map(|c| serde_json::from_value(c["arch"].clone()).expect("arch"))
        .collect();
    let distinct: std::collections::HashSet<_> = archs.iter().collect();
    assert_eq!(distinct.len(), archs.len());
    for arch in &archs {
        space.check(arch).expect("inside the shrunk space");
    }
    let baseline = &r["random_baseline"];
    assert_eq!(baseline["evaluations"].as_u64(), Some(archs.len() as u64));
    let drawn: Arch = serde_json::from_value(baseline["best"]["arch"].clone()).expect("arch");
    space
        .check(&drawn)
        .expect("the baseline draws from the shrunk space");
    let winner: Arch = r["winner"]["arch"]
        .as_str()
        .expect("string")
        .parse()
        .expect("valid");
    space
        .check(&winner)
        .expect("the winner lies in the shrunk space");
    assert!(
        r["winner"]["measured_ms"].as_f64().is_some(),
        "the winner was re-measured"
    );
    // The winner is chosen on measurements: its measured latency is its re-measurement, and when the report
    // says it is within the tolerance, no other candidate measured within it has a better F.
    let w = &r["winner"];
    let measured = w["measured_ms"].as_f64().expect("measured");
    let target = w["target_ms"].as_f64().expect("target");
    let tolerance = w["tolerance"].as_f64().expect("tolerance");
    let remeasured = r["remeasured"].as_array().expect("remeasured");
    assert!(
        remeasured
            .iter()
            .any(|m| serde_json::from_value::<Arch>(m["arch"].clone()).ok()
                == Some(winner.clone())
                && m["measured_ms"].as_f64() == Some(measured)),
        "{w}"
    );
    assert!(
        (w["relative_to_target"].as_f64().expect("relative") - (measured / target - 1.0)).abs()
            < 1e-12
    );
    let within = |c: &serde_json::Value| {
        c["measured_ms"]
            .as_f64()
            .is_some_and(|m| (m / target - 1.0).abs() <= tolerance)
    };
    match w["reason"].as_str() {
        Some("within_tolerance") => {
            assert!((measured / target - 1.0).abs() <= tolerance, "{w}");
            let best = candidates
                .iter()
                .filter(|c| within(c))
                .map(|c| c["score"].as_f64().expect("score"))
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(w["score"].as_f64(), Some(best), "{w}");
        }
        Some("closest_measured") => assert!(!candidates.iter().any(within), "{w}"),
        other => panic!("a re-measured search reports {other:?}"),
    }
    for file in [
        "search.json",
        "space.json",
        "pareto.png",
        "latency-histogram.png",
        "search-score.png",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    assert!(!out.join("search.partial.json").exists());

    let bad = hsconas(&search_args(
        &ckpt,
        &tmp.path().join("bad"),
        &["--beta", "0.5"],
    ));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("beta must be negative"));
}

/// `--rerank K`: the K best candidates are trained from scratch briefly; only they are re-measured and
/// can win, and the winner's accuracy is its short-training accuracy.
#[test]
fn rerank_trains_the_best_candidates_and_the_winner_is_one_of_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ckpt = supernet(&tmp.path().join("supernet"));
    let r = report(&hsconas(&search_args(
        &ckpt,
        &tmp.path().join("search"),
        &[
            "--finetune-epochs",
            "0",
            "--rerank",
            "2",
            "--rerank-steps",
            "3",
            "--remeasure",
            "1",
            "--max-rounds",
            "0",
            "--json",
        ],
    )));
    let reranked = r["reranked"].as_array().expect("reranked");
    assert_eq!(reranked.len(), 2, "{reranked:?}");
    for c in reranked {
        let acc = c["accuracy"].as_f64().expect("accuracy");
        assert!((0.0..=1.0).contains(&acc), "{c}");
        assert!(c["seconds"].as_f64().is_some_and(|s| s > 0.0), "{c}");
    }
    let winner = &r["winner"];
    let arch = |v: &serde_json::Value| -> String {
        serde_json::from_value::<Arch>(v.clone())
            .expect("an architecture")
            .to_string()
    };
    let chosen = reranked
        .iter()
        .find(|c| arch(&c["arch"]) == arch(&winner["arch"]))
        .expect("the winner is a re-ranked candidate");
    assert_eq!(chosen["accuracy"], winner["accuracy"]);
    let remeasured = r["remeasured"].as_array().expect("remeasured");
    assert_eq!(remeasured.len(), 1);
    assert!(reranked.iter().any(|c| c["arch"] == remeasured[0]["arch"]));
}

#[test]
fn a_killed_search_resumes_to_the_same_result() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ckpt = supernet(&tmp.path().join("supernet"));
    let reference = report(&hsconas(&search_args(
        &ckpt,
        &tmp.path().join("a"),
        &["--remeasure", "0", "--finetune-epochs", "0", "--json"],
    )));

    let out = tmp.path().join("b");
    let args = search_args(
        &ckpt,
        &out,
        &["--remeasure", "0", "--finetune-epochs", "0", "--json"],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsconas"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let partial = out.join("search.partial.json");
    let start = Instant::now();
    // Kill once the first generation is checkpointed.
    loop {
        let text = std::fs::read_to_string(&partial).unwrap_or_default();
        let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if state["evolution"]["generation"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint");
        if let Ok(Some(_)) = child.try_wait() {
            panic!("the search finished before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    let fresh = hsconas(&args);
    assert!(
        !fresh.status.success(),
        "an unfinished search is not overwritten without --resume"
    );
    let mut resumed_args = args.clone();
    resumed_args.push("--resume".into());
    let resumed = report(&hsconas(&resumed_args));
    for key in ["shrinking", "generations", "candidates", "winner", "space"] {
        assert_eq!(resumed[key], reference[key], "{key}");
    }
}

#[test]
fn the_pipeline_runs_end_to_end_and_continues_after_a_kill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("run");
    let data = root().join("data/cifar10-sample.tar.gz");
    let table = root().join("devices/tables/local-cpu-A-32.json");
    let args = strings(&[
        "run",
        "--data",
        data.to_str().expect("utf-8"),
        "--table",
        table.to_str().expect("utf-8"),
        "--target-ms",
        "0.7",
        "--preset",
        "tiny",
        "--estimator",
        "supernet",
        "--threads",
        "1",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsconas"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    // Kill during the search, after the supernet step finished.
    while !out.join("search/search.partial.json").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the search never started"
        );
        if let Ok(Some(_)) = child.try_wait() {
            panic!("the pipeline finished before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    let _ = child.wait();

    let rerun = hsconas(&args);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stderr}");
    assert!(
        stderr.contains("table.json is complete: skipped"),
        "{stderr}"
    );
    assert!(stderr.contains("has 1 epochs: skipped"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary"))
            .expect("summary JSON");
    let arch: Arch = summary["arch"]
        .as_str()
        .expect("arch")
        .parse()
        .expect("valid");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("search/search.json")).expect("report"))
            .expect("JSON");
    assert_eq!(
        report["winner"]["arch"].as_str(),
        Some(arch.to_string().as_str())
    );
    assert!(summary["measured_ms"].as_f64().expect("re-measured") > 0.0);
    assert_eq!(summary["retrained"]["architecture"], summary["arch"]);
    for file in [
        "final/weights.safetensors",
        "model.onnx",
        "crate/Cargo.toml",
        "crate/model.onnx",
        "crate/tests/golden.rs",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    // A third run has nothing left to do.
    let again = hsconas(&args);
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stderr)
            .matches("skipped")
            .count(),
        8
    );
}

/// `--estimator params`: every candidate's accuracy (shrinking's and the evolution's) is the percentile
/// of its parameter count among the 100 architectures drawn from the space with the search's seed,
/// recomputed here from the library; the same with the built-in predictor, the default without
/// `--supernet`; `short-training` is refused for every candidate.
#[test]
fn the_search_scores_candidates_with_the_chosen_estimator() {
    use hsconas_models::{build, Layout, NetConfig};
    use hsconas_nas::PercentileScale;

    let tmp = tempfile::tempdir().expect("tempdir");
    let ckpt = supernet(&tmp.path().join("supernet"));
    let out = tmp.path().join("search");
    // A cheap estimator needs no supernet: none is given, and shrinking fine-tunes nothing.
    let without_supernet = |args: Vec<String>| -> Vec<String> {
        let at = args
            .iter()
            .position(|a| a == "--supernet")
            .expect("--supernet");
        args.into_iter()
            .enumerate()
            .filter(|&(i, _)| i != at && i != at + 1)
            .map(|(_, a)| a)
            .collect()
    };
    let r = report(&hsconas(&without_supernet(search_args(
        &ckpt,
        &out,
        &["--estimator", "params", "--remeasure", "0", "--json"],
    ))));
    assert!(
        r["settings"]["supernet"].is_null(),
        "{}",
        r["settings"]["supernet"]
    );
    assert!(
        !out.join("finetune-1").exists(),
        "nothing to fine-tune without the supernet estimator"
    );
    assert_eq!(r["settings"]["estimator"], "params");
    let config = NetConfig {
        layout: Layout::A,
        input_size: 32,
        classes: 10,
    };
    let params = |arch: &Arch| build::network(arch, &config).expect("builds").param_count() as f64;
    let seed = r["settings"]["evolution"]["seed"].as_u64().expect("seed");
    let sample = PercentileScale::reference_sample(&SearchSpace::full(), 100, seed);
    let scale = PercentileScale::new(sample.iter().map(params).collect()).expect("scale");
    let candidates = r["candidates"].as_array().expect("candidates");
    assert!(candidates.len() >= 6, "{}", candidates.len());
    let mut distinct = std::collections::BTreeSet::new();
    for c in candidates {
        let arch: Arch = serde_json::from_value(c["arch"].clone()).expect("arch");
        let accuracy = c["accuracy"].as_f64().expect("accuracy");
        assert_eq!(accuracy, scale.fraction(params(&arch)), "{arch}");
        distinct.insert(accuracy.to_bits());
    }
    assert!(
        distinct.len() > 1,
        "the percentiles must tell candidates apart"
    );

    // The default without a supernet, the predictor: each candidate's accuracy is the built-in model's
    // predicted test top-1 as a fraction (an accuracy, not a percentile, which would tie every candidate
    // predicted above the whole reference sample at 1).
    let out = tmp.path().join("search-predictor");
    let r = report(&hsconas(&without_supernet(search_args(
        &ckpt,
        &out,
        &["--remeasure", "0", "--json"],
    ))));
    assert_eq!(r["settings"]["estimator"], "predictor");
    let predictor = hsconas_nas::predictor::Predictor::built_in().expect("built in");
    let predict = |arch: &Arch| predictor.predict(arch).expect("predicts");
    for c in r["candidates"].as_array().expect("candidates") {
        let arch: Arch = serde_json::from_value(c["arch"].clone()).expect("arch");
        let accuracy = c["accuracy"].as_f64().expect("accuracy");
        assert!(
            (accuracy - predict(&arch) / 100.0).abs() < 1e-12,
            "{arch}: {accuracy}"
        );
    }

    let refused = hsconas(&search_args(
        &ckpt,
        &tmp.path().join("refused"),
        &["--estimator", "short-training"],
    ));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--rerank K"));
    let no_supernet = hsconas(&without_supernet(search_args(
        &ckpt,
        &tmp.path().join("no-supernet"),
        &["--estimator", "supernet"],
    )));
    assert!(!no_supernet.status.success());
    assert!(String::from_utf8_lossy(&no_supernet.stderr).contains("needs --supernet"));
}
