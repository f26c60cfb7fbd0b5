//! How table sums become predictions: the correction (`scale * table sum + offset`, plus, for
//! mixed-precision tables, milliseconds per INT8 layer of each stage), and the calibration that fits it on
//! networks measured end to end (paper Eq. 3, a line, the INT8 terms) and chooses among them by the
//! one-standard-error rule, so that a correction is used only when it clearly predicts better.

use hsconas_models::{Arch, NetConfig, STAGE_REPEATS};
use hsconas_vocabulary::Precision;
use serde::{Deserialize, Serialize};

/// Stages of the space (four).
pub const STAGES: usize = STAGE_REPEATS.len();

/// How the table sum becomes a prediction: `scale * table_sum + offset`, plus `int8_ms_per_stage[s]`
/// for every INT8 layer in stage `s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    /// Multiplier of the table sum (1 for the paper's bias-only model).
    pub scale: f64,
    /// Added milliseconds (the paper's B when `scale` is 1).
    pub offset_ms: f64,
    /// Milliseconds added for each INT8 layer of each of the four stages: what INT8 blocks cost inside a
    /// network beyond their table entries (measured on mixed networks; all 0 without INT8 terms).
    #[serde(default, skip_serializing_if = "no_int8_terms")]
    pub int8_ms_per_stage: [f64; STAGES],
}

fn no_int8_terms(terms: &[f64; STAGES]) -> bool {
    terms.iter().all(|&c| c == 0.0)
}

/// INT8 layers of `arch` in each stage.
pub fn int8_layers_per_stage(arch: &Arch) -> [usize; STAGES] {
    let mut counts = [0; STAGES];
    for (layer, precision) in arch.precisions().iter().enumerate() {
        if *precision == Precision::Int8 {
            counts[NetConfig::stage_of(layer)] += 1;
        }
    }
    counts
}

impl Correction {
    /// No correction: the plain table sum.
    pub const NONE: Correction = Correction {
        scale: 1.0,
        offset_ms: 0.0,
        int8_ms_per_stage: [0.0; STAGES],
    };

    /// The paper's bias term (Eq. 3).
    pub fn bias(bias_ms: f64) -> Correction {
        Correction {
            offset_ms: bias_ms,
            ..Correction::NONE
        }
    }

    /// `scale * table sum + offset`.
    pub fn line(scale: f64, offset_ms: f64) -> Correction {
        Correction {
            scale,
            offset_ms,
            ..Correction::NONE
        }
    }

    /// Whether it adds anything for INT8 layers.
    pub fn has_int8_terms(&self) -> bool {
        !no_int8_terms(&self.int8_ms_per_stage)
    }

    /// The prediction for `arch`, whose table entries sum to `table_sum_ms`.
    #[inline]
    pub fn predict(&self, table_sum_ms: f64, arch: &Arch) -> f64 {
        let base = self.scale * table_sum_ms + self.offset_ms;
        if !self.has_int8_terms() {
            return base;
        }
        base + self.int8_ms(arch)
    }

    /// What the INT8 terms add for `arch`, ms.
    pub fn int8_ms(&self, arch: &Arch) -> f64 {
        int8_layers_per_stage(arch)
            .iter()
            .zip(&self.int8_ms_per_stage)
            .map(|(&n, c)| n as f64 * c)
            .sum()
    }

