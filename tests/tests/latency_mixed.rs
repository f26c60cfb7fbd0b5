//! A mixed-precision latency table end to end through the `hsconas` binary, on this machine's real ONNX
//! Runtime at CIFAR size (input 32) with a short protocol: `profile --precision mixed` (every block in FP32
//! and INT8, the weight range chosen for this CPU and recorded), `latency precision` (each block's
//! speed-up from the entries), prediction of an architecture with `@int8` layers against the hand sum,
//! calibration on networks with INT8 layers, and the refusals (an FP32 table asked about INT8 layers, a
//! mixed table resumed as FP32, a transfer of a mixed table, a bad weight range), and `--once-per-shape` on
//! a mixed table.

use std::collections::BTreeMap;

use hsconas_tests::table_json::{arch_string, entries, normalised_p10, read_json};
use hsconas_tests::{fails_with, ok, profile_args, run_bin, FAST_PROTOCOL as FAST};
use serde_json::Value;

/// The table sum of `arch` (string form, `@int8` marks) from the normalised entries.
fn hand_sum(table: &Value, entries: &BTreeMap<String, Value>, arch: &str) -> f64 {
    let mut sum = normalised_p10(table, &entries["stem"]) + normalised_p10(table, &entries["head"]);
    for (l, choice) in arch.split(',').enumerate() {
        sum += normalised_p10(table, &entries[&format!("L{}:{choice}", l + 1)]);
    }
    sum
}

