//! The accuracy ground truth's bookkeeping (`research/scripts/ground-truth.sh` runs it):
//!
//! - `collect`: the architecture list, the finished trainings and the end-to-end measurements become one
//!   file, `ground-truth.json` (read by `hsconas_nas::GroundTruth`);
//! - `predict`: the fitted predictor's held-out scores of the set (`hsconas_nas::predictor`: each trained
//!   network predicted by a ridge regression fitted on the others), as one more estimator's scores;
//! - `proof`: the search-level proof from a collected proof list (groups `winner`, `draw`, `uniform`):
//!   the winner's trained accuracy against the draws measured near its latency and the uniform scaling
//!   (`research/scripts/search-proof.sh`);
//! - `score`: estimator scores (`hsconas estimate --json` files) against the trained accuracy: Kendall's
//!   tau, Spearman's rho, the top-3 regret and the cost per network, over the whole set and within the
//!   equal-latency group, next to the seed-to-seed noise ceiling.
//!
//! `cargo run -p hsconas-research --bin ground_truth -- collect --help`

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_export::ModelInfo;
use hsconas_latency::ValidationReport;
use hsconas_models::{build, Arch, NetConfig};
use hsconas_nas::predictor::{self, FittedOn, Predictor};
use hsconas_nas::{
    ArchScore, EstimatorScores, GroundTruth, RankingScore, TrainedNetwork, TrainedRun,
};
use hsconas_plots::{Scatter, Series, BLUE, ORANGE};
use hsconas_research::measurement::run_normalised_ms;
use hsconas_research::proof::{ProofEntry, SearchProof};
use hsconas_research::scoring::{rank_average, score_estimators, ScoreReport};
use serde::Serialize;

/// The images the ground truth trains on (`research/scripts/ground-truth.sh`'s DATA), as a predictor
/// file records them.
const GROUND_TRUTH_DATA: &str =
    "cifar10-jpeg.tar.gz (CIFAR-10; 1,000 training images per class, 10% of them for validation)";

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Step,
}

