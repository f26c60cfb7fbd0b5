//! Pieces of one shape ([`Piece::shape`]) are twins: the same computation on the same input, so a
//! latency table may measure one and copy it (`hsconas profile --once-per-shape`). Checked on the graphs
//! themselves, node by node (operation, inputs and output shapes), for both layouts and two input
//! sizes; and pieces of different shapes are not mistaken for twins. An INT8 piece is its FP32 graph
//! with quantisation at the block's entry and exit added by the exporter (`hsconas_export::quant`), the
//! same structure for every layer (only the scales differ), so its twins are checked here through that
//! FP32 graph.

use std::collections::BTreeMap;

use hsconas_models::build::{all_pieces, mixed_pieces, piece, Piece};
use hsconas_models::{Layout, NetConfig};

/// What a piece computes, without the names of its nodes and weights.
fn computation(p: Piece, config: &NetConfig) -> String {
    let graph = piece(p, config).expect("a piece of the space");
    let nodes: Vec<String> = graph
        .nodes
        .iter()
        .map(|n| format!("{:?} {:?} {:?}", n.op, n.inputs, n.shape))
        .collect();
    format!("{:?} -> {}", graph.input, nodes.join("; "))
}

#[test]
fn twins_compute_the_same_and_other_shapes_differ() {
    for layout in [Layout::A, Layout::B] {
        for input_size in [32, 224] {
            let config = NetConfig {
                layout,
                input_size,
                classes: 10,
            };
            let mut by_shape: BTreeMap<String, String> = BTreeMap::new();
            for p in mixed_pieces() {
                let c = computation(p, &config);
                match by_shape.get(&p.shape()) {
                    Some(twin) => assert_eq!(twin, &c, "{} ({layout}, {input_size})", p.key()),
                    None => {
                        by_shape.insert(p.shape(), c);
                    }
                }
            }
            let fp32: std::collections::BTreeSet<String> =
                all_pieces().iter().map(Piece::shape).collect();
            assert_eq!(fp32.len(), 326, "{layout}");
            // Different shapes of FP32 pieces compute differently (no two shapes merged by mistake
            // would go unnoticed, and none split needlessly).
            let distinct: std::collections::BTreeSet<&String> = by_shape
                .iter()
                .filter(|(shape, _)| fp32.contains(*shape))
                .map(|(_, c)| c)
                .collect();
            assert_eq!(distinct.len(), fp32.len(), "{layout}, {input_size}");
        }
    }
}
