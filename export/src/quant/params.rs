//! The arithmetic of INT8 quantisation: activation scales and zero points from a range, per-channel
//! symmetric weights, and int32 biases. `q = clamp(round(x / scale) + zero_point)` and
//! `x' = (q - zero_point) * scale`. Rounding here is to the nearest integer with halves away from zero
//! (`f32::round`), where ONNX's `QuantizeLinear` rounds halves to even: the two differ only on exact
//! halves, which calibration data and trained weights essentially never produce.

use crate::ExportError;
use hsconas_vocabulary::WeightRange;

/// The smallest and largest value an activation took during calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
}

impl Range {
    /// The range covering both.
    pub fn union(self, other: Range) -> Range {
        Range {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }
}

/// How activations are mapped to 8 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationScheme {
    /// `[min(0, lo), max(0, hi)]` onto uint8 `[0, 255]` with a zero point: what ONNX Runtime's x86
    /// kernels run (its quantiser's int8 activations are converted to uint8 when a session loads, which
    /// it does only where a quantised tensor has one consumer; emitting uint8 avoids the mismatch).
    Asymmetric,
    /// `[-a, a]` with `a = max(|lo|, |hi|)` onto int8 `[-127, 127]`, zero point 0 (what TensorRT
    /// requires).
    Symmetric,
}

/// The 8-bit type of a quantised activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    /// `[0, 255]`.
    U8,
    /// `[-128, 127]`.
    I8,
}

impl Element {
    /// The smallest and largest value of the type.
    pub fn bounds(self) -> (i32, i32) {
        match self {
            Element::U8 => (0, 255),
            Element::I8 => (-128, 127),
        }
    }
}

/// The scale and zero point of one quantised tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParams {
    /// Real value of one step.
    pub scale: f32,
    /// The integer that stands for 0.0.
    pub zero_point: i32,
    /// The 8-bit type.
    pub element: Element,
}

impl QuantParams {
    /// The integer `x` is stored as (saturated to the type).
    pub fn quantize(self, x: f32) -> i32 {
        let (lo, hi) = self.element.bounds();
        let q = (x / self.scale).round() + self.zero_point as f32;
        q.clamp(lo as f32, hi as f32) as i32
    }

    /// The real value `q` stands for.
    pub fn dequantize(self, q: i32) -> f32 {
        (q - self.zero_point) as f32 * self.scale
    }
}

/// Scale and zero point for an activation that ranged over `range`. A range that is a single point
/// (a tensor that was constant during calibration) gets scale 1. Non-finite ranges are an error naming
/// `tensor`.
pub fn activation_params(
    tensor: &str,
    range: Range,
    scheme: ActivationScheme,
) -> Result<QuantParams, ExportError> {
    if !range.min.is_finite() || !range.max.is_finite() || range.min > range.max {
        return Err(ExportError::Quantize(format!(
            "tensor '{tensor}' has no usable calibration range ({} .. {}): the calibration images \
             produced non-finite values",
            range.min, range.max
        )));
    }
    // Zero must be exactly representable (padding and ReLU produce it).
    let (lo, hi) = (range.min.min(0.0), range.max.max(0.0));
    Ok(match scheme {
        ActivationScheme::Symmetric => {
            let a = lo.abs().max(hi);
            QuantParams {
                scale: if a > 0.0 { a / 127.0 } else { 1.0 },
                zero_point: 0,
                element: Element::I8,
            }
        }
        ActivationScheme::Asymmetric => {
            let scale = if hi - lo > 0.0 {
                (hi - lo) / 255.0
            } else {
                1.0
            };
            QuantParams {
                scale,
                zero_point: (-lo / scale).round().clamp(0.0, 255.0) as i32,
                element: Element::U8,
            }
        }
    })
}

/// A weight tensor quantised per output channel (axis 0), symmetric, onto `[-m, m]` with `m` the
/// [`WeightRange`]'s maximum.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelQuantized {
    /// The int8 values, in the tensor's layout.
    pub values: Vec<i8>,
    /// One scale per output channel (1.0 for a channel that is all zero).
    pub scales: Vec<f32>,
}

