//! The search report (`search.json`), its plots (paper Fig. 6, latency histogram, Pareto front) and the
//! human summary of `hsconas search`.

use hsconas_foundation::outln;
use std::path::Path;

use hsconas_models::Arch;
use hsconas_nas::{
    pareto_front, Candidate, Estimator, Evolution, GenerationStats, ObjectiveMode, Refined,
    SearchReport, SearchSettings,
};
use hsconas_plots::{Histogram, Scatter, Series, BLUE, GREY, ORANGE};

/// What a candidate's `accuracy` is under the search's estimator, as an axis label: an estimate named as
/// one (the predictor's predicted test top-1, a proxy's percentile), or the supernet's validation top-1.
pub(super) fn accuracy_quantity(settings: &SearchSettings) -> String {
    match settings.estimator {
        Estimator::Supernet => "validation top-1 with supernet weights (fraction)".into(),
        Estimator::Predictor if settings.predicted_top1 => {
            "test top-1 predicted by the predictor (fraction)".into()
        }
        other => format!("{other}: percentile among uniform draws of the space (fraction)"),
    }
}

/// `search-score.png`, `search-accuracy.png`, `search-latency.png`, `latency-histogram.png`, `pareto.png`;
/// `accuracy_label` names the accuracy axis ([`accuracy_quantity`]). Latencies are the latency model's
/// predictions, and every label says so.
pub(super) fn draw_plots(
    dir: &Path,
    evo: &Evolution,
    all: &[Candidate],
    target_ms: f64,
    accuracy_label: &str,
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
        title: "evolutionary search: estimated accuracy per generation",
        x_label: "generation",
        y_label: accuracy_label,
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
        y_label: "predicted latency (ms)",
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
        x_label: "predicted latency (ms)",
        values: all.iter().map(|c| c.latency_ms).collect(),
        bins: 30,
        marker: Some((target_ms, "target T")),
    }
    .draw(&dir.join("latency-histogram.png"))?;
    let front = pareto_front(all);
    Ok(Scatter {
        title: "estimated accuracy vs predicted latency (Pareto front in orange)",
        x_label: "predicted latency (ms)",
        y_label: accuracy_label,
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
pub(super) fn print_summary(report: &SearchReport, out: &Path) -> std::io::Result<()> {
    if let Some(w) = &report.winner {
        outln!("winner       {}", w.arch)?;
        match report.reranked.iter().find(|r| r.arch == w.arch) {
            Some(r) => outln!(
                "accuracy     {:.2}% (validation after a short training from scratch; {:.2}% by \
                 the search's estimator, {}; best of {} re-ranked candidates)",
                r.accuracy * 100.0,
                r.supernet_accuracy * 100.0,
                report.settings.estimator,
                report.reranked.len()
            )?,
            None if report.settings.estimator == Estimator::Supernet => outln!(
                "accuracy     {:.2}% (validation, supernet weights)",
                w.accuracy * 100.0
            )?,
            None if refined(report, &w.arch).is_some() => outln!(
                "accuracy     {:.2}% (test top-1 of its refinement training, {})",
                w.accuracy * 100.0,
                report
                    .settings
                    .refine
                    .as_ref()
                    .map_or("", |r| r.recipe.as_str())
            )?,
            None if report.settings.estimator == Estimator::Predictor => outln!(
                "accuracy     {:.2}% (test top-1 predicted by the predictor: an estimate)",
                w.accuracy * 100.0
            )?,
            None => outln!(
                "accuracy     percentile {:.1} of {} among architectures drawn from the space (an \
                 estimate, not an accuracy)",
                w.accuracy * 100.0,
                report.settings.estimator
            )?,
        }
        outln!("latency      {}", w.latency_line())?;
        outln!("chosen as    {}", w.explanation)?;
        // A budget's summary shows what else was measured at or under T (the penalty's report keeps it
        // in `measured_front`).
        let budget = report.settings.objective.mode == ObjectiveMode::Constraint;
        let label = report.settings.estimator.accuracy_label();
        let target = report.settings.objective.target_ms;
        let front = report
            .measured_front
            .iter()
            .filter(|c| budget && c.latency_ms <= target);
        for (i, c) in front.enumerate() {
            outln!(
                "{}{:.3} ms measured, {label} {:.2}%{}",
                if i == 0 {
                    "front        "
                } else {
                    "             "
                },
                c.latency_ms,
                c.accuracy * 100.0,
                if c.arch == w.arch { "  <- winner" } else { "" }
            )?;
        }
    } else {
        outln!("winner       - (nothing was evaluated)")?;
    }
    if let Some(r) = &report.refinement {
        match (&r.skipped, r.rmse_before, r.rmse_after_held_out) {
            (Some(reason), _, _) => outln!("refinement   skipped: {reason}")?,
            (None, Some(before), Some(after)) => outln!(
                "refinement   {} candidates trained; the predictor's error on them: {before:.2} points of \
                 top-1 before the refit, {after:.2} after (each predicted by a refit without it); refit \
                 in {}",
                r.refined.len(),
                r.predictor_file
                    .as_ref()
                    .map_or(String::new(), |f| f.display().to_string())
            )?,
            _ => {}
        }
    }
    outln!(
        "evaluated    {} candidates ({} cache hits), space 10^{:.1}",
        report.evaluations,
        report.cache_hits,
        report.log10_space_size
    )?;
    outln!("report       {}", out.join("search.json").display())?;
    Ok(())
}

/// `arch`'s refinement training, if it had one.
fn refined<'r>(report: &'r SearchReport, arch: &Arch) -> Option<&'r Refined> {
    report
        .refinement
        .as_ref()?
        .refined
        .iter()
        .find(|r| &r.arch == arch)
}
