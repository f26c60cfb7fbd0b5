//! Building a latency table: every piece exported and measured on the device, group by group in
//! interleaved rounds; the table file is rewritten atomically after each group, and a rerun resumes it.

use crate::LatencyError;
use std::path::Path;

use hsconas_devices::{
    DeviceProfile, DriftModel, EntryStats, LatencyTable, Provenance, ReferenceNetwork,
    FORMAT_VERSION, REFERENCE_BURST,
};
use hsconas_foundation::progress::progress_bar;
use hsconas_models::build::Piece;
use hsconas_vocabulary::{Precision, Protocol, ReferenceTiming, Stats};

use super::clock::utc_now_rfc3339;
use super::measurer::{ensure_provider, Measurer};
use super::pieces::piece_onnx;
use super::reference::{default_reference_arch, ReferenceModel};

/// What to profile.
#[derive(Debug, Clone)]
pub struct ProfileJob {
    /// The device profile, with the layout and input size to measure at.
    pub profile: DeviceProfile,
    /// Classes of the head's classifier.
    pub classes: usize,
    /// Pieces measured together in one interleaved group.
    pub group: usize,
    /// Time the reference network in every group (new tables; a resumed table keeps what it started
    /// with) and normalise the entries with `drift_model`.
    pub reference: bool,
    /// Time a new table's reference alone before and after each group instead of among its pieces.
    pub reference_alone: bool,
    /// How the entries are normalised for drift (recorded in the table; changeable afterwards).
    pub drift_model: DriftModel,
    /// Measure every block with weights in INT8 too, exported this way (a mixed-precision table);
    /// `None`: FP32 pieces only. A resumed table must have been started with the same settings.
    pub int8: Option<hsconas_devices::Int8Pieces>,
    /// Measure one piece of each shape and give its twins ([`Piece::shape`]) its entry: 326 of the 818
    /// FP32 pieces (recorded in the table; a resumed table must have been started the same way).
    pub once_per_shape: bool,
    /// Show a progress bar.
    pub progress: bool,
}

impl ProfileJob {
    /// The networks' configuration, after checking the job's settings (a group of at least one piece).
    pub fn net_config(&self) -> Result<hsconas_models::NetConfig, LatencyError> {
        if self.group == 0 {
            return Err(LatencyError::Invalid(
                "the group size must be at least 1".into(),
            ));
        }
        let config = self.profile.net_config(self.classes);
        config.validate()?;
        Ok(config)
    }
}

/// Converts the runtime's statistics into a table entry.
pub fn entry(stats: &Stats) -> EntryStats {
    EntryStats {
        stats: stats.clone(),
        group: None,
    }
}

/// Measures every piece the table at `out` still lacks and returns the complete table. An existing file is
/// resumed when it was measured for the same device and settings, and refused otherwise.
pub fn profile_table(
    job: &ProfileJob,
    measurer: &Measurer,
    out: &Path,
) -> Result<LatencyTable, LatencyError> {
    let config = job.net_config()?;
    let mut table = start_or_resume(job, measurer, out)?;
    let expected = table.expected_pieces();
    if table.provenance.fleet.is_some() && table.entries.len() < expected.len() {
        return Err(LatencyError::Resume {
            path: out.to_path_buf(),
            message: "was started by a fleet of devices; finish it with the same --agent list"
                .into(),
        });
    }
    let total = expected.len();
    let already = expected
        .iter()
        .filter(|p| table.entries.contains_key(&p.key()))
        .count();
    if job.once_per_shape {
        copy_to_twins(&mut table, &expected);
    }
    let mut shapes = std::collections::HashSet::new();
    let todo: Vec<Piece> = expected
        .iter()
        .filter(|p| !table.entries.contains_key(&p.key()))
        .filter(|p| !job.once_per_shape || shapes.insert(p.shape()))
        .copied()
        .collect();
    if already > 0 {
        tracing::info!(
            "resuming {}: {already} of {total} pieces already measured",
            out.display()
        );
    }
    let mut reference = table_reference(job, &table)?;
    let how = PieceMeasuring {
        config: &config,
        batch: job.profile.batch,
        group: job.group,
        int8: job.int8.as_ref(),
        drift_model: job.drift_model,
        progress: job.progress,
    };
    measure_pieces(&mut table, &todo, &how, measurer, reference.as_mut(), out)?;
    if job.once_per_shape {
        copy_to_twins(&mut table, &expected);
        table.save(out)?;
    }
    Ok(table)
}

