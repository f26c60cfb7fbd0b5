//! `hsconas predictor fit` and `show` as a user runs them: a TSV of trained networks in, a predictor file
//! and a held-out report out; results at another input size adapt the built-in predictor; a malformed
//! results file is refused with its line and writes nothing.

use hsconas_devices::metrics::kendall_tau;
use hsconas_nas::ground_truth::GroundTruth;
use hsconas_nas::predictor::Predictor;
use hsconas_tests::{repo_root, run_bin, Outcome};

/// `hsconas predictor fit --results RESULTS --out OUT EXTRA...`.
fn fit(results: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> Outcome {
    let (results, out) = (
        results.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
    );
    let mut args = vec!["predictor", "fit", "--results", results, "--out", out];
    args.extend_from_slice(extra);
    run_bin("hsconas", &args)
}

/// The committed ground truth's first `count` trained networks as a TSV, one line per training (seed).
fn results_tsv(count: usize) -> (String, Vec<(String, f64)>) {
    let truth =
        GroundTruth::load(&repo_root().join("docs/evidence/ground-truth/ground-truth.json"))
            .expect("the committed ground truth");
    let mut text = String::from("arch\ttop1\tseed\tdata\n");
    let mut means = Vec::new();
    for n in truth.trained().take(count) {
        for r in &n.runs {
            text.push_str(&format!(
                "{}\t{}\t{}\tcifar10-test\n",
                n.arch, r.test_top1, r.seed
            ));
        }
        means.push((n.arch.to_string(), n.test_top1().expect("trained")));
    }
    (text, means)
}

#[test]
fn fit_adapts_the_built_in_predictor_and_reports_held_out_tau_beside_the_prior_and_macs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tsv, means) = results_tsv(8);
    let results = dir.path().join("results.tsv");
    std::fs::write(&results, tsv).expect("write");
    let out = dir.path().join("mine.json");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let fitted = fit(&results, &out, &["--recipe", "15 epochs", "--json"]);
    assert_eq!(fitted.code, Some(0), "{}", fitted.stderr);
    let report: serde_json::Value = serde_json::from_str(&fitted.stdout).expect("a JSON report");
    // Networks of the built-in predictor's geometry: it is the prior by default.
    assert_eq!(report["prior"], "builtin");
    assert_eq!(report["networks"], 8);
    let ci = &report["held_out"]["kendall_tau_ci95"];
    let tau = report["held_out"]["kendall_tau"].as_f64().expect("tau");
    assert!(
        ci["low"].as_f64() <= Some(tau) && Some(tau) <= ci["high"].as_f64(),
        "{report}"
    );
    // The prior alone, recomputed here from the built-in model and the seeds' means.
    let built_in = Predictor::built_in().expect("built in");
    let predicted: Vec<f64> = means
        .iter()
        .map(|(a, _)| {
            built_in
                .predict(&a.parse().expect("arch"))
                .expect("predicts")
        })
        .collect();
    let trained: Vec<f64> = means.iter().map(|(_, t)| *t).collect();
    let prior_tau = report["prior_alone"]["kendall_tau"]
        .as_f64()
        .expect("prior tau");
    assert!(
        (prior_tau - kendall_tau(&predicted, &trained)).abs() < 1e-12,
        "{report}"
    );

    // The file says what it was fitted on and reads back; `show` prints it.
    let saved = Predictor::load(&out).expect("a predictor file");
    let fitted_on = saved.fitted_on.as_ref().expect("fitted_on");
    assert_eq!(
        (fitted_on.data.as_str(), fitted_on.recipe.as_str()),
        ("cifar10-test", "15 epochs")
    );
    let lines = std::fs::read_to_string(&results)
        .expect("read")
        .lines()
        .count()
        - 1;
    assert_eq!(fitted_on.trainings, lines, "one training per line");
    assert!(saved.prior.is_some());
    let show = run_bin("hsconas", &["predictor", "show", &path(&out)]);
    assert_eq!(show.code, Some(0), "{}", show.stderr);
    for expected in [
        "cifar10-test",
        "15 epochs",
        "adapted from",
        "fitted on 8 trained networks",
    ] {
        assert!(
            show.stdout.contains(expected),
            "{expected}: {}",
            show.stdout
        );
    }
    let human = fit(&results, &out, &["--prior", "none"]);
    assert_eq!(human.code, Some(0), "{}", human.stderr);
    assert!(human.stdout.contains("this predictor") && human.stdout.contains("MACs"));
    assert!(
        !human.stdout.contains("the prior alone"),
        "{}",
        human.stdout
    );
}

