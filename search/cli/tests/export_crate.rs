//! Export of trained networks, end to end: networks briefly trained by `hsconas train` on the committed
//! CIFAR-10 sample give the same outputs in libtorch, in the exported ONNX (batch norms folded) under
//! tract and ONNX Runtime, and in the generated inference crate, on random inputs and on real images.
//! The generated crate is built in the workspace's target directory, is formatted and clippy-clean, and
//! its golden test passes with both backends. Bad inputs (weights of another network, bad crate names, occupied directories) are
//! clear errors.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{cargo, hsconas};

use hsconas_data::Transform;
use hsconas_export::{
    trained_graph, trained_onnx, BatchDim, GraphWeights, ModelInfo, TrainedExport, Weights,
};
use hsconas_foundation::stats::relative_error;
use hsconas_models::{Layout, NetConfig, SearchSpace};
use hsconas_runtime::backend::{self, BackendConfig, HostTensor};
use hsconas_train::nn::{Mode, Standalone};
use hsconas_vocabulary::Engine;
use rand::SeedableRng;
use tch::{nn, Device, Kind, Tensor};

const LAYOUT: &str = "24,32,48,64";

fn data() -> PathBuf {
    hsconas_foundation::package_dir!().join("../../data/cifar10-sample.tar.gz")
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A random architecture of the full space, trained for one epoch (a few seconds) into `dir`.
fn train(dir: &Path, seed: u64) -> String {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let arch = SearchSpace::full().sample(&mut rng).to_string();
    train_network(dir, seed, &["--arch", &arch, "--layout", LAYOUT]);
    arch
}

/// `hsconas train` of the network `what` names, one epoch on the sample, into `dir`.
fn train_network(dir: &Path, seed: u64, what: &[&str]) {
    let mut args = vec!["train"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["--data"]);
    let data = data();
    let out = dir.to_str().expect("utf-8");
    let seed = seed.to_string();
    args.extend_from_slice(&[
        data.to_str().expect("utf-8"),
        "--epochs",
        "1",
        "--warmup-epochs",
        "0",
        "--lr",
        "0.05",
        "--batch-size",
        "50",
        "--threads",
        "1",
        "--seed",
        &seed,
        "--out",
        out,
    ]);
    ok(hsconas(&args), "hsconas train");
}

/// The first `per_class` test images of every class of the committed sample, written as files.
fn real_images(dir: &Path, per_class: usize) -> Vec<PathBuf> {
    let file = std::fs::File::open(data()).expect("sample");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut taken = std::collections::BTreeMap::<String, usize>::new();
    let mut paths = Vec::new();
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().to_string();
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() != 3 || parts[0] != "test" || !name.ends_with(".jpg") {
            continue;
        }
        let n = taken.entry(parts[1].to_string()).or_default();
        if *n == per_class {
            continue;
        }
        *n += 1;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        let path = dir.join(format!("{}-{}", parts[1], parts[2]));
        std::fs::write(&path, bytes).expect("write");
        paths.push(path);
    }
    assert_eq!(paths.len(), 10 * per_class);
    paths
}

/// The images as the evaluation pipeline feeds them (no augmentation, the model's normalisation).
fn eval_pixels(paths: &[PathBuf], info: &ModelInfo) -> Vec<f32> {
    let transform = Transform {
        crop: hsconas_data::Crop::None,
        flip: false,
        mean: info.normalisation.mean.clone(),
        std: info.normalisation.std.clone(),
    };
    let s = info.input_size;
    let mut out = vec![0f32; paths.len() * 3 * s * s];
    for (k, path) in paths.iter().enumerate() {
        let rgb = image::open(path).expect("decodes").to_rgb8();
        assert_eq!(rgb.dimensions(), (s as u32, s as u32));
        let mut chw = vec![0u8; 3 * s * s];
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                chw[c * s * s + i] = p[c];
            }
        }
        transform.apply::<rand_chacha::ChaCha8Rng>(
            &chw,
            3,
            s,
            s,
            None,
            &mut out[k * 3 * s * s..(k + 1) * 3 * s * s],
        );
    }
    out
}

fn tch_logits(info: &ModelInfo, weights: &Weights, pixels: &[f32], n: usize) -> Vec<f32> {
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = Standalone::new(&vs.root(), trained_graph(info).expect("graph"));
    net.load(weights).expect("weights load into libtorch");
    let s = info.input_size as i64;
    let x = Tensor::from_slice(pixels).view([n as i64, 3, s, s]);
    let y = tch::no_grad(|| net.forward(&x, Mode::Eval));
    Vec::<f32>::try_from(y.contiguous().view([-1]).to_kind(Kind::Float)).expect("f32")
}