/// Gives every piece of `pieces` without an entry the entry of a twin that has one (the same
/// [`Piece::shape`]; the first measured in `pieces`' order).
fn copy_to_twins(table: &mut LatencyTable, pieces: &[Piece]) {
    let mut measured: std::collections::HashMap<String, EntryStats> = Default::default();
    for p in pieces {
        if let Some(e) = table.entries.get(&p.key()) {
            measured.entry(p.shape()).or_insert_with(|| e.clone());
        }
    }
    for p in pieces {
        if let Some(e) = measured.get(&p.shape()) {
            table.entries.entry(p.key()).or_insert_with(|| e.clone());
        }
    }
}

/// How pieces are measured into a table.
pub(crate) struct PieceMeasuring<'a> {
    /// The networks' configuration the pieces are cut from.
    pub config: &'a hsconas_models::NetConfig,
    /// Batch size.
    pub batch: usize,
    /// Pieces measured together in one interleaved group (at most what the measurer takes).
    pub group: usize,
    /// How INT8 pieces are exported (`None`: FP32 pieces only).
    pub int8: Option<&'a hsconas_devices::Int8Pieces>,
    /// The drift model a new reference network is recorded with.
    pub drift_model: DriftModel,
    /// Show a progress bar.
    pub progress: bool,
}

