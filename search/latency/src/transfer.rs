//! A latency table for this device from another device's table and a few networks measured here end to
//! end (`hsconas profile --transfer-from`, issue 42): the networks are measured like calibration
//! networks, with the default reference network timed in every group (the new table's reference state
//! is the median of that trace, so later jobs normalise for drift against it); the source's entries are
//! rescaled by [`fit_transfer`] (its leave-one-out error over the networks is recorded; with a tolerance,
//! each further round of networks first measures the error of the fit made before it, which decides);
//! and the result is saved as a table like any other, its provenance saying where it came from.

use std::collections::HashSet;
use std::path::Path;

use hsconas_devices::transfer::{
    check_source, fit_transfer, transferred_entries, MeasuredNetwork, TransferError, TransferFit,
    TransferRecord, MIN_NETWORKS,
};
use hsconas_devices::{DeviceProfile, DriftModel, LatencyTable, NetworkSample, REFERENCE_BURST};
use hsconas_vocabulary::{Protocol, ReferenceTiming};

use super::clock::utc_now_rfc3339;
use super::measurer::Measurer;
use super::networks::{
    checkpoint_path, checkpoint_table_date, remove_checkpoint, sample_archs, DriftPolicy,
    NetworkRun, NewReference,
};
use super::profiling::new_table;
use super::transfer_pieces::{pieces_checkpoint, refine_with_pieces};
use crate::LatencyError;
use hsconas_devices::transfer_refine::Refinement;

/// What to transfer.
#[derive(Debug, Clone)]
pub struct TransferJob {
    /// This device's profile, with the layout and input size of the new table.
    pub profile: DeviceProfile,
    /// Classes of the head's classifier.
    pub classes: usize,
    /// Networks measured here to fit the transfer (N), and in every further round.
    pub samples: usize,
    /// Measure rounds of `samples` more networks until the fit's error on a round it had not seen meets
    /// a tolerance.
    pub until: Option<Tolerance>,
    /// Seed the networks are drawn with.
    pub seed: u64,
    /// Networks measured together in one interleaved group.
    pub group: usize,
    /// The protocol recorded as the table's: the one its pieces would be profiled with (the networks are
    /// measured with the measurer's, as calibration measures them).
    pub table_protocol: Protocol,
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
    /// After the networks, profile up to this many pieces of the space, those that matter most first,
    /// refitting after each round (stopping early once the tolerance is met); 0: none
    /// ([`crate::transfer_pieces`]).
    pub profile_pieces: usize,
}

/// When an adaptive transfer stops measuring more networks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// The error wanted (RMSPE, percent) on a round of networks the fit had not seen.
    pub rmspe_percent: f64,
    /// The most networks measured in all.
    pub max_samples: usize,
}

/// One round of an adaptive transfer: the networks and pieces so far, and the fit's errors then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferRound {
    /// Networks the round's fit was fitted on: all measured so far in a network round; in a piece
    /// round, those before the last network round (which judges the piece rounds).
    pub networks: usize,
    /// Pieces profiled so far.
    pub pieces: usize,
    /// The chosen fit's leave-one-out error over the networks it was fitted on, RMSPE percent.
    pub held_out_rmspe: f64,
    /// The error on networks a fit had not seen, RMSPE percent, what a tolerance is judged by: in a
    /// network round, the previous round's fit on this round's networks (measured after it); in a piece
    /// round, the refit on the last network round's networks, held out of the piece rounds' fits.
    /// `None` in the first round (and in piece rounds after a single network round).
    pub checked_rmspe: Option<f64>,
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
    /// Each round's networks and errors (one round without a tolerance).
    pub rounds: Vec<TransferRound>,
    /// Whether the error judged (on unseen networks where a round measured them, else leave-one-out)
    /// met the tolerance (`None` without one).
    pub tolerance_met: Option<bool>,
    /// The pieces profiled after the networks: each one's latency here (normalised for drift), by key.
    pub profiled_pieces: std::collections::BTreeMap<String, f64>,
}