    /// Every term multiplied by `level` (the device `level` times slower than the correction assumed).
    pub fn scaled(&self, level: f64) -> Correction {
        Correction {
            scale: self.scale * level,
            offset_ms: self.offset_ms * level,
            int8_ms_per_stage: self.int8_ms_per_stage.map(|c| c * level),
        }
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
#[serde(rename_all = "kebab-case")]
pub enum CorrectionKind {
    /// The paper's `table sum + B`.
    #[default]
    Bias,
    /// `scale * table sum + offset`, least squares over the calibration networks.
    Linear,
    /// The plain table sum: kept when no correction predicts held-out calibration networks clearly better
    /// (e.g. once drift is removed, a table can need none).
    None,
    /// Mixed-precision tables: `table sum + offset + c * INT8 layers`, least squares.
    Int8Count,
    /// Mixed-precision tables: `table sum + offset + sum over stages of c_s * INT8 layers in stage s`,
    /// least squares (INT8 blocks of early stages cost more in a network than their entries say).
    Int8Stages,
}

impl CorrectionKind {
    /// From the simplest to the richest (nothing fitted, one offset, a line): the order in which the
    /// one-standard-error rule prefers them for networks without INT8 layers.
    pub const SIMPLEST_FIRST: [CorrectionKind; 3] = [
        CorrectionKind::None,
        CorrectionKind::Bias,
        CorrectionKind::Linear,
    ];

    /// The same with the INT8 terms (2 and 5 coefficients) after them: the candidates when the
    /// calibration networks have INT8 layers.
    pub const SIMPLEST_FIRST_MIXED: [CorrectionKind; 5] = [
        CorrectionKind::None,
        CorrectionKind::Bias,
        CorrectionKind::Linear,
        CorrectionKind::Int8Count,
        CorrectionKind::Int8Stages,
    ];

    /// What it is, in words (`hsconas calibrate` and validation reports).
    pub fn describe(self) -> &'static str {
        match self {
            CorrectionKind::None => "the plain table sum",
            CorrectionKind::Bias => "table sum + B",
            CorrectionKind::Linear => "the linear fit",
            CorrectionKind::Int8Count => "table sum + offset + a term per INT8 layer",
            CorrectionKind::Int8Stages => {
                "table sum + offset + a term per INT8 layer of each stage"
            }
        }
    }

    /// The candidates for these calibration networks: with INT8 terms when any has an INT8 layer.
    pub fn candidates(samples: &[NetworkSample]) -> &'static [CorrectionKind] {
        let mixed = samples
            .iter()
            .any(|s| s.arch.precisions().contains(&Precision::Int8));
        if mixed {
            &Self::SIMPLEST_FIRST_MIXED
        } else {
            &Self::SIMPLEST_FIRST
        }
    }

    /// This correction fitted by least squares on `samples`; `None` where it cannot be (the line below 3
    /// networks or with equal table sums, INT8 terms whose counts do not vary independently).
    pub fn fit(self, samples: &[NetworkSample]) -> Option<Correction> {
        let sums: Vec<f64> = samples.iter().map(|s| s.table_sum_ms).collect();
        let measured: Vec<f64> = samples.iter().map(|s| s.measured_ms).collect();
        match self {
            CorrectionKind::None => Some(Correction::NONE),
            CorrectionKind::Bias => (!samples.is_empty())
                .then(|| Correction::bias(crate::metrics::mean_difference(&measured, &sums))),
            CorrectionKind::Linear => {
                crate::metrics::fit_line(&sums, &measured).map(|(a, b)| Correction::line(a, b))
            }
            CorrectionKind::Int8Count => fit_int8_terms(samples, false),
            CorrectionKind::Int8Stages => fit_int8_terms(samples, true),
        }
    }

    /// Each network's squared error (ms²) when predicted by this correction fitted on the other networks
    /// (leave-one-out); infinite where it cannot be fitted.
    pub fn held_out_squared_errors(self, samples: &[NetworkSample]) -> Vec<f64> {
        if samples.len() < 2 {
            return vec![f64::INFINITY; samples.len()];
        }
        (0..samples.len())
            .map(|i| {
                let others: Vec<NetworkSample> = samples
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, s)| s.clone())
                    .collect();
                let held = &samples[i];
                self.fit(&others).map_or(f64::INFINITY, |c| {
                    (c.predict(held.table_sum_ms, &held.arch) - held.measured_ms).powi(2)
                })
            })
            .collect()
    }
}

/// `measured - table sum = offset + INT8 terms`, least squares: one coefficient for every INT8 layer
/// (`per_stage` false) or one per stage. `None` unless there are more networks than coefficients and
/// the counts vary independently (the design matrix has full column rank).
fn fit_int8_terms(samples: &[NetworkSample], per_stage: bool) -> Option<Correction> {
    let columns = if per_stage { 1 + STAGES } else { 2 };
    if samples.len() <= columns {
        return None;
    }
    let rows: Vec<f64> = samples
        .iter()
        .flat_map(|s| {
            let counts = int8_layers_per_stage(&s.arch).map(|n| n as f64);
            let mut row = vec![1.0];
            if per_stage {
                row.extend(counts);
            } else {
                row.push(counts.iter().sum());
            }
            row
        })
        .collect();
    let x = nalgebra::DMatrix::from_row_slice(samples.len(), columns, &rows);
    let y = nalgebra::DVector::from_iterator(
        samples.len(),
        samples.iter().map(|s| s.measured_ms - s.table_sum_ms),
    );
    let svd = x.svd(true, true);
    let largest = svd.singular_values.max();
    if svd.singular_values.min() <= 1e-9 * largest.max(1.0) {
        return None;
    }
    let beta = svd.solve(&y, 0.0).ok()?;
    let int8_ms_per_stage = if per_stage {
        [beta[1], beta[2], beta[3], beta[4]]
    } else {
        [beta[1]; STAGES]
    };
    Some(Correction {
        scale: 1.0,
        offset_ms: beta[0],
        int8_ms_per_stage,
    })
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
    /// Table sum + offset + INT8 layers' term (calibrations with INT8 layers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_count_ms: Option<f64>,
    /// Table sum + offset + per-stage INT8 terms (calibrations with INT8 layers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_stages_ms: Option<f64>,
}

