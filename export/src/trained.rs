//! The ONNX model of a trained network: its graph from `model.json`, its weights, batch norms folded
//! (unless asked to keep them), and the metadata in `metadata_props`.

use crate::GraphWeights;
use hsconas_models::graph::Graph;

use crate::{fold_batch_norms, onnx, BatchDim, ExportError, ModelInfo, OnnxOptions, Weights};

/// How a trained network is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainedExport {
    /// Batch dimension.
    pub batch: BatchDim,
    /// Keep batch norms as separate operators instead of folding them into the convolutions.
    pub keep_bn: bool,
    /// ONNX opset.
    pub opset: i64,
}

impl Default for TrainedExport {
    /// Symbolic batch, batch norms folded, opset 17.
    fn default() -> Self {
        TrainedExport {
            batch: BatchDim::Symbolic,
            keep_bn: false,
            opset: 17,
        }
    }
}

/// The network's layer graph as described by `info`.
pub fn trained_graph(info: &ModelInfo) -> Result<Graph, ExportError> {
    let bad = |reason: String| ExportError::BadModelInfo {
        path: "model.json".into(),
        reason,
    };
    info.graph().map_err(bad)
}

/// Serialised ONNX of a trained network. A weights file that does not match the architecture is an
/// error naming the first missing or misshapen tensor.
pub fn trained_onnx(
    info: &ModelInfo,
    weights: &Weights,
    how: TrainedExport,
) -> Result<Vec<u8>, ExportError> {
    let graph = trained_graph(info)?;
    weights.check(&graph)?;
    let options = OnnxOptions {
        batch: how.batch,
        opset: how.opset,
        metadata: info.onnx_metadata(),
    };
    if how.keep_bn {
        onnx::to_bytes(&graph, weights, &options)
    } else {
        let (folded, folded_weights) = fold_batch_norms(&graph, weights)?;
        onnx::to_bytes(&folded, &folded_weights, &options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Accuracy, Normalisation};
    use prost::Message;
    use tract_onnx::pb::ModelProto;

    fn info() -> ModelInfo {
        ModelInfo {
            architecture: "shuffle5:0.5,shuffle3:1.0,skip,xception:0.3,shuffle7:1.0,shuffle3:1.0,\
                shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,\
                shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0,shuffle3:1.0"
                .into(),
            layout: "24,32,48,64".into(),
            reference: None,
            input_size: 32,
            classes: vec!["cat".into(), "dog".into(), "ship".into()],
            normalisation: Normalisation {
                mean: vec![0.5, 0.4, 0.3],
                std: vec![0.2, 0.2, 0.2],
            },
            epochs: Some(1),
            val: None,
            test: Some(Accuracy {
                top1: 50.0,
                top5: None,
                images: 30,
            }),
        }
    }

    #[test]
    fn metadata_and_folding_in_the_model() {
        let info = info();
        let graph = trained_graph(&info).expect("graph");
        let weights = Weights::random(&graph, 4);
        let count_bn = |bytes: &[u8]| {
            let model = ModelProto::decode(bytes).expect("protobuf");
            let meta: std::collections::HashMap<String, String> = model
                .metadata_props
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect();
            assert_eq!(meta["architecture"], info.architecture);
            assert_eq!(meta["classes"], r#"["cat","dog","ship"]"#);
            assert_eq!(meta["mean"], "[0.5,0.4,0.3]");
            assert_eq!(meta["test_top1"], "50.00");
            assert!(meta["producer"].starts_with("hsconas "));
            let graph = model.graph.expect("graph");
            graph
                .node
                .iter()
                .filter(|n| n.op_type == "BatchNormalization")
                .count()
        };
        let folded = trained_onnx(&info, &weights, TrainedExport::default()).expect("export");
        assert_eq!(count_bn(&folded), 0);
        let kept = TrainedExport {
            keep_bn: true,
            ..TrainedExport::default()
        };
        assert!(count_bn(&trained_onnx(&info, &weights, kept).expect("export")) > 30);
        let x = hsconas_foundation::golden::golden_input(32);
        let a = crate::tract_logits(&folded, &x, 32).expect("runs");
        assert_eq!(a.len(), 3);
    }
}
