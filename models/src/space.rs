//! Per-layer sets of allowed choices: the full space of docs/DESIGN.md section 2 or a shrunk one.

use std::collections::BTreeSet;

use hsconas_vocabulary::Precision;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::error::{ArchError, SpaceError};
use crate::layout::{NetConfig, NUM_LAYERS};
use crate::op::{Choice, Op, Scale};

/// The choices one layer may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpace {
    /// Allowed operators (`skip` only in stride-1 layers).
    pub ops: BTreeSet<Op>,
    /// Allowed channel scales, in tenths (`1..=10`); ignored for `skip`.
    pub scales: BTreeSet<u8>,
    /// Precisions a block with weights may run in: FP32 only (the default, absent from files), INT8
    /// only, or both (a mixed-precision search); `skip` is always FP32. FP16 is not a layer's precision.
    #[serde(default = "fp32_only", skip_serializing_if = "is_fp32_only")]
    pub precisions: BTreeSet<Precision>,
}

fn fp32_only() -> BTreeSet<Precision> {
    [Precision::Fp32].into()
}

fn is_fp32_only(precisions: &BTreeSet<Precision>) -> bool {
    *precisions == fp32_only()
}

impl LayerSpace {
    /// Every choice of the 0-based layer: 40 in stride-2 layers, 41 in stride-1 layers.
    pub fn full(layer: usize) -> LayerSpace {
        let ops = Op::ALL
            .into_iter()
            .filter(|op| *op != Op::Skip || !NetConfig::is_stride2(layer))
            .collect();
        LayerSpace {
            ops,
            scales: Scale::all().map(Scale::tenths).collect(),
            precisions: fp32_only(),
        }
    }

    /// The same set with `precisions` for its blocks.
    pub fn with_precisions(mut self, precisions: BTreeSet<Precision>) -> LayerSpace {
        self.precisions = precisions;
        self
    }

    /// The distinct choices, in canonical order (skip counts once).
    pub fn choices(&self) -> Vec<Choice> {
        let mut out = Vec::new();
        for &op in &self.ops {
            if op == Op::Skip {
                out.push(Choice::SKIP);
                continue;
            }
            out.extend(
                self.scales
                    .iter()
                    .filter_map(|&t| Scale::from_tenths(t))
                    .map(|s| Choice::new(op, s)),
            );
        }
        out
    }

    /// Number of distinct (choice, precision) pairs: each block choice in each allowed precision,
    /// `skip` once.
    pub fn len(&self) -> usize {
        let blocks = self.ops.iter().filter(|op| **op != Op::Skip).count();
        blocks * self.scales.len() * self.precisions.len()
            + usize::from(self.ops.contains(&Op::Skip))
    }

    /// Whether no choice is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the set for the 0-based `layer`: scales in `1..=10`, no `skip` in a stride-2 layer,
    /// precisions among FP32 and INT8, and at least one choice.
    pub fn validate(&self, layer: usize) -> Result<(), SpaceError> {
        if self.precisions.is_empty() || self.precisions.contains(&Precision::Fp16) {
            return Err(SpaceError::BadPrecisions {
                layer: layer + 1,
                precisions: self.precisions.iter().map(|p| p.to_string()).collect(),
            });
        }
        if let Some(&tenths) = self.scales.iter().find(|t| !(1..=10).contains(*t)) {
            return Err(SpaceError::BadScale {
                layer: layer + 1,
                tenths,
            });
        }
        if self.ops.contains(&Op::Skip) && NetConfig::is_stride2(layer) {
            return Err(SpaceError::SkipInStride2 {
                layer: layer + 1,
                stage: NetConfig::stage_of(layer) + 1,
            });
        }
        if self.is_empty() {
            return Err(SpaceError::EmptyLayer {
                layer: layer + 1,
                ops: self.ops.iter().map(|op| op.to_string()).collect(),
                scales: self.scales.iter().copied().collect(),
            });
        }
        Ok(())
    }

    /// Whether the layer may take `choice` (in some precision).
    pub fn contains(&self, choice: Choice) -> bool {
        self.ops.contains(&choice.op())
            && (choice.is_skip() || self.scales.contains(&choice.scale().tenths()))
    }

    /// Whether the layer may take `choice` in `precision` (`skip` only in FP32).
    pub fn allows(&self, choice: Choice, precision: Precision) -> bool {
        self.contains(choice)
            && if choice.is_skip() {
                precision == Precision::Fp32
            } else {
                self.precisions.contains(&precision)
            }
    }
}

/// Per layer, the allowed choices. Always valid: one non-empty set per layer, scales in `1..=10`, no
/// `skip` in a stride-2 layer (deserialising checks this and names the first offending layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedSpace")]
pub struct SearchSpace {
    layers: Vec<LayerSpace>,
}

/// A search space as read from a file, before [`SearchSpace`]'s checks.
#[derive(Deserialize)]
struct UncheckedSpace {
    layers: Vec<LayerSpace>,
}

