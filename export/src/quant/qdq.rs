//! FP32 ONNX model + calibration ranges -> the same network in QDQ form: `QuantizeLinear` /
//! `DequantizeLinear` pairs around every quantised activation, int8 per-channel weights and int32
//! biases behind `DequantizeLinear`, which ONNX Runtime and TensorRT fuse into integer kernels.
//!
//! Which tensors are quantised:
//! - a node is quantised when its operator is one this module knows ([`QUANTIZABLE`]) and the
//!   selection includes its name (a prefix of it: derived nodes such as `<name>.flatten` follow theirs);
//! - an activation is quantised when a quantised node produces or consumes it, except the graph output
//!   (logits stay FP32) and the output of a convolution (or Gemm) whose only consumer is a quantised
//!   ReLU or Clip: the quantisation point is after the activation, where ONNX Runtime folds the
//!   activation into the integer convolution;
//! - every consumer of a quantised activation reads its own `DequantizeLinear` (ONNX Runtime fuses a
//!   DQ with one consumer only), so a block in FP32 after a quantised one reads the dequantised output;
//! - data-movement operators (Reshape, Transpose, Slice, Flatten, MaxPool) and Concat keep one scale
//!   across their inputs and output (the channel shuffle, its split and the concatenation share one),
//!   calibrated on the union of their tensors' ranges, so no requantisation happens between them.

use std::collections::{BTreeMap, HashMap, HashSet};

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

use super::calibrate::ActivationRanges;
use super::params::{
    activation_params, quantize_bias, quantize_per_channel, ActivationScheme, Element, QuantParams,
    Range,
};
use crate::onnx::proto::{attr_int, f32_tensor, i32_tensor, int8_tensor, u8_tensor};
use crate::ExportError;
use hsconas_vocabulary::WeightRange;

/// Operators that have a quantised form (fused by ONNX Runtime, or run between DQ and Q).
pub const QUANTIZABLE: &[&str] = &[
    "Conv",
    "Gemm",
    "Add",
    "Mul",
    "Concat",
    "GlobalAveragePool",
    "MaxPool",
    "Reshape",
    "Transpose",
    "Slice",
    "Flatten",
    "Relu",
    "Clip",
    "HardSwish",
    "HardSigmoid",
];

/// Operators whose output keeps the scale of their inputs.
const SHARES_SCALE: &[&str] = &[
    "Reshape",
    "Transpose",
    "Slice",
    "Flatten",
    "MaxPool",
    "Concat",
];

/// Which nodes are quantised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodeSelection {
    /// Every node with a quantised form.
    #[default]
    All,
    /// Nodes whose name starts with one of these prefixes (e.g. `features.3.` for one layer).
    Prefixes(Vec<String>),
}

impl NodeSelection {
    fn includes(&self, node: &str) -> bool {
        match self {
            NodeSelection::All => true,
            NodeSelection::Prefixes(prefixes) => prefixes.iter().any(|p| node.starts_with(p)),
        }
    }
}

/// What a QDQ rewrite did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QdqSummary {
    /// Nodes quantised.
    pub quantized_nodes: usize,
    /// Nodes with a quantised form left in FP32 by the selection.
    pub fp32_nodes: usize,
    /// Activations with a Q/DQ pair.
    pub quantized_tensors: usize,
    /// Distinct activation scales (tensors that share one count once).
    pub scale_groups: usize,
    /// Weight tensors stored as int8.
    pub int8_weights: usize,
}

/// The decisions of a rewrite, computed from the graph alone.
struct Plan {
    quantized_node: Vec<bool>,
    /// Quantised activation -> its scale group, in order of first appearance.
    group_of: BTreeMap<String, usize>,
    groups: usize,
}

