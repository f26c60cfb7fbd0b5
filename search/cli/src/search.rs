//! `hsconas search`: progressive space shrinking and the evolutionary search on a trained supernet and a
//! latency table, then re-measurement of the best candidates on the device (correcting the latency model
//! and searching on when the winner misses the target). Resumable: the state is checkpointed after every
//! shrunk layer and every generation.

use hsconas_foundation::outln;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hsconas_devices::{LatencyTable, NetworkSample};
use hsconas_latency::{Measurer, NetworkRun};
use hsconas_models::{Arch, NetConfig, SearchSpace};
use hsconas_nas::driver::state_path;
use hsconas_nas::Estimator;
use hsconas_nas::{
    CorrectionSettings, EvolutionSettings, Objective, ObjectiveMode, OracleError, SearchDriver,
    SearchHost, SearchSettings, SearchState,
};
use hsconas_train::eval::EvalSettings;
use hsconas_train::sgd::SgdSettings;
use hsconas_train::short_training::ShortTraining;
use hsconas_train::supernet_run::{evaluate_subnet, EvalData, SupernetTraining};
use hsconas_train::trainer::{self, checkpoint_path, RunOptions, TrainSettings};
use hsconas_train::{Collective, LrScaling};

use super::data_args::{DataArgs, Prepared};
use super::estimate::ScaledEstimator;
use super::measure_args::TableDeviceArgs;
use super::search_ranks::{self, Follower, Work};
use super::search_report;
use super::supernet::{ensure_data_matches, load_supernet, spread_subset, SupernetModel};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// F = ACC + beta * |LAT/T - 1| (the paper).
    Penalty,
    /// LAT <= T required; maximise ACC.
    Constraint,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Trained supernet checkpoint (`hsconas supernet train`): the accuracy of every candidate under
    /// `--estimator supernet` (the estimator when this is given and --estimator is not), and what
    /// shrinking fine-tunes. Not read with another estimator.
    #[arg(long, value_name = "FILE")]
    pub supernet: Option<PathBuf>,
    /// Calibrated latency table of the target device (same layout, input size and classes).
    #[arg(long, value_name = "FILE")]
    pub table: PathBuf,
    /// Latency target T, ms.
    #[arg(long, value_name = "T")]
    pub target_ms: f64,
    #[command(flatten)]
    pub options: SearchOptions,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: TableDeviceArgs,
    /// Output directory (report, plots, checkpoint).
    #[arg(long, default_value = SearchArgs::DEFAULT_OUT, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the search whose checkpoint is in --out.
    #[arg(long)]
    pub resume: bool,
    /// Use CUDA for the supernet.
    #[arg(long)]
    pub cuda: bool,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
}

impl SearchArgs {
    /// `--out` when absent.
    pub const DEFAULT_OUT: &str = "runs/search";

    /// A search of `supernet` on `data` for `target_ms` on the device of `table`, every other flag at
    /// its default.
    pub fn new(supernet: PathBuf, table: PathBuf, target_ms: f64, data: DataArgs) -> SearchArgs {
        SearchArgs {
            supernet: Some(supernet),
            table,
            target_ms,
            options: SearchOptions::default(),
            data,
            device: TableDeviceArgs::default(),
            out: PathBuf::from(SearchArgs::DEFAULT_OUT),
            resume: false,
            cuda: false,
            threads: None,
            json: false,
        }
    }
}

