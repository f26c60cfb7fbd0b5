//! A small layer-graph IR: enough to express the search space's networks, their profiling pieces and the
//! hand-designed reference networks, with shape inference and parameter / MAC counting.
//!
//! A [`Graph`] has one input (a `C x H x W` tensor per sample; the batch is implicit) and nodes in
//! topological order, each producing one value; the last node is the output. Node names follow PyTorch
//! module paths (`stem.conv`, `layers.3.main.0`, `features.1.conv.0.0`), and parameters are named
//! `<node>.weight`, `<node>.bias`, `<node>.running_mean`, `<node>.running_var`, as in a PyTorch state dict.

use serde::Serialize;

/// Per-sample shape of a value: channels, height, width. After a [`NodeOp::Linear`] it is `[features, 1, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Shape {
    /// Channels (or features).
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Shape {
    /// A `c x h x w` shape.
    pub fn new(c: usize, h: usize, w: usize) -> Shape {
        Shape { c, h, w }
    }

    /// Number of elements per sample.
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// A value in the graph: the graph input or the output of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Value(usize);

impl Value {
    /// The graph input.
    pub const INPUT: Value = Value(0);

    /// The value produced by the node at `index` in [`Graph::nodes`].
    pub fn of_node(index: usize) -> Value {
        Value(index + 1)
    }

    /// The node producing this value, `None` for the input.
    pub fn node_index(self) -> Option<usize> {
        self.0.checked_sub(1)
    }
}

/// A 2-D convolution without padding choices: padding is always `kernel / 2` ("same" for odd kernels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Conv {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Groups (`cin` for depthwise).
    pub groups: usize,
    /// Whether the convolution has a bias.
    pub bias: bool,
}

/// Element-wise activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `min(max(0, x), 6)`.
    Relu6,
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
    /// `relu6(x + 3) / 6`.
    HardSigmoid,
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum NodeOp {
    /// Convolution.
    Conv(Conv),
    /// Batch normalisation (inference form: running statistics).
    BatchNorm {
        /// Channels.
        channels: usize,
        /// Epsilon added to the variance.
        eps: f32,
    },
    /// Element-wise activation.
    Act(Activation),
    /// Max pooling with padding `kernel / 2`.
    MaxPool {
        /// Square window.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Mean over height and width, keeping them as 1x1.
    GlobalAvgPool,
    /// Fully connected layer on the flattened input.
    Linear {
        /// Input features.
        fin: usize,
        /// Output features.
        fout: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// Element-wise sum of two values of the same shape.
    Add,
    /// Element-wise product; the second input may be `C x 1 x 1` (broadcast, as in squeeze-excitation).
    Mul,
    /// Concatenation along channels.
    Concat,
    /// Channels `start, start + step, ...` below `end`.
    SliceChannels {
        /// First channel.
        start: usize,
        /// One past the last channel.
        end: usize,
        /// Step between channels.
        step: usize,
    },
    /// ShuffleNet's channel shuffle: view as `[groups, C / groups]`, transpose, flatten.
    ChannelShuffle {
        /// Number of groups.
        groups: usize,
    },
}

/// The role of one parameter tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ParamKind {
    /// Convolution kernel `[cout, cin / groups, k, k]`.
    ConvWeight,
    /// Convolution bias `[cout]`.
    ConvBias,
    /// Batch-norm scale (gamma).
    BnWeight,
    /// Batch-norm shift (beta).
    BnBias,
    /// Batch-norm running mean (a buffer, not a trainable parameter).
    BnMean,
    /// Batch-norm running variance (a buffer, not a trainable parameter).
    BnVar,
    /// Fully connected weight `[fout, fin]`.
    LinearWeight,
    /// Fully connected bias `[fout]`.
    LinearBias,
}

impl ParamKind {
    /// Whether it counts as a parameter (BN running statistics do not).
    pub fn is_trainable(self) -> bool {
        !matches!(self, ParamKind::BnMean | ParamKind::BnVar)
    }
}

/// One named tensor a node needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamSpec {
    /// `<node>.<suffix>`, e.g. `stem.conv.weight`.
    pub name: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Role.
    pub kind: ParamKind,
}

