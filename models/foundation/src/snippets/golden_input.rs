/// The fixed golden input of a generated crate's test: one NCHW image of `input_size` squared pixels,
/// a deterministic pattern in `-1..=1`.
pub fn golden_input(input_size: usize) -> Vec<f32> {
    (0..3 * input_size * input_size)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}
