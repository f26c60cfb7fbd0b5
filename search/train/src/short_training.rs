//! The short-training accuracy estimator: each candidate trained from scratch for a few hundred steps
//! with a complete (warm-up-free, cosine) schedule, then its validation accuracy. Minutes per candidate
//! instead of hours, meant to re-rank a search's best few.

use std::sync::Arc;

use hsconas_data::{per_class_subset, ImageSet, Transform};
use hsconas_models::graph::Graph;
use tch::Device;

use crate::collective::LrScaling;
use crate::eval::accuracy;
use crate::nn::{InitScheme, Mode};
use crate::sgd::SgdSettings;
use crate::standalone_run::StandaloneTraining;
use crate::trainer::{train, RunOptions, TrainSettings};
use crate::TrainError;

/// How long and how candidates are trained.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortTraining {
    /// Optimiser steps per candidate: one epoch over a class-balanced subset of `steps x batch_size`
    /// training images, so the learning-rate schedule runs to its end (with fewer training images than
    /// that, as many epochs as it takes).
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate (cosine to 0).
    pub lr: f64,
    /// Seed of initialisation, subset and data order.
    pub seed: u64,
}

impl Default for ShortTraining {
    /// 300 steps of 64 images at learning rate 0.05, seed 0.
    fn default() -> Self {
        ShortTraining {
            steps: 300,
            batch_size: 64,
            lr: 0.05,
            seed: 0,
        }
    }
}

impl ShortTraining {
    /// Validation top-1 (percent) of `graph` after the short training on `train`, measured on `val`.
    pub fn accuracy(
        &self,
        graph: &Graph,
        train_set: &ImageSet,
        val: &ImageSet,
        transform: &Transform,
    ) -> Result<f64, TrainError> {
        if self.steps == 0 || self.batch_size == 0 {
            return Err(TrainError::Invalid(
                "short training needs at least one step of at least one image".into(),
            ));
        }
        let classes = train_set.classes.len().max(1);
        let per_class = (self.steps * self.batch_size).div_ceil(classes);
        let subset = Arc::new(per_class_subset(train_set, per_class, self.seed));
        let per_epoch = subset.len() / self.batch_size;
        if per_epoch == 0 {
            return Err(TrainError::Invalid(format!(
                "{} training images do not fill one batch of {}",
                subset.len(),
                self.batch_size
            )));
        }
        let mut training =
            StandaloneTraining::new(graph.clone(), self.seed, InitScheme::Spos, Device::Cpu);
        let settings = TrainSettings {
            epochs: self.steps.div_ceil(per_epoch),
            batch_size: self.batch_size,
            lr: self.lr,
            warmup_epochs: 0,
            label_smoothing: 0.0,
            sgd: SgdSettings::default(),
            seed: self.seed,
            loader_workers: 2,
            lr_scaling: LrScaling::None,
        };
        let dir = tempfile::tempdir().map_err(|e| {
            TrainError::Fs(hsconas_foundation::FsError::new(
                "creating a temporary folder in",
                &std::env::temp_dir(),
                e,
            ))
        })?;
        train(
            &mut training,
            serde_json::Value::Null,
            subset,
            transform.clone(),
            &settings,
            &RunOptions {
                max_steps: Some(self.steps as u64),
                progress: false,
                ..RunOptions::single(dir.path())
            },
        )?;
        let acc = accuracy(val, transform, 200, Device::Cpu, |x| {
            training.net.forward(x, Mode::Eval)
        });
        Ok(acc.top1)
    }
}
