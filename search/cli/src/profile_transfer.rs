//! `hsconas profile --transfer-from TABLE`: a table for this device from another device's table and a
//! few networks measured here (`hsconas_latency::transfer`).

use std::path::Path;

use hsconas_devices::transfer::{CandidateError, TransferLevel};
use hsconas_devices::LatencyTable;
use hsconas_foundation::outln;
use hsconas_latency::{transfer_table, DriftPolicy, Measurer, ProfileJob, TransferJob};
use serde_json::json;

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
    let measurer = Measurer::new(
        &job.profile,
        args.protocol.protocol(),
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
    let transfer = TransferJob {
        profile: job.profile,
        classes: job.classes,
        samples: args.samples,
        seed: args.seed,
        group: job.group,
        reference: job.reference,
        reference_alone: job.reference_alone,
        drift_model: job.drift_model,
        drift: DriftPolicy::default(),
        progress: job.progress,
    };
    let start = std::time::Instant::now();
    let done = transfer_table(&transfer, &source, &measurer, out)?;
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
        });
        outln!("{}", serde_json::to_string_pretty(&summary)?)?;
        return Ok(());
    }
    outln!(
        "{} entries transferred in {seconds:.0} s from {} networks measured here; table in {}",
        done.table.entries.len(),
        record.networks,
        out.display()
    )?;
    outln!(
        "correction: {} (penalty {}), chosen as the simplest within one standard error of the lowest \
         leave-one-out error; its held-out error {:.2}% RMSPE is the table's estimate of its own error",
        level_name(record.level),
        record.penalty,
        record.held_out_rmspe
    )?;
    outln!(
        "held-out error of each level (its best penalty): {}",
        best_per_level(&done.fit.candidates)
    )?;
    if record.level == TransferLevel::Global {
        outln!(
            "factor: {:.4} x the source's entries",
            done.fit.factors["all"]
        )?;
    } else if record.level != TransferLevel::PerEntry {
        let factors: Vec<String> = done
            .fit
            .factors
            .iter()
            .map(|(group, f)| format!("{group} {f:.3}"))
            .collect();
        outln!("factors: {}", factors.join(", "))?;
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