fn plan(model: &ModelProto, selection: &NodeSelection) -> Result<Plan, ExportError> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ExportError::Quantize("the model has no graph".into()))?;
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let output = graph.output.first().map(|o| o.name.as_str()).unwrap_or("");
    let quantized_node: Vec<bool> = graph
        .node
        .iter()
        .map(|n| QUANTIZABLE.contains(&n.op_type.as_str()) && selection.includes(&n.name))
        .collect();
    let mut producer: HashMap<&str, usize> = HashMap::new();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    // Activations in order of first appearance (deterministic group numbering).
    let mut order: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            if !initializers.contains(input.as_str()) && !input.is_empty() {
                consumers.entry(input).or_default().push(i);
                if seen.insert(input) {
                    order.push(input);
                }
            }
        }
        for out in &node.output {
            producer.insert(out, i);
            if seen.insert(out) {
                order.push(out);
            }
        }
    }
    let op = |i: usize| graph.node[i].op_type.as_str();
    let folded_into_activation = |t: &str| {
        let Some(&p) = producer.get(t) else {
            return false;
        };
        let users = consumers.get(t).map_or(&[][..], |v| &v[..]);
        quantized_node[p]
            && matches!(op(p), "Conv" | "Gemm")
            && users.len() == 1
            && quantized_node[users[0]]
            && matches!(op(users[0]), "Relu" | "Clip")
    };
    let quantized: Vec<&str> = order
        .iter()
        .copied()
        .filter(|&t| {
            let produced = producer.get(t).is_some_and(|&p| quantized_node[p]);
            let consumed = consumers
                .get(t)
                .is_some_and(|users| users.iter().any(|&c| quantized_node[c]));
            t != output && (produced || consumed) && !folded_into_activation(t)
        })
        .collect();
    let index: HashMap<&str, usize> = quantized.iter().enumerate().map(|(k, &t)| (t, k)).collect();
    let mut parent: Vec<usize> = (0..quantized.len()).collect();
    fn root(parent: &mut [usize], mut k: usize) -> usize {
        while parent[k] != k {
            parent[k] = parent[parent[k]];
            k = parent[k];
        }
        k
    }
    for (i, node) in graph.node.iter().enumerate() {
        if !quantized_node[i] || !SHARES_SCALE.contains(&node.op_type.as_str()) {
            continue;
        }
        let members: Vec<usize> = node
            .input
            .iter()
            .chain(&node.output)
            .filter_map(|t| index.get(t.as_str()).copied())
            .collect();
        for pair in members.windows(2) {
            let (a, b) = (root(&mut parent, pair[0]), root(&mut parent, pair[1]));
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut number: HashMap<usize, usize> = HashMap::new();
    let mut group_of = BTreeMap::new();
    for (k, t) in quantized.iter().enumerate() {
        let r = root(&mut parent, k);
        let next = number.len();
        let g = *number.entry(r).or_insert(next);
        group_of.insert(t.to_string(), g);
    }
    Ok(Plan {
        quantized_node,
        group_of,
        groups: number.len(),
    })
}

/// The activations a rewrite with `selection` quantises: the tensors calibration must measure.
pub fn tensors_to_calibrate(
    model: &ModelProto,
    selection: &NodeSelection,
) -> Result<Vec<String>, ExportError> {
    Ok(plan(model, selection)?.group_of.into_keys().collect())
}

/// Rewrites the FP32 `model` (batch norms folded, opset 13 or newer) into QDQ form with the activation
/// ranges of `ranges` mapped by `scheme`, weights onto `weight_range`. Every tensor [`tensors_to_calibrate`] names must have a range.
///
/// The model is one [`crate::onnx`] wrote: every non-initializer input of a node is a float activation,
/// and no tensor name ends in the suffixes this rewrite adds (`.q`, `.dq.<n>`, `.int8`, `.int32`,
/// `.scale`, `.zero_point`, `qdq.<g>.*`). A parameter shared by two convolutions is refused.
pub fn quantize_model(
    model: &ModelProto,
    ranges: &ActivationRanges,
    scheme: ActivationScheme,
    weight_range: WeightRange,
    selection: &NodeSelection,
) -> Result<(ModelProto, QdqSummary), ExportError> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty())
        .map_or(0, |o| o.version);
    if opset < 13 {
        return Err(ExportError::Quantize(format!(
            "per-channel QuantizeLinear needs opset 13 or newer; the model has {opset}"
        )));
    }
    let plan = plan(model, selection)?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ExportError::Quantize("the model has no graph".into()))?;
    // One range per group: the union of its tensors' ranges.
    let mut group_range: Vec<Option<Range>> = vec![None; plan.groups];
    for (t, &g) in &plan.group_of {
        let r = *ranges.ranges.get(t).ok_or_else(|| {
            ExportError::Quantize(format!(
                "the calibration measured no range for tensor '{t}'"
            ))
        })?;
        group_range[g] = Some(group_range[g].map_or(r, |u| u.union(r)));
    }
    let params: Vec<QuantParams> = group_range
        .iter()
        .enumerate()
        .map(|(g, r)| {
            let r = r.unwrap_or_else(|| unreachable!("every group has a member"));
            activation_params(&format!("scale group {g}"), r, scheme)
        })
        .collect::<Result<_, _>>()?;

    let mut w = Rewriter {
        initializers: graph.initializer.clone(),
        nodes: Vec::new(),
        removed: HashSet::new(),
        plan: &plan,
        params: &params,
        weight_range,
    };
    for (g, p) in params.iter().enumerate() {
        w.initializers
            .push(f32_tensor(&format!("qdq.{g}.scale"), &[], &[p.scale]));
        let zero_point = format!("qdq.{g}.zero_point");
        w.initializers.push(match p.element {
            Element::U8 => u8_tensor(&zero_point, &[], &[p.zero_point as u8]),
            Element::I8 => int8_tensor(&zero_point, &[], &[p.zero_point as i8]),
        });
    }
    let by_name: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut summary = QdqSummary {
        quantized_tensors: plan.group_of.len(),
        scale_groups: plan.groups,
        ..QdqSummary::default()
    };
    for input in &graph.input {
        w.quantize(&input.name);
    }
    for (i, node) in graph.node.iter().enumerate() {
        let mut node = node.clone();
        let original_x = node.input.first().cloned().unwrap_or_default();
        // One DequantizeLinear per consumer; a node reading a tensor twice (`Mul(x, x)`) reads one.
        let mut dequantized: HashMap<String, String> = HashMap::new();
        for input in node.input.iter_mut() {
            if plan.group_of.contains_key(input.as_str()) {
                let dq = match dequantized.get(input.as_str()) {
                    Some(dq) => dq.clone(),
                    None => w.dequantize(input, i),
                };
                dequantized.insert(input.clone(), dq.clone());
                *input = dq;
            }
        }
        if plan.quantized_node[i] {
            summary.quantized_nodes += 1;
            if matches!(node.op_type.as_str(), "Conv" | "Gemm") {
                w.quantize_weights(&mut node, &original_x, &by_name)?;
                summary.int8_weights += 1;
            }
        } else if QUANTIZABLE.contains(&node.op_type.as_str()) {
            summary.fp32_nodes += 1;
        }
        let outputs = node.output.clone();
        w.nodes.push(node);
        for out in &outputs {
            w.quantize(out);
        }
    }
    let removed = std::mem::take(&mut w.removed);
    w.initializers.retain(|t| !removed.contains(&t.name));
    let mut out = model.clone();
    let new_graph = out
        .graph
        .as_mut()
        .unwrap_or_else(|| unreachable!("checked above"));
    new_graph.node = w.nodes;
    new_graph.initializer = w.initializers;
    Ok((out, summary))
}

