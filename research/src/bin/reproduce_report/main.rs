//! The report of `research/scripts/reproduce.sh`: reads what the study wrote under OUT and writes `OUT/results.json`
//! (every number of docs/RESULTS.md), `OUT/results.md` (its tables) and `OUT/accuracy-latency.png`.
//! Networks or seeds that have not finished are left out and named on stderr.
//!
//! `cargo run --release -p hsconas --example reproduce_report -- runs/reproduce`

use std::path::{Path, PathBuf};

use anyhow::Context;
use hsconas_devices::metrics;
use hsconas_models::graph::Graph;
use hsconas_models::reference::Reference;
use hsconas_models::{build, Arch, Layout, NetConfig};
use hsconas_plots::{RGBColor, Scatter, Series};

use hsconas_export::ModelInfo;
use hsconas_foundation::intervals::difference_of_means;
use hsconas_latency::ValidationReport;
use hsconas_nas::SearchReport;
use hsconas_train::supernet_run::SubnetEvaluation;
use hsconas_vocabulary::Stats;
use serde::de::DeserializeOwned;

mod markdown;
mod results;

use markdown::markdown;
use results::{
    CifarRow, Comparison, LatencyModelRow, LatencyRow, Phase, Ranking, Results, SearchRow,
    SeedNoise, SeedResult,
};

/// The found networks: directory suffix of their search and label.
const SEARCHES: [&str; 2] = ["tight", "loose"];

const PALETTE: [RGBColor; 10] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(23, 190, 207),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
];

/// One network of `networks.txt`: its name and `hsconas train` flags.
struct Network {
    name: String,
    flags: Vec<String>,
}

impl Network {
    fn flag(&self, name: &str) -> Option<&str> {
        let i = self.flags.iter().position(|f| f == name)?;
        self.flags.get(i + 1).map(String::as_str)
    }

    fn kind(&self) -> &'static str {
        if self.name.starts_with("hsconet-") {
            "found"
        } else if self.name.starts_with("uniform-") {
            "uniform scaling"
        } else {
            "hand-designed"
        }
    }

    /// Its graph at `size` with `classes` outputs; reference networks keep the small-input stem only
    /// at small inputs (at 224 they are torchvision's).
    fn graph(&self, size: usize, classes: usize) -> anyhow::Result<Graph> {
        if let Some(text) = self.flag("--arch") {
            let arch: Arch = text.parse()?;
            let config = NetConfig {
                layout: Layout::A,
                input_size: size,
                classes,
            };
            return Ok(build::network(&arch, &config)?);
        }
        let name = self
            .flag("--reference")
            .with_context(|| format!("{}: neither --arch nor --reference", self.name))?;
        let small = size < 64 && self.flags.iter().any(|f| f == "--small-input-stem");
        Ok(name.parse::<Reference>()?.build(size, classes, small)?)
    }
}

/// A result file read through the type that wrote it; `None` (with a warning when it exists but does not
/// parse) leaves the row out.
fn read<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes)
        .map_err(|e| {
            eprintln!(
                "warning: {} is not what its writer writes ({e}); left out",
                path.display()
            )
        })
        .ok()
}

/// Latency (10th percentile, the latency tables' statistic), ms, of `name` at `size` with `backend` (`ort`,
/// `tract`): the best of the invocations `research/scripts/reproduce.sh` made.
fn latency(out: &Path, size: usize, name: &str, backend: &str) -> Option<f64> {
    read::<Stats>(&out.join(format!("latency/{size}/{name}.{backend}.json"))).map(|s| s.p10_ms)
}

/// Test and validation top-1 of every finished seed of `name`.
fn accuracies(out: &Path, name: &str) -> Vec<SeedResult> {
    let mut seeds: Vec<SeedResult> = std::fs::read_dir(out.join("train").join(name))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let seed = entry
                .file_name()
                .to_str()?
                .strip_prefix("seed-")?
                .parse()
                .ok()?;
            let info: Option<ModelInfo> = read(&entry.path().join("model.json"));
            if info.is_none() {
                eprintln!("{name}, seed {seed}: not finished");
            }
            let info = info?;
            Some(SeedResult {
                seed,
                epochs: info.epochs,
                test_top1: info.test.map(|a| a.top1),
                val_top1: info.val.map(|a| a.top1),
            })
        })
        .collect();
    seeds.sort_by_key(|s| s.seed);
    seeds
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn load_networks(out: &Path) -> anyhow::Result<Vec<Network>> {
    let path = out.join("networks.txt");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (written by the train phase)", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace().map(String::from);
            let name = words.next().unwrap_or_default();
            Network {
                name,
                flags: words.collect(),
            }
        })
        .collect())
}

