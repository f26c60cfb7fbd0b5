//! Validation: K held-out random networks (never calibration ones) measured end to end and compared with
//! every predictor: the plain table sum, the paper's table + B, the fitted corrections (the line, and for
//! mixed-precision tables the INT8 terms), and MACs and parameter counts as proxies (each mapped to
//! milliseconds by a line fitted on the calibration networks).

use crate::LatencyError;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hsconas_devices::drift::normalised_ms;
use hsconas_devices::metrics::{fit_line, PredictorAccuracy};
use hsconas_devices::{
    Calibration, Correction, CorrectionKind, DriftModel, DriftSummary, DriftTrace, LatencyModel,
    LatencyTable, NetworkSample,
};
use hsconas_models::{Arch, NetConfig};
use serde::{Deserialize, Serialize};

use super::clock::utc_now_rfc3339;
use super::measurer::Measurer;
use super::networks::{checkpoint_path, normalise, sample_archs, NetworkRun};
use super::pieces::macs_and_params;

/// Validation settings.
#[derive(Debug, Clone)]
pub struct ValidateJob {
    /// Held-out networks (K).
    pub samples: usize,
    /// Seed they are drawn with.
    pub seed: u64,
    /// Networks measured together in one interleaved group.
    pub group: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Warn or refuse when the device drifts while the networks are measured.
    pub drift: crate::DriftPolicy,
    /// Measure these networks instead of `samples` random held-out ones (the table keeps the summary of
    /// its random validation).
    pub networks: Option<Vec<Arch>>,
}

/// One held-out network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatedNetwork {
    /// Architecture.
    pub arch: Arch,
    /// Measured (the table's statistic), ms; normalised to the table's reference state when `raw_ms`
    /// is given.
    pub measured_ms: f64,
    /// Table sum, ms (normalised entries when the table has a reference network).
    pub table_sum_ms: f64,
    /// MACs per sample.
    pub macs: usize,
    /// Trainable parameters.
    pub params: usize,
    /// The measurement as taken, before drift normalisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_ms: Option<f64>,
    /// The group it was measured in (index into the report's drift trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
}

/// Drift during a validation: the reference network's trace, and every predictor under each way of
/// normalising (the table's own first, `raw` = no normalisation of table or measurements).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftReport {
    /// The reference network.
    pub reference_arch: String,
    /// Its latency in the table's state, ms.
    pub reference_ms: f64,
    /// The table's drift model (the `predictors` of the report use it).
    pub model: DriftModel,
    /// How far the device moved during the validation and from the table's state.
    pub summary: Option<DriftSummary>,
    /// The reference's timings during the validation.
    pub trace: DriftTrace,
    /// Every predictor under each drift model: entries, calibration networks and held-out networks
    /// normalised with that model, the correction re-chosen as `hsconas calibrate` would.
    pub by_model: Vec<DriftModelRows>,
}

/// The predictors under one drift model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftModelRows {
    /// The model (`raw`: nothing normalised).
    pub model: DriftModel,
    /// Its predictors.
    pub predictors: Vec<PredictorRow>,
}

/// One predictor's accuracy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PredictorRow {
    /// Short name (`table`, `table + B`, `table, linear`, for mixed-precision tables `table + INT8` and
    /// `table + INT8/stage`, `MACs`, `params`).
    pub name: String,
    /// How it predicts.
    pub description: String,
    /// Whether `hsconas latency predict` and the search use it.
    pub active: bool,
    /// Its predictions, ms, in network order.
    #[serde(skip)]
    pub predicted_ms: Vec<f64>,
    /// Its accuracy.
    pub accuracy: PredictorAccuracy,
}

/// The validation report (`--out`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The table validated.
    pub table: PathBuf,
    /// Device profile name.
    pub device: String,
    /// When.
    pub date: String,
    /// Statistic of table and measurements.
    pub statistic: hsconas_vocabulary::Statistic,
    /// Seed of the held-out networks.
    pub seed: u64,
    /// Calibration networks (M).
    pub calibration_samples: usize,
    /// B, ms.
    pub bias_ms: f64,
    /// The fitted correction, when there is one.
    pub linear: Option<Correction>,
    /// Every predictor, the active one marked.
    pub predictors: Vec<PredictorRow>,
    /// The held-out networks.
    pub networks: Vec<ValidatedNetwork>,
    /// The reference network's trace and the predictors with and without normalisation (`None` for a
    /// table without a reference network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftReport>,
    /// A mixed-precision table's INT8 speed-ups per layer, operator and channel scale (the per-block
    /// values: `hsconas latency precision --json`); `None` for an FP32 table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<hsconas_devices::Int8Gains>,
}

impl ValidationReport {
    /// The summary stored in the table: everything but the per-network data.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "date": self.date,
            "seed": self.seed,
            "samples": self.networks.len(),
            "predictors": self.predictors,
            "drift": self.drift.as_ref().map(|d| serde_json::json!({
                "summary": d.summary,
                "by_model": d.by_model,
            })),
        })
    }

    /// The row of the predictor in use.
    pub fn active(&self) -> Option<&PredictorRow> {
        self.predictors.iter().find(|p| p.active)
    }
}

