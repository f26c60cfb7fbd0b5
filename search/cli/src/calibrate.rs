//! `hsconas calibrate`: the bias term of the latency model (paper Eq. 3).

use hsconas_foundation::outln;
use std::path::{Path, PathBuf};

use clap::Args;
use hsconas_devices::{Calibration, LatencyTable};
use hsconas_latency::{calibrate, CalibrateJob};
use serde_json::json;

use super::measure_args::TableDeviceArgs;

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// The latency table (from `hsconas profile`); the calibration is stored in it.
    #[arg(long, value_name = "FILE")]
    pub table: PathBuf,
    /// Random networks measured end to end (M).
    #[arg(long, default_value_t = CalibrateArgs::DEFAULT_SAMPLES, value_name = "M")]
    pub samples: usize,
    /// Seed the networks are drawn with.
    #[arg(long, default_value_t = CalibrateArgs::DEFAULT_SEED)]
    pub seed: u64,
    /// Measure nothing: choose the correction again from the networks the table's calibration measured
    /// (after an upgrade that adds corrections, e.g. the INT8 terms of mixed-precision tables). The
    /// table's validation summary is dropped, as after any calibration.
    #[arg(long, conflicts_with_all = ["samples", "seed"])]
    pub refit: bool,
    #[command(flatten)]
    pub device: TableDeviceArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl CalibrateArgs {
    /// `--samples` when absent.
    pub const DEFAULT_SAMPLES: usize = 50;
    /// `--seed` when absent.
    pub const DEFAULT_SEED: u64 = 1;

    /// Calibrating `table` with every other flag at its default.
    #[cfg(feature = "train")] // only `hsconas run` builds it
    pub fn new(table: PathBuf) -> CalibrateArgs {
        CalibrateArgs {
            table,
            samples: CalibrateArgs::DEFAULT_SAMPLES,
            seed: CalibrateArgs::DEFAULT_SEED,
            refit: false,
            device: TableDeviceArgs::default(),
            json: false,
        }
    }
}

pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    let table = if args.refit {
        refit(&args.table)?
    } else {
        let (mut table, measurer) = args.device.open(&args.table)?;
        eprintln!(
            "measuring {} networks end to end on {}",
            args.samples,
            measurer.place()
        );
        let job = CalibrateJob {
            samples: args.samples,
            seed: args.seed,
            group: args.device.group,
            progress: !args.json,
            drift: args.device.drift_policy()?,
        };
        calibrate(&mut table, &args.table, &measurer, &job)?;
        table
    };
    let c = table
        .calibration
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("calibration missing after calibrate"))?;
    let drift = table
        .reference
        .as_ref()
        .zip(c.trace.as_ref())
        .and_then(|(r, t)| t.summary(r.model, r.latency_ms));
    let drift_json = drift.map(|s| json!({ "summary": s, "trace": c.trace }));
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "table": args.table,
                "bias_ms": c.bias_ms,
                "linear": c.linear,
                "int8_count": c.int8_count,
                "int8_stages": c.int8_stages,
                "correction": c.correction,
                "held_out_rmse": c.held_out_rmse,
                "samples": c.samples,
                "drift": drift_json,
            }))?
        )?;
    } else {
        let mean = |f: fn(&hsconas_devices::NetworkSample) -> f64| {
            c.samples.iter().map(f).sum::<f64>() / c.samples.len() as f64
        };
        outln!(
            "{} networks: mean measured {:.3} ms, mean table sum {:.3} ms, B = {:+.4} ms",
            c.samples.len(),
            mean(|s| s.measured_ms),
            mean(|s| s.table_sum_ms),
            c.bias_ms
        )?;
        match drift {
            Some(d) => outln!(
                "drift: the device ran at {:.3}x the table's reference state (median; {:.3} to {:.3}); \
                 measurements normalised to it, raw values kept in the table",
                d.median_factor,
                d.min_factor,
                d.max_factor
            )?,
            None => outln!(
                "drift: the table has no reference network, so measurements are not normalised \
                 (profile it again to record one)"
            )?,
        }
        if let Some(fit) = c.linear {
            outln!(
                "linear fit: measured = {:.4} x table sum {:+.4} ms",
                fit.scale,
                fit.offset_ms
            )?;
        }
        if let Some(fit) = c.int8_count {
            outln!(
                "INT8 fit: measured = table sum {:+.4} ms {:+.4} ms per INT8 layer",
                fit.offset_ms,
                fit.int8_ms_per_stage[0]
            )?;
        }
        if let Some(fit) = c.int8_stages {
            let [s1, s2, s3, s4] = fit.int8_ms_per_stage;
            outln!(
                "INT8 per-stage fit: measured = table sum {:+.4} ms, per INT8 layer of stage 1..4 \
                 {s1:+.4} / {s2:+.4} / {s3:+.4} / {s4:+.4} ms",
                fit.offset_ms
            )?;
        }
        if let Some(e) = c.held_out_rmse {
            let int8 = match (e.int8_count_ms, e.int8_stages_ms) {
                (Some(count), Some(stages)) => {
                    format!(", INT8 term {count:.4} ms, INT8 per stage {stages:.4} ms")
                }
                _ => String::new(),
            };
            outln!(
                "leave-one-out RMSE: table sum {:.4} ms, + B {:.4} ms, line {:.4} ms{int8}",
                e.none_ms,
                e.bias_ms,
                e.linear_ms
            )?;
        }
        outln!(
            "predictions use {} (the simplest within one standard error of the lowest leave-one-out \
             error); stored in {}",
            c.correction.describe(),
            args.table.display()
        )?;
        outln!(
            "next: hsconas latency validate --table {}",
            args.table.display()
        )?;
    }
    Ok(())
}

/// `--refit`: the table's calibration chosen again from its own networks, saved in place.
fn refit(path: &Path) -> anyhow::Result<LatencyTable> {
    let mut table = LatencyTable::load(path)?;
    let old = table.calibration.take().ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no calibration to refit: run `hsconas calibrate --table {}` first",
            path.display(),
            path.display()
        )
    })?;
    if old.samples.is_empty() {
        anyhow::bail!(
            "{}'s calibration holds no measured networks",
            path.display()
        );
    }
    eprintln!(
        "refitting the correction from the {} networks the calibration measured (measuring nothing)",
        old.samples.len()
    );
    let mut calibration = Calibration::from_samples(old.seed, old.requested, old.samples);
    calibration.trace = old.trace;
    table.calibration = Some(calibration);
    table.validation = None;
    table.save(path)?;
    Ok(table)
}