/// Table A: every network trained on CIFAR-10, with its latency at input 32.
fn cifar_rows(out: &Path, networks: &[Network]) -> anyhow::Result<Vec<CifarRow>> {
    networks
        .iter()
        .map(|net| {
            let graph = net.graph(32, 10)?;
            let seeds = accuracies(out, &net.name);
            let errors: Vec<f64> = seeds
                .iter()
                .filter_map(|s| s.test_top1)
                .map(|top1| 100.0 - top1)
                .collect();
            Ok(CifarRow {
                name: net.name.clone(),
                kind: net.kind().to_string(),
                flags: net.flags.join(" "),
                params: graph.param_count(),
                macs: graph.macs(),
                ort_ms: latency(out, 32, &net.name, "ort"),
                tract_ms: latency(out, 32, &net.name, "tract"),
                seeds,
                supernet_top1: read::<SubnetEvaluation>(
                    &out.join(format!("supernet-eval/{}.json", net.name)),
                )
                .map(|e| e.top1),
                test_error_mean: mean(&errors),
                test_error_min: errors.iter().copied().reduce(f64::min),
                test_error_max: errors.iter().copied().reduce(f64::max),
            })
        })
        .collect()
}

/// Table B: the paper's Table I latency columns at input 224.
fn imagenet_rows(out: &Path, networks: &[Network]) -> anyhow::Result<Vec<LatencyRow>> {
    let references: Vec<Network> = Reference::ALL
        .iter()
        .map(|r| Network {
            name: r.name().to_string(),
            flags: vec!["--reference".into(), r.name().into()],
        })
        .collect();
    let found = networks.iter().filter(|n| n.kind() == "found");
    references
        .iter()
        .chain(found)
        .map(|net| {
            let graph = net.graph(224, 1000)?;
            Ok(LatencyRow {
                name: net.name.clone(),
                kind: net.kind().to_string(),
                params: graph.param_count(),
                macs: graph.macs(),
                ort_ms: latency(out, 224, &net.name, "ort"),
                tract_ms: latency(out, 224, &net.name, "tract"),
            })
        })
        .collect()
}

fn search_rows(out: &Path) -> Vec<SearchRow> {
    SEARCHES
        .iter()
        .filter_map(|name| {
            let r: SearchReport = read(&out.join(format!("search-{name}/search.json")))?;
            let target = r.settings.objective.target_ms;
            let winner = r.winner.as_ref()?;
            let measured = winner.measured_ms;
            Some(SearchRow {
                name: format!("hsconet-{name}"),
                target_ms: target,
                arch: winner.arch.to_string(),
                supernet_top1: winner.accuracy,
                score: winner.score,
                predicted_ms: winner.predicted_ms,
                measured_ms: measured,
                deviation_percent: measured.map(|m| 100.0 * (m / target - 1.0)),
                evaluations: r.evaluations,
                correction_rounds: r.correction_rounds,
            })
        })
        .collect()
}

fn latency_model_rows(out: &Path) -> Vec<LatencyModelRow> {
    ["local-cpu-A-32", "local-cpu-A-224"]
        .iter()
        .filter_map(|table| {
            let r: ValidationReport =
                read(&out.join(format!("latency-model/{table}.validation.json")))?;
            let active = r.active()?;
            Some(LatencyModelRow {
                table: table.to_string(),
                predictor: active.name.clone(),
                accuracy: active.accuracy.clone(),
            })
        })
        .collect()
}

/// The seed noise of the networks trained with (at least) two seeds: their first two seeds' test top-1.
fn seed_noise(rows: &[CifarRow]) -> Option<SeedNoise> {
    let squares: Vec<f64> = rows
        .iter()
        .filter_map(|r| Some((r.seeds.first()?.test_top1? - r.seeds.get(1)?.test_top1?).powi(2)))
        .collect();
    (squares.len() >= 3).then(|| SeedNoise {
        networks: squares.len(),
        one_training_sd: (squares.iter().sum::<f64>() / squares.len() as f64 / 2.0).sqrt(),
    })
}

