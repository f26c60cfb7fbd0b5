//! Training one architecture from scratch (paper IV-A: the supernet's recipe plus a learning-rate
//! warm-up), evaluated on the validation split after every epoch.

use std::sync::Arc;

use hsconas_export::Weights;
use hsconas_models::graph::Graph;
use serde_json::json;
use tch::{nn, Device, Tensor};

use super::eval::accuracy;
use super::trainer::{Trainable, TrainableMut};
use crate::data::{ImageSet, Transform};
use crate::nn::{initialise, InitScheme, Mode, Standalone};

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
    pub fn weights(&self) -> anyhow::Result<Weights> {
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
