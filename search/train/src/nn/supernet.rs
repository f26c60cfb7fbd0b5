//! The weight-sharing supernet of docs/DESIGN.md section 2: for every layer and every non-skip operator one
//! block at full width; a sampled `(op, scale)` runs that block with its mid channels masked after each
//! batch norm of the mid dimension, which is exactly a stand-alone block with the first `mid(t)` channels
//! ([`Supernet::extract`] slices them out).

use crate::TrainError;
use std::collections::HashMap;

use hsconas_foundation::HostTensor;
use hsconas_foundation::Weights;
use hsconas_models::build::{self, Piece};
use hsconas_models::graph::NodeOp;
use hsconas_models::{Arch, Choice, NetConfig, Op, Scale, NUM_LAYERS};
use tch::{nn, Device, Tensor};

use super::graph_module::{GraphModule, Mode};

/// One full-width block of the supernet and the nodes its channel scale masks.
#[derive(Debug)]
struct SuperBlock {
    module: GraphModule,
    /// Batch norms of the mid dimension (their output is masked to `mid(t)` channels).
    mid_norms: Vec<String>,
    /// Width of the layer's stage (mid channels follow from it and the scale).
    width: usize,
}

/// The supernet: stem, `20 x 4` full-width blocks, head, in one `VarStore`.
#[derive(Debug)]
pub struct Supernet {
    config: NetConfig,
    stem: GraphModule,
    /// `blocks[layer][op as usize]` for the four block operators.
    blocks: Vec<Vec<SuperBlock>>,
    head: GraphModule,
}

/// The supernet's name of a block parameter: `layers.<l>.<rest>` of operator `op` is
/// `layers.<l>.<op>.<rest>`.
pub fn supernet_name(graph_name: &str, op: Op) -> String {
    match graph_name
        .strip_prefix("layers.")
        .and_then(|r| r.split_once('.'))
    {
        Some((layer, rest)) => format!("layers.{layer}.{op}.{rest}"),
        None => graph_name.to_string(),
    }
}

impl Supernet {
    /// Creates the supernet's tensors (freshly initialised) under `root`.
    pub fn new(root: &nn::Path, config: NetConfig) -> Result<Supernet, TrainError> {
        config.validate()?;
        let stem = GraphModule::new(root, build::piece(Piece::Stem, &config)?, str::to_string);
        let head = GraphModule::new(root, build::piece(Piece::Head, &config)?, str::to_string);
        let mut blocks = Vec::with_capacity(NUM_LAYERS);
        for layer in 0..NUM_LAYERS {
            let mut ops = Vec::with_capacity(Op::BLOCKS.len());
            for op in Op::BLOCKS {
                let full =
                    build::piece(Piece::block(layer, Choice::new(op, Scale::FULL)), &config)?;
                let narrow_scale = Scale::from_tenths(1).unwrap_or(Scale::FULL);
                let narrow =
                    build::piece(Piece::block(layer, Choice::new(op, narrow_scale)), &config)?;
                // The nodes whose width depends on the scale are the mid dimension.
                let mid_norms = full
                    .nodes
                    .iter()
                    .zip(&narrow.nodes)
                    .filter(|(f, n)| {
                        f.shape.c != n.shape.c && matches!(f.op, NodeOp::BatchNorm { .. })
                    })
                    .map(|(f, _)| f.name.clone())
                    .collect();
                let module = GraphModule::new(root, full, |n| supernet_name(n, op));
                ops.push(SuperBlock {
                    module,
                    mid_norms,
                    width: config.layer_width(layer),
                });
            }
            blocks.push(ops);
        }
        Ok(Supernet {
            config,
            stem,
            blocks,
            head,
        })
    }

    /// The network configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Logits of `arch` on `x` (`[n, 3, s, s]`).
    pub fn forward(&self, x: &Tensor, arch: &Arch, mode: Mode) -> Tensor {
        let none = HashMap::new();
        let mut y = self.stem.forward(x, mode, &none);
        for (layer, choice) in arch.choices().iter().enumerate() {
            if choice.is_skip() {
                continue;
            }
            let block = &self.blocks[layer][choice.op() as usize];
            let mid = choice.scale().mid_channels(block.width) as i64;
            let masks: HashMap<String, i64> =
                block.mid_norms.iter().map(|n| (n.clone(), mid)).collect();
            y = block.module.forward(&y, mode, &masks);
        }
        self.head.forward(&y, mode, &none)
    }

    /// Resets the running statistics of every batch norm on the path of `arch` (before recalibrating it).
    pub fn reset_running_stats(&self, arch: &Arch) {
        self.stem.reset_running_stats();
        self.head.reset_running_stats();
        for (layer, choice) in arch.choices().iter().enumerate() {
            if !choice.is_skip() {
                self.blocks[layer][choice.op() as usize]
                    .module
                    .reset_running_stats();
            }
        }
    }

    /// The stand-alone subnet of `arch`: every tensor of `build::network(arch)` (the parameter names of docs/DESIGN.md section 2),
    /// sliced from the supernet (first channels along every dimension), on the CPU.
    pub fn extract(&self, arch: &Arch) -> Result<Weights, TrainError> {
        let graph = build::network(arch, &self.config)?;
        let mut weights = Weights::default();
        for spec in graph.params() {
            let source = self
                .source_tensor(&spec.name, arch)
                .ok_or_else(|| TrainError::MissingTensor(spec.name.clone()))?;
            let mut t = source.detach().to_device(Device::Cpu);
            for (dim, &size) in spec.shape.iter().enumerate() {
                t = t.narrow(dim as i64, 0, size as i64);
            }
            let data = Vec::<f32>::try_from(t.contiguous().view([-1]))?;
            weights.insert(
                spec.name.clone(),
                HostTensor {
                    shape: spec.shape.clone(),
                    data,
                },
            );
        }
        Ok(weights)
    }

    fn source_tensor(&self, name: &str, arch: &Arch) -> Option<&Tensor> {
        if let Some(rest) = name.strip_prefix("layers.") {
            let layer: usize = rest.split('.').next()?.parse().ok()?;
            let op = arch.layer(layer)?.op();
            return self
                .blocks
                .get(layer)?
                .get(op as usize)?
                .module
                .tensor(name);
        }
        self.stem.tensor(name).or_else(|| self.head.tensor(name))
    }
}
