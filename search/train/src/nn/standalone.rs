//! A stand-alone network (any graph of `hsconas-models`, e.g. an architecture's) with its own tensors:
//! trained from scratch, or loaded from weights extracted from the supernet.

use crate::TrainError;
use hsconas_export::GraphWeights;
use std::collections::HashMap;

use hsconas_foundation::Weights;
use hsconas_models::graph::Graph;
use tch::{nn, Tensor};

use super::graph_module::{GraphModule, Mode};

/// A network in a `VarStore`, its tensors named as in the graph (and in the ONNX export).
#[derive(Debug)]
pub struct Standalone {
    module: GraphModule,
}

impl Standalone {
    /// Fresh tensors under `root`.
    pub fn new(root: &nn::Path, graph: Graph) -> Standalone {
        Standalone {
            module: GraphModule::new(root, graph, str::to_string),
        }
    }

    /// The interpreter holding its tensors.
    pub fn module(&self) -> &GraphModule {
        &self.module
    }

    /// Logits on `x`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        self.module.forward(x, mode, &HashMap::new())
    }

    /// The network's tensors with their graph names, on the CPU.
    pub fn weights(&self) -> Result<Weights, TrainError> {
        let mut weights = Weights::default();
        for spec in self.module.graph().params() {
            let t = self
                .module
                .tensor(&spec.name)
                .ok_or_else(|| TrainError::MissingTensor(spec.name.clone()))?;
            let data = Vec::<f32>::try_from(
                t.detach()
                    .to_device(tch::Device::Cpu)
                    .contiguous()
                    .view([-1]),
            )?;
            weights.insert(
                spec.name.clone(),
                hsconas_foundation::HostTensor {
                    shape: spec.shape.clone(),
                    data,
                },
            );
        }
        Ok(weights)
    }

    /// Resets every batch norm's running statistics.
    pub fn reset_running_stats(&self) {
        self.module.reset_running_stats();
    }

    /// Copies `weights` in (every tensor of the graph must be there, with its shape).
    pub fn load(&mut self, weights: &Weights) -> Result<(), TrainError> {
        weights.check(self.module.graph())?;
        tch::no_grad(|| -> Result<(), TrainError> {
            for spec in self.module.graph().params() {
                let host = weights.require(&spec)?;
                let target = self
                    .module
                    .tensor(&spec.name)
                    .ok_or_else(|| TrainError::MissingTensor(spec.name.clone()))?;
                let dims: Vec<i64> = host.shape.iter().map(|&d| d as i64).collect();
                let value = Tensor::from_slice(&host.data)
                    .view(dims.as_slice())
                    .to_device(target.device());
                target.shallow_clone().copy_(&value);
            }
            Ok(())
        })
    }
}
