//! `--data` and how a dataset becomes training and validation splits plus a normalisation.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use hsconas_data::{Crop, ImageSet, ReadOptions, Transform};

/// `--data`, `--val-fraction`, `--split-seed`, `--train-per-class`, `--resize`.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Dataset: an ImageFolder directory or .tar.gz (`train/<class>/*.jpg`, optional `test/`), CIFAR-10
    /// binary batches, or MNIST IDX files.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Share of every class of the training images held out for validation (what searches and the
    /// per-epoch evaluation measure), in (0, 1).
    #[arg(long, default_value_t = DataArgs::DEFAULT_VAL_FRACTION, value_name = "F")]
    pub val_fraction: f64,
    /// Seed of the validation split.
    #[arg(long, default_value_t = DataArgs::DEFAULT_SPLIT_SEED, value_name = "N")]
    pub split_seed: u64,
    /// Train on at most N images of every class of the training split (chosen with --split-seed, after
    /// the validation share is held out): a class-balanced subset for shorter trainings. Default: all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub train_per_class: Option<u64>,
    /// Resize every image to S x S (needed for folders of mixed sizes).
    #[arg(long, value_name = "S")]
    pub resize: Option<usize>,
}

/// The splits of a dataset, decoded once.
pub struct Prepared {
    /// Training images (without the validation share).
    pub train: Arc<ImageSet>,
    /// Validation images.
    pub val: Arc<ImageSet>,
    /// Test images, when the dataset has them.
    pub test: Option<Arc<ImageSet>>,
    /// Normalisation (from the training images) and augmentation.
    pub transform: Transform,
    /// What was read.
    pub format: &'static str,
    /// The dataset's file or folder name (what a predictor file's `data` is compared with; read by the
    /// estimators, which need libtorch).
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub source: String,
}

impl Prepared {
    /// The network configuration for these images (square inputs of their size, their classes).
    #[cfg(feature = "train")]
    pub fn net_config(
        &self,
        layout: hsconas_models::Layout,
    ) -> anyhow::Result<hsconas_models::NetConfig> {
        anyhow::ensure!(
            self.train.height == self.train.width,
            "the images are {}x{}; the networks take square inputs (pass --resize S)",
            self.train.width,
            self.train.height
        );
        let config = hsconas_models::NetConfig {
            layout,
            input_size: self.train.height,
            classes: self.train.classes.len(),
        };
        config.validate()?;
        Ok(config)
    }
}

impl DataArgs {
    /// `--val-fraction` when absent.
    pub const DEFAULT_VAL_FRACTION: f64 = 0.1;
    /// `--split-seed` when absent.
    pub const DEFAULT_SPLIT_SEED: u64 = 0;

    /// Reads and splits the dataset. Refuses a validation share outside (0, 1) and a split that leaves
    /// the validation or the training set empty: every search candidate would silently score 0%.
    pub fn prepare(&self) -> anyhow::Result<Prepared> {
        anyhow::ensure!(
            self.val_fraction > 0.0 && self.val_fraction < 1.0,
            "--val-fraction must be in (0, 1), got {}: searches and the per-epoch evaluation measure \
             accuracy on the validation split",
            self.val_fraction
        );
        let splits = hsconas_data::open(
            &self.data,
            ReadOptions {
                resize: self.resize,
            },
        )?;
        let (mut train, val) =
            hsconas_data::train_val_split(&splits.train, self.val_fraction, self.split_seed);
        if let Some(per_class) = self.train_per_class {
            train = hsconas_data::per_class_subset(&train, per_class as usize, self.split_seed);
        }
        anyhow::ensure!(
            !val.is_empty() && !train.is_empty(),
            "--val-fraction {} splits {} training images into {} for training and {} for validation; \
             both need images",
            self.val_fraction,
            splits.train.len(),
            train.len(),
            val.len()
        );
        let (mean, std) = train.channel_stats();
        let crop = if train.height < 64 {
            Crop::Pad {
                pad: train.height / 8,
            }
        } else {
            Crop::RandomResized { min_area: 0.08 }
        };
        Ok(Prepared {
            train: Arc::new(train),
            val: Arc::new(val),
            test: splits.test.map(Arc::new),
            transform: Transform {
                crop,
                flip: true,
                mean,
                std,
            },
            format: splits.format,
            source: self.data.file_name().map_or_else(
                || self.data.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        })
    }
}
