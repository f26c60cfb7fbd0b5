//! Latency tables (docs/DESIGN.md section 3): per-piece timing statistics measured on one device, with the
//! provenance that ties them to it, the calibration bias and validation metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hsconas_models::build::Piece;
use hsconas_models::{Arch, Layout, NetConfig};
use serde::{Deserialize, Serialize};

use crate::correction::{Calibration, Correction};
use crate::profile::DeviceProfile;
use hsconas_vocabulary::{
    Engine, ExecutionProvider, Fingerprint, Int8Flavour, Precision, Protocol, Statistic, Stats,
    WeightRange,
};

/// Version of the table file format. Version 2 added INT8 entries (`L<l>:<op>:<scale>@int8`, with
/// [`Provenance::int8`]); version-1 files are read as FP32 tables.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest table format this build reads.
const OLDEST_FORMAT: u32 = 1;

/// Why a table was refused or could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A file-system step failed (what was done, to which path, and why).
    #[error(transparent)]
    Fs(#[from] hsconas_foundation::FsError),
    /// Not a latency table (or a truncated one).
    #[error("'{path}' is not a valid latency table: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// Measured on another device or with other settings than the profile in use.
    #[error("latency table '{path}' does not match device profile '{device}': {mismatches}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The profile in use.
        device: String,
        /// `field: table has X, profile has Y` for every field that differs.
        mismatches: String,
    },
    /// The table lacks entries (an interrupted or partial profile).
    #[error("latency table is incomplete: {missing} entries missing (first: '{first}'); run `hsconas profile` again with the same --out to finish it")]
    Incomplete {
        /// How many are missing.
        missing: usize,
        /// The first missing key.
        first: String,
    },
    /// A piece the architecture needs is not in the table.
    #[error("latency table has no entry '{0}' (profile the device again, or with the layout/input size in use)")]
    MissingEntry(String),
    /// An INT8 comparison asked of a table that measured FP32 pieces only.
    #[error(
        "this latency table measured FP32 pieces only: profile the device with `hsconas profile \
             --precision mixed` to measure every block in INT8 too"
    )]
    NotMixed,
    /// The architecture marks layers INT8 and the table measured FP32 pieces only.
    #[error("the architecture marks layer(s) {layers} as int8, and this latency table measured FP32 pieces \
             only: predict the FP32 network (drop the '@int8' marks), or profile the device with \
             `hsconas profile --precision mixed` to measure every block in INT8 too")]
    Precision {
        /// The 1-based layers, comma-separated.
        layers: String,
    },
}

/// Refuses an architecture with INT8 layers for a table (or its compiled model) without INT8 entries
/// (`mixed` false), naming the layers.
pub(crate) fn check_precisions(arch: &Arch, mixed: bool) -> Result<(), TableError> {
    if arch.is_fp32() || mixed {
        return Ok(());
    }
    let layers: Vec<String> = arch
        .int8_layers()
        .iter()
        .map(|l| (l + 1).to_string())
        .collect();
    Err(TableError::Precision {
        layers: layers.join(", "),
    })
}

/// How a mixed-precision table's INT8 pieces were exported (`hsconas profile --precision mixed`): each
/// block quantised whole (input at its entry, output at its exit) as `hsconas export onnx --piece KEY
/// --precision int8` does, calibrated on seeded random inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Int8Pieces {
    /// The runtime the QDQ pieces were made for.
    pub flavour: Int8Flavour,
    /// The weights' resolution: `reduced` (7 bits) where the measuring CPU is x86 without VNNI, whose
    /// fast kernels saturate with full-range weights.
    pub weight_range: WeightRange,
    /// Seeded random inputs each piece was calibrated on.
    pub calibration_inputs: usize,
}

/// Timing statistics of one piece, in milliseconds, and the group it was measured in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryStats {
    /// The runtime's summary of the piece's timed runs (raw; [`LatencyTable::entry_ms`] normalises).
    #[serde(flatten)]
    pub stats: Stats,
    /// The group the piece was measured in: its index in the table's reference trace (`None` in tables
    /// without a reference network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
}

impl EntryStats {
    /// The statistic the table uses.
    pub fn get(&self, statistic: Statistic) -> f64 {
        self.stats.get(statistic)
    }
}

