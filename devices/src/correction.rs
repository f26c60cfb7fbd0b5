//! How table sums become predictions: the correction (`scale * table sum + offset`), and the calibration
//! that fits it on networks measured end to end (paper Eq. 3 and a linear fit).

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
    /// The plain table sum: chosen when neither correction predicts held-out calibration networks better
    /// (e.g. once drift is removed, a table can need none).
    None,
}

/// The bias term `B = mean(measured - table sum)` over M sampled networks (paper Eq. 3), and a fitted linear
/// correction over the same networks; the one in use is chosen by cross-validation among B, the line and
/// no correction.
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
    /// linear fit. `correction` picks, among B, the line and no correction, the one that predicts
    /// held-out samples best in leave-one-out cross-validation over these samples.
    pub fn from_samples(seed: u64, requested: usize, samples: Vec<NetworkSample>) -> Calibration {
        let sums: Vec<f64> = samples.iter().map(|s| s.table_sum_ms).collect();
        let measured: Vec<f64> = samples.iter().map(|s| s.measured_ms).collect();
        let bias_ms = crate::metrics::mean_difference(&measured, &sums);
        let linear = crate::metrics::fit_line(&sums, &measured)
            .map(|(scale, offset_ms)| Correction { scale, offset_ms });
        let bias = crate::metrics::loo_rmse_bias(&sums, &measured);
        let line = linear.map_or(f64::INFINITY, |_| {
            crate::metrics::loo_rmse_linear(&sums, &measured)
        });
        let none = crate::metrics::loo_rmse_none(&sums, &measured);
        let correction = if line < bias && line < none {
            CorrectionKind::Linear
        } else if none < bias {
            CorrectionKind::None
        } else {
            CorrectionKind::Bias
        };
        Calibration {
            bias_ms,
            linear,
            correction,
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

    fn samples(measured: impl Fn(usize, f64) -> f64) -> Vec<NetworkSample> {
        let arch: Arch = vec!["shuffle3:0.5"; 20]
            .join(",")
            .parse()
            .expect("an architecture");
        (0..12)
            .map(|i| {
                let sum = 0.5 + 0.05 * i as f64;
                NetworkSample {
                    arch: arch.clone(),
                    measured_ms: measured(i, sum),
                    table_sum_ms: sum,
                    raw_ms: None,
                    group: None,
                }
            })
            .collect()
    }

    /// Cross-validation picks among B, the line and no correction.
    #[test]
    fn the_correction_that_predicts_held_out_networks_best_is_chosen() {
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
