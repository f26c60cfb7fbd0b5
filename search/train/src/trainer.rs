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
use crate::eval::batch_tensors;
use crate::sgd::{cosine_lr, Sgd, SgdSettings};
use hsconas_data::loader::batches_per_epoch;
use hsconas_data::{epoch_batches, ImageSet, LoaderSettings, Transform};

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate.
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
    /// Training images per second.
    pub images_per_s: f64,
    /// Evaluation after the epoch (free-form: the caller's numbers).
    #[serde(default)]
    pub eval: serde_json::Value,
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
    /// Batches done in the current (unfinished) epoch.
    pub batches_in_epoch: usize,
    /// Optimiser steps so far.
    pub step: u64,
    /// Finished epochs' records.
    pub history: Vec<EpochRecord>,
}

/// The model being trained, as the loop sees it.
pub trait Trainable {
    /// Its variables.
    fn var_store(&self) -> &nn::VarStore;
    /// Training-mode logits for step `step` (the supernet samples its path from the step).
    fn forward_train(&self, x: &Tensor, step: u64) -> Tensor;
    /// Evaluation after an epoch (stored in the epoch's record).
    fn evaluate(&self, epoch: usize) -> serde_json::Value;
}

/// Where the checkpoint of a run in `dir` lives.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// Trains `model` on `train` until `settings.epochs` (or `max_steps` steps in all), checkpointing in `dir`.
/// With `resume`, continues the run whose checkpoint is in `dir` (it must describe the same model).
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &mut dyn TrainableMut,
    model_description: serde_json::Value,
    train: Arc<ImageSet>,
    transform: Transform,
    settings: &TrainSettings,
    dir: &Path,
    resume: bool,
    max_steps: Option<u64>,
    progress: bool,
) -> Result<TrainState, TrainError> {
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
    if per_epoch == 0 {
        return Err(TrainError::Invalid(format!(
            "{} training images make no full batch of {}",
            train.len(),
            settings.batch_size
        )));
    }
    std::fs::create_dir_all(dir).map_err(|source| {
        TrainError::Fs(hsconas_foundation::FsError::new("creating", dir, source))
    })?;
    let ckpt = checkpoint_path(dir);
    let mut opt = Sgd::new(model.var_store(), settings.sgd.clone());
    let mut state = TrainState {
        model: model_description.clone(),
        settings: settings.clone(),
        transform: transform.clone(),
        epochs_done: 0,
        batches_in_epoch: 0,
        step: 0,
        history: Vec::new(),
    };
    if resume && ckpt.exists() {
        let loaded: checkpoint::Loaded<TrainState> =
            checkpoint::load(&ckpt, model.var_store_mut())?;
        if loaded.state.model != model_description {
            return Err(TrainError::Mismatch {
                path: ckpt,
                message: format!(
                    "trained for another model ({}); start a new run in another directory",
                    loaded.state.model
                ),
            });
        }
        state = loaded.state;
        state.settings.epochs = settings.epochs;
        opt.set_buffers(loaded.momentum);
        tracing::info!(
            "resuming {}: {} epochs and {} batches done ({} steps)",
            ckpt.display(),
            state.epochs_done,
            state.batches_in_epoch,
            state.step
        );
    } else if ckpt.exists() {
        return Err(TrainError::Mismatch {
            path: ckpt,
            message: "already holds a run; pass --resume to continue it or choose another --out"
                .into(),
        });
    }
    let device = model.var_store().device();
    let total_steps = (settings.epochs * per_epoch) as u64;
    let warmup = (settings.warmup_epochs * per_epoch) as u64;
    let transform = Arc::new(state.transform.clone());
    while state.epochs_done < settings.epochs {
        let epoch = state.epochs_done;
        let bar = epoch_bar(per_epoch, epoch + 1, settings.epochs, progress);
        bar.set_position(state.batches_in_epoch as u64);
        let start = Instant::now();
        let (mut loss_sum, mut hits, mut seen) = (0.0, 0i64, 0usize);
        let mut lr = settings.lr;
        for batch in epoch_batches(
            train.clone(),
            transform.clone(),
            &loader,
            epoch,
            state.batches_in_epoch,
        ) {
            if max_steps.is_some_and(|m| state.step >= m) {
                checkpoint::save(&ckpt, model.var_store(), opt.buffers(), &state)?;
                bar.abandon_with_message("stopped at --max-steps");
                return Ok(state);
            }
            lr = cosine_lr(settings.lr, state.step, total_steps, warmup);
            let (x, y) = batch_tensors(&batch, device);
            let logits = model.forward_train(&x, state.step);
            let loss = logits.cross_entropy_loss::<Tensor>(
                &y,
                None,
                Reduction::Mean,
                -100,
                settings.label_smoothing,
            );
            opt.backward_step(&loss, lr);
            let l = f64::try_from(&loss).unwrap_or(f64::NAN);
            if !l.is_finite() {
                return Err(TrainError::Diverged {
                    loss: l,
                    step: state.step,
                    lr,
                });
            }
            loss_sum += l * batch.labels.len() as f64;
            hits +=
                i64::try_from(logits.argmax(1, false).eq_tensor(&y).sum(Kind::Int64)).unwrap_or(0);
            seen += batch.labels.len();
            state.step += 1;
            state.batches_in_epoch += 1;
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            let status = format!(
                "loss {:.3} acc {:.1}% {:.0} img/s lr {lr:.4}",
                loss_sum / seen as f64,
                100.0 * hits as f64 / seen as f64,
                seen as f64 / secs
            );
            // Without a terminal (logs, nohup) the bar is hidden: a line every tenth of an epoch instead.
            if progress
                && bar.is_hidden()
                && state
                    .batches_in_epoch
                    .is_multiple_of(per_epoch.div_ceil(10))
            {
                tracing::info!(
                    "epoch {}/{} batch {}/{per_epoch}: {status}",
                    epoch + 1,
                    settings.epochs,
                    state.batches_in_epoch
                );
            }
            bar.set_message(status);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let eval = model.evaluate(epoch + 1);
        let record = EpochRecord {
            epoch: epoch + 1,
            loss: loss_sum / seen.max(1) as f64,
            train_top1: 100.0 * hits as f64 / seen.max(1) as f64,
            lr,
            seconds,
            images_per_s: seen as f64 / seconds.max(1e-9),
            eval,
        };
        tracing::info!(
            "epoch {}/{}: loss {:.4}, train acc {:.2}%, {:.0} img/s{}",
            record.epoch,
            settings.epochs,
            record.loss,
            record.train_top1,
            record.images_per_s,
            if record.eval.is_null() {
                String::new()
            } else {
                format!(", eval {}", record.eval)
            }
        );
        state.history.push(record);
        state.epochs_done += 1;
        state.batches_in_epoch = 0;
        checkpoint::save(&ckpt, model.var_store(), opt.buffers(), &state)?;
    }
    Ok(state)
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