/// How the search runs: objective, shrinking, evolution, candidate evaluation, re-measurement.
#[derive(Debug, Clone, Args)]
pub struct SearchOptions {
    /// Penalty weight (negative; accuracy counts as a fraction 0..1).
    #[arg(long, default_value_t = SearchOptions::default().beta, allow_negative_numbers = true)]
    pub beta: f64,
    /// Soft penalty (the paper) or hard latency constraint.
    #[arg(long, value_enum, default_value_t = SearchOptions::default().mode)]
    pub mode: ModeArg,
    /// Shrink the space progressively before the evolutionary search.
    #[arg(long)]
    pub shrink: bool,
    /// Shrinking stages: 1-based layers in scoring order, stages separated by '/'.
    #[arg(long, default_value_t = SearchOptions::default().shrink_stages, value_name = "L,L/L,L")]
    pub shrink_stages: String,
    /// Architectures sampled per subspace quality Q (N).
    #[arg(long, default_value_t = SearchOptions::default().shrink_samples, value_name = "N")]
    pub shrink_samples: usize,
    /// Epochs of supernet fine-tuning in the shrunk space after each shrinking stage (0: none).
    #[arg(long, default_value_t = SearchOptions::default().finetune_epochs, value_name = "E")]
    pub finetune_epochs: usize,
    /// Learning rate of the fine-tuning (cosine from this to 0).
    #[arg(long, default_value_t = SearchOptions::default().finetune_lr, value_name = "LR")]
    pub finetune_lr: f64,
    /// Candidates per generation.
    #[arg(long, default_value_t = SearchOptions::default().population)]
    pub population: usize,
    /// Generations.
    #[arg(long, default_value_t = SearchOptions::default().generations)]
    pub generations: usize,
    /// Best candidates kept as parents.
    #[arg(long, default_value_t = SearchOptions::default().parents)]
    pub parents: usize,
    /// Per-gene crossover probability.
    #[arg(long, default_value_t = SearchOptions::default().crossover)]
    pub crossover: f64,
    /// Per-gene mutation probability.
    #[arg(long, default_value_t = SearchOptions::default().mutation)]
    pub mutation: f64,
    /// Seed of shrinking samples and of the evolution.
    #[arg(long, default_value_t = SearchOptions::default().seed)]
    pub seed: u64,
    /// How every candidate's accuracy is estimated. Default: `predictor` (the best-ranking estimator
    /// measured against trained networks, docs/accuracy-estimators.md), or `supernet` when --supernet is
    /// given. `supernet` is the paper's: validation top-1 with the supernet's inherited weights. The
    /// others are the cheap estimators of `hsconas estimate` (`predictor`, `params`, `macs`, `synflow`,
    /// `snip`, `grad-norm`, `naswot`), whose score enters F as its percentile among 100 architectures
    /// drawn from the space with --seed.
    #[arg(long, value_enum)]
    pub estimator: Option<Estimator>,
    /// Predictor model for `--estimator predictor` (`predictor-model.json` of `scripts/ground-truth.sh
    /// score`); default: the one built in, fitted on the committed ground truth.
    #[arg(long, value_name = "FILE")]
    pub predictor: Option<PathBuf>,
    /// Validation images per candidate (spread over the split; 0: all).
    #[arg(long, default_value_t = SearchOptions::default().eval_images, value_name = "N")]
    pub eval_images: usize,
    /// Training batches for each candidate's batch-norm recalibration.
    #[arg(long, default_value_t = SearchOptions::default().bn_batches, value_name = "K")]
    pub bn_batches: usize,
    /// After the search, also draw as many architectures uniformly from the final space as the search
    /// evaluated and report the best of them (the random-search baseline).
    #[arg(long)]
    pub random_baseline: bool,
    /// Best candidates measured end to end on the device after the search (0: none).
    #[arg(long, default_value_t = SearchOptions::default().remeasure, value_name = "K")]
    pub remeasure: usize,
    /// Largest accepted |measured / T - 1| (under --mode constraint: measured / T - 1). The winner is the
    /// best F among the candidates measured within it; when none is, the latency model is corrected and
    /// the search continues (at most --max-rounds times), then the measured candidate closest to T wins.
    #[arg(long, default_value_t = SearchOptions::default().tolerance)]
    pub tolerance: f64,
    /// Correction rounds at most.
    #[arg(long, default_value_t = SearchOptions::default().max_rounds)]
    pub max_rounds: usize,
    /// Generations added after each correction.
    #[arg(long, default_value_t = SearchOptions::default().extra_generations)]
    pub extra_generations: usize,
    /// Re-rank the K best candidates (by F with supernet accuracies) with a short training from scratch
    /// before re-measuring them; the winner is then the best of those by F with the short-training
    /// accuracy (the best-ranking estimator measured on the ground truth so far:
    /// docs/accuracy-estimators.md). One to two minutes per candidate on a 2-core CPU at 300 steps.
    /// 0: no re-ranking.
    #[arg(long, default_value_t = SearchOptions::default().rerank, value_name = "K")]
    pub rerank: usize,
    /// Training steps (batches of 64) of each re-ranked candidate's short training.
    #[arg(long, default_value_t = SearchOptions::default().rerank_steps, value_name = "N")]
    pub rerank_steps: usize,
}

