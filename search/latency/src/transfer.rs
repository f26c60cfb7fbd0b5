//! A latency table for this device from another device's table and a few networks measured here end to
//! end (`hsconas profile --transfer-from`, issue 42): the networks are measured like calibration
//! networks, with the default reference network timed in every group (the new table's reference state
//! is the median of that trace, so later jobs normalise for drift against it); the source's entries are
//! rescaled by [`fit_transfer`], whose leave-one-out error is the table's own estimate of its error; and
//! the result is saved as a table like any other, its provenance saying where it came from.

use std::collections::HashSet;
use std::path::Path;

use hsconas_devices::transfer::{
    check_source, fit_transfer, transferred_entries, MeasuredNetwork, TransferError, TransferFit,
    TransferRecord, MIN_NETWORKS,
};
use hsconas_devices::{DeviceProfile, DriftModel, LatencyTable, NetworkSample, REFERENCE_BURST};
use hsconas_vocabulary::ReferenceTiming;

use super::clock::utc_now_rfc3339;
use super::measurer::Measurer;
use super::networks::{
    checkpoint_path, checkpoint_table_date, sample_archs, DriftPolicy, NetworkRun, NewReference,
};
use super::profiling::new_table;
use crate::LatencyError;

/// What to transfer.
#[derive(Debug, Clone)]
pub struct TransferJob {
    /// This device's profile, with the layout and input size of the new table.
    pub profile: DeviceProfile,
    /// Classes of the head's classifier.
    pub classes: usize,
    /// Networks measured here to fit the transfer (N).
    pub samples: usize,
    /// Seed the networks are drawn with.
    pub seed: u64,
    /// Networks measured together in one interleaved group.
    pub group: usize,
    /// Time the reference network in every group and normalise the networks for drift.
    pub reference: bool,
    /// Time it alone before and after each group instead of among the networks.
    pub reference_alone: bool,
    /// How the networks are normalised for drift (recorded in the table).
    pub drift_model: DriftModel,
    /// Warn or refuse when the device drifts while the networks are measured.
    pub drift: DriftPolicy,
    /// Show a progress bar.
    pub progress: bool,
}

/// A transferred table and how it was made.
#[derive(Debug, Clone)]
pub struct Transferred {
    /// The new table (saved).
    pub table: LatencyTable,
    /// The chosen correction and every candidate's held-out error.
    pub fit: TransferFit,
    /// The networks measured here, normalised for drift (raw values beside).
    pub samples: Vec<NetworkSample>,
}

/// Measures `job.samples` networks with `measurer`, fits the transfer of `source` to them and saves the
/// transferred table at `out`. The source must be a complete table of this space at the job's layout
/// (its input size, device, engine and machine may differ: those differences are recorded). An
/// interrupted run resumes its measured networks from `<out>.transfer.partial.json`; an existing `out`
/// is never overwritten.
pub fn transfer_table(
    job: &TransferJob,
    source: &LatencyTable,
    measurer: &Measurer,
    out: &Path,
) -> Result<Transferred, LatencyError> {
    check_source(source, job.profile.layout)?;
    if job.samples < MIN_NETWORKS {
        return Err(TransferError::TooFew {
            needed: MIN_NETWORKS,
            got: job.samples,
        }
        .into());
    }
    if out.exists() {
        return Err(LatencyError::Resume {
            path: out.to_path_buf(),
            message: "holds a table already; a transfer writes a new one: delete it or choose another --out".into(),
        });
    }
    let checkpoint = checkpoint_path(out, "transfer");
    let date = checkpoint_table_date(&checkpoint).unwrap_or_else(utc_now_rfc3339);
    let mut table = new_table(&job.profile, job.classes, measurer, date)?;
    // Until the fit, the source's own values: the measured samples record them as their table sums.
    table.entries = transferred_entries(source, |_| 1.0)?;
    let archs = sample_archs(job.samples, job.seed, &HashSet::new());
    let run = NetworkRun {
        table: &table,
        measurer,
        purpose: "transfer",
        seed: job.seed,
        group: job.group,
        checkpoint,
        progress: job.progress,
        drift: job.drift,
        new_reference: job.reference.then_some(NewReference {
            timing: ReferenceTiming {
                burst: REFERENCE_BURST,
                alone: job.reference_alone,
            },
            model: job.drift_model,
        }),
    };
    let measured = run.measure(&archs)?;
    let networks: Vec<MeasuredNetwork> = measured
        .samples
        .iter()
        .map(|s| MeasuredNetwork {
            arch: s.arch.clone(),
            measured_ms: s.measured_ms,
        })
        .collect();
    let fit = fit_transfer(source, &networks)?;
    let mut transferred = table.clone();
    transferred.entries = transferred_entries(source, |p| fit.factor_of(p))?;
    transferred.reference = measured.reference;
    if let Some(backend) = measured.backend {
        transferred.provenance.backend_version = backend;
    }
    let source_differences = differences(source, &transferred, &job.profile);
    transferred.provenance.transfer = Some(TransferRecord {
        source_device: source.provenance.device.clone(),
        source_cpu: source.provenance.fingerprint.cpu_model.clone(),
        source_date: source.provenance.date.clone(),
        source_input_size: source.provenance.input_size,
        networks: networks.len(),
        seed: job.seed,
        level: fit.level,
        penalty: fit.penalty,
        held_out_rmspe: fit.held_out_rmspe,
        foreign_source: !source_differences.is_empty(),
        source_differences,
    });
    transferred.save(out)?;
    run.finish()?;
    Ok(Transferred {
        table: transferred,
        fit,
        samples: measured.samples,
    })
}

/// How the source differs from the new table: its profile's settings (device name, engine, threads,
/// input size, ...), its classes, and the machine it was measured on.
fn differences(source: &LatencyTable, new: &LatencyTable, profile: &DeviceProfile) -> Vec<String> {
    let mut diffs: Vec<String> = source
        .check_matches(profile)
        .err()
        .map(|d| {
            d.split("; ")
                .map(|s| {
                    s.replace("table has", "the source has")
                        .replace("profile has", "this table has")
                        .replace("profile allows", "this table allows")
                })
                .collect()
        })
        .unwrap_or_default();
    let (s, n) = (&source.provenance, &new.provenance);
    if s.classes != n.classes {
        diffs.push(format!(
            "classes: the source has {}, this table has {}",
            s.classes, n.classes
        ));
    }
    if s.fingerprint.cpu_model != n.fingerprint.cpu_model
        || s.fingerprint.hostname != n.fingerprint.hostname
    {
        diffs.push(format!(
            "machine: the source measured on {} ({}), this table on {} ({})",
            s.fingerprint.hostname,
            s.fingerprint.cpu_model,
            n.fingerprint.hostname,
            n.fingerprint.cpu_model
        ));
    }
    diffs
}
