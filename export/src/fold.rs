//! Batch-norm folding: every `Conv -> BatchNorm` pair whose convolution feeds nothing else becomes one
//! convolution with a bias, so inference runs one operator instead of two.
//!
//! With `s = gamma / sqrt(var + eps)` per output channel, the folded kernel is `W * s` and the bias
//! `(b - mean) * s + beta` (`b = 0` for a convolution without bias). The arithmetic is done in f64.

use crate::GraphWeights;
use std::collections::HashMap;

use hsconas_models::graph::{Graph, Node, NodeOp, Value};

use hsconas_foundation::HostTensor;

use crate::{ExportError, Weights};

/// The graph with batch norms folded into their convolutions, and the weights it needs (exactly the
/// tensors of [`Graph::params`] of the returned graph).
///
/// Batch norms that do not directly follow a convolution used only by them are kept. Node names are
/// unchanged, so a folded convolution's bias is `<conv name>.bias`.
pub fn fold_batch_norms(graph: &Graph, weights: &Weights) -> Result<(Graph, Weights), ExportError> {
    weights.check(graph)?;
    let mut uses: HashMap<Value, usize> = HashMap::new();
    for node in &graph.nodes {
        for v in &node.inputs {
            *uses.entry(*v).or_default() += 1;
        }
    }
    let foldable = |bn: &Node| -> Option<usize> {
        let NodeOp::BatchNorm { .. } = bn.op else {
            return None;
        };
        let conv_value = *bn.inputs.first()?;
        let index = conv_value.node_index()?;
        let is_conv = matches!(graph.nodes[index].op, NodeOp::Conv(_));
        (is_conv && uses.get(&conv_value) == Some(&1) && conv_value != graph.output())
            .then_some(index)
    };

    let mut nodes: Vec<Node> = Vec::with_capacity(graph.nodes.len());
    let mut tensors: HashMap<String, HostTensor> = HashMap::new();
    // Old value -> value in the folded graph.
    let mut remap: HashMap<Value, Value> = HashMap::from([(Value::INPUT, Value::INPUT)]);
    for (index, node) in graph.nodes.iter().enumerate() {
        if let Some(conv_index) = foldable(node) {
            let NodeOp::BatchNorm { eps, .. } = node.op else {
                unreachable!("foldable nodes are batch norms")
            };
            let conv_value = Value::of_node(conv_index);
            let new_value = remap[&conv_value];
            let folded = new_value
                .node_index()
                .unwrap_or_else(|| unreachable!("a convolution is a node"));
            fold_into(&mut nodes[folded], &mut tensors, node, eps, weights)?;
            remap.insert(Value::of_node(index), new_value);
            continue;
        }
        let mut copy = node.clone();
        copy.inputs = node.inputs.iter().map(|v| remap[v]).collect();
        for spec in node.params() {
            tensors.insert(spec.name.clone(), weights.require(&spec)?.clone());
        }
        nodes.push(copy);
        remap.insert(Value::of_node(index), Value::of_node(nodes.len() - 1));
    }
    let folded = Graph {
        name: graph.name.clone(),
        input: graph.input,
        nodes,
    };
    let mut out = Weights::default();
    for spec in folded.params() {
        let t = tensors
            .remove(&spec.name)
            .unwrap_or_else(|| unreachable!("every tensor of the folded graph was produced"));
        out.insert(spec.name, t);
    }
    out.check(&folded)?;
    Ok((folded, out))
}

