//! The reference network timed alongside every measured group (see `hsconas_devices::drift`): which
//! network, its ONNX model at a table's configuration, and the drift trace a job builds from it.

use std::time::Instant;

use hsconas_devices::{DriftPoint, DriftTrace, LatencyTable};
use hsconas_models::{Arch, NetConfig};
use hsconas_runtime::measure_job::MeasureOutcome;
use hsconas_vocabulary::{ReferenceTiming, Statistic};

use super::clock::utc_now_rfc3339;
use super::pieces::network_onnx;
use super::profiling::entry;
use crate::LatencyError;

/// The reference network of new tables: every layer `shuffle3` at scale 0.5. A network of the space
/// itself, so it runs the kernels the pieces run; mid-sized, so one timing is long enough to be steady
/// and short enough not to dominate a group; at scale 0.5 its branch widths are multiples of ONNX
/// Runtime's vector blocks, which keeps it on one code path (docs/latency-local-cpu.md).
pub fn default_reference_arch() -> Arch {
    let text = vec!["shuffle3:0.5"; 20].join(",");
    text.parse()
        .expect("the default reference is a valid architecture")
}

/// The reference network as a model to measure, and the trace of its timings in this job.
pub struct ReferenceModel {
    /// Its architecture.
    pub arch: Arch,
    /// Its ONNX model at the table's configuration and batch.
    pub onnx: Vec<u8>,
    /// How it is timed in every group: its burst and whether alone before and after the group
    /// (`hsconas_devices::ReferenceNetwork::burst` and `alone`).
    pub timing: ReferenceTiming,
    /// Its timings so far, one point per group.
    pub trace: DriftTrace,
    statistic: Statistic,
    started: Instant,
    offset_s: f64,
}

impl ReferenceModel {
    /// The reference `arch` at `config` and `batch`, timed with `timing` and `statistic`, continuing
    /// `trace` (its next points' seconds follow its last one).
    pub fn new(
        arch: Arch,
        config: &NetConfig,
        batch: usize,
        timing: ReferenceTiming,
        statistic: Statistic,
        trace: Option<DriftTrace>,
    ) -> Result<ReferenceModel, LatencyError> {
        let onnx = network_onnx(&arch, config, batch, None)?;
        let trace = trace.unwrap_or_else(|| DriftTrace::new(utc_now_rfc3339()));
        let offset_s = trace.points.last().map_or(0.0, |p| p.seconds);
        Ok(ReferenceModel {
            arch,
            onnx,
            timing,
            trace,
            statistic,
            started: Instant::now(),
            offset_s,
        })
    }

    /// The reference network a table recorded, for measuring against that table (a new trace, or, with
    /// `continue_trace`, the table's own profiling trace continued); `None` when the table has none
    /// (older tables: their measurements cannot be normalised).
    pub fn of_table(
        table: &LatencyTable,
        continue_trace: bool,
    ) -> Result<Option<ReferenceModel>, LatencyError> {
        let Some(reference) = &table.reference else {
            return Ok(None);
        };
        let arch: Arch = reference.arch.parse().map_err(|e| {
            LatencyError::Invalid(format!(
                "the table's reference network '{}' is not an architecture: {e}",
                reference.arch
            ))
        })?;
        let model = ReferenceModel::new(
            arch,
            &table.provenance.net_config(),
            table.provenance.batch,
            ReferenceTiming {
                burst: reference.burst,
                alone: reference.alone,
            },
            table.statistic,
            continue_trace.then(|| reference.trace.clone()),
        )?;
        Ok(Some(model))
    }

    /// Continues `trace` (a resumed job's): later points' seconds follow its last one.
    pub fn continue_trace(&mut self, trace: DriftTrace) {
        self.offset_s = trace.points.last().map_or(0.0, |p| p.seconds);
        self.started = Instant::now();
        self.trace = trace;
    }

    /// Records the reference's outcome in one group; returns the index of its point in the trace.
    pub fn record(&mut self, outcome: &MeasureOutcome) -> usize {
        let seconds = self.offset_s + self.started.elapsed().as_secs_f64();
        self.trace.points.push(DriftPoint {
            seconds,
            reference_ms: entry(&outcome.stats).get(self.statistic),
        });
        self.trace.points.len() - 1
    }
}
