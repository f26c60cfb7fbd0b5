//! How table sums become predictions: the correction (`scale * table sum + offset`), and the calibration
//! that fits it on networks measured end to end (paper Eq. 3 and a linear fit) and chooses among them by
//! the one-standard-error rule, so that a correction is used only when it clearly predicts better.

use hsconas_models::Arch;
use serde::{Deserialize, Serialize};

/// How the table sum becomes a prediction: `scale * table_sum + offset`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    /// Multiplier of the table sum (1 for the paper's bias-only model).
    pub scale: f64,
    /// Added milliseconds (the paper's B when `scale` is 1).
    pub offset_ms: f64,
}

impl Correction {
    /// No correction: the plain table sum.
    pub const NONE: Correction = Correction {
        scale: 1.0,
        offset_ms: 0.0,
    };

    /// The paper's bias term (Eq. 3).
    pub fn bias(bias_ms: f64) -> Correction {
        Correction {
            scale: 1.0,
            offset_ms: bias_ms,
        }
    }

    /// Applies it to a table sum.
    pub fn apply(&self, table_sum_ms: f64) -> f64 {
        self.scale * table_sum_ms + self.offset_ms
    }
}

/// One end-to-end measurement of a whole network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSample {
    /// The architecture.
    pub arch: Arch,
    /// Measured latency (the table's statistic), ms; normalised to the table's reference state when
    /// `raw_ms` is given.
    pub measured_ms: f64,
    /// Sum of the table's entries for it, ms.
    pub table_sum_ms: f64,
    /// The measurement as taken, before drift normalisation (`None`: not normalised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_ms: Option<f64>,
    /// The group it was measured in: the index of its point in the job's drift trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
}

/// Which correction turns table sums into predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CorrectionKind {
    /// The paper's `table sum + B`.
    #[default]
    Bias,
    /// `scale * table sum + offset`, least squares over the calibration networks.
    Linear,
    /// The plain table sum: kept when no correction predicts held-out calibration networks clearly better
    /// (e.g. once drift is removed, a table can need none).
    None,
}

impl CorrectionKind {
    /// From the simplest to the richest (nothing fitted, one offset, a line): the order in which the
    /// one-standard-error rule prefers them.
    pub const SIMPLEST_FIRST: [CorrectionKind; 3] = [
        CorrectionKind::None,
        CorrectionKind::Bias,
        CorrectionKind::Linear,
    ];

    /// Each network's squared error (ms²) when predicted from its table sum by this correction fitted on
    /// the other networks (leave-one-out); infinite where it cannot be fitted.
    pub fn held_out_squared_errors(self, table_sums: &[f64], measured: &[f64]) -> Vec<f64> {
        use crate::metrics::{fit_line, leave_one_out_squared_errors, mean_difference};
        match self {
            CorrectionKind::None => {
                leave_one_out_squared_errors(table_sums, measured, |_, _, x| Some(x))
            }
            CorrectionKind::Bias => {
                leave_one_out_squared_errors(table_sums, measured, |xs, ys, x| {
                    Some(x + mean_difference(ys, xs))
                })
            }
            CorrectionKind::Linear => {
                leave_one_out_squared_errors(table_sums, measured, |xs, ys, x| {
                    fit_line(xs, ys).map(|(a, b)| a * x + b)
                })
            }
        }
    }
}

/// Leave-one-out RMSE of each correction over the calibration networks, ms: what the choice was made on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldOutRmse {
    /// The plain table sum.
    pub none_ms: f64,
    /// Table sum + B.
    pub bias_ms: f64,
    /// The line (infinite below 3 networks).
    pub linear_ms: f64,
}

/// The bias term `B = mean(measured - table sum)` over M sampled networks (paper Eq. 3), and a fitted linear
/// correction over the same networks; the one in use is chosen among no correction, B and the line by
/// leave-one-out error and the one-standard-error rule ([`Calibration::from_samples`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// B in ms.
    pub bias_ms: f64,
    /// Least-squares `measured = scale * table_sum + offset` over the same samples (`None` below 3 samples).
    #[serde(default)]
    pub linear: Option<Correction>,
    /// The correction predictions use.
    #[serde(default)]
    pub correction: CorrectionKind,
    /// The leave-one-out errors the choice was made on (absent in calibrations made before they were
    /// kept, which chose the lowest error without the one-standard-error rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_rmse: Option<HeldOutRmse>,
    /// Seed the architectures were drawn with.
    pub seed: u64,
    /// How many networks were asked for (the calibration is complete when `samples` has that many).
    pub requested: usize,
    /// The networks and their measurements (M = its length).
    pub samples: Vec<NetworkSample>,
    /// The reference network's timings while the networks were measured (the samples' `group` index
    /// into it; `None` for a table without a reference network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::drift::DriftTrace>,
}

