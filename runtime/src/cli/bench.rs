//! `hsconas-runtime bench`.

use hsconas_foundation::outln;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hsconas_runtime::measure_job::{run_job, MeasureJob};
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
    let job = MeasureJob {
        models: vec![args.model.clone()],
        engine: args.engine.config(),
        protocol: args.protocol.protocol(),
        batch: args.batch,
    };
    let outcome = run_job(&job)
        .with_context(|| format!("measuring {}", args.model.display()))?
        .remove(0);
    let s = &outcome.stats;
    if args.json {
        let mut report = serde_json::to_value(s)?;
        let extra = json!({
            "model": args.model,
            "backend": outcome.backend,
            "provider": outcome.provider,
            "threads": job.engine.threads,
            "input_shapes": outcome.input_shapes,
            "placement": outcome.placement,
            "input_copy_ms": outcome.input_copy_ms,
            "output_copy_ms": outcome.output_copy_ms,
            "tensorrt": job.engine.tensorrt,
            "protocol": job.protocol,
            "fingerprint": hsconas_runtime::fingerprint::detect(),
        });
        if let (Some(r), Some(e)) = (report.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        outln!(
            "{} on {} ({}, {} thread(s)), {} runs",
            args.model.display(),
            outcome.backend,
            outcome.provider,
            job.engine.threads,
            s.runs
        )?;
        outln!(
            "min {:.4} ms  p10 {:.4} ms  median {:.4} ms  p90 {:.4} ms  mean {:.4} ms  stdev {:.4} ms",
            s.min_ms, s.p10_ms, s.median_ms, s.p90_ms, s.mean_ms, s.stdev_ms
        )?;
        if let Some(placement) = &outcome.placement {
            let kernels: Vec<String> = placement
                .iter()
                .map(|(provider, n)| format!("{provider} {n}"))
                .collect();
            outln!("kernels per provider: {}", kernels.join(", "))?;
        }
        if let (Some(input), Some(output)) = (outcome.input_copy_ms, outcome.output_copy_ms) {
            outln!(
                "copies (not in the timed runs): inputs to the device {input:.4} ms, outputs back {output:.4} ms"
            )?;
        }
    }
    Ok(())
}
