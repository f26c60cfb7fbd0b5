//! Supernet training glue: every step samples a uniform `(op, scale)` per layer from the current search
//! space (seeded by the step, so a resumed run samples the same paths), and every epoch ends with an
//! evaluation of fixed subnets with recalibrated batch norms.

use crate::TrainError;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tch::{nn, Device, Tensor};

use crate::eval::{accuracy, recalibrate, Accuracy, EvalSettings};
use crate::nn::{initialise, InitScheme, Mode, Supernet};
use crate::trainer::{Trainable, TrainableMut};
use hsconas_data::{ImageSet, Transform};
use hsconas_models::{Arch, Choice, NetConfig, Scale, SearchSpace, NUM_LAYERS};

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

/// The same operators at full width and at the narrowest scale (what the learning curve compares), plus
/// `random` uniformly sampled subnets, all inside `space`; drawn with `seed`.
pub fn probe_archs(space: &SearchSpace, random: usize, seed: u64) -> (Arch, Arch, Vec<Arch>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base = space.sample(&mut rng);
    let at = |scale: Scale| -> Arch {
        let mut arch = base.clone();
        for layer in 0..NUM_LAYERS {
            let c = base.choices()[layer];
            let wanted = Choice::new(c.op(), scale);
            if space.layers()[layer].contains(wanted) {
                if let Ok(a) = arch.with_layer(layer, wanted) {
                    arch = a;
                }
            }
        }
        arch
    };
    let widest = at(Scale::FULL);
    let narrowest = at(Scale::from_tenths(1).unwrap_or(Scale::FULL));
    let samples = (0..random).map(|_| space.sample(&mut rng)).collect();
    (widest, narrowest, samples)
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
