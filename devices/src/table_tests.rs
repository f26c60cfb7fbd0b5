//! Tests of latency tables (`table.rs`).

use super::*;
use crate::correction::CorrectionKind;
use hsconas_models::build::all_pieces;
use hsconas_models::SearchSpace;
use rand::SeedableRng;

fn stats(ms: f64) -> EntryStats {
    EntryStats {
        stats: Stats {
            min_ms: ms * 0.9,
            p10_ms: ms,
            median_ms: ms * 1.1,
            p90_ms: ms * 1.3,
            mean_ms: ms * 1.15,
            stdev_ms: 0.01,
            runs: 50,
        },
        group: None,
    }
}

/// A table of `profile` with made-up entries (0.01 to 0.17 ms), calibrated with B = 0.25 ms.
pub(crate) fn table_for(profile: &DeviceProfile) -> LatencyTable {
    let entries = all_pieces()
        .iter()
        .enumerate()
        .map(|(i, p)| (p.key(), stats(0.01 * (i % 17 + 1) as f64)))
        .collect();
    LatencyTable {
        format: FORMAT_VERSION,
        provenance: Provenance {
            device: profile.name.clone(),
            fingerprint: Fingerprint {
                cpu_model: "test".into(),
                ..Fingerprint::default()
            },
            engine: profile.backend,
            backend_version: "onnxruntime 1.31.1".into(),
            provider: profile.provider,
            threads: profile.threads,
            precision: profile.precision,
            int8: None,
            tensorrt_workspace_mib: profile.tensorrt_workspace_mib,
            kernels: BTreeMap::new(),
            batch: profile.batch,
            input_size: profile.input_size,
            layout: profile.layout,
            classes: 1000,
            date: "2026-11-28T00:00:00Z".into(),
            protocol: Protocol::default(),
            fleet: None,
            transfer: None,
            once_per_shape: false,
        },
        statistic: profile.statistic,
        entries,
        calibration: Some(Calibration {
            bias_ms: 0.25,
            linear: None,
            int8_count: None,
            int8_stages: None,
            correction: CorrectionKind::Bias,
            held_out_rmse: None,
            seed: 1,
            requested: 0,
            samples: Vec::new(),
            trace: None,
        }),
        validation: None,
        reference: None,
    }
}

/// A mixed-precision table of `profile`: [`table_for`]'s FP32 entries, and INT8 ones that are slower
/// than FP32 in the first 10 layers (x1.5) and faster in the last 10 (x0.6).
pub(crate) fn mixed_table_for(profile: &DeviceProfile) -> LatencyTable {
    let mut table = table_for(profile);
    table.provenance.int8 = Some(Int8Pieces {
        flavour: Int8Flavour::Cpu,
        weight_range: WeightRange::Reduced,
        calibration_inputs: 8,
    });
    for piece in hsconas_models::build::mixed_pieces() {
        if let Piece::Block {
            layer,
            precision: Precision::Int8,
            ..
        } = piece
        {
            let fp32 = table.entries[&piece.as_fp32().key()].stats.p10_ms;
            let factor = if layer < 10 { 1.5 } else { 0.6 };
            table.entries.insert(piece.key(), stats(fp32 * factor));
        }
    }
    table
}

