//! `hsconas estimate` on the committed CIFAR-10 sample: size baselines agree with `arch info`, proxies are
//! reproducible for a seed and differ between seeds, the predictor reads the model it is given,
//! architecture files with a header and comments are read, and bad requests are refused with a reason.

mod common;

use common::{hsconas, root};

use serde_json::Value;

fn json(args: &[&str]) -> Value {
    let out = hsconas(args);
    assert!(
        out.status.success(),
        "hsconas {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn uniform(scale: &str) -> String {
    vec![format!("shuffle3:{scale}"); 20].join(",")
}

fn scores(report: &Value) -> Vec<f64> {
    report["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .map(|n| n["score"].as_f64().expect("score"))
        .collect()
}

const DATA: &str = "data/cifar10-sample.tar.gz";

#[test]
fn estimators_score_architectures_reproducibly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("archs.tsv");
    let archs = [uniform("0.2"), uniform("0.6"), uniform("1.0")];
    let mut text = String::from("id\tarch\n# three uniform scalings\n");
    for (i, a) in archs.iter().enumerate() {
        text.push_str(&format!("u{i}\t{a}\n"));
    }
    std::fs::write(&file, text).expect("write");
    let file = file.to_str().expect("utf-8");

    let params = json(&[
        "estimate",
        "--estimator",
        "params",
        "--archs",
        file,
        "--data",
        DATA,
        "--json",
    ]);
    for (arch, score) in archs.iter().zip(scores(&params)) {
        let info = json(&[
            "arch",
            "info",
            "--arch",
            arch,
            "--input-size",
            "32",
            "--classes",
            "10",
            "--json",
        ]);
        assert_eq!(Some(score), info["params"].as_f64(), "{arch}");
    }

    for estimator in ["synflow", "snip", "grad-norm", "naswot"] {
        let run = |seed: &str| {
            json(&[
                "estimate",
                "--estimator",
                estimator,
                "--archs",
                file,
                "--data",
                DATA,
                "--batch-size",
                "16",
                "--seed",
                seed,
                "--json",
            ])
        };
        let a = run("0");
        let s = scores(&a);
        assert_eq!(s.len(), 3, "{estimator}");
        assert!(s.iter().all(|x| x.is_finite()), "{estimator}: {s:?}");
        assert_eq!(
            s,
            scores(&run("0")),
            "{estimator} is reproducible for a seed"
        );
        assert_ne!(s, scores(&run("1")), "{estimator} depends on the seed");
        assert_eq!(a["estimator"], estimator);
        assert!(a["networks"][0]["seconds"].as_f64().expect("seconds") >= 0.0);
    }
}

/// The short-training estimator trains each network from scratch and reports its validation top-1.
#[test]
fn short_training_reports_a_validation_accuracy() {
    let arch = uniform("0.2");
    let report = json(&[
        "estimate",
        "--estimator",
        "short-training",
        "--steps",
        "4",
        "--batch-size",
        "32",
        "--eval-images",
        "100",
        "--arch",
        &arch,
        "--data",
        DATA,
        "--json",
    ]);
    let score = scores(&report)[0];
    assert!((0.0..=100.0).contains(&score), "{score}");
    // 100 images: a multiple of 1%.
    assert_eq!(score, score.round(), "{score}");
}

/// The predictor scores from the architecture alone: the built-in model is the committed one, and a
/// model given with `--predictor` is the one used (its intercept moves every score by as much).
#[test]
fn the_predictor_is_the_committed_model_or_the_one_given() {
    let archs = [uniform("0.2"), uniform("0.8")];
    let run = |predictor: Option<&str>| {
        let mut args = vec![
            "estimate",
            "--estimator",
            "predictor",
            "--data",
            DATA,
            "--json",
        ];
        for a in &archs {
            args.extend(["--arch", a.as_str()]);
        }
        if let Some(p) = predictor {
            args.extend(["--predictor", p]);
        }
        scores(&json(&args))
    };
    let built_in = run(None);
    assert!(
        built_in.iter().all(|s| (10.0..=100.0).contains(s)),
        "{built_in:?}"
    );
    let committed = "search/nas/assets/predictor-model.json";
    assert_eq!(built_in, run(Some(committed)));

    let dir = tempfile::tempdir().expect("temp dir");
    let mut model: Value =
        serde_json::from_slice(&std::fs::read(root().join(committed)).expect("model"))
            .expect("JSON");
    let intercept = model["ridge"]["intercept"].as_f64().expect("intercept");
    model["ridge"]["intercept"] = (intercept + 10.0).into();
    let shifted = dir.path().join("shifted.json");
    std::fs::write(&shifted, model.to_string()).expect("write");
    let moved = run(Some(shifted.to_str().expect("utf-8")));
    for (a, b) in built_in.iter().zip(&moved) {
        assert!((b - a - 10.0).abs() < 1e-9, "{a} -> {b}");
    }
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let refused = |args: &[&str], needle: &str| {
        let out = hsconas(args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    let arch = uniform("0.5");
    refused(
        &[
            "estimate",
            "--estimator",
            "supernet",
            "--arch",
            &arch,
            "--data",
            DATA,
        ],
        "--supernet",
    );
    refused(
        &[
            "estimate",
            "--estimator",
            "synflow",
            "--arch",
            "shuffle3:0.5",
            "--data",
            DATA,
        ],
        "invalid architecture 'shuffle3:0.5'",
    );
    refused(
        &["estimate", "--estimator", "synflow", "--data", DATA],
        "--arch",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let truncated = dir.path().join("predictor.json");
    std::fs::write(&truncated, "{\"features\": [").expect("write");
    refused(
        &[
            "estimate",
            "--estimator",
            "predictor",
            "--predictor",
            truncated.to_str().expect("utf-8"),
            "--arch",
            &arch,
            "--data",
            DATA,
        ],
        "not a predictor file",
    );
}
