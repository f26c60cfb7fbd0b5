//! Progressive space shrinking (paper section III-C): the quality `Q` of a subspace is the mean `F` of
//! `N` architectures drawn uniformly from it; for one layer, each allowed operator is scored with the layer
//! fixed to it (its channel scales kept) and the best operator is kept.

use hsconas_models::{LayerSpace, Op, SearchSpace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::evaluator::{AccuracyOracle, Evaluator};
use crate::NasError;

/// `Q` of one operator of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpQuality {
    /// The operator the layer was fixed to.
    pub op: Op,
    /// Mean `F` of the samples.
    pub q: f64,
    /// Mean accuracy of the samples.
    pub mean_accuracy: f64,
    /// Mean predicted latency of the samples, ms.
    pub mean_latency_ms: f64,
}

/// The outcome of shrinking one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerDecision {
    /// 0-based layer.
    pub layer: usize,
    /// `Q` of every operator the layer allowed, in canonical order.
    pub qualities: Vec<OpQuality>,
    /// The operator kept (highest `Q`; the first on ties).
    pub chosen: Op,
    /// Space size before (log10, the sizes overflow nothing but read better this way).
    pub log10_size_before: f64,
    /// Space size after (log10).
    pub log10_size_after: f64,
}

fn log10_size(space: &SearchSpace) -> f64 {
    space
        .layers()
        .iter()
        .map(|l| (l.len() as f64).log10())
        .sum()
}

/// Scores every operator of `layer` in `space` with `samples` architectures each (seeded by `seed` and
/// the layer), fixes the layer to the best one in `space`, and says what it did.
pub fn shrink_layer<O: AccuracyOracle>(
    space: &mut SearchSpace,
    layer: usize,
    samples: usize,
    seed: u64,
    evaluator: &mut Evaluator<O>,
    mut on_sample: impl FnMut(),
) -> Result<LayerDecision, NasError> {
    let current = space.layers().get(layer).cloned().ok_or(NasError::Layer {
        layer: layer + 1,
        problem: "does not exist",
    })?;
    if samples == 0 {
        return Err(NasError::NoSamples);
    }
    let before = log10_size(space);
    let mut qualities = Vec::with_capacity(current.ops.len());
    for &op in &current.ops {
        let mut sub = space.clone();
        sub.set_layer(
            layer,
            LayerSpace {
                ops: [op].into(),
                ..current.clone()
            },
        )?;
        // The same draws for every operator (common random numbers): the other layers are sampled alike, so
        // the comparison between operators is paired and far less noisy.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((layer as u64) << 32));
        let drawn: Vec<_> = (0..samples).map(|_| sub.sample(&mut rng)).collect();
        let (mut f, mut acc, mut lat) = (0.0, 0.0, 0.0);
        for c in evaluator.evaluate_all(&drawn)? {
            f += c.score;
            acc += c.accuracy;
            lat += c.latency_ms;
            on_sample();
        }
        let n = samples as f64;
        qualities.push(OpQuality {
            op,
            q: f / n,
            mean_accuracy: acc / n,
            mean_latency_ms: lat / n,
        });
    }
    let chosen = qualities
        .iter()
        .fold(None, |best: Option<&OpQuality>, q| match best {
            Some(b) if b.q >= q.q => Some(b),
            _ => Some(q),
        })
        .map(|q| q.op)
        .ok_or(NasError::Layer {
            layer: layer + 1,
            problem: "allows no operator",
        })?;
    space.set_layer(
        layer,
        LayerSpace {
            ops: [chosen].into(),
            ..current
        },
    )?;
    Ok(LayerDecision {
        layer,
        qualities,
        chosen,
        log10_size_before: before,
        log10_size_after: log10_size(space),
    })
}