#[test]
fn a_mixed_table_predicts_each_layer_in_its_precision() {
    let profile = DeviceProfile::find("local-cpu").expect("shipped");
    let fp32_only = table_for(&profile);
    let table = mixed_table_for(&profile);
    assert!(table.is_mixed() && !fp32_only.is_mixed());
    assert_eq!(table.missing_entries(), Vec::<String>::new());
    assert_eq!(table.entries.len(), 818 + 800);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let arch = SearchSpace::full().sample(&mut rng);
    let marked = arch
        .with_precision(3, Precision::Int8)
        .and_then(|a| a.with_precision(15, Precision::Int8))
        .expect("blocks with weights");
    let mut hand = table.entries["stem"].stats.p10_ms + table.entries["head"].stats.p10_ms;
    for (l, c) in marked.choices().iter().enumerate() {
        let suffix = if l == 3 || l == 15 { "@int8" } else { "" };
        hand += table.entries[&format!("L{}:{c}{suffix}", l + 1)]
            .stats
            .p10_ms;
    }
    assert!((table.table_sum_ms(&marked).expect("sum") - hand).abs() < 1e-12);
    assert_ne!(
        table.table_sum_ms(&marked).expect("sum"),
        table.table_sum_ms(&arch).expect("sum")
    );
    // The compiled model agrees to the last bit, FP32 or mixed.
    let model = crate::LatencyModel::from_table(&table).expect("complete");
    assert!(model.is_mixed() && model.supports(&marked).is_ok());
    for a in [&arch, &marked] {
        assert_eq!(model.table_sum_ms(a), table.table_sum_ms(a).expect("sum"));
    }
    let parts = model.explain(&marked);
    assert_eq!(parts.layers[3].precision, Precision::Int8);
    assert_eq!(parts.layers[4].precision, Precision::Fp32);
    // An FP32 table refuses INT8 layers, naming them and the way out.
    let err = fp32_only
        .table_sum_ms(&marked)
        .expect_err("FP32 only")
        .to_string();
    assert!(
        err.contains("layer(s) 4, 16") && err.contains("--precision mixed"),
        "{err}"
    );
    let fp32_model = crate::LatencyModel::from_table(&fp32_only).expect("complete");
    assert!(fp32_model.supports(&marked).is_err() && fp32_model.supports(&arch).is_ok());
    // A missing INT8 entry makes the table incomplete.
    let mut partial = table.clone();
    partial.entries.remove("L20:shuffle5:0.2@int8");
    assert!(matches!(
        crate::LatencyModel::from_table(&partial),
        Err(TableError::Incomplete { missing: 1, first }) if first == "L20:shuffle5:0.2@int8"
    ));
}

#[test]
fn format_1_tables_read_as_fp32_and_later_formats_are_refused() {
    let profile = DeviceProfile::find("local-cpu").expect("shipped");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.json");
    let mut old = serde_json::to_value(table_for(&profile)).expect("JSON");
    old["format"] = 1.into();
    std::fs::write(&path, old.to_string()).expect("write");
    let table = LatencyTable::load(&path).expect("format 1 reads");
    assert!(!table.is_mixed());
    assert_eq!(table.missing_entries(), Vec::<String>::new());
    let mut new = old;
    new["format"] = (FORMAT_VERSION + 1).into();
    std::fs::write(&path, new.to_string()).expect("write");
    let err = LatencyTable::load(&path).expect_err("too new").to_string();
    assert!(err.contains("this build reads 1 to 2"), "{err}");
}

/// A table with a reference network: entries normalised by their group's speed factor, raw values
/// kept; a table without one (older files) gives its entries as they are.
#[test]
fn entries_are_normalised_to_the_reference_state() {
    use crate::drift::{DriftModel, DriftPoint, DriftTrace, ReferenceNetwork};
    let profile = DeviceProfile::find("local-cpu").expect("shipped");
    let mut table = table_for(&profile);
    let raw = table.entry_ms(&Piece::Stem).expect("stem");
    assert_eq!(table.raw_entry_ms(&Piece::Stem).expect("stem"), raw);
    let trace = DriftTrace {
        started: "2026-12-01T00:00:00Z".into(),
        points: [1.0, 1.1, 0.9]
            .iter()
            .enumerate()
            .map(|(i, &r)| DriftPoint {
                seconds: i as f64,
                reference_ms: r,
            })
            .collect(),
    };
    table.reference = ReferenceNetwork::from_trace(
        "x".into(),
        DriftModel::Ratio { window: 1 },
        (1, false),
        trace,
    );
    // An entry without a group (measured before the reference was recorded) stays raw.
    assert_eq!(table.entry_ms(&Piece::Stem).expect("stem"), raw);
    table.entries.get_mut("stem").expect("stem").group = Some(1);
    let normalised = table.entry_ms(&Piece::Stem).expect("stem");
    assert!(
        (normalised - raw / 1.1).abs() < 1e-12,
        "{normalised} vs {raw}"
    );
    assert_eq!(table.raw_entry_ms(&Piece::Stem).expect("stem"), raw);
    let json = serde_json::to_string(&table).expect("JSON");
    let back: LatencyTable = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, table);
    // Raw predictions again under the `raw` model.
    table.reference.as_mut().expect("reference").model = DriftModel::Raw;
    assert_eq!(table.entry_ms(&Piece::Stem).expect("stem"), raw);
}

