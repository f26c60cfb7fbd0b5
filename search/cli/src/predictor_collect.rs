//! `hsconas predictor collect`: train a designed sample of the space on the user's data, resumably, and
//! keep the results file that `hsconas predictor fit` reads up to date.
//!
//! The folder (`--out`) holds `collect.json` (what the collection trains on and how: a rerun with other
//! data or another recipe is refused), `plan.tsv` (the networks, fixed once), `runs/<id>-s<seed>/` (one
//! `hsconas train` run each, resumed from its checkpoint) and `results.tsv` (rebuilt atomically from the
//! finished runs after each one).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_export::{ModelInfo, MODEL_INFO_FILE};
use hsconas_foundation::{outln, write_atomic};
use hsconas_models::{build, Layout, NetConfig};
use hsconas_nas::predictor::{results_tsv, CollectedRun, Plan};
use hsconas_train::trainer::checkpoint_path;
use hsconas_train::{Collective, SingleProcess};
use serde::{Deserialize, Serialize};

use super::data_args::{DataArgs, Prepared};
use super::recipe_args::{recipe_words, RecipeArgs};
use super::train::{train_prepared, TrainArgs};

/// Networks of a new plan when `--networks` is not given.
const DEFAULT_NETWORKS: usize = 24;
/// Steps timed for the cost estimate (with the set-up, so the estimate errs high).
const ESTIMATE_STEPS: u64 = 10;
/// Version of `collect.json`.
const COLLECTION_FORMAT: u32 = 1;

#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Networks of a new plan (about a fifth uniform scalings, three tenths of one cost, the rest spread
    /// over the cost) [default: 24; a folder with a plan keeps it].
    #[arg(long, value_name = "N")]
    networks: Option<usize>,
    /// Latency table whose predicted latency spreads the sample (the target device's; default: MACs).
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    /// Seed of the plan's random draws.
    #[arg(long, default_value_t = 0, value_name = "N")]
    plan_seed: u64,
    /// Trainings per network, with seeds --seed, --seed + 1, ... (a collection may be rerun with more
    /// to add seeds to every network)
    #[arg(long, default_value_t = 1, value_name = "K")]
    seeds: u64,
    /// Stage widths of the networks.
    #[arg(long, default_value_t = Layout::A, value_name = "A|B|W1,W2,W3,W4")]
    layout: Layout,
    /// Write the plan and the collection's settings, print the plan and the cost estimate, and stop
    /// (nothing is kept from the timing steps).
    #[arg(long)]
    plan_only: bool,
    /// Skip the cost estimate (a few timed steps of the largest network before the first training).
    #[arg(long)]
    no_estimate: bool,
    /// Trainings run side by side, each a process of its own with --threads (default: cores / J).
    #[arg(long, default_value_t = 1, value_name = "J")]
    jobs: usize,
    /// This process's share, K/J: the trainings i with i % J == K (set by --jobs for its workers).
    #[arg(long, value_name = "K/J", hide = true)]
    part: Option<String>,
    #[command(flatten)]
    recipe: RecipeArgs,
}

/// What a collection trains on and how (`collect.json`); every rerun must say the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Collection {
    format: u32,
    /// The data's file or folder name.
    data: String,
    /// The recipe and data settings in words (the results' `recipe` column).
    recipe: String,
    /// Trainings per network.
    seeds: u64,
    /// The first seed (`--seed`; the others follow it).
    #[serde(default)]
    first_seed: u64,
}

impl CollectArgs {
    fn folder(&self) -> anyhow::Result<&Path> {
        self.recipe.out.as_deref().context(
            "say where the collection lives: --out DIR (rerun with the same DIR to resume)",
        )
    }

    /// The recipe in words ([`recipe_words`]).
    fn recipe_words(&self, top1_split: &str) -> String {
        recipe_words(&self.recipe, &self.data, self.layout, top1_split)
    }

