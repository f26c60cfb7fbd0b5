//! `hsconas latency predict|validate|throughput`.

use hsconas_foundation::outln;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_latency::validation::{DriftReport, ValidationReport};
use hsconas_latency::{validate, ValidateJob};
use hsconas_models::{Arch, SearchSpace};
use hsconas_vocabulary::Precision;

use super::arch::read_arch_file;
use hsconas_plots::{Scatter, Series, BLUE, ORANGE};
use rand::SeedableRng;
use serde_json::json;

use super::measure_args::TableDeviceArgs;

#[derive(Debug, Subcommand)]
pub enum LatencyCommand {
    /// Predict the latency of an architecture from a table: table sum + correction, with the parts.
    Predict(PredictArgs),
    /// Measure held-out networks end to end and report how well the table predicts them.
    Validate(ValidateArgs),
    /// How many predictions per second the compiled model makes on this machine.
    Throughput(ThroughputArgs),
    /// Where INT8 pays on the device: each block's FP32/INT8 speed-up in a mixed-precision table, per
    /// layer, operator and channel scale.
    Precision(super::latency_precision::PrecisionArgs),
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The latency table.
    #[arg(long, value_name = "FILE")]
    table: PathBuf,
    /// Architecture string (20 comma-separated `op:scale` entries; `op:scale@int8` marks an INT8 layer,
    /// which needs a mixed-precision table).
    #[arg(long, value_name = "STR")]
    arch: String,
    /// Print JSON (`predicted_ms`, `table_sum_ms`, `bias_ms`, `layers`, ...; `uncertainty_ms` for a
    /// transferred table).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The calibrated latency table; a summary of the validation is stored in it.
    #[arg(long, value_name = "FILE")]
    table: PathBuf,
    /// Held-out random networks (K), never the calibration ones.
    #[arg(long, default_value_t = 200, value_name = "K")]
    samples: usize,
    /// Seed the held-out networks are drawn with.
    #[arg(long, default_value_t = 2)]
    seed: u64,
    /// Measure the architectures of this file instead of random ones (one per line, or tab-separated
    /// with the architecture last, as `hsconas estimate --archs` reads); the table's stored validation
    /// summary is left alone.
    #[arg(long, value_name = "FILE", conflicts_with = "samples")]
    archs: Option<PathBuf>,
    /// Report (JSON). Default: next to the table, `<table>.validation.json` (`<table>.networks.json`
    /// with --archs).
    #[arg(long, value_name = "REPORT.json")]
    out: Option<PathBuf>,
    /// Predicted-vs-measured scatter (`.png` or `.svg`); latency vs MACs goes next to it as `<name>-macs`.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    device: TableDeviceArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ThroughputArgs {
    /// The latency table.
    #[arg(long, value_name = "FILE")]
    table: PathBuf,
    /// Predictions to time.
    #[arg(long, default_value_t = 10_000_000, value_name = "N")]
    count: usize,
}

pub fn run(cmd: LatencyCommand) -> anyhow::Result<()> {
    match cmd {
        LatencyCommand::Predict(args) => predict(args),
        LatencyCommand::Validate(args) => run_validate(args),
        LatencyCommand::Throughput(args) => throughput(args),
        LatencyCommand::Precision(args) => super::latency_precision::run(args),
    }
}

fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let arch: Arch = args.arch.parse().context("invalid --arch")?;
    let table = LatencyTable::load(&args.table)?;
    table.check_precisions(&arch)?;
    super::machine_check::check(&table, &args.table, &super::machine_check::this_machine())?;
    let model = LatencyModel::from_table(&table)?;
    let p = model.explain(&arch);
    // A transferred table's error on networks it was not fitted on: measured on a later round where
    // one was, else the leave-one-out estimate; the larger of the two when both exist.
    let uncertainty = table.provenance.transfer.as_ref().map(|t| {
        let percent = t
            .checked_rmspe
            .map_or(t.held_out_rmspe, |c| c.max(t.held_out_rmspe));
        (p.predicted_ms * percent / 100.0, percent, t.networks)
    });
    if args.json {
        let mut value = serde_json::to_value(&p)?;
        value["arch"] = json!(arch.to_string());
        value["device"] = json!(table.provenance.device);
        value["calibrated"] = json!(table.calibration.is_some());
        value["transferred"] = json!(uncertainty.is_some());
        if let Some((ms, percent, _)) = uncertainty {
            value["uncertainty_ms"] = json!(ms);
            value["uncertainty_percent"] = json!(percent);
        }
        outln!("{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    outln!("{arch} on {}", table.provenance.device)?;
    outln!("  stem      {:>9.4} ms", p.stem_ms)?;
    for l in &p.layers {
        let choice = match l.precision {
            Precision::Fp32 => l.choice.to_string(),
            precision => format!("{}@{precision}", l.choice),
        };
        outln!("  L{:<2} {:<19} {:>9.4} ms", l.layer, choice, l.ms)?;
    }
    outln!("  head      {:>9.4} ms", p.head_ms)?;
    outln!("table sum   {:>9.4} ms", p.table_sum_ms)?;
    if table.calibration.is_none() {
        outln!(
            "(not calibrated: run `hsconas calibrate --table {}`)",
            args.table.display()
        )?;
    }
    outln!("correction  {:>+9.4} ms", p.bias_ms)?;
    outln!("predicted   {:>9.4} ms", p.predicted_ms)?;
    if let Some((ms, percent, networks)) = uncertainty {
        outln!(
            "uncertainty {ms:>9.4} ms (±{percent:.2}%: the table was transferred from another \
             device's; its error on networks it had not seen, from the {networks} networks measured)"
        )?;
    }
    Ok(())
}

fn run_validate(args: ValidateArgs) -> anyhow::Result<()> {
    let (mut table, measurer) = args.device.open(&args.table)?;
    let networks = args.archs.as_deref().map(read_arch_file).transpose()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let mut name = args.table.file_name().unwrap_or_default().to_os_string();
        name.push(if networks.is_some() {
            ".networks.json"
        } else {
            ".validation.json"
        });
        args.table.with_file_name(name)
    });
    eprintln!(
        "measuring {} networks end to end on {}",
        networks.as_ref().map_or(args.samples, Vec::len),
        measurer.place()
    );
    let job = ValidateJob {
        samples: args.samples,
        seed: args.seed,
        group: args.device.group,
        progress: !args.json,
        drift: args.device.drift_policy()?,
        networks,
    };
    let report = validate(&mut table, &args.table, &measurer, &job, &out)?;
    if let Some(plot) = &args.plot {
        draw_plots(&report, plot)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_table(&report)?;
        outln!("report in {}", out.display())?;
    }
    Ok(())
}

fn print_table(report: &ValidationReport) -> std::io::Result<()> {
    outln!(
        "{} held-out networks on {} ({:?}; calibration: {} networks)",
        report.networks.len(),
        report.device,
        report.statistic,
        report.calibration_samples
    )?;
    outln!(
        "{:<15} {:>9} {:>8} {:>9} {:>9} {:>7} {:>7} {:>8} {:>8}",
        "predictor",
        "RMSE ms",
        "RMSPE %",
        "MAE ms",
        "max ms",
        "±5 %",
        "±10 %",
        "Kendall",
        "Spearman"
    )?;
    for row in &report.predictors {
        let a = &row.accuracy;
        outln!(
            "{:<15} {:>9.4} {:>8.2} {:>9.4} {:>9.4} {:>7.1} {:>7.1} {:>8.3} {:>8.3}{}",
            row.name,
            a.rmse_ms,
            a.rmspe_percent,
            a.mae_ms,
            a.max_error_ms,
            a.within_5_percent,
            a.within_10_percent,
            a.kendall_tau,
            a.spearman_rho,
            if row.active { "  (in use)" } else { "" }
        )?;
    }
    match &report.drift {
        Some(drift) => print_drift(
            drift,
            report.active().map(|row| row.name.as_str()),
            &report.table,
        )?,
        None => outln!(
            "drift: the table records no reference network, so these measurements are not normalised"
        )?,
    }
    if let Some(gains) = &report.int8 {
        let groups = |groups: &[hsconas_devices::GainGroup]| {
            groups
                .iter()
                .map(|g| format!("{} {:.2}x", g.name, g.median))
                .collect::<Vec<_>>()
                .join(", ")
        };
        outln!(
            "INT8 speed-up of the table's blocks (FP32 entry / INT8 entry): median {:.2}x, INT8 faster in \
             {} of {}; per operator {}; per layer {} (`hsconas latency precision` for more)",
            gains.all.median,
            gains.all.int8_faster,
            gains.all.blocks,
            groups(&gains.by_op),
            groups(&gains.by_layer)
        )?;
    }
    Ok(())
}