/// The report from measured held-out networks (pure: no measurement). `trace` is the reference
/// network's trace during their measurement (the networks' `group` index into it).
pub fn report(
    table: &LatencyTable,
    table_path: &Path,
    seed: u64,
    networks: Vec<ValidatedNetwork>,
    trace: Option<DriftTrace>,
) -> Result<ValidationReport, LatencyError> {
    let calibration = table.calibration.as_ref().ok_or_else(|| {
        LatencyError::Invalid(
            "the table is not calibrated yet: run `hsconas calibrate` first".into(),
        )
    })?;
    let config = table.provenance.net_config();
    let predictors = predictor_rows(calibration, &config, &networks)?;
    let drift = match (&table.reference, trace) {
        (Some(reference), Some(trace)) => {
            let mut by_model = Vec::new();
            for model in drift_models(reference.model) {
                by_model.push(DriftModelRows {
                    model,
                    predictors: rows_under(table, calibration, &networks, &trace, model)?,
                });
            }
            Some(DriftReport {
                reference_arch: reference.arch.clone(),
                reference_ms: reference.latency_ms,
                model: reference.model,
                summary: trace.summary(reference.model, reference.latency_ms),
                trace,
                by_model,
            })
        }
        _ => None,
    };
    Ok(ValidationReport {
        table: table_path.to_path_buf(),
        device: table.provenance.device.clone(),
        date: utc_now_rfc3339(),
        statistic: table.statistic,
        seed,
        calibration_samples: calibration.samples.len(),
        bias_ms: calibration.bias_ms,
        linear: calibration.linear,
        predictors,
        networks,
        drift,
        int8: match table.is_mixed() {
            true => Some(hsconas_devices::Int8Gains {
                blocks: Vec::new(),
                ..hsconas_devices::int8_gains(table)?
            }),
            false => None,
        },
    })
}

/// The table's own model first, then the others compared with it.
fn drift_models(own: DriftModel) -> Vec<DriftModel> {
    let mut models = vec![own];
    for m in [
        DriftModel::Raw,
        DriftModel::Ratio { window: 1 },
        DriftModel::Ratio { window: 5 },
        DriftModel::Linear,
    ] {
        if !models.contains(&m) {
            models.push(m);
        }
    }
    models
}

/// Every predictor with the table's entries, the calibration networks and the held-out networks
/// normalised under `model` (each from its raw values and trace), the correction chosen again.
fn rows_under(
    table: &LatencyTable,
    calibration: &Calibration,
    networks: &[ValidatedNetwork],
    trace: &DriftTrace,
    model: DriftModel,
) -> Result<Vec<PredictorRow>, LatencyError> {
    let mut table = table.clone();
    if let Some(r) = table.reference.as_mut() {
        r.model = model;
    }
    let sums = LatencyModel::new(&table, Correction::NONE)?;
    let with_sums: Vec<NetworkSample> = calibration
        .samples
        .iter()
        .map(|s| NetworkSample {
            table_sum_ms: sums.table_sum_ms(&s.arch),
            ..s.clone()
        })
        .collect();
    let samples = normalise(&table, with_sums, calibration.trace.as_ref());
    let recalibrated = Calibration::from_samples(calibration.seed, calibration.requested, samples);
    let factors = table
        .reference
        .as_ref()
        .map(|r| r.factors_of(trace))
        .unwrap_or_default();
    let networks: Vec<ValidatedNetwork> = networks
        .iter()
        .map(|n| ValidatedNetwork {
            measured_ms: normalised_ms(n.measured_ms, n.raw_ms, n.group, &factors),
            table_sum_ms: sums.table_sum_ms(&n.arch),
            ..n.clone()
        })
        .collect();
    predictor_rows(&recalibrated, &table.provenance.net_config(), &networks)
}

