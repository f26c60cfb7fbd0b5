//! `hsconas search`: progressive space shrinking and the evolutionary search on a trained supernet and a
//! latency table, then re-measurement of the best candidates on the device (correcting the latency model
//! and searching on when the winner misses the target). Resumable: the state is checkpointed after every
//! shrunk layer and every generation.

use hsconas_foundation::outln;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hsconas_devices::{Calibration, LatencyModel, NetworkSample};
use hsconas_foundation::write_atomic;
use hsconas_latency::NetworkRun;
use hsconas_models::{Arch, SearchSpace};
use hsconas_nas::{
    choose_winner, random_search, shrink_layer, Candidate, Evaluator, Evolution, EvolutionSettings,
    LayerDecision, Objective, ObjectiveMode, OracleError, RandomBaseline, Remeasured,
    SearchSettings, SearchState, WinnerReason,
};
use hsconas_train::eval::EvalSettings;
use hsconas_train::sgd::SgdSettings;
use hsconas_train::supernet_run::{evaluate_subnet, EvalData, SupernetTraining};
use hsconas_train::trainer::{self, checkpoint_path, TrainSettings};

use super::data_args::DataArgs;
use super::measure_args::TableDeviceArgs;
use super::search_report;
use super::supernet::{ensure_data_matches, load_supernet, spread_subset, SupernetModel};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// F = ACC + beta * |LAT/T - 1| (the paper).
    Penalty,
    /// LAT <= T required; maximise ACC.
    Constraint,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Trained supernet checkpoint (`hsconas supernet train`).
    #[arg(long, value_name = "FILE")]
    supernet: PathBuf,
    /// Calibrated latency table of the target device (same layout, input size and classes).
    #[arg(long, value_name = "FILE")]
    table: PathBuf,
    /// Latency target T, ms.
    #[arg(long, value_name = "T")]
    target_ms: f64,
    /// Penalty weight (negative; accuracy counts as a fraction 0..1).
    #[arg(long, default_value_t = Objective::DEFAULT_BETA, allow_negative_numbers = true)]
    beta: f64,
    /// Soft penalty (the paper) or hard latency constraint.
    #[arg(long, value_enum, default_value_t = ModeArg::Penalty)]
    mode: ModeArg,
    /// Shrink the space progressively before the evolutionary search.
    #[arg(long)]
    shrink: bool,
    /// Shrinking stages: 1-based layers in scoring order, stages separated by '/'.
    #[arg(
        long,
        default_value = "20,19,18,17/16,15,14,13",
        value_name = "L,L/L,L"
    )]
    shrink_stages: String,
    /// Architectures sampled per subspace quality Q (N).
    #[arg(long, default_value_t = 100, value_name = "N")]
    shrink_samples: usize,
    /// Epochs of supernet fine-tuning in the shrunk space after each shrinking stage (0: none).
    #[arg(long, default_value_t = 1, value_name = "E")]
    finetune_epochs: usize,
    /// Learning rate of the fine-tuning (cosine from this to 0).
    #[arg(long, default_value_t = 0.01, value_name = "LR")]
    finetune_lr: f64,
    /// Candidates per generation.
    #[arg(long, default_value_t = 50)]
    population: usize,
    /// Generations.
    #[arg(long, default_value_t = 20)]
    generations: usize,
    /// Best candidates kept as parents.
    #[arg(long, default_value_t = 20)]
    parents: usize,
    /// Per-gene crossover probability.
    #[arg(long, default_value_t = 0.25)]
    crossover: f64,
    /// Per-gene mutation probability.
    #[arg(long, default_value_t = 0.25)]
    mutation: f64,
    /// Seed of shrinking samples and of the evolution.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    data: DataArgs,
    /// Validation images per candidate (spread over the split; 0: all).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    eval_images: usize,
    /// Training batches for each candidate's batch-norm recalibration.
    #[arg(long, default_value_t = 10, value_name = "K")]
    bn_batches: usize,
    /// After the search, also draw as many architectures uniformly from the final space as the search
    /// evaluated and report the best of them (the random-search baseline).
    #[arg(long)]
    random_baseline: bool,
    /// Best candidates measured end to end on the device after the search (0: none).
    #[arg(long, default_value_t = 3, value_name = "K")]
    remeasure: usize,
    /// Largest accepted |measured / T - 1| (under --mode constraint: measured / T - 1). The winner is the
    /// best F among the candidates measured within it; when none is, the latency model is corrected and
    /// the search continues (at most --max-rounds times), then the measured candidate closest to T wins.
    #[arg(long, default_value_t = 0.03)]
    tolerance: f64,
    /// Correction rounds at most.
    #[arg(long, default_value_t = 2)]
    max_rounds: usize,
    /// Generations added after each correction.
    #[arg(long, default_value_t = 5)]
    extra_generations: usize,
    #[command(flatten)]
    device: TableDeviceArgs,
    /// Output directory (report, plots, checkpoint).
    #[arg(long, default_value = "runs/search", value_name = "DIR")]
    out: PathBuf,
    /// Continue the search whose checkpoint is in --out.
    #[arg(long)]
    resume: bool,
    /// Use CUDA for the supernet.
    #[arg(long)]
    cuda: bool,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    json: bool,
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

pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let objective = Objective::new(
        args.target_ms,
        args.beta,
        match args.mode {
            ModeArg::Penalty => ObjectiveMode::Penalty,
            ModeArg::Constraint => ObjectiveMode::Constraint,
        },
    )?;
    let stages = if args.shrink {
        parse_stages(&args.shrink_stages).context("invalid --shrink-stages")?
    } else {
        Vec::new()
    };
    let evo_settings = EvolutionSettings {
        population: args.population,
        generations: args.generations,
        parents: args.parents,
        crossover: args.crossover,
        mutation: args.mutation,
        seed: args.seed,
    };
    evo_settings.validate()?;
    let settings = SearchSettings {
        supernet: args.supernet.clone(),
        table: args.table.clone(),
        objective,
        stages: stages.clone(),
        shrink_samples: args.shrink_samples,
        evolution: evo_settings.clone(),
        finetune_epochs: args.finetune_epochs,
        finetune_lr: args.finetune_lr,
        data: args.data.data.clone(),
        eval_images: args.eval_images,
        bn_batches: args.bn_batches,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let state_path = args.out.join("search.partial.json");
    let mut state = SearchState::load_or_start(&state_path, args.resume, &settings)?;

    let (table, measurer) = args.device.open(&args.table)?;
    if let Some(n) = args.threads {
        tch::set_num_threads(n as i32);
    }
    let device = trainer::device(args.cuda)?;
    let weights = match state.finetuned {
        0 => args.supernet.clone(),
        k => checkpoint_path(&finetune_dir(&args.out, k)),
    };
    let (mut training, model) = load_supernet(&weights, device)?;
    anyhow::ensure!(
        table.provenance.net_config() == model.config,
        "the table was measured for {:?} but the supernet is {:?}",
        table.provenance.net_config(),
        model.config
    );
    let data = args.data.prepare()?;
    ensure_data_matches(&data, &model.config)?;
    let eval_data = EvalData {
        train: data.train.clone(),
        val: spread_subset(&data.val, args.eval_images),
        transform: data.transform.clone(),
    };
    let eval_settings = EvalSettings {
        bn_batches: args.bn_batches,
        batch_size: 200,
        seed: args.seed,
    };
    let save = |state: &mut SearchState, candidates: &[Candidate]| -> anyhow::Result<()> {
        state.candidates = candidates.to_vec();
        write_atomic(&state_path, &serde_json::to_vec(state)?)?;
        Ok(())
    };
    eprintln!(
        "search: T = {} ms, beta = {}, {:?}; {} validation images per candidate; supernet {}; {} candidates from the checkpoint",
        objective.target_ms,
        objective.beta,
        objective.mode,
        eval_data.val.len(),
        weights.display(),
        state.candidates.len()
    );

    for (s, stage) in stages.iter().enumerate() {
        {
            let mut evaluator = supernet_evaluator(
                &training.supernet,
                &eval_data,
                &eval_settings,
                device,
                latency_model(&table, &state.extra_samples)?,
                objective,
                &state.candidates,
            );
            for &layer in stage {
                if state.decisions.iter().any(|d| d.layer == layer) {
                    continue;
                }
                let d = shrink_one(&mut state.space, layer, s, &args, &mut evaluator)?;
                state.decisions.push(d);
                save(&mut state, evaluator.evaluated())?;
            }
        }
        if args.finetune_epochs > 0 && state.finetuned <= s {
            let dir = finetune_dir(&args.out, s + 1);
            eprintln!(
                "fine-tuning the supernet in the shrunk space for {} epoch(s) into {}",
                args.finetune_epochs,
                dir.display()
            );
            finetune(&mut training, &model, &state.space, &data, &args, &dir)?;
            state.finetuned = s + 1;
            // Accuracies measured with the weights before fine-tuning no longer hold.
            save(&mut state, &[])?;
        }
    }

    let mut evaluator = supernet_evaluator(
        &training.supernet,
        &eval_data,
        &eval_settings,
        device,
        latency_model(&table, &state.extra_samples)?,
        objective,
        &state.candidates,
    );
    // Checkpoints from before candidates carried their measurements.
    for r in &state.remeasured {
        evaluator.record_measurement(&r.arch, r.measured_ms);
    }
    let save =
        |state: &mut SearchState, evaluator: &Evaluator<_>| save(state, evaluator.evaluated());

    let mut evo = match state.evolution.take() {
        Some(evo) => evo,
        None => Evolution::new(evo_settings, state.space.clone())?,
    };
    loop {
        while !evo.is_done() {
            let g = evo.step(&mut evaluator)?;
            eprintln!(
                "generation {:>2}: best F {:.4} (top-1 {:.2}%, {:.3} ms), mean F {:.4}, {} evaluated",
                g.generation,
                g.best_score,
                g.best_accuracy * 100.0,
                g.best_latency_ms,
                g.mean_score,
                g.evaluations
            );
            state.evolution = Some(evo.clone());
            save(&mut state, &evaluator)?;
        }
        if args.remeasure == 0 {
            break;
        }
        let best: Vec<Candidate> = ranked(evaluator.evaluated())
            .into_iter()
            .filter(|c| !state.remeasured.iter().any(|r| r.arch == c.arch))
            .take(args.remeasure)
            .collect();
        if !best.is_empty() {
            let archs: Vec<Arch> = best.iter().map(|c| c.arch.clone()).collect();
            // Two separate passes, the lower value kept: interference on a shared machine only ever adds
            // time, and one disturbed pass must not recalibrate the latency model.
            let mut samples: Vec<NetworkSample> = Vec::new();
            for pass in ["a", "b"] {
                let run = NetworkRun {
                    table: &table,
                    measurer: &measurer,
                    purpose: "search",
                    seed: args.seed,
                    group: args.device.group,
                    checkpoint: args
                        .out
                        .join(format!("remeasure-{}{pass}.partial.json", state.rounds)),
                    progress: !args.json,
                };
                let measured = run.measure(&archs)?;
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
            for (c, s) in best.iter().zip(&samples) {
                eprintln!(
                    "re-measured {}: measured {:.3} ms, {:+.1}% from T; predicted {:.3} ms (prediction error {:+.1}%)",
                    c.arch,
                    s.measured_ms,
                    (s.measured_ms / objective.target_ms - 1.0) * 100.0,
                    c.latency_ms,
                    (c.latency_ms / s.measured_ms - 1.0) * 100.0
                );
                evaluator.record_measurement(&c.arch, s.measured_ms);
                state.remeasured.push(Remeasured {
                    arch: c.arch.clone(),
                    accuracy: c.accuracy,
                    predicted_ms: c.latency_ms,
                    measured_ms: s.measured_ms,
                    table_sum_ms: s.table_sum_ms,
                    round: state.rounds,
                });
            }
            state.extra_samples.extend(samples);
        }
        let choice = choose_winner(evaluator.evaluated(), &objective, args.tolerance);
        let met = choice
            .as_ref()
            .is_none_or(|c| c.reason == WinnerReason::WithinTolerance);
        if met || state.rounds >= args.max_rounds {
            if let Some(choice) = &choice {
                eprintln!("winner: {}", choice.explanation(&objective));
            }
            state.evolution = Some(evo.clone());
            save(&mut state, &evaluator)?;
            break;
        }
        state.rounds += 1;
        eprintln!(
            "no re-measured candidate is within ±{:.1}% of T (closest: {:+.1}%): correcting the latency model with {} re-measured networks and searching {} more generations",
            args.tolerance * 100.0,
            choice.as_ref().map_or(f64::NAN, |c| c.relative_to_target(&objective) * 100.0),
            state.extra_samples.len(),
            args.extra_generations
        );
        evaluator.set_model(latency_model(&table, &state.extra_samples)?);
        evo.extend(args.extra_generations);
        state.evolution = Some(evo.clone());
        save(&mut state, &evaluator)?;
    }

    let mut report = search_report::report(
        &state,
        &evaluator,
        &evo,
        choose_winner(evaluator.evaluated(), &objective, args.tolerance),
    );
    if args.random_baseline {
        let evaluations = evaluator.evaluated().len();
        eprintln!("random-search baseline: {evaluations} uniformly drawn architectures");
        let mut baseline = supernet_evaluator(
            &training.supernet,
            &eval_data,
            &eval_settings,
            device,
            evaluator.model().clone(),
            objective,
            &[],
        );
        random_search(&mut baseline, &state.space, evaluations, args.seed)?;
        report.random_baseline = Some(RandomBaseline {
            evaluations,
            best: baseline.best().cloned(),
            search_best_score: evaluator.best().map(|c| c.score),
        });
    }
    write_atomic(
        &args.out.join("search.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write_atomic(
        &args.out.join("space.json"),
        &serde_json::to_vec_pretty(&state.space)?,
    )?;
    search_report::draw_plots(&args.out, &evo, evaluator.evaluated(), objective.target_ms)?;
    // The report holds everything now; a rerun starts a new search.
    std::fs::remove_file(&state_path)
        .with_context(|| format!("removing {}", state_path.display()))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        search_report::print_summary(&report, &args.out)?;
    }
    Ok(())
}

/// An evaluator whose accuracies come from the supernet's weights (validation top-1 as a fraction),
/// holding the checkpoint's `candidates`.
fn supernet_evaluator<'a>(
    supernet: &'a hsconas_train::nn::Supernet,
    data: &'a EvalData,
    settings: &'a EvalSettings,
    device: tch::Device,
    model: LatencyModel,
    objective: Objective,
    candidates: &[Candidate],
) -> Evaluator<impl FnMut(&Arch) -> Result<f64, OracleError> + 'a> {
    let oracle =
        move |arch: &Arch| Ok(evaluate_subnet(supernet, arch, data, settings, device).top1 / 100.0);
    let mut evaluator = Evaluator::new(oracle, model, objective);
    evaluator.restore(candidates.iter().cloned());
    evaluator
}