impl ParamSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A node: an operation on earlier values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Module path, unique in the graph.
    pub name: String,
    /// The operation.
    pub op: NodeOp,
    /// Input values.
    pub inputs: Vec<Value>,
    /// Shape of the output.
    pub shape: Shape,
}

impl Node {
    /// Tensors this node needs, with PyTorch state-dict names.
    pub fn params(&self) -> Vec<ParamSpec> {
        let p = |suffix: &str, shape: Vec<usize>, kind| ParamSpec {
            name: format!("{}.{suffix}", self.name),
            shape,
            kind,
        };
        match self.op {
            NodeOp::Conv(c) => {
                let mut v = vec![p(
                    "weight",
                    vec![c.cout, c.cin / c.groups, c.kernel, c.kernel],
                    ParamKind::ConvWeight,
                )];
                if c.bias {
                    v.push(p("bias", vec![c.cout], ParamKind::ConvBias));
                }
                v
            }
            NodeOp::BatchNorm { channels, .. } => vec![
                p("weight", vec![channels], ParamKind::BnWeight),
                p("bias", vec![channels], ParamKind::BnBias),
                p("running_mean", vec![channels], ParamKind::BnMean),
                p("running_var", vec![channels], ParamKind::BnVar),
            ],
            NodeOp::Linear { fin, fout, bias } => {
                let mut v = vec![p("weight", vec![fout, fin], ParamKind::LinearWeight)];
                if bias {
                    v.push(p("bias", vec![fout], ParamKind::LinearBias));
                }
                v
            }
            _ => Vec::new(),
        }
    }

    /// Trainable parameters (BN running statistics excluded).
    pub fn param_count(&self) -> usize {
        self.params()
            .iter()
            .filter(|p| p.kind.is_trainable())
            .map(ParamSpec::numel)
            .sum()
    }

    /// Multiply-accumulates of convolutions and fully connected layers, per sample.
    pub fn macs(&self) -> usize {
        match self.op {
            NodeOp::Conv(c) => self.shape.numel() * (c.cin / c.groups) * c.kernel * c.kernel,
            NodeOp::Linear { fin, fout, .. } => fin * fout,
            _ => 0,
        }
    }
}

/// A network or a piece of one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    /// Name, stored in exported models.
    pub name: String,
    /// Per-sample input shape.
    pub input: Shape,
    /// Nodes in topological order; the last one is the output.
    pub nodes: Vec<Node>,
}

impl Graph {
    /// The node producing `value`, `None` for the input.
    pub fn node(&self, value: Value) -> Option<&Node> {
        value.node_index().and_then(|i| self.nodes.get(i))
    }

    /// Shape of a value.
    pub fn shape(&self, value: Value) -> Shape {
        self.node(value).map_or(self.input, |n| n.shape)
    }

    /// The output value.
    pub fn output(&self) -> Value {
        Value(self.nodes.len())
    }

    /// Output shape per sample.
    pub fn output_shape(&self) -> Shape {
        self.shape(self.output())
    }

    /// Every tensor the graph needs, in node order.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.nodes.iter().flat_map(Node::params).collect()
    }

    /// Trainable parameters.
    pub fn param_count(&self) -> usize {
        self.nodes.iter().map(Node::param_count).sum()
    }

    /// Multiply-accumulates per sample.
    pub fn macs(&self) -> usize {
        self.nodes.iter().map(Node::macs).sum()
    }

    /// Parameters and MACs of the nodes whose name starts with `prefix` followed by `.` (or equals it).
    pub fn count_under(&self, prefix: &str) -> (usize, usize) {
        self.nodes
            .iter()
            .filter(|n| {
                n.name == prefix
                    || n.name
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .fold((0, 0), |(p, m), n| (p + n.param_count(), m + n.macs()))
    }
}

/// Builds a [`Graph`] node by node, inferring shapes.
///
/// Methods take the module path of the node and the input value(s) and return the new value. Shapes are
/// checked where a mismatch would be a bug in a network definition; such a bug panics with the node name.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: Graph,
}