/// The bias term `B = mean(measured - table sum)` over M sampled networks (paper Eq. 3), a fitted linear
/// correction over the same networks, and, for networks with INT8 layers, the INT8 terms; the one in use
/// is chosen among them by leave-one-out error and the one-standard-error rule
/// ([`Calibration::from_samples`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// B in ms.
    pub bias_ms: f64,
    /// Least-squares `measured = scale * table_sum + offset` over the same samples (`None` below 3 samples).
    #[serde(default)]
    pub linear: Option<Correction>,
    /// Least-squares `measured = table_sum + offset + c * INT8 layers` (`None` without INT8 layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_count: Option<Correction>,
    /// Least-squares `measured = table_sum + offset + sum_s c_s * INT8 layers of stage s` (`None`
    /// without INT8 layers, or when the stages' counts do not vary independently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_stages: Option<Correction>,
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
    /// A calibration from measured samples (normalised for drift when they carry raw values): B, the
    /// linear fit and (networks with INT8 layers) the INT8 terms. `correction` is the simplest of the
    /// candidates ([`CorrectionKind::candidates`]) whose mean squared leave-one-out error over these
    /// samples is within one standard error of the lowest
    /// ([`hsconas_foundation::stats::simplest_within_one_standard_error`]): a fitted correction is used
    /// only when it predicts held-out networks clearly better than the simpler ones, since a few
    /// networks measured during a drift or with noise would otherwise move the model for good. B when
    /// nothing can be judged (under two samples).
    pub fn from_samples(seed: u64, requested: usize, samples: Vec<NetworkSample>) -> Calibration {
        let kinds = CorrectionKind::candidates(&samples);
        let errors: Vec<Vec<f64>> = kinds
            .iter()
            .map(|kind| kind.held_out_squared_errors(&samples))
            .collect();
        let correction = hsconas_foundation::stats::simplest_within_one_standard_error(&errors)
            .map_or(CorrectionKind::Bias, |i| kinds[i]);
        let rmse = |e: &Vec<f64>| (e.iter().sum::<f64>() / e.len() as f64).sqrt();
        let held_out_rmse = (!samples.is_empty()).then(|| HeldOutRmse {
            none_ms: rmse(&errors[0]),
            bias_ms: rmse(&errors[1]),
            linear_ms: rmse(&errors[2]),
            int8_count_ms: errors.get(3).map(rmse),
            int8_stages_ms: errors.get(4).map(rmse),
        });
        let fitted =
            |kind: CorrectionKind| kinds.contains(&kind).then(|| kind.fit(&samples)).flatten();
        Calibration {
            bias_ms: crate::metrics::mean_difference(
                &samples.iter().map(|s| s.measured_ms).collect::<Vec<_>>(),
                &samples.iter().map(|s| s.table_sum_ms).collect::<Vec<_>>(),
            ),
            linear: CorrectionKind::Linear.fit(&samples),
            int8_count: fitted(CorrectionKind::Int8Count),
            int8_stages: fitted(CorrectionKind::Int8Stages),
            correction,
            held_out_rmse,
            seed,
            requested,
            samples,
            trace: None,
        }
    }

    /// The correction in use (B when the chosen fit is missing).
    pub fn active(&self) -> Correction {
        let fitted = match self.correction {
            CorrectionKind::None => Some(Correction::NONE),
            CorrectionKind::Bias => None,
            CorrectionKind::Linear => self.linear,
            CorrectionKind::Int8Count => self.int8_count,
            CorrectionKind::Int8Stages => self.int8_stages,
        };
        fitted.unwrap_or_else(|| Correction::bias(self.bias_ms))
    }
}

#[cfg(test)]
#[path = "correction_tests.rs"]
mod tests;