#[test]
fn a_mixed_table_is_profiled_predicts_int8_layers_and_calibrates_on_mixed_networks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mixed.json");
    let p = path.to_str().expect("utf-8");
    let mut args = profile_args(p, &FAST);
    args.extend(["--precision", "mixed", "--drift-model", "ratio-1", "--json"]);
    let summary: Value = serde_json::from_str(&ok(run_bin("hsconas", &args)).stdout).expect("JSON");
    assert_eq!(
        summary["entries"],
        818 + 800,
        "every block with weights in INT8 too"
    );
    let table = read_json(&path);
    assert_eq!(table["format"], 2);
    let int8 = &table["provenance"]["int8"];
    let expected_range = if hsconas_runtime::fingerprint::x86_without_vnni() {
        "reduced"
    } else {
        "full"
    };
    assert_eq!(
        (int8["flavour"].as_str(), int8["weight_range"].as_str()),
        (Some("cpu"), Some(expected_range)),
        "{int8}"
    );
    let entries = entries(&table);
    assert!(entries.contains_key("L5:xception:1.0@int8") && !entries.contains_key("L2:skip@int8"));
    // Each INT8 piece is measured in the group of its FP32 twin, side by side.
    for (key, e) in &entries {
        if let Some(fp32) = key.strip_suffix("@int8") {
            assert_eq!(e["group"], entries[fp32]["group"], "{key}");
        }
    }

    // The speed-ups are the normalised entries' ratios.
    let gains: Value = serde_json::from_str(
        &ok(run_bin(
            "hsconas",
            &["latency", "precision", "--table", p, "--json"],
        ))
        .stdout,
    )
    .expect("JSON");
    let blocks = gains["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 800);
    for b in blocks.iter().step_by(37) {
        let key = format!("L{}:{}", b["layer"], b["choice"].as_str().expect("choice"));
        let ratio = normalised_p10(&table, &entries[&key])
            / normalised_p10(&table, &entries[&format!("{key}@int8")]);
        assert!(
            (b["speedup"].as_f64().expect("speed-up") - ratio).abs() < 1e-9,
            "{key}"
        );
    }
    assert_eq!(gains["by_layer"].as_array().map(Vec::len), Some(20));
    let text = ok(run_bin("hsconas", &["latency", "precision", "--table", p])).stdout;
    assert!(
        text.contains("per operator") && text.contains("shuffle7"),
        "{text}"
    );

    // An architecture with INT8 layers: the hand sum of its entries, each layer in its precision.
    let arch = "shuffle3:0.5@int8,shuffle5:1.0,skip,xception:0.3,shuffle7:0.8@int8,skip,shuffle3:0.1,\
                shuffle5:0.6,xception:1.0,shuffle3:0.9,skip,shuffle7:0.2,shuffle3:0.4,shuffle5:0.5@int8,\
                skip,xception:0.7,shuffle7:1.0@int8,shuffle3:0.3,skip,shuffle5:0.2@int8";
    let pred: Value = serde_json::from_str(
        &ok(run_bin(
            "hsconas",
            &["latency", "predict", "--table", p, "--arch", arch, "--json"],
        ))
        .stdout,
    )
    .expect("JSON");
    let sum = hand_sum(&table, &entries, arch);
    assert!((pred["table_sum_ms"].as_f64().expect("sum") - sum).abs() < 1e-9);
    assert_eq!(pred["layers"][0]["precision"], "int8");
    assert_eq!(pred["layers"][1]["precision"], "fp32");
    let fp32_arch = arch.replace("@int8", "");
    assert!((hand_sum(&table, &entries, &fp32_arch) - sum).abs() > 1e-9);

    fails_with(
        run_bin("hsconas", &["calibrate", "--table", p, "--refit"]),
        "has no calibration to refit",
    );
    // Calibration draws networks with INT8 layers and sums their entries in their precisions.
    ok(run_bin(
        "hsconas",
        &["calibrate", "--table", p, "--samples", "6", "--seed", "5"],
    ));
    let calibrated = read_json(&path);
    let samples = calibrated["calibration"]["samples"]
        .as_array()
        .expect("samples");
    let mut marked = 0;
    for s in samples {
        let arch = arch_string(&s["arch"]);
        marked += arch.matches("@int8").count();
        let sum = hand_sum(&calibrated, &entries, &arch);
        assert!(
            (s["table_sum_ms"].as_f64().expect("sum") - sum).abs() < 1e-9,
            "{arch}"
        );
    }
    assert!(
        marked >= 6 * 4,
        "about half of the layers with weights: {marked}"
    );

    // Validation measures mixed networks too, and its report carries the speed-ups per group.
    let report_path = dir.path().join("report.json");
    let out = ok(run_bin(
        "hsconas",
        &[
            "latency",
            "validate",
            "--table",
            p,
            "--samples",
            "4",
            "--out",
            report_path.to_str().expect("utf-8"),
        ],
    ));
    assert!(
        out.stdout.contains("INT8 speed-up of the table's blocks"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("note: the table's calibration uses"),
        "under the table's own drift model the correction chosen again is the calibration's: {}",
        out.stdout
    );
    let report = read_json(&report_path);
    assert_eq!(report["int8"]["by_op"].as_array().map(Vec::len), Some(4));
    assert_eq!(report["int8"]["all"], gains["all"]);
    assert!(report["int8"].get("blocks").is_none(), "the groups only");
    let validated = report["networks"].as_array().expect("networks");
    assert!(validated
        .iter()
        .any(|n| arch_string(&n["arch"]).contains("@int8")));

    // The INT8 terms of the calibration predict the held-out networks as their formula says.
    let calibration = &calibrated["calibration"];
    let int8_fit = &calibration["int8_count"];
    assert!(
        int8_fit.is_object(),
        "an INT8 term fitted on 6 mixed networks"
    );
    let row = report["predictors"]
        .as_array()
        .expect("predictors")
        .iter()
        .find(|r| r["name"] == "table + INT8")
        .expect("the INT8 term's row");
    assert_eq!(row["accuracy"]["n"], 4);
    let per_layer = int8_fit["int8_ms_per_stage"][0].as_f64().expect("term");
    let offset = int8_fit["offset_ms"].as_f64().expect("offset");
    let squared: f64 = validated
        .iter()
        .map(|n| {
            let int8 = arch_string(&n["arch"]).matches("@int8").count() as f64;
            let predicted = n["table_sum_ms"].as_f64().expect("sum") + offset + per_layer * int8;
            (predicted - n["measured_ms"].as_f64().expect("measured")).powi(2)
        })
        .sum();
    let rmse = (squared / validated.len() as f64).sqrt();
    let reported = row["accuracy"]["rmse_ms"].as_f64().expect("rmse");
    assert!((rmse - reported).abs() < 1e-9, "{rmse} vs {reported}");

    // --refit chooses the correction again from the stored networks, measuring nothing: the same
    // networks give the same choice and fits; the validation summary is dropped.
    assert!(
        read_json(&path)["validation"].is_object(),
        "validate stored a summary"
    );
    let out = ok(run_bin(
        "hsconas",
        &["calibrate", "--table", p, "--refit", "--json"],
    ));
    let refit: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(refit["correction"], calibration["correction"]);
    assert_eq!(refit["int8_count"], calibration["int8_count"]);
    assert_eq!(refit["samples"], calibration["samples"]);
    let after = read_json(&path);
    assert!(
        after["validation"].is_null(),
        "a stale validation is dropped"
    );
    assert_eq!(after["calibration"]["samples"], calibration["samples"]);
    // A table calibrated before the INT8 corrections existed: --refit fits them and chooses again.
    let mut old = read_json(&path);
    let c = old["calibration"].as_object_mut().expect("calibration");
    for key in ["int8_count", "int8_stages", "held_out_rmse"] {
        c.remove(key);
    }
    // Its choice is one this hsconas would not make (B unless that is what it chooses).
    let row_of = |kind: &str| match kind {
        "none" => "table",
        "bias" => "table + B",
        "linear" => "table, linear",
        "int8-count" => "table + INT8",
        "int8-stages" => "table + INT8/stage",
        other => panic!("a correction kind: {other}"),
    };
    let chosen = calibration["correction"].as_str().expect("kind");
    let stale = if chosen == "bias" { "none" } else { "bias" };
    c.insert("correction".into(), Value::from(stale));
    std::fs::write(&path, serde_json::to_vec(&old).expect("JSON")).expect("write");
    // Validation says that its networks, calibrated again, would choose otherwise.
    let out = ok(run_bin(
        "hsconas",
        &["latency", "validate", "--table", p, "--samples", "2"],
    ));
    let note = format!(
        "note: the table's calibration uses `{}`, but calibrating its networks again would choose `{}`",
        row_of(stale),
        row_of(chosen)
    );
    assert!(out.stdout.contains(&note), "{note}\n{}", out.stdout);
    let out = ok(run_bin(
        "hsconas",
        &["calibrate", "--table", p, "--refit", "--json"],
    ));
    let refit: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(refit["int8_count"], calibration["int8_count"]);
    assert_eq!(refit["correction"], calibration["correction"]);
    assert!(
        refit["held_out_rmse"]["int8_count_ms"].is_number(),
        "{refit}"
    );

    // A refit measures nothing, so the measuring flags are a usage error (clap's exit code 2).
    let both = run_bin(
        "hsconas",
        &["calibrate", "--table", p, "--refit", "--samples", "3"],
    );
    assert_eq!(both.code, Some(2), "{both:?}");
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );

    // Resuming the mixed table as an FP32 one, or transferring it, is refused.
    fails_with(
        run_bin("hsconas", &profile_args(p, &FAST)),
        "precision: table has INT8 pieces too",
    );
    let other = dir.path().join("other.json");
    fails_with(
        run_bin(
            "hsconas",
            &profile_args(
                other.to_str().expect("utf-8"),
                &["--transfer-from", p, "--samples", "3"],
            ),
        ),
        "mixed-precision table",
    );
    fails_with(
        run_bin(
            "hsconas",
            &profile_args(
                other.to_str().expect("utf-8"),
                &["--precision", "mixed", "--int8-weight-range", "8bit"],
            ),
        ),
        "--int8-weight-range: unknown weight range '8bit'",
    );
}