    /// `(K, J)` of `--part`, or of the MPI job.
    fn part(&self, collective: &dyn Collective) -> anyhow::Result<(usize, usize)> {
        let Some(text) = &self.part else {
            return Ok((collective.rank(), collective.size()));
        };
        let parsed = text
            .split_once('/')
            .and_then(|(k, j)| Some((k.parse().ok()?, j.parse().ok()?)));
        match parsed {
            Some((k, j)) if k < j => Ok((k, j)),
            _ => anyhow::bail!("--part is K/J with K < J, got '{text}'"),
        }
    }
}

pub fn run(args: CollectArgs, collective: &dyn Collective) -> anyhow::Result<()> {
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    anyhow::ensure!(args.jobs >= 1, "--jobs must be at least 1");
    anyhow::ensure!(
        !(args.recipe.resume || args.recipe.max_steps.is_some() && args.jobs > 1),
        "collect always resumes (no --resume needed), and --max-steps is for one process (no --jobs)"
    );
    anyhow::ensure!(
        args.jobs == 1 || collective.size() == 1,
        "under mpirun the ranks share the trainings already: leave out --jobs"
    );
    anyhow::ensure!(
        args.recipe.max_steps.is_none() || collective.size() == 1,
        "--max-steps stops one process's training; under mpirun the other ranks would wait for it"
    );
    let dir = args.folder()?.to_path_buf();
    let data = args.data.prepare()?;
    let config = data.net_config(args.layout)?;
    let top1_split = if data.test.is_some() {
        "test"
    } else {
        "validation"
    };
    let collection = Collection {
        format: COLLECTION_FORMAT,
        data: data.source.clone(),
        recipe: args.recipe_words(top1_split),
        seeds: args.seeds,
        first_seed: args.recipe.seed,
    };
    let plan = shared_plan(&args, &dir, &collection, &config, collective)?;
    let parent = collective.is_root() && args.part.is_none();
    if parent && args.plan_only {
        print_plan(&plan, &dir)?;
    }
    let left = (plan.networks.len() as u64 * args.seeds) as usize
        - finished_runs(&dir, &plan, &collection)?.len();
    if parent && !args.no_estimate && left > 0 {
        estimate_cost(&args, &plan, &data, &config, left, collective.size())?;
    }
    if args.plan_only {
        return Ok(());
    }
    if args.jobs > 1 {
        let workers = run_workers(&args, &dir);
        // What the workers finished is kept whether or not one of them failed.
        let runs = rebuild_results(&dir, &plan, &collection)?;
        workers?;
        return summary(&dir, &plan, &collection, runs.len());
    }
    let (part, parts) = args.part(collective)?;
    let all: Vec<(usize, u64)> = (0..args.seeds)
        .flat_map(|s| (0..plan.networks.len()).map(move |n| (n, args.recipe.seed + s)))
        .collect();
    let mine: Vec<(usize, u64)> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % parts == part)
        .map(|(_, t)| *t)
        .collect();
    let single = SingleProcess;
    let (started, mut trained) = (Instant::now(), 0usize);
    for (done, &(n, seed)) in mine.iter().enumerate() {
        let network = &plan.networks[n];
        let out = run_dir(&dir, &network.id, seed);
        if out.join(MODEL_INFO_FILE).is_file() {
            continue;
        }
        hsconas_foundation::errln!(
            "[{}/{}] {} ({}, seed {seed}) into {}",
            done + 1,
            mine.len(),
            network.id,
            network.group.name(),
            out.display()
        );
        let mut train = TrainArgs::new(network.arch.to_string(), args.data.clone());
        train.layout = args.layout;
        train.recipe = RecipeArgs {
            out: Some(out.clone()),
            resume: checkpoint_path(&out).is_file(),
            seed,
            ..args.recipe.clone()
        };
        let finished = train_prepared(&train, &data, &single)?;
        if finished.is_none() {
            hsconas_foundation::errln!(
                "stopped at --max-steps (steps of the run in all): rerun with a larger one, or without \
                 it, to continue"
            );
            return Ok(());
        }
        trained += 1;
        let runs = rebuild_results(&dir, &plan, &collection)?;
        let left = mine.len() - done - 1;
        let per_run = started.elapsed().as_secs_f64() / trained as f64;
        hsconas_foundation::errln!(
            "{} of {} trainings finished; this process has {left} left, about {} at {} each",
            runs.len(),
            all.len(),
            duration(per_run * left as f64),
            duration(per_run)
        );
    }
    if collective.size() > 1 {
        // Every rank's share is done before rank 0 writes the last results file and the summary.
        collective.all_reduce_sum_f64(&mut [0.0]);
    }
    if args.part.is_none() && collective.is_root() {
        let runs = rebuild_results(&dir, &plan, &collection)?;
        summary(&dir, &plan, &collection, runs.len())?;
    }
    Ok(())
}

