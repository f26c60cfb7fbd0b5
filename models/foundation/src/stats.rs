//! Statistics with one definition each across the workspace (and in generated crates, see
//! [`crate::snippets`]).

include!("snippets/percentile.rs");
include!("snippets/relative_error.rs");

/// The one-standard-error rule of model selection. `errors[m]` holds model `m`'s held-out errors (e.g.
/// squared leave-one-out errors), one per sample and the same samples for every model; the models are
/// ordered from the simplest to the richest. Returns the simplest model whose mean error is at most the
/// lowest mean plus one standard error of that best model's errors (their sample standard deviation over
/// the square root of their count): a richer model is chosen only when it is clearly better, not when it
/// wins by the noise of a few samples. A model with a non-finite mean (one that could not be fitted) is
/// never chosen; `None` when no model has a finite mean.
pub fn simplest_within_one_standard_error(errors: &[Vec<f64>]) -> Option<usize> {
    let mean = |e: &[f64]| e.iter().sum::<f64>() / e.len() as f64;
    let means: Vec<f64> = errors
        .iter()
        .map(|e| if e.is_empty() { f64::NAN } else { mean(e) })
        .collect();
    let best = (0..errors.len())
        .filter(|&m| means[m].is_finite())
        .min_by(|&a, &b| means[a].total_cmp(&means[b]))?;
    let n = errors[best].len() as f64;
    let spread = if n > 1.0 {
        (errors[best]
            .iter()
            .map(|e| (e - means[best]).powi(2))
            .sum::<f64>()
            / (n - 1.0))
            .sqrt()
    } else {
        0.0
    };
    let limit = means[best] + spread / n.sqrt();
    (0..errors.len()).find(|&m| means[m].is_finite() && means[m] <= limit)
}

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
    fn the_simplest_model_within_one_standard_error_is_chosen() {
        // The richer model is ahead by less than one standard error of its errors: the simpler stays.
        let simple = vec![1.0, 1.2, 0.8, 1.0];
        let rich = vec![0.5, 1.5, 0.3, 1.3];
        assert_eq!(
            simplest_within_one_standard_error(&[simple.clone(), rich]),
            Some(0)
        );
        // Clearly ahead (every sample better, little spread): the richer one is chosen.
        let clearly = vec![0.1, 0.12, 0.08, 0.1];
        assert_eq!(
            simplest_within_one_standard_error(&[simple.clone(), clearly.clone()]),
            Some(1)
        );
        // A model that could not be fitted is skipped; nothing fitted, nothing chosen.
        let unfitted = vec![f64::INFINITY; 4];
        assert_eq!(
            simplest_within_one_standard_error(&[unfitted.clone(), simple, clearly]),
            Some(2)
        );
        assert_eq!(simplest_within_one_standard_error(&[unfitted]), None);
        assert_eq!(simplest_within_one_standard_error(&[]), None);
        assert_eq!(
            simplest_within_one_standard_error(&[vec![2.0], vec![1.0]]),
            Some(1)
        );
    }

    #[test]
    #[should_panic(expected = "different lengths")]
    fn relative_error_refuses_different_lengths() {
        relative_error(&[1.0], &[1.0, 2.0]);
    }
}
