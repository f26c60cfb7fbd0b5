//! Profiling one table on a fleet: several devices of the same profile, each reached through its agent,
//! measure the pieces together, one thread per device taking the next group as it finishes the last, so
//! a faster device takes a larger share.
//!
//! Before any piece is measured, every device times the same calibration networks twice, one device
//! after the other ([`check_fleet`]); the fleet is refused when the devices' speeds differ by more than
//! their own noise explains (`hsconas_devices::fleet_agreement` has the rule). The agreement, with each device's
//! ratio, noise, timings and share of the groups, is recorded in the table's provenance.
//!
//! Drift normalisation with a fleet: every group is timed with the table's reference network on the
//! device that measured it, and the points go into the table's one trace in the order they arrive. The
//! fleet was accepted because its devices agree within the noise, so the merged trace reads like one
//! device's, a little noisier; a fleet whose devices disagree is never merged.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use hsconas_devices::{CalibrationTimings, FleetAgreement, FleetRule, LatencyTable};
use hsconas_models::build::Piece;
use hsconas_models::{Arch, NetConfig};
use hsconas_vocabulary::{ReferenceTiming, Statistic};

use super::measurer::Measurer;
use super::pieces::network_onnx;
use super::profiling::{
    entry, group_name, group_onnx, measuring_error, piece_groups, record_group, start_or_resume,
    table_reference, ProfileJob,
};
use crate::LatencyError;
use hsconas_foundation::progress::progress_bar;

/// One device of a fleet: its agent's address and the measurer that reaches it.
pub struct FleetMember {
    /// The agent's address, as given.
    pub agent: String,
    /// The measurer (through that agent).
    pub measurer: Measurer,
}

/// The calibration networks of the fleet check: four networks of the space, uniform in one operator and
/// scale each, from narrow to wide, so that both small kernels and large ones are compared.
pub fn calibration_archs() -> Vec<Arch> {
    [
        "shuffle3:0.3",
        "shuffle5:0.5",
        "xception:0.7",
        "shuffle7:1.0",
    ]
    .iter()
    .map(|entry| {
        vec![*entry; 20]
            .join(",")
            .parse()
            .expect("the calibration networks are valid architectures")
    })
    .collect()
}

/// Times the calibration networks twice on every device, after a first round that only warms it up
/// (all networks of a round in one interleaved group, one device after the other, so that devices
/// sharing a machine do not disturb each other) and
/// judges whether the devices agree. Errors when a device cannot measure; the verdict is in
/// [`FleetAgreement::agrees`].
pub fn check_fleet(
    fleet: &[FleetMember],
    config: &NetConfig,
    batch: usize,
    statistic: Statistic,
    rule: FleetRule,
) -> Result<FleetAgreement, LatencyError> {
    if fleet.len() < 2 {
        return Err(LatencyError::Invalid(format!(
            "a fleet needs at least two devices, got {}",
            fleet.len()
        )));
    }
    let archs = calibration_archs();
    let models = archs
        .iter()
        .map(|a| network_onnx(a, config, batch, None))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&[u8]> = models.iter().map(Vec::as_slice).collect();
    let mut rounds: Vec<[Vec<f64>; 2]> = vec![[Vec::new(), Vec::new()]; fleet.len()];
    // Round 0 warms each device up (a freshly started agent's first timings run cold) and is not kept.
    for round in 0..3_usize {
        for (member, timings) in fleet.iter().zip(&mut rounds) {
            let outcomes =
                member
                    .measurer
                    .measure(&refs, |_, _| {})
                    .map_err(|e| LatencyError::Measuring {
                        what: format!("the fleet's calibration networks on {}", member.agent),
                        source: Box::new(e),
                    })?;
            let Some(kept) = round.checked_sub(1) else {
                continue;
            };
            timings[kept] = outcomes
                .iter()
                .map(|o| entry(&o.stats).get(statistic))
                .collect();
        }
    }
    let timings = fleet
        .iter()
        .zip(rounds)
        .map(|(member, rounds)| {
            Ok(CalibrationTimings {
                agent: member.agent.clone(),
                fingerprint: member.measurer.fingerprint()?,
                rounds,
            })
        })
        .collect::<Result<Vec<_>, LatencyError>>()?;
    let networks = archs.iter().map(ToString::to_string).collect();
    FleetAgreement::judge(networks, timings, rule).ok_or_else(|| {
        LatencyError::Invalid(
            "a device returned a timing for the fleet's calibration networks that is not a positive number"
                .into(),
        )
    })
}

/// What the device threads share.
struct Shared {
    table: LatencyTable,
    reference: Option<super::reference::ReferenceModel>,
    queue: VecDeque<Vec<Piece>>,
    error: Option<LatencyError>,
}

