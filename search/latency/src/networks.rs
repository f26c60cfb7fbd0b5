//! End-to-end measurements of sampled networks (for calibration and validation), with the table's protocol
//! and statistic, checkpointed after every group so that an interrupted run resumes where it stopped.

use crate::LatencyError;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hsconas_devices::drift::normalised_ms;
use hsconas_devices::{
    DriftModel, DriftTrace, LatencyModel, LatencyTable, NetworkSample, ReferenceNetwork,
};
use hsconas_models::{Arch, SearchSpace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::measurer::{ensure_provider, Measurer};
use super::pieces::network_onnx;
use super::reference::{default_reference_arch, ReferenceModel};
use hsconas_foundation::progress::progress_bar;
use hsconas_vocabulary::ReferenceTiming;

use super::profiling::entry;

/// `count` distinct architectures drawn uniformly from the full space with `seed`, none of them in
/// `exclude` (so validation networks are never calibration networks). With `mixed` (a mixed-precision
/// table's networks), each layer with weights is then made INT8 with probability 1/2, so that the
/// networks cover every mix from all-FP32 to all-INT8 around half and half.
pub fn sample_archs(count: usize, seed: u64, exclude: &HashSet<Arch>, mixed: bool) -> Vec<Arch> {
    let space = SearchSpace::full();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = exclude.clone();
    let mut archs = Vec::with_capacity(count);
    while archs.len() < count {
        let mut arch = space.sample(&mut rng);
        if mixed {
            arch = with_random_precisions(arch, &mut rng);
        }
        if seen.insert(arch.clone()) {
            archs.push(arch);
        }
    }
    archs
}

/// `arch` with each layer that has weights made INT8 with probability 1/2.
fn with_random_precisions(arch: Arch, rng: &mut ChaCha8Rng) -> Arch {
    use rand::Rng;
    let mut mixed = arch.clone();
    for (layer, choice) in arch.choices().iter().enumerate() {
        if !choice.is_skip() && rng.random_bool(0.5) {
            mixed = mixed
                .with_precision(layer, hsconas_vocabulary::Precision::Int8)
                .unwrap_or(mixed);
        }
    }
    mixed
}

/// What is in a checkpoint file, to resume only the same job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    /// `calibration` or `validation`.
    purpose: String,
    /// The table's measurement date (ties the checkpoint to one table).
    table_date: String,
    seed: u64,
    requested: usize,
    samples: Vec<NetworkSample>,
    /// The reference network's timings so far (samples' `group` index into it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace: Option<DriftTrace>,
    /// The runtime and version the networks ran on (as its outcomes name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
}

/// What a [`NetworkRun`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// One sample per architecture, in the order asked for; normalised to the table's reference state
    /// (raw values beside) when the table has a reference network.
    pub samples: Vec<NetworkSample>,
    /// The reference network's timings during the job (`None` when the job has no reference).
    pub trace: Option<DriftTrace>,
    /// The reference state the samples were normalised to: the table's, or, for a job with a
    /// [`NewReference`], the median of this job's own trace (`None` without a reference).
    pub reference: Option<ReferenceNetwork>,
    /// The runtime and version the networks ran on (`None` when nothing was measured).
    pub backend: Option<String>,
}

/// The reference network of a job against a table that has none yet (a transferred table in the
/// making): the default reference, timed this way in every group, its state the median of the job's
/// own trace, normalised with `model`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewReference {
    /// How it is timed.
    pub timing: ReferenceTiming,
    /// The drift model the samples are normalised with.
    pub model: DriftModel,
}

/// What a job does when the device drifts beyond a threshold while it measures (or differs from the
/// table's state by more).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftPolicy {
    /// The threshold, a fraction (0.05: 5%).
    pub threshold: f64,
    /// Refuse (an error; the job's checkpoint is removed) instead of warning.
    pub refuse: bool,
}

impl Default for DriftPolicy {
    /// Warn beyond 5%.
    fn default() -> DriftPolicy {
        DriftPolicy {
            threshold: 0.05,
            refuse: false,
        }
    }
}

/// A job of end-to-end measurements.
pub struct NetworkRun<'a> {
    /// The table (its configuration, batch, statistic; its entries give the table sums).
    pub table: &'a LatencyTable,
    /// Where to measure.
    pub measurer: &'a Measurer,
    /// `calibration` or `validation` (names the checkpoint and the progress bar).
    pub purpose: &'a str,
    /// Seed the architectures were drawn with.
    pub seed: u64,
    /// Networks measured together in one interleaved group.
    pub group: usize,
    /// Checkpoint file (removed once every network is measured).
    pub checkpoint: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// Warn or refuse when the device drifts.
    pub drift: DriftPolicy,
    /// For a table without a reference network: time this one (ignored when the table has its own).
    pub new_reference: Option<NewReference>,
}