impl Calibration {
    /// A calibration from measured samples (normalised for drift when they carry raw values): B and the
    /// linear fit. `correction` is the simplest of no correction, B and the line whose mean squared
    /// leave-one-out error over these samples is within one standard error of the lowest
    /// ([`hsconas_foundation::stats::simplest_within_one_standard_error`]): a fitted correction is used
    /// only when it predicts held-out networks clearly better than the simpler ones, since a few
    /// networks measured during a drift or with noise would otherwise move the model for good. B when
    /// nothing can be judged (under two samples).
    pub fn from_samples(seed: u64, requested: usize, samples: Vec<NetworkSample>) -> Calibration {
        let sums: Vec<f64> = samples.iter().map(|s| s.table_sum_ms).collect();
        let measured: Vec<f64> = samples.iter().map(|s| s.measured_ms).collect();
        let bias_ms = crate::metrics::mean_difference(&measured, &sums);
        let linear = crate::metrics::fit_line(&sums, &measured)
            .map(|(scale, offset_ms)| Correction { scale, offset_ms });
        let errors: Vec<Vec<f64>> = CorrectionKind::SIMPLEST_FIRST
            .iter()
            .map(|kind| kind.held_out_squared_errors(&sums, &measured))
            .collect();
        let correction = hsconas_foundation::stats::simplest_within_one_standard_error(&errors)
            .map_or(CorrectionKind::Bias, |i| CorrectionKind::SIMPLEST_FIRST[i]);
        let rmse = |e: &Vec<f64>| (e.iter().sum::<f64>() / e.len() as f64).sqrt();
        let held_out_rmse = (!samples.is_empty()).then(|| HeldOutRmse {
            none_ms: rmse(&errors[0]),
            bias_ms: rmse(&errors[1]),
            linear_ms: rmse(&errors[2]),
        });
        Calibration {
            bias_ms,
            linear,
            correction,
            held_out_rmse,
            seed,
            requested,
            samples,
            trace: None,
        }
    }

    /// The correction in use.
    pub fn active(&self) -> Correction {
        match (self.correction, self.linear) {
            (CorrectionKind::Linear, Some(fit)) => fit,
            (CorrectionKind::None, _) => Correction::NONE,
            _ => Correction::bias(self.bias_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch() -> Arch {
        vec!["shuffle3:0.5"; 20]
            .join(",")
            .parse()
            .expect("an architecture")
    }

    fn samples(measured: impl Fn(usize, f64) -> f64) -> Vec<NetworkSample> {
        (0..12)
            .map(|i| {
                let sum = 0.5 + 0.05 * i as f64;
                NetworkSample {
                    arch: arch(),
                    measured_ms: measured(i, sum),
                    table_sum_ms: sum,
                    raw_ms: None,
                    group: None,
                }
            })
            .collect()
    }

    /// 50 networks whose table sums are right, measured in five groups of ten while the device ran at
    /// `drift[group]` times its speed (a drift the reference did not remove), with `noise` relative
    /// measurement noise.
    fn measured_during_a_drift(drift: [f64; 5], noise: f64) -> Vec<NetworkSample> {
        (0..50)
            .map(|i| {
                let sum = 0.4 + 0.8 * (i as f64 * 0.618_033_988_7).fract();
                let wobble = 1.0 + noise * (i as f64 * 12.9898 + 1.0).sin();
                NetworkSample {
                    arch: arch(),
                    measured_ms: sum * drift[i / 10] * wobble,
                    table_sum_ms: sum,
                    raw_ms: None,
                    group: Some(i / 10),
                }
            })
            .collect()
    }

    /// 1% slower in two of five groups, 1.5% noise: B has the lower leave-one-out error (it fits the
    /// drift), but not by one standard error, so the right table stays in use.
    #[test]
    fn a_drift_during_calibration_leaves_a_right_table_uncorrected() {
        let calibration = Calibration::from_samples(
            1,
            50,
            measured_during_a_drift([1.0, 1.0, 1.01, 1.01, 1.0], 0.015),
        );
        let errors = calibration.held_out_rmse.expect("errors kept");
        assert!(errors.bias_ms < errors.none_ms, "{errors:?}");
        assert_eq!(calibration.correction, CorrectionKind::None, "{errors:?}");
        assert_eq!(calibration.active(), Correction::NONE);
    }

    /// 4% slower in two groups, 0.5% noise: B is clearly better than nothing; the line beats B by less
    /// than one standard error, so B is used.
    #[test]
    fn a_line_ahead_by_noise_gives_way_to_b() {
        let calibration = Calibration::from_samples(
            1,
            50,
            measured_during_a_drift([1.0, 1.0, 1.04, 1.04, 1.0], 0.005),
        );
        let errors = calibration.held_out_rmse.expect("errors kept");
        assert!(errors.linear_ms < errors.bias_ms, "{errors:?}");
        assert_eq!(calibration.correction, CorrectionKind::Bias, "{errors:?}");
    }

    /// Clear cases: an offset gives B, a scale the line, a table already right on average nothing.
    #[test]
    fn the_correction_that_predicts_held_out_networks_clearly_better_is_chosen() {
        let offset =
            Calibration::from_samples(1, 12, samples(|i, s| s + 0.1 + 0.001 * (i % 2) as f64));
        assert_eq!(offset.correction, CorrectionKind::Bias);
        assert!((offset.active().offset_ms - 0.1005).abs() < 1e-9);
        let scaled = Calibration::from_samples(1, 12, samples(|_, s| 1.2 * s - 0.05));
        assert_eq!(scaled.correction, CorrectionKind::Linear);
        // Already right on average: fitting B only adds the noise of the other networks' mean.
        let none = Calibration::from_samples(
            1,
            12,
            samples(|i, s| s + if i % 2 == 0 { 0.01 } else { -0.01 }),
        );
        assert_eq!(none.correction, CorrectionKind::None);
        assert_eq!(none.active(), Correction::NONE);
    }
}
