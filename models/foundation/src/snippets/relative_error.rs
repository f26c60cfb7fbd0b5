/// `max |found - reference| / max |reference|`: the largest difference relative to the reference's scale
/// (how outputs of two engines are compared). Panics when the lengths differ.
pub fn relative_error(found: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(found.len(), reference.len(), "outputs have different lengths");
    let scale = reference
        .iter()
        .fold(0f32, |m, x| m.max(x.abs()))
        .max(f32::MIN_POSITIVE);
    let diff = found
        .iter()
        .zip(reference)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}
