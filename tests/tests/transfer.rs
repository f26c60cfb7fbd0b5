//! `hsconas profile --transfer-from` end to end on this machine's real ONNX Runtime: the committed table
//! of another input size (224) transferred to input 32 from a few networks measured here with a short
//! protocol, then predicted with its uncertainty, calibrated and validated like a profiled table; and
//! the refusals (a source of another layout or space, a table already at --out, too few networks).

use std::path::Path;

use hsconas_devices::transfer::TransferLevel;
use hsconas_devices::LatencyTable;
use hsconas_models::build::all_pieces;
use hsconas_tests::table_json::read_json;
use hsconas_tests::{
    fails_with, ok, profile_args, repo_root, run_bin, Outcome, FAST_PROTOCOL as FAST,
};
use serde_json::Value;

fn source() -> std::path::PathBuf {
    repo_root().join("devices/tables/local-cpu-A-224.json")
}

/// `hsconas profile` at input 32 from `source` with the short protocol and `extra` flags.
fn transfer(source: &Path, out: &Path, extra: &[&str]) -> Outcome {
    let mut args = profile_args(
        out.to_str().expect("utf-8"),
        &["--transfer-from", source.to_str().expect("utf-8")],
    );
    args.extend(FAST);
    args.extend(extra);
    run_bin("hsconas", &args)
}

#[test]
fn a_transferred_table_predicts_calibrates_and_validates_like_a_profiled_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("t32.json");
    let o = out.to_str().expect("utf-8");
    let summary: Value =
        serde_json::from_str(&ok(transfer(&source(), &out, &["--samples", "8", "--json"])).stdout)
            .expect("JSON");
    assert_eq!(summary["entries"], 818, "{summary}");
    let record = &summary["transfer"];
    assert_eq!(record["networks"], 8);
    assert_eq!(record["source_input_size"], 224);
    assert_eq!(record["foreign_source"], true, "another input size");
    assert!(
        record["source_differences"]
            .as_array()
            .expect("differences")
            .iter()
            .any(|d| d.as_str().is_some_and(|d| d.starts_with("input_size"))),
        "{record}"
    );
    assert!(summary["candidates"]
        .as_array()
        .is_some_and(|c| c.len() > 4));
    assert!(
        !dir.path().join("t32.json.transfer-1.partial.json").exists(),
        "the checkpoint is removed once the table is saved"
    );

    // The file: a table of this device with its own reference state, each entry the source's
    // (normalised for the source's drift) times its group's factor, and the record as printed.
    let table = LatencyTable::load(&out).expect("a valid table");
    let source_table = LatencyTable::load(&source()).expect("the committed table");
    let p = &table.provenance;
    assert_eq!(
        (p.input_size, p.classes, p.device.as_str()),
        (32, 10, "local-cpu")
    );
    assert!(p.backend_version.starts_with("onnxruntime"), "{p:?}");
    let transferred = p.transfer.as_ref().expect("the transfer record");
    assert_eq!(
        serde_json::to_value(transferred).expect("JSON"),
        *record,
        "the file and the summary agree"
    );
    let reference = table.reference.as_ref().expect("a reference network");
    assert_eq!(reference.trace.points.len(), 1, "8 networks in one group");
    let level: TransferLevel = serde_json::from_value(record["level"].clone()).expect("a level");
    for piece in all_pieces() {
        let factor = summary["factors"][level.group_of(&piece)]
            .as_f64()
            .expect("every piece's group has a factor");
        let want = source_table.entry_ms(&piece).expect("source") * factor;
        let got = table.entry_ms(&piece).expect("transferred");
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "{}: {got} vs {want}",
            piece.key()
        );
        assert_eq!(table.entries[&piece.key()].group, None);
    }

    // Predictions carry the transfer's held-out error.
    let arch = vec!["shuffle3:0.5"; 20].join(",");
    let predicted: Value = serde_json::from_str(
        &ok(run_bin(
            "hsconas",
            &[
                "latency", "predict", "--table", o, "--arch", &arch, "--json",
            ],
        ))
        .stdout,
    )
    .expect("JSON");
    assert_eq!(predicted["transferred"], true);
    let ms = predicted["predicted_ms"].as_f64().expect("predicted");
    let held_out = record["held_out_rmspe"].as_f64().expect("held-out error");
    assert!(
        (predicted["uncertainty_ms"].as_f64().expect("uncertainty") - ms * held_out / 100.0).abs()
            < 1e-12
    );
    let text = ok(run_bin(
        "hsconas",
        &["latency", "predict", "--table", o, "--arch", &arch],
    ))
    .stdout;
    assert!(
        text.contains("uncertainty") && text.contains("8 networks"),
        "{text}"
    );

    // Calibration and validation work on it unchanged; the transfer put the table sums near what this
    // machine measures (the source's own sums, at input 224, are many times larger).
    ok(run_bin(
        "hsconas",
        &["calibrate", "--table", o, "--samples", "6", "--seed", "5"],
    ));
    let calibrated = read_json(&out);
    let samples = calibrated["calibration"]["samples"]
        .as_array()
        .expect("samples");
    let mean = |field: &str| {
        samples
            .iter()
            .map(|s| s[field].as_f64().expect("a number"))
            .sum::<f64>()
            / samples.len() as f64
    };
    let ratio = mean("table_sum_ms") / mean("measured_ms");
    assert!(
        (0.5..2.0).contains(&ratio),
        "table sum / measured = {ratio}"
    );
    assert!(calibrated["provenance"]["transfer"].is_object(), "kept");
    ok(run_bin(
        "hsconas",
        &[
            "latency",
            "validate",
            "--table",
            o,
            "--samples",
            "4",
            "--json",
        ],
    ));

    // A second transfer does not overwrite the table.
    let before = std::fs::read(&out).expect("the table");
    fails_with(
        transfer(&source(), &out, &["--samples", "4"]),
        "holds a table already",
    );
    assert_eq!(std::fs::read(&out).expect("the table"), before);
}

