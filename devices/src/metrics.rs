//! How well predicted latencies match measured ones, and the least-squares fits the corrections use.

use serde::{Deserialize, Serialize};

/// Accuracy of one predictor over a set of networks (paper section IV-B, plus rank correlations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictorAccuracy {
    /// Networks compared.
    pub n: usize,
    /// Root mean squared error, ms.
    pub rmse_ms: f64,
    /// Root mean squared percentage error, percent of the measured value.
    pub rmspe_percent: f64,
    /// Mean absolute error, ms.
    pub mae_ms: f64,
    /// Largest absolute error, ms.
    pub max_error_ms: f64,
    /// Share of networks predicted within ±5% of the measurement, percent.
    pub within_5_percent: f64,
    /// Share within ±10%, percent.
    pub within_10_percent: f64,
    /// Kendall's tau-b between predicted and measured.
    pub kendall_tau: f64,
    /// Spearman's rho (Pearson correlation of average ranks).
    pub spearman_rho: f64,
}

impl PredictorAccuracy {
    /// Compares predictions with measurements (same order, same length, measurements positive).
    ///
    /// # Panics
    /// If the lengths differ or the slices are empty.
    pub fn of(predicted: &[f64], measured: &[f64]) -> PredictorAccuracy {
        assert_eq!(
            predicted.len(),
            measured.len(),
            "one prediction per measurement"
        );
        assert!(!measured.is_empty(), "at least one network");
        let n = measured.len();
        let errors: Vec<f64> = predicted.iter().zip(measured).map(|(p, m)| p - m).collect();
        let relative: Vec<f64> = errors.iter().zip(measured).map(|(e, m)| e / m).collect();
        let share = |limit: f64| {
            100.0 * relative.iter().filter(|r| r.abs() <= limit).count() as f64 / n as f64
        };
        PredictorAccuracy {
            n,
            rmse_ms: (errors.iter().map(|e| e * e).sum::<f64>() / n as f64).sqrt(),
            rmspe_percent: 100.0 * (relative.iter().map(|r| r * r).sum::<f64>() / n as f64).sqrt(),
            mae_ms: errors.iter().map(|e| e.abs()).sum::<f64>() / n as f64,
            max_error_ms: errors.iter().fold(0.0, |m, e| m.max(e.abs())),
            within_5_percent: share(0.05),
            within_10_percent: share(0.10),
            kendall_tau: kendall_tau(predicted, measured),
            spearman_rho: pearson(&ranks(predicted), &ranks(measured)),
        }
    }
}

/// Kendall's tau-b (ties in either variable handled); 0 when one side is constant.
pub fn kendall_tau(x: &[f64], y: &[f64]) -> f64 {
    let (mut concordant, mut discordant, mut ties_x, mut ties_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let dx = (x[i] - x[j]).partial_cmp(&0.0);
            let dy = (y[i] - y[j]).partial_cmp(&0.0);
            match (dx, dy) {
                (Some(std::cmp::Ordering::Equal), Some(std::cmp::Ordering::Equal)) => {}
                (Some(std::cmp::Ordering::Equal), _) => ties_x += 1,
                (_, Some(std::cmp::Ordering::Equal)) => ties_y += 1,
                (a, b) if a == b => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let denominator =
        (((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) as f64).sqrt();
    if denominator == 0.0 {
        0.0
    } else {
        (concordant - discordant) as f64 / denominator
    }
}

/// 1-based ranks, ties sharing their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = average;
        }
        i = j + 1;
    }
    ranks
}

/// Pearson correlation; 0 when either side is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// `mean(a - b)`; 0 for empty slices.
pub fn mean_difference(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x - y).sum::<f64>() / a.len() as f64
}