/// The reference network's movement and, under each drift model, the correction a calibration would
/// choose with the calibration networks normalised that way (this build's candidates and rule), and a
/// note when, under the table's own model, that is not the correction the table holds (`in_use`; e.g.
/// a calibration by an older hsconas, without the corrections this one fits) with the command that
/// chooses again (`table` is the table's file).
fn print_drift(drift: &DriftReport, in_use: Option<&str>, table: &Path) -> std::io::Result<()> {
    if let Some(s) = &drift.summary {
        outln!(
            "drift: reference network {:.3} ms in the table's state; during this run the device ran at \
             {:.3}x it (median; {:.3} to {:.3} over {} groups)",
            drift.reference_ms,
            s.median_factor,
            s.min_factor,
            s.max_factor,
            s.groups
        )?;
    }
    outln!(
        "{:<10} {:<15} {:>8} {:>7} {:>7} {:>8}",
        "drift",
        "chosen",
        "RMSPE %",
        "±5 %",
        "±10 %",
        "Kendall"
    )?;
    for rows in &drift.by_model {
        if let Some(row) = rows.predictors.iter().find(|p| p.active) {
            let a = &row.accuracy;
            outln!(
                "{:<10} {:<15} {:>8.2} {:>7.1} {:>7.1} {:>8.3}{}",
                rows.model.name(),
                row.name,
                a.rmspe_percent,
                a.within_5_percent,
                a.within_10_percent,
                a.kendall_tau,
                if rows.model == drift.model {
                    "  (the table's)"
                } else {
                    ""
                }
            )?;
        }
    }
    let own = drift.by_model.iter().find(|rows| rows.model == drift.model);
    let chosen = own.and_then(|rows| rows.predictors.iter().find(|p| p.active));
    if let (Some(chosen), Some(in_use)) = (chosen, in_use) {
        if chosen.name != in_use {
            outln!(
                "note: the table's calibration uses `{in_use}`, but calibrating its networks again would \
                 choose `{}` (e.g. a calibration by an older hsconas, without the corrections this one fits): \
                 run `hsconas calibrate --table {} --refit` (it measures nothing)",
                chosen.name,
                table.display()
            )?;
        }
    }
    Ok(())
}

/// The predicted-vs-measured scatter at `path` and latency vs MACs next to it.
fn draw_plots(report: &ValidationReport, path: &Path) -> anyhow::Result<()> {
    let measured: Vec<f64> = report.networks.iter().map(|n| n.measured_ms).collect();
    let row = |name: &str| report.predictors.iter().find(|p| p.name == name);
    let mut series = Vec::new();
    if let Some(paper) = row("table + B") {
        series.push(Series {
            label: "table + B (paper)",
            color: BLUE,
            points: paper
                .predicted_ms
                .iter()
                .copied()
                .zip(measured.iter().copied())
                .collect(),
        });
    }
    if let Some(linear) = row("table, linear").filter(|r| r.active) {
        series.push(Series {
            label: "table, linear fit",
            color: ORANGE,
            points: linear
                .predicted_ms
                .iter()
                .copied()
                .zip(measured.iter().copied())
                .collect(),
        });
    }
    let title = format!(
        "{}: predicted vs measured, {} held-out networks",
        report.device,
        measured.len()
    );
    Scatter {
        title: &title,
        x_label: "predicted latency (ms)",
        y_label: "measured latency (ms)",
        series,
        identity: Some(0.1),
    }
    .draw(path)?;
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    let macs_path = path.with_file_name(format!("{stem}-macs.{ext}"));
    let title = format!("{}: measured latency vs MACs", report.device);
    Scatter {
        title: &title,
        x_label: "MACs per sample (millions)",
        y_label: "measured latency (ms)",
        series: vec![Series {
            label: "held-out networks",
            color: BLUE,
            points: report
                .networks
                .iter()
                .map(|n| (n.macs as f64 / 1e6, n.measured_ms))
                .collect(),
        }],
        identity: None,
    }
    .draw(&macs_path)
    .with_context(|| format!("drawing {}", macs_path.display()))?;
    eprintln!("plots: {} and {}", path.display(), macs_path.display());
    if let Some(drift) = &report.drift {
        let drift_path = path.with_file_name(format!("{stem}-drift.{ext}"));
        let title = format!(
            "{}: reference network during the validation ({:.3} ms in the table's state)",
            report.device, drift.reference_ms
        );
        let seconds = drift.trace.points.iter().map(|p| p.seconds);
        let raw = drift
            .trace
            .points
            .iter()
            .map(|p| p.reference_ms / drift.reference_ms);
        let smoothed = drift.model.factors(&drift.trace, drift.reference_ms);
        Scatter {
            title: &title,
            x_label: "seconds",
            y_label: "reference latency / table state",
            series: vec![
                Series {
                    label: "each group",
                    color: BLUE,
                    points: seconds.clone().zip(raw).collect(),
                },
                Series {
                    label: "smoothed (the normalisation)",
                    color: ORANGE,
                    points: seconds.zip(smoothed).collect(),
                },
            ],
            identity: None,
        }
        .draw(&drift_path)
        .with_context(|| format!("drawing {}", drift_path.display()))?;
        eprintln!("drift trace: {}", drift_path.display());
    }
    Ok(())
}

fn throughput(args: ThroughputArgs) -> anyhow::Result<()> {
    let table = LatencyTable::load(&args.table)?;
    let model = LatencyModel::from_table(&table)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let space = SearchSpace::full();
    let archs: Vec<Arch> = (0..1024).map(|_| space.sample(&mut rng)).collect();
    let start = Instant::now();
    let mut checksum = 0.0;
    for i in 0..args.count {
        checksum += model.predict_ms(std::hint::black_box(&archs[i % archs.len()]));
    }
    let seconds = start.elapsed().as_secs_f64();
    outln!(
        "{} predictions in {seconds:.3} s: {:.3e} predictions/s (checksum {checksum:.1})",
        args.count,
        args.count as f64 / seconds
    )?;
    Ok(())
}