/// With a tolerance no fit can meet, the transfer measures more networks round by round up to the
/// maximum and says the tolerance was not met, each round after the first checked by the fit before
/// it (its error on networks it had not seen, kept per round and in the table's record); with
/// one every fit meets, it stops after the first check round.
#[test]
fn a_tolerance_measures_more_networks_until_it_is_met_or_the_maximum() {
    let dir = tempfile::tempdir().expect("temp dir");
    let strict = dir.path().join("strict.json");
    let summary: Value = serde_json::from_str(
        &ok(transfer(
            &source(),
            &strict,
            &[
                "--samples",
                "4",
                "--tolerance",
                "0.0001",
                "--max-samples",
                "10",
                "--json",
            ],
        ))
        .stdout,
    )
    .expect("JSON");
    let rounds: Vec<u64> = summary["rounds"]
        .as_array()
        .expect("rounds")
        .iter()
        .map(|r| r["networks"].as_u64().expect("networks"))
        .collect();
    assert_eq!(rounds, [4, 8, 10], "{summary}");
    let checked: Vec<Option<f64>> = summary["rounds"]
        .as_array()
        .expect("rounds")
        .iter()
        .map(|r| r["checked_rmspe"].as_f64())
        .collect();
    assert!(checked[0].is_none(), "{summary}");
    assert!(
        checked[1..].iter().all(|c| c.is_some_and(|c| c > 0.0)),
        "{summary}"
    );
    assert_eq!(summary["transfer"]["checked_rmspe"].as_f64(), checked[2]);
    let held_out: Vec<f64> = summary["rounds"]
        .as_array()
        .expect("rounds")
        .iter()
        .map(|r| r["held_out_rmspe"].as_f64().expect("held out"))
        .collect();
    // Each check is the previous fit's error on new networks, not the new fit's own estimate.
    assert!(
        checked[1] != Some(held_out[1]) && checked[2] != Some(held_out[2]),
        "{summary}"
    );
    // `latency predict` gives the larger of the checked and the leave-one-out error as uncertainty.
    let predicted: Value = serde_json::from_str(
        &ok(run_bin(
            "hsconas",
            &[
                "latency",
                "predict",
                "--table",
                strict.to_str().expect("utf-8"),
                "--arch",
                &vec!["shuffle3:0.5"; 20].join(","),
                "--json",
            ],
        ))
        .stdout,
    )
    .expect("JSON");
    let larger = checked[2].expect("checked").max(held_out[2]);
    assert_eq!(
        predicted["uncertainty_percent"].as_f64(),
        Some(larger),
        "{predicted}"
    );
    assert_eq!(summary["tolerance_met"], false);
    assert_eq!(summary["transfer"]["networks"], 10);
    assert_eq!(summary["transfer"]["tolerance_percent"], 0.0001);
    for round in 1..=3 {
        assert!(!dir
            .path()
            .join(format!("strict.json.transfer-{round}.partial.json"))
            .exists());
    }
    let table = LatencyTable::load(&strict).expect("a table");
    assert_eq!(
        table.reference.as_ref().map(|r| r.trace.points.len()),
        Some(1),
        "the first round's reference state; later rounds are normalised to it"
    );

    let lenient = dir.path().join("lenient.json");
    let text = ok(transfer(
        &source(),
        &lenient,
        &["--samples", "4", "--tolerance", "1000"],
    ))
    .stdout;
    assert!(
        text.contains("on networks the fit had not seen")
            && text.contains("within the tolerance of 1000%"),
        "{text}"
    );
    assert!(
        text.contains("4 networks") && text.contains("8 networks"),
        "{text}"
    );
    assert!(text.contains("(unseen"), "{text}");
    assert!(!text.contains("12 networks"), "{text}");
}

