//! Runs a layer graph of `hsconas-models` with libtorch: one interpreter for whole networks (stand-alone
//! training, extracted subnets) and for the supernet's pieces, so that parameter names and semantics are
//! those of the ONNX exporter by construction.

use std::collections::HashMap;

use hsconas_models::graph::{Activation, Graph, Node, NodeOp, ParamKind, ParamSpec};
use tch::{nn, Kind, Tensor};

/// How batch norms behave in a forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Running statistics; nothing is updated.
    Eval,
    /// Batch statistics; running statistics updated with momentum 0.1 (PyTorch's default).
    Train,
    /// Batch statistics; running statistics updated with this momentum (`1/i` on the i-th batch gives the
    /// plain average of i batches: BN recalibration).
    Recalibrate(f64),
}

impl Mode {
    fn batch_norm(self) -> (bool, f64) {
        match self {
            Mode::Eval => (false, 0.0),
            Mode::Train => (true, 0.1),
            Mode::Recalibrate(m) => (true, m),
        }
    }
}

/// A graph with its tensors in a `VarStore`.
#[derive(Debug)]
pub struct GraphModule {
    graph: Graph,
    /// Tensors by the graph's parameter names.
    tensors: HashMap<String, Tensor>,
}

/// Creates `name` (dotted, e.g. `layers.3.main.0.weight`) under `root`, initialised for its role:
/// convolutions Kaiming-normal (fan out, like torchvision), BN scale 1 and shift 0, running mean 0 and
/// variance 1 (not trainable), fully connected N(0, 0.01) with zero bias.
pub fn create_param(root: &nn::Path, name: &str, spec: &ParamSpec) -> Tensor {
    let mut path = root.clone();
    let mut parts: Vec<&str> = name.split('.').collect();
    let last = parts.pop().unwrap_or(name);
    for p in parts {
        path = path.sub(p);
    }
    let dims: Vec<i64> = spec.shape.iter().map(|&d| d as i64).collect();
    match spec.kind {
        ParamKind::ConvWeight => {
            let fan_out = (spec.shape[0] * spec.shape[2] * spec.shape[3]) as f64;
            path.var(
                last,
                &dims,
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: (2.0 / fan_out).sqrt(),
                },
            )
        }
        ParamKind::LinearWeight => path.var(
            last,
            &dims,
            nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
        ),
        ParamKind::BnWeight => path.var(last, &dims, nn::Init::Const(1.0)),
        ParamKind::ConvBias | ParamKind::LinearBias | ParamKind::BnBias => {
            path.var(last, &dims, nn::Init::Const(0.0))
        }
        ParamKind::BnMean => path.zeros_no_train(last, &dims),
        ParamKind::BnVar => path.ones_no_train(last, &dims),
    }
}