/// The command line's defaults: the paper's N = 100 and the evolution's own defaults (population 50,
/// 20 generations, 20 parents).
impl Default for SearchOptions {
    fn default() -> SearchOptions {
        let evolution = EvolutionSettings::default();
        SearchOptions {
            beta: Objective::DEFAULT_BETA,
            mode: ModeArg::Penalty,
            shrink: false,
            shrink_stages: "20,19,18,17/16,15,14,13".to_string(),
            shrink_samples: 100,
            finetune_epochs: 1,
            finetune_lr: 0.01,
            population: evolution.population,
            generations: evolution.generations,
            parents: evolution.parents,
            crossover: evolution.crossover,
            mutation: evolution.mutation,
            seed: evolution.seed,
            estimator: None,
            predictor: None,
            eval_images: 1000,
            bn_batches: 10,
            random_baseline: false,
            remeasure: 3,
            tolerance: 0.03,
            max_rounds: 2,
            extra_generations: 5,
            rerank: 0,
            rerank_steps: ShortTraining::default().steps,
        }
    }
}

fn parse_stages(text: &str) -> anyhow::Result<Vec<Vec<usize>>> {
    text.split('/')
        .filter(|s| !s.trim().is_empty())
        .map(|stage| {
            stage
                .split(',')
                .map(|l| {
                    let l: usize = l
                        .trim()
                        .parse()
                        .with_context(|| format!("bad layer '{l}'"))?;
                    anyhow::ensure!((1..=20).contains(&l), "layer {l} is not in 1..=20");
                    Ok(l - 1)
                })
                .collect()
        })
        .collect()
}

impl SearchArgs {
    /// The estimator of every candidate: `--estimator`, else the supernet when one is given, else the
    /// predictor.
    pub fn estimator(&self) -> Estimator {
        self.options.estimator.unwrap_or(match self.supernet {
            Some(_) => Estimator::Supernet,
            None => Estimator::Predictor,
        })
    }

    /// What the search runs with (`search.json`'s settings), checked: the objective, the shrinking stages
    /// and the evolution must be usable.
    pub fn settings(&self) -> anyhow::Result<SearchSettings> {
        let o = &self.options;
        let objective = Objective::new(
            self.target_ms,
            o.beta,
            match o.mode {
                ModeArg::Penalty => ObjectiveMode::Penalty,
                ModeArg::Constraint => ObjectiveMode::Constraint,
            },
        )?;
        let stages = if o.shrink {
            parse_stages(&o.shrink_stages).context("invalid --shrink-stages")?
        } else {
            Vec::new()
        };
        let evolution = EvolutionSettings {
            population: o.population,
            generations: o.generations,
            parents: o.parents,
            crossover: o.crossover,
            mutation: o.mutation,
            seed: o.seed,
        };
        evolution.validate()?;
        let estimator = self.estimator();
        anyhow::ensure!(
            estimator != Estimator::ShortTraining,
            "--estimator short-training takes minutes per candidate: re-rank the best candidates with it \
             instead (--rerank K)"
        );
        anyhow::ensure!(
            estimator != Estimator::Supernet || self.supernet.is_some(),
            "--estimator supernet needs --supernet CHECKPOINT; a cheap estimator (the default \
             `predictor`, `naswot`, `macs`, ...) needs none"
        );
        Ok(SearchSettings {
            supernet: self
                .supernet
                .clone()
                .filter(|_| estimator == Estimator::Supernet),
            table: self.table.clone(),
            objective,
            stages,
            shrink_samples: o.shrink_samples,
            evolution,
            finetune_epochs: o.finetune_epochs,
            finetune_lr: o.finetune_lr,
            data: self.data.data.clone(),
            eval_images: o.eval_images,
            bn_batches: o.bn_batches,
            rerank: o.rerank,
            estimator,
            predictor: o
                .predictor
                .clone()
                .filter(|_| estimator == Estimator::Predictor),
        })
    }
}

