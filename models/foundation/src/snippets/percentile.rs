/// The `q` quantile (`0..=1`) of ascending `sorted` data, interpolating linearly between the closest ranks
/// (type 7 of Hyndman and Fan, NumPy's default): `p10` of 11 values is the second smallest.
/// Panics on an empty slice.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}
