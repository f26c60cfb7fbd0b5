//! A transfer refined by profiling pieces (`hsconas profile --transfer-from ... --profile-pieces N`, issue
//! 42 item 3): when the networks alone leave the transfer's error above what the user wants,
//! the pieces that matter most are profiled on this device
//! ([`hsconas_devices::transfer_refine::refine`] chooses them and refits after each round), as `hsconas
//! profile` measures pieces: the table's protocol, in interleaved groups with the transfer's reference
//! network, normalised for drift. Shapes not yet profiled take the ratios measured on their kin
//! ([`Unprofiled::KinRatios`]): they owe nothing to the networks. The rounds stop on the refit's error
//! on the last network round's networks, which no refit of the piece rounds sees. The reference's state
//! is re-read from the whole trace (networks and pieces) after each group, so the pieces are normalised
//! to nearly, not exactly, the networks' state: the refit's factors absorb a common difference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hsconas_devices::transfer::{MeasuredNetwork, TransferFit};
use hsconas_devices::transfer_refine::{refine, Refinement, Unprofiled};
use hsconas_devices::LatencyTable;
use hsconas_models::build::Piece;

use super::measurer::Measurer;
use super::profiling::{measure_pieces, PieceMeasuring};
use super::reference::ReferenceModel;
use super::transfer::TransferJob;
use crate::LatencyError;

/// The checkpoint of the piece rounds: a partial table of the pieces profiled so far.
pub(crate) fn pieces_checkpoint(out: &Path) -> PathBuf {
    super::networks::checkpoint_path(out, "transfer-pieces")
}

/// Profiles up to `job.profile_pieces` pieces with `measurer` and refits the transfer `fit` of `source`
/// on the first of `networks` after each round, stopping early when `job.until`'s tolerance is met on
/// the second (networks no refit sees; when empty, by the refit's leave-one-out error). `table` is the
/// table in the making (its provenance, and the reference network the networks were measured with).
/// Each group of pieces is saved to [`pieces_checkpoint`] as it is measured, and a rerun resumes it.
pub(crate) fn refine_with_pieces(
    job: &TransferJob,
    source: &LatencyTable,
    table: &LatencyTable,
    (networks, check): (&[MeasuredNetwork], &[MeasuredNetwork]),
    fit: TransferFit,
    measurer: &Measurer,
    out: &Path,
) -> Result<Refinement, LatencyError> {
    let config = job.profile.net_config(job.classes);
    let checkpoint = pieces_checkpoint(out);
    let mut profiled = resume(table, &checkpoint)?;
    let mut reference = ReferenceModel::of_table(&profiled, true)?;
    let tolerance = job.until.map(|t| t.rmspe_percent);
    refine(
        source,
        (networks, check),
        fit,
        job.profile_pieces,
        tolerance,
        Unprofiled::KinRatios,
        |todo: &[Piece]| {
            if !todo.is_empty() {
                tracing::info!(
                    "{} pieces profiled: profiling {} more",
                    profiled.entries.len(),
                    todo.len()
                );
            }
            let how = PieceMeasuring {
                config: &config,
                batch: job.profile.batch,
                group: job.group,
                int8: None,
                drift_model: job.drift_model,
                progress: job.progress,
            };
            measure_pieces(
                &mut profiled,
                todo,
                &how,
                measurer,
                reference.as_mut(),
                &checkpoint,
            )?;
            measured_pieces(&profiled)
        },
    )
}

/// The partial table of profiled pieces to continue: the checkpoint when it belongs to this transfer (the
/// same table date), else none yet (no entries, the networks' reference network).
fn resume(table: &LatencyTable, checkpoint: &Path) -> Result<LatencyTable, LatencyError> {
    if checkpoint.exists() {
        let saved = LatencyTable::load(checkpoint)?;
        if saved.provenance.date == table.provenance.date {
            tracing::info!(
                "resuming {}: {} pieces already profiled",
                checkpoint.display(),
                saved.entries.len()
            );
            return Ok(saved);
        }
        return Err(LatencyError::Resume {
            path: checkpoint.to_path_buf(),
            message: "holds pieces profiled for another transfer; delete it".into(),
        });
    }
    let mut empty = table.clone();
    empty.entries.clear();
    Ok(empty)
}

/// The profiled pieces' latencies (normalised for drift), by key.
fn measured_pieces(profiled: &LatencyTable) -> Result<BTreeMap<String, f64>, LatencyError> {
    profiled
        .entries
        .keys()
        .map(|key| {
            let piece: Piece = key.parse().map_err(|e| {
                LatencyError::Invalid(format!("the pieces' checkpoint holds '{key}': {e}"))
            })?;
            Ok((key.clone(), profiled.entry_ms(&piece)?))
        })
        .collect()
}
