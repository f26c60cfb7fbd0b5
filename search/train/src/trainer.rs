//! The training loop shared by the supernet and stand-alone networks: SGD with momentum, cosine learning
//! rate with warm-up, label smoothing, gradient clipping, a progress bar with loss, accuracy and images/s,
//! and a checkpoint after every epoch (and when `max_steps` stops a run) that `resume` continues exactly.

use crate::TrainError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hsconas_foundation::progress::progress_bar;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Reduction, Tensor};

use crate::checkpoint;
use crate::collective::{mean_over_ranks, Collective, LrScaling, SingleProcess};
use crate::eval::batch_tensors;
use crate::sgd::{cosine_lr, Communication, Sgd, SgdSettings};
use hsconas_data::loader::batches_per_epoch;
use hsconas_data::{shard_batches, ImageSet, LoaderSettings, Shard, Transform};

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Epochs.
    pub epochs: usize,
    /// Images per step (per rank in a data-parallel job).
    pub batch_size: usize,
    /// Peak learning rate (of one process; see `lr_scaling`).
    pub lr: f64,
    /// Epochs of linear warm-up.
    pub warmup_epochs: usize,
    /// Label smoothing (0 for none).
    pub label_smoothing: f64,
    /// Optimiser.
    pub sgd: SgdSettings,
    /// Seed of data order, augmentation and sampled paths.
    pub seed: u64,
    /// Threads preparing batches.
    pub loader_workers: usize,
    /// How the peak learning rate follows the number of ranks of a data-parallel job.
    #[serde(default)]
    pub lr_scaling: LrScaling,
}

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training top-1 on the augmented batches, percent.
    pub train_top1: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Training images per second (all ranks together).
    pub images_per_s: f64,
    /// Evaluation after the epoch (free-form: the caller's numbers).
    #[serde(default)]
    pub eval: serde_json::Value,
    /// Gradient averaging over the ranks of a data-parallel run (this rank's view; absent for one process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication: Option<Communication>,
}

/// Everything a checkpoint needs besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// What is trained (`supernet`, `standalone`) and how it is built (layout, input size, architecture,
    /// space): a resumed run must build the same network.
    pub model: serde_json::Value,
    /// Settings.
    pub settings: TrainSettings,
    /// Normalisation and augmentation.
    pub transform: Transform,
    /// Finished epochs.
    pub epochs_done: usize,
    /// Batches of the one-process epoch done in the current (unfinished) epoch (a step of `n` ranks does
    /// `n`).
    pub batches_in_epoch: usize,
    /// Optimiser steps so far.
    pub step: u64,
    /// Finished epochs' records.
    pub history: Vec<EpochRecord>,
}

/// What one training step back-propagates and reports.
pub struct StepLoss {
    /// The loss whose gradient the step applies.
    pub objective: Tensor,
    /// The loss the progress and the epoch record report: the main path's cross-entropy with the labels
    /// (equal to `objective` unless the model trains several paths per step).
    pub reported: Tensor,
    /// The logits the training accuracy is counted on (the main path's).
    pub logits: Tensor,
}

impl StepLoss {
    /// The loss of one path's `logits`: its cross-entropy with the labels `y`, back-propagated and reported.
    pub fn single_path(logits: Tensor, y: &Tensor, label_smoothing: f64) -> StepLoss {
        let loss = cross_entropy(&logits, y, label_smoothing);
        StepLoss {
            objective: loss.shallow_clone(),
            reported: loss,
            logits,
        }
    }
}

/// Mean cross-entropy of `logits` against the labels `y`, with label smoothing.
pub fn cross_entropy(logits: &Tensor, y: &Tensor, label_smoothing: f64) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, label_smoothing)
}

