//! The command line of `hsconas search` (`SearchArgs`, `SearchOptions`, shared with `hsconas run`'s
//! pipeline) and the settings a search runs with, checked.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hsconas_nas::{
    Estimator, EvolutionSettings, Objective, ObjectiveMode, RefineSettings, SearchSettings,
};
use hsconas_train::short_training::ShortTraining;
use hsconas_vocabulary::Precision;

use super::data_args::DataArgs;
use super::measure_args::TableDeviceArgs;
use super::recipe_args::RecipeArgs;

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
    #[arg(help_heading = "Accuracy estimator", long, value_name = "FILE")]
    pub supernet: Option<PathBuf>,
    /// Calibrated latency table of the target device (same layout, input size and classes).
    #[arg(help_heading = "Device and latency model", long, value_name = "FILE")]
    pub table: PathBuf,
    /// Latency target T, ms.
    #[arg(help_heading = "Objective", long, value_name = "T")]
    pub target_ms: f64,
    #[command(flatten)]
    pub options: SearchOptions,
    #[command(flatten, next_help_heading = "Data")]
    pub data: DataArgs,
    #[command(flatten, next_help_heading = "Device and latency model")]
    pub device: TableDeviceArgs,
    /// Output directory (report, plots, checkpoint).
    #[arg(help_heading = "Output", long, default_value = SearchArgs::DEFAULT_OUT, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the search whose checkpoint is in --out.
    #[arg(help_heading = "Output", long)]
    pub resume: bool,
    /// Use CUDA for the supernet.
    #[arg(help_heading = "Compute", long)]
    pub cuda: bool,
    /// CPU threads for libtorch (default: all cores).
    #[arg(help_heading = "Compute", long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the report as JSON instead of the summary.
    #[arg(help_heading = "Output", long)]
    pub json: bool,
}

