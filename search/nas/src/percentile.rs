//! Estimators that are not accuracies (a zero-cost proxy, the network's size) on the scale `F` expects:
//! a candidate's score becomes its percentile among a fixed, seeded sample of the search space.

use hsconas_models::{Arch, SearchSpace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::NasError;

/// A score's place among the scores of a reference sample of architectures, as a fraction in `0..=1`:
/// monotone in the score (so it ranks candidates exactly as the estimator does), on the scale of an
/// accuracy in `F = ACC + beta * |LAT/T - 1|`, and fixed for the whole search (the sample does not
/// change as the search moves), so a resumed search scores every candidate the same again. It
/// saturates: every score above the sample's best is 1, so candidates that outgrow the sample tie and
/// `F` then tells them apart by latency alone (why the predictor, whose score is an accuracy, enters `F`
/// as one instead).
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileScale {
    /// The reference sample's scores, ascending.
    sorted: Vec<f64>,
}

impl PercentileScale {
    /// Architectures of `space` drawn uniformly with `seed`: the sample a scale is built from.
    pub fn reference_sample(space: &SearchSpace, count: usize, seed: u64) -> Vec<Arch> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count).map(|_| space.sample(&mut rng)).collect()
    }

    /// The scale of `scores` (the reference sample's). Refuses an empty sample and scores that are not
    /// numbers.
    pub fn new(mut scores: Vec<f64>) -> Result<PercentileScale, NasError> {
        if scores.is_empty() || scores.iter().any(|s| s.is_nan()) {
            return Err(NasError::Estimator(format!(
                "a percentile scale needs a non-empty reference sample of numbers, got {scores:?}"
            )));
        }
        scores.sort_by(f64::total_cmp);
        Ok(PercentileScale { sorted: scores })
    }

    /// The fraction of the reference sample that scored below `score`, ties counted half: 0 below the
    /// whole sample, 1 above it, 0.5 at its median.
    pub fn fraction(&self, score: f64) -> f64 {
        let below = self.sorted.partition_point(|&s| s < score);
        let not_above = self.sorted.partition_point(|&s| s <= score);
        (below as f64 + 0.5 * (not_above - below) as f64) / self.sorted.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_rank_like_the_scores_and_stay_within_zero_and_one() {
        let scale = PercentileScale::new(vec![3.0, 1.0, 2.0, 4.0]).expect("scale");
        assert_eq!(scale.fraction(0.0), 0.0);
        assert_eq!(scale.fraction(9.0), 1.0);
        assert_eq!(scale.fraction(2.5), 0.5);
        assert_eq!(scale.fraction(2.0), 0.375, "a tie counts half");
        let scores = [-1.0, 0.5, 1.0, 1.5, 2.0, 3.5, 4.0, 7.0];
        let fractions: Vec<f64> = scores.iter().map(|&s| scale.fraction(s)).collect();
        assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    }

    #[test]
    fn an_empty_or_unnumbered_sample_is_refused() {
        assert!(PercentileScale::new(Vec::new()).is_err());
        assert!(PercentileScale::new(vec![1.0, f64::NAN]).is_err());
    }

    #[test]
    fn the_reference_sample_is_seeded() {
        let space = SearchSpace::full();
        let a = PercentileScale::reference_sample(&space, 5, 7);
        assert_eq!(a, PercentileScale::reference_sample(&space, 5, 7));
        assert_ne!(a, PercentileScale::reference_sample(&space, 5, 8));
    }
}
