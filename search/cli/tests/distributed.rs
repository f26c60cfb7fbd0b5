//! Data-parallel training with real MPI processes on loopback (Open MPI's `mpirun`, which
//! `scripts/setup.sh --mpi` installs): the averaged step against single-process arithmetic, a 2-rank
//! training run that lowers the loss and checkpoints, resumed by 1 rank and then by 2, a failing rank that
//! ends the whole job, commands that refuse to run as several ranks, and a predictor collection whose
//! trainings the ranks share. Built with `--features mpi`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hsconas_train::checkpoint::read_state;
use hsconas_train::TrainState;

fn data() -> PathBuf {
    hsconas_foundation::package_dir!().join("../../data/cifar10-sample.tar.gz")
}

/// `mpirun -np N PROGRAM ARGS...`, killed (and the test failed) after `limit`. Its output goes through
/// files, not pipes: a report larger than a pipe's buffer would block the job while nobody reads it.
fn mpirun(ranks: usize, program: &Path, args: &[String], limit: Duration) -> Output {
    let logs = tempfile::tempdir().expect("temp dir");
    let (stdout, stderr) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let file = |p: &Path| std::fs::File::create(p).expect("log file");
    let mut child = Command::new("mpirun")
        // More ranks than cores (CI has two), and root in containers: both are fine for these tests.
        .args(["--oversubscribe", "-np", &ranks.to_string()])
        .arg(program)
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(Stdio::from(file(&stdout)))
        .stderr(Stdio::from(file(&stderr)))
        .spawn()
        .expect("mpirun (Open MPI) on PATH: scripts/setup.sh --mpi installs it");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "mpirun -np {ranks} {program:?} {args:?} still running after {limit:?}; stderr: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: std::fs::read(&stdout).expect("stdout"),
        stderr: std::fs::read(&stderr).expect("stderr"),
    }
}

fn hsconas() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hsconas"))
}

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

/// `hsconas train` of a small network on the committed sample, 25 images per rank and step.
fn train_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let arch = "shuffle5:0.5,".repeat(19) + "xception:0.3";
    let mut args: Vec<String> = [
        "train",
        "--arch",
        &arch,
        "--data",
        data().to_str().expect("utf-8"),
        "--layout",
        "24,32,48,64",
        "--batch-size",
        "25",
        "--lr",
        "0.01",
        "--warmup-epochs",
        "0",
        "--threads",
        "1",
        "--out",
        out.to_str().expect("utf-8"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn state(dir: &Path) -> TrainState {
    read_state(&dir.join("checkpoint.safetensors")).expect("checkpoint")
}

#[test]
fn an_averaged_step_matches_the_single_process_arithmetic() {
    // The example sits next to this test's executable's folder (target/<profile>/examples).
    let exe = std::env::current_exe().expect("test executable");
    let example = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("examples/data_parallel_step");
    assert!(
        example.exists(),
        "{} missing: build with `cargo build --workspace --all-targets --features hsconas/mpi`",
        example.display()
    );
    for ranks in [2, 3] {
        let out = ok(
            mpirun(ranks, &example, &[], Duration::from_secs(120)),
            "data_parallel_step",
        );
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("one JSON line from rank 0");
        assert_eq!(report["ranks"], ranks);
        let identical = report["identical_data_max_diff"].as_f64().expect("number");
        if ranks == 2 {
            assert_eq!(identical, 0.0, "(g + g) / 2 is exact: {report}");
        }
        assert!(identical <= 1e-6, "{report}");
        assert!(
            report["shards_max_diff"].as_f64().expect("number") <= 1e-6,
            "{report}"
        );
        assert_eq!(report["ok"], true, "{report}");
    }
}

#[test]
fn two_ranks_train_checkpoint_and_resume_with_one_and_with_two() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("run");
    let limit = Duration::from_secs(600);
    // 1,800 training images in batches of 25: 72 batches, 36 steps of 2 ranks per epoch. Stop mid-epoch 1.
    ok(
        mpirun(
            2,
            &hsconas(),
            &train_args(&out, &["--epochs", "3", "--max-steps", "20"]),
            limit,
        ),
        "2 ranks to step 20",
    );
    let s = state(&out);
    assert_eq!((s.step, s.epochs_done, s.batches_in_epoch), (20, 0, 40));
    // One rank continues: 32 steps finish epoch 1 (batches 40..72), then 8 more of epoch 2.
    ok(
        mpirun(
            1,
            &hsconas(),
            &train_args(&out, &["--epochs", "3", "--max-steps", "60", "--resume"]),
            limit,
        ),
        "1 rank to step 60",
    );
    let s = state(&out);
    assert_eq!((s.step, s.epochs_done, s.batches_in_epoch), (60, 1, 8));
    // Two ranks again, to the end.
    ok(
        mpirun(
            2,
            &hsconas(),
            &train_args(&out, &["--epochs", "3", "--resume"]),
            limit,
        ),
        "2 ranks to the end",
    );
    let s = state(&out);
    assert_eq!(s.epochs_done, 3);
    assert_eq!(
        s.step,
        60 + 32 + 36,
        "epoch 2: (72 - 8) / 2 steps, epoch 3: 36"
    );
    let losses: Vec<f64> = s.history.iter().map(|r| r.loss).collect();
    assert!(losses[2] < losses[0], "loss should fall: {losses:?}");
    assert!(out.join("model.json").exists() && out.join("weights.safetensors").exists());
}

#[test]
fn a_failing_rank_ends_the_whole_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).expect("dir");
    std::fs::write(out.join("checkpoint.safetensors"), b"an earlier run").expect("file");
    // Rank 0 refuses to overwrite the run while rank 1 waits for the starting point from it.
    let run = mpirun(
        2,
        &hsconas(),
        &train_args(&out, &["--epochs", "1"]),
        Duration::from_secs(120),
    );
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("error on rank 0") && stderr.contains("--resume"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(out.join("checkpoint.safetensors")).expect("kept"),
        b"an earlier run"
    );
}

