//! `hsconas-runtime bench`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hsconas_runtime::backend;
use hsconas_runtime::timing::{measure, random_inputs};
use hsconas_runtime::Fingerprint;
use serde_json::json;

use super::engine_args::{EngineArgs, ProtocolArgs};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The ONNX model.
    model: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    protocol: ProtocolArgs,
    /// Batch size for a symbolic batch dimension.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let config = args.engine.config();
    let engine = backend::build(&config)?;
    let mut model = engine
        .load(&bytes)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let protocol = args.protocol.protocol();
    let inputs = random_inputs(model.inputs(), args.batch, protocol.seed);
    model.prepare(&inputs)?;
    let stats = measure(model.as_mut(), &protocol)?;
    if args.json {
        let mut report = serde_json::to_value(&stats)?;
        let extra = json!({
            "model": args.model,
            "backend": engine.version(),
            "provider": model.provider(),
            "threads": config.threads,
            "input_shapes": inputs.iter().map(|t| &t.shape).collect::<Vec<_>>(),
            "protocol": protocol,
            "fingerprint": Fingerprint::detect(),
        });
        if let (Some(r), Some(e)) = (report.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} on {} ({}, {} thread(s)), {} runs",
            args.model.display(),
            engine.version(),
            model.provider(),
            config.threads,
            stats.runs
        );
        println!(
            "min {:.4} ms  p10 {:.4} ms  median {:.4} ms  p90 {:.4} ms  mean {:.4} ms  stdev {:.4} ms",
            stats.min_ms, stats.p10_ms, stats.median_ms, stats.p90_ms, stats.mean_ms, stats.stdev_ms
        );
    }
    Ok(())
}