/// When the networks leave the tolerance unmet, the pieces that matter most are profiled and the
/// transfer refitted: the stem and the head (in every network) among them, each profiled piece's entry
/// its measurement times its group's factor, the checkpoint gone; without the reference network too;
/// a checkpoint of another transfer's pieces is refused, not mixed in.
#[test]
fn profiled_pieces_refine_a_transfer_that_misses_its_tolerance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("pieces.json");
    let flags = [
        "--samples",
        "4",
        "--tolerance",
        "0.0001",
        "--max-samples",
        "8",
        "--profile-pieces",
        "60",
        "--json",
    ];
    let summary: Value =
        serde_json::from_str(&ok(transfer(&source(), &out, &flags)).stdout).expect("JSON");
    let rounds: Vec<(u64, u64)> = summary["rounds"]
        .as_array()
        .expect("rounds")
        .iter()
        .map(|r| {
            (
                r["networks"].as_u64().expect("n"),
                r["pieces"].as_u64().expect("p"),
            )
        })
        .collect();
    // The piece rounds refit on the first round's networks and are judged on the second's.
    assert_eq!(rounds, [(4, 0), (8, 0), (4, 48), (4, 60)], "{summary}");
    assert!(summary["rounds"].as_array().expect("rounds")[1..]
        .iter()
        .all(|r| r["checked_rmspe"].as_f64().is_some()));
    assert_eq!(
        summary["transfer"]["networks"], 8,
        "the final fit sees every network"
    );
    assert_eq!(summary["transfer"]["pieces"], 60);
    assert_eq!(summary["tolerance_met"], false);
    let profiled = summary["profiled_pieces"].as_object().expect("pieces");
    assert_eq!(profiled.len(), 60);
    assert!(profiled.contains_key("stem") && profiled.contains_key("head"));
    assert!(!dir
        .path()
        .join("pieces.json.transfer-pieces.partial.json")
        .exists());
    let table = LatencyTable::load(&out).expect("a table");
    let level: TransferLevel =
        serde_json::from_value(summary["transfer"]["level"].clone()).expect("a level");
    for (key, measured) in profiled {
        let piece: hsconas_models::build::Piece = key.parse().expect("a piece");
        let factor = summary["factors"][level.group_of(&piece)]
            .as_f64()
            .expect("a factor");
        let want = measured.as_f64().expect("ms") * factor;
        let got = table.entry_ms(&piece).expect("entry");
        assert!((got - want).abs() <= 1e-9 * want, "{key}: {got} vs {want}");
    }
    let text = ok(run_bin(
        "hsconas",
        &[
            "latency",
            "predict",
            "--table",
            out.to_str().expect("utf-8"),
            "--arch",
            &vec!["shuffle5:0.3"; 20].join(","),
        ],
    ))
    .stdout;
    assert!(text.contains("uncertainty"), "{text}");

    // Without the reference network the pieces are measured as they come.
    let unreferenced = dir.path().join("unreferenced.json");
    let summary: Value = serde_json::from_str(
        &ok(transfer(
            &source(),
            &unreferenced,
            &[
                "--samples",
                "4",
                "--no-reference",
                "--profile-pieces",
                "10",
                "--json",
            ],
        ))
        .stdout,
    )
    .expect("JSON");
    assert_eq!(summary["transfer"]["pieces"], 10, "{summary}");
    assert!(LatencyTable::load(&unreferenced)
        .expect("a table")
        .reference
        .is_none());

    // A tolerance the networks meet profiles nothing.
    let lenient = dir.path().join("lenient.json");
    let text = ok(transfer(
        &source(),
        &lenient,
        &[
            "--samples",
            "4",
            "--tolerance",
            "1000",
            "--profile-pieces",
            "60",
        ],
    ))
    .stdout;
    assert!(!text.contains("pieces profiled"), "{text}");

    // Another transfer's pieces at the checkpoint are refused.
    let other = dir.path().join("other.json");
    let mut foreign = read_json(&lenient);
    foreign["provenance"]["date"] = "2000-01-01T00:00:00Z".into();
    std::fs::write(
        dir.path().join("other.json.transfer-pieces.partial.json"),
        serde_json::to_vec(&foreign).expect("JSON"),
    )
    .expect("writes");
    fails_with(
        transfer(
            &source(),
            &other,
            &["--samples", "4", "--profile-pieces", "10"],
        ),
        "holds pieces profiled for another transfer",
    );
    assert!(!other.exists());
}