#[test]
fn commands_without_ranks_refuse_a_launcher() {
    let run = mpirun(
        2,
        &hsconas(),
        &["arch".into(), "sample".into()],
        Duration::from_secs(60),
    );
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("Open MPI") && stderr.contains("runs as one process"),
        "{stderr}"
    );
}

/// `hsconas search` flags of a small search with shrinking on the committed table and sample.
fn search_args(checkpoint: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let root = hsconas_foundation::package_dir!().join("../..");
    let table = root.join("devices/tables/local-cpu-A-32.json");
    let mut args: Vec<String> = [
        "search",
        "--supernet",
        checkpoint.to_str().expect("utf-8"),
        "--table",
        table.to_str().expect("utf-8"),
        "--target-ms",
        "0.7",
        "--data",
        data().to_str().expect("utf-8"),
        "--shrink",
        "--shrink-stages",
        "20/19",
        "--shrink-samples",
        "3",
        "--population",
        "6",
        "--generations",
        "3",
        "--parents",
        "2",
        "--eval-images",
        "50",
        "--bn-batches",
        "1",
        "--threads",
        "1",
        "--remeasure",
        "0",
        "--random-baseline",
        "--json",
        "--out",
        out.to_str().expect("utf-8"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn a_search_over_two_ranks_finds_what_one_process_finds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let supernet = dir.path().join("supernet");
    let trained = Command::new(hsconas())
        .args([
            "supernet",
            "train",
            "--data",
            data().to_str().expect("utf-8"),
            "--max-steps",
            "2",
            "--batch-size",
            "32",
            "--eval-subnets",
            "0",
            "--threads",
            "1",
            "--out",
            supernet.to_str().expect("utf-8"),
        ])
        .output()
        .expect("runs");
    let checkpoint = supernet.join("checkpoint.safetensors");
    ok(trained, "supernet");
    let alone = ok(
        Command::new(hsconas())
            .args(search_args(
                &checkpoint,
                &dir.path().join("one"),
                &["--finetune-epochs", "0"],
            ))
            .output()
            .expect("runs"),
        "search in one process",
    );
    let two = ok(
        mpirun(
            2,
            &hsconas(),
            &search_args(
                &checkpoint,
                &dir.path().join("two"),
                &["--finetune-epochs", "0"],
            ),
            Duration::from_secs(600),
        ),
        "search over 2 ranks",
    );
    let alone: serde_json::Value = serde_json::from_slice(&alone.stdout).expect("JSON report");
    let two: serde_json::Value =
        serde_json::from_slice(&two.stdout).expect("one JSON report (rank 0)");
    for key in [
        "shrinking",
        "generations",
        "candidates",
        "winner",
        "space",
        "random_baseline",
    ] {
        assert_eq!(two[key], alone[key], "{key}");
    }
    // Fine-tuning after the shrinking stages runs data-parallel on both ranks.
    let tuned = dir.path().join("tuned");
    ok(
        mpirun(
            2,
            &hsconas(),
            &search_args(&checkpoint, &tuned, &["--finetune-epochs", "1"]),
            Duration::from_secs(600),
        ),
        "search over 2 ranks with fine-tuning",
    );
    let state = state(&tuned.join("finetune-2"));
    assert_eq!(state.epochs_done, 1);
}

/// `predictor collect` under 2 ranks: rank 0 plans, each rank trains its share, and the results file
/// holds every training of the plan once.
#[test]
fn two_ranks_share_the_trainings_of_a_collection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("collection");
    let args: Vec<String> = [
        "predictor",
        "collect",
        "--data",
        data().to_str().expect("utf-8"),
        "--train-per-class",
        "5",
        "--layout",
        "24,32,48,64",
        "--networks",
        "6",
        "--epochs",
        "1",
        "--warmup-epochs",
        "0",
        "--batch-size",
        "25",
        "--threads",
        "1",
        "--out",
        out.to_str().expect("utf-8"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = ok(
        mpirun(2, &hsconas(), &args, Duration::from_secs(300)),
        "collect over 2 ranks",
    );
    let results = std::fs::read_to_string(out.join("results.tsv")).expect("results");
    let ids: Vec<&str> = results
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(4).expect("id"))
        .collect();
    assert_eq!(ids, ["u00", "u01", "s00", "s01", "e00", "e01"], "{results}");
    // Each rank trained its 3 of the 6 (its progress lines count its own share).
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.matches("/3] ").count(), 6, "{stderr}");
    assert!(!stderr.contains("/6] "), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        stdout.matches("6 of 6 trainings finished").count(),
        1,
        "one summary, by rank 0: {stdout}"
    );
}