/// The model being trained, as the loop sees it.
pub trait Trainable {
    /// Its variables.
    fn var_store(&self) -> &nn::VarStore;
    /// Training-mode logits for step `step` (the supernet samples its path from the step).
    fn forward_train(&self, x: &Tensor, step: u64) -> Tensor;
    /// The loss of step `step` on the batch `(x, y)`. The default is the cross-entropy of
    /// [`Trainable::forward_train`]; a model that trains several paths per step (the supernet's sandwich
    /// rule) returns their summed losses as the objective.
    fn step_loss(&self, x: &Tensor, y: &Tensor, step: u64, label_smoothing: f64) -> StepLoss {
        StepLoss::single_path(self.forward_train(x, step), y, label_smoothing)
    }
    /// Evaluation after an epoch (stored in the epoch's record).
    fn evaluate(&self, epoch: usize) -> serde_json::Value;
}

/// Where the checkpoint of a run in `dir` lives.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// Where and how a call of [`train`] runs.
pub struct RunOptions<'a> {
    /// Output directory: the checkpoint (written by rank 0 only).
    pub dir: &'a Path,
    /// Continue the run whose checkpoint is in `dir` (it must describe the same model).
    pub resume: bool,
    /// Stop after this many optimiser steps in all (a checkpoint is written there).
    pub max_steps: Option<u64>,
    /// Show a progress bar (rank 0 only).
    pub progress: bool,
    /// The ranks of a data-parallel job ([`SingleProcess`] for one process).
    pub collective: &'a dyn Collective,
}

