//! Accuracy of a network on a split, and the batch-norm recalibration a supernet path needs first
//! (its shared running statistics belong to no particular path).

use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use tch::{Device, Kind, Tensor};

use hsconas_data::loader::make_batch;
use hsconas_data::{ImageSet, Transform};
/// Top-1 (and top-5 with more than five classes) accuracy in percent: the type `model.json` stores.
pub use hsconas_export::Accuracy;

/// A batch as tensors on `device`.
pub fn batch_tensors(batch: &hsconas_data::Batch, device: Device) -> (Tensor, Tensor) {
    let s = batch.shape.map(|d| d as i64);
    let x = Tensor::from_slice(&batch.pixels).view(s).to_device(device);
    let y = Tensor::from_slice(&batch.labels).to_device(device);
    (x, y)
}

/// Accuracy of `forward` (eval-mode logits) on every image of `set`, in batches of `batch_size`.
pub fn accuracy(
    set: &ImageSet,
    transform: &Transform,
    batch_size: usize,
    device: Device,
    forward: impl Fn(&Tensor) -> Tensor,
) -> Accuracy {
    let top5_possible = set.classes.len() > 5;
    let (mut top1, mut top5) = (0i64, 0i64);
    let indices: Vec<usize> = (0..set.len()).collect();
    tch::no_grad(|| {
        for chunk in indices.chunks(batch_size.max(1)) {
            let batch = make_batch(set, transform, chunk, None);
            let (x, y) = batch_tensors(&batch, device);
            let logits = forward(&x);
            let k = if top5_possible { 5 } else { 1 };
            let (_, best) = logits.topk(k, 1, true, true);
            let hits = best.eq_tensor(&y.unsqueeze(1));
            top1 += i64::try_from(hits.narrow(1, 0, 1).sum(Kind::Int64)).unwrap_or(0);
            if top5_possible {
                top5 += i64::try_from(hits.sum(Kind::Int64)).unwrap_or(0);
            }
        }
    });
    let n = set.len().max(1) as f64;
    Accuracy {
        top1: 100.0 * top1 as f64 / n,
        top5: top5_possible.then(|| 100.0 * top5 as f64 / n),
        images: set.len(),
    }
}

/// How subnets are evaluated.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Training batches for batch-norm recalibration.
    pub bn_batches: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Seed of the recalibration batches.
    pub seed: u64,
}

impl Default for EvalSettings {
    /// 20 recalibration batches of 200 images, seed 0.
    fn default() -> Self {
        EvalSettings {
            bn_batches: 20,
            batch_size: 200,
            seed: 0,
        }
    }
}

/// Recalibrates batch-norm statistics: `reset()` then `settings.bn_batches` training batches (fixed,
/// unaugmented, drawn with `settings.seed`) through `forward_recal(x, momentum)` with momentum `1/i` on the
/// i-th batch (the plain average of the batches' statistics).
pub fn recalibrate(
    train: &Arc<ImageSet>,
    transform: &Transform,
    settings: &EvalSettings,
    device: Device,
    reset: impl FnOnce(),
    forward_recal: impl Fn(&Tensor, f64),
) {
    reset();
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(settings.seed));
    tch::no_grad(|| {
        for (i, chunk) in order
            .chunks(settings.batch_size.max(1))
            .take(settings.bn_batches)
            .enumerate()
        {
            let batch = make_batch(train, transform, chunk, None);
            let (x, _) = batch_tensors(&batch, device);
            forward_recal(&x, 1.0 / (i + 1) as f64);
        }
    });
}