/// The plan, as rank 0 prepares it ([`prepare_folder`]) and sends it to the other ranks of an MPI job.
fn shared_plan(
    args: &CollectArgs,
    dir: &Path,
    collection: &Collection,
    config: &NetConfig,
    collective: &dyn Collective,
) -> anyhow::Result<Plan> {
    if collective.size() == 1 {
        return prepare_folder(args, dir, collection, config, collective);
    }
    let prepared = collective
        .is_root()
        .then(|| prepare_folder(args, dir, collection, config, collective));
    let mut bytes = match &prepared {
        Some(Ok(plan)) => plan.to_tsv().into_bytes(),
        _ => Vec::new(),
    };
    collective.broadcast_bytes(&mut bytes);
    if let Some(prepared) = prepared {
        return prepared;
    }
    anyhow::ensure!(
        !bytes.is_empty(),
        "rank 0 could not prepare the collection (its error says why)"
    );
    Plan::from_tsv(&String::from_utf8_lossy(&bytes))
        .map_err(|why| anyhow::anyhow!("the plan from rank 0: {why}"))
}

/// Creates or checks `collect.json` and `plan.tsv` (rank 0 / the parent writes; workers only read).
fn prepare_folder(
    args: &CollectArgs,
    dir: &Path,
    collection: &Collection,
    config: &NetConfig,
    collective: &dyn Collective,
) -> anyhow::Result<Plan> {
    let (settings_path, plan_path) = (dir.join("collect.json"), dir.join("plan.tsv"));
    let writer = collective.is_root() && args.part.is_none();
    if settings_path.is_file() {
        let text = std::fs::read_to_string(&settings_path)?;
        let stored: Collection = serde_json::from_str(&text).with_context(|| {
            format!("{} is not a collection's settings", settings_path.display())
        })?;
        for (what, was, now) in [
            ("data", &stored.data, &collection.data),
            ("recipe", &stored.recipe, &collection.recipe),
        ] {
            anyhow::ensure!(
                was == now,
                "{} was collected with another {what} ({}): one collection holds one task and recipe \
                 (use the same flags, or another --out)",
                dir.display(),
                differences(was, now)
            );
        }
        // More seeds add trainings to a collection; fewer, or other ones, would hide some.
        anyhow::ensure!(
            stored.first_seed == collection.first_seed && stored.seeds <= collection.seeds,
            "{} was collected with --seeds {} from --seed {}; this run says --seeds {} from --seed {} \
             (a collection can grow by seeds, from the same --seed, never lose any)",
            dir.display(),
            stored.seeds,
            stored.first_seed,
            collection.seeds,
            collection.first_seed
        );
        if writer && stored.seeds < collection.seeds {
            write_atomic(&settings_path, &serde_json::to_vec_pretty(collection)?)?;
        }
    } else if writer {
        std::fs::create_dir_all(dir)?;
        write_atomic(&settings_path, &serde_json::to_vec_pretty(collection)?)?;
    }
    if plan_path.is_file() {
        let text = std::fs::read_to_string(&plan_path)?;
        let plan = Plan::from_tsv(&text)
            .map_err(|why| anyhow::anyhow!("{}: {why}", plan_path.display()))?;
        if let Some(n) = args.networks {
            anyhow::ensure!(
                n == plan.networks.len(),
                "{} plans {} networks; --networks {n} asks for another plan (leave it out, or use \
                 another --out)",
                plan_path.display(),
                plan.networks.len()
            );
        }
        return Ok(plan);
    }
    anyhow::ensure!(
        writer,
        "{} has no plan yet: start without --part",
        dir.display()
    );
    let networks = args.networks.unwrap_or(DEFAULT_NETWORKS);
    let plan = match &args.table {
        Some(path) => {
            // The table is the deployment device's: it need not describe this (training) machine.
            let table = LatencyTable::load(path)?;
            let model = LatencyModel::from_table(&table)?;
            Plan::design(networks, args.plan_seed, "predicted_ms", |a| {
                model.predict_ms(a)
            })
        }
        None => Plan::design(networks, args.plan_seed, "mmacs", |a| {
            build::network(a, config).map_or(f64::NAN, |g| g.macs() as f64 / 1e6)
        }),
    }
    .map_err(|why| anyhow::anyhow!("designing the sample: {why}"))?;
    write_atomic(&plan_path, plan.to_tsv().as_bytes())?;
    Ok(plan)
}

