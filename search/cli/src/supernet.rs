//! `hsconas supernet train|eval|extract`.

use hsconas_foundation::outln;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use hsconas_data::ImageSet;
use hsconas_models::{Arch, Layout, NetConfig, SearchSpace};
use hsconas_plots::{Scatter, Series, BLUE, GREY, ORANGE};
use hsconas_train::eval::EvalSettings;
use hsconas_train::nn::InitScheme;
use hsconas_train::supernet_run::{
    evaluate_subnet, EvalData, Sandwich, SubnetEvaluation, SupernetTraining,
};
use hsconas_train::trainer::{self, checkpoint_path};
use hsconas_train::{checkpoint, Collective, TrainState};
use serde::{Deserialize, Serialize};

use super::data_args::{DataArgs, Prepared};
use super::recipe_args::RecipeArgs;

#[derive(Debug, Subcommand)]
pub enum SupernetCommand {
    /// Train the weight-sharing supernet: every step a uniformly sampled path and channel scales.
    Train(TrainArgs),
    /// Accuracy of one architecture with the supernet's weights (batch norms recalibrated).
    Eval(EvalArgs),
    /// Write one architecture's weights, sliced from the supernet, as a stand-alone safetensors file.
    Extract(ExtractArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Stage widths: A, B or four comma-separated widths.
    #[arg(long, default_value_t = Layout::A, value_name = "A|B|W1,W2,W3,W4")]
    pub layout: Layout,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Search space to sample paths from (JSON, as written by a shrinking stage). Default: the full space.
    #[arg(long, value_name = "FILE")]
    pub space: Option<PathBuf>,
    /// Random subnets evaluated after every epoch (plus the widest and the narrowest); 0 skips evaluation.
    #[arg(long, default_value_t = TrainArgs::DEFAULT_EVAL_SUBNETS, value_name = "K")]
    pub eval_subnets: usize,
    /// Validation images used by the per-epoch evaluation (0: all).
    #[arg(long, default_value_t = TrainArgs::DEFAULT_EVAL_IMAGES, value_name = "N")]
    pub eval_images: usize,
    /// Training batches for batch-norm recalibration before each evaluation.
    #[arg(long, default_value_t = TrainArgs::DEFAULT_BN_BATCHES, value_name = "K")]
    pub bn_batches: usize,
    /// The sandwich rule (BigNAS, OFA): every step trains the sampled path's operators at the widest
    /// and at the narrowest scale of the space plus N random paths (the sampled one first), their
    /// losses summed into one update. A step costs about N + 2 plain steps. Default: one path per step.
    #[arg(long, value_name = "N")]
    pub sandwich: Option<usize>,
    /// With --sandwich: every path but the widest learns the widest path's predictions (in-place
    /// distillation) instead of the labels.
    #[arg(long, requires = "sandwich")]
    pub inplace_distill: bool,
}

impl TrainArgs {
    /// `--eval-subnets` when absent.
    pub const DEFAULT_EVAL_SUBNETS: usize = 3;
    /// `--eval-images` when absent.
    pub const DEFAULT_EVAL_IMAGES: usize = 1000;
    /// `--bn-batches` when absent.
    pub const DEFAULT_BN_BATCHES: usize = 10;

    /// Training the supernet on `data` with every other flag at its default.
    pub fn new(data: DataArgs) -> TrainArgs {
        TrainArgs {
            data,
            layout: Layout::A,
            recipe: RecipeArgs::default(),
            space: None,
            eval_subnets: TrainArgs::DEFAULT_EVAL_SUBNETS,
            eval_images: TrainArgs::DEFAULT_EVAL_IMAGES,
            bn_batches: TrainArgs::DEFAULT_BN_BATCHES,
            sandwich: None,
            inplace_distill: false,
        }
    }

