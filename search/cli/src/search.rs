//! `hsconas search`: progressive space shrinking and the evolutionary search on a trained supernet and a
//! latency table, then re-measurement of the best candidates on the device (correcting the latency model
//! and searching on when the winner misses the target). Resumable: the state is checkpointed after every
//! shrunk layer and every generation.

use hsconas_foundation::outln;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hsconas_devices::{LatencyTable, NetworkSample};
use hsconas_latency::{Measurer, NetworkRun};
use hsconas_models::{Arch, NetConfig, SearchSpace};
use hsconas_nas::driver::state_path;
use hsconas_nas::predictor::Predictor;
use hsconas_nas::{CorrectionSettings, OracleError, SearchDriver, SearchHost, SearchState};
use hsconas_nas::{Estimator, ObjectiveMode, SearchSettings};
use hsconas_train::eval::EvalSettings;
use hsconas_train::sgd::SgdSettings;
use hsconas_train::short_training::ShortTraining;
use hsconas_train::supernet_run::{evaluate_subnet, EvalData, SupernetTraining};
use hsconas_train::trainer::{self, checkpoint_path, RunOptions, TrainSettings};
use hsconas_train::{Collective, LrScaling, SingleProcess};

use super::data_args::Prepared;
use super::estimate::ScaledEstimator;
use super::recipe_args::recipe_words;
use super::search_args::SearchPrecision;
use super::search_ranks::{self, Follower, Work};
use super::search_report;
use super::supernet::{ensure_data_matches, load_supernet, spread_subset, SupernetModel};
use super::train::{train_prepared, TrainArgs};

pub use super::search_args::{ModeArg, SearchArgs, SearchOptions};

/// The constraint's tie margin (a fraction of accuracy): `--tie-margin`, else the predictor's recorded
/// held-out error when it is the estimator, else 0; refused under the penalty, which has no ties.
fn tie_margin(args: &SearchArgs, settings: &SearchSettings) -> anyhow::Result<f64> {
    if settings.objective.mode != ObjectiveMode::Constraint {
        anyhow::ensure!(
            args.options.tie_margin.is_none(),
            "--tie-margin applies to --mode constraint (the penalty prefers T itself)"
        );
        return Ok(0.0);
    }
    if let Some(points) = args.options.tie_margin {
        anyhow::ensure!(
            matches!(settings.estimator, Estimator::Predictor | Estimator::Supernet),
            "--tie-margin is in points of top-1: the {} estimator scores a percentile, not an accuracy",
            settings.estimator
        );
        anyhow::ensure!(
            points.is_finite() && (0.0..100.0).contains(&points),
            "--tie-margin is points of top-1 in [0, 100), got {points}"
        );
        return Ok(points / 100.0);
    }
    if settings.estimator != Estimator::Predictor {
        return Ok(0.0);
    }
    let predictor = match &settings.predictor {
        Some(path) => Predictor::load(path)?,
        None => Predictor::built_in()?,
    };
    Ok(predictor.held_out_rmse.map_or(0.0, |points| points / 100.0))
}

/// The recipe of `--refine`'s trainings in words ([`recipe_words`]).
fn refine_recipe_words(args: &SearchArgs, data: &Prepared, config: &NetConfig) -> String {
    let split = if data.test.is_some() {
        "test"
    } else {
        "validation"
    };
    recipe_words(
        &args.refine_recipe(PathBuf::new()),
        &args.data,
        config.layout,
        split,
    )
}

/// Says so, naming both, when `--refine` trains with another recipe than the predictor in use was fitted
/// on: the refit then adapts the predictor to the refinement's recipe.
fn note_recipe_difference(settings: &SearchSettings, recipe: &str) -> anyhow::Result<()> {
    let predictor = match &settings.predictor {
        Some(path) => Predictor::load(path)?,
        None => Predictor::built_in()?,
    };
    let fitted = predictor
        .fitted_on
        .as_ref()
        .map_or("(not recorded)", |f| f.recipe.as_str());
    if fitted != recipe {
        eprintln!(
            "note: --refine trains with \"{recipe}\"; the predictor was fitted on trainings with \"{fitted}\": \
             the refit corrects it towards the refinement's recipe, and its accuracies until then are on \
             the predictor's"
        );
    }
    Ok(())
}

/// A folder name for `arch`'s refinement training: FNV-1a of its string (stable across builds).
fn refine_dir(out: &Path, arch: &Arch) -> PathBuf {
    let hash = arch
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    out.join("refine").join(format!("{hash:016x}"))
}

/// `hsconas search`, by every rank of `collective`: rank 0 searches, the others evaluate their share of
/// each batch of candidates (`search_ranks`).
pub fn run(args: SearchArgs, collective: &dyn Collective) -> anyhow::Result<()> {
    let mut settings = args.settings()?;
    if args.supernet.is_some() && settings.supernet.is_none() {
        eprintln!(
            "warning: --supernet is not read: the search estimates accuracy with {}",
            settings.estimator
        );
    }
    let objective = settings.objective;
    let tie_margin = tie_margin(&args, &settings)?;
    let root = collective.is_root();
    let (table, measurer) = args.device.open(&args.table)?;
    let precision = SearchPrecision::resolve(args.options.precision, &table, objective.mode)?;
    settings.precisions = precision.precisions();
    settings.evolution.fastest_precision = precision == SearchPrecision::Fastest;
    let config = table.provenance.net_config();
    let data = args.data.prepare()?;
    ensure_data_matches(&data, &config)?;
    if let Some(refine) = &mut settings.refine {
        anyhow::ensure!(
            collective.size() == 1,
            "--refine runs in one process: the refitted predictor would not reach the other ranks \
             (a predictor search needs no ranks)"
        );
        refine.recipe = refine_recipe_words(&args, &data, &config);
    }
    if let Some(refine) = &settings.refine {
        note_recipe_difference(&settings, &refine.recipe)?;
    }
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
                Estimator::Predictor =>
                    "the predictor (the trained test top-1 it predicts)".to_string(),
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
            tie_margin,
            front_remeasure: args.options.front_remeasure,
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
        &search_report::accuracy_quantity(&report.settings),
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

    /// `arch` trained from scratch with `--refine`'s recipe into `refine/<hash>/` (resumed from its
    /// checkpoint after a kill): its test top-1 (validation without a test split).
    fn train_accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        let mut train = TrainArgs::new(arch.to_string(), self.args.data.clone());
        train.layout = self.config.layout;
        train.recipe = self.args.refine_recipe(refine_dir(&self.args.out, arch));
        let info = train_prepared(&train, &self.data, &SingleProcess)
            .map_err(|e| OracleError::from(format!("{e:#}")))?
            .ok_or("the training stopped before its last epoch")?;
        let top1 = info
            .test
            .or(info.val)
            .ok_or("the training reported no test or validation accuracy")?
            .top1;
        Ok(top1 / 100.0)
    }

    fn adopt_predictor(&mut self, predictor: &Predictor) -> Result<(), OracleError> {
        let Some(cheap) = &mut self.cheap else {
            return Err("the search does not use the predictor".into());
        };
        cheap.adopt(predictor.clone());
        Ok(())
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
                new_reference: None,
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
