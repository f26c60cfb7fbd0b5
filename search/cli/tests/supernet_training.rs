//! A real, short supernet training run on the committed CIFAR-10 sample through the `hsconas` binary:
//! the loss goes down, checkpoints are written, a run stopped mid-epoch resumes to exactly the weights of
//! an uninterrupted one, a killed run loses no finished epoch, and subnets can be evaluated and extracted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hsconas_train::checkpoint::read_state;
use hsconas_train::TrainState;
use safetensors::SafeTensors;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar10-sample.tar.gz")
}

/// A tiny layout, 1,800 training images, batches of 50: seconds per epoch on two cores.
fn train_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "supernet",
        "train",
        "--data",
        data().to_str().expect("utf-8"),
        "--layout",
        "24,32,48,64",
        "--batch-size",
        "50",
        "--lr",
        "0.1",
        "--eval-images",
        "200",
        "--bn-batches",
        "2",
        // Tests run in parallel: one libtorch thread each, or they fight over the two cores.
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

fn hsconas(args: &[String]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_hsconas"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{args:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn state(dir: &Path) -> TrainState {
    read_state(&dir.join("checkpoint.safetensors")).expect("checkpoint")
}

fn model_tensors(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).expect("checkpoint");
    let file = SafeTensors::deserialize(&bytes).expect("valid");
    let mut out: Vec<(String, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .filter(|(n, _)| n.starts_with("model."))
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    out.sort();
    out
}

#[test]
fn training_lowers_the_loss_checkpoints_and_resumes_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let straight = dir.path().join("straight");
    // Kaiming: on this tiny layout and 72 steps its loss falls reliably; with SPOS's initialisation the
    // supernet needs a few hundred steps before it does (docs/supernet-cifar10.md). Exact resume is
    // checked for `spos` in `a_killed_run_keeps_its_finished_epochs`.
    hsconas(&train_args(
        &straight,
        &["--epochs", "2", "--eval-subnets", "1", "--init", "kaiming"],
    ));
    let s = state(&straight);
    assert_eq!(s.epochs_done, 2);
    assert!(
        s.history[1].loss < s.history[0].loss,
        "loss should fall: {:?}",
        s.history.iter().map(|r| r.loss).collect::<Vec<_>>()
    );
    assert!(s.history[0].eval["widest_top1"].is_number());
    assert!(straight.join("history.json").exists() && straight.join("curve.png").exists());

    // Stopped mid-run, then resumed: the same weights as the uninterrupted run.
    let stopped = dir.path().join("stopped");
    hsconas(&train_args(
        &stopped,
        &[
            "--epochs",
            "2",
            "--eval-subnets",
            "1",
            "--max-steps",
            "50",
            "--init",
            "kaiming",
        ],
    ));
    assert_eq!((state(&stopped).step, state(&stopped).epochs_done), (50, 1));
    let out = hsconas(&train_args(
        &stopped,
        &[
            "--epochs",
            "2",
            "--eval-subnets",
            "1",
            "--init",
            "kaiming",
            "--resume",
        ],
    ));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    assert_eq!(state(&stopped).step, s.step);
    let (a, b) = (model_tensors(&straight), model_tensors(&stopped));
    assert_eq!(a.len(), b.len());
    let differing: Vec<&str> = a
        .iter()
        .zip(&b)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((name, _), _)| name.as_str())
        .collect();
    assert!(
        differing.is_empty(),
        "{} of {} tensors differ after resuming, e.g. {:?}",
        differing.len(),
        a.len(),
        &differing[..differing.len().min(5)]
    );

    // Without --resume an existing run is not overwritten.
    let refused = Command::new(env!("CARGO_BIN_EXE_hsconas"))
        .args(train_args(&straight, &["--epochs", "1"]))
        .output()
        .expect("runs");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));

    // Evaluate and extract a subnet.
    let ckpt = straight.join("checkpoint.safetensors");
    let arch = "shuffle3:1.0,".repeat(19) + "shuffle3:1.0";
    let out = hsconas(&[
        "supernet".into(),
        "eval".into(),
        "--checkpoint".into(),
        ckpt.to_str().expect("utf-8").into(),
        "--arch".into(),
        arch.clone(),
        "--data".into(),
        data().to_str().expect("utf-8").into(),
        "--bn-batches".into(),
        "2".into(),
        "--json".into(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(report["top1"]
        .as_f64()
        .is_some_and(|t| (0.0..=100.0).contains(&t)));
    assert_eq!(report["images"], 200);
    let weights = dir.path().join("sub.safetensors");
    hsconas(&[
        "supernet".into(),
        "extract".into(),
        "--checkpoint".into(),
        ckpt.to_str().expect("utf-8").into(),
        "--arch".into(),
        arch,
        "--out".into(),
        weights.to_str().expect("utf-8").into(),
    ]);
    assert!(weights.exists());
}

#[test]
fn a_killed_run_keeps_its_finished_epochs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsconas"))
        .args(train_args(
            &run,
            &["--epochs", "3", "--eval-subnets", "0", "--init", "spos"],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let start = Instant::now();
    let first = loop {
        if let Ok(s) = read_state::<TrainState>(&run.join("checkpoint.safetensors")) {
            break s;
        }
        assert!(
            child.try_wait().expect("child status").is_none(),
            "training ended before its first checkpoint"
        );
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().expect("kill");
    child.wait().expect("reap");
    let before = state(&run);
    assert!(before.epochs_done >= first.epochs_done && before.epochs_done >= 1);
    assert_eq!(before.model["init"], "spos");
    // A resume must describe the same supernet.
    let other_init = Command::new(env!("CARGO_BIN_EXE_hsconas"))
        .args(train_args(
            &run,
            &[
                "--epochs",
                "3",
                "--eval-subnets",
                "0",
                "--init",
                "kaiming",
                "--resume",
            ],
        ))
        .output()
        .expect("runs");
    assert!(!other_init.status.success());
    hsconas(&train_args(
        &run,
        &[
            "--epochs",
            "3",
            "--eval-subnets",
            "0",
            "--init",
            "spos",
            "--resume",
        ],
    ));
    let after = state(&run);
    assert_eq!(after.epochs_done, 3);
    assert_eq!(
        after.history[..before.epochs_done],
        before.history[..],
        "finished epochs are kept as they were"
    );
}

#[test]
fn training_from_scratch_writes_weights_the_exporter_takes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("train");
    let arch = "shuffle5:0.5,".repeat(19) + "xception:0.3";
    let mut args: Vec<String> = [
        "train",
        "--arch",
        &arch,
        "--data",
        data().to_str().expect("utf-8"),
        "--layout",
        "24,32,48,64",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--threads",
        "1",
        "--out",
        out.to_str().expect("utf-8"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    hsconas(&args);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).expect("metadata"))
            .expect("JSON");
    assert_eq!(meta["architecture"], arch.as_str());
    assert_eq!(meta["classes"].as_array().map(Vec::len), Some(10));
    assert_eq!(
        meta["normalisation"]["mean"].as_array().map(Vec::len),
        Some(3)
    );
    assert!(meta["test"]["top1"].is_number());
    let onnx = dir.path().join("m.onnx");
    args = [
        "export",
        "onnx",
        "--arch",
        &arch,
        "--layout",
        "24,32,48,64",
        "--input-size",
        "32",
        "--classes",
        "10",
        "--weights",
        out.join("weights.safetensors").to_str().expect("utf-8"),
        "--out",
        onnx.to_str().expect("utf-8"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    hsconas(&args);
    assert!(onnx.exists());
}
