//! Batches for training and evaluation, prepared on background threads while the model computes.
//!
//! The order and the augmentation of epoch `e` depend only on `(seed, e)`, so a resumed run sees exactly
//! the batches an uninterrupted one would have seen.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::augment::Transform;
use super::image_set::ImageSet;

/// One batch: `n x c x h x w` normalised pixels and `n` labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Pixels.
    pub pixels: Vec<f32>,
    /// Labels.
    pub labels: Vec<i64>,
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
}

/// What an epoch of batches looks like.
#[derive(Debug, Clone)]
pub struct LoaderSettings {
    /// Images per batch.
    pub batch_size: usize,
    /// Shuffle and augment (training) or keep order and only normalise (evaluation).
    pub train: bool,
    /// Drop a last incomplete batch (training).
    pub drop_last: bool,
    /// Seed of order and augmentation.
    pub seed: u64,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Worker threads preparing batches.
    pub workers: usize,
}

/// Number of batches an epoch has.
pub fn batches_per_epoch(images: usize, settings: &LoaderSettings) -> usize {
    if settings.drop_last {
        images / settings.batch_size
    } else {
        images.div_ceil(settings.batch_size)
    }
}

/// The batches of one epoch, in order, made by background threads. Dropping it stops them.
pub struct EpochBatches {
    receivers: Vec<Receiver<Batch>>,
    next: usize,
    total: usize,
    _workers: Vec<JoinHandle<()>>,
}

impl Iterator for EpochBatches {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.total {
            return None;
        }
        let rx = &self.receivers[self.next % self.receivers.len()];
        self.next += 1;
        rx.recv().ok()
    }
}

/// Starts preparing the batches of `epoch`, skipping the first `skip` (to resume mid-epoch).
pub fn epoch_batches(
    set: Arc<ImageSet>,
    transform: Arc<Transform>,
    settings: &LoaderSettings,
    epoch: usize,
    skip: usize,
) -> EpochBatches {
    shard_batches(set, transform, settings, epoch, skip, Shard::WHOLE)
}

/// One process's share of an epoch in a data-parallel job of `count` processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This process's index, `0..count`.
    pub index: usize,
    /// Processes sharing the epoch.
    pub count: usize,
}

impl Shard {
    /// The whole epoch (one process).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// How many batches each shard gets of an epoch of `total` batches of which `skip` are done: every shard
    /// the same number (a step needs a batch on every rank), so up to `count - 1` batches are left over.
    pub fn steps(&self, total: usize, skip: usize) -> usize {
        total.saturating_sub(skip) / self.count.max(1)
    }
}

/// [`epoch_batches`] for one shard: the epoch's order and augmentation are those of the whole epoch (they
/// depend only on the seed and the epoch), the first `skip` batches are left out, and of the rest shard `i`
/// of `n` gets batches `skip + i`, `skip + i + n`, ... ([`Shard::steps`] of them). Together the shards see
/// what one process would have seen, `n` batches per step.
pub fn shard_batches(
    set: Arc<ImageSet>,
    transform: Arc<Transform>,
    settings: &LoaderSettings,
    epoch: usize,
    skip: usize,
    shard: Shard,
) -> EpochBatches {
    let mut order: Vec<usize> = (0..set.len()).collect();
    if settings.train {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(
            settings.seed,
            epoch as u64,
            u64::MAX,
        )));
    }
    let count = shard.count.max(1);
    let steps = shard.steps(batches_per_epoch(set.len(), settings), skip);
    // The global batch numbers of this shard, in the order they are consumed.
    let mine: Arc<Vec<usize>> =
        Arc::new((0..steps).map(|k| skip + shard.index + k * count).collect());
    let order = Arc::new(order);
    let workers = settings.workers.max(1);
    let mut receivers = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for worker in 0..workers {
        let (tx, rx) = sync_channel(settings.prefetch.max(1).div_ceil(workers));
        receivers.push(rx);
        let (set, transform, order, mine, s) = (
            set.clone(),
            transform.clone(),
            order.clone(),
            mine.clone(),
            settings.clone(),
        );
        handles.push(std::thread::spawn(move || {
            // Worker k makes this shard's batches k, k + workers, ...; the consumer reads them round-robin.
            for &b in mine.iter().skip(worker).step_by(workers) {
                let indices = &order[b * s.batch_size..((b + 1) * s.batch_size).min(order.len())];
                let batch = make_batch(
                    &set,
                    &transform,
                    indices,
                    s.train.then(|| mix(s.seed, epoch as u64, b as u64)),
                );
                if tx.send(batch).is_err() {
                    return;
                }
            }
        }));
    }
    EpochBatches {
        receivers,
        next: 0,
        total: steps,
        _workers: handles,
    }
}