#[derive(Debug, Subcommand)]
enum Step {
    /// Assemble ground-truth.json.
    Collect {
        /// The architecture list (`id<TAB>group<TAB>arch` with a header).
        #[arg(long)]
        list: PathBuf,
        /// Folders `<id>-s<seed>/` holding each finished training's model.json.
        #[arg(long)]
        runs: PathBuf,
        /// The table the set was selected with (predicted latency).
        #[arg(long)]
        table: PathBuf,
        /// `hsconas latency validate --archs` reports of the set (measured latency), if there are any;
        /// repeatable, each run measuring the whole list: every run is divided by its own median over the
        /// list before each network's median is taken (the device's speed drifts between runs).
        #[arg(long)]
        measured: Vec<PathBuf>,
        /// The training recipe, in words.
        #[arg(long)]
        recipe: String,
        /// The machine, in words.
        #[arg(long)]
        machine: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Held-out predictions of the fitted predictor, as `hsconas estimate --json` scores.
    Predict {
        /// ground-truth.json.
        #[arg(long)]
        truth: PathBuf,
        /// The table the set was selected with (its network layout, input size and classes).
        #[arg(long)]
        table: PathBuf,
        /// Output: the scores (estimator `predictor`).
        #[arg(long)]
        out: PathBuf,
        /// Also write the model fitted on every trained network (feature names, weights).
        #[arg(long, value_name = "FILE")]
        model: Option<PathBuf>,
    },
    /// Judge a search's winner against the draws of its measured latency (`proof.json`).
    Proof {
        /// The collected proof list (`collect` of a list with groups winner, draw, uniform).
        #[arg(long)]
        truth: PathBuf,
        /// The search's latency target, ms.
        #[arg(long)]
        target_ms: f64,
        /// Largest |measured / winner's measured - 1| of a compared draw.
        #[arg(long, default_value_t = 0.03)]
        tolerance: f64,
        /// Only print the trainings still needed, one `id seed` per line.
        #[arg(long)]
        missing: bool,
        /// Output file.
        #[arg(long, required_unless_present = "missing")]
        out: Option<PathBuf>,
    },
    /// Score estimators against the ground truth.
    Score {
        /// ground-truth.json.
        #[arg(long)]
        truth: PathBuf,
        /// `hsconas estimate --json` outputs, one per estimator.
        #[arg(long, num_args = 1.., required = true)]
        scores: Vec<PathBuf>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Also draw each estimator's score against the trained accuracy, `<DIR>/<estimator>.png`.
        #[arg(long, value_name = "DIR")]
        plots: Option<PathBuf>,
        /// Also score the rank average of these estimators (names joined by `+`, e.g.
        /// `short-training+macs`); repeatable.
        #[arg(long, value_name = "A+B")]
        combine: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Step::Collect {
            list,
            runs,
            table,
            measured,
            recipe,
            machine,
            out,
        } => {
            let truth = collect(&list, &runs, &table, &measured, recipe, machine)?;
            let trained = truth.trained().count();
            write(&out, &truth)?;
            eprintln!(
                "wrote {} ({} networks, {trained} trained)",
                out.display(),
                truth.networks.len()
            );
        }
        Step::Predict {
            truth,
            table,
            out,
            model,
        } => {
            let truth = GroundTruth::load(&truth)?;
            let config = LatencyTable::load(&table)?.provenance.net_config();
            let (scores, fitted) = predict(&truth, &config)?;
            write(&out, &scores)?;
            eprintln!("wrote {}", out.display());
            if let Some(path) = model {
                write(&path, &fitted)?;
                eprintln!("wrote {}", path.display());
            }
        }
        Step::Proof {
            truth,
            target_ms,
            tolerance,
            missing,
            out,
        } => {
            let proof = SearchProof::of(&GroundTruth::load(&truth)?, target_ms, tolerance)?;
            if missing {
                for (id, seed) in proof.missing_runs() {
                    println!("{id} {seed}");
                }
            } else if let Some(out) = out {
                print_proof(&proof);
                write(&out, &proof)?;
                eprintln!("wrote {}", out.display());
            }
        }
        Step::Score {
            truth,
            scores,
            out,
            plots,
            combine,
        } => {
            let truth = GroundTruth::load(&truth)?;
            let sets = with_combinations(read_scores(&scores)?, &combine)?;
            let report = score_estimators(&truth, &sets)?;
            print(&report);
            write(&out, &report)?;
            eprintln!("wrote {}", out.display());
            if let Some(dir) = plots {
                draw(&truth, &sets, &dir)?;
                eprintln!("drew {}/<estimator>.png", dir.display());
            }
        }
    }
    Ok(())
}

fn write(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    Ok(hsconas_foundation::write_atomic(
        path,
        &serde_json::to_vec_pretty(value)?,
    )?)
}

fn collect(
    list: &Path,
    runs: &Path,
    table: &Path,
    measured_paths: &[PathBuf],
    recipe: String,
    machine: String,
) -> anyhow::Result<GroundTruth> {
    let table = LatencyTable::load(table)?;
    let model = LatencyModel::from_table(&table)?;
    let config: NetConfig = table.provenance.net_config();
    let measured = measured_paths
        .iter()
        .map(|p| -> anyhow::Result<ValidationReport> {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice(&bytes).with_context(|| format!("{}: not a report", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text =
        std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
    let mut listed = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, group, arch] = fields[..] else {
            anyhow::bail!("{}: '{line}' is not id<TAB>group<TAB>arch", list.display());
        };
        let arch: Arch = arch
            .parse()
            .with_context(|| format!("{id}: architecture"))?;
        listed.push((id, group, arch));
    }
    // measurements[r][n]: network n in run r; every run measures the whole list.
    let measurements = measured
        .iter()
        .zip(measured_paths)
        .map(|(report, path)| {
            listed
                .iter()
                .map(|(id, _, arch)| {
                    let found = report.networks.iter().find(|n| &n.arch == arch);
                    found.map(|n| n.measured_ms).with_context(|| {
                        format!(
                            "{}: {id} was not measured in this run; measure the whole list again",
                            path.display()
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<f64>>>()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let levels = if measurements.is_empty() {
        vec![None; listed.len()]
    } else {
        run_normalised_ms(&measurements)?
            .into_iter()
            .map(Some)
            .collect()
    };
    let mut networks = Vec::new();
    for (n, ((id, group, arch), measured_ms)) in listed.into_iter().zip(levels).enumerate() {
        let graph = build::network(&arch, &config)?;
        networks.push(TrainedNetwork {
            id: id.to_string(),
            group: group.to_string(),
            params: graph.param_count(),
            macs: graph.macs(),
            predicted_ms: model.predict_ms(&arch),
            measured_ms,
            measurements_ms: measurements.iter().map(|run| run[n]).collect(),
            runs: finished_runs(runs, id)?,
            arch,
        });
    }
    Ok(GroundTruth {
        recipe,
        machine,
        networks,
    })
}

/// Every network's predicted accuracy, by a model that never saw it: held out (nested leave-one-out)
/// for the trained networks, fitted on all trained ones for the others.
fn predict(
    truth: &GroundTruth,
    config: &NetConfig,
) -> anyhow::Result<(EstimatorScores, Predictor)> {
    let started = std::time::Instant::now();
    let mut rows = Vec::with_capacity(truth.networks.len());
    for n in &truth.networks {
        let graph = build::network(&n.arch, config)?;
        rows.push(predictor::features(
            &n.arch,
            graph.macs(),
            graph.param_count(),
        ));
    }
    let featuring = started.elapsed().as_secs_f64() / truth.networks.len().max(1) as f64;
    let trained: Vec<usize> = (0..truth.networks.len())
        .filter(|&i| !truth.networks[i].runs.is_empty())
        .collect();
    let x: Vec<Vec<f64>> = trained.iter().map(|&i| rows[i].clone()).collect();
    let y: Vec<f64> = trained
        .iter()
        .filter_map(|&i| truth.networks[i].test_top1())
        .collect();
    let held_out = predictor::held_out_predictions(&x, &y)?;
    let mut fitted = Predictor::fit(&x, &y, *config)?;
    fitted.held_out_rmse = Some(predictor::rmse(&held_out, &y));
    fitted.fitted_on = Some(FittedOn {
        data: GROUND_TRUTH_DATA.into(),
        recipe: truth.recipe.clone(),
        results: "ground-truth.json".into(),
        trainings: truth.trained().map(|n| n.runs.len()).sum(),
    });
    let networks = truth
        .networks
        .iter()
        .enumerate()
        .map(|(i, n)| ArchScore {
            arch: n.arch.to_string(),
            score: trained
                .iter()
                .position(|&t| t == i)
                .map_or_else(|| fitted.ridge.predict(&rows[i]), |k| held_out[k]),
            seconds: featuring,
        })
        .collect();
    let scores = EstimatorScores {
        estimator: "predictor".into(),
        seed: 0,
        batch_size: 0,
        networks,
    };
    Ok((scores, fitted))
}

/// The finished trainings `<runs>/<id>-s<seed>/model.json`, by seed.
fn finished_runs(runs: &Path, id: &str) -> anyhow::Result<Vec<TrainedRun>> {
    let mut found = Vec::new();
    for seed in 0..10u64 {
        let path = runs
            .join(format!("{id}-s{seed}"))
            .join(hsconas_export::MODEL_INFO_FILE);
        if !path.exists() {
            continue;
        }
        let info = ModelInfo::load(&path)?;
        let (Some(val), Some(test)) = (info.val, info.test) else {
            anyhow::bail!("{}: no validation or test accuracy", path.display());
        };
        found.push(TrainedRun {
            seed,
            epochs: info.epochs.unwrap_or(0),
            val_top1: val.top1,
            test_top1: test.top1,
        });
    }
    Ok(found)
}

/// The estimators read, then each asked-for rank average of some of them.
fn with_combinations(
    mut sets: Vec<EstimatorScores>,
    combine: &[String],
) -> anyhow::Result<Vec<EstimatorScores>> {
    for spec in combine {
        let parts = spec
            .split('+')
            .map(|name| {
                sets.iter()
                    .find(|s| s.estimator == name)
                    .with_context(|| format!("--combine {spec}: no scores of '{name}' were given"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let combined = rank_average(&parts)?;
        sets.push(combined);
    }
    Ok(sets)
}

fn read_scores(files: &[PathBuf]) -> anyhow::Result<Vec<EstimatorScores>> {
    let mut scores = Vec::with_capacity(files.len());
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        scores.push(
            serde_json::from_slice::<EstimatorScores>(&bytes).with_context(|| {
                format!(
                    "{}: not an `hsconas estimate --json` output",
                    file.display()
                )
            })?,
        );
    }
    Ok(scores)
}

/// One scatter per estimator: its score (x) against the trained test top-1 (y), the equal-latency group
/// apart from the rest.
fn draw(truth: &GroundTruth, sets: &[EstimatorScores], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for set in sets {
        let mut equal = Vec::new();
        let mut other = Vec::new();
        for n in truth.trained() {
            let arch = n.arch.to_string();
            let (Some(s), Some(top1)) =
                (set.networks.iter().find(|s| s.arch == arch), n.test_top1())
            else {
                continue;
            };
            let point = (s.score, top1);
            if n.group == "equal" {
                equal.push(point);
            } else {
                other.push(point);
            }
        }
        let x_label = format!("{} score", set.estimator);
        let title = format!("{} against trained accuracy", set.estimator);
        Scatter {
            title: &title,
            x_label: &x_label,
            y_label: "test top-1 after training (%)",
            series: vec![
                Series {
                    label: "equal latency",
                    color: ORANGE,
                    points: equal,
                },
                Series {
                    label: "uniform, spread, skip",
                    color: BLUE,
                    points: other,
                },
            ],
            identity: None,
        }
        .draw(&dir.join(format!("{}.png", set.estimator)))?;
    }
    Ok(())
}

fn print(report: &ScoreReport) {
    let cell = |s: &Option<RankingScore>| {
        s.as_ref().map_or("-".to_string(), |s| {
            format!(
                "tau {:+.2} rho {:+.2} regret {:.2}",
                s.kendall_tau, s.spearman_rho, s.top3_regret
            )
        })
    };
    println!(
        "{} trained networks ({} of equal latency); noise ceiling: {}",
        report.networks,
        report.equal_latency_networks,
        report
            .noise_ceiling
            .as_ref()
            .map_or("-".into(), |c| format!(
                "tau {:.2} over {} networks trained twice",
                c.kendall_tau, c.networks
            ))
    );
    if let Some(c) = &report.measured_equal_latency {
        println!(
            "measured: {} networks within ±{:.0}% of {:.3} ms ({})",
            c.ids.len(),
            c.tolerance * 100.0,
            c.centre_ms,
            c.ids.join(" ")
        );
    }
    for e in &report.estimators {
        println!(
            "{:<10} {:>8.3} s  all: {:<34} equal latency: {}",
            e.estimator,
            e.seconds_per_network,
            cell(&e.all),
            cell(&e.equal_latency)
        );
    }
}

fn print_proof(proof: &SearchProof) {
    let line = |role: &str, e: &ProofEntry| {
        println!(
            "{role:<8} {:<5} {:.3} ms ({:+.1}% from the winner, {:+.1}% from T)  test top-1 {}  seeds {:?}",
            e.id,
            e.measured_ms,
            e.relative_to_winner * 100.0,
            e.relative_to_target * 100.0,
            e.test_top1.map_or("-".into(), |a| format!("{a:.2}%")),
            e.seeds
        )
    };
    println!(
        "T = {} ms; draws within ±{:.0}% of the winner's latency: {}; outside: {}",
        proof.target_ms,
        proof.tolerance * 100.0,
        proof.draws.len(),
        proof.draws_outside.len()
    );
    line("winner", &proof.winner);
    for d in &proof.draws {
        line("draw", d);
    }
    if let Some(u) = &proof.uniform {
        line("uniform", u);
    }
    match &proof.verdict {
        Some(v) => println!(
            "winner ranks {} of {}; draws' median {:.2}% ({}); winner - uniform {}{}",
            v.winner_rank,
            v.ranked,
            v.draws_median_top1,
            if v.beats_draws_median {
                "beaten"
            } else {
                "not beaten"
            },
            v.winner_minus_uniform
                .map_or("-".into(), |d| format!("{d:+.2} points")),
            if v.enough_draws {
                ""
            } else {
                " (too few draws)"
            }
        ),
        None => println!(
            "no verdict yet: {} trainings missing",
            proof.missing_runs().len()
        ),
    }
}