impl TryFrom<UncheckedSpace> for SearchSpace {
    type Error = SpaceError;

    fn try_from(raw: UncheckedSpace) -> Result<SearchSpace, SpaceError> {
        if raw.layers.len() != NUM_LAYERS {
            return Err(SpaceError::WrongLayerCount {
                expected: NUM_LAYERS,
                found: raw.layers.len(),
            });
        }
        for (layer, space) in raw.layers.iter().enumerate() {
            space.validate(layer)?;
        }
        Ok(SearchSpace { layers: raw.layers })
    }
}

impl Default for SearchSpace {
    fn default() -> Self {
        SearchSpace::full()
    }
}

impl SearchSpace {
    /// The whole space: `40^4 * 41^16` architectures.
    pub fn full() -> SearchSpace {
        SearchSpace {
            layers: (0..NUM_LAYERS).map(LayerSpace::full).collect(),
        }
    }

    /// The same space with every layer's blocks allowed `precisions` (`{fp32, int8}`: a mixed-precision
    /// search; `{int8}`: every block INT8); refuses an empty set or FP16.
    pub fn with_precisions(
        &self,
        precisions: &BTreeSet<Precision>,
    ) -> Result<SearchSpace, SpaceError> {
        let mut space = self.clone();
        for (layer, slot) in space.layers.iter_mut().enumerate() {
            let updated = slot.clone().with_precisions(precisions.clone());
            updated.validate(layer)?;
            *slot = updated;
        }
        Ok(space)
    }

    /// The precisions allowed anywhere in the space (`{fp32}` for an FP32 search).
    pub fn precisions(&self) -> BTreeSet<Precision> {
        self.layers
            .iter()
            .flat_map(|l| l.precisions.iter().copied())
            .collect()
    }

    /// The per-layer sets.
    pub fn layers(&self) -> &[LayerSpace] {
        &self.layers
    }

    /// Replaces the 0-based `layer`'s set. Refuses a layer that does not exist and a set that
    /// [`LayerSpace::validate`] refuses.
    pub fn set_layer(&mut self, layer: usize, space: LayerSpace) -> Result<(), SpaceError> {
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or(SpaceError::LayerOutOfRange(layer))?;
        space.validate(layer)?;
        *slot = space;
        Ok(())
    }

    /// Number of architectures, exactly.
    pub fn size(&self) -> u128 {
        self.layers.iter().map(|l| l.len() as u128).product()
    }

    /// Whether every layer of `arch`, in its precision, is allowed; names the first layer that is not.
    pub fn check(&self, arch: &Arch) -> Result<(), ArchError> {
        let layers = arch.choices().iter().zip(arch.precisions());
        for (layer, (space, (choice, precision))) in self.layers.iter().zip(layers).enumerate() {
            if !space.allows(*choice, *precision) {
                let shown = match precision {
                    Precision::Fp32 => choice.to_string(),
                    p => format!("{choice}@{p}"),
                };
                return Err(ArchError::NotInSpace {
                    layer: layer + 1,
                    choice: shown,
                });
            }
        }
        Ok(())
    }