/// Measures every piece the table at `out` still lacks on the fleet, after checking that its devices
/// agree (a fleet that does not is refused with each device's ratio and noise in the message), and
/// returns the complete table with the agreement in its provenance. Resumable like
/// [`super::profiling::profile_table`]; the table file is rewritten atomically after each group.
pub fn profile_table_on_fleet(
    job: &ProfileJob,
    fleet: &[FleetMember],
    rule: FleetRule,
    out: &Path,
) -> Result<LatencyTable, LatencyError> {
    let config = job.net_config()?;
    if job.once_per_shape {
        return Err(LatencyError::Invalid(
            "a fleet measures every piece: one piece per shape profiles on one device".into(),
        ));
    }
    let first = &fleet
        .first()
        .ok_or_else(|| LatencyError::Invalid("a fleet needs at least two devices".into()))?
        .measurer;
    let table = start_or_resume(job, first, out)?;
    let todo: Vec<Piece> = table
        .expected_pieces()
        .into_iter()
        .filter(|p| !table.entries.contains_key(&p.key()))
        .collect();
    if todo.is_empty() {
        // Nothing left to measure: the table and its record stay as they are.
        return Ok(table);
    }
    resumable_by(&table, fleet, out)?;
    let mut agreement = check_fleet(fleet, &config, job.profile.batch, table.statistic, rule)?;
    if !agreement.agrees() {
        return Err(LatencyError::FleetDisagrees {
            spread: agreement.spread,
            tolerance: agreement.tolerance,
            devices: agreement.describe(),
        });
    }
    // A resumed fleet table keeps the earlier sittings' records; this sitting counts its own groups.
    let mut table = table;
    if let Some(previous) = table.provenance.fleet.take() {
        agreement = agreement.continuing(previous);
    }
    table.provenance.fleet = Some(agreement);
    let reference = table_reference(job, &table)?;
    let reference_onnx = reference.as_ref().map(|r| FleetReference {
        onnx: r.onnx.clone(),
        timing: r.timing,
    });
    let capacity = fleet
        .iter()
        .map(|m| m.measurer.group_capacity(reference.is_some()))
        .min()
        .unwrap_or(1);
    let bar = progress_bar(todo.len(), None, "pieces", job.progress);
    let shared = Mutex::new(Shared {
        table,
        reference,
        queue: piece_groups(&todo, job.group.min(capacity)).into(),
        error: None,
    });
    let lock = || {
        shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    std::thread::scope(|scope| {
        for (device, member) in fleet.iter().enumerate() {
            let (bar, reference_onnx, lock) = (&bar, &reference_onnx, &lock);
            let config = &config;
            scope.spawn(move || loop {
                let group = {
                    let mut s = lock();
                    if s.error.is_some() {
                        return;
                    }
                    match s.queue.pop_front() {
                        Some(group) => group,
                        None => return,
                    }
                };
                let measured = measure_group(member, &group, config, job, reference_onnx.as_ref());
                let mut s = lock();
                let recorded = measured.and_then(|(outcomes, reference_outcome)| {
                    let point = match (&mut s.reference, &reference_outcome) {
                        (Some(r), Some(o)) => Some(r.record(o)),
                        _ => None,
                    };
                    let Shared {
                        table, reference, ..
                    } = &mut *s;
                    record_group(
                        table,
                        &group,
                        &outcomes,
                        point,
                        reference.as_ref(),
                        job.drift_model,
                    )?;
                    if let Some(fleet) = &mut table.provenance.fleet {
                        fleet.devices[device].groups += 1;
                    }
                    table.save(out)?;
                    Ok(())
                });
                match recorded {
                    Ok(()) => {
                        bar.set_message(format!("{} ({})", group_name(&group), member.agent));
                        bar.inc(group.len() as u64);
                    }
                    Err(e) => {
                        s.error.get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let Shared { table, error, .. } = shared
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // What was measured is kept even when a device failed: a rerun resumes from it.
    table.save(out)?;
    match error {
        Some(e) => Err(e),
        None => Ok(table),
    }
}

/// Refuses to continue a table that one device started (the fleet's check does not compare with it) or
/// that a fleet with none of these devices started.
fn resumable_by(
    table: &LatencyTable,
    fleet: &[FleetMember],
    out: &Path,
) -> Result<(), LatencyError> {
    if table.entries.is_empty() {
        return Ok(());
    }
    let refuse = |message: String| LatencyError::Resume {
        path: out.to_path_buf(),
        message,
    };
    match &table.provenance.fleet {
        None => Err(refuse(
            "was started on one device; finish it there (without a fleet), or choose another --out".into(),
        )),
        Some(old) if !fleet.iter().any(|m| old.devices.iter().any(|d| d.agent == m.agent)) => {
            Err(refuse(format!(
                "was started by a fleet of other devices ({}); include at least one of them, so that the \
                 fleet check ties the new devices to its measurements",
                old.devices
                    .iter()
                    .map(|d| d.agent.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        Some(_) => Ok(()),
    }
}

/// The reference network as every device of the fleet times it (shared by the measuring threads).
struct FleetReference {
    /// Its ONNX model at the table's configuration.
    onnx: Vec<u8>,
    /// Its burst and context.
    timing: ReferenceTiming,
}

/// Exports and measures one group on one device, with the reference network beside it when the table
/// has one; the reference's outcome is returned for the caller to record in the shared trace.
#[allow(clippy::type_complexity)]
fn measure_group(
    member: &FleetMember,
    group: &[Piece],
    config: &NetConfig,
    job: &ProfileJob,
    reference: Option<&FleetReference>,
) -> Result<
    (
        Vec<hsconas_runtime::measure_job::MeasureOutcome>,
        Option<hsconas_runtime::measure_job::MeasureOutcome>,
    ),
    LatencyError,
> {
    let models = group_onnx(group, config, job.profile.batch, job.int8.as_ref())?;
    let refs: Vec<&[u8]> = models.iter().map(Vec::as_slice).collect();
    let measured = match reference {
        Some(r) => member
            .measurer
            .measure_beside(&refs, &r.onnx, r.timing, |_, _| {})
            .map(|(o, r)| (o, Some(r))),
        None => member.measurer.measure(&refs, |_, _| {}).map(|o| (o, None)),
    };
    measured.map_err(|e| measuring_error(group, &member.measurer, e))
}