impl SearchArgs {
    /// The recipe of `--refine`'s trainings (`hsconas train`'s defaults otherwise), each into `out`.
    pub fn refine_recipe(&self, out: PathBuf) -> RecipeArgs {
        let o = &self.options;
        RecipeArgs {
            epochs: o.refine_epochs,
            batch_size: o.refine_batch_size,
            lr: o.refine_lr,
            warmup_epochs: Some(o.refine_warmup_epochs),
            resume: hsconas_train::trainer::checkpoint_path(&out).is_file(),
            out: Some(out),
            seed: o.seed,
            cuda: self.cuda,
            threads: self.threads,
            ..RecipeArgs::default()
        }
    }

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
    #[arg(help_heading = "Objective", long, default_value_t = SearchOptions::default().beta, allow_negative_numbers = true)]
    pub beta: f64,
    /// Soft penalty (the paper: best at T) or hard latency constraint (a budget: at or under T, the most
    /// accurate wins).
    #[arg(help_heading = "Objective", long, value_enum, default_value_t = SearchOptions::default().mode)]
    pub mode: ModeArg,
    /// Under --mode constraint: a faster measured candidate beats a more accurate one unless that one is
    /// predicted better by more than this many points of top-1 [default: the predictor's held-out error
    /// when the predictor is the estimator and its file records one, else 0].
    #[arg(help_heading = "Objective", long, value_name = "POINTS")]
    pub tie_margin: Option<f64>,
    /// Shrink the space progressively before the evolutionary search.
    #[arg(help_heading = "Shrinking", long)]
    pub shrink: bool,
    /// Shrinking stages: 1-based layers in scoring order, stages separated by '/'.
    #[arg(help_heading = "Shrinking", long, default_value_t = SearchOptions::default().shrink_stages, value_name = "L,L/L,L")]
    pub shrink_stages: String,
    /// Architectures sampled per subspace quality Q (N).
    #[arg(help_heading = "Shrinking", long, default_value_t = SearchOptions::default().shrink_samples, value_name = "N")]
    pub shrink_samples: usize,
    /// Epochs of supernet fine-tuning in the shrunk space after each shrinking stage (0: none; only with
    /// the supernet estimator).
    #[arg(help_heading = "Shrinking", long, default_value_t = SearchOptions::default().finetune_epochs, value_name = "E")]
    pub finetune_epochs: usize,
    /// Learning rate of the fine-tuning (cosine from this to 0).
    #[arg(help_heading = "Shrinking", long, default_value_t = SearchOptions::default().finetune_lr, value_name = "LR")]
    pub finetune_lr: f64,
    /// Candidates per generation.
    #[arg(help_heading = "Evolution", long, default_value_t = SearchOptions::default().population)]
    pub population: usize,
    /// Generations.
    #[arg(help_heading = "Evolution", long, default_value_t = SearchOptions::default().generations)]
    pub generations: usize,
    /// Best candidates kept as parents.
    #[arg(help_heading = "Evolution", long, default_value_t = SearchOptions::default().parents)]
    pub parents: usize,
    /// Per-gene crossover probability.
    #[arg(help_heading = "Evolution", long, default_value_t = SearchOptions::default().crossover)]
    pub crossover: f64,
    /// Per-gene mutation probability.
    #[arg(help_heading = "Evolution", long, default_value_t = SearchOptions::default().mutation)]
    pub mutation: f64,
    /// Seed of shrinking samples and of the evolution.
    #[arg(help_heading = "Evolution", long, default_value_t = SearchOptions::default().seed)]
    pub seed: u64,
    /// How every candidate's accuracy is estimated. Default: `predictor` (the best-ranking estimator
    /// measured against trained networks, docs/accuracy-estimators.md), or `supernet` when --supernet is
    /// given. `supernet` is the paper's: validation top-1 with the supernet's inherited weights. The
    /// others are the cheap estimators of `hsconas estimate` (`predictor`, `params`, `macs`, `synflow`,
    /// `snip`, `grad-norm`, `naswot`): the predictor's predicted top-1 enters F as an accuracy, the
    /// others' scores as their percentile among 100 architectures drawn from the space with --seed.
    #[arg(help_heading = "Accuracy estimator", long, value_enum)]
    pub estimator: Option<Estimator>,
    /// The precision of the searched layers: `fp32`, `int8` (every layer with weights INT8), `mixed`
    /// (each layer's precision searched with its operator and width: mutation and crossover act on it)
    /// or `fastest` (every candidate's layers at the precision the calibrated latency model predicts
    /// faster for their operator and width); re-measurement exports the networks with their INT8
    /// layers. Default with a mixed-precision table (`hsconas profile --precision mixed`): `fastest`
    /// under --mode constraint (in three seeded runs on one machine it measured faster than `mixed` at
    /// the FP32 winner's predicted accuracy, best of the networks measured: docs/RESULTS.md), `mixed`
    /// under --mode penalty (which favours latencies near T); `fp32` with an FP32 table. All but
    /// `fp32` need a mixed table. Accuracy estimates are the FP32 network's: measure the INT8 loss
    /// after retraining and keep it within a budget with `hsconas export int8-budget`.
    #[arg(
        help_heading = "Objective",
        long,
        value_enum,
        value_name = "fp32|int8|mixed|fastest"
    )]
    pub precision: Option<SearchPrecision>,
    /// Predictor model for `--estimator predictor` (`predictor-model.json` of `research/scripts/ground-truth.sh
    /// score`); default: the one built in, fitted on the committed ground truth.
    #[arg(help_heading = "Accuracy estimator", long, value_name = "FILE")]
    pub predictor: Option<PathBuf>,
    /// Validation images per candidate (spread over the split; 0: all).
    #[arg(help_heading = "Accuracy estimator", long, default_value_t = SearchOptions::default().eval_images, value_name = "N")]
    pub eval_images: usize,
    /// Training batches for each candidate's batch-norm recalibration.
    #[arg(help_heading = "Accuracy estimator", long, default_value_t = SearchOptions::default().bn_batches, value_name = "K")]
    pub bn_batches: usize,
    /// After the search, also draw as many architectures uniformly from the final space as the search
    /// evaluated and report the best of them (the random-search baseline).
    #[arg(help_heading = "Evolution", long)]
    pub random_baseline: bool,
    /// Best candidates measured end to end on the device after the search (0: none).
    #[arg(help_heading = "Re-measurement on the device", long, default_value_t = SearchOptions::default().remeasure, value_name = "K")]
    pub remeasure: usize,
    /// Largest accepted |measured / T - 1| (--mode penalty; under --mode constraint a candidate must
    /// measure at or under T). The winner is the best F among the candidates measured within it; when
    /// none is, the latency model is corrected and the search continues (at most --max-rounds times),
    /// then the measured candidate closest to T wins.
    #[arg(help_heading = "Re-measurement on the device", long, default_value_t = SearchOptions::default().tolerance)]
    pub tolerance: f64,
    /// Correction rounds at most.
    #[arg(help_heading = "Re-measurement on the device", long, default_value_t = SearchOptions::default().max_rounds)]
    pub max_rounds: usize,
    /// Under --mode constraint: candidates of the Pareto front predicted at or near T measured after the
    /// search (most accurate first), so that a faster network of the same accuracy is seen; the winner is
    /// chosen again with them (0: none).
    #[arg(help_heading = "Re-measurement on the device", long, default_value_t = SearchOptions::default().front_remeasure, value_name = "K")]
    pub front_remeasure: usize,
    /// Generations added after each correction.
    #[arg(help_heading = "Re-measurement on the device", long, default_value_t = SearchOptions::default().extra_generations)]
    pub extra_generations: usize,
    /// Re-rank the K best candidates (by F with supernet accuracies) with a short training from scratch
    /// before re-measuring them; the winner is then the best of those by F with the short-training
    /// accuracy (the best-ranking estimator measured on the ground truth so far:
    /// docs/accuracy-estimators.md). One to two minutes per candidate on a 2-core CPU at 300 steps.
    /// 0: no re-ranking.
    #[arg(help_heading = "Accuracy estimator", long, default_value_t = SearchOptions::default().rerank, value_name = "K")]
    pub rerank: usize,
    /// Training steps (batches of 64) of each re-ranked candidate's short training.
    #[arg(help_heading = "Accuracy estimator", long, default_value_t = SearchOptions::default().rerank_steps, value_name = "N")]
    pub rerank_steps: usize,
    /// Train the K best candidates that meet T (after re-measurement, measuring more when fewer than K
    /// do) with the recipe below, refit the predictor on them as a correction of the one in use, score
    /// every candidate again (the trained ones with their trained test top-1) and search on for
    /// --extra-generations; the report gives the predictor's error on them before and after (held out).
    /// Needs the predictor estimator and K >= 4. Each training costs what `hsconas train` costs with the
    /// recipe; use the recipe your predictor was fitted with (a warning names both when they differ).
    /// 0: no refinement. --rerank stays a separate, cheaper re-ranking without refitting.
    #[arg(help_heading = "Refinement", long, default_value_t = SearchOptions::default().refine, value_name = "K")]
    pub refine: usize,
    /// Epochs of each refinement training.
    #[arg(help_heading = "Refinement", long, default_value_t = SearchOptions::default().refine_epochs, value_name = "E")]
    pub refine_epochs: usize,
    /// Warm-up epochs of each refinement training.
    #[arg(help_heading = "Refinement", long, default_value_t = SearchOptions::default().refine_warmup_epochs, value_name = "E")]
    pub refine_warmup_epochs: usize,
    /// Peak learning rate of each refinement training (cosine schedule).
    #[arg(help_heading = "Refinement", long, default_value_t = SearchOptions::default().refine_lr, value_name = "LR")]
    pub refine_lr: f64,
    /// Images per step of each refinement training.
    #[arg(help_heading = "Refinement", long, default_value_t = SearchOptions::default().refine_batch_size, value_name = "B")]
    pub refine_batch_size: usize,
}