impl<'a> RunOptions<'a> {
    /// One process writing to `dir`, from scratch, to the end, with a progress bar.
    pub fn single(dir: &'a Path) -> RunOptions<'a> {
        RunOptions {
            dir,
            resume: false,
            max_steps: None,
            progress: true,
            collective: &SingleProcess,
        }
    }
}

/// Trains `model` on `train` until `settings.epochs` (or `max_steps` steps in all), checkpointing in `dir`.
/// With `resume`, continues the run whose checkpoint is in `dir` (it must describe the same model).
///
/// Data-parallel (`collective` of `n > 1` ranks, each running this function on the same model and data):
/// rank 0 reads or creates the starting point and sends it to the others, so all replicas start identical;
/// each step every rank trains on its own batch of the epoch (batches `i, i + n, ...` of the one-process
/// order, [`shard_batches`]) with the same sampled path, and the gradients are averaged before the update;
/// the peak learning rate follows `settings.lr_scaling`; batch-norm statistics are averaged over the ranks
/// before each checkpoint, which rank 0 alone writes. Progress (`state.batches_in_epoch`, the schedule)
/// counts batches of the one-process epoch, so a checkpoint written by any number of ranks resumes with
/// any other number.
pub fn train(
    model: &mut dyn TrainableMut,
    model_description: serde_json::Value,
    train: Arc<ImageSet>,
    transform: Transform,
    settings: &TrainSettings,
    run: &RunOptions<'_>,
) -> Result<TrainState, TrainError> {
    let collective = run.collective;
    let ranks = collective.size();
    if settings.batch_size == 0 || settings.epochs == 0 {
        return Err(TrainError::Invalid(
            "epochs and the batch size must be at least 1".into(),
        ));
    }
    let loader = LoaderSettings {
        batch_size: settings.batch_size,
        train: true,
        drop_last: true,
        seed: settings.seed,
        prefetch: 4,
        workers: settings.loader_workers,
    };
    let per_epoch = batches_per_epoch(train.len(), &loader);
    if per_epoch < ranks {
        return Err(TrainError::Invalid(format!(
            "{} training images make {per_epoch} full batches of {}: {ranks} ranks need at least {ranks}",
            train.len(),
            settings.batch_size,
        )));
    }
    let ckpt = checkpoint_path(run.dir);
    if collective.is_root() {
        std::fs::create_dir_all(run.dir).map_err(|source| {
            TrainError::Fs(hsconas_foundation::FsError::new(
                "creating", run.dir, source,
            ))
        })?;
    }
    let mut opt = Sgd::new(model.var_store(), settings.sgd.clone());
    let fresh = TrainState {
        model: model_description.clone(),
        settings: settings.clone(),
        transform: transform.clone(),
        epochs_done: 0,
        batches_in_epoch: 0,
        step: 0,
        history: Vec::new(),
    };
    let mut state = starting_point(model, &mut opt, fresh, &ckpt, run)?;
    let device = model.var_store().device();
    let total = (settings.epochs * per_epoch) as u64;
    let warmup = (settings.warmup_epochs * per_epoch) as u64;
    let peak_lr = settings.lr_scaling.peak(settings.lr, ranks);
    let shard = Shard {
        index: collective.rank(),
        count: ranks,
    };
    let progress = run.progress && collective.is_root();
    let save = |model: &dyn TrainableMut, opt: &Sgd, state: &TrainState| {
        average_buffers(model.var_store(), collective);
        if collective.is_root() {
            checkpoint::save(&ckpt, model.var_store(), opt.buffers(), state)
        } else {
            Ok(())
        }
    };
    let transform = Arc::new(state.transform.clone());
    while state.epochs_done < settings.epochs {
        let epoch = state.epochs_done;
        let steps = shard.steps(per_epoch, state.batches_in_epoch);
        let bar = epoch_bar(steps, epoch + 1, settings.epochs, progress);
        let start = Instant::now();
        // Loss sum, correct predictions, images: this rank's, summed over the ranks at the end of the epoch.
        let mut sums = [0.0f64; 3];
        let mut lr = peak_lr;
        for batch in shard_batches(
            train.clone(),
            transform.clone(),
            &loader,
            epoch,
            state.batches_in_epoch,
            shard,
        ) {
            if run.max_steps.is_some_and(|m| state.step >= m) {
                save(model, &opt, &state)?;
                bar.abandon_with_message("stopped at --max-steps");
                return Ok(state);
            }
            let done = (epoch * per_epoch + state.batches_in_epoch) as u64;
            lr = cosine_lr(peak_lr, done, total, warmup);
            let (x, y) = batch_tensors(&batch, device);
            let StepLoss {
                objective,
                reported,
                logits,
            } = model.step_loss(&x, &y, state.step, settings.label_smoothing);
            opt.backward_step_averaged(&objective, lr, collective);
            let diverged = f64::try_from(&objective).unwrap_or(f64::NAN);
            if !diverged.is_finite() {
                return Err(TrainError::Diverged {
                    loss: diverged,
                    step: state.step,
                    lr,
                });
            }
            let l = f64::try_from(&reported).unwrap_or(f64::NAN);
            let n = batch.labels.len() as f64;
            sums[0] += l * n;
            sums[1] += i64::try_from(logits.argmax(1, false).eq_tensor(&y).sum(Kind::Int64))
                .unwrap_or(0) as f64;
            sums[2] += n;
            state.step += 1;
            state.batches_in_epoch += ranks;
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            let status = format!(
                "loss {:.3} acc {:.1}% {:.0} img/s lr {lr:.4}",
                sums[0] / sums[2],
                100.0 * sums[1] / sums[2],
                sums[2] * ranks as f64 / secs
            );
            let position = bar.position() + 1;
            // Without a terminal (logs, nohup) the bar is hidden: a line every tenth of an epoch instead.
            if progress && bar.is_hidden() && position.is_multiple_of(steps.div_ceil(10) as u64) {
                tracing::info!(
                    "epoch {}/{} step {position}/{steps}: {status}",
                    epoch + 1,
                    settings.epochs,
                );
            }
            bar.set_message(status);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        collective.all_reduce_sum_f64(&mut sums);
        let eval = if collective.is_root() {
            model.evaluate(epoch + 1)
        } else {
            serde_json::Value::Null
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            loss: sums[0] / sums[2].max(1.0),
            train_top1: 100.0 * sums[1] / sums[2].max(1.0),
            lr,
            seconds,
            images_per_s: sums[2] / seconds.max(1e-9),
            eval,
            communication: Some(opt.take_communication()).filter(|c| c.steps > 0),
        };
        if collective.is_root() {
            tracing::info!(
                "epoch {}/{}: loss {:.4}, train acc {:.2}%, {:.0} img/s{}{}",
                record.epoch,
                settings.epochs,
                record.loss,
                record.train_top1,
                record.images_per_s,
                record.communication.map_or(String::new(), |c| format!(
                    " ({ranks} ranks; gradient all-reduce {:.1}% of the epoch, {:.2} MB per step)",
                    100.0 * c.seconds / seconds.max(1e-9),
                    4.0 * c.floats as f64 / c.steps as f64 / 1e6
                )),
                if record.eval.is_null() {
                    String::new()
                } else {
                    format!(", eval {}", record.eval)
                }
            );
        }
        state.history.push(record);
        state.epochs_done += 1;
        state.batches_in_epoch = 0;
        save(model, &opt, &state)?;
    }
    Ok(state)
}

/// The state training starts from, identical on every rank: rank 0 reads the checkpoint (with `resume`) or
/// encodes the fresh model, and sends the bytes to the others, which load them.
fn starting_point(
    model: &mut dyn TrainableMut,
    opt: &mut Sgd,
    fresh: TrainState,
    ckpt: &Path,
    run: &RunOptions<'_>,
) -> Result<TrainState, TrainError> {
    let collective = run.collective;
    let mut bytes = Vec::new();
    let mut resumed = false;
    if collective.is_root() {
        if run.resume && ckpt.exists() {
            bytes = checkpoint::read_file(ckpt)?;
            resumed = true;
        } else if ckpt.exists() {
            return Err(TrainError::Mismatch {
                path: ckpt.to_path_buf(),
                message:
                    "already holds a run; pass --resume to continue it or choose another --out"
                        .into(),
            });
        } else if collective.size() > 1 {
            bytes = checkpoint::encode(model.var_store(), opt.buffers(), &fresh)?;
        }
    }
    if collective.size() > 1 {
        collective.broadcast_bytes(&mut bytes);
    }
    if bytes.is_empty() {
        return Ok(fresh);
    }
    let loaded: checkpoint::Loaded<TrainState> =
        checkpoint::decode(ckpt, &bytes, model.var_store_mut())?;
    if loaded.state.model != fresh.model {
        return Err(TrainError::Mismatch {
            path: ckpt.to_path_buf(),
            message: format!(
                "trained for another model ({}); start a new run in another directory",
                loaded.state.model
            ),
        });
    }
    let mut state = loaded.state;
    state.settings.epochs = fresh.settings.epochs;
    opt.set_buffers(loaded.momentum);
    if resumed {
        tracing::info!(
            "resuming {}: {} epochs and {} batches done ({} steps)",
            ckpt.display(),
            state.epochs_done,
            state.batches_in_epoch,
            state.step
        );
    }
    Ok(state)
}

/// Averages the variables without gradients (batch-norm running statistics) over the ranks: each replica
/// gathered them from its own batches.
fn average_buffers(vs: &nn::VarStore, collective: &dyn Collective) {
    if collective.size() == 1 {
        return;
    }
    let mut buffers: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| !t.requires_grad())
        .collect();
    buffers.sort_by(|a, b| a.0.cmp(&b.0));
    if buffers.is_empty() {
        return;
    }
    let tensors: Vec<&Tensor> = buffers.iter().map(|(_, t)| t).collect();
    let (means, _) = mean_over_ranks(&tensors, collective);
    tch::no_grad(|| {
        for ((_, t), mean) in buffers.iter().zip(&means) {
            t.shallow_clone().copy_(mean);
        }
    });
}

/// [`Trainable`] plus mutable access to the variables (to load a checkpoint).
pub trait TrainableMut: Trainable {
    /// The variables, mutably.
    fn var_store_mut(&mut self) -> &mut nn::VarStore;
}

fn epoch_bar(len: usize, epoch: usize, epochs: usize, show: bool) -> ProgressBar {
    let label = format!("epoch {epoch}/{epochs}");
    progress_bar(len, Some(&label), "steps", show)
}

/// The device to train on: CUDA when asked for and available, else the CPU (asking for CUDA without one
/// is an error, not a silent fallback).
pub fn device(cuda: bool) -> Result<Device, TrainError> {
    if !cuda {
        return Ok(Device::Cpu);
    }
    if tch::Cuda::is_available() {
        Ok(Device::Cuda(0))
    } else {
        Err(TrainError::NoCuda)
    }
}
