//! Named `f32` tensors ([`Weights`]): the form trained networks take between training, export and the
//! runtime, read from and written to safetensors files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::{write_atomic, FsError, HostTensor};

/// Why weights could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A tensor of a type this crate does not read.
    #[error("tensor '{name}' has dtype {dtype}; only F32, F64, F16 and BF16 are supported")]
    UnsupportedDtype {
        /// Parameter name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A safetensors file that cannot be parsed (truncated, corrupt).
    #[error("'{path}' is not a valid safetensors file: {reason}")]
    BadSafetensors {
        /// The file (`<memory>` for bytes).
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A file-system step failed.
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Tensors by parameter name (`stem.conv.weight`, `head.bn.running_var`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    tensors: BTreeMap<String, HostTensor>,
}

impl Weights {
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

    /// Reads a safetensors file (F32, or F64/F16/BF16 converted to F32).
    pub fn load_safetensors(path: &Path) -> Result<Weights, WeightsError> {
        let bytes = std::fs::read(path).map_err(|source| FsError::new("reading", path, source))?;
        Weights::from_safetensors_bytes(&bytes).map_err(|e| match e {
            WeightsError::BadSafetensors { reason, .. } => WeightsError::BadSafetensors {
                path: path.into(),
                reason,
            },
            other => other,
        })
    }

    /// Parses safetensors bytes.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Weights, WeightsError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::BadSafetensors {
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
                    return Err(WeightsError::UnsupportedDtype {
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
    pub fn save_safetensors(&self, path: &Path) -> Result<(), WeightsError> {
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

    fn sample() -> Weights {
        let mut w = Weights::default();
        w.insert(
            "a.weight",
            HostTensor {
                shape: vec![2, 3],
                data: (0..6).map(|i| i as f32 * 0.5 - 1.0).collect(),
            },
        );
        w.insert(
            "b.bias",
            HostTensor {
                shape: vec![4],
                data: vec![1.0, -2.0, 3.5, 0.0],
            },
        );
        w
    }

    #[test]
    fn safetensors_round_trip_and_clear_errors() {
        let w = sample();
        let bytes = w.to_safetensors_bytes();
        assert_eq!(Weights::from_safetensors_bytes(&bytes).expect("parses"), w);
        let truncated = &bytes[..bytes.len() / 2];
        let err = Weights::from_safetensors_bytes(truncated).expect_err("truncated");
        assert!(matches!(err, WeightsError::BadSafetensors { .. }), "{err}");

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.safetensors");
        w.save_safetensors(&path).expect("save");
        assert_eq!(Weights::load_safetensors(&path).expect("load"), w);
        std::fs::write(&path, truncated).expect("write");
        let err = Weights::load_safetensors(&path)
            .expect_err("truncated file")
            .to_string();
        assert!(err.contains("w.safetensors"), "names the file: {err}");
        let err = Weights::load_safetensors(&dir.path().join("none")).expect_err("absent");
        assert!(matches!(err, WeightsError::Fs(_)), "{err}");
    }

    #[test]
    fn half_precision_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