impl NetworkRun<'_> {
    /// Measures every architecture (resuming from the checkpoint when it belongs to this job) and returns
    /// the samples in the order of `archs`. When the table has a reference network it is timed in every
    /// group and each measurement is normalised to the table's reference state with the table's drift
    /// model over the whole job's trace (the raw value kept beside it).
    pub fn measure(&self, archs: &[Arch]) -> Result<Measured, LatencyError> {
        if self.group == 0 {
            return Err(LatencyError::Invalid(
                "the group size must be at least 1".into(),
            ));
        }
        let model = LatencyModel::new(self.table, hsconas_devices::Correction::NONE)?;
        let config = self.table.provenance.net_config();
        let batch = self.table.provenance.batch;
        let (mut done, old_trace, mut backend) = self.resume(archs.len())?;
        let mut reference = match (&self.table.reference, self.new_reference) {
            (None, Some(new)) => Some(ReferenceModel::new(
                default_reference_arch(),
                &config,
                batch,
                new.timing,
                self.table.statistic,
                None,
            )?),
            _ => ReferenceModel::of_table(self.table, false)?,
        };
        if let (Some(r), Some(trace)) = (reference.as_mut(), old_trace) {
            r.continue_trace(trace);
        }
        let todo: Vec<&Arch> = archs
            .iter()
            .filter(|a| !done.iter().any(|s| &s.arch == *a))
            .collect();
        if todo.len() < archs.len() {
            tracing::info!(
                "resuming from {}: {} of {} networks already measured",
                self.checkpoint.display(),
                archs.len() - todo.len(),
                archs.len()
            );
        }
        let bar = progress_bar(
            todo.len(),
            None,
            &format!("{} networks", self.purpose),
            self.progress,
        );
        let capacity = self.measurer.group_capacity(reference.is_some());
        for group in todo.chunks(self.group.min(capacity)) {
            let models = group
                .iter()
                .map(|a| network_onnx(a, &config, batch, self.table.provenance.int8.as_ref()))
                .collect::<Result<Vec<_>, LatencyError>>()?;
            let refs: Vec<&[u8]> = models.iter().map(Vec::as_slice).collect();
            let (outcomes, point) = self
                .measurer
                .measure_with_reference(&refs, reference.as_mut(), |_, _| bar.tick())
                .map_err(|e| LatencyError::Measuring {
                    what: format!("{} networks on {}", group.len(), self.measurer.place()),
                    source: Box::new(e),
                })?;
            ensure_provider(self.table.provenance.provider, &outcomes, || {
                format!("the {} networks' measurement", self.purpose)
            })?;
            if let Some(o) = outcomes.first().filter(|_| backend.is_none()) {
                backend = Some(o.backend.clone());
            }
            for (arch, outcome) in group.iter().zip(&outcomes) {
                let raw = entry(&outcome.stats).get(self.table.statistic);
                done.push(NetworkSample {
                    arch: (*arch).clone(),
                    measured_ms: raw,
                    table_sum_ms: model.table_sum_ms(arch),
                    raw_ms: point.map(|_| raw),
                    group: point,
                });
            }
            self.save(
                archs.len(),
                &done,
                reference.as_ref().map(|r| &r.trace),
                backend.as_deref(),
            )?;
            bar.inc(group.len() as u64);
        }
        bar.finish_and_clear();
        let ordered = archs
            .iter()
            .map(|a| {
                done.iter().find(|s| &s.arch == a).cloned().ok_or_else(|| {
                    LatencyError::Invalid(format!("the measurement of {a} went missing"))
                })
            })
            .collect::<Result<Vec<_>, LatencyError>>()?;
        let state = match (&self.table.reference, reference) {
            (Some(table_state), Some(r)) => Some((table_state.clone(), r.trace)),
            (None, Some(r)) => self.new_reference.and_then(|new| {
                let trace = r.trace.clone();
                ReferenceNetwork::from_trace(
                    r.arch.to_string(),
                    new.model,
                    (r.timing.burst, r.timing.alone),
                    r.trace,
                )
                .map(|state| (state, trace))
            }),
            (_, None) => None,
        };
        self.check_drift(state.as_ref())?;
        let (reference, trace) = state.unzip();
        Ok(Measured {
            samples: normalise_to(reference.as_ref(), ordered, trace.as_ref()),
            trace,
            reference,
            backend,
        })
    }

    /// Warns, or refuses under [`DriftPolicy::refuse`], when the job's trace moved beyond the threshold
    /// from the reference state.
    fn check_drift(
        &self,
        state: Option<&(ReferenceNetwork, DriftTrace)>,
    ) -> Result<(), LatencyError> {
        let Some((reference, trace)) = state else {
            return Ok(());
        };
        let Some(why) = trace
            .summary(reference.model, reference.latency_ms)
            .and_then(|s| s.beyond(self.drift.threshold))
        else {
            return Ok(());
        };
        if self.drift.refuse {
            self.finish()?;
            return Err(LatencyError::Drift {
                what: format!("the {} networks' measurement", self.purpose),
                why,
                threshold: self.drift.threshold,
            });
        }
        tracing::warn!(
            "{why} (threshold {:.1}%); the measurements are normalised to the table's state",
            100.0 * self.drift.threshold
        );
        Ok(())
    }

    /// Removes the checkpoint (call once the result is stored elsewhere).
    pub fn finish(&self) -> Result<(), LatencyError> {
        remove_checkpoint(&self.checkpoint)
    }

    /// The samples, reference trace and backend of this job's checkpoint (none without one).
    #[allow(clippy::type_complexity)]
    fn resume(
        &self,
        requested: usize,
    ) -> Result<(Vec<NetworkSample>, Option<DriftTrace>, Option<String>), LatencyError> {
        if !self.checkpoint.exists() {
            return Ok((Vec::new(), None, None));
        }
        let text = std::fs::read(&self.checkpoint).map_err(|source| {
            LatencyError::Fs(hsconas_foundation::FsError::new(
                "reading",
                &self.checkpoint,
                source,
            ))
        })?;
        let old: Checkpoint = match serde_json::from_slice(&text) {
            Ok(c) => c,
            Err(e) => {
                return Err(LatencyError::Resume {
                    path: self.checkpoint.clone(),
                    message: format!(
                        "not a valid checkpoint ({e}); delete it to start the {} again",
                        self.purpose
                    ),
                })
            }
        };
        if old.purpose != self.purpose
            || old.table_date != self.table.provenance.date
            || old.seed != self.seed
            || old.requested != requested
        {
            return Err(LatencyError::Resume {
                path: self.checkpoint.clone(),
                message: format!(
                    "belongs to another run ({} of {} networks, seed {}, table of {}); delete it, or rerun with those settings",
                    old.purpose, old.requested, old.seed, old.table_date
                ),
            });
        }
        Ok((old.samples, old.trace, old.backend))
    }

    fn save(
        &self,
        requested: usize,
        samples: &[NetworkSample],
        trace: Option<&DriftTrace>,
        backend: Option<&str>,
    ) -> Result<(), LatencyError> {
        let checkpoint = Checkpoint {
            purpose: self.purpose.to_string(),
            table_date: self.table.provenance.date.clone(),
            seed: self.seed,
            requested,
            samples: samples.to_vec(),
            trace: trace.cloned(),
            backend: backend.map(str::to_string),
        };
        let json = serde_json::to_vec_pretty(&checkpoint)?;
        Ok(hsconas_foundation::write_atomic(&self.checkpoint, &json)?)
    }
}