/// Measures `todo` in interleaved groups (with the reference network when given) into `table`, which
/// is saved atomically to `save_to` after each group.
pub(crate) fn measure_pieces(
    table: &mut LatencyTable,
    todo: &[Piece],
    how: &PieceMeasuring<'_>,
    measurer: &Measurer,
    mut reference: Option<&mut ReferenceModel>,
    save_to: &Path,
) -> Result<(), LatencyError> {
    let bar = progress_bar(todo.len(), None, "pieces", how.progress);
    let capacity = measurer.group_capacity(reference.is_some());
    for group in &piece_groups(todo, how.group.min(capacity)) {
        let models = group_onnx(group, how.config, how.batch, how.int8)?;
        let refs: Vec<&[u8]> = models.iter().map(Vec::as_slice).collect();
        bar.set_message(group_name(group));
        let (outcomes, point) = measurer
            .measure_with_reference(&refs, reference.as_deref_mut(), |_, _| bar.tick())
            .map_err(|e| measuring_error(group, measurer, e))?;
        record_group(
            table,
            group,
            &outcomes,
            point,
            reference.as_deref(),
            how.drift_model,
        )?;
        table.save(save_to)?;
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// `todo` (in profiling order) cut into groups of at most `size` pieces, never parting an INT8 piece from
/// the FP32 twin right before it (when `size` is at least 2), so that the two are measured side by side.
pub(crate) fn piece_groups(todo: &[Piece], size: usize) -> Vec<Vec<Piece>> {
    let size = size.max(1);
    let mut groups: Vec<Vec<Piece>> = Vec::new();
    let mut units: Vec<&[Piece]> = Vec::new();
    let mut i = 0;
    while i < todo.len() {
        let pair = todo
            .get(i + 1)
            .is_some_and(|next| next.precision() == Precision::Int8 && next.as_fp32() == todo[i]);
        let len = if pair && size >= 2 { 2 } else { 1 };
        units.push(&todo[i..i + len]);
        i += len;
    }
    for unit in units {
        match groups.last_mut() {
            Some(group) if group.len() + unit.len() <= size => group.extend_from_slice(unit),
            _ => groups.push(unit.to_vec()),
        }
    }
    groups
}

/// The ONNX models of a group of pieces (INT8 ones exported with `int8`'s settings).
pub(crate) fn group_onnx(
    group: &[Piece],
    config: &hsconas_models::NetConfig,
    batch: usize,
    int8: Option<&hsconas_devices::Int8Pieces>,
) -> Result<Vec<Vec<u8>>, LatencyError> {
    group
        .iter()
        .map(|p| piece_onnx(*p, config, batch, int8))
        .collect()
}

/// The group's name in messages: its first piece's key.
pub(crate) fn group_name(group: &[Piece]) -> String {
    group.first().map(Piece::key).unwrap_or_default()
}

/// The error of a group that could not be measured.
pub(crate) fn measuring_error(
    group: &[Piece],
    measurer: &Measurer,
    e: LatencyError,
) -> LatencyError {
    LatencyError::Measuring {
        what: format!(
            "the group of {} pieces from '{}' on {}",
            group.len(),
            group_name(group),
            measurer.place()
        ),
        source: Box::new(e),
    }
}

/// Puts one measured group into the table: its entries (with the group's point in the reference trace),
/// the provider it ran on (the first group sets the table's; every later one, and a resumed table's, must
/// match), the kernels per provider, and the reference network's trace so far.
pub(crate) fn record_group(
    table: &mut LatencyTable,
    group: &[Piece],
    outcomes: &[hsconas_runtime::measure_job::MeasureOutcome],
    point: Option<usize>,
    reference: Option<&ReferenceModel>,
    drift_model: DriftModel,
) -> Result<(), LatencyError> {
    if let Some(o) = outcomes.first().filter(|_| table.entries.is_empty()) {
        table.provenance.backend_version.clone_from(&o.backend);
        table.provenance.provider = o.provider;
    }
    ensure_provider(table.provenance.provider, outcomes, || {
        format!("the group of pieces from '{}'", group_name(group))
    })?;
    for (piece, outcome) in group.iter().zip(outcomes) {
        let mut stats = entry(&outcome.stats);
        stats.group = point;
        table.entries.insert(piece.key(), stats);
        for (provider, n) in outcome.placement.iter().flatten() {
            *table
                .provenance
                .kernels
                .entry(provider.clone())
                .or_default() += n;
        }
    }
    if let Some(r) = reference {
        table.reference = ReferenceNetwork::from_trace(
            r.arch.to_string(),
            table
                .reference
                .as_ref()
                .map_or(drift_model, |old| old.model),
            (r.timing.burst, r.timing.alone),
            r.trace.clone(),
        );
    }
    Ok(())
}

/// The reference network for this run: the table's own when it has one (a resumed run continues its
/// trace), the default for a new table when the job asks for one, none for a table started without.
pub(crate) fn table_reference(
    job: &ProfileJob,
    table: &LatencyTable,
) -> Result<Option<ReferenceModel>, LatencyError> {
    if table.reference.is_some() {
        return ReferenceModel::of_table(table, true);
    }
    if !job.reference || !table.entries.is_empty() {
        return Ok(None);
    }
    Ok(Some(ReferenceModel::new(
        default_reference_arch(),
        &table.provenance.net_config(),
        table.provenance.batch,
        ReferenceTiming {
            burst: REFERENCE_BURST,
            alone: job.reference_alone,
        },
        table.statistic,
        None,
    )?))
}

pub(crate) fn start_or_resume(
    job: &ProfileJob,
    measurer: &Measurer,
    out: &Path,
) -> Result<LatencyTable, LatencyError> {
    let p = &job.profile;
    let protocol = measurer.protocol().clone();
    if out.exists() {
        let table = LatencyTable::load(out)?;
        let old = &table.provenance;
        let mut diffs: Vec<String> = table.check_matches(p).err().into_iter().collect();
        if old.classes != job.classes {
            diffs.push(format!(
                "classes: table has {}, wanted {}",
                old.classes, job.classes
            ));
        }
        if old.protocol != protocol {
            let json =
                |p: &hsconas_vocabulary::Protocol| serde_json::to_string(p).unwrap_or_default();
            diffs.push(format!(
                "protocol: table has {}, wanted {}",
                json(&old.protocol),
                json(&protocol)
            ));
        }
        if old.int8 != job.int8 {
            let int8 = |i: &Option<hsconas_devices::Int8Pieces>| {
                i.map_or("FP32 pieces only".to_string(), |i| {
                    format!(
                        "INT8 pieces too ({} flavour, {} weight range)",
                        i.flavour, i.weight_range
                    )
                })
            };
            diffs.push(format!(
                "precision: table has {}, wanted {}",
                int8(&old.int8),
                int8(&job.int8)
            ));
        }
        if old.once_per_shape != job.once_per_shape {
            let how = |once: bool| match once {
                true => "one piece per shape",
                false => "every piece",
            };
            diffs.push(format!(
                "pieces: table measures {}, wanted {}",
                how(old.once_per_shape),
                how(job.once_per_shape)
            ));
        }
        if table.statistic != p.statistic {
            diffs.push(format!(
                "statistic: table has {:?}, profile has {:?}",
                table.statistic, p.statistic
            ));
        }
        if !diffs.is_empty() {
            return Err(LatencyError::Resume {
                path: out.to_path_buf(),
                message: format!(
                    "holds a table measured with other settings ({}); delete it or choose another --out",
                    diffs.join("; ")
                ),
            });
        }
        return Ok(table);
    }
    let mut table = new_table(p, job.classes, protocol, measurer, utc_now_rfc3339())?;
    table.provenance.int8 = job.int8;
    table.provenance.once_per_shape = job.once_per_shape;
    Ok(table)
}

/// An empty table of `profile` at `classes` whose pieces are measured with `protocol`, on the device
/// `measurer` measures (its fingerprint recorded), dated `date`.
pub(crate) fn new_table(
    p: &DeviceProfile,
    classes: usize,
    protocol: Protocol,
    measurer: &Measurer,
    date: String,
) -> Result<LatencyTable, LatencyError> {
    Ok(LatencyTable {
        format: FORMAT_VERSION,
        provenance: Provenance {
            device: p.name.clone(),
            fingerprint: measurer.fingerprint()?,
            engine: p.backend,
            backend_version: String::new(),
            provider: p.provider,
            threads: p.threads,
            precision: p.precision,
            int8: None,
            tensorrt_workspace_mib: p.tensorrt_workspace_mib,
            kernels: Default::default(),
            batch: p.batch,
            input_size: p.input_size,
            layout: p.layout,
            classes,
            date,
            protocol,
            fleet: None,
            transfer: None,
            once_per_shape: false,
        },
        statistic: p.statistic,
        entries: Default::default(),
        calibration: None,
        validation: None,
        reference: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_models::build::{all_pieces, mixed_pieces};

    #[test]
    fn groups_keep_each_int8_piece_beside_its_fp32_twin() {
        let mixed = mixed_pieces();
        for size in [2, 3, 16, 17] {
            let groups = piece_groups(&mixed, size);
            assert_eq!(groups.concat(), mixed, "every piece once, in order");
            for group in &groups {
                assert!(group.len() <= size);
                assert!(
                    group[0].precision() != Precision::Int8,
                    "an INT8 piece never opens a group: {:?}",
                    group[0].key()
                );
            }
        }
        // FP32 tables are cut as before: plain chunks.
        let fp32 = all_pieces();
        let chunks: Vec<Vec<Piece>> = fp32.chunks(16).map(<[Piece]>::to_vec).collect();
        assert_eq!(piece_groups(&fp32, 16), chunks);
        // Groups of one cannot pair.
        assert_eq!(piece_groups(&mixed, 1).len(), mixed.len());
    }
}
