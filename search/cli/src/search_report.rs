//! The search report (`search.json`), its plots (paper Fig. 6, latency histogram, Pareto front) and the
//! human summary of `hsconas search`.

use hsconas_foundation::outln;
use std::path::Path;

use hsconas_nas::{
    pareto_front, AccuracyOracle, Candidate, Evaluator, Evolution, GenerationStats, WinnerChoice,
};
use hsconas_plots::{Histogram, Scatter, Series, BLUE, GREY, ORANGE};
use serde_json::json;

use super::search_state::SearchState;

/// The report of docs/DESIGN.md section 3; `choice` is the winner (`search::choose_winner`).
pub(super) fn report(
    state: &SearchState,
    evaluator: &Evaluator<impl AccuracyOracle>,
    evo: &Evolution,
    settings: &serde_json::Value,
    choice: Option<WinnerChoice>,
) -> serde_json::Value {
    let objective = evaluator.objective();
    json!({
        "settings": settings,
        "correction": evaluator.model().correction(),
        "space": state.space,
        "log10_space_size": state.space.layers().iter().map(|l| (l.len() as f64).log10()).sum::<f64>(),
        "shrinking": state.decisions,
        "generations": evo.history,
        "evaluations": evaluator.evaluated().len(),
        "cache_hits": evaluator.cache_hits(),
        "candidates": evaluator.evaluated(),
        "pareto_front": pareto_front(evaluator.evaluated()),
        "remeasured": state.remeasured,
        "correction_rounds": state.rounds,
        "winner": choice.map(|w| {
            let c = &w.candidate;
            json!({
                "arch": c.arch.to_string(),
                "accuracy": c.accuracy,
                "predicted_ms": c.latency_ms,
                "measured_ms": c.measured_ms,
                "target_ms": objective.target_ms,
                "relative_to_target": w.relative_to_target(objective),
                "prediction_error": c.measured_ms.map(|m| c.latency_ms / m - 1.0),
                "tolerance": w.tolerance,
                "score": c.score,
                "reason": w.reason,
                "explanation": w.explanation(objective),
            })
        }),
    })
}

/// `search-score.png`, `search-accuracy.png`, `search-latency.png`, `latency-histogram.png`, `pareto.png`.
pub(super) fn draw_plots(
    dir: &Path,
    evo: &Evolution,
    all: &[Candidate],
    target_ms: f64,
) -> anyhow::Result<()> {
    let per_gen = |f: fn(&GenerationStats) -> f64| -> Vec<(f64, f64)> {
        evo.history
            .iter()
            .map(|g| (g.generation as f64, f(g)))
            .collect()
    };
    Scatter {
        title: "evolutionary search: objective F per generation",
        x_label: "generation",
        y_label: "F",
        series: vec![
            Series {
                label: "best F",
                color: BLUE,
                points: per_gen(|g| g.best_score),
            },
            Series {
                label: "mean F",
                color: ORANGE,
                points: per_gen(|g| g.mean_score),
            },
        ],
        identity: None,
    }
    .draw(&dir.join("search-score.png"))?;
    Scatter {
        title: "evolutionary search: accuracy per generation",
        x_label: "generation",
        y_label: "validation top-1 (fraction)",
        series: vec![
            Series {
                label: "best-F candidate",
                color: BLUE,
                points: per_gen(|g| g.best_accuracy),
            },
            Series {
                label: "population mean",
                color: ORANGE,
                points: per_gen(|g| g.mean_accuracy),
            },
        ],
        identity: None,
    }
    .draw(&dir.join("search-accuracy.png"))?;
    Scatter {
        title: "evolutionary search: predicted latency per generation",
        x_label: "generation",
        y_label: "latency (ms)",
        series: vec![
            Series {
                label: "best-F candidate",
                color: BLUE,
                points: per_gen(|g| g.best_latency_ms),
            },
            Series {
                label: "population mean",
                color: ORANGE,
                points: per_gen(|g| g.mean_latency_ms),
            },
            Series {
                label: "target",
                color: GREY,
                points: per_gen(|_| 0.0).iter().map(|p| (p.0, target_ms)).collect(),
            },
        ],
        identity: None,
    }
    .draw(&dir.join("search-latency.png"))?;
    Histogram {
        title: "predicted latency of every evaluated candidate",
        x_label: "latency (ms)",
        values: all.iter().map(|c| c.latency_ms).collect(),
        bins: 30,
        marker: Some((target_ms, "target T")),
    }
    .draw(&dir.join("latency-histogram.png"))?;
    let front = pareto_front(all);
    Ok(Scatter {
        title: "accuracy vs predicted latency (Pareto front in orange)",
        x_label: "latency (ms)",
        y_label: "validation top-1 (fraction)",
        series: vec![
            Series {
                label: "evaluated",
                color: GREY,
                points: all.iter().map(|c| (c.latency_ms, c.accuracy)).collect(),
            },
            Series {
                label: "Pareto front",
                color: ORANGE,
                points: front.iter().map(|c| (c.latency_ms, c.accuracy)).collect(),
            },
        ],
        identity: None,
    }
    .draw(&dir.join("pareto.png"))?)
}

/// The winner and where the report is.
pub(super) fn print_summary(report: &serde_json::Value, out: &Path) -> std::io::Result<()> {
    let w = &report["winner"];
    outln!("winner       {}", w["arch"].as_str().unwrap_or("-"))?;
    outln!(
        "accuracy     {:.2}% (validation, supernet weights)",
        w["accuracy"].as_f64().unwrap_or(f64::NAN) * 100.0
    )?;
    outln!("latency      {}", latency_line(w))?;
    if let Some(why) = w["explanation"].as_str() {
        outln!("chosen as    {why}")?;
    }
    outln!(
        "evaluated    {} candidates ({} cache hits), space 10^{:.1}",
        report["evaluations"],
        report["cache_hits"],
        report["log10_space_size"].as_f64().unwrap_or(f64::NAN)
    )?;
    outln!("report       {}", out.join("search.json").display())?;
    Ok(())
}

/// `measured 0.714 ms, +2.0% from the target 0.7 ms; predicted 0.717 ms (prediction error +0.4%)` for the
/// report's `winner` object (or the predicted latency alone when it was not measured).
pub(super) fn latency_line(winner: &serde_json::Value) -> String {
    let predicted = winner["predicted_ms"].as_f64().unwrap_or(f64::NAN);
    let target = winner["target_ms"].as_f64().unwrap_or(f64::NAN);
    let off = winner["relative_to_target"].as_f64().unwrap_or(f64::NAN) * 100.0;
    match winner["measured_ms"].as_f64() {
        Some(m) => format!(
            "measured {m:.3} ms, {off:+.1}% from the target {target} ms; predicted {predicted:.3} ms \
             (prediction error {:+.1}%)",
            winner["prediction_error"].as_f64().unwrap_or(f64::NAN) * 100.0
        ),
        None => format!(
            "predicted {predicted:.3} ms, {off:+.1}% from the target {target} ms (not measured on the device)"
        ),
    }
}