impl GraphBuilder {
    /// A builder for a graph with the given per-sample input shape.
    pub fn new(name: impl Into<String>, input: Shape) -> GraphBuilder {
        GraphBuilder {
            graph: Graph {
                name: name.into(),
                input,
                nodes: Vec::new(),
            },
        }
    }

    /// Shape of a value built so far.
    pub fn shape(&self, value: Value) -> Shape {
        self.graph.shape(value)
    }

    /// The finished graph.
    pub fn finish(self) -> Graph {
        self.graph
    }

    fn push(&mut self, name: String, op: NodeOp, inputs: Vec<Value>, shape: Shape) -> Value {
        debug_assert!(
            self.graph.nodes.iter().all(|n| n.name != name),
            "duplicate node name {name}"
        );
        self.graph.nodes.push(Node {
            name,
            op,
            inputs,
            shape,
        });
        self.graph.output()
    }

    /// Convolution with padding `kernel / 2`.
    pub fn conv(&mut self, name: impl Into<String>, x: Value, conv: Conv) -> Value {
        let name = name.into();
        let s = self.shape(x);
        assert!(
            s.c == conv.cin
                && conv.cin.is_multiple_of(conv.groups)
                && conv.cout.is_multiple_of(conv.groups),
            "{name}: bad conv {conv:?} on {s:?}"
        );
        let out = |n: usize| (n + 2 * (conv.kernel / 2) - conv.kernel) / conv.stride + 1;
        self.push(
            name,
            NodeOp::Conv(conv),
            vec![x],
            Shape::new(conv.cout, out(s.h), out(s.w)),
        )
    }

    /// Bias-free convolution of the value's channels to `cout`.
    pub fn conv_plain(
        &mut self,
        name: impl Into<String>,
        x: Value,
        cout: usize,
        kernel: usize,
        stride: usize,
    ) -> Value {
        let cin = self.shape(x).c;
        self.conv(
            name,
            x,
            Conv {
                cin,
                cout,
                kernel,
                stride,
                groups: 1,
                bias: false,
            },
        )
    }

    /// Bias-free depthwise convolution.
    pub fn conv_dw(
        &mut self,
        name: impl Into<String>,
        x: Value,
        kernel: usize,
        stride: usize,
    ) -> Value {
        let c = self.shape(x).c;
        self.conv(
            name,
            x,
            Conv {
                cin: c,
                cout: c,
                kernel,
                stride,
                groups: c,
                bias: false,
            },
        )
    }

    /// Batch normalisation with PyTorch's default epsilon (1e-5).
    pub fn bn(&mut self, name: impl Into<String>, x: Value) -> Value {
        self.bn_eps(name, x, 1e-5)
    }

    /// Batch normalisation with the given epsilon.
    pub fn bn_eps(&mut self, name: impl Into<String>, x: Value, eps: f32) -> Value {
        let s = self.shape(x);
        self.push(
            name.into(),
            NodeOp::BatchNorm { channels: s.c, eps },
            vec![x],
            s,
        )
    }

    /// Element-wise activation.
    pub fn act(&mut self, name: impl Into<String>, x: Value, act: Activation) -> Value {
        let s = self.shape(x);
        self.push(name.into(), NodeOp::Act(act), vec![x], s)
    }

    /// Max pooling with padding `kernel / 2`.
    pub fn max_pool(
        &mut self,
        name: impl Into<String>,
        x: Value,
        kernel: usize,
        stride: usize,
    ) -> Value {
        let s = self.shape(x);
        let out = |n: usize| (n + 2 * (kernel / 2) - kernel) / stride + 1;
        self.push(
            name.into(),
            NodeOp::MaxPool { kernel, stride },
            vec![x],
            Shape::new(s.c, out(s.h), out(s.w)),
        )
    }

    /// Global average pooling to `C x 1 x 1`.
    pub fn global_avg_pool(&mut self, name: impl Into<String>, x: Value) -> Value {
        let c = self.shape(x).c;
        self.push(
            name.into(),
            NodeOp::GlobalAvgPool,
            vec![x],
            Shape::new(c, 1, 1),
        )
    }