fn top1(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks(classes)
        .map(|row| {
            (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .expect("classes")
        })
        .collect()
}

fn run_onnx(kind: Engine, onnx: &[u8], pixels: &[f32], n: usize, s: usize) -> Vec<f32> {
    let engine = backend::build(&BackendConfig {
        kind,
        threads: 1,
        ..BackendConfig::default()
    })
    .expect("backend (ONNX Runtime from scripts/setup.sh)");
    let mut model = engine.load(onnx).expect("loads");
    let input = HostTensor {
        shape: vec![n, 3, s, s],
        data: pixels.to_vec(),
    };
    model.run(&[input]).expect("runs").remove(0).data
}

/// Top-1 class index per image from the crate's `classify` example output (`path: class p, ...`).
fn crate_top1(stdout: &str, info: &ModelInfo) -> Vec<usize> {
    stdout
        .lines()
        .map(|line| {
            let (_, ranked) = line.split_once(": ").expect("path: ranking");
            let class = ranked.split(' ').next().expect("a class");
            info.classes
                .iter()
                .position(|c| c == class)
                .expect("a known class")
        })
        .collect()
}

#[test]
fn trained_networks_agree_in_tch_tract_onnx_runtime_and_the_generated_crate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = real_images(dir.path(), 2);
    let random: Vec<f32> = {
        tch::manual_seed(5);
        let x = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
        Vec::<f32>::try_from(x.view([-1])).expect("f32")
    };
    for seed in [1, 2] {
        let run = dir.path().join(format!("train-{seed}"));
        let arch = train(&run, seed);
        let (file, info) = ModelInfo::locate(&run).expect("training wrote weights and model.json");
        assert_eq!(info.architecture, arch);
        assert_eq!(info.classes.len(), 10);
        let weights = Weights::load_safetensors(&file).expect("weights");
        let s = info.input_size;
        let real = eval_pixels(&images, &info);
        let folded = trained_onnx(&info, &weights, TrainedExport::default()).expect("export");
        let with_bn = trained_onnx(
            &info,
            &weights,
            TrainedExport {
                keep_bn: true,
                batch: BatchDim::Symbolic,
                ..TrainedExport::default()
            },
        )
        .expect("export");
        for (name, pixels, n) in [("random", &random, 3), ("real", &real, images.len())] {
            let reference = tch_logits(&info, &weights, pixels, n);
            for (backend, onnx, kind) in [
                ("tract, folded", &folded, Engine::Tract),
                ("onnxruntime, folded", &folded, Engine::Ort),
                ("onnxruntime, batch norms kept", &with_bn, Engine::Ort),
            ] {
                let out = run_onnx(kind, onnx, pixels, n, s);
                let err = relative_error(&out, &reference);
                assert!(
                    err <= 1e-4,
                    "{arch}, {name} inputs, {backend}: relative error {err}"
                );
                if name == "real" {
                    assert_eq!(top1(&out, 10), top1(&reference, 10), "{backend}");
                }
            }
        }

        if seed != 1 {
            continue;
        }
        // The generated crate: golden test with both backends, and the same top-1 as libtorch.
        let krate = dir.path().join("cifar-net");
        ok(
            hsconas(&[
                "export",
                "crate",
                "--weights",
                run.to_str().expect("utf-8"),
                "--name",
                "cifar-net",
                "--out",
                krate.to_str().expect("utf-8"),
            ]),
            "hsconas export crate",
        );
        std::fs::copy(
            hsconas_foundation::package_dir!().join("../../Cargo.lock"),
            krate.join("Cargo.lock"),
        )
        .expect("lock file");
        ok(cargo(&krate, &["fmt", "--check"]), "cargo fmt --check");
        let expected = top1(&tch_logits(&info, &weights, &real, images.len()), 10);
        // tract alone, both backends (chosen at run time), ONNX Runtime alone.
        let tract = &[][..];
        let both = &["--features", "ort"][..];
        let ort_only = &["--no-default-features", "--features", "ort"][..];
        for features in [tract, both, ort_only] {
            let clippy = [
                &["clippy", "--offline", "--all-targets"][..],
                features,
                &["--", "-D", "warnings"][..],
            ]
            .concat();
            ok(cargo(&krate, &clippy), &format!("cargo {clippy:?}"));
        }
        for (features, backend) in [(tract, "tract"), (both, "ort")] {
            let test = [&["test", "--offline"][..], features].concat();
            let out = ok(cargo(&krate, &test), &format!("cargo {test:?}"));
            let log = String::from_utf8_lossy(&out.stdout);
            assert!(log.contains("golden_output ... ok"), "{log}");
            let mut classify =
                [&["run", "--offline", "--example", "classify"][..], features].concat();
            classify.extend(["--", "--backend", backend]);
            classify.extend(images.iter().map(|p| p.to_str().expect("utf-8")));
            let out = ok(cargo(&krate, &classify), "the classify example");
            let found = crate_top1(&String::from_utf8_lossy(&out.stdout), &info);
            assert_eq!(
                found, expected,
                "generated crate ({features:?}, {backend}) vs libtorch top-1"
            );
        }
    }
}