/// Quantises `data` (row-major, `channels` equal blocks along axis 0) per channel onto `range`.
pub fn quantize_per_channel(
    tensor: &str,
    data: &[f32],
    channels: usize,
    range: WeightRange,
) -> Result<ChannelQuantized, ExportError> {
    if channels == 0 || !data.len().is_multiple_of(channels) {
        return Err(ExportError::Quantize(format!(
            "tensor '{tensor}' has {} values, which do not split into {channels} channels",
            data.len()
        )));
    }
    if let Some(bad) = data.iter().find(|x| !x.is_finite()) {
        return Err(ExportError::Quantize(format!(
            "tensor '{tensor}' holds a non-finite weight ({bad})"
        )));
    }
    let per = data.len() / channels;
    let m = range.max();
    let mut values = Vec::with_capacity(data.len());
    let mut scales = Vec::with_capacity(channels);
    for block in data.chunks(per) {
        let a = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if a > 0.0 { a / m } else { 1.0 };
        values.extend(block.iter().map(|x| (x / scale).round().clamp(-m, m) as i8));
        scales.push(scale);
    }
    Ok(ChannelQuantized { values, scales })
}

/// A bias quantised to int32 with scale `input_scale * weight_scales[c]` per channel and zero point 0
/// (what a fused integer convolution adds to its int32 accumulator). Returns the values and scales.
pub fn quantize_bias(
    tensor: &str,
    bias: &[f32],
    input_scale: f32,
    weight_scales: &[f32],
) -> Result<(Vec<i32>, Vec<f32>), ExportError> {
    if bias.len() != weight_scales.len() {
        return Err(ExportError::Quantize(format!(
            "bias '{tensor}' has {} values for {} output channels",
            bias.len(),
            weight_scales.len()
        )));
    }
    let scales: Vec<f32> = weight_scales.iter().map(|w| input_scale * w).collect();
    let mut values = Vec::with_capacity(bias.len());
    for (b, s) in bias.iter().zip(&scales) {
        let q = (f64::from(*b) / f64::from(*s)).round();
        if !q.is_finite() || q.abs() > f64::from(i32::MAX) {
            return Err(ExportError::Quantize(format!(
                "bias '{tensor}' ({b}) does not fit int32 at scale {s}"
            )));
        }
        values.push(q as i32);
    }
    Ok((values, scales))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: f32, max: f32) -> Range {
        Range { min, max }
    }

    #[test]
    fn asymmetric_params_of_known_ranges() {
        // [0, 2.55]: a ReLU output; zero sits at the bottom of the int8 range.
        let p = activation_params("t", range(0.0, 2.55), ActivationScheme::Asymmetric).expect("ok");
        assert!((p.scale - 0.01).abs() < 1e-7, "{p:?}");
        assert_eq!((p.zero_point, p.element), (0, Element::U8));
        assert_eq!(p.quantize(0.0), 0);
        assert_eq!(p.quantize(2.55), 255);
        assert_eq!(p.quantize(9.0), 255, "saturates");
        assert_eq!(p.quantize(-1.0), 0, "saturates");
        // [-1, 1]: zero in the middle, and exactly representable.
        let p = activation_params("t", range(-1.0, 1.0), ActivationScheme::Asymmetric).expect("ok");
        assert!((p.scale - 2.0 / 255.0).abs() < 1e-7);
        // 127.5 in exact arithmetic; rounding of the f32 division decides between 127 and 128.
        assert!(p.zero_point == 127 || p.zero_point == 128, "{p:?}");
        assert_eq!(p.dequantize(p.quantize(0.0)), 0.0);
        // A range that excludes zero is widened to include it.
        let p = activation_params("t", range(1.0, 3.0), ActivationScheme::Asymmetric).expect("ok");
        assert!((p.scale - 3.0 / 255.0).abs() < 1e-7);
        assert_eq!(p.zero_point, 0);
    }

    #[test]
    fn symmetric_params_have_zero_point_zero() {
        let p = activation_params("t", range(-0.5, 1.27), ActivationScheme::Symmetric).expect("ok");
        assert!((p.scale - 0.01).abs() < 1e-7);
        assert_eq!((p.zero_point, p.element), (0, Element::I8));
        assert_eq!(p.quantize(-1.27), -127);
        assert_eq!(
            p.quantize(-5.0),
            -128,
            "QuantizeLinear saturates at the type's limit"
        );
        let flat =
            activation_params("t", range(0.0, 0.0), ActivationScheme::Symmetric).expect("ok");
        assert_eq!(flat.scale, 1.0);
    }

    #[test]
    fn non_finite_ranges_are_refused_by_name() {
        let err = activation_params(
            "layer3.out",
            range(0.0, f32::NAN),
            ActivationScheme::Symmetric,
        )
        .expect_err("an error");
        assert!(err.to_string().contains("layer3.out"), "{err}");
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let p = activation_params("t", range(-3.0, 5.0), ActivationScheme::Asymmetric).expect("ok");
        for i in 0..=800 {
            let x = -3.0 + i as f32 * 0.01;
            let err = (p.dequantize(p.quantize(x)) - x).abs();
            assert!(
                err <= p.scale / 2.0 + 1e-6,
                "x {x}: error {err} > {}",
                p.scale / 2.0
            );
        }
    }

    #[test]
    fn per_channel_weights() {
        // Two channels: the first's largest magnitude is 1.27, the second is all zero.
        let w = [1.27, -0.635, 0.01, 0.0, 0.0, 0.0];
        let q = quantize_per_channel("w", &w, 2, WeightRange::Full).expect("ok");
        assert!((q.scales[0] - 0.01).abs() < 1e-7);
        assert_eq!(q.scales[1], 1.0);
        assert_eq!(q.values, vec![127, -64, 1, 0, 0, 0]);
        assert!(quantize_per_channel("w", &w, 4, WeightRange::Full).is_err());
        assert!(quantize_per_channel("w", &[f32::INFINITY], 1, WeightRange::Full).is_err());
    }

    #[test]
    fn reduced_weights_keep_every_pair_of_products_within_int16() {
        // 1.28 is the largest magnitude: scale 1.28 / 64 = 0.02; -0.64 -> -32, 0.01 -> 0.5 -> 1 (away
        // from zero).
        let w = [1.28, -0.64, 0.01, -1.28];
        let q = quantize_per_channel("w", &w, 1, WeightRange::Reduced).expect("ok");
        assert!((q.scales[0] - 0.02).abs() < 1e-7, "{:?}", q.scales);
        assert_eq!(q.values, vec![64, -32, 1, -64]);
        // The largest pair of uint8 x int8 products, against int16's limit.
        let widest_pair = |q: &ChannelQuantized| {
            2 * 255
                * q.values
                    .iter()
                    .map(|v| i32::from(*v).abs())
                    .max()
                    .unwrap_or(0)
        };
        assert!(widest_pair(&q) <= i32::from(i16::MAX));
        let full = quantize_per_channel("w", &w, 1, WeightRange::Full).expect("ok");
        assert!(widest_pair(&full) > i32::from(i16::MAX));
    }

    #[test]
    fn bias_scale_is_input_scale_times_weight_scale() {
        let (q, s) = quantize_bias("b", &[0.5, -0.25], 0.1, &[0.01, 0.5]).expect("ok");
        assert_eq!(s.len(), 2);
        assert!((s[0] - 0.001).abs() < 1e-9 && (s[1] - 0.05).abs() < 1e-9);
        assert_eq!(q, vec![500, -5]);
        assert!(quantize_bias("b", &[1e30], 1e-9, &[1e-9]).is_err());
        assert!(quantize_bias("b", &[1.0], 1.0, &[1.0, 1.0]).is_err());
    }
}