/// Least-squares line `y = slope * x + intercept`; `None` with fewer than 3 points or constant `x`.
pub fn fit_line(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    if x.len() < 3 {
        return None;
    }
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    if sxx <= f64::EPSILON * mx.abs().max(1.0) {
        return None;
    }
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

/// Each point's squared error when predicted by `predict(other xs, other ys, its x)` fitted on the other
/// points (leave-one-out); every error infinite below 2 points or when `predict` cannot fit (`None`), so
/// that a model that cannot be fitted is never preferred.
pub fn leave_one_out_squared_errors(
    x: &[f64],
    y: &[f64],
    predict: impl Fn(&[f64], &[f64], f64) -> Option<f64>,
) -> Vec<f64> {
    let n = x.len().min(y.len());
    if n < 2 {
        return vec![f64::INFINITY; n];
    }
    (0..n)
        .map(|i| {
            let others = |v: &[f64]| -> Vec<f64> {
                v[..n]
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, v)| *v)
                    .collect()
            };
            predict(&others(x), &others(y), x[i]).map_or(f64::INFINITY, |p| (p - y[i]).powi(2))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_predictions() {
        let m = [1.0, 2.0, 3.0, 4.0];
        let a = PredictorAccuracy::of(&m, &m);
        assert_eq!((a.rmse_ms, a.mae_ms, a.max_error_ms), (0.0, 0.0, 0.0));
        assert_eq!((a.within_5_percent, a.within_10_percent), (100.0, 100.0));
        assert!((a.kendall_tau - 1.0).abs() < 1e-12 && (a.spearman_rho - 1.0).abs() < 1e-12);
    }

    #[test]
    fn known_errors() {
        // Errors +0.5 and -1 on measurements 10 and 20: relative +5% and -5%.
        let a = PredictorAccuracy::of(&[10.5, 19.0], &[10.0, 20.0]);
        assert!((a.rmse_ms - ((0.25 + 1.0) / 2.0f64).sqrt()).abs() < 1e-12);
        assert!((a.rmspe_percent - 5.0).abs() < 1e-9);
        assert!((a.mae_ms - 0.75).abs() < 1e-12);
        assert_eq!(a.max_error_ms, 1.0);
        assert_eq!(a.within_5_percent, 100.0);
        let b = PredictorAccuracy::of(&[11.5, 20.0], &[10.0, 20.0]);
        assert_eq!((b.within_5_percent, b.within_10_percent), (50.0, 50.0));
    }

    #[test]
    fn rank_correlations_of_known_orders() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((kendall_tau(&x, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // One swapped pair of six: (5 - 1) / 6.
        assert!((kendall_tau(&x, &[1.0, 3.0, 2.0, 4.0]) - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        // Spearman of [1,3,2,4] vs [1,2,3,4]: 1 - 6 * 2 / (4 * 15) = 0.8.
        assert!((pearson(&ranks(&x), &ranks(&[1.0, 3.0, 2.0, 4.0])) - 0.8).abs() < 1e-12);
        assert_eq!(kendall_tau(&x, &[1.0; 4]), 0.0);
    }

    #[test]
    fn fits_recover_known_lines() {
        let x = [1.0, 2.0, 3.0, 5.0];
        let y: Vec<f64> = x.iter().map(|v| 1.1 * v + 0.3).collect();
        let (a, b) = fit_line(&x, &y).expect("fits");
        assert!((a - 1.1).abs() < 1e-12 && (b - 0.3).abs() < 1e-12);
        let line = leave_one_out_squared_errors(&x, &y, |xs, ys, xi| {
            fit_line(xs, ys).map(|(a, b)| a * xi + b)
        });
        assert!(line.iter().all(|e| *e < 1e-18), "{line:?}");
        // Two points left: no line through them is fitted, so every error is infinite.
        let short = leave_one_out_squared_errors(&x[..3], &y[..3], |xs, ys, xi| {
            fit_line(xs, ys).map(|(a, b)| a * xi + b)
        });
        assert_eq!(short, vec![f64::INFINITY; 3]);
        assert!(fit_line(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
        assert!((mean_difference(&[2.0, 4.0], &[1.0, 1.0]) - 2.0).abs() < 1e-12);
    }
}
