//! Validation: K held-out random networks (never calibration ones) measured end to end and compared with
//! every predictor: the plain table sum, the paper's table + B, the fitted correction, and MACs and
//! parameter counts as proxies (each mapped to milliseconds by a line fitted on the calibration networks).

use crate::LatencyError;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hsconas_devices::metrics::{fit_line, PredictorAccuracy};
use hsconas_devices::{Calibration, Correction, CorrectionKind, LatencyTable};
use hsconas_models::{Arch, NetConfig};
use serde::{Deserialize, Serialize};

use super::clock::utc_now_rfc3339;
use super::measurer::Measurer;
use super::networks::{checkpoint_path, sample_archs, NetworkRun};
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
    /// Measure these networks instead of `samples` random held-out ones (the table keeps the summary of
    /// its random validation).
    pub networks: Option<Vec<Arch>>,
}

/// One held-out network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatedNetwork {
    /// Architecture.
    pub arch: Arch,
    /// Measured (the table's statistic), ms.
    pub measured_ms: f64,
    /// Table sum, ms.
    pub table_sum_ms: f64,
    /// MACs per sample.
    pub macs: usize,
    /// Trainable parameters.
    pub params: usize,
}

/// One predictor's accuracy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PredictorRow {
    /// Short name (`table`, `table + B`, `table, linear`, `MACs`, `params`).
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
    pub statistic: hsconas_devices::TableStatistic,
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
}

impl ValidationReport {
    /// The summary stored in the table: everything but the per-network data.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "date": self.date,
            "seed": self.seed,
            "samples": self.networks.len(),
            "predictors": self.predictors,
        })
    }

    /// The row of the predictor in use.
    pub fn active(&self) -> Option<&PredictorRow> {
        self.predictors.iter().find(|p| p.active)
    }
}

/// The report from measured held-out networks (pure: no measurement).
pub fn report(
    table: &LatencyTable,
    table_path: &Path,
    seed: u64,
    networks: Vec<ValidatedNetwork>,
) -> Result<ValidationReport, LatencyError> {
    let calibration = table.calibration.as_ref().ok_or_else(|| {
        LatencyError::Invalid(
            "the table is not calibrated yet: run `hsconas calibrate` first".into(),
        )
    })?;
    let config = table.provenance.net_config();
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
        false,
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
            sums.iter().map(|s| fit.apply(*s)).collect(),
        );
    }
    for (name, pick) in [("MACs", 0usize), ("params", 1usize)] {
        let (slope, intercept) = proxy_fit(calibration, &config, pick)?;
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
    Ok(ValidationReport {
        table: table_path.to_path_buf(),
        device: table.provenance.device.clone(),
        date: utc_now_rfc3339(),
        statistic: table.statistic,
        seed,
        calibration_samples: calibration.samples.len(),
        bias_ms: b,
        linear: calibration.linear,
        predictors: rows,
        networks,
    })
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
            sample_archs(job.samples, job.seed, &exclude)
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
    };
    let config = table.provenance.net_config();
    let measured = run.measure(&archs)?;
    let networks = measured
        .into_iter()
        .map(|s| {
            let (macs, params) = macs_and_params(&s.arch, &config)?;
            Ok(ValidatedNetwork {
                arch: s.arch,
                measured_ms: s.measured_ms,
                table_sum_ms: s.table_sum_ms,
                macs,
                params,
            })
        })
        .collect::<Result<Vec<_>, LatencyError>>()?;
    let report = report(table, path, job.seed, networks)?;
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
