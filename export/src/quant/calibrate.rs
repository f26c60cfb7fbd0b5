//! Calibration: the range each activation takes when the FP32 network runs on calibration images.
//!
//! The FP32 ONNX model runs in tract with every tensor to be quantised made an output, one image at a
//! time. Per tensor it keeps the smallest and largest value and a histogram of absolute values (2048
//! bins over `[0, limit)`; the limit doubles, merging neighbouring bins, whenever a larger value
//! arrives, so the histogram is exact at its final resolution whatever order the images come in).

use std::collections::BTreeMap;

use tract_onnx::prelude::*;

use super::params::Range;
use crate::ExportError;

/// How a calibration range is read from what the images produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeMethod {
    /// The smallest and largest value seen.
    MinMax,
    /// Values beyond the given percentile of absolute values (e.g. 99.99) are clipped: the range is
    /// `[max(min, -a), min(max, a)]` with `a` that percentile.
    Percentile(f64),
}

impl RangeMethod {
    /// `minmax` or `percentile:<p>` (what the command line and the export record say).
    pub fn name(self) -> String {
        match self {
            RangeMethod::MinMax => "minmax".into(),
            RangeMethod::Percentile(p) => format!("percentile:{p}"),
        }
    }
}

impl std::str::FromStr for RangeMethod {
    type Err = ExportError;