/// The words of `was` and `now` (space-separated `key=value`s, or one name) that differ, as
/// `was -> now`.
fn differences(was: &str, now: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (was.split(' ').collect(), now.split(' ').collect());
    if a.len() != b.len() {
        return format!("'{was}', now '{now}'");
    }
    a.iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("{x} -> {y}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn run_dir(dir: &Path, id: &str, seed: u64) -> PathBuf {
    dir.join("runs").join(format!("{id}-s{seed}"))
}

/// Reads every finished run of the plan and writes `results.tsv` atomically; returns the runs.
fn rebuild_results(
    dir: &Path,
    plan: &Plan,
    collection: &Collection,
) -> anyhow::Result<Vec<CollectedRun>> {
    let runs = finished_runs(dir, plan, collection)?;
    let text = results_tsv(&runs, &collection.data, &collection.recipe);
    write_atomic(&dir.join("results.tsv"), text.as_bytes())?;
    Ok(runs)
}

/// The finished runs (a `model.json` beside the weights) of the plan's networks and the collection's
/// seeds, in plan order.
fn finished_runs(
    dir: &Path,
    plan: &Plan,
    collection: &Collection,
) -> anyhow::Result<Vec<CollectedRun>> {
    let test = collection.recipe.ends_with("top1=test");
    let seeds = collection.first_seed..collection.first_seed + collection.seeds;
    let mut runs = Vec::new();
    for network in &plan.networks {
        for seed in seeds.clone() {
            let path = run_dir(dir, &network.id, seed).join(MODEL_INFO_FILE);
            if !path.is_file() {
                continue;
            }
            let info = ModelInfo::load(&path)?;
            let (accuracy, split) = if test {
                (info.test, "test")
            } else {
                (info.val, "validation")
            };
            let top1 = accuracy
                .with_context(|| format!("{} has no {split} accuracy", path.display()))?
                .top1;
            anyhow::ensure!(
                info.architecture == network.arch.to_string(),
                "{} trained {}, but the plan's {} is {}",
                path.display(),
                info.architecture,
                network.id,
                network.arch
            );
            runs.push(CollectedRun {
                id: network.id.clone(),
                seed,
                arch: network.arch.clone(),
                top1,
            });
        }
    }
    Ok(runs)
}

/// Runs `--jobs` copies of this command, each with its `--part` and a share of the cores.
fn run_workers(args: &CollectArgs, dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.recipe.threads.unwrap_or((cores / args.jobs).max(1));
    let mut passed: Vec<String> = Vec::new();
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        match arg.as_str() {
            "--jobs" | "--threads" => {
                given.next();
            }
            a if a.starts_with("--jobs=") || a.starts_with("--threads=") => {}
            _ => passed.push(arg),
        }
    }
    hsconas_foundation::errln!(
        "{} trainings side by side, {threads} thread(s) each; logs in {}/worker-K.log",
        args.jobs,
        dir.display()
    );
    let mut children = Vec::new();
    for k in 0..args.jobs {
        let log = std::fs::File::create(dir.join(format!("worker-{k}.log")))?;
        let child = std::process::Command::new(&exe)
            .args(&passed)
            .args(["--part", &format!("{k}/{}", args.jobs)])
            .args(["--threads", &threads.to_string()])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting worker {k}"))?;
        children.push(child);
    }
    let mut failed = Vec::new();
    for (k, mut child) in children.into_iter().enumerate() {
        if !child.wait()?.success() {
            failed.push(k);
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "worker(s) {failed:?} failed: see {}/worker-K.log; rerun to continue where they stopped",
        dir.display()
    );
    Ok(())
}

/// Trains the plan's largest network (by MACs) for [`ESTIMATE_STEPS`] steps in `DIR/estimate` (removed
/// after) and
/// Trains the plan's largest network (by MACs) for up to [`ESTIMATE_STEPS`] steps in `DIR/estimate`
/// (removed after), with the threads each training will have, and prints what `left` trainings cost at
/// that speed, `parallel` at a time (the `--jobs` workers or the MPI ranks): an upper bound for the
/// training steps, the smaller networks run faster; the evaluation after each epoch is not counted.
fn estimate_cost(
    args: &CollectArgs,
    plan: &Plan,
    data: &Prepared,
    config: &NetConfig,
    left: usize,
    ranks: usize,
) -> anyhow::Result<()> {
    let largest = plan
        .networks
        .iter()
        .max_by_key(|n| build::network(&n.arch, config).map_or(0, |g| g.macs()))
        .context("an empty plan")?;
    let scratch = args.folder()?.join("estimate");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    // The trainer's epochs are whole batches.
    let per_epoch = (data.train.len() / args.recipe.batch_size).max(1) as u64;
    let steps = per_epoch * args.recipe.epochs as u64;
    let timed = ESTIMATE_STEPS.min(steps);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut train = TrainArgs::new(largest.arch.to_string(), args.data.clone());
    train.layout = args.layout;
    train.recipe = RecipeArgs {
        out: Some(scratch.clone()),
        resume: false,
        max_steps: Some(timed),
        // What a --jobs worker gets (run_workers).
        threads: args
            .recipe
            .threads
            .or((args.jobs > 1).then_some((cores / args.jobs).max(1))),
        ..args.recipe.clone()
    };
    hsconas_foundation::errln!(
        "estimating the cost: {timed} steps of the largest network, {}",
        largest.id
    );
    let started = Instant::now();
    train_prepared(&train, data, &SingleProcess)?;
    let per_step = started.elapsed().as_secs_f64() / timed as f64;
    std::fs::remove_dir_all(&scratch)?;
    let parallel = args.jobs.max(ranks).max(1);
    hsconas_foundation::errln!(
        "{left} trainings of {steps} steps left: at most about {} of training steps ({} per training at \
         the largest network's {:.2} s per step{}; evaluations come on top)",
        duration(per_step * steps as f64 * left.div_ceil(parallel) as f64),
        duration(per_step * steps as f64),
        per_step,
        if parallel > 1 {
            format!(", {parallel} side by side")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn print_plan(plan: &Plan, dir: &Path) -> anyhow::Result<()> {
    outln!("{}", plan.to_tsv().trim_end())?;
    hsconas_foundation::errln!(
        "plan of {} networks in {}; rerun without --plan-only to train them",
        plan.networks.len(),
        dir.join("plan.tsv").display()
    );
    Ok(())
}

fn summary(
    dir: &Path,
    plan: &Plan,
    collection: &Collection,
    finished: usize,
) -> anyhow::Result<()> {
    let wanted = plan.networks.len() as u64 * collection.seeds;
    outln!(
        "{finished} of {wanted} trainings finished; results in {} (fit them: hsconas predictor fit \
         --results {} --out predictor.json)",
        dir.join("results.tsv").display(),
        dir.join("results.tsv").display()
    )?;
    Ok(())
}

fn duration(seconds: f64) -> String {
    if seconds >= 5400.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.0} min", (seconds / 60.0).ceil())
    }
}
