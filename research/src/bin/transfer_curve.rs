//! How well a latency table transfers to a "new device" from N networks measured on it (issue 42): the
//! source table is another device's (or another input size's), the target is a validation report whose
//! networks were measured end to end on the new one. For each N, `--draws` random splits of the report's
//! networks: N of the first `pool` fit the transfer (`hsconas_devices::transfer::fit_transfer`), the
//! last `--test` are predicted; the metrics of those predictions (within ±5% and ±10%, Kendall tau,
//! RMSPE), the level chosen and the fit's own held-out estimate of its error, per draw and as medians.
//! `research/scripts/transfer-curve.sh` runs it on the committed tables and reports. With
//! `--pieces-from` (a full profile of the target), the transfer fitted on `--pieces-networks` networks
//! is also refined by K profiled pieces for each `--pieces` K, the full profile's entries standing in for
//! the pieces' measurements, chosen as `hsconas profile --profile-pieces` chooses them
//! (`hsconas_devices::transfer_refine::refine`).
//!
//! `cargo run -p hsconas-research --bin transfer_curve -- --help`

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use hsconas_devices::metrics::PredictorAccuracy;
use hsconas_devices::transfer::{fit_transfer, MeasuredNetwork, TransferLevel};
use hsconas_devices::transfer_refine::{refine, Unprofiled};
use hsconas_devices::LatencyTable;
use hsconas_models::build::Piece;
use hsconas_models::Arch;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(about = "The N-curve of a latency transfer from committed tables and validation reports")]
struct Cli {
    /// The source table (another device's, or another input size's).
    #[arg(long, value_name = "FILE")]
    source: PathBuf,
    /// A validation report (`hsconas latency validate --json`, uncompressed) whose networks were
    /// measured on the target.
    #[arg(long, value_name = "FILE")]
    report: PathBuf,
    /// Numbers of networks the transfer is fitted on.
    #[arg(long, value_delimiter = ',', default_value = "10,20,30,50,100")]
    sizes: Vec<usize>,
    /// Random splits per size.
    #[arg(long, default_value_t = 20)]
    draws: usize,
    /// Networks predicted in every split (the last of the shuffled report).
    #[arg(long, default_value_t = 100)]
    test: usize,
    /// Seed of the splits.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Input size of the report's networks (the `per-stage-macs` level counts the pieces' MACs there).
    #[arg(long, value_name = "S")]
    input_size: usize,
    /// Classes of the report's networks.
    #[arg(long, value_name = "N")]
    classes: usize,
    /// A full profile of the target: its entries stand in for profiled pieces.
    #[arg(long, value_name = "FILE")]
    pieces_from: Option<PathBuf>,
    /// Most pieces profiled (with --pieces-from); the space has 326 shapes, one piece each at most.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "48,96,144,192,240,288,326"
    )]
    pieces: Vec<usize>,
    /// Networks the transfer is fitted on before the pieces (with --pieces-from).
    #[arg(long, default_value_t = 30)]
    pieces_networks: usize,
    /// What a piece with no profiled twin is estimated from (with --pieces-from): `kin` (the ratios
    /// profiled on its kin, as `hsconas profile` does) or `transfer` (the networks' transfer factors).
    #[arg(long, default_value = "kin", value_parser = ["transfer", "kin"])]
    unprofiled: String,
    /// The report's networks ran with INT8 layers and the source is FP32 (the FP32 -> INT8 pair): the
    /// transfer is fitted and judged on each network's FP32 twin's source values.
    #[arg(long)]
    as_fp32: bool,
}

/// The part of a validation report this reads.
#[derive(Debug, Deserialize)]
struct Report {
    networks: Vec<ReportNetwork>,
}

#[derive(Debug, Deserialize)]
struct ReportNetwork {
    arch: Arch,
    measured_ms: f64,
}

#[derive(Debug, Serialize)]
struct Draw {
    level: TransferLevel,
    penalty: f64,
    /// The fit's leave-one-out estimate of its error, RMSPE percent.
    estimated_rmspe: f64,
    /// On the held-out networks.
    test: PredictorAccuracy,
}