#[test]
fn round_trips_through_a_file() {
    let profile = DeviceProfile::find("local-cpu").expect("shipped");
    let table = table_for(&profile);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("local-cpu.json");
    table.save(&path).expect("saves");
    assert_eq!(
        LatencyTable::load_for(&path, &profile).expect("loads"),
        table
    );
    std::fs::write(&path, b"{\"format\": 1, \"provenance\":").expect("truncate");
    assert!(matches!(
        LatencyTable::load(&path),
        Err(TableError::Parse { .. })
    ));
}

#[test]
fn a_table_of_another_device_is_refused() {
    let local = DeviceProfile::find("local-cpu").expect("shipped");
    let xavier = DeviceProfile::find("jetson-xavier").expect("shipped");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.json");
    table_for(&local).save(&path).expect("saves");
    let err = LatencyTable::load_for(&path, &xavier)
        .expect_err("other device")
        .to_string();
    assert!(
        err.contains("device: table has local-cpu, profile has jetson-xavier"),
        "{err}"
    );
    assert!(err.contains("batch: table has 1, profile has 16"), "{err}");
    let mut small = local.clone();
    small.input_size = 32;
    let err = LatencyTable::load_for(&path, &small)
        .expect_err("other input size")
        .to_string();
    assert!(
        err.contains("input_size: table has 224, profile has 32") && !err.contains("batch"),
        "{err}"
    );
}

#[test]
fn a_table_built_with_other_tensorrt_settings_is_refused() {
    let xavier = DeviceProfile::find("jetson-xavier").expect("shipped");
    let table = table_for(&xavier);
    assert_eq!(table.check_matches(&xavier), Ok(()));
    let mut fp16 = xavier.clone();
    fp16.precision = Precision::Fp16;
    let err = table.check_matches(&fp16).expect_err("other precision");
    assert!(
        err.contains("precision: table has Fp32, profile has Fp16"),
        "{err}"
    );
    let mut workspace = xavier.clone();
    workspace.tensorrt_workspace_mib = Some(1024);
    let err = table
        .check_matches(&workspace)
        .expect_err("other workspace");
    assert!(
        err.contains("tensorrt_workspace_mib: table has the default, profile has 1024 MiB"),
        "{err}"
    );
    // Tables written before precision was recorded read as FP32.
    let mut json = serde_json::to_value(&table).expect("serialises");
    json["provenance"]
        .as_object_mut()
        .expect("object")
        .remove("precision");
    let old: LatencyTable = serde_json::from_value(json).expect("reads");
    assert_eq!(old.provenance.precision, Precision::Fp32);
}

#[test]
fn prediction_is_the_hand_sum_plus_bias() {
    let profile = DeviceProfile::find("local-cpu").expect("shipped");
    let table = table_for(&profile);
    let arch = SearchSpace::full().sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(4));
    let mut hand = table.entries["stem"].stats.p10_ms + table.entries["head"].stats.p10_ms;
    for (l, c) in arch.choices().iter().enumerate() {
        hand += table.entries[&format!("L{}:{c}", l + 1)].stats.p10_ms;
    }
    assert!((table.table_sum_ms(&arch).expect("sum") - hand).abs() < 1e-12);
    assert!((table.predict_ms(&arch).expect("predict") - hand - 0.25).abs() < 1e-12);
    let mut partial = table;
    partial.entries.remove("head");
    assert!(matches!(partial.predict_ms(&arch), Err(TableError::MissingEntry(k)) if k == "head"));
}
