//! `results.md`: the tables of the results study, rendered from [`Results`] (what `results.json` holds).

use std::fmt::Write as _;

use super::results::{CifarRow, Results};

fn error_text(r: &CifarRow) -> String {
    match (r.test_error_mean, r.test_error_min, r.test_error_max) {
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

/// `x` with `digits` decimals, `-` when absent.
fn fixed(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |x| format!("{x:.digits$}"))
}

pub fn markdown(results: &Results) -> String {
    let mut md = String::new();
    table(
        &mut md,
        &format!("CIFAR-10 (input 32), trained {}", results.recipe),
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
        results
            .cifar10
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.kind.clone(),
                    millions(r.params),
                    millions(r.macs),
                    fixed(r.ort_ms, 3),
                    fixed(r.tract_ms, 3),
                    error_text(r),
                    r.seeds.len().to_string(),
                    fixed(r.supernet_top1, 1),
                ]
            })
            .collect(),
    );
    table(
        &mut md,
        "Found networks against the hand-designed network and the uniform scaling closest in latency",
        &[
            "found",
            "baseline",
            "latency found / baseline",
            "test error difference (points)",
            "95% interval",
        ],
        2,
        results
            .comparisons
            .iter()
            .map(|c| {
                vec![
                    c.found.clone(),
                    c.baseline.clone(),
                    fixed(Some(c.latency_ratio), 3),
                    c.test_error_difference
                        .map_or("-".into(), |d| format!("{d:+.2}")),
                    c.test_error_difference_ci95
                        .map_or("-".into(), |i| format!("{:+.2} to {:+.2}", i.low, i.high)),
                ]
            })
            .collect(),
    );
    if let Some(ranking) = &results.supernet_ranking {
        let _ = writeln!(
            md,
            "Supernet accuracy (5,000 validation images) against the trained networks' mean test accuracy, \
             {} networks of the space: Kendall's tau {}, Pearson's r {}.\n",
            ranking.networks,
            fixed(Some(ranking.kendall_tau), 2),
            fixed(Some(ranking.pearson), 2)
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
        results
            .imagenet224
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    millions(r.params),
                    millions(r.macs),
                    fixed(r.ort_ms, 3),
                    fixed(r.tract_ms, 3),
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
        results
            .searches
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.target_ms.to_string(),
                    fixed(Some(s.predicted_ms), 3),
                    fixed(s.measured_ms, 3),
                    s.deviation_percent
                        .map_or("-".into(), |d| format!("{d:+.1}%")),
                    format!("{:.1}%", 100.0 * s.supernet_top1),
                    s.evaluations.to_string(),
                    s.correction_rounds.to_string(),
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
        results
            .latency_model
            .iter()
            .map(|m| {
                let a = &m.accuracy;
                vec![
                    m.table.clone(),
                    m.predictor.clone(),
                    a.n.to_string(),
                    fixed(Some(a.rmse_ms), 4),
                    fixed(Some(a.rmspe_percent), 2),
                    fixed(Some(a.within_10_percent), 0),
                    fixed(Some(a.kendall_tau), 3),
                ]
            })
            .collect(),
    );
    table(
        &mut md,
        "Wall time",
        &["phase", "minutes"],
        1,
        results
            .timing
            .iter()
            .map(|t| {
                let minutes = t.seconds as f64 / 60.0;
                vec![t.phase.clone(), format!("{minutes:.1}")]
            })
            .collect(),
    );
    md
}

/// A count in millions with two decimals.
fn millions(n: usize) -> String {
    format!("{:.2}", n as f64 / 1e6)
}
