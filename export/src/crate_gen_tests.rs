//! Tests of the crate generator: names, placeholders, golden-logit checks and the generated files
//! as snapshots.

use super::*;

#[test]
fn crate_names() {
    for ok in ["cifar_net", "my-model", "Net2"] {
        validate_crate_name(ok).expect(ok);
    }
    for bad in [
        "", "2net", "my model", "é", "fn", "test", "self", "std", "a/b",
    ] {
        let err = validate_crate_name(bad).expect_err(bad).to_string();
        assert!(err.contains("crate name"), "{err}");
    }
}

fn two_class_info() -> ModelInfo {
    ModelInfo {
        architecture: ["shuffle3:1.0"; 20].join(","),
        layout: "A".into(),
        reference: None,
        input_size: 32,
        classes: vec!["cat".into(), "dog".into()],
        normalisation: crate::Normalisation {
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
        },
        epochs: None,
        val: None,
        test: None,
    }
}

#[test]
fn every_template_placeholder_has_a_value() {
    let info = two_class_info();
    for (embed, int8) in [(true, false), (false, false), (true, true)] {
        let options = CrateOptions {
            name: "net".into(),
            embed,
            keep_bn: false,
            overwrite: false,
        };
        let values = placeholders(&info, &options, &[1.0, -2.5], int8);
        for template in [
            CARGO_TOML,
            LIB_RS,
            GOLDEN_RS,
            CLASSIFY_RS,
            BENCH_RS,
            README_MD,
        ] {
            let text = fill(template, &values);
            assert_eq!(unfilled(&text), None);
        }
        // The generated test and benchmark use the workspace's own definitions, verbatim.
        let golden = fill(GOLDEN_RS, &values);
        assert!(golden.contains(snippets::GOLDEN_INPUT));
        assert!(golden.contains(snippets::RELATIVE_ERROR));
        assert!(fill(BENCH_RS, &values).contains(snippets::PERCENTILE));
    }
    assert_eq!(unfilled("a {{\"json\": 1}} {{KEY}}"), Some("KEY"));
}

/// The generated files as they are now: a change to a template shows up as a snapshot diff to review
/// (`cargo insta review`, or `INSTA_UPDATE=always cargo test` and read the diff in git).
#[test]
fn generated_files_match_their_snapshots() {
    let options = CrateOptions {
        name: "snapshot-net".into(),
        embed: true,
        keep_bn: false,
        overwrite: false,
    };
    // Logits that no literal spells directly: NaN, the infinities, -0.0 and a subnormal.
    let golden = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 1e-40, 0.1];
    let mut info = two_class_info();
    info.classes = (0..golden.len()).map(|i| format!("class {i}")).collect();
    let model = CrateModel {
        onnx: Vec::new(),
        golden: golden.to_vec(),
        int8: false,
    };
    for (path, text) in render(&info, &options, &model) {
        insta::assert_snapshot!(path.replace(['/', '.'], "_"), text);
    }
    // An INT8 model: ONNX Runtime by default and as the golden backend, its precision stated (the
    // examples are the same as above).
    let int8 = CrateModel {
        int8: true,
        ..model
    };
    for (path, text) in render(&info, &options, &int8) {
        if ["Cargo.toml", "src/lib.rs", "tests/golden.rs", "README.md"].contains(&path) {
            let name = format!("int8_{}", path.replace(['/', '.'], "_"));
            insta::assert_snapshot!(name, text);
        }
    }
}

#[test]
fn golden_logits_must_match_the_classes() {
    let info = two_class_info();
    let options = CrateOptions {
        name: "net".into(),
        embed: true,
        keep_bn: false,
        overwrite: false,
    };
    let model = CrateModel {
        onnx: vec![1, 2, 3],
        golden: vec![0.5],
        int8: true,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("net");
    let err = write_crate(&info, &model, &options, &out).expect_err("1 logit for 2 classes");
    assert!(
        err.to_string().contains("1 golden logits for 2 classes"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn float_literals_read_back_to_the_same_value() {
    for x in [0.1f32, -0.0, 1e-40, f32::MAX, f32::MIN_POSITIVE, 3.0e-7] {
        let text = f32_literal(x);
        let back: f32 = text.parse().expect(&text);
        assert_eq!(back.to_bits(), x.to_bits(), "{text}");
    }
    assert_eq!(f32_literal(f32::NAN), "f32::NAN");
    assert_eq!(f32_literal(f32::NEG_INFINITY), "f32::NEG_INFINITY");
}