/// Shrinks one layer with a progress bar and logs every Q.
fn shrink_one<O: hsconas_nas::AccuracyOracle>(
    space: &mut SearchSpace,
    layer: usize,
    stage: usize,
    args: &SearchArgs,
    evaluator: &mut Evaluator<O>,
) -> anyhow::Result<LayerDecision> {
    let ops = space.layers()[layer].ops.len();
    let bar = hsconas_foundation::progress::progress_bar(
        ops * args.shrink_samples,
        Some(&format!("stage {} layer {}", stage + 1, layer + 1)),
        "subnets",
        !args.json,
    );
    let d = shrink_layer(
        space,
        layer,
        args.shrink_samples,
        args.seed,
        evaluator,
        || bar.inc(1),
    )?;
    bar.finish_and_clear();
    eprintln!(
        "stage {} layer {}: {} -> keep {} (space 10^{:.1} -> 10^{:.1})",
        stage + 1,
        layer + 1,
        d.qualities
            .iter()
            .map(|q| format!("{} Q={:.4}", q.op, q.q))
            .collect::<Vec<_>>()
            .join(", "),
        d.chosen,
        d.log10_size_before,
        d.log10_size_after
    );
    Ok(d)
}

fn finetune_dir(out: &Path, stage: usize) -> PathBuf {
    out.join(format!("finetune-{stage}"))
}

