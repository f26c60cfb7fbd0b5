//! The latency model compiled for speed: every table entry in a dense array, so that one prediction is 22
//! lookups and a multiply-add (the search calls it millions of times).

use hsconas_models::build::Piece;
use hsconas_models::{Arch, Choice, NetConfig, SearchSpace, NUM_LAYERS};
use hsconas_vocabulary::Precision;
use serde::Serialize;

use crate::correction::Correction;
use crate::table::{LatencyTable, TableError};

/// One layer's share of a prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPart {
    /// 1-based layer.
    pub layer: usize,
    /// The layer's choice.
    pub choice: Choice,
    /// The precision it runs in.
    pub precision: Precision,
    /// Its table entry, ms.
    pub ms: f64,
}

/// A prediction with its parts (what `hsconas latency predict --json` prints).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The prediction, ms.
    pub predicted_ms: f64,
    /// Sum of the table entries, ms.
    pub table_sum_ms: f64,
    /// `predicted_ms - table_sum_ms`.
    pub bias_ms: f64,
    /// The correction applied.
    pub correction: Correction,
    /// Stem entry, ms.
    pub stem_ms: f64,
    /// Head entry, ms.
    pub head_ms: f64,
    /// One entry per layer.
    pub layers: Vec<LayerPart>,
}

/// A latency table's entries in dense form plus a correction.
///
/// Contract: built only from a table with every entry of every layer's allowed choices (in INT8 too for a
/// mixed-precision table), so predictions of architectures [`supports`](LatencyModel::supports) accepts
/// never fail; `table_sum_ms` equals [`LatencyTable::table_sum_ms`] to the last bit (same summation order).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyModel {
    stem_ms: f64,
    head_ms: f64,
    /// `layers[l][choice.index()]`; NaN where the layer does not allow the choice.
    layers: Vec<[f64; Choice::COUNT]>,
    /// The same for INT8 blocks; all NaN when the table measured FP32 pieces only.
    int8_layers: Vec<[f64; Choice::COUNT]>,
    mixed: bool,
    correction: Correction,
}

impl LatencyModel {
    /// Compiles a table with the given correction. Fails naming the first missing entry.
    pub fn new(table: &LatencyTable, correction: Correction) -> Result<LatencyModel, TableError> {
        let missing = table.missing_entries();
        if let Some(first) = missing.first() {
            return Err(TableError::Incomplete {
                missing: missing.len(),
                first: first.clone(),
            });
        }
        let mut layers = vec![[f64::NAN; Choice::COUNT]; NUM_LAYERS];
        let mut int8_layers = layers.clone();
        for piece in table.expected_pieces() {
            if let Piece::Block {
                layer,
                choice,
                precision,
            } = piece
            {
                let rows = match precision {
                    Precision::Int8 => &mut int8_layers,
                    _ => &mut layers,
                };
                rows[layer][choice.index()] = table.entry_ms(&piece)?;
            }
        }
        Ok(LatencyModel {
            stem_ms: table.entry_ms(&Piece::Stem)?,
            head_ms: table.entry_ms(&Piece::Head)?,
            layers,
            int8_layers,
            mixed: table.is_mixed(),
            correction,
        })
    }

    /// Compiles a table with the correction it was calibrated with (none before calibration).
    pub fn from_table(table: &LatencyTable) -> Result<LatencyModel, TableError> {
        LatencyModel::new(table, table.correction())
    }

    /// The correction in use.
    pub fn correction(&self) -> Correction {
        self.correction
    }

    /// Whether the table measured INT8 blocks too.
    pub fn is_mixed(&self) -> bool {
        self.mixed
    }

    /// Refuses an architecture with INT8 layers when the table measured FP32 pieces only (its prediction
    /// would be NaN): callers that take architectures from users check them first.
    pub fn supports(&self, arch: &Arch) -> Result<(), TableError> {
        crate::table::check_precisions(arch, self.mixed)
    }

    /// One layer's entry, ms.
    #[inline]
    fn entry(&self, layer: usize, choice: Choice, precision: Precision) -> f64 {
        let rows = match precision {
            Precision::Int8 => &self.int8_layers,
            _ => &self.layers,
        };
        rows[layer][choice.index()]
    }

    /// Sum of the table entries of the stem, the 20 layers in their precisions and the head, ms (NaN for
    /// an architecture [`supports`](LatencyModel::supports) refuses).
    #[inline]
    pub fn table_sum_ms(&self, arch: &Arch) -> f64 {
        let mut sum = self.stem_ms + self.head_ms;
        for (layer, (choice, precision)) in arch.choices().iter().zip(arch.precisions()).enumerate()
        {
            sum += self.entry(layer, *choice, *precision);
        }
        sum
    }

    /// Predicted latency, ms.
    #[inline]
    pub fn predict_ms(&self, arch: &Arch) -> f64 {
        self.correction.predict(self.table_sum_ms(arch), arch)
    }

