//! Named f32 tensors for a graph: loaded from safetensors or initialised randomly with a seed.

use std::collections::BTreeMap;
use std::path::Path;

use hsconas_foundation::HostTensor;
use hsconas_models::graph::{Graph, ParamKind, ParamSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use safetensors::{Dtype, SafeTensors};

use hsconas_foundation::write_atomic;

use crate::ExportError;

/// Tensors by parameter name (`stem.conv.weight`, `head.bn.running_var`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    tensors: BTreeMap<String, HostTensor>,
}

impl Weights {
    /// Every tensor the graph needs, drawn from a seeded generator (the same seed gives the same weights).
    ///
    /// Convolutions get He-normal kernels, batch norms plausible running statistics (mean near 0,
    /// variance near 1) and scales near 1, so that activations stay in a sane range through deep networks
    /// and outputs are not degenerate.
    pub fn random(graph: &Graph, seed: u64) -> Weights {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut tensors = BTreeMap::new();
        for spec in graph.params() {
            let n = spec.numel();
            let normal = |rng: &mut ChaCha8Rng, std: f64| -> Vec<f32> {
                let d = Normal::new(0.0, std)
                    .unwrap_or_else(|_| unreachable!("std is finite and positive"));
                (0..n).map(|_| d.sample(rng) as f32).collect()
            };
            let uniform = |rng: &mut ChaCha8Rng, lo: f32, hi: f32| -> Vec<f32> {
                (0..n).map(|_| rng.random_range(lo..hi)).collect()
            };
            let data = match spec.kind {
                ParamKind::ConvWeight => {
                    let fan_in: usize = spec.shape[1..].iter().product();
                    normal(&mut rng, (2.0 / fan_in as f64).sqrt())
                }
                ParamKind::LinearWeight => normal(&mut rng, (1.0 / spec.shape[1] as f64).sqrt()),
                ParamKind::ConvBias
                | ParamKind::LinearBias
                | ParamKind::BnBias
                | ParamKind::BnMean => normal(&mut rng, 0.1),
                ParamKind::BnWeight => uniform(&mut rng, 0.6, 1.4),
                ParamKind::BnVar => uniform(&mut rng, 0.6, 1.6),
            };
            tensors.insert(
                spec.name,
                HostTensor {
                    shape: spec.shape,
                    data,
                },
            );
        }
        Weights { tensors }
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: HostTensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// Removes a tensor, returning it.
    pub fn remove(&mut self, name: &str) -> Option<HostTensor> {
        self.tensors.remove(name)
    }

    /// A tensor by name.
    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.get(name)
    }

    /// All tensors, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &HostTensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The tensor for `spec`, checked against its shape.
    pub fn require(&self, spec: &ParamSpec) -> Result<&HostTensor, ExportError> {
        let t = self
            .tensors
            .get(&spec.name)
            .ok_or_else(|| ExportError::MissingTensor {
                name: spec.name.clone(),
                shape: spec.shape.clone(),
            })?;
        if t.shape != spec.shape {
            return Err(ExportError::WrongShape {
                name: spec.name.clone(),
                expected: spec.shape.clone(),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }

    /// Checks that every tensor the graph needs is present with the right shape (extra tensors are fine).
    pub fn check(&self, graph: &Graph) -> Result<(), ExportError> {
        graph
            .params()
            .iter()
            .try_for_each(|spec| self.require(spec).map(|_| ()))
    }

    /// Reads a safetensors file (F32, or F64/F16/BF16 converted to F32).
    pub fn load_safetensors(path: &Path) -> Result<Weights, ExportError> {
        let bytes = std::fs::read(path).map_err(|source| {
            ExportError::Fs(hsconas_foundation::FsError::new("reading", path, source))
        })?;
        Weights::from_safetensors_bytes(&bytes).map_err(|e| match e {
            ExportError::BadSafetensors { reason, .. } => ExportError::BadSafetensors {
                path: path.into(),
                reason,
            },
            other => other,
        })
    }

    /// Parses safetensors bytes.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Weights, ExportError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| ExportError::BadSafetensors {
            path: "<memory>".into(),
            reason: e.to_string(),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|c| {
                        f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                    })
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                other => {
                    return Err(ExportError::UnsupportedDtype {
                        name: name.to_string(),
                        dtype: format!("{other:?}"),
                    })
                }
            };
            tensors.insert(
                name.to_string(),
                HostTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(Weights { tensors })
    }

    /// Serialises as F32 safetensors.
    pub fn to_safetensors_bytes(&self) -> Vec<u8> {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    t.shape.clone(),
                )
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
            .iter()
            .map(|(name, data, shape)| {
                let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                    .unwrap_or_else(|e| {
                        unreachable!("shape and data length agree by construction: {e}")
                    });
                (name.clone(), view)
            })
            .collect();
        safetensors::serialize(views, None)
            .unwrap_or_else(|e| unreachable!("serialising valid views: {e}"))
    }

    /// Writes an F32 safetensors file atomically.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), ExportError> {
        Ok(write_atomic(path, &self.to_safetensors_bytes())?)
    }
}

/// IEEE 754 half precision to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: renormalise.
            let shift = f.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((f << shift) & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_models::{build, Arch, NetConfig, Op, Scale};

    fn small_graph() -> Graph {
        let arch = Arch::uniform(Op::Shuffle3, Scale::FULL).expect("valid");
        build::network(
            &arch,
            &NetConfig {
                input_size: 32,
                classes: 10,
                ..NetConfig::default()
            },
        )
        .expect("builds")
    }

    #[test]
    fn random_weights_are_seeded_and_complete() {
        let g = small_graph();
        let a = Weights::random(&g, 3);
        assert_eq!(a, Weights::random(&g, 3));
        assert_ne!(a, Weights::random(&g, 4));
        a.check(&g).expect("complete");
        assert_eq!(a.len(), g.params().len());
    }

    #[test]
    fn safetensors_round_trip_and_clear_errors() {
        let g = small_graph();
        let w = Weights::random(&g, 1);
        let bytes = w.to_safetensors_bytes();
        assert_eq!(Weights::from_safetensors_bytes(&bytes).expect("parses"), w);

        let truncated = &bytes[..bytes.len() / 2];
        let err = Weights::from_safetensors_bytes(truncated).expect_err("truncated");
        assert!(matches!(err, ExportError::BadSafetensors { .. }), "{err}");

        let mut missing = w.clone();
        missing.tensors.remove("layers.3.main.0.weight");
        let err = missing.check(&g).expect_err("missing").to_string();
        assert!(err.contains("layers.3.main.0.weight"), "{err}");

        let mut wrong = w;
        wrong.insert(
            "head.fc.weight",
            HostTensor {
                shape: vec![10, 3],
                data: vec![0.0; 30],
            },
        );
        let err = wrong.check(&g).expect_err("wrong shape").to_string();
        assert!(
            err.contains("head.fc.weight") && err.contains("[10, 1024]"),
            "{err}"
        );
    }

    #[test]
    fn half_precision_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