impl GraphModule {
    /// Creates the graph's tensors under `root`, each named `rename(graph name)`.
    pub fn new(root: &nn::Path, graph: Graph, rename: impl Fn(&str) -> String) -> GraphModule {
        let tensors = graph
            .params()
            .iter()
            .map(|spec| {
                (
                    spec.name.clone(),
                    create_param(root, &rename(&spec.name), spec),
                )
            })
            .collect();
        GraphModule { graph, tensors }
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The tensor of a graph parameter name.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Every batch norm's running statistics back to mean 0, variance 1 (before a recalibration).
    pub fn reset_running_stats(&self) {
        tch::no_grad(|| {
            for (name, t) in &self.tensors {
                if name.ends_with(".running_mean") {
                    let _ = t.shallow_clone().fill_(0.0);
                } else if name.ends_with(".running_var") {
                    let _ = t.shallow_clone().fill_(1.0);
                }
            }
        });
    }

    /// Runs the graph on `x` (`[n, c, h, w]`) with batch norms in `mode`. `masks` maps node names to a
    /// channel count: that node's output keeps its first `k` channels and the rest are zeroed (dynamic
    /// channel scaling).
    pub fn forward(&self, x: &Tensor, mode: Mode, masks: &HashMap<String, i64>) -> Tensor {
        self.forward_observed(x, mode, masks, &mut |_, _| {})
    }

    /// [`GraphModule::forward`], showing `observe` every node's output (after its mask) as it is computed.
    pub fn forward_observed(
        &self,
        x: &Tensor,
        mode: Mode,
        masks: &HashMap<String, i64>,
        observe: &mut dyn FnMut(&Node, &Tensor),
    ) -> Tensor {
        let (train, momentum) = mode.batch_norm();
        let mut values: Vec<Tensor> = Vec::with_capacity(self.graph.nodes.len() + 1);
        values.push(x.shallow_clone());
        let t = |name: String| -> &Tensor {
            self.tensors.get(&name).unwrap_or_else(|| {
                unreachable!("GraphModule::new created every parameter ({name})")
            })
        };
        for node in &self.graph.nodes {
            let input = |i: usize| &values[node.inputs[i].node_index().map_or(0, |k| k + 1)];
            let p = |suffix: &str| t(format!("{}.{suffix}", node.name));
            let y = match &node.op {
                NodeOp::Conv(c) => {
                    let bias = c.bias.then(|| p("bias"));
                    input(0).conv2d(
                        p("weight"),
                        bias,
                        [c.stride as i64; 2],
                        [(c.kernel / 2) as i64; 2],
                        [1i64; 2],
                        c.groups as i64,
                    )
                }
                NodeOp::BatchNorm { eps, .. } => input(0).batch_norm(
                    Some(p("weight")),
                    Some(p("bias")),
                    Some(p("running_mean")),
                    Some(p("running_var")),
                    train,
                    momentum,
                    f64::from(*eps),
                    true,
                ),
                NodeOp::Act(a) => match a {
                    Activation::Relu => input(0).relu(),
                    Activation::Relu6 => input(0).clamp(0.0, 6.0),
                    Activation::HardSwish => input(0).hardswish(),
                    Activation::HardSigmoid => input(0).hardsigmoid(),
                },
                NodeOp::MaxPool { kernel, stride } => input(0).max_pool2d(
                    [*kernel as i64; 2],
                    [*stride as i64; 2],
                    [(*kernel / 2) as i64; 2],
                    [1i64; 2],
                    false,
                ),
                NodeOp::GlobalAvgPool => input(0).adaptive_avg_pool2d([1i64, 1]),
                NodeOp::Linear { bias, .. } => {
                    let b = bias.then(|| p("bias"));
                    input(0).flatten(1, -1).linear(p("weight"), b)
                }
                NodeOp::Add => input(0) + input(1),
                NodeOp::Mul => input(0) * input(1),
                NodeOp::Concat => {
                    let parts: Vec<&Tensor> = (0..node.inputs.len()).map(input).collect();
                    Tensor::cat(&parts, 1)
                }
                NodeOp::SliceChannels { start, end, step } => {
                    input(0).slice(1, *start as i64, *end as i64, *step as i64)
                }
                NodeOp::ChannelShuffle { groups } => {
                    let s = input(0).size();
                    let g = *groups as i64;
                    input(0)
                        .view([s[0], g, s[1] / g, s[2], s[3]])
                        .transpose(1, 2)
                        .contiguous()
                        .view([s[0], s[1], s[2], s[3]])
                }
            };
            let y = match masks.get(&node.name) {
                Some(&k) => mask_channels(&y, k),
                None => y,
            };
            observe(node, &y);
            values.push(y);
        }
        values
            .pop()
            .unwrap_or_else(|| unreachable!("the input is always there"))
    }
}

/// Keeps the first `k` channels of `y` (`[n, c, ...]`) and zeroes the rest.
pub fn mask_channels(y: &Tensor, k: i64) -> Tensor {
    let c = y.size()[1];
    if k >= c {
        return y.shallow_clone();
    }
    let mut shape = vec![1i64; y.dim()];
    shape[1] = c;
    let mask = Tensor::arange(c, (Kind::Float, y.device()))
        .lt(k)
        .to_kind(y.kind())
        .view(shape.as_slice());
    y * mask
}