    /// `minmax`, `percentile` (99.99) or `percentile:<p>` with `50 <= p <= 100`.
    fn from_str(s: &str) -> Result<RangeMethod, ExportError> {
        let bad = || {
            ExportError::BadOption(format!(
                "calibration method '{s}': expected 'minmax', 'percentile' or 'percentile:<p>' with \
                 50 <= p <= 100"
            ))
        };
        match s {
            "minmax" => Ok(RangeMethod::MinMax),
            "percentile" => Ok(RangeMethod::Percentile(99.99)),
            _ => {
                let p: f64 = s
                    .strip_prefix("percentile:")
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                if (50.0..=100.0).contains(&p) {
                    Ok(RangeMethod::Percentile(p))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

const BINS: usize = 2048;

/// What one tensor did over the calibration images.
#[derive(Debug, Clone)]
struct TensorStats {
    min: f32,
    max: f32,
    /// Upper edge of the last bin; a power of two.
    limit: f32,
    bins: Vec<u64>,
}

impl TensorStats {
    fn new() -> TensorStats {
        TensorStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            limit: 0.0,
            bins: vec![0; BINS],
        }
    }

    fn add(&mut self, values: &[f32]) {
        let mut largest = 0f32;
        for &x in values {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            largest = largest.max(x.abs());
        }
        if self.limit == 0.0 {
            self.limit = largest.max(f32::MIN_POSITIVE).log2().ceil().exp2();
        }
        while largest >= self.limit {
            self.widen();
        }
        let per_bin = self.limit / BINS as f32;
        for &x in values {
            let bin = ((x.abs() / per_bin) as usize).min(BINS - 1);
            self.bins[bin] += 1;
        }
    }

    /// Doubles the limit: bins 2k and 2k+1 become bin k.
    fn widen(&mut self) {
        for k in 0..BINS / 2 {
            self.bins[k] = self.bins[2 * k] + self.bins[2 * k + 1];
        }
        self.bins[BINS / 2..].fill(0);
        self.limit *= 2.0;
    }

    /// The absolute value below which `p` percent of the values lie (a bin's upper edge).
    fn abs_percentile(&self, p: f64) -> f32 {
        let total: u64 = self.bins.iter().sum();
        let wanted = (total as f64 * p / 100.0).ceil() as u64;
        let mut seen = 0;
        for (k, count) in self.bins.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return (k + 1) as f32 * self.limit / BINS as f32;
            }
        }
        self.limit
    }

    fn range(&self, method: RangeMethod) -> Range {
        let full = Range {
            min: self.min,
            max: self.max,
        };
        match method {
            RangeMethod::MinMax => full,
            RangeMethod::Percentile(p) => {
                let a = self.abs_percentile(p);
                Range {
                    min: full.min.max(-a),
                    max: full.max.min(a),
                }
            }
        }
    }
}

/// The calibration ranges of a network's activations.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationRanges {
    /// How the ranges were read.
    pub method: RangeMethod,
    /// Number of calibration images.
    pub images: usize,
    /// Range per ONNX tensor name.
    pub ranges: BTreeMap<String, Range>,
}

/// Runs the FP32 ONNX model `onnx` (input `[1, c, h, w]` with `input = [c, h, w]`) on every image of
/// `images` (each `c * h * w` values: normalised pixels for a network, activations for a piece) and
/// returns the range of every tensor named in `tensors`.
/// An empty image set, an image of the wrong length or holding non-finite values, and a tensor the
/// model does not have are errors.
pub fn calibrate(
    onnx: &[u8],
    tensors: &[String],
    images: &[Vec<f32>],
    input: [usize; 3],
    method: RangeMethod,
) -> Result<ActivationRanges, ExportError> {
    if images.is_empty() {
        return Err(ExportError::Calibration(
            "no calibration images: INT8 needs images to measure activation ranges".into(),
        ));
    }
    let [c, h, w] = input;
    let expected = c * h * w;
    for (i, image) in images.iter().enumerate() {
        if image.len() != expected {
            return Err(ExportError::Calibration(format!(
                "calibration image {i} has {} values, the network's input needs {expected} ({c} x {h} x \
                 {w})",
                image.len()
            )));
        }
        if image.iter().any(|x| !x.is_finite()) {
            return Err(ExportError::Calibration(format!(
                "calibration image {i} holds a non-finite value"
            )));
        }
    }
    let fail = |e: TractError| ExportError::Calibration(format!("running the FP32 model: {e:#}"));
    let shape = [1, c, h, w];
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.with_outputs_by_name(tensors))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(fail)?;
    let mut stats = vec![TensorStats::new(); tensors.len()];
    for image in images {
        let x = Tensor::from_shape(&shape, image).map_err(fail)?;
        let outputs = plan.run(tvec!(x.into())).map_err(fail)?;
        for ((stat, output), name) in stats.iter_mut().zip(&outputs).zip(tensors) {
            let view = output.to_plain_array_view::<f32>().map_err(fail)?;
            if view.iter().any(|x| !x.is_finite()) {
                return Err(ExportError::Calibration(format!(
                    "tensor '{name}' took a non-finite value on a calibration image: the FP32 network \
                     overflows (check the weights)"
                )));
            }
            stat.add(
                view.as_slice()
                    .unwrap_or(&view.iter().copied().collect::<Vec<_>>()),
            );
        }
    }
    Ok(ActivationRanges {
        method,
        images: images.len(),
        ranges: tensors
            .iter()
            .cloned()
            .zip(stats.iter().map(|s| s.range(method)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_widening_keeps_counts_and_percentiles() {
        let mut s = TensorStats::new();
        s.add(&[0.1, -0.2, 0.3]);
        let limit = s.limit;
        s.add(&[5.0, -7.5]);
        assert!(s.limit > limit && s.limit >= 7.5);
        assert_eq!(s.bins.iter().sum::<u64>(), 5);
        assert_eq!((s.min, s.max), (-7.5, 5.0));
        // 60% of |x| lie at or below 0.3 (within one bin of the final resolution).
        let p60 = s.abs_percentile(60.0);
        assert!(p60 >= 0.3 && p60 <= 0.3 + s.limit / BINS as f32, "{p60}");
        let p100 = s.abs_percentile(100.0);
        assert!(p100 >= 7.5 && p100 <= 7.5 + s.limit / BINS as f32, "{p100}");
    }

    #[test]
    fn percentile_clips_outliers_and_minmax_does_not() {
        let mut s = TensorStats::new();
        let mut values: Vec<f32> = (0..10_000).map(|i| (i % 100) as f32 / 100.0).collect();
        values.push(-50.0);
        s.add(&values);
        let minmax = s.range(RangeMethod::MinMax);
        assert_eq!((minmax.min, minmax.max), (-50.0, 0.99));
        let clipped = s.range(RangeMethod::Percentile(99.9));
        assert!(clipped.min > -1.1 && clipped.min < -0.9, "{clipped:?}");
        assert_eq!(clipped.max, 0.99);
    }

    #[test]
    fn method_names_parse_and_bad_ones_are_refused() {
        assert_eq!(
            "minmax".parse::<RangeMethod>().expect("ok"),
            RangeMethod::MinMax
        );
        assert_eq!(
            "percentile".parse::<RangeMethod>().expect("ok"),
            RangeMethod::Percentile(99.99)
        );
        let p: RangeMethod = "percentile:99.9".parse().expect("ok");
        assert_eq!(p.name().parse::<RangeMethod>().expect("ok"), p);
        for bad in [
            "",
            "entropy",
            "percentile:",
            "percentile:101",
            "percentile:abc",
        ] {
            assert!(bad.parse::<RangeMethod>().is_err(), "{bad}");
        }
    }
}