/// Every predictor (table sum, + B, the line, MACs, params) against the networks' measurements.
fn predictor_rows(
    calibration: &Calibration,
    config: &NetConfig,
    networks: &[ValidatedNetwork],
) -> Result<Vec<PredictorRow>, LatencyError> {
    let measured: Vec<f64> = networks.iter().map(|n| n.measured_ms).collect();
    let sums: Vec<f64> = networks.iter().map(|n| n.table_sum_ms).collect();
    let mut rows = Vec::new();
    let mut push = |name: &str, description: String, active: bool, predicted: Vec<f64>| {
        rows.push(PredictorRow {
            name: name.into(),
            description,
            active,
            accuracy: PredictorAccuracy::of(&predicted, &measured),
            predicted_ms: predicted,
        });
    };
    push(
        "table",
        "sum of the table entries".into(),
        calibration.correction == CorrectionKind::None,
        sums.clone(),
    );
    let b = calibration.bias_ms;
    push(
        "table + B",
        format!(
            "table sum + B, B = {b:.4} ms over {} networks (paper Eq. 3)",
            calibration.samples.len()
        ),
        calibration.correction == CorrectionKind::Bias,
        sums.iter().map(|s| s + b).collect(),
    );
    if let Some(fit) = calibration.linear {
        push(
            "table, linear",
            format!(
                "{:.4} x table sum + {:.4} ms, least squares over the calibration networks",
                fit.scale, fit.offset_ms
            ),
            calibration.correction == CorrectionKind::Linear,
            predict_all(&fit, networks),
        );
    }
    for (name, kind, fit) in [
        (
            "table + INT8",
            CorrectionKind::Int8Count,
            calibration.int8_count,
        ),
        (
            "table + INT8/stage",
            CorrectionKind::Int8Stages,
            calibration.int8_stages,
        ),
    ] {
        if let Some(fit) = fit {
            let [s1, s2, s3, s4] = fit.int8_ms_per_stage;
            let terms = if kind == CorrectionKind::Int8Count {
                format!("{s1:+.4} ms per INT8 layer")
            } else {
                format!("{s1:+.4} / {s2:+.4} / {s3:+.4} / {s4:+.4} ms per INT8 layer of stage 1..4")
            };
            push(
                name,
                format!(
                    "table sum {:+.4} ms {terms}, least squares over the calibration networks",
                    fit.offset_ms
                ),
                calibration.correction == kind,
                predict_all(&fit, networks),
            );
        }
    }
    for (name, pick) in [("MACs", 0usize), ("params", 1usize)] {
        let (slope, intercept) = proxy_fit(calibration, config, pick)?;
        let proxy = |n: &ValidatedNetwork| (if pick == 0 { n.macs } else { n.params }) as f64;
        push(
            name,
            format!("{name} mapped to ms by a line fitted on the calibration networks"),
            false,
            networks
                .iter()
                .map(|n| slope * proxy(n) + intercept)
                .collect(),
        );
    }
    Ok(rows)
}

/// `correction`'s predictions of `networks` from their table sums.
fn predict_all(correction: &Correction, networks: &[ValidatedNetwork]) -> Vec<f64> {
    networks
        .iter()
        .map(|n| correction.predict(n.table_sum_ms, &n.arch))
        .collect()
}

/// Line from MACs (`pick` 0) or params (1) to measured ms over the calibration networks.
fn proxy_fit(
    calibration: &Calibration,
    config: &NetConfig,
    pick: usize,
) -> Result<(f64, f64), LatencyError> {
    let mut x = Vec::with_capacity(calibration.samples.len());
    let mut y = Vec::with_capacity(calibration.samples.len());
    for s in &calibration.samples {
        let (macs, params) = macs_and_params(&s.arch, config)?;
        x.push(if pick == 0 { macs } else { params } as f64);
        y.push(s.measured_ms);
    }
    fit_line(&x, &y).ok_or_else(|| {
        LatencyError::Invalid(
            "the calibration has too few networks to fit a proxy line (need 3)".into(),
        )
    })
}

/// Draws held-out networks, measures them, writes the report to `out` and its summary into the table
/// (saved at `path`).
pub fn validate(
    table: &mut LatencyTable,
    path: &Path,
    measurer: &Measurer,
    job: &ValidateJob,
    out: &Path,
) -> Result<ValidationReport, LatencyError> {
    let calibration = table.calibration.as_ref().ok_or_else(|| {
        LatencyError::Invalid(
            "the table is not calibrated yet: run `hsconas calibrate` first".into(),
        )
    })?;
    let archs = match &job.networks {
        Some(given) => given.clone(),
        None => {
            let exclude: HashSet<Arch> =
                calibration.samples.iter().map(|s| s.arch.clone()).collect();
            sample_archs(job.samples, job.seed, &exclude, table.is_mixed())
        }
    };
    if archs.len() < 2 {
        return Err(LatencyError::Invalid(
            "validation needs at least two networks".into(),
        ));
    }
    let purpose = if job.networks.is_some() {
        "networks"
    } else {
        "validation"
    };
    let run = NetworkRun {
        table,
        measurer,
        purpose,
        seed: job.seed,
        group: job.group,
        checkpoint: checkpoint_path(path, purpose),
        progress: job.progress,
        drift: job.drift,
        new_reference: None,
    };
    let config = table.provenance.net_config();
    let measured = run.measure(&archs)?;
    let networks = measured
        .samples
        .into_iter()
        .map(|s| {
            let (macs, params) = macs_and_params(&s.arch, &config)?;
            Ok(ValidatedNetwork {
                arch: s.arch,
                measured_ms: s.measured_ms,
                table_sum_ms: s.table_sum_ms,
                macs,
                params,
                raw_ms: s.raw_ms,
                group: s.group,
            })
        })
        .collect::<Result<Vec<_>, LatencyError>>()?;
    let report = report(table, path, job.seed, networks, measured.trace)?;
    hsconas_foundation::write_atomic(out, &serde_json::to_vec_pretty(&report)?)?;
    let updated = job.networks.is_none().then(|| {
        let mut updated = table.clone();
        updated.validation = Some(report.summary());
        updated
    });
    if let Some(updated) = &updated {
        updated.save(path)?;
    }
    run.finish()?;
    if let Some(updated) = updated {
        *table = updated;
    }
    Ok(report)
}