/// `hsconas search`, by every rank of `collective`: rank 0 searches, the others evaluate their share of
/// each batch of candidates (`search_ranks`).
pub fn run(args: SearchArgs, collective: &dyn Collective) -> anyhow::Result<()> {
    let settings = args.settings()?;
    if args.supernet.is_some() && settings.supernet.is_none() {
        eprintln!(
            "warning: --supernet is not read: the search estimates accuracy with {}",
            settings.estimator
        );
    }
    let objective = settings.objective;
    let root = collective.is_root();
    let state = if root {
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        Some(SearchState::load_or_start(
            &state_path(&args.out),
            args.resume,
            &settings,
        )?)
    } else {
        None
    };

    let (table, measurer) = args.device.open(&args.table)?;
    if let Some(n) = args.threads {
        tch::set_num_threads(n as i32);
    }
    let device = trainer::device(args.cuda)?;
    let supernet = match &settings.supernet {
        Some(given) => {
            // The weights the search continues with (fine-tuned ones after a resumed stage): rank 0
            // knows.
            let mut weights = match state.as_ref().map_or(0, |s| s.finetuned) {
                0 => given.clone(),
                k => checkpoint_path(&finetune_dir(&args.out, k)),
            }
            .to_string_lossy()
            .into_owned()
            .into_bytes();
            collective.broadcast_bytes(&mut weights);
            let weights = PathBuf::from(String::from_utf8(weights)?);
            let (training, model) = load_supernet(&weights, device)?;
            anyhow::ensure!(
                table.provenance.net_config() == model.config,
                "the table was measured for {:?} but the supernet is {:?}",
                table.provenance.net_config(),
                model.config
            );
            Some((weights, training, model))
        }
        None => None,
    };
    let config = table.provenance.net_config();
    let data = args.data.prepare()?;
    ensure_data_matches(&data, &config)?;
    let eval_data = EvalData {
        train: data.train.clone(),
        val: spread_subset(&data.val, args.options.eval_images),
        transform: data.transform.clone(),
    };
    if let Some(state) = &state {
        eprintln!(
            "search: T = {} ms, beta = {}, {:?}; accuracy from {}{}; {} candidates from the checkpoint{}",
            objective.target_ms,
            objective.beta,
            objective.mode,
            match settings.estimator {
                Estimator::Supernet =>
                    format!("the supernet on {} validation images", eval_data.val.len()),
                cheap => format!(
                    "{} as a percentile among {} architectures of the space (scoring them first)",
                    cheap.name(),
                    ScaledEstimator::REFERENCE_SAMPLE
                ),
            },
            supernet.as_ref().map_or(String::new(), |(weights, _, _)| format!(
                "; supernet {}",
                weights.display()
            )),
            state.candidates.len(),
            if collective.size() > 1 {
                format!("; candidates evaluated by {} ranks", collective.size())
            } else {
                String::new()
            }
        );
    }
    let cheap = ScaledEstimator::new(
        settings.estimator,
        &data,
        config,
        args.options.seed,
        settings.predictor.as_deref(),
    )?;
    let mut host = SupernetHost {
        cheap,
        supernet: supernet.map(|(_, training, model)| (training, model)),
        config,
        data,
        eval_data,
        eval_settings: EvalSettings {
            bn_batches: args.options.bn_batches,
            batch_size: 200,
            seed: args.options.seed,
        },
        device,
        table: &table,
        measurer: &measurer,
        drift: args.device.drift_policy()?,
        args: &args,
        collective,
    };
    let Some(state) = state else {
        return search_ranks::follow(collective, &mut host);
    };
    let driver = SearchDriver {
        table: &table,
        correction: CorrectionSettings {
            remeasure: args.options.remeasure,
            tolerance: args.options.tolerance,
            max_rounds: args.options.max_rounds,
            extra_generations: args.options.extra_generations,
        },
        random_baseline: args.options.random_baseline,
        out: args.out.clone(),
        show_progress: !args.json,
    };
    let outcome = driver.run(state, &mut host)?;
    if collective.size() > 1 {
        search_ranks::send(collective, &Work::Done).map_err(anyhow::Error::from_boxed)?;
    }
    let report = outcome.report;
    search_report::draw_plots(
        &args.out,
        &outcome.evolution,
        &report.candidates,
        objective.target_ms,
    )?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        search_report::print_summary(&report, &args.out)?;
    }
    Ok(())
}

/// The accuracy estimator (the supernet's inherited weights, with fine-tuning, or a cheap estimator) and
/// the device (measurements) of `hsconas search`.
struct SupernetHost<'a> {
    /// The cheap estimator of `--estimator` (none: the supernet's accuracies).
    cheap: Option<ScaledEstimator>,
    /// The supernet, under `--estimator supernet` only.
    supernet: Option<(SupernetTraining, SupernetModel)>,
    /// The networks' layout, input size and classes (the table's).
    config: NetConfig,
    data: Prepared,
    eval_data: EvalData,
    eval_settings: EvalSettings,
    device: tch::Device,
    table: &'a LatencyTable,
    measurer: &'a Measurer,
    drift: hsconas_latency::DriftPolicy,
    args: &'a SearchArgs,
    collective: &'a dyn Collective,
}

