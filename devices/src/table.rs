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
    Engine, ExecutionProvider, Fingerprint, Precision, Protocol, Statistic, Stats,
};

/// Version of the table file format.
pub const FORMAT_VERSION: u32 = 1;

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
    /// The architecture marks layers INT8; tables hold FP32 pieces only.
    #[error("the architecture marks layer(s) {layers} as int8, and latency tables measure FP32 pieces only: \
             predict the FP32 network (drop the '@int8' marks) or measure the INT8 export end to end")]
    Precision {
        /// The 1-based layers, comma-separated.
        layers: String,
    },
}

/// Refuses an architecture with INT8 layers: a table's FP32 entries would silently mispredict them.
pub fn require_fp32(arch: &Arch) -> Result<(), TableError> {
    if arch.is_fp32() {
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
        if table.format != FORMAT_VERSION {
            return Err(TableError::Parse {
                path: path.into(),
                message: format!(
                    "format version {} (this build reads {FORMAT_VERSION})",
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

    /// Sum of the entries of the stem, the 20 layers (`skip` entries included) and the head.
    pub fn table_sum_ms(&self, arch: &Arch) -> Result<f64, TableError> {
        require_fp32(arch)?;
        let mut sum = self.entry_ms(&Piece::Stem)? + self.entry_ms(&Piece::Head)?;
        for (layer, choice) in arch.choices().iter().enumerate() {
            sum += self.entry_ms(&Piece::Block {
                layer,
                choice: *choice,
            })?;
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
        Ok(self.correction().apply(self.table_sum_ms(arch)?))
    }

    /// Keys of every piece (`stem`, `head`, each allowed `(layer, choice)`) the table lacks, in profiling order.
    pub fn missing_entries(&self) -> Vec<String> {
        hsconas_models::build::all_pieces()
            .iter()
            .map(Piece::key)
            .filter(|k| !self.entries.contains_key(k))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::correction::CorrectionKind;
    use hsconas_models::build::all_pieces;
    use hsconas_models::SearchSpace;
    use rand::SeedableRng;

    fn stats(ms: f64) -> EntryStats {
        EntryStats {
            stats: Stats {
                min_ms: ms * 0.9,
                p10_ms: ms,
                median_ms: ms * 1.1,
                p90_ms: ms * 1.3,
                mean_ms: ms * 1.15,
                stdev_ms: 0.01,
                runs: 50,
            },
            group: None,
        }
    }

    /// A table of `profile` with made-up entries (0.01 to 0.17 ms), calibrated with B = 0.25 ms.
    pub(crate) fn table_for(profile: &DeviceProfile) -> LatencyTable {
        let entries = all_pieces()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key(), stats(0.01 * (i % 17 + 1) as f64)))
            .collect();
        LatencyTable {
            format: FORMAT_VERSION,
            provenance: Provenance {
                device: profile.name.clone(),
                fingerprint: Fingerprint {
                    cpu_model: "test".into(),
                    ..Fingerprint::default()
                },
                engine: profile.backend,
                backend_version: "onnxruntime 1.31.1".into(),
                provider: profile.provider,
                threads: profile.threads,
                precision: profile.precision,
                tensorrt_workspace_mib: profile.tensorrt_workspace_mib,
                kernels: BTreeMap::new(),
                batch: profile.batch,
                input_size: profile.input_size,
                layout: profile.layout,
                classes: 1000,
                date: "2026-11-28T00:00:00Z".into(),
                protocol: Protocol::default(),
                fleet: None,
                transfer: None,
            },
            statistic: profile.statistic,
            entries,
            calibration: Some(Calibration {
                bias_ms: 0.25,
                linear: None,
                correction: CorrectionKind::Bias,
                held_out_rmse: None,
                seed: 1,
                requested: 0,
                samples: Vec::new(),
                trace: None,
            }),
            validation: None,
            reference: None,
        }
    }

    /// A table with a reference network: entries normalised by their group's speed factor, raw values
    /// kept; a table without one (older files) gives its entries as they are.
    #[test]
    fn entries_are_normalised_to_the_reference_state() {
        use crate::drift::{DriftModel, DriftPoint, DriftTrace, ReferenceNetwork};
        let profile = DeviceProfile::find("local-cpu").expect("shipped");
        let mut table = table_for(&profile);
        let raw = table.entry_ms(&Piece::Stem).expect("stem");
        assert_eq!(table.raw_entry_ms(&Piece::Stem).expect("stem"), raw);
        let trace = DriftTrace {
            started: "2026-12-01T00:00:00Z".into(),
            points: [1.0, 1.1, 0.9]
                .iter()
                .enumerate()
                .map(|(i, &r)| DriftPoint {
                    seconds: i as f64,
                    reference_ms: r,
                })
                .collect(),
        };
        table.reference = ReferenceNetwork::from_trace(
            "x".into(),
            DriftModel::Ratio { window: 1 },
            (1, false),
            trace,
        );
        // An entry without a group (measured before the reference was recorded) stays raw.
        assert_eq!(table.entry_ms(&Piece::Stem).expect("stem"), raw);
        table.entries.get_mut("stem").expect("stem").group = Some(1);
        let normalised = table.entry_ms(&Piece::Stem).expect("stem");
        assert!(
            (normalised - raw / 1.1).abs() < 1e-12,
            "{normalised} vs {raw}"
        );
        assert_eq!(table.raw_entry_ms(&Piece::Stem).expect("stem"), raw);
        let json = serde_json::to_string(&table).expect("JSON");
        let back: LatencyTable = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, table);
        // Raw predictions again under the `raw` model.
        table.reference.as_mut().expect("reference").model = DriftModel::Raw;
        assert_eq!(table.entry_ms(&Piece::Stem).expect("stem"), raw);
    }

    #[test]
    fn round_trips_through_a_file() {
        let profile = DeviceProfile::find("local-cpu").expect("shipped");
        let table = table_for(&profile);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("local-cpu.json");
        table.save(&path).expect("saves");
        assert_eq!(
            LatencyTable::load_for(&path, &profile).expect("loads"),
            table
        );
        std::fs::write(&path, b"{\"format\": 1, \"provenance\":").expect("truncate");
        assert!(matches!(
            LatencyTable::load(&path),
            Err(TableError::Parse { .. })
        ));
    }

    #[test]
    fn a_table_of_another_device_is_refused() {
        let local = DeviceProfile::find("local-cpu").expect("shipped");
        let xavier = DeviceProfile::find("jetson-xavier").expect("shipped");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.json");
        table_for(&local).save(&path).expect("saves");
        let err = LatencyTable::load_for(&path, &xavier)
            .expect_err("other device")
            .to_string();
        assert!(
            err.contains("device: table has local-cpu, profile has jetson-xavier"),
            "{err}"
        );
        assert!(err.contains("batch: table has 1, profile has 16"), "{err}");
        let mut small = local.clone();
        small.input_size = 32;
        let err = LatencyTable::load_for(&path, &small)
            .expect_err("other input size")
            .to_string();
        assert!(
            err.contains("input_size: table has 224, profile has 32") && !err.contains("batch"),
            "{err}"
        );
    }

    #[test]
    fn a_table_built_with_other_tensorrt_settings_is_refused() {
        let xavier = DeviceProfile::find("jetson-xavier").expect("shipped");
        let table = table_for(&xavier);
        assert_eq!(table.check_matches(&xavier), Ok(()));
        let mut fp16 = xavier.clone();
        fp16.precision = Precision::Fp16;
        let err = table.check_matches(&fp16).expect_err("other precision");
        assert!(
            err.contains("precision: table has Fp32, profile has Fp16"),
            "{err}"
        );
        let mut workspace = xavier.clone();
        workspace.tensorrt_workspace_mib = Some(1024);
        let err = table
            .check_matches(&workspace)
            .expect_err("other workspace");
        assert!(
            err.contains("tensorrt_workspace_mib: table has the default, profile has 1024 MiB"),
            "{err}"
        );
        // Tables written before precision was recorded read as FP32.
        let mut json = serde_json::to_value(&table).expect("serialises");
        json["provenance"]
            .as_object_mut()
            .expect("object")
            .remove("precision");
        let old: LatencyTable = serde_json::from_value(json).expect("reads");
        assert_eq!(old.provenance.precision, Precision::Fp32);
    }

    #[test]
    fn prediction_is_the_hand_sum_plus_bias() {
        let profile = DeviceProfile::find("local-cpu").expect("shipped");
        let table = table_for(&profile);
        let arch = SearchSpace::full().sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(4));
        let mut hand = table.entries["stem"].stats.p10_ms + table.entries["head"].stats.p10_ms;
        for (l, c) in arch.choices().iter().enumerate() {
            hand += table.entries[&format!("L{}:{c}", l + 1)].stats.p10_ms;
        }
        assert!((table.table_sum_ms(&arch).expect("sum") - hand).abs() < 1e-12);
        assert!((table.predict_ms(&arch).expect("predict") - hand - 0.25).abs() < 1e-12);
        let mut partial = table;
        partial.entries.remove("head");
        assert!(
            matches!(partial.predict_ms(&arch), Err(TableError::MissingEntry(k)) if k == "head")
        );
    }
}