/// Measures `job.samples` networks with `measurer`, fits the transfer of `source` to them and saves the
/// transferred table at `out`; with a tolerance, measures rounds of `job.samples` more (at least one,
/// up to its maximum), each first predicted by the fit made before it, while that error is above the
/// tolerance (every round normalised for drift to the first round's reference state), then,
/// with `job.profile_pieces`, profiles pieces with `piece_measurer` (the table's protocol) and refits
/// ([`crate::transfer_pieces`]). The source must be a complete table of this space at the job's layout
/// (its input size, device, engine and machine may differ: those differences are recorded). An
/// interrupted run resumes its measured networks from `<out>.transfer-<round>.partial.json` and its
/// pieces from `<out>.transfer-pieces.partial.json`; an existing `out` is never overwritten.
pub fn transfer_table(
    job: &TransferJob,
    source: &LatencyTable,
    measurer: &Measurer,
    piece_measurer: Option<&Measurer>,
    out: &Path,
) -> Result<Transferred, LatencyError> {
    check_source(source, job.profile.layout)?;
    if job.profile_pieces > 0 && piece_measurer.is_none() {
        return Err(LatencyError::Invalid(
            "profiling pieces after a transfer needs a measurer with the table's protocol".into(),
        ));
    }
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
    let checkpoint = |round: usize| checkpoint_path(out, &format!("transfer-{round}"));
    let date = checkpoint_table_date(&checkpoint(1)).unwrap_or_else(utc_now_rfc3339);
    let mut table = new_table(
        &job.profile,
        job.classes,
        job.table_protocol.clone(),
        measurer,
        date,
    )?;
    // Until the fit, the source's own values: the measured samples record them as their table sums.
    table.entries = transferred_entries(source, |_, _| 1.0)?;
    let mut samples: Vec<NetworkSample> = Vec::new();
    let mut backend = None;
    let mut rounds = Vec::new();
    let mut wanted = job.samples;
    // With a tolerance, every round after the first is first predicted by the fit in use, which has not
    // seen its networks (the honest check of the leave-one-out estimate, which was optimistic in the
    // measured runs), and the tolerance is judged by that; then the round joins the fit.
    let mut fit: Option<TransferFit> = None;
    let mut previous: Option<(TransferFit, usize)> = None; // the fit before the last round, on how many
    let mut checked: Option<f64> = None;
    let networks = loop {
        let round = rounds.len() + 1;
        // Drawn with one seed, so each round's networks continue the previous rounds' draw.
        let archs = sample_archs(wanted, job.seed, &HashSet::new(), false);
        let run = NetworkRun {
            table: &table,
            measurer,
            purpose: "transfer",
            seed: job.seed,
            group: job.group,
            checkpoint: checkpoint(round),
            progress: job.progress,
            drift: job.drift,
            // The first round times a new reference network; later ones normalise to its state.
            new_reference: job.reference.then_some(NewReference {
                timing: ReferenceTiming {
                    burst: REFERENCE_BURST,
                    alone: job.reference_alone,
                },
                model: job.drift_model,
            }),
        };
        let fitted_on = samples.len();
        let measured = run.measure(&archs[fitted_on..])?;
        if round == 1 {
            table.reference = measured.reference;
        }
        backend = backend.or(measured.backend);
        samples.extend(measured.samples);
        let networks: Vec<MeasuredNetwork> = samples
            .iter()
            .map(|s| MeasuredNetwork {
                arch: s.arch.clone(),
                measured_ms: s.measured_ms,
            })
            .collect();
        if let Some(fit) = fit.take() {
            checked = Some(fit.rmspe_on(source, &networks[fitted_on..])?);
            previous = Some((fit, fitted_on));
        }
        let new_fit = fit_transfer(source, &table.provenance.net_config(), &networks)?;
        rounds.push(TransferRound {
            networks: networks.len(),
            pieces: 0,
            held_out_rmspe: new_fit.held_out_rmspe,
            checked_rmspe: checked,
        });
        let judged = checked.unwrap_or(new_fit.held_out_rmspe);
        fit = Some(new_fit);
        match job.until {
            Some(t)
                if (checked.is_none() || judged > t.rmspe_percent) && wanted < t.max_samples =>
            {
                let more = (wanted + job.samples).min(t.max_samples) - wanted;
                match checked {
                    None => tracing::info!(
                        "{} networks fitted: measuring {more} more to check the fit on networks it has not seen",
                        networks.len()
                    ),
                    Some(c) => tracing::info!(
                        "{} networks: error on the {} networks the fit had not seen {c:.2}% > {:.2}%; \
                         measuring {more} more",
                        networks.len(),
                        networks.len() - fitted_on,
                        t.rmspe_percent
                    ),
                }
                wanted += more;
            }
            _ => break networks,
        }
    };
    let fit = fit.expect("the first round fits");
    let refined = match piece_measurer.filter(|_| job.profile_pieces > 0) {
        Some(piece_measurer) => {
            // The pieces' refits are judged on the last round's networks, which they do not see.
            let (start, fitted_on) = previous.unwrap_or((fit, networks.len()));
            let (fit_set, check) = networks.split_at(fitted_on);
            let mut refined = refine_with_pieces(
                job,
                source,
                &table,
                (fit_set, check),
                start,
                piece_measurer,
                out,
            )?;
            rounds.extend(refined.rounds.iter().map(|r| TransferRound {
                networks: fit_set.len(),
                pieces: r.pieces,
                held_out_rmspe: r.held_out_rmspe,
                checked_rmspe: r.checked_rmspe,
            }));
            if !check.is_empty() {
                checked = Some(refined.judged_rmspe(check)?);
                refined.fit =
                    fit_transfer(&refined.source, &table.provenance.net_config(), &networks)?;
            }
            refined
        }
        None => Refinement {
            source: source.clone(),
            fit,
            measured: Default::default(),
            rounds: Vec::new(),
        },
    };
    let fit = refined.fit;
    let tolerance_met = job
        .until
        .map(|t| checked.unwrap_or(fit.held_out_rmspe) <= t.rmspe_percent);
    let mut transferred = table.clone();
    transferred.entries = transferred_entries(&refined.source, |p, ms| fit.entry_factor(p, ms))?;
    if let Some(backend) = backend {
        transferred.provenance.backend_version = backend;
    }
    let source_differences = differences(source, &transferred, &job.profile);
    transferred.provenance.transfer = Some(TransferRecord {
        source_device: source.provenance.device.clone(),
        source_cpu: source.provenance.fingerprint.cpu_model.clone(),
        source_date: source.provenance.date.clone(),
        source_input_size: source.provenance.input_size,
        networks: samples.len(),
        seed: job.seed,
        level: fit.level,
        penalty: fit.penalty,
        held_out_rmspe: fit.held_out_rmspe,
        foreign_source: !source_differences.is_empty(),
        source_differences,
        tolerance_percent: job.until.map(|t| t.rmspe_percent),
        checked_rmspe: checked,
        pieces: refined.measured.len(),
    });
    transferred.save(out)?;
    let network_rounds = rounds.iter().filter(|r| r.pieces == 0).count();
    for round in 1..=network_rounds {
        remove_checkpoint(&checkpoint(round))?;
    }
    remove_checkpoint(&pieces_checkpoint(out))?;
    Ok(Transferred {
        table: transferred,
        fit,
        samples,
        rounds,
        tolerance_met,
        profiled_pieces: refined.measured,
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
