//! Every kind of exported model passes `onnx.checker` (full check), runs in tract and in ONNX Runtime, and
//! both agree: random architectures of both layouts at 224 and 32, every reference network, and the
//! profiling pieces (stem, head, choice blocks, skip) at a profiling batch.

use std::path::Path;

use hsconas_export::{onnx, BatchDim, GraphWeights, OnnxOptions, Weights};
use hsconas_models::build::{self, Piece};
use hsconas_models::graph::Graph;
use hsconas_models::reference::Reference;
use hsconas_models::{Choice, Layout, NetConfig, SearchSpace};
use hsconas_tests::{random_input, relative_error, run_oracle, run_tract, OracleCase};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Both engines compute in f32 with different summation orders and kernels; over ~60 layers the
/// difference stays around 1e-6 relative to the output's scale. 1e-4 is the bound.
const TOLERANCE: f32 = 1e-4;

struct Case {
    label: String,
    graph: Graph,
    batch: BatchDim,
    run_batch: usize,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let space = SearchSpace::full();
    for layout in [Layout::A, Layout::B] {
        for (input_size, classes) in [(224, 1000), (32, 10)] {
            let config = NetConfig {
                layout,
                input_size,
                classes,
            };
            let arch = space.sample(&mut rng);
            let graph = build::network(&arch, &config).expect("builds");
            cases.push(Case {
                label: format!("{layout}/{input_size}: {arch}"),
                graph,
                batch: BatchDim::Fixed(1),
                run_batch: 1,
            });
        }
    }
    // A symbolic batch, run with batch 3.
    let config = NetConfig {
        input_size: 32,
        classes: 10,
        ..NetConfig::default()
    };
    let arch = space.sample(&mut rng);
    let graph = build::network(&arch, &config).expect("builds");
    cases.push(Case {
        label: format!("dynamic batch: {arch}"),
        graph,
        batch: BatchDim::Symbolic,
        run_batch: 3,
    });

    for net in Reference::ALL {
        let graph = net.build(224, 1000, false).expect("builds");
        cases.push(Case {
            label: net.name().into(),
            graph,
            batch: BatchDim::Fixed(1),
            run_batch: 1,
        });
    }
    let graph = Reference::ShufflenetV2X1_0
        .build(32, 10, true)
        .expect("builds");
    cases.push(Case {
        label: "shufflenet_v2_x1_0 small stem".into(),
        graph,
        batch: BatchDim::Fixed(1),
        run_batch: 1,
    });

    let choice = |text: &str| -> Choice { text.parse().expect("valid choice") };
    let pieces = [
        Piece::Stem,
        Piece::Head,
        Piece::block(0, choice("shuffle7:0.3")),
        Piece::block(4, choice("xception:1.0")),
        Piece::block(1, choice("shuffle3:0.1")),
        Piece::block(13, choice("xception:0.6")),
        Piece::block(19, choice("shuffle5:0.9")),
        Piece::block(2, Choice::SKIP),
    ];
    for input_size in [224, 32] {
        let config = NetConfig {
            input_size,
            classes: 10,
            ..NetConfig::default()
        };
        for piece in pieces {
            let graph = build::piece(piece, &config).expect("builds");
            cases.push(Case {
                label: format!("piece {} at {input_size}", piece.key()),
                graph,
                batch: BatchDim::Fixed(2),
                run_batch: 2,
            });
        }
    }
    cases
}

#[test]
fn exported_models_pass_the_checker_and_agree_in_tract_and_onnxruntime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = cases();
    let mut oracle_cases = Vec::new();
    let mut tract_outputs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let path = dir.path().join(format!("model{i}.onnx"));
        let weights = Weights::random(&case.graph, i as u64);
        let options = OnnxOptions {
            batch: case.batch,
            ..OnnxOptions::default()
        };
        onnx::write(&path, &case.graph, &weights, &options).expect("exports");
        let s = case.graph.input;
        let shape = vec![case.run_batch, s.c, s.h, s.w];
        let input = random_input(shape.iter().product(), 100 + i as u64);
        let out = run_tract(&path, &shape, &input)
            .unwrap_or_else(|e| panic!("{}: tract failed: {e:?}", case.label));
        tract_outputs.push(out);
        oracle_cases.push(OracleCase {
            model: path,
            shape,
            input,
        });
    }
    let oracle = run_oracle(dir.path(), &oracle_cases);
    for ((case, (t_shape, t_out)), (o_shape, o_out)) in
        cases.iter().zip(&tract_outputs).zip(&oracle)
    {
        assert_eq!(t_shape, o_shape, "{}: output shapes differ", case.label);
        let o = case.graph.output_shape();
        let per_sample = if o.h == 1 && o.w == 1 && t_shape.len() == 2 {
            o.c
        } else {
            o.numel()
        };
        assert_eq!(
            t_shape.iter().product::<usize>(),
            case.run_batch * per_sample,
            "{}",
            case.label
        );
        let spread = o_out.iter().map(|x| x.abs()).fold(0f32, f32::max);
        assert!(
            spread > 1e-3 && o_out.iter().all(|x| x.is_finite()),
            "{}: degenerate output",
            case.label
        );
        let err = relative_error(t_out, o_out);
        assert!(
            err < TOLERANCE,
            "{}: tract and ONNX Runtime differ by {err:e} (relative)",
            case.label
        );
    }
}

/// The stride-1 split is plain Slice/Concat: no Reshape or Transpose that could fold the batch.
#[test]
fn stride1_split_exports_as_slices_without_reshape() {
    let config = NetConfig::default();
    let piece = Piece::block(5, "shuffle5:0.5".parse().expect("valid"));
    let graph = build::piece(piece, &config).expect("builds");
    let model = onnx::to_model(&graph, &Weights::random(&graph, 0), &OnnxOptions::default())
        .expect("exports");
    let ops: Vec<&str> = model
        .graph
        .as_ref()
        .expect("graph")
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert!(ops.contains(&"Slice") && ops.contains(&"Concat"), "{ops:?}");
    assert!(
        !ops.contains(&"Reshape") && !ops.contains(&"Transpose"),
        "{ops:?}"
    );
    assert_eq!(model.opset_import[0].version, 17);
}

#[test]
fn weights_from_safetensors_are_the_ones_exported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = NetConfig {
        input_size: 32,
        classes: 10,
        ..NetConfig::default()
    };
    let arch = SearchSpace::full().sample(&mut ChaCha8Rng::seed_from_u64(5));
    let graph = build::network(&arch, &config).expect("builds");
    let weights = Weights::random(&graph, 77);
    let st = dir.path().join("w.safetensors");
    weights.save_safetensors(&st).expect("saves");
    let loaded = Weights::load_safetensors(&st).expect("loads");
    let a = onnx::to_bytes(&graph, &weights, &OnnxOptions::default()).expect("exports");
    let b = onnx::to_bytes(&graph, &loaded, &OnnxOptions::default()).expect("exports");
    assert_eq!(a, b);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(Path::new(&st))
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o644,
        "written files are ordinary, readable files"
    );
}
