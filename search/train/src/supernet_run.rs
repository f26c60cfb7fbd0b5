//! Supernet training glue: every step samples a uniform `(op, scale)` per layer from the current search
//! space (seeded by the step, so a resumed run samples the same paths), and every epoch ends with an
//! evaluation of fixed subnets with recalibrated batch norms.
//!
//! With the sandwich rule ([`Sandwich`], after BigNAS and OFA) a step trains several paths of one batch
//! instead of one: the step's operators at the widest and at the narrowest scale the space allows, plus
//! random paths, their losses summed into one update; with in-place distillation, every path but the
//! widest learns the widest path's predictions instead of the labels.

use crate::TrainError;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tch::{nn, Device, Kind, Tensor};

use crate::eval::{accuracy, recalibrate, Accuracy, EvalSettings};
use crate::nn::{initialise, InitScheme, Mode, Supernet};
use crate::trainer::{cross_entropy, StepLoss, Trainable, TrainableMut};
use hsconas_data::{ImageSet, Transform};
use hsconas_models::{Arch, Choice, NetConfig, Scale, SearchSpace};

/// The data a subnet is evaluated with.
#[derive(Clone)]
pub struct EvalData {
    /// Training images (batch-norm recalibration).
    pub train: Arc<ImageSet>,
    /// Images to measure accuracy on (the validation split).
    pub val: Arc<ImageSet>,
    /// Normalisation.
    pub transform: Transform,
}

/// What `hsconas supernet eval --json` prints: one subnet's accuracy with the supernet's weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubnetEvaluation {
    /// The architecture string.
    pub arch: String,
    /// `val` or `test`.
    pub split: String,
    /// Top-1, percent.
    pub top1: f64,
    /// Top-5, percent (`None` with five classes or fewer).
    pub top5: Option<f64>,
    /// Images evaluated.
    pub images: usize,
    /// Wall time of the evaluation, seconds.
    pub seconds: f64,
}

/// Accuracy of `arch` with the supernet's weights: batch norms of its path recalibrated, then evaluated.
pub fn evaluate_subnet(
    supernet: &Supernet,
    arch: &Arch,
    data: &EvalData,
    settings: &EvalSettings,
    device: Device,
) -> Accuracy {
    recalibrate(
        &data.train,
        &data.transform,
        settings,
        device,
        || supernet.reset_running_stats(arch),
        |x, m| {
            let _ = supernet.forward(x, arch, Mode::Recalibrate(m));
        },
    );
    accuracy(
        &data.val,
        &data.transform,
        settings.batch_size,
        device,
        |x| supernet.forward(x, arch, Mode::Eval),
    )
}

/// The uniformly sampled path of training step `step`.
pub fn step_arch(space: &SearchSpace, seed: u64, step: u64) -> Arch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    space.sample(&mut rng)
}

/// `base` with every non-`skip` layer at the widest (`widest`) or the narrowest scale its layer of
/// `space` allows; the operators stay those of `base`.
pub fn at_extreme_scale(space: &SearchSpace, base: &Arch, widest: bool) -> Arch {
    let mut arch = base.clone();
    for (layer, allowed) in space.layers().iter().enumerate() {
        let choice = base.choices()[layer];
        if choice.is_skip() {
            continue;
        }
        let tenths = if widest {
            allowed.scales.last()
        } else {
            allowed.scales.first()
        };
        let Some(scale) = tenths.and_then(|&t| Scale::from_tenths(t)) else {
            continue;
        };
        if let Ok(a) = arch.with_layer(layer, Choice::new(choice.op(), scale)) {
            arch = a;
        }
    }
    arch
}

/// The same operators at the widest and at the narrowest scale of `space` (what the learning curve
/// compares; scale 1.0 and 0.1 in the full space), plus `random` uniformly sampled subnets, all inside
/// `space`; drawn with `seed`.
pub fn probe_archs(space: &SearchSpace, random: usize, seed: u64) -> (Arch, Arch, Vec<Arch>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base = space.sample(&mut rng);
    let widest = at_extreme_scale(space, &base, true);
    let narrowest = at_extreme_scale(space, &base, false);
    let samples = (0..random).map(|_| space.sample(&mut rng)).collect();
    (widest, narrowest, samples)
}