    /// The sandwich rule the flags ask for.
    pub fn sandwich(&self) -> Option<Sandwich> {
        self.sandwich.map(|random| Sandwich {
            random,
            distill: self.inplace_distill,
        })
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Supernet checkpoint (`checkpoint.safetensors` of a training run).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Architecture string.
    #[arg(long, value_name = "STR")]
    arch: String,
    #[command(flatten)]
    data: DataArgs,
    /// Training batches for batch-norm recalibration.
    #[arg(long, default_value_t = 20, value_name = "K")]
    bn_batches: usize,
    /// Evaluate on the test split instead of the validation split.
    #[arg(long)]
    test: bool,
    /// Use CUDA.
    #[arg(long)]
    cuda: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Supernet checkpoint.
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Architecture string.
    #[arg(long, value_name = "STR")]
    arch: String,
    /// Output safetensors file (the parameter names of docs/DESIGN.md section 2, e.g. `layers.3.main.0.weight`).
    #[arg(long, value_name = "FILE.safetensors")]
    out: PathBuf,
}

/// How the supernet of a run is built (stored in its checkpoint; a resume must match it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SupernetModel {
    kind: String,
    pub(super) config: NetConfig,
    space: SearchSpace,
    /// Initialisation of a fresh run. Kaiming is not written, so descriptions of checkpoints from before
    /// this field existed (all Kaiming) still match.
    #[serde(default, skip_serializing_if = "InitScheme::is_kaiming")]
    init: InitScheme,
    /// How many paths a step trains (absent: one, as every checkpoint before this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sandwich: Option<Sandwich>,
}

/// `hsconas supernet ...`; `train` by every rank of `collective`, the others in one process.
pub fn run(cmd: SupernetCommand, collective: &dyn Collective) -> anyhow::Result<()> {
    match cmd {
        SupernetCommand::Train(args) => train(args, collective),
        SupernetCommand::Eval(args) => eval(args),
        SupernetCommand::Extract(args) => extract(args),
    }
}

fn train(args: TrainArgs, collective: &dyn Collective) -> anyhow::Result<()> {
    // The space file first: a bad one is refused before the data is decoded.
    let space = match &args.space {
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a valid search space", path.display()))?,
        None => SearchSpace::full(),
    };
    let device = args.recipe.device()?;
    let data = args.data.prepare()?;
    let config = data.net_config(args.layout)?;
    let model = SupernetModel::new(config, space.clone(), args.recipe.init, args.sandwich());
    let seed = args.recipe.seed;
    let mut training = SupernetTraining::new(config, space, seed, args.recipe.init, device)?;
    training.sandwich = args.sandwich();
    if args.eval_subnets > 0 {
        let val = spread_subset(&data.val, args.eval_images);
        training.eval = Some((
            EvalData {
                train: data.train.clone(),
                val,
                transform: data.transform.clone(),
            },
            EvalSettings {
                bn_batches: args.bn_batches,
                batch_size: 200,
                seed,
            },
            args.eval_subnets,
        ));
    }
    let settings = args.recipe.settings(0);
    let out = args.recipe.out("runs/supernet");
    let root = collective.is_root();
    if root {
        eprintln!(
        "supernet: layout {}, input {}, {} classes; {} training and {} validation images ({}), {:?}",
        config.layout,
        config.input_size,
        config.classes,
        data.train.len(),
        data.val.len(),
        data.format,
        device
    );
    }
    let state = trainer::train(
        &mut training,
        serde_json::to_value(&model)?,
        data.train.clone(),
        data.transform.clone(),
        &settings,
        &args.recipe.run_options(&out, collective),
    )?;
    if !root {
        return Ok(());
    }
    write_history(&out, &state)?;
    eprintln!(
        "{} epochs, {} steps; checkpoint {}",
        state.epochs_done,
        state.step,
        checkpoint_path(&out).display()
    );
    Ok(())
}

/// `history.json` and, when there are evaluations, `curve.png` (accuracy per epoch).
pub fn write_history(dir: &Path, state: &TrainState) -> anyhow::Result<()> {
    hsconas_foundation::write_atomic(
        &dir.join("history.json"),
        &serde_json::to_vec_pretty(&state.history)?,
    )?;
    let points = |key: &str| -> Vec<(f64, f64)> {
        state
            .history
            .iter()
            .filter_map(|r| r.eval[key].as_f64().map(|v| (r.epoch as f64, v)))
            .collect()
    };
    if points("widest_top1").is_empty() {
        return Ok(());
    }
    Ok(Scatter {
        title: "supernet: validation top-1 of subnets after each epoch",
        x_label: "epoch",
        y_label: "top-1 (%)",
        series: vec![
            Series {
                label: "widest (scale 1.0)",
                color: BLUE,
                points: points("widest_top1"),
            },
            Series {
                label: "random subnets (mean)",
                color: ORANGE,
                points: points("sampled_mean_top1"),
            },
            Series {
                label: "narrowest (scale 0.1)",
                color: GREY,
                points: points("narrowest_top1"),
            },
        ],
        identity: None,
    }
    .draw(&dir.join("curve.png"))?)
}

/// Builds the supernet a checkpoint was trained as and loads it.
impl SupernetModel {
    /// The description of a supernet trained in `space` (what its checkpoint records).
    pub(super) fn new(
        config: NetConfig,
        space: SearchSpace,
        init: InitScheme,
        sandwich: Option<Sandwich>,
    ) -> SupernetModel {
        SupernetModel {
            kind: "supernet".into(),
            config,
            space,
            init,
            sandwich,
        }
    }