/// Where and how a table was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Device profile name.
    pub device: String,
    /// The device's fingerprint (CPU, cores, memory, OS, GPUs, power state), as the runtime reported it.
    pub fingerprint: Fingerprint,
    /// Engine of the profile.
    pub engine: Engine,
    /// Engine and version as the runtime reported it, e.g. `onnxruntime 1.31.1`.
    pub backend_version: String,
    /// Execution provider actually used.
    pub provider: ExecutionProvider,
    /// Intra-op threads.
    pub threads: usize,
    /// Precision of the profile (tables from before it was recorded were all `fp32`).
    #[serde(default)]
    pub precision: Precision,
    /// Set in a mixed-precision table (every block with weights measured in INT8 too): how its INT8
    /// pieces were made. `None`: FP32 pieces only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<Int8Pieces>,
    /// TensorRT's engine-building workspace in MiB, when the profile set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorrt_workspace_mib: Option<usize>,
    /// Kernels per execution provider summed over the pieces, as ONNX Runtime's profiler saw them (GPU
    /// providers; empty on the CPU): a TensorRT table with `cpu` kernels ran part of its pieces on the CPU.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kernels: BTreeMap<String, usize>,
    /// Batch size.
    pub batch: usize,
    /// Input size.
    pub input_size: usize,
    /// Layout.
    pub layout: Layout,
    /// Classes of the classifier in the head entry (and of the calibration networks).
    #[serde(default = "imagenet_classes")]
    pub classes: usize,
    /// When it was measured (RFC 3339, UTC).
    pub date: String,
    /// The runtime's timing protocol (warm-up, runs, minimum time, ...), as it reported it.
    pub protocol: Protocol,
    /// When a fleet of devices measured the table (`hsconas profile --agent A --agent B ...`): each device,
    /// its share, and the calibration that showed they agree. `fingerprint` is then the first device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::FleetAgreement>,
    /// When the entries were transferred from another table instead of measured here
    /// (`hsconas_devices::transfer`): from what and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<crate::transfer::TransferRecord>,
    /// One piece of each shape was measured and its twins took its entry (`hsconas profile
    /// --once-per-shape`; twins: [`hsconas_models::build::Piece::shape`]); `false`: every piece was
    /// measured.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once_per_shape: bool,
}

fn imagenet_classes() -> usize {
    1000
}

impl Provenance {
    /// The network configuration the table was measured for.
    pub fn net_config(&self) -> NetConfig {
        NetConfig {
            layout: self.layout,
            input_size: self.input_size,
            classes: self.classes,
        }
    }
}

/// A latency table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyTable {
    /// File format version.
    pub format: u32,
    /// Where and how it was measured.
    pub provenance: Provenance,
    /// Which statistic predictions use.
    pub statistic: Statistic,
    /// Statistics by piece key (`stem`, `head`, `L<l>:<op>:<scale>`).
    pub entries: BTreeMap<String, EntryStats>,
    /// The calibrated bias, once `calibrate` ran.
    #[serde(default)]
    pub calibration: Option<Calibration>,
    /// Validation metrics, once `validate` ran (free-form report).
    #[serde(default)]
    pub validation: Option<serde_json::Value>,
    /// The reference network timed in every group of pieces, and its latency in the table's state
    /// (`None` in tables from before it was recorded: they cannot normalise measurements for drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<crate::drift::ReferenceNetwork>,
}

impl LatencyTable {
    /// Reads a table.
    pub fn load(path: &Path) -> Result<LatencyTable, TableError> {
        let bytes = std::fs::read(path).map_err(|source| {
            TableError::Fs(hsconas_foundation::FsError::new(
                "reading latency table",
                path,
                source,
            ))
        })?;
        let table: LatencyTable =
            serde_json::from_slice(&bytes).map_err(|e| TableError::Parse {
                path: path.into(),
                message: e.to_string(),
            })?;
        if !(OLDEST_FORMAT..=FORMAT_VERSION).contains(&table.format) {
            return Err(TableError::Parse {
                path: path.into(),
                message: format!(
                    "format version {} (this build reads {OLDEST_FORMAT} to {FORMAT_VERSION})",
                    table.format
                ),
            });
        }
        Ok(table)
    }

    /// Reads a table and refuses it unless it was measured for `profile`.
    pub fn load_for(path: &Path, profile: &DeviceProfile) -> Result<LatencyTable, TableError> {
        let table = LatencyTable::load(path)?;
        table
            .check_matches(profile)
            .map_err(|mismatches| TableError::Mismatch {
                path: path.into(),
                device: profile.name.clone(),
                mismatches,
            })?;
        Ok(table)
    }