/// Trains the supernet in `space` for `--finetune-epochs` (resuming a killed fine-tuning in `dir`).
fn finetune(
    training: &mut SupernetTraining,
    model: &SupernetModel,
    space: &SearchSpace,
    data: &super::data_args::Prepared,
    args: &SearchArgs,
    dir: &Path,
) -> anyhow::Result<()> {
    training.space = space.clone();
    training.eval = None;
    let settings = TrainSettings {
        epochs: args.finetune_epochs,
        batch_size: 64,
        lr: args.finetune_lr,
        warmup_epochs: 0,
        label_smoothing: 0.0,
        sgd: SgdSettings::default(),
        seed: args.seed,
        loader_workers: 2,
    };
    let description = serde_json::to_value(model.in_space(space.clone()))?;
    let resume = checkpoint_path(dir).exists();
    trainer::train(
        training,
        description,
        data.train.clone(),
        data.transform.clone(),
        &settings,
        dir,
        resume,
        None,
        !args.json,
    )?;
    Ok(())
}

/// The table's model; with re-measured networks, recalibrated over the table's samples plus those.
fn latency_model(
    table: &hsconas_devices::LatencyTable,
    extra: &[NetworkSample],
) -> anyhow::Result<LatencyModel> {
    if extra.is_empty() {
        return Ok(LatencyModel::from_table(table)?);
    }
    let (seed, mut samples) = table
        .calibration
        .as_ref()
        .map(|c| (c.seed, c.samples.clone()))
        .unwrap_or_default();
    samples.extend_from_slice(extra);
    let n = samples.len();
    let calibration = Calibration::from_samples(seed, n, samples);
    Ok(LatencyModel::new(table, calibration.active())?)
}

/// Evaluated candidates, best `F` first (evaluation order on ties).
fn ranked(candidates: &[Candidate]) -> Vec<Candidate> {
    let mut all = candidates.to_vec();
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    all
}