/// The command line's defaults: the paper's N = 100 and the evolution's own defaults (population 50,
/// 20 generations, 20 parents).
/// What `hsconas search --precision` searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchPrecision {
    /// Every layer FP32.
    Fp32,
    /// Every layer with weights INT8.
    Int8,
    /// Each layer's precision searched.
    Mixed,
    /// Each layer at the precision the latency model predicts faster.
    Fastest,
}

impl SearchPrecision {
    /// The precisions a layer's blocks may take.
    pub fn precisions(self) -> std::collections::BTreeSet<Precision> {
        match self {
            SearchPrecision::Fp32 => [Precision::Fp32].into(),
            SearchPrecision::Int8 => [Precision::Int8].into(),
            SearchPrecision::Mixed | SearchPrecision::Fastest => {
                [Precision::Fp32, Precision::Int8].into()
            }
        }
    }

    /// `--precision`, or its default for `table` and the objective's `mode`: with a table that measured
    /// INT8 pieces, fastest under a budget (`constraint`: a faster network at the same accuracy is
    /// better) and mixed under the paper's penalty (which prefers latencies near T, not the fastest);
    /// fp32 with an FP32 table. Refuses INT8 layers with an FP32 table.
    pub fn resolve(
        given: Option<SearchPrecision>,
        table: &hsconas_devices::LatencyTable,
        mode: hsconas_nas::ObjectiveMode,
    ) -> anyhow::Result<SearchPrecision> {
        let precision = given.unwrap_or(match (table.is_mixed(), mode) {
            (false, _) => SearchPrecision::Fp32,
            (true, hsconas_nas::ObjectiveMode::Constraint) => SearchPrecision::Fastest,
            (true, _) => SearchPrecision::Mixed,
        });
        anyhow::ensure!(
            precision == SearchPrecision::Fp32 || table.is_mixed(),
            "--precision {} needs a mixed-precision table (`hsconas profile --precision mixed`): \
             this table measured FP32 pieces only",
            match precision {
                SearchPrecision::Int8 => "int8",
                SearchPrecision::Fastest => "fastest",
                _ => "mixed",
            }
        );
        Ok(precision)
    }
}

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
            precision: None,
            predictor: None,
            eval_images: 1000,
            bn_batches: 10,
            random_baseline: false,
            tie_margin: None,
            front_remeasure: 6,
            remeasure: 3,
            tolerance: 0.03,
            max_rounds: 2,
            extra_generations: 5,
            rerank: 0,
            rerank_steps: ShortTraining::default().steps,
            refine: 0,
            refine_epochs: 3,
            refine_warmup_epochs: 1,
            refine_lr: 0.05,
            refine_batch_size: 64,
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
            // Set by `search::run` once the table says which precisions it measured.
            fastest_precision: false,
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
        let refine = (o.refine > 0)
            .then(|| -> anyhow::Result<RefineSettings> {
                anyhow::ensure!(
                    estimator == Estimator::Predictor,
                    "--refine refits the predictor: it needs --estimator predictor (the default without \
                     --supernet), not {estimator}"
                );
                anyhow::ensure!(
                    o.remeasure > 0,
                    "--refine trains candidates measured to meet T: it needs --remeasure 1 or more"
                );
                anyhow::ensure!(
                    o.refine_epochs > 0 && o.refine_batch_size > 0 && o.refine_lr > 0.0,
                    "--refine-epochs, --refine-batch-size and --refine-lr must be positive"
                );
                let settings = RefineSettings {
                    candidates: o.refine,
                    // Filled in by `search::run` once the table says the layout.
                    recipe: String::new(),
                };
                settings.validate()?;
                Ok(settings)
            })
            .transpose()?;
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
            // Fine-tuning trains the supernet; without one there is nothing to tune, and the other
            // estimators' scores stay valid across the stages.
            finetune_epochs: if estimator == Estimator::Supernet {
                o.finetune_epochs
            } else {
                0
            },
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
            predicted_top1: estimator.scores_accuracy(),
            refine,
            // Set by `search::run` once the table says which precisions it measured.
            precisions: hsconas_nas::report::fp32_only(),
        })
    }
}