/// `--once-per-shape` on a mixed table: one piece per shape in each precision (646 of 1618 pieces, the
/// precision part of the shape), twins hold equal entries, and each INT8 shape is measured in the group
/// of its FP32 twin.
#[test]
fn a_mixed_table_once_per_shape_measures_each_shape_in_each_precision_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mixed-shapes.json");
    let p = path.to_str().expect("utf-8");
    let mut args = profile_args(p, &FAST);
    args.extend(["--precision", "mixed", "--once-per-shape", "--json"]);
    let summary: Value = serde_json::from_str(&ok(run_bin("hsconas", &args)).stdout).expect("JSON");
    assert_eq!(
        (&summary["entries"], &summary["measured"]),
        (&Value::from(1618), &Value::from(646)),
        "{summary}"
    );
    let table = read_json(&path);
    assert_eq!(table["provenance"]["once_per_shape"], true);
    let entries = entries(&table);
    let mut by_shape: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for (key, entry) in &entries {
        let piece: hsconas_models::build::Piece = key.parse().expect("a piece key");
        by_shape.entry(piece.shape()).or_default().push(entry);
    }
    assert_eq!(by_shape.len(), 646);
    let int8_shapes = by_shape.keys().filter(|s| s.ends_with("@int8")).count();
    assert_eq!(int8_shapes, 646 - 326);
    for (shape, twins) in &by_shape {
        assert!(twins.iter().all(|e| *e == twins[0]), "{shape}: {twins:?}");
        if let Some(fp32) = shape.strip_suffix("@int8") {
            assert_eq!(twins[0]["group"], by_shape[fp32][0]["group"], "{shape}");
        }
    }
}
