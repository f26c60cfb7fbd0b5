//! `results.md`: the tables of the results study, rendered from `results.json`.

use std::fmt::Write as _;

use serde_json::Value;

fn error_text(r: &Value) -> String {
    match (
        r["test_error_mean"].as_f64(),
        r["test_error_min"].as_f64(),
        r["test_error_max"].as_f64(),
    ) {
        (Some(m), Some(lo), Some(hi)) if hi > lo => format!("{m:.2} ({lo:.2}-{hi:.2})"),
        (Some(m), _, _) => format!("{m:.2}"),
        _ => "-".into(),
    }
}

/// A markdown table under a `###` title; the first `left` columns are left-aligned, the rest right-aligned.
fn table(md: &mut String, title: &str, header: &[&str], left: usize, rows: Vec<Vec<String>>) {
    let align: Vec<&str> = (0..header.len())
        .map(|i| if i < left { "---" } else { "---:" })
        .collect();
    let _ = writeln!(
        md,
        "### {title}\n\n| {} |\n| {} |",
        header.join(" | "),
        align.join(" | ")
    );
    for row in rows {
        let _ = writeln!(md, "| {} |", row.join(" | "));
    }
    md.push('\n');
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), String::from)
}

fn fixed(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.digits$}"))
}

pub fn markdown(results: &Value) -> String {
    let mut md = String::new();
    let rows = |key: &str| results[key].as_array().cloned().unwrap_or_default();
    let count = |v: &Value| millions(v.as_u64().unwrap_or(0) as usize);
    table(
        &mut md,
        &format!("CIFAR-10 (input 32), trained {}", text(&results["recipe"])),
        &[
            "network",
            "kind",
            "params (M)",
            "MACs (M)",
            "ONNX Runtime (ms)",
            "tract (ms)",
            "test error % (mean, range)",
            "seeds",
            "supernet top-1 %",
        ],
        2,
        rows("cifar10")
            .iter()
            .map(|r| {
                vec![
                    text(&r["name"]),
                    text(&r["kind"]),
                    count(&r["params"]),
                    count(&r["macs"]),
                    fixed(&r["ort_ms"], 3),
                    fixed(&r["tract_ms"], 3),
                    error_text(r),
                    r["seeds"].as_array().map_or(0, Vec::len).to_string(),
                    fixed(&r["supernet_top1"], 1),
                ]
            })
            .collect(),
    );
    table(
        &mut md,
        "Found networks against the hand-designed network and the uniform scaling closest in latency",
        &["found", "baseline", "latency found / baseline", "test error difference (points)"],
        2,
        rows("comparisons")
            .iter()
            .map(|c| {
                vec![
                    text(&c["found"]),
                    text(&c["baseline"]),
                    fixed(&c["latency_ratio"], 3),
                    c["test_error_difference"]
                        .as_f64()
                        .map_or("-".into(), |d| format!("{d:+.2}")),
                ]
            })
            .collect(),
    );
    let ranking = &results["supernet_ranking"];
    if !ranking.is_null() {
        let _ = writeln!(
            md,
            "Supernet accuracy (5,000 validation images) against the trained networks' mean test accuracy, \
             {} networks of the space: Kendall's tau {}, Pearson's r {}.\n",
            ranking["networks"],
            fixed(&ranking["kendall_tau"], 2),
            fixed(&ranking["pearson"], 2)
        );
    }
    table(
        &mut md,
        "Latency at input 224, batch 1, one thread (paper Table I, latency columns)",
        &[
            "network",
            "params (M)",
            "MACs (M)",
            "ONNX Runtime (ms)",
            "tract (ms)",
        ],
        1,
        rows("imagenet224")
            .iter()
            .map(|r| {
                vec![
                    text(&r["name"]),
                    count(&r["params"]),
                    count(&r["macs"]),
                    fixed(&r["ort_ms"], 3),
                    fixed(&r["tract_ms"], 3),
                ]
            })
            .collect(),
    );
    table(
        &mut md,
        "Searches (local-cpu, input 32)",
        &[
            "network",
            "target (ms)",
            "predicted (ms)",
            "measured (ms)",
            "vs target",
            "supernet top-1",
            "evaluations",
            "correction rounds",
        ],
        1,
        rows("searches")
            .iter()
            .map(|s| {
                vec![
                    text(&s["name"]),
                    text(&s["target_ms"]),
                    fixed(&s["predicted_ms"], 3),
                    fixed(&s["measured_ms"], 3),
                    s["deviation_percent"]
                        .as_f64()
                        .map_or("-".into(), |d| format!("{d:+.1}%")),
                    s["supernet_top1"]
                        .as_f64()
                        .map_or("-".into(), |a| format!("{:.1}%", 100.0 * a)),
                    text(&s["evaluations"]),
                    text(&s["correction_rounds"]),
                ]
            })
            .collect(),
    );
    table(
        &mut md,
        "Latency model (held-out random networks)",
        &[
            "table",
            "predictor",
            "networks",
            "RMSE (ms)",
            "RMSPE (%)",
            "within ±10% (%)",
            "Kendall's tau",
        ],
        2,
        rows("latency_model")
            .iter()
            .map(|m| {
                let a = &m["accuracy"];
                vec![
                    text(&m["table"]),
                    text(&m["predictor"]),
                    text(&a["n"]),
                    fixed(&a["rmse_ms"], 4),
                    fixed(&a["rmspe_percent"], 2),
                    fixed(&a["within_10_percent"], 0),
                    fixed(&a["kendall_tau"], 3),
                ]
            })
            .collect(),
    );
    table(
        &mut md,
        "Wall time",
        &["phase", "minutes"],
        1,
        rows("timing")
            .iter()
            .map(|t| {
                let minutes = t["seconds"].as_f64().unwrap_or(0.0) / 60.0;
                vec![text(&t["phase"]), format!("{minutes:.1}")]
            })
            .collect(),
    );
    md
}

fn millions(n: usize) -> String {
    format!("{:.2}", n as f64 / 1e6)
}