    /// An architecture drawn uniformly: each layer uniformly among its distinct choices, then (a layer
    /// with more than one precision, when the choice has weights) uniformly among its precisions. The
    /// same seeded generator gives the same architectures on every run and platform; an FP32 space draws
    /// exactly what it drew before precisions existed.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Arch {
        let mut choices = [Choice::SKIP; NUM_LAYERS];
        let mut precisions = [Precision::Fp32; NUM_LAYERS];
        for ((slot, precision), space) in choices.iter_mut().zip(&mut precisions).zip(&self.layers)
        {
            let options = space.choices();
            *slot = options[rng.random_range(0..options.len())];
            if !slot.is_skip() {
                let allowed: Vec<Precision> = space.precisions.iter().copied().collect();
                *precision = match allowed.len() {
                    1 => allowed[0],
                    n => allowed[rng.random_range(0..n)],
                };
            }
        }
        // Every layer space is valid (checked on construction and deserialisation), so this cannot fail.
        Arch::with_precisions(choices, precisions)
            .unwrap_or_else(|e| unreachable!("sampled an invalid architecture: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn full_space_has_the_documented_size() {
        let space = SearchSpace::full();
        assert_eq!(space.layers()[0].len(), 40);
        assert_eq!(space.layers()[1].len(), 41);
        assert_eq!(space.size(), 40u128.pow(4) * 41u128.pow(16));
        assert!((space.size() as f64 - 1.6e32).abs() / 1.6e32 < 0.05);
    }

    #[test]
    fn sampling_is_reproducible_for_a_seed() {
        let space = SearchSpace::full();
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..5)
                .map(|_| space.sample(&mut rng).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn a_mixed_space_draws_both_precisions_and_checks_them() {
        let fp32 = SearchSpace::full();
        let mixed = fp32
            .with_precisions(&[Precision::Fp32, Precision::Int8].into())
            .expect("valid");
        assert_eq!(mixed.size(), 80u128.pow(4) * 81u128.pow(16));
        assert_eq!(
            mixed.precisions(),
            [Precision::Fp32, Precision::Int8].into()
        );
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut int8, mut blocks) = (0, 0);
        for _ in 0..50 {
            let arch = mixed.sample(&mut rng);
            assert!(mixed.check(&arch).is_ok());
            if !arch.is_fp32() {
                let err = fp32.check(&arch).expect_err("INT8 outside an FP32 space");
                assert!(err.to_string().contains("@int8"), "{err}");
            }
            int8 += arch.int8_layers().len();
            blocks += arch.choices().iter().filter(|c| !c.is_skip()).count();
        }
        assert!(
            (0.4..0.6).contains(&(int8 as f64 / blocks as f64)),
            "{int8} of {blocks}"
        );
        let all_int8 = fp32
            .with_precisions(&[Precision::Int8].into())
            .expect("valid");
        let arch = all_int8.sample(&mut rng);
        assert_eq!(
            arch.int8_layers().len(),
            arch.choices().iter().filter(|c| !c.is_skip()).count()
        );
        assert!(fp32.with_precisions(&[Precision::Fp16].into()).is_err());
        assert!(fp32.with_precisions(&BTreeSet::new()).is_err());
        // Files: an FP32 space writes no precisions; a mixed one round-trips.
        let json = serde_json::to_value(&fp32).expect("JSON");
        assert!(json["layers"][0].get("precisions").is_none());
        let back: SearchSpace =
            serde_json::from_value(serde_json::to_value(&mixed).expect("JSON")).expect("reads");
        assert_eq!(back, mixed);
    }

    #[test]
    fn shrunk_space_is_respected() {
        let mut space = SearchSpace::full();
        let only = LayerSpace {
            ops: [Op::Shuffle5].into(),
            scales: [3, 4].into(),
            precisions: fp32_only(),
        };
        space.set_layer(19, only.clone()).expect("valid");
        assert_eq!(space.size(), SearchSpace::full().size() / 41 * 2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let arch = space.sample(&mut rng);
            assert!(only.contains(arch.choices()[19]));
            assert!(space.check(&arch).is_ok());
        }
        let with_skip = LayerSpace {
            ops: [Op::Skip].into(),
            scales: [1].into(),
            precisions: fp32_only(),
        };
        assert!(space.set_layer(16, with_skip).is_err());
        let empty = LayerSpace {
            ops: BTreeSet::new(),
            scales: [1].into(),
            precisions: fp32_only(),
        };
        assert!(space.set_layer(3, empty).is_err());
        assert_eq!(
            space.set_layer(20, only),
            Err(SpaceError::LayerOutOfRange(20))
        );
    }

    #[test]
    fn invalid_space_files_are_refused_with_the_layer_named() {
        let full = serde_json::to_value(SearchSpace::full()).expect("serialise");
        let with_layer = |layer: usize, value: serde_json::Value| {
            let mut v = full.clone();
            v["layers"][layer] = value;
            serde_json::from_value::<SearchSpace>(v)
        };
        let back: SearchSpace = serde_json::from_value(full.clone()).expect("the full space loads");
        assert_eq!(back, SearchSpace::full());
        let err = with_layer(4, serde_json::json!({"ops": [], "scales": [5]})).expect_err("no ops");
        assert!(
            err.to_string().contains("layer 5: no choice is left"),
            "{err}"
        );
        let err = with_layer(6, serde_json::json!({"ops": ["shuffle3"], "scales": []}))
            .expect_err("a block without scales");
        assert!(
            err.to_string().contains("layer 7: no choice is left"),
            "{err}"
        );
        // Skip alone needs no scale.
        assert!(with_layer(6, serde_json::json!({"ops": ["skip"], "scales": []})).is_ok());
        let err = with_layer(4, serde_json::json!({"ops": ["skip"], "scales": [5]}))
            .expect_err("skip in the first layer of stage 2");
        assert!(
            err.to_string().contains("layer 5: 'skip' is not allowed"),
            "{err}"
        );
        let err = with_layer(
            2,
            serde_json::json!({"ops": ["shuffle5"], "scales": [0, 11]}),
        )
        .expect_err("scale out of range");
        assert!(err.to_string().contains("layer 3: scale 0"), "{err}");
        let mut short = full.clone();
        short["layers"].as_array_mut().expect("layers").truncate(19);
        let err = serde_json::from_value::<SearchSpace>(short).expect_err("19 layers");
        assert_eq!(err.to_string(), "a search space has 20 layers, found 19");
    }

    proptest! {
        #[test]
        fn sampled_architectures_are_valid_and_round_trip(seed in any::<u64>()) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let arch = SearchSpace::full().sample(&mut rng);
            let text = arch.to_string();
            let back: Arch = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&back, &arch);
            prop_assert!(Arch::new(*arch.choices()).is_ok());
            let json = serde_json::to_string(&arch).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let from_json: Arch = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(from_json, arch);
        }
    }
}