#[test]
fn mismatched_weights_bad_names_and_occupied_directories_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("train");
    train(&run, 3);
    let trained_weights = std::fs::read(run.join("weights.safetensors")).expect("weights");
    let run_arg = run.to_str().expect("utf-8");

    // `hsconas export crate` fails; its stderr.
    let refused = |name: &str, out: &str| {
        let result = hsconas(&[
            "export",
            "crate",
            "--weights",
            run_arg,
            "--name",
            name,
            "--out",
            out,
        ]);
        assert!(
            !result.status.success(),
            "export crate {name} {out} succeeded"
        );
        String::from_utf8_lossy(&result.stderr).to_string()
    };

    // Weights of another architecture under this model.json: the missing or misshapen tensor is named.
    let (_, info) = ModelInfo::locate(&run).expect("locate");
    let config = NetConfig {
        layout: LAYOUT.parse::<Layout>().expect("layout"),
        input_size: 32,
        classes: 10,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let other = SearchSpace::full().sample(&mut rng);
    assert_ne!(other.to_string(), info.architecture);
    let graph = hsconas_models::build::network(&other, &config).expect("graph");
    Weights::random(&graph, 1)
        .save_safetensors(&run.join("weights.safetensors"))
        .expect("save");
    let out = dir.path().join("m.onnx");
    let out_arg = out.to_str().expect("utf-8");
    let result = hsconas(&["export", "onnx", "--weights", run_arg, "--out", out_arg]);
    assert!(!result.status.success());
    let onnx_err = String::from_utf8_lossy(&result.stderr).to_string();
    for err in [onnx_err, refused("net", out_arg)] {
        assert!(err.contains("tensor 'layers."), "{err}");
    }
    assert!(!out.exists(), "nothing written on error");

    for name in ["2fast", "my net", "fn", "test"] {
        let err = refused(name, "x");
        assert!(err.contains("crate name"), "{name}: {err}");
    }

    std::fs::write(run.join("weights.safetensors"), &trained_weights).expect("restore");
    let occupied = dir.path().join("occupied");
    std::fs::create_dir_all(&occupied).expect("mkdir");
    std::fs::write(occupied.join("notes.txt"), "mine").expect("write");
    let err = refused("net", occupied.to_str().expect("utf-8"));
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(occupied.join("notes.txt")).expect("kept"),
        "mine"
    );

    // A truncated weights file.
    std::fs::write(
        run.join("weights.safetensors"),
        &trained_weights[..trained_weights.len() / 3],
    )
    .expect("truncate");
    let err = refused("net", "x");
    assert!(err.contains("not a valid safetensors file"), "{err}");
}

#[test]
fn a_trained_reference_network_exports_with_its_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("shufflenet");
    train_network(
        &run,
        3,
        &["--reference", "shufflenet_v2_x0_5", "--small-input-stem"],
    );
    let (file, info) = ModelInfo::locate(&run).expect("training wrote weights and model.json");
    assert_eq!(info.architecture, "shufflenet_v2_x0_5");
    assert_eq!(
        info.reference,
        Some(hsconas_export::ReferenceInfo {
            small_input_stem: true
        })
    );
    let weights = Weights::load_safetensors(&file).expect("weights");
    let pixels: Vec<f32> = {
        tch::manual_seed(7);
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        Vec::<f32>::try_from(x.view([-1])).expect("f32")
    };
    let reference = tch_logits(&info, &weights, &pixels, 2);
    let onnx = trained_onnx(&info, &weights, TrainedExport::default()).expect("export");
    for kind in [Engine::Tract, Engine::Ort] {
        let err = relative_error(&run_onnx(kind, &onnx, &pixels, 2, 32), &reference);
        assert!(err <= 1e-4, "{kind:?}: relative error {err}");
    }
    let out = dir.path().join("shufflenet.onnx");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "onnx", "--weights", run.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().expect("utf-8")]);
        hsconas(&args)
    };
    ok(
        export(&[]),
        "hsconas export onnx of a trained reference network",
    );
    let err = export(&["--arch", &["shuffle3:1.0"; 20].join(",")]);
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("--arch does not apply"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    // Flags that restate model.json are accepted; flags that contradict it are refused with the reason,
    // and nothing is written (the bug: --input-size 224 wrote a 32x32 model without a word).
    std::fs::remove_file(&out).expect("remove the first export");
    ok(
        export(&[
            "--input-size",
            "32",
            "--classes",
            "10",
            "--small-input-stem",
        ]),
        "flags equal to model.json",
    );
    std::fs::remove_file(&out).expect("remove the second export");
    for (flags, says) in [
        (
            &["--input-size", "224"][..],
            "--input-size 224 (it was trained at 32x32)",
        ),
        (
            &["--classes", "1000"][..],
            "--classes 1000 (it has 10 classes)",
        ),
        (&["--seed", "3"][..], "--seed cannot apply"),
    ] {
        let refused = export(flags);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{flags:?} was accepted");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(
            !out.exists(),
            "{flags:?}: nothing is written when a flag is refused"
        );
    }
}