#[derive(Debug, Serialize)]
struct SizeSummary {
    networks: usize,
    median_within_5_percent: f64,
    median_within_10_percent: f64,
    median_kendall_tau: f64,
    median_rmspe_percent: f64,
    median_estimated_rmspe: f64,
    /// How often each level was chosen.
    levels: std::collections::BTreeMap<String, usize>,
    draws: Vec<Draw>,
}

/// The transfer on `networks` networks refined by at most `pieces` profiled pieces (`profiled`: as many
/// as there were, in the draw with the most).
#[derive(Debug, Serialize)]
struct PiecesSummary {
    networks: usize,
    pieces: usize,
    profiled: usize,
    median_within_5_percent: f64,
    median_within_10_percent: f64,
    median_kendall_tau: f64,
    median_rmspe_percent: f64,
    median_estimated_rmspe: f64,
    draws: Vec<Draw>,
}

#[derive(Debug, Serialize)]
struct Output {
    source: PathBuf,
    report: PathBuf,
    test_networks: usize,
    seed: u64,
    /// The networks' INT8 layers were read as FP32 for the source (`--as-fp32`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    as_fp32: bool,
    /// The source table's plain sum on every draw's held-out networks (no transfer): the median.
    untransferred_median_within_10_percent: f64,
    untransferred_median_kendall_tau: f64,
    sizes: Vec<SizeSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pieces_from: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unprofiled: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pieces: Vec<PiecesSummary>,
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    hsconas_devices::drift::median(&values.collect::<Vec<f64>>())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let source = LatencyTable::load(&cli.source)?;
    let target = hsconas_models::NetConfig {
        input_size: cli.input_size,
        classes: cli.classes,
        ..source.provenance.net_config()
    };
    let text = std::fs::read_to_string(&cli.report)
        .with_context(|| format!("reading {}", cli.report.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a validation report", cli.report.display()))?;
    let networks: Vec<MeasuredNetwork> = report
        .networks
        .into_iter()
        .map(|n| MeasuredNetwork {
            arch: if cli.as_fp32 {
                n.arch.as_fp32()
            } else {
                n.arch
            },
            measured_ms: n.measured_ms,
        })
        .collect();
    let largest = cli.sizes.iter().copied().max().unwrap_or(0);
    anyhow::ensure!(
        largest + cli.test <= networks.len(),
        "{} fitting networks and {} held out need {} networks; the report has {}",
        largest,
        cli.test,
        largest + cli.test,
        networks.len()
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cli.seed);
    let splits: Vec<Vec<usize>> = (0..cli.draws)
        .map(|_| {
            let mut order: Vec<usize> = (0..networks.len()).collect();
            order.shuffle(&mut rng);
            order
        })
        .collect();
    let held_out = |order: &[usize]| order[order.len() - cli.test..].to_vec();
    let accuracy = |predicted: &[f64], idx: &[usize]| {
        let measured: Vec<f64> = idx.iter().map(|&i| networks[i].measured_ms).collect();
        PredictorAccuracy::of(predicted, &measured)
    };
    let plain: Vec<PredictorAccuracy> = splits
        .iter()
        .map(|order| {
            let test = held_out(order);
            let sums = test
                .iter()
                .map(|&i| source.table_sum_ms(&networks[i].arch))
                .collect::<Result<Vec<f64>, _>>()?;
            Ok(accuracy(&sums, &test))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut sizes = Vec::new();
    for &n in &cli.sizes {
        let mut draws = Vec::new();
        for order in &splits {
            let fitting: Vec<MeasuredNetwork> =
                order[..n].iter().map(|&i| networks[i].clone()).collect();
            let fit = fit_transfer(&source, &target, &fitting)?;
            let test = held_out(order);
            let predicted = test
                .iter()
                .map(|&i| fit.predict_ms(&source, &networks[i].arch))
                .collect::<Result<Vec<f64>, _>>()?;
            draws.push(Draw {
                level: fit.level,
                penalty: fit.penalty,
                estimated_rmspe: fit.held_out_rmspe,
                test: accuracy(&predicted, &test),
            });
        }
        let mut levels = std::collections::BTreeMap::new();
        for d in &draws {
            *levels
                .entry(
                    serde_json::to_value(d.level)?
                        .as_str()
                        .unwrap_or("?")
                        .to_string(),
                )
                .or_insert(0) += 1;
        }
        eprintln!(
            "N = {n}: within ±10% {:.1}%, tau {:.3} (medians over {} draws)",
            median(draws.iter().map(|d| d.test.within_10_percent)),
            median(draws.iter().map(|d| d.test.kendall_tau)),
            draws.len()
        );
        sizes.push(SizeSummary {
            networks: n,
            median_within_5_percent: median(draws.iter().map(|d| d.test.within_5_percent)),
            median_within_10_percent: median(draws.iter().map(|d| d.test.within_10_percent)),
            median_kendall_tau: median(draws.iter().map(|d| d.test.kendall_tau)),
            median_rmspe_percent: median(draws.iter().map(|d| d.test.rmspe_percent)),
            median_estimated_rmspe: median(draws.iter().map(|d| d.estimated_rmspe)),
            levels,
            draws,
        });
    }
    let mut pieces = Vec::new();
    if let Some(path) = &cli.pieces_from {
        let full = LatencyTable::load(path)?;
        let n = cli.pieces_networks;
        let unprofiled = match cli.unprofiled.as_str() {
            "transfer" => Unprofiled::TransferFactors,
            _ => Unprofiled::KinRatios,
        };
        for &k in &cli.pieces {
            let mut draws = Vec::new();
            let mut profiled = 0;
            for order in &splits {
                let fitting: Vec<MeasuredNetwork> =
                    order[..n].iter().map(|&i| networks[i].clone()).collect();
                let fit = fit_transfer(&source, &target, &fitting)?;
                let mut revealed = BTreeMap::new();
                let refined = refine(
                    &source,
                    (&fitting, &[]),
                    fit,
                    k,
                    None,
                    unprofiled,
                    |todo: &[Piece]| {
                        for p in todo {
                            revealed.insert(p.key(), full.entry_ms(p)?);
                        }
                        anyhow::Ok(revealed.clone())
                    },
                )?;
                let test = held_out(order);
                let predicted = test
                    .iter()
                    .map(|&i| refined.fit.predict_ms(&refined.source, &networks[i].arch))
                    .collect::<Result<Vec<f64>, _>>()?;
                profiled = profiled.max(refined.measured.len());
                draws.push(Draw {
                    level: refined.fit.level,
                    penalty: refined.fit.penalty,
                    estimated_rmspe: refined.fit.held_out_rmspe,
                    test: accuracy(&predicted, &test),
                });
            }
            eprintln!(
                "N = {n}, {k} pieces: within ±10% {:.1}%, tau {:.3} (medians over {} draws)",
                median(draws.iter().map(|d| d.test.within_10_percent)),
                median(draws.iter().map(|d| d.test.kendall_tau)),
                draws.len()
            );
            pieces.push(PiecesSummary {
                networks: n,
                pieces: k,
                profiled,
                median_within_5_percent: median(draws.iter().map(|d| d.test.within_5_percent)),
                median_within_10_percent: median(draws.iter().map(|d| d.test.within_10_percent)),
                median_kendall_tau: median(draws.iter().map(|d| d.test.kendall_tau)),
                median_rmspe_percent: median(draws.iter().map(|d| d.test.rmspe_percent)),
                median_estimated_rmspe: median(draws.iter().map(|d| d.estimated_rmspe)),
                draws,
            });
        }
    }
    let output = Output {
        source: cli.source,
        report: cli.report,
        test_networks: cli.test,
        seed: cli.seed,
        as_fp32: cli.as_fp32,
        untransferred_median_within_10_percent: median(plain.iter().map(|a| a.within_10_percent)),
        untransferred_median_kendall_tau: median(plain.iter().map(|a| a.kendall_tau)),
        sizes,
        unprofiled: cli.pieces_from.is_some().then(|| cli.unprofiled.clone()),
        pieces_from: cli.pieces_from,
        pieces,
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