impl Follower for SupernetHost<'_> {
    fn local_accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        if let Some(cheap) = &mut self.cheap {
            return cheap.fraction(arch).map_err(OracleError::from);
        }
        let Some((training, _)) = &self.supernet else {
            return Err("no accuracy estimator: neither a supernet nor a cheap estimator".into());
        };
        let eval = evaluate_subnet(
            &training.supernet,
            arch,
            &self.eval_data,
            &self.eval_settings,
            self.device,
        );
        Ok(eval.top1 / 100.0)
    }

    /// Trains the supernet in `space` for `--finetune-epochs` into `finetune-<stage>/` (resuming a killed
    /// fine-tuning there), data-parallel over the ranks.
    /// Nothing under a cheap estimator: the accuracies do not come from a supernet.
    fn finetune_together(&mut self, space: &SearchSpace, stage: usize) -> Result<(), OracleError> {
        let args = self.args;
        let Some((training, model)) = &mut self.supernet else {
            return Ok(());
        };
        let dir = finetune_dir(&args.out, stage);
        if self.collective.is_root() {
            eprintln!("fine-tuning into {}", dir.display());
        }
        training.space = space.clone();
        training.eval = None;
        let settings = TrainSettings {
            epochs: args.options.finetune_epochs,
            batch_size: 64,
            lr: args.options.finetune_lr,
            warmup_epochs: 0,
            label_smoothing: 0.0,
            sgd: SgdSettings::default(),
            seed: args.options.seed,
            loader_workers: 2,
            lr_scaling: LrScaling::None,
        };
        let description = serde_json::to_value(model.in_space(space.clone()))?;
        let resume = checkpoint_path(&dir).exists();
        trainer::train(
            training,
            description,
            self.data.train.clone(),
            self.data.transform.clone(),
            &settings,
            &RunOptions {
                resume,
                progress: !args.json,
                collective: self.collective,
                ..RunOptions::single(&dir)
            },
        )?;
        Ok(())
    }
}

impl SearchHost for SupernetHost<'_> {
    fn accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        self.local_accuracy(arch)
    }

    fn accuracies(&mut self, archs: &[Arch]) -> Result<Vec<f64>, OracleError> {
        if self.collective.size() == 1 {
            return archs.iter().map(|a| self.local_accuracy(a)).collect();
        }
        let collective = self.collective;
        search_ranks::accuracies(collective, archs, self)
    }

    fn finetune(&mut self, space: &SearchSpace, stage: usize) -> Result<(), OracleError> {
        if self.collective.size() > 1 {
            search_ranks::send(
                self.collective,
                &Work::Finetune {
                    space: space.clone(),
                    stage,
                },
            )?;
        }
        self.finetune_together(space, stage)
    }

    /// The validation top-1 of `arch` trained from scratch for `--rerank-steps` steps (the short-training
    /// estimator), on the same validation images as the supernet accuracies.
    fn rerank_accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        let short = ShortTraining {
            steps: self.args.options.rerank_steps,
            seed: self.args.options.seed,
            ..ShortTraining::default()
        };
        let graph = hsconas_models::build::network(arch, &self.config)?;
        let top1 = short.accuracy(
            &graph,
            &self.data.train,
            &self.eval_data.val,
            &self.data.transform,
        )?;
        Ok(top1 / 100.0)
    }

    /// Two separate measuring passes, the lower value of each network kept: interference on a shared
    /// machine only ever adds time, and one disturbed pass must not recalibrate the latency model.
    fn measure(&mut self, archs: &[Arch], round: usize) -> Result<Vec<NetworkSample>, OracleError> {
        let mut samples: Vec<NetworkSample> = Vec::new();
        for pass in ["a", "b"] {
            let run = NetworkRun {
                table: self.table,
                measurer: self.measurer,
                purpose: "search",
                seed: self.args.options.seed,
                group: self.args.device.group,
                checkpoint: self
                    .args
                    .out
                    .join(format!("remeasure-{round}{pass}.partial.json")),
                progress: !self.args.json,
                drift: self.drift,
            };
            let measured = run.measure(archs)?.samples;
            run.finish()?;
            samples = if samples.is_empty() {
                measured
            } else {
                samples
                    .into_iter()
                    .zip(measured)
                    .map(|(a, b)| if b.measured_ms < a.measured_ms { b } else { a })
                    .collect()
            };
        }
        Ok(samples)
    }
}

fn finetune_dir(out: &Path, stage: usize) -> PathBuf {
    out.join(format!("finetune-{stage}"))
}