/// The sandwich rule of supernet training: how many paths a step trains and what they learn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sandwich {
    /// Random paths per step besides the widest and the narrowest (the first is the step's uniformly
    /// sampled path).
    pub random: usize,
    /// In-place distillation: every path but the widest learns the widest path's predictions (soft
    /// targets, not back-propagated into the widest path) instead of the labels.
    pub distill: bool,
}

/// The paths of step `step` under the sandwich rule: the step's sampled path ([`step_arch`]) at the
/// widest and at the narrowest scale of `space`, then `random` random paths, the first of them the
/// sampled path itself. The same on every rank and after a resume (seeded by `seed` and the step).
pub fn sandwich_paths(space: &SearchSpace, seed: u64, step: u64, random: usize) -> Vec<Arch> {
    let base = step_arch(space, seed, step);
    let mut paths = vec![
        at_extreme_scale(space, &base, true),
        at_extreme_scale(space, &base, false),
    ];
    if random > 0 {
        paths.push(base);
        let mut rng = ChaCha8Rng::seed_from_u64(!seed ^ step.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
        paths.extend((1..random).map(|_| space.sample(&mut rng)));
    }
    paths
}

/// Mean cross-entropy of `logits` against the soft targets `teacher` (probabilities).
fn soft_cross_entropy(logits: &Tensor, teacher: &Tensor) -> Tensor {
    -(teacher * logits.log_softmax(-1, Kind::Float))
        .sum_dim_intlist(-1, false, Kind::Float)
        .mean(Kind::Float)
}

/// The supernet as the training loop sees it.
pub struct SupernetTraining {
    /// Variables.
    pub vs: nn::VarStore,
    /// The network.
    pub supernet: Supernet,
    /// Where paths are sampled from.
    pub space: SearchSpace,
    /// Seed of the sampled paths.
    pub seed: u64,
    /// Evaluation after each epoch (`None`: skip it).
    pub eval: Option<(EvalData, EvalSettings, usize)>,
    /// The sandwich rule (`None`: one uniformly sampled path per step, as SPOS trains).
    pub sandwich: Option<Sandwich>,
}

impl SupernetTraining {
    /// A fresh supernet for `config` on `device`, its kernels drawn under `init`.
    pub fn new(
        config: NetConfig,
        space: SearchSpace,
        seed: u64,
        init: InitScheme,
        device: Device,
    ) -> Result<SupernetTraining, TrainError> {
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(device);
        let supernet = Supernet::new(&vs.root(), config)?;
        initialise(&vs, init, seed);
        Ok(SupernetTraining {
            vs,
            supernet,
            space,
            seed,
            eval: None,
            sandwich: None,
        })
    }
}

impl Trainable for SupernetTraining {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn forward_train(&self, x: &Tensor, step: u64) -> Tensor {
        let arch = step_arch(&self.space, self.seed, step);
        self.supernet.forward(x, &arch, Mode::Train)
    }

    fn step_loss(&self, x: &Tensor, y: &Tensor, step: u64, label_smoothing: f64) -> StepLoss {
        let Some(sandwich) = self.sandwich else {
            return StepLoss::single_path(self.forward_train(x, step), y, label_smoothing);
        };
        let paths = sandwich_paths(&self.space, self.seed, step, sandwich.random);
        let widest = self.supernet.forward(x, &paths[0], Mode::Train);
        let main = cross_entropy(&widest, y, label_smoothing);
        let teacher = widest.detach().softmax(-1, Kind::Float);
        let objective = paths[1..]
            .iter()
            .map(|arch| {
                let logits = self.supernet.forward(x, arch, Mode::Train);
                if sandwich.distill {
                    soft_cross_entropy(&logits, &teacher)
                } else {
                    cross_entropy(&logits, y, label_smoothing)
                }
            })
            .fold(main.shallow_clone(), |sum, loss| sum + loss);
        StepLoss {
            objective,
            reported: main,
            logits: widest,
        }
    }

    fn evaluate(&self, _epoch: usize) -> serde_json::Value {
        let Some((data, settings, random)) = &self.eval else {
            return serde_json::Value::Null;
        };
        let device = self.vs.device();
        let (widest, narrowest, samples) = probe_archs(&self.space, *random, self.seed);
        let top1 = |arch: &Arch| evaluate_subnet(&self.supernet, arch, data, settings, device).top1;
        let sampled: Vec<f64> = samples.iter().map(top1).collect();
        let mean = sampled.iter().sum::<f64>() / sampled.len().max(1) as f64;
        json!({
            "widest_top1": top1(&widest),
            "narrowest_top1": top1(&narrowest),
            "sampled_top1": sampled,
            "sampled_mean_top1": mean,
            "val_images": data.val.len(),
        })
    }
}

impl TrainableMut for SupernetTraining {
    fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_models::{LayerSpace, Layout};
    use std::collections::BTreeSet;

    /// The full space with every layer's scales limited to 0.3-0.6.
    fn narrowed() -> SearchSpace {
        let mut space = SearchSpace::full();
        for layer in 0..space.layers().len() {
            let mut allowed: LayerSpace = space.layers()[layer].clone();
            allowed.scales = BTreeSet::from([3, 4, 5, 6]);
            space.set_layer(layer, allowed).expect("valid layer");
        }
        space
    }

    #[test]
    fn sandwich_paths_bracket_the_sampled_path_and_repeat_per_step() {
        let space = narrowed();
        for step in 0..20 {
            let paths = sandwich_paths(&space, 7, step, 3);
            assert_eq!(paths.len(), 5);
            let base = step_arch(&space, 7, step);
            assert_eq!(
                paths[2], base,
                "the first random path is the step's sampled one"
            );
            for (layer, choice) in base.choices().iter().enumerate() {
                let (wide, narrow) = (paths[0].choices()[layer], paths[1].choices()[layer]);
                assert_eq!((wide.op(), narrow.op()), (choice.op(), choice.op()));
                if !choice.is_skip() {
                    assert_eq!((wide.scale().tenths(), narrow.scale().tenths()), (6, 3));
                }
            }
            assert!(paths.iter().all(|p| space.check(p).is_ok()));
            assert_eq!(
                paths,
                sandwich_paths(&space, 7, step, 3),
                "seeded by the step"
            );
        }
        assert_eq!(sandwich_paths(&space, 7, 0, 0).len(), 2);
        assert_ne!(
            sandwich_paths(&space, 7, 0, 3),
            sandwich_paths(&space, 7, 1, 3)
        );
    }

    /// The sandwich objective sums the paths' losses and reports the widest path's cross-entropy; with
    /// in-place distillation the other paths' terms come from the widest path's predictions, so they
    /// differ from the label terms, and the widest path's own term is untouched.
    #[test]
    fn sandwich_step_loss_sums_the_paths() {
        let config = NetConfig {
            layout: Layout::new([24, 32, 48, 64]).expect("layout"),
            input_size: 32,
            classes: 10,
        };
        let mut training = SupernetTraining::new(
            config,
            SearchSpace::full(),
            3,
            InitScheme::Spos,
            Device::Cpu,
        )
        .expect("supernet");
        tch::manual_seed(5);
        let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 3, 7, 9]);
        let value = |t: &Tensor| f64::try_from(t).expect("scalar");
        let single = training.step_loss(&x, &y, 11, 0.0);
        assert_eq!(value(&single.objective), value(&single.reported));

        let mut losses = Vec::new();
        for distill in [false, true] {
            training.sandwich = Some(Sandwich { random: 1, distill });
            let step = training.step_loss(&x, &y, 11, 0.0);
            assert_eq!(step.logits.size(), vec![4, 10]);
            // Three paths' losses, each positive: the sum is above the reported widest path's.
            assert!(value(&step.objective) > value(&step.reported));
            losses.push((value(&step.objective), value(&step.reported)));
        }
        let ((labels, widest_a), (distilled, widest_b)) = (losses[0], losses[1]);
        // Training-mode batch norms use the batch's statistics: the widest path's loss repeats exactly.
        assert!(
            (widest_a - widest_b).abs() < 1e-6,
            "{widest_a} vs {widest_b}"
        );
        assert!((labels - distilled).abs() > 1e-6, "{labels} vs {distilled}");
    }
}
