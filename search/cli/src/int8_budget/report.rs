//! What `hsconas export int8-budget` reports: `int8-budget.json` and the lines printed for people.

use std::path::{Path, PathBuf};

use hsconas_foundation::outln;
use serde::Serialize;

use super::{MODEL_FILE, REPORT_FILE};

/// Validation and test top-1 of one version of the network, percent.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scores {
    /// On the validation split (what the choices use).
    pub val_top1: f64,
    /// On the test split (`None`: the data has none).
    pub test_top1: Option<f64>,
}

/// One marked layer's sensitivity: the network with only this layer in INT8.
#[derive(Debug, Clone, Serialize)]
pub struct Sensitivity {
    /// 1-based layer.
    pub layer: usize,
    /// Its block, e.g. `shuffle5:1.0`.
    pub block: String,
    /// Validation top-1 with only this layer in INT8, percent.
    pub val_top1: f64,
    /// FP32 validation top-1 minus `val_top1`, points.
    pub drop: f64,
}

/// One layer returned to FP32 and what the network then scored.
#[derive(Debug, Clone, Serialize)]
pub struct Returned {
    /// 1-based layer.
    pub layer: usize,
    /// Validation top-1 with the layers still marked in INT8, percent.
    pub val_top1: f64,
    /// FP32 validation top-1 minus `val_top1`, points.
    pub loss: f64,
}

/// Latency of the network as marked and as kept, on the table's device.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyChange {
    /// The table.
    pub table: PathBuf,
    /// Predicted for the architecture as marked, ms.
    pub marked_predicted_ms: f64,
    /// Predicted for the architecture kept, ms.
    pub kept_predicted_ms: f64,
    /// Measured (with --measure), ms: as marked, as kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_ms: Option<[f64; 2]>,
}

/// What `hsconas export int8-budget` did: `int8-budget.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetReport {
    /// The trained network's directory.
    pub weights: PathBuf,
    /// The architecture as trained (its INT8 marks as chosen).
    pub marked_arch: String,
    /// The architecture kept: the same blocks, the returned layers in FP32.
    pub kept_arch: String,
    /// `--max-int8-loss`, points of validation top-1.
    pub max_int8_loss: f64,
    /// Whether the network kept loses at most the budget on the validation split (with every marked
    /// layer returned it is the FP32 network: loss 0).
    pub within_budget: bool,
    /// The FP32 network.
    pub fp32: Scores,
    /// Every marked layer in INT8.
    pub marked: Scores,
    /// The network kept.
    pub kept: Scores,
    /// Each marked layer's sensitivity, most sensitive first.
    pub sensitivity: Vec<Sensitivity>,
    /// The layers returned to FP32, in order.
    pub returned: Vec<Returned>,
    /// The latency the change costs (with --table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyChange>,
    /// Images: validation, test, calibration.
    pub images: [usize; 3],
    /// INT8 settings: flavour, weight range, calibration method.
    pub int8: [String; 3],
    /// The runtime that evaluated every model.
    pub engine: String,
}

/// The report as lines for people.
pub(super) fn print(r: &BudgetReport, out: &Path) -> anyhow::Result<()> {
    let test = |s: &Scores| {
        s.test_top1
            .map_or(String::new(), |t| format!(", test {t:.2}%"))
    };
    outln!(
        "FP32        validation {:.2}%{}",
        r.fp32.val_top1,
        test(&r.fp32)
    )?;
    outln!(
        "as marked   validation {:.2}%{} ({} layers INT8: loss {:.2} points)",
        r.marked.val_top1,
        test(&r.marked),
        r.sensitivity.len(),
        r.fp32.val_top1 - r.marked.val_top1
    )?;
    outln!(
        "sensitivity (change of validation top-1 with only that layer in INT8; most sensitive first):"
    )?;
    for s in &r.sensitivity {
        outln!(
            "  layer {:>2} {:<14} {:+.2} points",
            s.layer,
            s.block,
            -s.drop
        )?;
    }
    if r.returned.is_empty() {
        outln!(
            "within the budget of {} points: no layer returned to FP32",
            r.max_int8_loss
        )?;
    }
    for ret in &r.returned {
        outln!(
            "returned layer {:>2} to FP32: validation {:.2}% (loss {:.2} points)",
            ret.layer,
            ret.val_top1,
            ret.loss
        )?;
    }
    outln!(
        "kept        validation {:.2}%{}: {}",
        r.kept.val_top1,
        test(&r.kept),
        r.kept_arch
    )?;
    if let Some(l) = &r.latency {
        let measured = l.measured_ms.map_or(String::new(), |[a, b]| {
            format!("; measured {a:.3} -> {b:.3} ms")
        });
        outln!(
            "latency     predicted {:.3} -> {:.3} ms{measured} ({})",
            l.marked_predicted_ms,
            l.kept_predicted_ms,
            l.table.display()
        )?;
    }
    outln!(
        "wrote       {} and {}",
        out.join(MODEL_FILE).display(),
        out.join(REPORT_FILE).display()
    )?;
    Ok(())
}