    /// `arch` with every layer at the precision this model predicts faster for its operator and width,
    /// among those `space` allows for it (`skip` and layers with one allowed precision unchanged): the
    /// INT8 entry plus the correction's INT8 term of the layer's stage against the FP32 entry, both
    /// through the correction's scale. The prediction is additive over layers, so no other assignment
    /// of precisions to these choices is predicted faster. Ties keep the layer's precision.
    pub fn fastest_precisions(&self, arch: &Arch, space: &SearchSpace) -> Arch {
        let choices = *arch.choices();
        let mut precisions = *arch.precisions();
        for (layer, (choice, precision)) in choices.iter().zip(&mut precisions).enumerate() {
            let allowed = &space.layers()[layer];
            let both = [Precision::Fp32, Precision::Int8]
                .iter()
                .all(|&p| allowed.allows(*choice, p));
            if choice.is_skip() || !both || !self.mixed {
                continue;
            }
            let fp32 = self.correction.scale * self.entry(layer, *choice, Precision::Fp32);
            let int8 = self.correction.scale * self.entry(layer, *choice, Precision::Int8)
                + self.correction.int8_ms_per_stage[NetConfig::stage_of(layer)];
            if int8 < fp32 {
                *precision = Precision::Int8;
            } else if fp32 < int8 {
                *precision = Precision::Fp32;
            }
        }
        Arch::with_precisions(choices, precisions).unwrap_or_else(|_| arch.clone())
    }

    /// The prediction with its parts.
    pub fn explain(&self, arch: &Arch) -> Prediction {
        let table_sum_ms = self.table_sum_ms(arch);
        let predicted_ms = self.correction.predict(table_sum_ms, arch);
        Prediction {
            predicted_ms,
            table_sum_ms,
            bias_ms: predicted_ms - table_sum_ms,
            correction: self.correction,
            stem_ms: self.stem_ms,
            head_ms: self.head_ms,
            layers: arch
                .choices()
                .iter()
                .zip(arch.precisions())
                .enumerate()
                .map(|(l, (&choice, &precision))| LayerPart {
                    layer: l + 1,
                    choice,
                    precision,
                    ms: self.entry(l, choice, precision),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceProfile, EntryStats, Provenance, FORMAT_VERSION};
    use hsconas_models::build::all_pieces;
    use hsconas_models::SearchSpace;
    use hsconas_vocabulary::{Fingerprint, Protocol, Stats};
    use rand::SeedableRng;

    fn table() -> LatencyTable {
        let profile = DeviceProfile::find("local-cpu").expect("shipped");
        let entries = all_pieces()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let ms = 0.003 * (i % 23 + 1) as f64;
                let stats = EntryStats {
                    stats: Stats::from_samples(&[ms]).expect("one sample"),
                    group: None,
                };
                (p.key(), stats)
            })
            .collect();
        LatencyTable {
            format: FORMAT_VERSION,
            provenance: Provenance {
                device: profile.name.clone(),
                fingerprint: Fingerprint::default(),
                engine: profile.backend,
                backend_version: "test".into(),
                provider: profile.provider,
                threads: 1,
                precision: profile.precision,
                int8: None,
                tensorrt_workspace_mib: None,
                kernels: Default::default(),
                batch: 1,
                input_size: 224,
                layout: profile.layout,
                classes: 1000,
                date: String::new(),
                protocol: Protocol::default(),
                fleet: None,
                transfer: None,
                once_per_shape: false,
            },
            statistic: profile.statistic,
            entries,
            calibration: None,
            validation: None,
            reference: None,
        }
    }

    #[test]
    fn compiled_model_agrees_with_the_table_exactly() {
        let table = table();
        let correction = Correction::line(1.07, 0.4);
        let model = LatencyModel::new(&table, correction).expect("complete");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..200 {
            let arch = SearchSpace::full().sample(&mut rng);
            let sum = table.table_sum_ms(&arch).expect("complete");
            assert_eq!(model.table_sum_ms(&arch), sum);
            assert_eq!(model.predict_ms(&arch), 1.07 * sum + 0.4);
            let parts = model.explain(&arch);
            let hand =
                parts.stem_ms + parts.head_ms + parts.layers.iter().map(|l| l.ms).sum::<f64>();
            assert!((hand - parts.table_sum_ms).abs() < 1e-12);
            assert!((parts.predicted_ms - parts.table_sum_ms - parts.bias_ms).abs() < 1e-12);
        }
    }

    #[test]
    fn an_incomplete_table_is_refused_with_the_missing_key() {
        let mut table = table();
        table.entries.remove("L7:xception:0.3");
        let err = LatencyModel::from_table(&table).expect_err("incomplete");
        assert!(
            matches!(&err, TableError::Incomplete { missing: 1, first } if first == "L7:xception:0.3"),
            "{err}"
        );
    }
}