    /// The same supernet, trained further in `space` (a fine-tuning after shrinking).
    pub(super) fn in_space(&self, space: SearchSpace) -> SupernetModel {
        SupernetModel {
            space,
            ..self.clone()
        }
    }
}

pub(super) fn load_supernet(
    path: &Path,
    device: tch::Device,
) -> anyhow::Result<(SupernetTraining, SupernetModel)> {
    let state: TrainState = checkpoint::read_state(path)?;
    let model: SupernetModel = serde_json::from_value(state.model.clone())
        .with_context(|| format!("{} is not a supernet checkpoint", path.display()))?;
    let mut training =
        SupernetTraining::new(model.config, model.space.clone(), 0, model.init, device)?;
    // Fine-tuning it further (after a shrinking stage) trains the way it was trained.
    training.sandwich = model.sandwich;
    checkpoint::load::<TrainState>(path, &mut training.vs)?;
    Ok((training, model))
}

/// `n` images spread evenly over `set` (all of them when `n` is 0 or not smaller).
pub(super) fn spread_subset(set: &Arc<ImageSet>, n: usize) -> Arc<ImageSet> {
    if n == 0 || n >= set.len() {
        return set.clone();
    }
    let step = set.len() as f64 / n as f64;
    let idx: Vec<usize> = (0..n).map(|i| (i as f64 * step) as usize).collect();
    Arc::new(set.subset(&idx))
}

/// Refuses data whose image size or class count is not the supernet's.
pub(super) fn ensure_data_matches(data: &Prepared, config: &NetConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        data.train.height == config.input_size && data.train.classes.len() == config.classes,
        "the data ({}x{} images, {} classes) does not match the supernet (input {}, {} classes)",
        data.train.width,
        data.train.height,
        data.train.classes.len(),
        config.input_size,
        config.classes
    );
    Ok(())
}

fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let arch: Arch = args.arch.parse().context("invalid --arch")?;
    let device = trainer::device(args.cuda)?;
    let (training, model) = load_supernet(&args.checkpoint, device)?;
    let data = args.data.prepare()?;
    ensure_data_matches(&data, &model.config)?;
    let val = match (args.test, &data.test) {
        (true, Some(test)) => test.clone(),
        (true, None) => anyhow::bail!("the dataset has no test split"),
        (false, _) => data.val.clone(),
    };
    let eval_data = EvalData {
        train: data.train.clone(),
        val,
        transform: data.transform.clone(),
    };
    let settings = EvalSettings {
        bn_batches: args.bn_batches,
        ..EvalSettings::default()
    };
    let start = std::time::Instant::now();
    let acc = evaluate_subnet(&training.supernet, &arch, &eval_data, &settings, device);
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&SubnetEvaluation {
                arch: arch.to_string(),
                split: if args.test { "test" } else { "val" }.into(),
                top1: acc.top1,
                top5: acc.top5,
                images: acc.images,
                seconds,
            })?
        )?;
    } else {
        outln!(
            "top-1 {:.2}%{} on {} {} images ({seconds:.1} s)",
            acc.top1,
            acc.top5
                .map(|t| format!(", top-5 {t:.2}%"))
                .unwrap_or_default(),
            acc.images,
            if args.test { "test" } else { "validation" }
        )?;
    }
    Ok(())
}

fn extract(args: ExtractArgs) -> anyhow::Result<()> {
    let arch: Arch = args.arch.parse().context("invalid --arch")?;
    let (training, _) = load_supernet(&args.checkpoint, tch::Device::Cpu)?;
    let weights = training.supernet.extract(&arch)?;
    weights.save_safetensors(&args.out)?;
    eprintln!("wrote {} ({} tensors)", args.out.display(), weights.len());
    Ok(())
}
