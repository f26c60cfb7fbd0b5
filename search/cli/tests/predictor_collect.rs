//! `hsconas predictor collect` on the committed CIFAR-10 sample, as a user runs it: a plan of the three
//! groups, trainings stopped and resumed, two workers side by side, a results file that `predictor fit`
//! reads, a rerun with another recipe refused without touching what was collected, and a second seed
//! added to every network.

mod common;

use common::hsconas;

use std::path::Path;
use std::process::Output;

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `predictor collect` of small networks on 5 images per class into `dir`, with `extra` flags.
fn collect(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "predictor",
        "collect",
        "--data",
        "data/cifar10-sample.tar.gz",
        "--train-per-class",
        "5",
        "--layout",
        "24,32,48,64",
        "--epochs",
        "2",
        "--warmup-epochs",
        "0",
        "--batch-size",
        "25",
        "--threads",
        "1",
        "--out",
        dir.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    hsconas(&args)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn collect_plans_trains_resumes_and_writes_what_fit_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("mine");

    let planned = ok(
        collect(&out, &["--networks", "6", "--plan-only"]),
        "the plan",
    );
    let said = String::from_utf8_lossy(&planned.stderr);
    assert!(
        said.contains("6 trainings of 4 steps left: at most about"),
        "a cost estimate: {said}"
    );
    assert!(!out.join("estimate").exists(), "the timing run is removed");
    let plan = lines(&out.join("plan.tsv"));
    assert_eq!(plan[0], "id\tgroup\tmmacs\tarch");
    let groups: Vec<&str> = plan[1..]
        .iter()
        .map(|l| l.split('\t').nth(1).expect("group"))
        .collect();
    assert_eq!(
        groups,
        ["uniform", "uniform", "spread", "spread", "equal", "equal"]
    );
    assert!(!out.join("runs").exists(), "--plan-only trains nothing");

    // One step in all: the first training stops with a checkpoint and nothing is finished.
    let stopped = ok(
        collect(&out, &["--max-steps", "1", "--no-estimate"]),
        "a stopped run",
    );
    assert!(
        String::from_utf8_lossy(&stopped.stderr).contains("without it, to continue"),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let first = out.join("runs/u00-s0");
    assert!(hsconas_train::trainer::checkpoint_path(&first).is_file());
    assert!(!first.join("model.json").exists());

    // The rest with two workers; the stopped run resumes where it was.
    ok(
        collect(&out, &["--jobs", "2", "--no-estimate"]),
        "two workers",
    );
    let results = lines(&out.join("results.tsv"));
    assert_eq!(results.len(), 7, "a header and 6 trainings: {results:?}");
    assert!(results[0].starts_with("arch\ttop1\tdata\trecipe\tid\tseed"));
    for (row, planned) in results[1..].iter().zip(&plan[1..]) {
        let cells: Vec<&str> = row.split('\t').collect();
        let planned: Vec<&str> = planned.split('\t').collect();
        assert_eq!(
            cells[0], planned[3],
            "the plan's architecture, in its order"
        );
        assert_eq!(cells[4], planned[0]);
        // The run's test top-1, seed 0.
        let info: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("runs/{}-s0/model.json", planned[0])))
                .expect("model.json"),
        )
        .expect("JSON");
        let top1: f64 = cells[1].parse().expect("top1");
        let test = info["test"]["top1"].as_f64().expect("test top-1");
        assert!((top1 - test).abs() < 0.006, "{top1} vs {test}");
        assert_eq!(cells[5], "0");
        assert_eq!(cells[2], "cifar10-sample.tar.gz");
        assert!(cells[3].contains("epochs=2") && cells[3].ends_with("top1=test"));
    }
    let history = std::fs::read_to_string(first.join("history.json")).expect("history");
    let epochs: serde_json::Value = serde_json::from_str(&history).expect("JSON");
    assert_eq!(epochs.as_array().map(Vec::len), Some(2), "{history}");
    // Each worker trained its 3, and the first resumed the stopped run rather than starting it again.
    for k in 0..2 {
        let log = std::fs::read_to_string(out.join(format!("worker-{k}.log"))).expect("a log");
        assert_eq!(log.matches("/3] ").count(), 3, "worker {k}: {log}");
        assert_eq!(log.contains("resuming"), k == 0, "worker {k}: {log}");
    }

    // A rerun of a finished collection trains nothing and changes nothing.
    let model = std::fs::read(first.join("model.json")).expect("model.json");
    let again = ok(collect(&out, &["--no-estimate"]), "a finished collection");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("6 of 6 trainings finished"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert!(!String::from_utf8_lossy(&again.stderr).contains("/6] "));
    assert_eq!(
        std::fs::read(first.join("model.json")).expect("kept"),
        model
    );

    // What fit reads: the recipe and data are recorded in the predictor, and the layout is the one the
    // recipe names (no --layout given).
    let predictor = dir.path().join("predictor.json");
    let fitted = ok(
        hsconas(&[
            "predictor",
            "fit",
            "--results",
            out.join("results.tsv").to_str().expect("utf-8"),
            "--out",
            predictor.to_str().expect("utf-8"),
            "--prior",
            "none",
            "--json",
        ]),
        "fit",
    );
    let report: serde_json::Value = serde_json::from_slice(&fitted.stdout).expect("JSON");
    assert_eq!(report["networks"], 6);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&predictor).expect("predictor"))
            .expect("JSON");
    assert_eq!(file["config"]["layout"], "24,32,48,64");
    assert_eq!(file["fitted_on"]["data"], "cifar10-sample.tar.gz");
    assert!(file["fitted_on"]["recipe"]
        .as_str()
        .is_some_and(|r| r.contains("epochs=2")));

    // Another recipe into the same folder: refused, naming the difference; nothing changes.
    let before = std::fs::read(out.join("results.tsv")).expect("results");
    let refused = collect(&out, &["--lr", "0.1"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("lr=0.05 -> lr=0.1"), "{why}");
    assert_eq!(
        std::fs::read(out.join("results.tsv")).expect("results"),
        before
    );
    // Other seeds too: they would mix into the results.
    let refused = collect(&out, &["--seed", "5"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("from --seed 0"), "{why}");
    // Another plan size too.
    let refused = collect(&out, &["--networks", "8", "--plan-only"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("plans 6 networks"), "{why}");

    // A second seed of every network: six more trainings, the first six untouched, the results file
    // with both seeds; going back to one seed is refused (it would hide trainings).
    ok(
        collect(&out, &["--seeds", "2", "--jobs", "2", "--no-estimate"]),
        "a second seed",
    );
    assert_eq!(
        std::fs::read(first.join("model.json")).expect("kept"),
        model
    );
    let results = lines(&out.join("results.tsv"));
    assert_eq!(results.len(), 13, "a header and 12 trainings: {results:?}");
    for planned in &plan[1..] {
        let id = planned.split('\t').next().expect("id");
        let seeds: Vec<&str> = results[1..]
            .iter()
            .filter(|row| row.split('\t').nth(4) == Some(id))
            .map(|row| row.split('\t').nth(5).expect("seed"))
            .collect();
        assert_eq!(seeds, ["0", "1"], "{id}: {results:?}");
        assert!(out.join(format!("runs/{id}-s1/model.json")).is_file());
    }
    let settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("collect.json")).expect("settings"))
            .expect("JSON");
    assert_eq!(settings["seeds"], 2);
    let refused = collect(&out, &["--seeds", "1", "--no-estimate"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("never lose any"), "{why}");
}