fn mix(seed: u64, epoch: u64, batch: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ epoch.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ batch.wrapping_add(0x1656_67B1_9E37_79F9)
}

/// One batch of the images at `indices`, augmented with `augment_seed` when given.
pub fn make_batch(
    set: &ImageSet,
    transform: &Transform,
    indices: &[usize],
    augment_seed: Option<u64>,
) -> Batch {
    let (c, h, w) = (set.channels, set.height, set.width);
    let per = c * h * w;
    let mut pixels = vec![0f32; indices.len() * per];
    let mut rng = augment_seed.map(ChaCha8Rng::seed_from_u64);
    for (k, &i) in indices.iter().enumerate() {
        transform.apply(
            set.image(i),
            c,
            h,
            w,
            rng.as_mut(),
            &mut pixels[k * per..(k + 1) * per],
        );
    }
    Batch {
        pixels,
        labels: indices.iter().map(|&i| i64::from(set.labels[i])).collect(),
        shape: [indices.len(), c, h, w],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Crop;

    fn set(n: usize) -> Arc<ImageSet> {
        Arc::new(ImageSet {
            pixels: (0..n * 4).map(|v| (v % 251) as u8).collect(),
            labels: (0..n as u32).map(|i| i % 3).collect(),
            classes: vec!["a".into(), "b".into(), "c".into()],
            channels: 1,
            height: 2,
            width: 2,
        })
    }

    fn settings(train: bool) -> LoaderSettings {
        LoaderSettings {
            batch_size: 4,
            train,
            drop_last: train,
            seed: 9,
            prefetch: 3,
            workers: 2,
        }
    }

    fn transform() -> Arc<Transform> {
        Arc::new(Transform {
            crop: Crop::Pad { pad: 1 },
            flip: true,
            mean: vec![0.0],
            std: vec![1.0],
        })
    }

    #[test]
    fn epochs_are_reproducible_and_resume_mid_epoch() {
        let s = settings(true);
        let all: Vec<Batch> = epoch_batches(set(18), transform(), &s, 2, 0).collect();
        assert_eq!(all.len(), 4, "18 images, batch 4, drop last");
        assert_eq!(
            all,
            epoch_batches(set(18), transform(), &s, 2, 0).collect::<Vec<_>>()
        );
        let resumed: Vec<Batch> = epoch_batches(set(18), transform(), &s, 2, 3).collect();
        assert_eq!(resumed, all[3..].to_vec());
        let other: Vec<Batch> = epoch_batches(set(18), transform(), &s, 3, 0).collect();
        assert_ne!(other, all, "another epoch, another order");
        let mut labels: Vec<i64> = all.iter().flat_map(|b| b.labels.clone()).collect();
        labels.sort_unstable();
        assert_eq!(labels.len(), 16);
    }

    #[test]
    fn evaluation_keeps_order_and_the_last_batch() {
        let batches: Vec<Batch> =
            epoch_batches(set(10), transform(), &settings(false), 0, 0).collect();
        assert_eq!(
            batches.iter().map(|b| b.shape[0]).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let labels: Vec<i64> = batches.iter().flat_map(|b| b.labels.clone()).collect();
        assert_eq!(labels, (0..10).map(|i| i % 3).collect::<Vec<i64>>());
        assert_eq!(batches[0].pixels[1], 1.0 / 255.0, "no augmentation");
    }

    #[test]
    fn shards_split_an_epoch_into_interleaved_equal_parts() {
        let s = settings(true);
        // 30 images, batch 4: 7 batches; 1 done, 6 left: 3 per shard of 2, 2 per shard of 3.
        let all: Vec<Batch> = epoch_batches(set(30), transform(), &s, 1, 0).collect();
        assert_eq!(all.len(), 7);
        for count in [2, 3] {
            let per_shard = Shard { index: 0, count }.steps(7, 1);
            assert_eq!(per_shard, 6 / count);
            for index in 0..count {
                let shard = Shard { index, count };
                let got: Vec<Batch> =
                    shard_batches(set(30), transform(), &s, 1, 1, shard).collect();
                let want: Vec<Batch> = (0..per_shard)
                    .map(|k| all[1 + index + k * count].clone())
                    .collect();
                assert_eq!(got, want, "shard {index} of {count}");
            }
        }
        let uneven = Shard { index: 1, count: 4 };
        assert_eq!(
            shard_batches(set(30), transform(), &s, 1, 0, uneven).count(),
            1,
            "7 batches over 4 shards: 1 step each, 3 left over"
        );
    }
}
