//! `hsconas profile --transfer-from TABLE`: a table for this device from another device's table and a
//! few networks measured here (`hsconas_latency::transfer`).

use std::path::Path;

use hsconas_devices::transfer::{CandidateError, TransferLevel, TERM_NAMES};
use hsconas_devices::LatencyTable;
use hsconas_foundation::outln;
use hsconas_latency::transfer::Tolerance;
use hsconas_latency::{transfer_table, DriftPolicy, Measurer, ProfileJob, TransferJob};
use serde_json::json;

use hsconas_vocabulary::Protocol;

use super::measure_args::TableDeviceArgs;
use super::profile::ProfileArgs;

/// Runs the transfer `args` asks for, with the settings of `job`, into `out`.
pub fn run(
    args: &ProfileArgs,
    source_path: &Path,
    job: ProfileJob,
    out: &Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.agent.agents.len() <= 1,
        "--transfer-from measures on one device; give at most one --agent"
    );
    let source = LatencyTable::load(source_path)?;
    // The networks are measured as `hsconas calibrate` measures them: in groups of 10, each run in
    // bursts (only the last of each burst timed).
    let networks = TableDeviceArgs::default();
    let table_protocol = args.protocol.protocol();
    let measurer = Measurer::new(
        &job.profile,
        Protocol {
            burst: networks.burst,
            ..table_protocol.clone()
        },
        args.agent.single()?,
        args.agent.token.clone(),
        args.agent.agent_ca.as_deref(),
    )?;
    eprintln!(
        "transferring {} ({}, {}, input {}) to {} on {}: measuring {} networks end to end",
        source_path.display(),
        source.provenance.device,
        source.provenance.fingerprint.cpu_model,
        source.provenance.input_size,
        job.profile,
        measurer.place(),
        args.samples
    );
    let until = match args.tolerance {
        Some(pct) => {
            anyhow::ensure!(
                pct.is_finite() && pct > 0.0,
                "--tolerance must be a positive percentage, e.g. 5"
            );
            anyhow::ensure!(
                args.max_samples >= args.samples,
                "--max-samples ({}) is below --samples ({})",
                args.max_samples,
                args.samples
            );
            Some(Tolerance {
                rmspe_percent: pct,
                max_samples: args.max_samples,
            })
        }
        None => None,
    };
    let transfer = TransferJob {
        until,
        profile: job.profile,
        classes: job.classes,
        samples: args.samples,
        seed: args.seed,
        group: networks.group,
        table_protocol,
        reference: job.reference,
        reference_alone: job.reference_alone,
        drift_model: job.drift_model,
        drift: DriftPolicy::default(),
        progress: job.progress,
        profile_pieces: args.profile_pieces,
    };
    // Pieces are profiled as `hsconas profile` profiles them: with the table's own protocol.
    let piece_measurer = match args.profile_pieces {
        0 => None,
        _ => Some(Measurer::new(
            &transfer.profile,
            transfer.table_protocol.clone(),
            args.agent.single()?,
            args.agent.token.clone(),
            args.agent.agent_ca.as_deref(),
        )?),
    };
    let start = std::time::Instant::now();
    let done = transfer_table(&transfer, &source, &measurer, piece_measurer.as_ref(), out)?;
    let seconds = start.elapsed().as_secs_f64();
    let record = done
        .table
        .provenance
        .transfer
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the transferred table lost its transfer record"))?;
    if args.json {
        let summary = json!({
            "table": out,
            "entries": done.table.entries.len(),
            "seconds": seconds,
            "backend": done.table.provenance.backend_version,
            "provider": done.table.provenance.provider,
            "transfer": record,
            "factors": done.fit.factors,
            "candidates": done.fit.candidates,
            "rounds": done
                .rounds
                .iter()
                .map(|r| {
                    json!({
                        "networks": r.networks,
                        "pieces": r.pieces,
                        "held_out_rmspe": r.held_out_rmspe,
                        "checked_rmspe": r.checked_rmspe
                    })
                })
                .collect::<Vec<_>>(),
            "tolerance_met": done.tolerance_met,
            "profiled_pieces": done.profiled_pieces,
        });
        outln!("{}", serde_json::to_string_pretty(&summary)?)?;
        return Ok(());
    }
    let pieces = match record.pieces {
        0 => String::new(),
        n => format!(" and {n} pieces profiled"),
    };
    outln!(
        "{} entries transferred in {seconds:.0} s from {} networks measured here{pieces}; table in {}",
        done.table.entries.len(),
        record.networks,
        out.display()
    )?;
    outln!(
        "correction: {} (penalty {}), chosen as the simplest within one standard error of the lowest \
         leave-one-out error, which is {:.2}% RMSPE over the networks it was fitted on",
        level_name(record.level),
        record.penalty,
        record.held_out_rmspe
    )?;
    outln!(
        "held-out error of each level (its best penalty): {}",
        best_per_level(&done.fit.candidates)
    )?;
    if record.level == TransferLevel::Global {
        let of = if record.pieces > 0 {
            "the source's entries refined by the profiled pieces"
        } else {
            "the source's entries"
        };
        outln!("factor: {:.4} x {of}", done.fit.factors["all"])?;
    } else if record.level != TransferLevel::PerEntry {
        let factors: Vec<String> = done
            .fit
            .factors
            .iter()
            .filter(|(group, _)| !TERM_NAMES.contains(&group.as_str()))
            .map(|(group, f)| format!("{group} {f:.3}"))
            .collect();
        outln!("factors: {}", factors.join(", "))?;
        if record.level == TransferLevel::PerStageMacs {
            let [macs, layers] = TERM_NAMES.map(|n| done.fit.factors[n]);
            outln!(
                "plus {macs:.3} x each piece's MACs here and {layers:.3} x a cost per layer, in the \
                 source's average time per MAC and per layer"
            )?;
        }
    }
    if done.rounds.len() > 1 {
        let rounds: Vec<String> = done
            .rounds
            .iter()
            .map(|r| {
                let what = match r.pieces {
                    0 => format!("{} networks", r.networks),
                    n => format!("{n} pieces"),
                };
                match r.checked_rmspe {
                    Some(c) => format!("{what} {:.2}% (unseen {c:.2}%)", r.held_out_rmspe),
                    None => format!("{what} {:.2}%", r.held_out_rmspe),
                }
            })
            .collect();
        outln!(
            "leave-one-out error by round (and on networks the fit had not seen): {}",
            rounds.join(", ")
        )?;
    }
    let judged = match record.checked_rmspe {
        Some(c) => format!("the error on networks the fit had not seen ({c:.2}%)"),
        None => "the leave-one-out estimate (optimistic in the measured runs: --max-samples above \
                 --samples checks it on networks measured after the fit)"
            .to_string(),
    };
    match (done.tolerance_met, args.tolerance) {
        (Some(true), Some(pct)) => outln!("{judged} is within the tolerance of {pct}%")?,
        (Some(false), Some(pct)) => outln!(
            "{judged} is still above the tolerance of {pct}% after {} networks{pieces}: \
             {} (hsconas profile without --transfer-from measures every piece)",
            record.networks,
            if args.profile_pieces == 0 {
                "--profile-pieces N profiles the pieces that matter most, or a full profile"
            } else {
                "more --profile-pieces, or a full profile"
            }
        )?,
        _ => {}
    }
    for difference in &record.source_differences {
        outln!("source differs: {difference}")?;
    }
    outln!(
        "next: hsconas calibrate --table {0}, then hsconas latency validate --table {0}",
        out.display()
    )?;
    Ok(())
}

/// How a level is named in messages.
fn level_name(level: TransferLevel) -> &'static str {
    match level {
        TransferLevel::Global => "one global factor",
        TransferLevel::PerOperator => "one factor per operator type",
        TransferLevel::PerStage => "one factor per stage",
        TransferLevel::PerStageMacs => {
            "one factor per stage plus a cost per MAC and per layer at this input size"
        }
        TransferLevel::PerEntry => "one factor per entry",
    }
}

/// `global 4.10%, per-operator 2.31%, ...`: each level's lowest held-out error among its penalties.
fn best_per_level(candidates: &[CandidateError]) -> String {
    TransferLevel::ALL
        .iter()
        .filter_map(|&level| {
            candidates
                .iter()
                .filter(|c| c.level == level)
                .map(|c| c.held_out_rmspe)
                .min_by(f64::total_cmp)
                .map(|e| format!("{} {e:.2}%", level.name()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
