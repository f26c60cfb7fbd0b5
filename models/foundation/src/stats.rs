//! Statistics with one definition each across the workspace (and in generated crates, see
//! [`crate::snippets`]).

include!("snippets/percentile.rs");
include!("snippets/relative_error.rs");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_between_closest_ranks() {
        let data: Vec<f64> = (0..=10).map(f64::from).collect();
        assert_eq!(percentile(&data, 0.1), 1.0);
        assert_eq!(percentile(&data, 0.5), 5.0);
        assert_eq!(percentile(&data, 0.0), 0.0);
        assert_eq!(percentile(&data, 1.0), 10.0);
        // Between ranks: 4 values, p10 sits at position 0.3.
        let four = [1.0, 2.0, 4.0, 8.0];
        assert!((percentile(&four, 0.1) - 1.3).abs() < 1e-12);
        assert!((percentile(&four, 0.5) - 3.0).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
    }

    #[test]
    fn relative_error_is_scaled_by_the_reference() {
        assert_eq!(relative_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((relative_error(&[1.0, 2.2], &[1.0, 2.0]) - 0.1).abs() < 1e-6);
        assert!((relative_error(&[0.5, -4.0], &[0.0, -4.0]) - 0.125).abs() < 1e-6);
    }

    #[test]
    #[should_panic(expected = "different lengths")]
    fn relative_error_refuses_different_lengths() {
        relative_error(&[1.0], &[1.0, 2.0]);
    }
}