/// For every found network, the hand-designed network and the uniform scaling closest to it in latency
/// (ONNX Runtime, input 32), with the difference's interval from `noise`.
fn comparisons(rows: &[CifarRow], noise: Option<&SeedNoise>) -> Vec<Comparison> {
    let mut out = Vec::new();
    for found in rows.iter().filter(|r| r.kind == "found") {
        let Some(lat) = found.ort_ms else {
            continue;
        };
        for kind in ["hand-designed", "uniform scaling"] {
            let closest = rows
                .iter()
                .filter(|r| r.kind == kind)
                .filter_map(|r| Some((r, r.ort_ms?)))
                .min_by(|a, b| (a.1 / lat - 1.0).abs().total_cmp(&(b.1 / lat - 1.0).abs()));
            if let Some((baseline, baseline_ms)) = closest {
                out.push(Comparison {
                    found: found.name.clone(),
                    baseline: baseline.name.clone(),
                    latency_ratio: lat / baseline_ms,
                    test_error_difference: found
                        .test_error_mean
                        .zip(baseline.test_error_mean)
                        .map(|(a, b)| a - b),
                    test_error_difference_ci95: found
                        .test_error_mean
                        .zip(baseline.test_error_mean)
                        .zip(noise)
                        .and_then(|((a, b), noise)| {
                            difference_of_means(
                                a,
                                found.seeds.len(),
                                b,
                                baseline.seeds.len(),
                                noise.one_training_sd,
                            )
                        }),
                });
            }
        }
    }
    out
}

/// How well the supernet's accuracy ranks the trained networks of the space (Kendall's tau and
/// Pearson's r between supernet top-1 and mean test top-1).
fn supernet_ranking(rows: &[CifarRow]) -> Option<Ranking> {
    let (supernet, trained): (Vec<f64>, Vec<f64>) = rows
        .iter()
        .filter_map(|r| Some((r.supernet_top1?, 100.0 - r.test_error_mean?)))
        .unzip();
    (supernet.len() >= 3).then(|| Ranking {
        networks: supernet.len(),
        kendall_tau: metrics::kendall_tau(&supernet, &trained),
        pearson: metrics::pearson(&supernet, &trained),
    })
}

/// Wall time per phase (`timing.tsv`; a rerun that skipped finished steps adds its few seconds).
fn timing(out: &Path) -> Vec<Phase> {
    let mut phases: Vec<(String, u64)> = Vec::new();
    for line in std::fs::read_to_string(out.join("timing.tsv"))
        .unwrap_or_default()
        .lines()
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(phase), Some(Ok(seconds))) = (cols.first(), cols.get(3).map(|s| s.parse()))
        else {
            continue;
        };
        let phase = phase.trim_start_matches("phase_").to_string();
        match phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += seconds,
            None => phases.push((phase, seconds)),
        }
    }
    phases
        .into_iter()
        .map(|(phase, seconds)| Phase { phase, seconds })
        .collect()
}

fn plot(rows: &[CifarRow], path: &Path) -> anyhow::Result<()> {
    let series: Vec<Series> = rows
        .iter()
        .zip(PALETTE.iter().cycle())
        .filter_map(|(r, color)| {
            let lat = r.ort_ms?;
            let points: Vec<(f64, f64)> = r
                .seeds
                .iter()
                .filter_map(|s| Some((lat, 100.0 - s.test_top1?)))
                .collect();
            (!points.is_empty()).then(|| Series {
                label: &r.name,
                color: *color,
                points,
            })
        })
        .collect();
    Ok(Scatter {
        title: "CIFAR-10: test error vs latency (local-cpu, ONNX Runtime, batch 1)",
        x_label: "measured latency at input 32, ms",
        y_label: "test error, % (one point per seed)",
        series,
        identity: None,
    }
    .draw(path)?)
}

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).context(
        "usage: reproduce_report OUT (the directory research/scripts/reproduce.sh wrote)",
    )?);
    let networks = load_networks(&out)?;
    let cifar = cifar_rows(&out, &networks)?;
    let epochs = cifar
        .iter()
        .flat_map(|r| &r.seeds)
        .filter_map(|s| s.epochs)
        .max();
    let noise = seed_noise(&cifar);
    let results = Results {
        recipe: epochs.map_or("-".into(), |e| {
            format!("{e} epochs, same recipe for every network")
        }),
        comparisons: comparisons(&cifar, noise.as_ref()),
        seed_noise: noise,
        supernet_ranking: supernet_ranking(&cifar),
        cifar10: cifar,
        imagenet224: imagenet_rows(&out, &networks)?,
        searches: search_rows(&out),
        latency_model: latency_model_rows(&out),
        timing: timing(&out),
    };
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    std::fs::write(out.join("results.md"), markdown(&results))?;
    plot(&results.cifar10, &out.join("accuracy-latency.png"))?;
    eprintln!(
        "wrote {0}/results.json, {0}/results.md and {0}/accuracy-latency.png",
        out.display()
    );
    Ok(())
}
