//! What a runtime made of a QDQ model: the operators of its optimised graph (ONNX Runtime writes it
//! with `optimized_model_filepath`), and the convolutions it left in floating point behind a
//! `DequantizeLinear` (a fusion that did not happen).

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use tract_onnx::pb::ModelProto;

use crate::ExportError;

/// Floating-point operators that a fused INT8 graph should not feed from a `DequantizeLinear`.
const FLOAT_COMPUTE: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "FusedConv",
    "FusedGemm",
    "NchwcConv",
];

/// The operators of an optimised model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelReport {
    /// Nodes per operator type (`domain:op` for operators outside the default ONNX domain).
    pub operators: BTreeMap<String, usize>,
    /// Floating-point convolutions and matrix products whose weight (input 1) is a `DequantizeLinear`
    /// output, by node name (or `#index` for unnamed nodes): each one a quantised layer whose fusion into
    /// an integer kernel did not happen. (An FP32 layer reading a dequantised activation is not one.)
    pub unfused: Vec<String>,
}

impl KernelReport {
    /// Nodes of one operator type, in any domain.
    pub fn count(&self, op_type: &str) -> usize {
        self.operators
            .iter()
            .filter(|(k, _)| k.rsplit(':').next() == Some(op_type))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Reads the operators of the serialised (optimised) model `onnx`.
pub fn kernel_report(onnx: &[u8]) -> Result<KernelReport, ExportError> {
    let model = ModelProto::decode(onnx)
        .map_err(|e| ExportError::Quantize(format!("the optimised model does not decode: {e}")))?;
    let graph = model.graph.unwrap_or_default();
    let mut report = KernelReport::default();
    let mut producer_op: HashMap<&str, &str> = HashMap::new();
    for node in &graph.node {
        for out in &node.output {
            producer_op.insert(out, &node.op_type);
        }
    }
    for (i, node) in graph.node.iter().enumerate() {
        let key = if node.domain.is_empty() || node.domain == "ai.onnx" {
            node.op_type.clone()
        } else {
            format!("{}:{}", node.domain, node.op_type)
        };
        *report.operators.entry(key).or_default() += 1;
        let reads_dq = node
            .input
            .get(1)
            .is_some_and(|t| producer_op.get(t.as_str()) == Some(&"DequantizeLinear"));
        if FLOAT_COMPUTE.contains(&node.op_type.as_str()) && reads_dq {
            report.unfused.push(if node.name.is_empty() {
                format!("#{i}")
            } else {
                node.name.clone()
            });
        }
    }
    Ok(report)
}