struct Rewriter<'a> {
    initializers: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    /// FP32 initialisers replaced by their int8 or int32 forms.
    removed: HashSet<String>,
    plan: &'a Plan,
    params: &'a [QuantParams],
    weight_range: WeightRange,
}

impl Rewriter<'_> {
    fn group_inputs(&self, t: &str) -> (String, String) {
        let g = self.plan.group_of[t];
        (format!("qdq.{g}.scale"), format!("qdq.{g}.zero_point"))
    }

    /// `t -> QuantizeLinear -> <t>.q` when `t` is quantised.
    fn quantize(&mut self, t: &str) {
        if !self.plan.group_of.contains_key(t) {
            return;
        }
        let (scale, zero_point) = self.group_inputs(t);
        self.nodes.push(node(
            "QuantizeLinear",
            &format!("{t}.quantize"),
            vec![t.to_string(), scale, zero_point],
            &format!("{t}.q"),
            None,
        ));
    }

    /// `<t>.q -> DequantizeLinear -> <t>.dq.<consumer>`, the name returned.
    fn dequantize(&mut self, t: &str, consumer: usize) -> String {
        let (scale, zero_point) = self.group_inputs(t);
        let out = format!("{t}.dq.{consumer}");
        self.nodes.push(node(
            "DequantizeLinear",
            &format!("{t}.dequantize.{consumer}"),
            vec![format!("{t}.q"), scale, zero_point],
            &out,
            None,
        ));
        out
    }

    /// Replaces the FP32 weight (input 1) and bias (input 2) of a Conv or Gemm by int8 / int32 tensors
    /// behind per-channel DequantizeLinear nodes. `x` is the node's activation input before rewriting.
    fn quantize_weights(
        &mut self,
        conv: &mut NodeProto,
        x: &str,
        initializers: &HashMap<&str, &TensorProto>,
    ) -> Result<(), ExportError> {
        if conv.op_type == "Gemm" {
            let trans_b = conv.attribute.iter().find(|a| a.name == "transB");
            if trans_b.map_or(0, |a| a.i) != 1 {
                return Err(ExportError::Quantize(format!(
                    "Gemm '{}' without transB = 1: its weight's output axis is not axis 0",
                    conv.name
                )));
            }
        }
        let g = *self.plan.group_of.get(x).ok_or_else(|| {
            ExportError::Quantize(format!("the input of '{}' is not quantised", conv.name))
        })?;
        let x_scale = self.params[g].scale;
        let weight_name = conv.input.get(1).cloned().unwrap_or_default();
        let weight = float_initializer(initializers, &weight_name, &conv.name)?;
        let channels = *weight.0.first().unwrap_or(&0);
        let q = quantize_per_channel(&weight_name, &weight.1, channels, self.weight_range)?;
        let dims: Vec<usize> = weight.0.clone();
        self.initializers.push(int8_tensor(
            &format!("{weight_name}.int8"),
            &dims,
            &q.values,
        ));
        self.initializers.push(f32_tensor(
            &format!("{weight_name}.scale"),
            &[channels],
            &q.scales,
        ));
        self.initializers.push(int8_tensor(
            &format!("{weight_name}.zero_point"),
            &[channels],
            &vec![0; channels],
        ));
        self.nodes.push(node(
            "DequantizeLinear",
            &format!("{weight_name}.dequantize"),
            vec![
                format!("{weight_name}.int8"),
                format!("{weight_name}.scale"),
                format!("{weight_name}.zero_point"),
            ],
            &format!("{weight_name}.dq"),
            Some(0),
        ));
        self.removed.insert(weight_name.clone());
        conv.input[1] = format!("{weight_name}.dq");
        if let Some(bias_name) = conv.input.get(2).cloned().filter(|b| !b.is_empty()) {
            let bias = float_initializer(initializers, &bias_name, &conv.name)?;
            let (values, scales) = quantize_bias(&bias_name, &bias.1, x_scale, &q.scales)?;
            let n = values.len();
            self.initializers
                .push(i32_tensor(&format!("{bias_name}.int32"), &[n], &values));
            self.initializers.push(f32_tensor(
                &format!("{bias_name}.scale"),
                &[scales.len()],
                &scales,
            ));
            self.initializers.push(i32_tensor(
                &format!("{bias_name}.zero_point"),
                &[n],
                &vec![0; n],
            ));
            self.nodes.push(node(
                "DequantizeLinear",
                &format!("{bias_name}.dequantize"),
                vec![
                    format!("{bias_name}.int32"),
                    format!("{bias_name}.scale"),
                    format!("{bias_name}.zero_point"),
                ],
                &format!("{bias_name}.dq"),
                Some(0),
            ));
            self.removed.insert(bias_name.clone());
            conv.input[2] = format!("{bias_name}.dq");
        }
        Ok(())
    }
}

/// Dimensions and values of an FP32 initialiser used by `node`.
fn float_initializer(
    initializers: &HashMap<&str, &TensorProto>,
    name: &str,
    node: &str,
) -> Result<(Vec<usize>, Vec<f32>), ExportError> {
    let t = initializers.get(name).ok_or_else(|| {
        ExportError::Quantize(format!(
            "'{node}' reads '{name}', which is not an initialiser: only constant weights are quantised"
        ))
    })?;
    if t.data_type != DataType::Float as i32 {
        return Err(ExportError::Quantize(format!(
            "initialiser '{name}' of '{node}' is not FP32"
        )));
    }
    let values: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    Ok((t.dims.iter().map(|&d| d as usize).collect(), values))
}

fn node(
    op_type: &str,
    name: &str,
    inputs: Vec<String>,
    output: &str,
    axis: Option<i64>,
) -> NodeProto {
    NodeProto {
        input: inputs,
        output: vec![output.to_string()],
        name: name.to_string(),
        op_type: op_type.to_string(),
        attribute: axis.map(|a| attr_int("axis", a)).into_iter().collect(),
        ..Default::default()
    }
}