/// `hsconas export evaluate --json` of one model on the sample's test split: (top-1, images).
fn evaluate(model: &Path) -> (f64, u64) {
    let out = ok(
        hsconas(&[
            "export",
            "evaluate",
            "--model",
            model.to_str().expect("utf-8"),
            "--data",
            data().to_str().expect("utf-8"),
            "--json",
        ]),
        "hsconas export evaluate",
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    (
        v["top1"].as_f64().expect("top1"),
        v["images"].as_u64().expect("images"),
    )
}

#[test]
fn a_trained_network_exported_in_int8_scores_like_its_fp32_export() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = dir.path().join("run");
    let run_arg = run.to_str().expect("utf-8");
    // Eight epochs of a small network: about 25% on the sample's test split, clearly above chance (four
    // epochs at lr 0.1 reached 20% on the Intel VM but exactly 15% on an AMD EPYC with AVX-512: libtorch's
    // kernels differ by CPU, so the recipe keeps a margin).
    let arch = vec!["shuffle3:0.5"; 20].join(",");
    let data = data();
    ok(
        hsconas(&[
            "train",
            "--arch",
            &arch,
            "--layout",
            LAYOUT,
            "--data",
            data.to_str().expect("utf-8"),
            "--epochs",
            "8",
            "--warmup-epochs",
            "0",
            "--lr",
            "0.05",
            "--batch-size",
            "50",
            "--threads",
            "1",
            "--seed",
            "3",
            "--out",
            run_arg,
        ]),
        "hsconas train",
    );
    let (_, info) = ModelInfo::locate(&run).expect("training wrote weights and model.json");
    let (fp32, int8) = (dir.path().join("fp32.onnx"), dir.path().join("int8.onnx"));
    ok(
        hsconas(&[
            "export",
            "onnx",
            "--weights",
            run_arg,
            "--out",
            fp32.to_str().expect("utf-8"),
        ]),
        "FP32 export",
    );
    let out = ok(
        hsconas(&[
            "export",
            "onnx",
            "--weights",
            run_arg,
            "--precision",
            "int8",
            "--calibration",
            data.to_str().expect("utf-8"),
            "--out",
            int8.to_str().expect("utf-8"),
        ]),
        "INT8 export",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("INT8 (cpu flavour) for the whole network"),
        "{stderr}"
    );
    assert!(
        stderr.contains("every quantised convolution runs as an integer kernel"),
        "{stderr}"
    );
    let (fp32_top1, images) = evaluate(&fp32);
    let (int8_top1, _) = evaluate(&int8);
    let trained = info.test.expect("training measured the test split");
    assert_eq!(images as usize, trained.images);
    // The FP32 export through ONNX Runtime scores what libtorch measured after training (a borderline
    // image may flip between the two engines' summation orders: 2 of 500 allowed).
    assert!(
        (fp32_top1 - trained.top1).abs() <= 0.4 + 1e-9,
        "ONNX Runtime {fp32_top1}% vs libtorch {}%",
        trained.top1
    );
    // The network learned something (chance is 10% on the balanced test split), so a broken INT8 model
    // that predicts one class cannot land within the bound below.
    assert!(
        fp32_top1 > 15.0,
        "FP32 {fp32_top1}%: the network did not learn"
    );
    // INT8 on the same weights: within 3 points (15 of the 500 images).
    assert!(
        (int8_top1 - fp32_top1).abs() <= 3.0,
        "INT8 {int8_top1}% vs FP32 {fp32_top1}%"
    );
}
