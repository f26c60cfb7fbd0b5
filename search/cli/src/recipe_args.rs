//! Training-recipe flags shared by `hsconas supernet train` and `hsconas train`.

use std::path::{Path, PathBuf};

use clap::Args;
use hsconas_models::Layout;
use hsconas_train::nn::InitScheme;
use hsconas_train::trainer::RunOptions;
use hsconas_train::{Collective, LrScaling, SgdSettings, TrainSettings};

use super::data_args::DataArgs;

/// `--epochs`, `--batch-size`, `--lr`, `--warmup-epochs`, `--label-smoothing`, `--weight-decay`,
/// `--init`, `--max-steps`, `--out`, `--resume`, `--seed`, `--cuda`, `--threads`, `--lr-scaling`.
#[derive(Debug, Clone, Args)]
pub struct RecipeArgs {
    /// Epochs.
    #[arg(long, default_value_t = RecipeArgs::default().epochs, value_name = "E")]
    pub epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = RecipeArgs::default().batch_size, value_name = "B")]
    pub batch_size: usize,
    /// Peak learning rate (cosine schedule).
    #[arg(long, default_value_t = RecipeArgs::default().lr, value_name = "LR")]
    pub lr: f64,
    /// Epochs of linear learning-rate warm-up (default: 0 for the supernet, 5 for `hsconas train`).
    #[arg(long, value_name = "E")]
    pub warmup_epochs: Option<usize>,
    /// Label smoothing.
    #[arg(long, default_value_t = RecipeArgs::default().label_smoothing, value_name = "S")]
    pub label_smoothing: f64,
    /// Weight decay (not on batch-norm parameters and biases).
    #[arg(long, default_value_t = RecipeArgs::default().weight_decay, value_name = "WD")]
    pub weight_decay: f64,
    /// Initialisation of the convolution kernels of a fresh run: `spos` (N(0, 1/in-channels), as Single
    /// Path One-Shot does; networks leave chance level within the first epoch) or `kaiming` (fan out,
    /// torchvision's; at the default learning rate a network sits at chance for the first epochs). See
    /// docs/supernet-cifar10.md.
    #[arg(long, value_enum, default_value_t = RecipeArgs::default().init)]
    pub init: InitScheme,
    /// Stop after this many steps in all (smoke runs); a checkpoint is written there.
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Output directory (checkpoint, history, plots). Default: runs/supernet or runs/train.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run whose checkpoint is in --out.
    #[arg(long)]
    pub resume: bool,
    /// Seed of initialisation, data order, augmentation (and the supernet's paths).
    #[arg(long, default_value_t = RecipeArgs::default().seed)]
    pub seed: u64,
    /// Train on CUDA (an error if libtorch sees no GPU).
    #[arg(long)]
    pub cuda: bool,
    /// CPU threads for libtorch (default: all cores; under `mpirun`, per rank).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Under `mpirun`/`srun` with N ranks (each training on --batch-size images per step): `linear`
    /// multiplies the peak learning rate by N (Goyal et al.'s rule; give a warm-up), `none` keeps --lr.
    /// Without a launcher N is 1 and both are the same.
    #[arg(long, value_enum, default_value_t = RecipeArgs::default().lr_scaling)]
    pub lr_scaling: LrScaling,
}

/// The command line's defaults (what the flags say when absent).
impl Default for RecipeArgs {
    fn default() -> RecipeArgs {
        RecipeArgs {
            epochs: 5,
            batch_size: 64,
            lr: 0.05,
            warmup_epochs: None,
            label_smoothing: 0.0,
            weight_decay: 3e-5,
            init: InitScheme::Spos,
            max_steps: None,
            out: None,
            resume: false,
            seed: 0,
            cuda: false,
            threads: None,
            lr_scaling: LrScaling::Linear,
        }
    }
}

impl RecipeArgs {
    /// The settings, with `warmup` epochs unless `--warmup-epochs` says otherwise.
    pub fn settings(&self, warmup: usize) -> TrainSettings {
        TrainSettings {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            warmup_epochs: self.warmup_epochs.unwrap_or(warmup),
            label_smoothing: self.label_smoothing,
            sgd: SgdSettings {
                weight_decay: self.weight_decay,
                ..SgdSettings::default()
            },
            seed: self.seed,
            loader_workers: 2,
            lr_scaling: self.lr_scaling,
        }
    }

    /// `--resume` and `--max-steps` for a run in `out` by the ranks of `collective`.
    pub fn run_options<'a>(&self, out: &'a Path, collective: &'a dyn Collective) -> RunOptions<'a> {
        RunOptions {
            dir: out,
            resume: self.resume,
            max_steps: self.max_steps,
            progress: true,
            collective,
        }
    }

    /// The output directory, `default` unless `--out` is given.
    pub fn out(&self, default: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from(default))
    }

    /// Applies `--threads` and picks the device.
    pub fn device(&self) -> anyhow::Result<tch::Device> {
        if let Some(n) = self.threads {
            tch::set_num_threads(n as i32);
        }
        Ok(hsconas_train::trainer::device(self.cuda)?)
    }
}

/// A training recipe in words, as a collection's results and a refitted predictor record it: everything
/// that changes what a training reaches (the recipe, the data split, the layout, and the split whose
/// top-1 is reported). Two trainings with the same words are the same task.
pub fn recipe_words(r: &RecipeArgs, data: &DataArgs, layout: Layout, top1_split: &str) -> String {
    format!(
        "epochs={} batch={} lr={} warmup={} label-smoothing={} weight-decay={} init={} \
         train-per-class={} val-fraction={} split-seed={} resize={} layout={layout} top1={top1_split}",
        r.epochs,
        r.batch_size,
        r.lr,
        r.warmup_epochs.unwrap_or(5),
        r.label_smoothing,
        r.weight_decay,
        format!("{:?}", r.init).to_lowercase(),
        data.train_per_class
            .map_or("all".to_string(), |n| n.to_string()),
        data.val_fraction,
        data.split_seed,
        data.resize.map_or("none".to_string(), |s| s.to_string()),
    )
}