/// Folds batch norm `bn` into the already copied convolution `conv` (its tensors in `tensors`).
fn fold_into(
    conv: &mut Node,
    tensors: &mut HashMap<String, HostTensor>,
    bn: &Node,
    eps: f32,
    weights: &Weights,
) -> Result<(), ExportError> {
    let NodeOp::Conv(mut c) = conv.op else {
        unreachable!("batch norms fold only into convolutions")
    };
    let bn_params = bn.params();
    let [gamma, beta, mean, var] = [0, 1, 2, 3].map(|i| weights.require(&bn_params[i]));
    let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
    let weight_name = format!("{}.weight", conv.name);
    let bias_name = format!("{}.bias", conv.name);
    let bias: Vec<f32> = if c.bias {
        tensors
            .remove(&bias_name)
            .map(|t| t.data)
            .unwrap_or_else(|| unreachable!("a convolution with a bias has its tensor"))
    } else {
        vec![0.0; c.cout]
    };
    let kernel = tensors
        .get_mut(&weight_name)
        .unwrap_or_else(|| unreachable!("every convolution has its kernel"));
    let per_channel = kernel.data.len() / c.cout;
    let new_bias: Vec<f32> = kernel
        .data
        .chunks_mut(per_channel)
        .enumerate()
        .map(|(o, filter)| {
            let s = f64::from(gamma.data[o]) / (f64::from(var.data[o]) + f64::from(eps)).sqrt();
            for w in filter {
                *w = (f64::from(*w) * s) as f32;
            }
            ((f64::from(bias[o]) - f64::from(mean.data[o])) * s + f64::from(beta.data[o])) as f32
        })
        .collect();
    tensors.insert(
        bias_name,
        HostTensor {
            shape: vec![c.cout],
            data: new_bias,
        },
    );
    c.bias = true;
    conv.op = NodeOp::Conv(c);
    conv.shape = bn.shape;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_models::{build, reference::Reference, Arch, NetConfig, Op, Scale};

    fn config() -> NetConfig {
        NetConfig {
            input_size: 32,
            classes: 10,
            ..NetConfig::default()
        }
    }

    #[test]
    fn every_batch_norm_of_a_choice_network_folds() {
        let arch: Arch = "xception:0.5,shuffle3:1.0,skip,shuffle7:0.2,shuffle5:0.1,\
            shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,xception:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,\
            shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle5:0.3,shuffle3:1.0,shuffle3:1.0,\
            shuffle3:1.0"
            .parse()
            .expect("valid arch");
        let graph = build::network(&arch, &config()).expect("graph");
        let weights = Weights::random(&graph, 5);
        let (folded, fw) = fold_batch_norms(&graph, &weights).expect("folds");
        let bns = |g: &Graph| {
            g.nodes
                .iter()
                .filter(|n| matches!(n.op, NodeOp::BatchNorm { .. }))
                .count()
        };
        assert!(bns(&graph) > 40);
        assert_eq!(bns(&folded), 0);
        assert_eq!(
            folded.nodes.len() + bns(&graph),
            graph.nodes.len(),
            "one node fewer per batch norm"
        );
        assert_eq!(folded.output_shape(), graph.output_shape());
        assert_eq!(fw.len(), folded.params().len());
        // Head and classifier are untouched.
        assert_eq!(fw.get("head.fc.weight"), weights.get("head.fc.weight"));
    }

    #[test]
    fn folded_networks_compute_the_same_function() {
        let arch: Arch = "shuffle7:0.4,xception:1.0,skip,shuffle5:0.6,xception:0.3,shuffle3:1.0,skip,\
            shuffle3:0.1,shuffle5:1.0,shuffle3:1.0,shuffle7:0.8,shuffle3:1.0,xception:1.0,shuffle3:1.0,\
            skip,shuffle3:1.0,shuffle3:0.5,shuffle3:1.0,skip,xception:0.2"
            .parse()
            .expect("valid arch");
        let graph = build::network(&arch, &config()).expect("graph");
        let weights = Weights::random(&graph, 9);
        let (folded, fw) = fold_batch_norms(&graph, &weights).expect("folds");
        let options = crate::OnnxOptions::default();
        let plain = crate::onnx::to_bytes(&graph, &weights, &options).expect("export");
        let fused = crate::onnx::to_bytes(&folded, &fw, &options).expect("export");
        let x = hsconas_foundation::golden::golden_input(32);
        let a = crate::tract_logits(&plain, &x, 32).expect("runs");
        let b = crate::tract_logits(&fused, &x, 32).expect("runs");
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(
            scale > 1e-3 && worst / scale <= 1e-4,
            "relative error {}",
            worst / scale
        );
    }

    #[test]
    fn the_arithmetic_of_one_pair() {
        let graph = Reference::MobilenetV2
            .build(32, 10, true)
            .expect("reference graph");
        let weights = Weights::random(&graph, 2);
        let (_, fw) = fold_batch_norms(&graph, &weights).expect("folds");
        // MobileNetV2's first convolution `features.0.0` is followed by batch norm `features.0.1`.
        let w = weights.get("features.0.0.weight").expect("kernel");
        let get = |s: &str| &weights.get(&format!("features.0.1.{s}")).expect(s).data;
        let (gamma, beta, mean, var) = (
            get("weight"),
            get("bias"),
            get("running_mean"),
            get("running_var"),
        );
        let folded_w = &fw.get("features.0.0.weight").expect("folded kernel").data;
        let folded_b = &fw.get("features.0.0.bias").expect("folded bias").data;
        let per = w.data.len() / gamma.len();
        for o in [0, gamma.len() - 1] {
            let s = gamma[o] / (var[o] + 1e-5).sqrt();
            assert!((folded_w[o * per] - w.data[o * per] * s).abs() < 1e-5);
            assert!((folded_b[o] - (beta[o] - mean[o] * s)).abs() < 1e-5);
        }
    }

    #[test]
    fn missing_batch_norm_tensors_are_named() {
        let arch = Arch::uniform(Op::Shuffle3, Scale::FULL).expect("valid");
        let graph = build::network(&arch, &config()).expect("graph");
        let mut weights = Weights::random(&graph, 1);
        weights.remove("layers.4.main.1.running_var");
        let err = fold_batch_norms(&graph, &weights).expect_err("incomplete");
        assert!(
            err.to_string().contains("layers.4.main.1.running_var"),
            "{err}"
        );
    }
}