/// The samples normalised to the table's reference state: each raw measurement divided by the speed
/// factor of its group under the table's drift model (the factors computed over the whole `trace`).
/// Samples without a group, or a table without a reference, are returned as they are.
pub fn normalise(
    table: &LatencyTable,
    samples: Vec<NetworkSample>,
    trace: Option<&DriftTrace>,
) -> Vec<NetworkSample> {
    normalise_to(table.reference.as_ref(), samples, trace)
}

/// [`normalise`] to the reference state `reference`.
fn normalise_to(
    reference: Option<&ReferenceNetwork>,
    samples: Vec<NetworkSample>,
    trace: Option<&DriftTrace>,
) -> Vec<NetworkSample> {
    let (Some(reference), Some(trace)) = (reference, trace) else {
        return samples;
    };
    let factors = reference.factors_of(trace);
    samples
        .into_iter()
        .map(|mut s| {
            s.measured_ms = normalised_ms(s.measured_ms, s.raw_ms, s.group, &factors);
            s
        })
        .collect()
}

/// The table date the checkpoint at `path` belongs to (`None` when there is none, or it cannot be
/// read: the job then reports it): a job that makes its own table resumes with the date it started with.
pub fn checkpoint_table_date(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<Checkpoint>(&bytes)
        .ok()
        .map(|c| c.table_date)
}

/// Removes a job's checkpoint file (nothing to do when there is none).
pub fn remove_checkpoint(path: &Path) -> Result<(), LatencyError> {
    match std::fs::remove_file(path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(LatencyError::Fs(
            hsconas_foundation::FsError::new("removing", path, source),
        )),
        _ => Ok(()),
    }
}

/// `<table>.<purpose>.partial.json` next to the table.
pub fn checkpoint_path(table: &Path, purpose: &str) -> PathBuf {
    let mut name = table.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{purpose}.partial.json"));
    table.with_file_name(name)
}
