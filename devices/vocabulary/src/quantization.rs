//! The words of INT8 models: which runtime a QDQ model is for, and how many levels its weights use.

use serde::{Deserialize, Serialize};

use crate::engine::words;

/// Which runtime an INT8 (QDQ) model is exported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Int8Flavour {
    /// ONNX Runtime on a CPU: asymmetric uint8 activations.
    #[default]
    Cpu,
    /// TensorRT: symmetric activations and weights, every zero point 0.
    #[serde(rename = "tensorrt")]
    TensorRt,
}

words!(Int8Flavour, "INT8 flavour", "cpu or tensorrt", {
    Cpu => "cpu",
    TensorRt => "tensorrt",
});

impl Int8Flavour {
    /// `cpu` or `tensorrt`.
    pub fn name(self) -> &'static str {
        match self {
            Int8Flavour::Cpu => "cpu",
            Int8Flavour::TensorRt => "tensorrt",
        }
    }
}

/// How many integer levels a weight may use.
///
/// x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) multiply uint8 activations by int8 weights with
/// `VPMADDUBSW`, which adds two products into an int16 and saturates: `2 x 255 x 127` does not fit.
/// With weights in `[-64, 64]` (ONNX Runtime's `reduce_range`) the pair stays within `2 x 255 x 64 =
/// 32640`, so the fast kernels are exact, at the cost of one bit of weight resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightRange {
    /// `[-127, 127]`: full resolution (VNNI CPUs, ARM, TensorRT).
    #[default]
    Full,
    /// `[-64, 64]`: 7 bits, no saturation in the U8S8 kernels of CPUs without VNNI.
    Reduced,
}

words!(WeightRange, "weight range", "full or reduced", {
    Full => "full",
    Reduced => "reduced",
});

impl WeightRange {
    /// The largest magnitude a quantised weight takes.
    pub fn max(self) -> f32 {
        match self {
            WeightRange::Full => 127.0,
            WeightRange::Reduced => 64.0,
        }
    }

    /// `full` or `reduced`.
    pub fn name(self) -> &'static str {
        match self {
            WeightRange::Full => "full",
            WeightRange::Reduced => "reduced",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_in_flags_and_files() {
        for f in [Int8Flavour::Cpu, Int8Flavour::TensorRt] {
            assert_eq!(f.to_string().parse::<Int8Flavour>().expect("parses"), f);
            assert_eq!(f.to_string(), f.name());
            let json = serde_json::to_string(&f).expect("JSON");
            assert_eq!(json, format!("\"{}\"", f.name()));
        }
        for r in [WeightRange::Full, WeightRange::Reduced] {
            assert_eq!(r.to_string().parse::<WeightRange>().expect("parses"), r);
            assert_eq!(serde_json::to_string(&r).expect("JSON"), format!("\"{r}\""));
        }
        let err = "int4".parse::<WeightRange>().expect_err("unknown");
        assert!(err.to_string().contains("full or reduced"), "{err}");
        assert_eq!(WeightRange::Reduced.max(), 64.0);
    }
}