    /// Writes the table atomically (pretty JSON).
    pub fn save(&self, path: &Path) -> Result<(), TableError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| TableError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        Ok(hsconas_foundation::write_atomic(path, &json)?)
    }

    /// `Err` with every field on which the table and the profile disagree.
    pub fn check_matches(&self, profile: &DeviceProfile) -> Result<(), String> {
        let p = &self.provenance;
        let mut diffs = Vec::new();
        let mut check = |field: &str, table: String, wanted: String| {
            if table != wanted {
                diffs.push(format!("{field}: table has {table}, profile has {wanted}"));
            }
        };
        check("device", p.device.clone(), profile.name.clone());
        check(
            "backend",
            format!("{:?}", p.engine),
            format!("{:?}", profile.backend),
        );
        check("batch", p.batch.to_string(), profile.batch.to_string());
        check(
            "threads",
            p.threads.to_string(),
            profile.threads.to_string(),
        );
        check(
            "input_size",
            p.input_size.to_string(),
            profile.input_size.to_string(),
        );
        check("layout", p.layout.to_string(), profile.layout.to_string());
        check(
            "precision",
            format!("{:?}", p.precision),
            format!("{:?}", profile.precision),
        );
        let workspace =
            |mib: Option<usize>| mib.map_or("the default".into(), |m| format!("{m} MiB"));
        check(
            "tensorrt_workspace_mib",
            workspace(p.tensorrt_workspace_mib),
            workspace(profile.tensorrt_workspace_mib),
        );
        let provider_ok =
            p.provider == profile.provider || profile.fallback_providers.contains(&p.provider);
        if !provider_ok {
            diffs.push(format!(
                "provider: table has {:?}, profile allows {:?}",
                p.provider, profile.provider
            ));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("; "))
        }
    }

    /// The table's value for one piece, in the table's reference state: the raw statistic divided by the
    /// speed factor of the group it was measured in (under the reference's drift model), or the raw
    /// statistic when the table has no reference or the entry no group.
    pub fn entry_ms(&self, piece: &Piece) -> Result<f64, TableError> {
        let key = piece.key();
        let entry = self
            .entries
            .get(&key)
            .ok_or(TableError::MissingEntry(key))?;
        let raw = entry.get(self.statistic);
        Ok(match (&self.reference, entry.group) {
            (Some(reference), Some(group)) => {
                crate::drift::normalise(raw, reference.factor_at(group))
            }
            _ => raw,
        })
    }

    /// The raw statistic of one piece, as measured (no drift normalisation).
    pub fn raw_entry_ms(&self, piece: &Piece) -> Result<f64, TableError> {
        let key = piece.key();
        self.entries
            .get(&key)
            .map(|e| e.get(self.statistic))
            .ok_or(TableError::MissingEntry(key))
    }

    /// Whether the table measured INT8 pieces besides the FP32 ones.
    pub fn is_mixed(&self) -> bool {
        self.provenance.int8.is_some()
    }

    /// Refuses an architecture with INT8 layers unless the table measured INT8 pieces (its FP32 entries
    /// would silently mispredict them).
    pub fn check_precisions(&self, arch: &Arch) -> Result<(), TableError> {
        check_precisions(arch, self.is_mixed())
    }

    /// Sum of the entries of the stem, the 20 layers in their precisions (`skip` entries included) and
    /// the head.
    pub fn table_sum_ms(&self, arch: &Arch) -> Result<f64, TableError> {
        self.check_precisions(arch)?;
        let mut sum = self.entry_ms(&Piece::Stem)? + self.entry_ms(&Piece::Head)?;
        for piece in hsconas_models::build::arch_pieces(arch) {
            if let Piece::Block { .. } = piece {
                sum += self.entry_ms(&piece)?;
            }
        }
        Ok(sum)
    }

    /// The calibrated correction ([`Correction::NONE`] before calibration).
    pub fn correction(&self) -> Correction {
        self.calibration
            .as_ref()
            .map_or(Correction::NONE, Calibration::active)
    }

    /// Predicted latency: the table sum with the calibrated correction (the paper's `+ B` by default).
    /// For many predictions, compile a [`LatencyModel`](crate::LatencyModel) once instead.
    pub fn predict_ms(&self, arch: &Arch) -> Result<f64, TableError> {
        Ok(self.correction().predict(self.table_sum_ms(arch)?, arch))
    }

    /// Every piece the table measures, in profiling order: the stem, each allowed `(layer, choice)` (in a
    /// mixed table followed by its INT8 twin when it has weights), the head.
    pub fn expected_pieces(&self) -> Vec<Piece> {
        if self.is_mixed() {
            hsconas_models::build::mixed_pieces()
        } else {
            hsconas_models::build::all_pieces()
        }
    }

    /// Keys of every expected piece the table lacks, in profiling order.
    pub fn missing_entries(&self) -> Vec<String> {
        self.expected_pieces()
            .iter()
            .map(Piece::key)
            .filter(|k| !self.entries.contains_key(k))
            .collect()
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
pub(crate) mod tests;