#[test]
fn sources_of_another_layout_or_space_and_too_few_networks_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("t.json");
    fails_with(
        transfer(&source(), &out, &["--layout", "B"]),
        "the source table has layout",
    );
    let mut partial: Value = read_json(&source());
    partial["entries"]
        .as_object_mut()
        .expect("entries")
        .remove("head");
    let partial_path = dir.path().join("partial.json");
    std::fs::write(&partial_path, serde_json::to_vec(&partial).expect("JSON")).expect("writes");
    fails_with(
        transfer(&partial_path, &out, &[]),
        "1 of its 818 pieces missing (e.g. 'head')",
    );
    let not_a_table = dir.path().join("notes.json");
    std::fs::write(&not_a_table, b"{\"entries\": 3}").expect("writes");
    fails_with(
        transfer(&not_a_table, &out, &[]),
        "not a valid latency table",
    );
    fails_with(
        transfer(&source(), &out, &["--samples", "3"]),
        "at least 4 measured networks",
    );
    fails_with(
        transfer(&source(), &out, &["--tolerance", "0"]),
        "--tolerance must be a positive percentage",
    );
    fails_with(
        transfer(
            &source(),
            &out,
            &["--samples", "8", "--tolerance", "5", "--max-samples", "6"],
        ),
        "--max-samples (6) is below --samples (8)",
    );
    fails_with(
        transfer(
            &source(),
            &out,
            &[
                "--agent",
                "http://127.0.0.1:9",
                "--agent",
                "http://127.0.0.1:10",
            ],
        ),
        "give at most one --agent",
    );
    // A usage error (clap's exit code 2): --samples only goes with --transfer-from.
    let usage = run_bin(
        "hsconas",
        &["profile", "--device", "local-cpu", "--samples", "8"],
    );
    assert_eq!(usage.code, Some(2), "{usage:?}");
    assert!(usage.stderr.contains("--transfer-from"), "{}", usage.stderr);
    assert!(!out.exists(), "nothing written");
}
