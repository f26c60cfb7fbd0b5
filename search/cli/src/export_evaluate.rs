//! `hsconas export evaluate`: the test top-1 of an exported ONNX model, run by ONNX Runtime or tract
//! on a dataset's test split: what an FP32 or INT8 export really scores.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hsconas_export::onnx::metadata;
use hsconas_foundation::outln;
use hsconas_runtime::backend::{self, BackendConfig, HostTensor, LoadedModel};
use hsconas_vocabulary::Engine;
use serde_json::json;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The model: an `hsconas export onnx` of a trained network (its metadata holds the input size,
    /// the classes and the normalisation).
    #[arg(long, value_name = "FILE.onnx")]
    pub model: PathBuf,
    /// Dataset with a test split (ImageFolder with `test/`, CIFAR-10 batches, MNIST).
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Evaluate the first N test images only (default: all of them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Engine: ort (ONNX Runtime, CPU) or tract.
    #[arg(long, default_value = "ort", value_name = "ort|tract")]
    pub engine: Engine,
    /// Intra-op threads (ONNX Runtime).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// On an x86 CPU without VNNI, run with ONNX Runtime's U8U8 integer kernels, which cannot
    /// saturate, instead of its faster U8S8 ones (`session.x64quantprecision`).
    #[arg(long)]
    pub x64_quant_precision: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A list of numbers stored as JSON in the model's metadata.
fn numbers(
    meta: &std::collections::BTreeMap<String, String>,
    key: &str,
) -> anyhow::Result<Vec<f32>> {
    let text = meta.get(key).with_context(|| {
        format!("the model's metadata has no '{key}': export a trained network (hsconas export onnx --weights DIR)")
    })?;
    serde_json::from_str(text)
        .with_context(|| format!("metadata '{key}' is not a list of numbers: {text}"))
}

pub fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let meta = metadata(&bytes)
        .with_context(|| format!("{} is not an ONNX model", args.model.display()))?;
    let (mean, std) = (numbers(&meta, "mean")?, numbers(&meta, "std")?);
    let size: usize = meta
        .get("input_size")
        .and_then(|s| s.parse().ok())
        .context("the model's metadata has no input_size")?;
    let splits = hsconas_data::open(&args.data, hsconas_data::ReadOptions::default())?;
    let test = splits
        .test
        .with_context(|| format!("{} has no test split", args.data.display()))?;
    if let Some(classes) = meta.get("classes") {
        let classes: Vec<String> = serde_json::from_str(classes).context("metadata 'classes'")?;
        anyhow::ensure!(
            classes == test.classes,
            "the model was trained on the classes {classes:?}, the dataset has {:?}",
            test.classes
        );
    }
    let n = args
        .limit
        .map_or(test.len(), |l| (l as usize).min(test.len()));
    let config = BackendConfig {
        kind: args.engine,
        threads: args.threads,
        x64_quant_precision: args.x64_quant_precision,
        ..BackendConfig::default()
    };
    let engine = backend::build(&config)?;
    let mut model = engine.load(&bytes)?;
    let transform = hsconas_data::Transform {
        crop: hsconas_data::Crop::None,
        flip: false,
        mean,
        std,
    };
    let started = std::time::Instant::now();
    let indices: Vec<usize> = (0..n).collect();
    let bar = (!args.json).then_some("evaluating");
    let correct = count_correct(model.as_mut(), &test, &indices, size, &transform, bar)?;
    let top1 = 100.0 * correct as f64 / n as f64;
    let precision = meta
        .get("precision")
        .cloned()
        .unwrap_or_else(|| "fp32".into());
    let weight_range = meta.get("int8_weight_range").cloned();
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "model": args.model,
                "precision": precision,
                "int8_weight_range": weight_range,
                "x64_quant_precision": args.x64_quant_precision,
                "x86_without_vnni": hsconas_runtime::fingerprint::x86_without_vnni(),
                "engine": engine.version(),
                "images": n,
                "correct": correct,
                "top1": top1,
                "seconds": started.elapsed().as_secs_f64(),
            }))?
        )?;
    } else {
        outln!(
            "{}: {top1:.2}% top-1 on {n} test images ({correct} correct; {precision}, {})",
            args.model.display(),
            engine.version()
        )?;
    }
    Ok(())
}

/// How many of the images of `set` at `indices` `model` classifies right, each resized to `size`,
/// normalised by `transform` and run alone (batch 1); a progress bar with `progress` as its label
/// when given.
pub(crate) fn count_correct(
    model: &mut dyn LoadedModel,
    set: &hsconas_data::ImageSet,
    indices: &[usize],
    size: usize,
    transform: &hsconas_data::Transform,
    progress: Option<&str>,
) -> anyhow::Result<usize> {
    let bar = hsconas_foundation::progress::progress_bar(
        indices.len(),
        progress,
        "images",
        progress.is_some(),
    );
    let mut correct = 0usize;
    for chunk in indices.chunks(256) {
        let images = hsconas_data::calibration::normalised_images(set, chunk, size, transform);
        for (image, &i) in images.into_iter().zip(chunk) {
            let input = HostTensor {
                shape: vec![1, set.channels, size, size],
                data: image,
            };
            let out = model.run(&[input])?;
            let predicted = out[0]
                .data
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(k, _)| k);
            correct += usize::from(predicted == set.labels[i] as usize);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(correct)
}
