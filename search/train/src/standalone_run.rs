//! Training one architecture from scratch (paper IV-A: the supernet's recipe plus a learning-rate
//! warm-up), evaluated on the validation split after every epoch.

use crate::TrainError;
use std::sync::Arc;

use hsconas_foundation::Weights;
use hsconas_models::graph::Graph;
use serde_json::json;
use tch::{nn, Device, Tensor};

use crate::eval::accuracy;
use crate::nn::{initialise, InitScheme, Mode, Standalone};
use crate::trainer::{Trainable, TrainableMut};
use hsconas_data::{ImageSet, Transform};

/// A stand-alone network as the training loop sees it.
pub struct StandaloneTraining {
    /// Variables.
    pub vs: nn::VarStore,
    /// The network.
    pub net: Standalone,
    /// Validation images and normalisation for the per-epoch evaluation (`None`: skip it).
    pub eval: Option<(Arc<ImageSet>, Transform)>,
}

impl StandaloneTraining {
    /// Fresh weights for `graph` on `device`, initialised under `init` from `seed`.
    pub fn new(graph: Graph, seed: u64, init: InitScheme, device: Device) -> StandaloneTraining {
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(device);
        let net = Standalone::new(&vs.root(), graph);
        initialise(&vs, init, seed);
        StandaloneTraining {
            vs,
            net,
            eval: None,
        }
    }

    /// The trained weights with their graph names (for safetensors and the ONNX export).
    pub fn weights(&self) -> Result<Weights, TrainError> {
        self.net.weights()
    }
}

impl Trainable for StandaloneTraining {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn forward_train(&self, x: &Tensor, _step: u64) -> Tensor {
        self.net.forward(x, Mode::Train)
    }

    fn evaluate(&self, _epoch: usize) -> serde_json::Value {
        let Some((val, transform)) = &self.eval else {
            return serde_json::Value::Null;
        };
        let acc = accuracy(val, transform, 200, self.vs.device(), |x| {
            self.net.forward(x, Mode::Eval)
        });
        json!({ "val_top1": acc.top1, "val_top5": acc.top5, "val_images": acc.images })
    }
}

impl TrainableMut for StandaloneTraining {
    fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_models::{build, Arch, Layout, NetConfig, Op, Scale};

    /// Standard deviation of every 4-D kernel with enough values to estimate it, with its input channels
    /// per group.
    fn kernel_stds(training: &StandaloneTraining) -> Vec<(String, f64, i64)> {
        training
            .vs
            .variables()
            .into_iter()
            .filter(|(name, t)| name.ends_with("weight") && t.dim() == 4 && t.numel() >= 500)
            .map(|(name, t)| {
                let std = f64::try_from(t.std(true)).expect("a scalar");
                (name, std, t.size()[1])
            })
            .collect()
    }

    /// `hsconas train --init` reaches the network: under `spos` every kernel is drawn from
    /// N(0, 1/in-channels-per-group) (depthwise kernels with standard deviation 1), under `kaiming` not.
    #[test]
    fn the_chosen_initialisation_is_applied() {
        let arch =
            Arch::uniform(Op::Shuffle3, Scale::from_tenths(2).expect("scale")).expect("arch");
        let config = NetConfig {
            layout: Layout::A,
            input_size: 32,
            classes: 10,
        };
        let graph = || build::network(&arch, &config).expect("graph");
        let spos = StandaloneTraining::new(graph(), 3, InitScheme::Spos, Device::Cpu);
        let stds = kernel_stds(&spos);
        assert!(
            stds.iter().any(|(_, _, fan_in)| *fan_in == 1),
            "a depthwise kernel"
        );
        for (name, std, fan_in) in &stds {
            let expected = 1.0 / *fan_in as f64;
            assert!(
                (std / expected - 1.0).abs() < 0.2,
                "{name}: std {std}, SPOS draws {expected}"
            );
        }
        let kaiming = StandaloneTraining::new(graph(), 3, InitScheme::Kaiming, Device::Cpu);
        let depthwise: Vec<f64> = kernel_stds(&kaiming)
            .into_iter()
            .filter(|(_, _, fan_in)| *fan_in == 1)
            .map(|(_, std, _)| std)
            .collect();
        assert!(!depthwise.is_empty());
        assert!(
            depthwise.iter().all(|std| *std < 0.5),
            "Kaiming (fan out) keeps depthwise kernels small: {depthwise:?}"
        );
    }
}