    /// Fully connected layer with bias on the flattened input.
    pub fn linear(&mut self, name: impl Into<String>, x: Value, fout: usize) -> Value {
        let fin = self.shape(x).numel();
        self.push(
            name.into(),
            NodeOp::Linear {
                fin,
                fout,
                bias: true,
            },
            vec![x],
            Shape::new(fout, 1, 1),
        )
    }

    /// Element-wise sum.
    pub fn add(&mut self, name: impl Into<String>, a: Value, b: Value) -> Value {
        let name = name.into();
        let s = self.shape(a);
        assert_eq!(
            s,
            self.shape(b),
            "{name}: adding values of different shapes"
        );
        self.push(name, NodeOp::Add, vec![a, b], s)
    }

    /// Element-wise product; `b` may be `C x 1 x 1`.
    pub fn mul(&mut self, name: impl Into<String>, a: Value, b: Value) -> Value {
        let name = name.into();
        let (sa, sb) = (self.shape(a), self.shape(b));
        assert!(
            sa == sb || (sb.c == sa.c && sb.h == 1 && sb.w == 1),
            "{name}: cannot broadcast {sb:?} to {sa:?}"
        );
        self.push(name, NodeOp::Mul, vec![a, b], sa)
    }

    /// Concatenation along channels.
    pub fn concat(&mut self, name: impl Into<String>, parts: &[Value]) -> Value {
        let name = name.into();
        let first = self.shape(parts[0]);
        let mut c = 0;
        for &p in parts {
            let s = self.shape(p);
            assert!(
                s.h == first.h && s.w == first.w,
                "{name}: concatenating different spatial sizes"
            );
            c += s.c;
        }
        self.push(
            name,
            NodeOp::Concat,
            parts.to_vec(),
            Shape::new(c, first.h, first.w),
        )
    }

    /// Channels `start, start + step, ...` below `end`.
    pub fn slice_channels(
        &mut self,
        name: impl Into<String>,
        x: Value,
        start: usize,
        end: usize,
        step: usize,
    ) -> Value {
        let s = self.shape(x);
        let c = (end.min(s.c) - start).div_ceil(step);
        self.push(
            name.into(),
            NodeOp::SliceChannels { start, end, step },
            vec![x],
            Shape::new(c, s.h, s.w),
        )
    }

    /// ShuffleNet channel shuffle.
    pub fn channel_shuffle(&mut self, name: impl Into<String>, x: Value, groups: usize) -> Value {
        let s = self.shape(x);
        self.push(name.into(), NodeOp::ChannelShuffle { groups }, vec![x], s)
    }

    /// `conv -> bn` with a bias-free convolution; returns the BN output.
    pub fn conv_bn(&mut self, prefix: &str, first_index: usize, x: Value, conv: Conv) -> Value {
        let y = self.conv(format!("{prefix}.{first_index}"), x, conv);
        self.bn(format!("{prefix}.{}", first_index + 1), y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_counts_of_a_tiny_graph() {
        let mut b = GraphBuilder::new("tiny", Shape::new(3, 32, 32));
        let x = b.conv_plain("c", Value::INPUT, 8, 3, 2);
        let x = b.bn("bn", x);
        let even = b.slice_channels("even", x, 0, 8, 2);
        let odd = b.slice_channels("odd", x, 1, 8, 2);
        let y = b.concat("cat", &[even, odd]);
        let y = b.global_avg_pool("pool", y);
        b.linear("fc", y, 10);
        let g = b.finish();
        assert_eq!(g.shape(x), Shape::new(8, 16, 16));
        assert_eq!(g.shape(even).c, 4);
        assert_eq!(g.output_shape(), Shape::new(10, 1, 1));
        // conv 8*3*9 = 216, BN 16, FC 8*10 + 10 = 90.
        assert_eq!(g.param_count(), 216 + 16 + 90);
        assert_eq!(g.macs(), 8 * 16 * 16 * 27 + 80);
        assert_eq!(g.count_under("c"), (216, 8 * 16 * 16 * 27));
        assert_eq!(g.params().len(), 1 + 4 + 2);
    }
}
