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
    /// Measured latency (the table's statistic), ms.
    pub measured_ms: f64,
    /// Sum of the table's entries for it, ms.
    pub table_sum_ms: f64,
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
}

/// The bias term `B = mean(measured - table sum)` over M sampled networks (paper Eq. 3), and a fitted linear
/// correction over the same networks.
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
}

impl Calibration {
    /// A calibration from measured samples: B and the linear fit. `correction` picks the one that
    /// predicts held-out samples better in leave-one-out cross-validation over these samples.
    pub fn from_samples(seed: u64, requested: usize, samples: Vec<NetworkSample>) -> Calibration {
        let sums: Vec<f64> = samples.iter().map(|s| s.table_sum_ms).collect();
        let measured: Vec<f64> = samples.iter().map(|s| s.measured_ms).collect();
        let bias_ms = crate::metrics::mean_difference(&measured, &sums);
        let linear = crate::metrics::fit_line(&sums, &measured)
            .map(|(scale, offset_ms)| Correction { scale, offset_ms });
        let correction = match linear {
            Some(_)
                if crate::metrics::loo_rmse_linear(&sums, &measured)
                    < crate::metrics::loo_rmse_bias(&sums, &measured) =>
            {
                CorrectionKind::Linear
            }
            _ => CorrectionKind::Bias,
        };
        Calibration {
            bias_ms,
            linear,
            correction,
            seed,
            requested,
            samples,
        }
    }

    /// The correction in use.
    pub fn active(&self) -> Correction {
        match (self.correction, self.linear) {
            (CorrectionKind::Linear, Some(fit)) => fit,
            _ => Correction::bias(self.bias_ms),
        }
    }
}
