//! Layer graph + weights -> ONNX (opset 17 by default).
//!
//! Every node of the IR becomes one or a few standard ONNX operators: `Conv`, `BatchNormalization`,
//! `Relu`, `Clip` (ReLU6), `HardSwish`, `HardSigmoid`, `MaxPool`, `GlobalAveragePool`, `Flatten` + `Gemm`,
//! `Add`, `Mul`, `Concat`, `Slice` (channel slicing, with a step for the even/odd split of stride-1 choice
//! blocks; the batch axis is never folded into a reshape), and `Reshape` / `Transpose` / `Reshape` for
//! ShuffleNet's channel shuffle (shapes keep the batch dimension with a `0` entry).
//! The graph input is `input` (`[batch, 3, S, S]` for networks), the output `output`.

pub(crate) mod proto;

use crate::GraphWeights;
use std::collections::HashMap;
use std::path::Path;

use hsconas_models::graph::{Activation, Graph, NodeOp, Value};
use prost::Message;
use tract_onnx::pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
};

use hsconas_foundation::write_atomic;

use crate::{ExportError, Weights};
use proto::{attr_float, attr_int, attr_ints, f32_tensor, i64_tensor, value_info};

/// Name of the graph input.
pub const INPUT_NAME: &str = "input";
/// Name of the graph output.
pub const OUTPUT_NAME: &str = "output";

/// The batch dimension of the exported model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDim {
    /// A fixed batch size (what profiling uses: the device's batch).
    Fixed(usize),
    /// A symbolic dimension named `batch`.
    Symbolic,
}

/// Export settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxOptions {
    /// Batch dimension.
    pub batch: BatchDim,
    /// Default-domain opset, 17 or newer.
    pub opset: i64,
    /// `key -> value` pairs stored in the model's `metadata_props`.
    pub metadata: Vec<(String, String)>,
}

impl Default for OnnxOptions {
    /// Batch 1, opset 17, no metadata.
    fn default() -> Self {
        OnnxOptions {
            batch: BatchDim::Fixed(1),
            opset: 17,
            metadata: Vec::new(),
        }
    }
}

/// Builds the ONNX model of `graph` with `weights` (which must hold every tensor the graph needs).
pub fn to_model(
    graph: &Graph,
    weights: &Weights,
    options: &OnnxOptions,
) -> Result<ModelProto, ExportError> {
    if options.opset < 17 {
        return Err(ExportError::BadOption(format!(
            "opset {} is older than 17",
            options.opset
        )));
    }
    if options.batch == BatchDim::Fixed(0) {
        return Err(ExportError::BadOption(
            "the batch size must be at least 1".into(),
        ));
    }
    weights.check(graph)?;
    let mut w = Writer::default();
    w.run(graph, weights)?;
    let batch_dim = match options.batch {
        BatchDim::Fixed(n) => proto::Dim::Fixed(n as i64),
        BatchDim::Symbolic => proto::Dim::Named("batch".into()),
    };
    let i = graph.input;
    let o = graph.output_shape();
    let output_dims: Vec<proto::Dim> = if w.rank[&graph.output()] == 2 {
        vec![batch_dim.clone(), proto::Dim::Fixed(o.c as i64)]
    } else {
        vec![
            batch_dim.clone(),
            proto::Dim::Fixed(o.c as i64),
            proto::Dim::Fixed(o.h as i64),
            proto::Dim::Fixed(o.w as i64),
        ]
    };
    let input_dims = vec![
        batch_dim,
        proto::Dim::Fixed(i.c as i64),
        proto::Dim::Fixed(i.h as i64),
        proto::Dim::Fixed(i.w as i64),
    ];
    let graph_proto = GraphProto {
        node: w.nodes,
        name: graph.name.clone(),
        initializer: w.initializers,
        input: vec![value_info(INPUT_NAME, input_dims)],
        output: vec![value_info(OUTPUT_NAME, output_dims)],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: options.opset,
        }],
        producer_name: "hsconas".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph_proto),
        metadata_props: options
            .metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        ..Default::default()
    })
}

/// The serialised ONNX model.
pub fn to_bytes(
    graph: &Graph,
    weights: &Weights,
    options: &OnnxOptions,
) -> Result<Vec<u8>, ExportError> {
    Ok(to_model(graph, weights, options)?.encode_to_vec())
}

/// Writes the ONNX model to `path` atomically.
pub fn write(
    path: &Path,
    graph: &Graph,
    weights: &Weights,
    options: &OnnxOptions,
) -> Result<(), ExportError> {
    Ok(write_atomic(path, &to_bytes(graph, weights, options)?)?)
}

/// The `metadata_props` of a serialised ONNX model (`key -> value`).
pub fn metadata(onnx: &[u8]) -> Result<std::collections::BTreeMap<String, String>, ExportError> {
    let model = ModelProto::decode(onnx).map_err(|e| ExportError::NotOnnx(e.to_string()))?;
    Ok(model
        .metadata_props
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect())
}

/// Translates IR nodes into ONNX nodes and initialisers.
#[derive(Default)]
struct Writer {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Tensor rank of each value (4 for feature maps, 2 after a fully connected layer).
    rank: HashMap<Value, usize>,
    /// ONNX tensor name of each value.
    names: HashMap<Value, String>,
}

