//! A latency table, calibration and validation report as the `hsconas` binary writes them (JSON), read
//! the way the end-to-end tests check them: entries, architectures, and the reference network's drift
//! trace with the normalisation redone by hand.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// A JSON file.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("file exists")).expect("valid JSON")
}

/// The table's entries by key.
pub fn entries(table: &Value) -> BTreeMap<String, Value> {
    table["entries"]
        .as_object()
        .expect("entries")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The string form of an architecture's JSON form (`[{"op": "shuffle3", "scale": 0.5, "precision":
/// "int8"}, {"op": "skip"}]`; `@int8` after an INT8 layer).
pub fn arch_string(arch: &Value) -> String {
    arch.as_array()
        .expect("a list of layers")
        .iter()
        .map(|l| match (l["scale"].as_f64(), l["precision"].as_str()) {
            (Some(scale), Some("int8")) => {
                format!("{}:{scale:.1}@int8", l["op"].as_str().expect("op"))
            }
            (Some(scale), _) => format!("{}:{scale:.1}", l["op"].as_str().expect("op")),
            (None, _) => "skip".to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The reference network's timings, one per measured group.
pub fn trace(trace: &Value) -> Vec<f64> {
    trace["points"]
        .as_array()
        .expect("trace points")
        .iter()
        .map(|p| p["reference_ms"].as_f64().expect("reference_ms"))
        .collect()
}

/// The table's reference state and its profiling trace.
pub fn reference_state(table: &Value) -> (f64, Vec<f64>) {
    let reference = &table["reference"];
    (
        reference["latency_ms"].as_f64().expect("reference latency"),
        trace(&reference["trace"]),
    )
}

/// Every piece was measured in a group with the reference network: one trace point per group of at most
/// `group` pieces, the table's reference state the median of the trace, the reference timed warm (burst
/// 3) although the pieces are not, and `alone` before and after each group or interleaved with it.
pub fn check_reference_in_every_group(table: &Value, group: usize, alone: bool) {
    let (state, points) = reference_state(table);
    assert_eq!(
        table["reference"]["arch"],
        vec!["shuffle3:0.5"; 20].join(",")
    );
    assert_eq!(table["reference"]["burst"], 3, "the reference's own burst");
    assert_eq!(
        table["reference"]["alone"], alone,
        "how the reference was timed"
    );
    assert!(
        table["provenance"]["protocol"].get("burst").is_none(),
        "pieces are timed with burst 1"
    );
    assert_eq!(
        points.len(),
        818_usize.div_ceil(group),
        "one point per group"
    );
    let mut per_group = vec![0usize; points.len()];
    for (key, e) in entries(table) {
        let g = e["group"]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} has a group")) as usize;
        per_group[g] += 1;
    }
    assert!(
        per_group.iter().all(|&n| (1..=group).contains(&n)),
        "{per_group:?}"
    );
    let mut sorted = points.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    assert!(
        (state - median).abs() < 1e-12,
        "{state} is the median of {points:?}"
    );
}

/// An entry in the table's reference state under `ratio-1`: its raw p10 over its group's factor.
pub fn normalised_p10(table: &Value, entry: &Value) -> f64 {
    let (state, points) = reference_state(table);
    let g = entry["group"].as_u64().expect("group") as usize;
    entry["p10_ms"].as_f64().expect("p10") / (points[g] / state)
}
