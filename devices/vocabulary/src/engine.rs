//! What runs a model: the engine, ONNX Runtime's execution provider and the numeric precision.

use serde::{Deserialize, Serialize};

/// `Display` (the canonical word) and `FromStr` (the canonical word and its aliases, case-insensitive) for
/// a fieldless enum whose serde names are the canonical words.
macro_rules! words {
    ($ty:ident, $what:literal, $expected:literal, { $($variant:ident => $word:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self { $($ty::$variant => $word),+ })
            }
        }

        impl std::str::FromStr for $ty {
            type Err = crate::VocabularyError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($word $(| $alias)* => Ok($ty::$variant),)+
                    _ => Err(crate::VocabularyError::Unknown {
                        what: $what,
                        given: s.to_string(),
                        expected: $expected,
                    }),
                }
            }
        }
    };
}
pub(crate) use words;

/// The inference engine that runs the models on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// ONNX Runtime through `ort` (loaded dynamically); also accepted as `onnxruntime`.
    Ort,
    /// `tract`, pure Rust.
    Tract,
}

words!(Engine, "engine", "ort or tract", {
    Ort => "ort" | "onnxruntime",
    Tract => "tract",
});

/// An ONNX Runtime execution provider (tract always runs on the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    /// The default CPU provider.
    Cpu,
    /// NVIDIA CUDA.
    Cuda,
    /// NVIDIA TensorRT (with an engine cache); also accepted as `trt`.
    Tensorrt,
}

words!(ExecutionProvider, "execution provider", "cpu, cuda or tensorrt", {
    Cpu => "cpu",
    Cuda => "cuda",
    Tensorrt => "tensorrt" | "trt",
});

impl ExecutionProvider {
    /// Every provider, in the order of the enum.
    pub const ALL: [ExecutionProvider; 3] = [
        ExecutionProvider::Cpu,
        ExecutionProvider::Cuda,
        ExecutionProvider::Tensorrt,
    ];

    /// The name ONNX Runtime gives the provider (in its profiles and provider lists).
    pub fn onnx_runtime_name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPUExecutionProvider",
            ExecutionProvider::Cuda => "CUDAExecutionProvider",
            ExecutionProvider::Tensorrt => "TensorrtExecutionProvider",
        }
    }

    /// The provider ONNX Runtime names `name`; `None` for one hsconas does not use (e.g.
    /// `DnnlExecutionProvider`).
    pub fn from_onnx_runtime_name(name: &str) -> Option<ExecutionProvider> {
        ExecutionProvider::ALL
            .into_iter()
            .find(|p| p.onnx_runtime_name() == name)
    }
}

/// Numeric precision of a model: of the measured ones (a device profile's setting) and of an export.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    Fp32,
    /// 16-bit floats: TensorRT may choose FP16 kernels (the models stay FP32 for the other providers).
    Fp16,
    /// 8-bit integers: QDQ models with int8 weights and calibrated activations (`hsconas export onnx
    /// --precision int8`); a mixed-precision latency table measures each block in FP32 and INT8.
    Int8,
}

words!(Precision, "precision", "fp32, fp16 or int8", {
    Fp32 => "fp32",
    Fp16 => "fp16",
    Int8 => "int8",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_runtime_names_round_trip() {
        for p in ExecutionProvider::ALL {
            assert_eq!(
                ExecutionProvider::from_onnx_runtime_name(p.onnx_runtime_name()),
                Some(p)
            );
        }
        assert_eq!(
            ExecutionProvider::from_onnx_runtime_name("CUDAExecutionProvider"),
            Some(ExecutionProvider::Cuda)
        );
        assert_eq!(
            ExecutionProvider::from_onnx_runtime_name("DnnlExecutionProvider"),
            None
        );
    }

    /// The word a value prints is the word files and flags use, and it parses back; aliases parse too.
    #[test]
    fn every_word_round_trips_through_display_parse_and_serde() {
        for e in [Engine::Ort, Engine::Tract] {
            assert_eq!(e.to_string().parse::<Engine>(), Ok(e));
            assert_eq!(serde_json::to_string(&e).expect("json"), format!("\"{e}\""));
        }
        for p in ExecutionProvider::ALL {
            assert_eq!(p.to_string().parse::<ExecutionProvider>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).expect("json"), format!("\"{p}\""));
        }
        for p in [Precision::Fp32, Precision::Fp16, Precision::Int8] {
            assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).expect("json"), format!("\"{p}\""));
        }
        assert_eq!(" ONNXRuntime ".parse::<Engine>(), Ok(Engine::Ort));
        assert_eq!(
            "TRT".parse::<ExecutionProvider>(),
            Ok(ExecutionProvider::Tensorrt)
        );
    }

    #[test]
    fn an_unknown_word_names_what_is_accepted() {
        let err = "rocm".parse::<ExecutionProvider>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown execution provider 'rocm' (expected cpu, cuda or tensorrt)"
        );
        assert!("int3".parse::<Precision>().is_err());
        assert!("tvm".parse::<Engine>().is_err());
    }
}