/// Results whose recipe says they were trained at 16x16 (`resize=16`, as `predictor collect` writes
/// it): the fit reads them at 16x16 and adapts the built-in 32x32 predictor by default, which keeps its
/// own configuration in the file; results of another class count fit without a prior by default.
#[test]
fn results_at_another_input_size_adapt_the_built_in_predictor_at_its_own_geometry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tsv, _) = results_tsv(6);
    let with_recipe: Vec<String> = tsv
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => format!("{l}\trecipe"),
            _ => format!("{l}\tepochs=3 resize=16 layout=A top1=test"),
        })
        .collect();
    let results = dir.path().join("results.tsv");
    std::fs::write(&results, with_recipe.join("\n")).expect("write");
    let out = dir.path().join("at-16.json");
    let fitted = fit(&results, &out, &[]);
    assert_eq!(fitted.code, Some(0), "{}", fitted.stderr);
    assert!(
        fitted.stdout.contains(
            "networks at layout A, 16x16 inputs, 10 classes; the prior reads them at layout A, \
             32x32 inputs, 10 classes"
        ),
        "{}",
        fitted.stdout
    );
    let saved = Predictor::load(&out).expect("a predictor file");
    assert_eq!(saved.config.input_size, 16);
    let prior = saved
        .prior
        .as_ref()
        .expect("the built-in predictor adapted");
    assert_eq!(
        prior.config,
        Predictor::built_in().expect("built in").config
    );

    let other = fit(&results, &out, &["--classes", "100", "--json"]);
    assert_eq!(other.code, Some(0), "{}", other.stderr);
    let report: serde_json::Value = serde_json::from_str(&other.stdout).expect("JSON");
    assert_eq!(report["prior"], "none");
    assert!(!other.stderr.contains("warning"), "{}", other.stderr);
    // Asked for by name, a prior of another class count (or layout) is used, with a warning naming
    // both geometries; one of the same layout and class count at another input size is not warned.
    let named = fit(
        &results,
        &out,
        &["--classes", "100", "--prior", "builtin", "--json"],
    );
    assert_eq!(named.code, Some(0), "{}", named.stderr);
    let report: serde_json::Value = serde_json::from_str(&named.stdout).expect("JSON alone");
    assert_eq!(report["prior"], "builtin");
    assert!(
        named.stderr.contains(
            "warning: the prior builtin was fitted on networks at layout A, 32x32 inputs, 10 \
             classes; these are at layout A, 16x16 inputs, 100 classes"
        ),
        "{}",
        named.stderr
    );
    assert!(!fitted.stderr.contains("warning"), "{}", fitted.stderr);

    // A flag wins over the recipe; a recipe whose size is not a number is refused, naming it.
    let flagged = fit(&results, &out, &["--input-size", "24"]);
    assert_eq!(flagged.code, Some(0), "{}", flagged.stderr);
    let saved = Predictor::load(&out).expect("a predictor file");
    assert_eq!(saved.config.input_size, 24);
    let odd: Vec<String> = with_recipe
        .iter()
        .map(|l| l.replace("resize=16", "resize=big"))
        .collect();
    std::fs::write(&results, odd.join("\n")).expect("write");
    let refused = fit(&results, &out, &[]);
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("resize=big"), "{}", refused.stderr);
}

#[test]
fn a_malformed_results_file_is_refused_with_its_line_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tsv, _) = results_tsv(5);
    let broken: String = tsv
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 3 {
                l.replace('\t', " ")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let results = dir.path().join("results.tsv");
    std::fs::write(&results, broken).expect("write");
    let out = dir.path().join("mine.json");
    let refused = fit(&results, &out, &[]);
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("line 4"), "{}", refused.stderr);
    assert!(!out.exists(), "nothing written");

    std::fs::write(&out, "{\"features\": []}").expect("write");
    let show = run_bin(
        "hsconas",
        &["predictor", "show", out.to_str().expect("utf-8")],
    );
    assert_ne!(show.code, Some(0));
    assert!(
        show.stderr.contains("not a predictor file"),
        "{}",
        show.stderr
    );
}

/// `hsconas predictor curve` on the committed ground truth: one point per size that leaves networks to
/// score on (a larger one is left out, and said so), each with the fitted model's, the prior's and
/// MACs' taus over the draws; the same seed gives the same curve.
#[test]
fn curve_reports_held_out_tau_per_number_of_trainings() {
    let truth = repo_root().join("docs/evidence/ground-truth/ground-truth.json");
    let args = [
        "predictor",
        "curve",
        "--results",
        truth.to_str().expect("utf-8"),
        "--sizes",
        "4,16,30",
        "--draws",
        "30",
        "--json",
    ];
    let out = run_bin("hsconas", &args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("left out"), "{}", out.stderr);
    let curve: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(curve["prior"], "builtin");
    let points = curve["points"].as_array().expect("points");
    let ks: Vec<u64> = points.iter().filter_map(|p| p["k"].as_u64()).collect();
    assert_eq!(ks, [4, 16]);
    for p in points {
        assert_eq!(
            p["held_out"].as_u64(),
            Some(32 - p["k"].as_u64().expect("k"))
        );
        for which in ["fitted", "prior", "macs"] {
            let s = &p[which];
            let (low, mean, high) = (
                s["low"].as_f64().expect("low"),
                s["mean"].as_f64().expect("mean"),
                s["high"].as_f64().expect("high"),
            );
            assert!(
                (-1.0..=1.0).contains(&low) && low <= mean && mean <= high && high <= 1.0,
                "{p}"
            );
        }
    }
    for p in points {
        let (fitted, prior) = (p["fitted_rmse"].as_f64(), p["prior_rmse"].as_f64());
        assert!(fitted > Some(0.0) && prior > Some(0.0), "{p}");
    }
    assert_eq!(run_bin("hsconas", &args).stdout, out.stdout, "reproducible");

    // Without a prior, a fit needs three networks: smaller sizes are left out, and said so.
    let mut plain = args.to_vec();
    plain.extend(["--prior", "none"]);
    plain[5] = "2,8";
    let out = run_bin("hsconas", &plain);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("sizes outside 3 to 28"),
        "{}",
        out.stderr
    );
    let curve: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(curve["points"][0]["k"], 8);
    assert!(curve["points"][0].get("prior_rmse").is_none(), "{curve}");
    plain[5] = "2";
    let refused = run_bin("hsconas", &plain);
    assert_ne!(refused.code, Some(0));
    assert!(
        refused.stderr.contains("no size of --sizes"),
        "{}",
        refused.stderr
    );
}