impl Writer {
    fn run(&mut self, graph: &Graph, weights: &Weights) -> Result<(), ExportError> {
        self.rank.insert(Value::INPUT, 4);
        self.names.insert(Value::INPUT, INPUT_NAME.into());
        let last = graph.nodes.len();
        for (index, node) in graph.nodes.iter().enumerate() {
            let value = Value::of_node(index);
            let out = if index + 1 == last {
                OUTPUT_NAME.to_string()
            } else {
                node.name.clone()
            };
            let inputs: Vec<String> = node.inputs.iter().map(|v| self.names[v].clone()).collect();
            let in_rank = node.inputs.first().map_or(4, |v| self.rank[v]);
            let mut rank = in_rank;
            let params = node.params();
            for spec in &params {
                let t = weights.require(spec)?;
                self.initializers
                    .push(f32_tensor(&spec.name, &t.shape, &t.data));
            }
            let param_names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
            let name = node.name.as_str();
            match &node.op {
                NodeOp::Conv(c) => {
                    let p = (c.kernel / 2) as i64;
                    let (k, s) = (c.kernel as i64, c.stride as i64);
                    let attrs = vec![
                        attr_ints("kernel_shape", &[k, k]),
                        attr_ints("strides", &[s, s]),
                        attr_ints("pads", &[p, p, p, p]),
                        attr_ints("dilations", &[1, 1]),
                        attr_int("group", c.groups as i64),
                    ];
                    self.node("Conv", name, [inputs, param_names].concat(), &out, attrs);
                }
                NodeOp::BatchNorm { eps, .. } => {
                    self.node(
                        "BatchNormalization",
                        name,
                        [inputs, param_names].concat(),
                        &out,
                        vec![attr_float("epsilon", *eps)],
                    );
                }
                NodeOp::Act(act) => self.activation(*act, name, &inputs[0], &out),
                NodeOp::MaxPool { kernel, stride } => {
                    let (k, s, p) = (*kernel as i64, *stride as i64, (*kernel / 2) as i64);
                    let attrs = vec![
                        attr_ints("kernel_shape", &[k, k]),
                        attr_ints("strides", &[s, s]),
                        attr_ints("pads", &[p, p, p, p]),
                    ];
                    self.node("MaxPool", name, inputs, &out, attrs);
                }
                NodeOp::GlobalAvgPool => self.node("GlobalAveragePool", name, inputs, &out, vec![]),
                NodeOp::Linear { .. } => {
                    let mut x = inputs[0].clone();
                    if in_rank != 2 {
                        let flat = format!("{name}.flatten");
                        self.node("Flatten", &flat, vec![x], &flat, vec![attr_int("axis", 1)]);
                        x = flat;
                    }
                    self.node(
                        "Gemm",
                        name,
                        [vec![x], param_names].concat(),
                        &out,
                        vec![attr_int("transB", 1)],
                    );
                    rank = 2;
                }
                NodeOp::Add => self.node("Add", name, inputs, &out, vec![]),
                NodeOp::Mul => self.node("Mul", name, inputs, &out, vec![]),
                NodeOp::Concat => {
                    self.node("Concat", name, inputs, &out, vec![attr_int("axis", 1)])
                }
                NodeOp::SliceChannels { start, end, step } => {
                    let consts = [
                        ("starts", *start as i64),
                        ("ends", *end as i64),
                        ("axes", 1),
                        ("steps", *step as i64),
                    ];
                    let mut slice_inputs = inputs;
                    for (suffix, v) in consts {
                        let const_name = format!("{name}.{suffix}");
                        self.initializers.push(i64_tensor(&const_name, &[1], &[v]));
                        slice_inputs.push(const_name);
                    }
                    self.node("Slice", name, slice_inputs, &out, vec![]);
                }
                NodeOp::ChannelShuffle { groups } => {
                    let s = node.shape;
                    let g = *groups as i64;
                    let (c, h, w) = (s.c as i64, s.h as i64, s.w as i64);
                    let (split, swapped, merged) = (
                        format!("{name}.split"),
                        format!("{name}.swap"),
                        format!("{name}.merge"),
                    );
                    self.initializers.push(i64_tensor(
                        &format!("{split}.shape"),
                        &[5],
                        &[0, g, c / g, h, w],
                    ));
                    self.initializers.push(i64_tensor(
                        &format!("{merged}.shape"),
                        &[4],
                        &[0, c, h, w],
                    ));
                    self.node(
                        "Reshape",
                        &split,
                        vec![inputs[0].clone(), format!("{split}.shape")],
                        &split,
                        vec![],
                    );
                    self.node(
                        "Transpose",
                        &swapped,
                        vec![split.clone()],
                        &swapped,
                        vec![attr_ints("perm", &[0, 2, 1, 3, 4])],
                    );
                    self.node(
                        "Reshape",
                        &merged,
                        vec![swapped, format!("{merged}.shape")],
                        &out,
                        vec![],
                    );
                }
            }
            self.rank.insert(value, rank);
            self.names.insert(value, out);
        }
        // A graph without nodes (a `skip` piece) passes its input through.
        if graph.nodes.is_empty() {
            self.node(
                "Identity",
                "identity",
                vec![INPUT_NAME.into()],
                OUTPUT_NAME,
                vec![],
            );
        }
        Ok(())
    }

    fn activation(&mut self, act: Activation, name: &str, x: &str, out: &str) {
        match act {
            Activation::Relu => self.node("Relu", name, vec![x.into()], out, vec![]),
            Activation::Relu6 => {
                let (lo, hi) = (format!("{name}.min"), format!("{name}.max"));
                self.initializers.push(f32_tensor(&lo, &[], &[0.0]));
                self.initializers.push(f32_tensor(&hi, &[], &[6.0]));
                self.node("Clip", name, vec![x.into(), lo, hi], out, vec![]);
            }
            Activation::HardSwish => self.node("HardSwish", name, vec![x.into()], out, vec![]),
            Activation::HardSigmoid => {
                let attrs = vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)];
                self.node("HardSigmoid", name, vec![x.into()], out, attrs);
            }
        }
    }

    fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: Vec<String>,
        output: &str,
        attribute: Vec<tract_onnx::pb::AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.to_string()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        });
    }
}
