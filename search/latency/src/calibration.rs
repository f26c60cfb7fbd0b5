//! Calibration (paper Eq. 3): M random networks measured end to end; `B = mean(measured - table sum)`, and
//! a least-squares line over the same networks; the simplest of no correction, B and the line within one
//! standard error of the lowest leave-one-out error is used (`Calibration::from_samples`).

use crate::LatencyError;
use std::collections::HashSet;
use std::path::Path;

use hsconas_devices::{Calibration, LatencyTable};

use super::measurer::Measurer;
use super::networks::{checkpoint_path, sample_archs, NetworkRun};

/// Calibration settings.
#[derive(Debug, Clone)]
pub struct CalibrateJob {
    /// Networks to measure (M).
    pub samples: usize,
    /// Seed the architectures are drawn with.
    pub seed: u64,
    /// Networks measured together in one interleaved group.
    pub group: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Warn or refuse when the device drifts while the networks are measured.
    pub drift: crate::DriftPolicy,
}

/// Measures the networks, stores the calibration in the table and saves it at `path`.
pub fn calibrate(
    table: &mut LatencyTable,
    path: &Path,
    measurer: &Measurer,
    job: &CalibrateJob,
) -> Result<(), LatencyError> {
    if job.samples == 0 {
        return Err(LatencyError::Invalid(
            "calibration needs at least one network".into(),
        ));
    }
    let archs = sample_archs(job.samples, job.seed, &HashSet::new(), table.is_mixed());
    let run = NetworkRun {
        table,
        measurer,
        purpose: "calibration",
        seed: job.seed,
        group: job.group,
        checkpoint: checkpoint_path(path, "calibration"),
        progress: job.progress,
        drift: job.drift,
        new_reference: None,
    };
    let measured = run.measure(&archs)?;
    let mut calibration = Calibration::from_samples(job.seed, job.samples, measured.samples);
    calibration.trace = measured.trace;
    let mut updated = table.clone();
    updated.calibration = Some(calibration);
    // A new calibration makes an earlier validation stale.
    updated.validation = None;
    updated.save(path)?;
    run.finish()?;
    *table = updated;
    Ok(())
}
