//! Tables from before reference networks were recorded: they still load and measure, and say that they
//! cannot normalise for drift.

use hsconas_tests::run_bin;
use hsconas_tests::table_json::read_json;

/// A table from before reference networks (the committed ones) still loads, measures, and says that it
/// cannot normalise for drift.
#[test]
fn a_table_without_a_reference_network_says_it_cannot_normalise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = dir.path().join("old.json");
    std::fs::copy(
        hsconas_foundation::package_dir!().join("../devices/tables/local-cpu-A-32.json"),
        &table,
    )
    .expect("copy");
    let out = run_bin(
        "hsconas",
        &[
            "latency",
            "validate",
            "--table",
            table.to_str().expect("utf-8"),
            "--samples",
            "2",
        ],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("records no reference network"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("not normalised"), "{}", out.stdout);
    let report = read_json(&dir.path().join("old.json.validation.json"));
    assert!(report.get("drift").is_none(), "{report}");
    assert!(report["networks"][0].get("raw_ms").is_none());
}
