//! Intervals for comparisons made from small samples, one module that every result uses: a percentile
//! bootstrap over resampled units (networks), how often a paired resampling puts one statistic at or
//! below another, and the normal interval of a difference of means with a known noise.
//!
//! An interval says what the sample allows, nothing more: a 95% interval that contains 0 does not show
//! a difference, and one that excludes it shows one at that level.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A two-sided interval at a confidence `level` (0.95: 95%).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
}

impl Interval {
    /// Whether `x` lies inside (bounds included).
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// A seeded percentile bootstrap: `resamples` draws of `n` units with replacement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// Resamples drawn.
    pub resamples: usize,
    /// Seed of the draws (the same seed gives the same interval).
    pub seed: u64,
    /// Confidence level of [`Bootstrap::interval`].
    pub level: f64,
}

impl Default for Bootstrap {
    /// 2,000 resamples, seed 0, 95%.
    fn default() -> Bootstrap {
        Bootstrap {
            resamples: 2000,
            seed: 0,
            level: 0.95,
        }
    }
}

impl Bootstrap {
    /// Each resample: `n` unit indices drawn with replacement, the same sequence for the same seed.
    fn samples(&self, n: usize) -> impl Iterator<Item = Vec<usize>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        (0..self.resamples).map(move |_| (0..n).map(|_| rng.random_range(0..n)).collect())
    }

    /// The percentile interval of `statistic` (computed on the indices of a resample) over `n` units;
    /// resamples where it is not finite are left out. `None` with fewer than two units or when no
    /// resample gives a finite value.
    pub fn interval(
        &self,
        n: usize,
        mut statistic: impl FnMut(&[usize]) -> f64,
    ) -> Option<Interval> {
        if n < 2 {
            return None;
        }
        let mut values: Vec<f64> = self
            .samples(n)
            .map(|idx| statistic(&idx))
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let tail = (1.0 - self.level) / 2.0;
        Some(Interval {
            low: crate::stats::percentile(&values, tail),
            high: crate::stats::percentile(&values, 1.0 - tail),
            level: self.level,
        })
    }

    /// The share of resamples in which `a <= b`, both computed on the same resampled units: how often
    /// a paired resampling does not put `a` above `b`. `None` with fewer than two units.
    pub fn share_at_or_below(
        &self,
        n: usize,
        mut a: impl FnMut(&[usize]) -> f64,
        mut b: impl FnMut(&[usize]) -> f64,
    ) -> Option<f64> {
        if n < 2 || self.resamples == 0 {
            return None;
        }
        let below = self.samples(n).filter(|idx| a(idx) <= b(idx)).count();
        Some(below as f64 / self.resamples as f64)
    }
}

/// The 95% normal interval of `mean_a - mean_b` when each mean averages `n_a` and `n_b` measurements
/// whose noise has the standard deviation `sd` (estimated elsewhere, e.g. pooled over repeated trainings):
/// `difference ± 1.96 sd sqrt(1/n_a + 1/n_b)`. An approximation: it ignores the uncertainty of `sd`.
pub fn difference_of_means(
    mean_a: f64,
    n_a: usize,
    mean_b: f64,
    n_b: usize,
    sd: f64,
) -> Option<Interval> {
    if n_a == 0 || n_b == 0 || !sd.is_finite() || sd < 0.0 {
        return None;
    }
    let half = 1.959_963_984_540_054 * sd * (1.0 / n_a as f64 + 1.0 / n_b as f64).sqrt();
    let difference = mean_a - mean_b;
    Some(Interval {
        low: difference - half,
        high: difference + half,
        level: 0.95,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(values: &[f64], idx: &[usize]) -> f64 {
        idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64
    }

    #[test]
    fn the_bootstrap_interval_of_a_mean_covers_it_and_narrows_with_more_units() {
        let small: Vec<f64> = (0..10).map(f64::from).collect();
        let large: Vec<f64> = (0..1000).map(|i| f64::from(i % 10)).collect();
        let b = Bootstrap::default();
        let narrow = b
            .interval(large.len(), |i| mean(&large, i))
            .expect("interval");
        let wide = b
            .interval(small.len(), |i| mean(&small, i))
            .expect("interval");
        assert!(
            wide.contains(4.5) && narrow.contains(4.5),
            "{wide:?} {narrow:?}"
        );
        assert!(narrow.high - narrow.low < (wide.high - wide.low) / 5.0);
        // The standard error of the mean of 0..9 is about 0.91: a 95% interval spans about 3.6.
        assert!((2.8..4.4).contains(&(wide.high - wide.low)), "{wide:?}");
        assert_eq!(
            b.interval(small.len(), |i| mean(&small, i)),
            Some(wide),
            "seeded"
        );
        assert!(b.interval(1, |_| 0.0).is_none());
        assert!(b.interval(5, |_| f64::NAN).is_none());
    }

    #[test]
    fn the_paired_share_tells_a_clear_difference_from_a_coin_toss() {
        let a: Vec<f64> = (0..30).map(f64::from).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 5.0).collect();
        let boot = Bootstrap::default();
        let share = |x: &[f64], y: &[f64]| {
            boot.share_at_or_below(x.len(), |i| mean(x, i), |i| mean(y, i))
                .expect("share")
        };
        assert_eq!(share(&a, &b), 1.0, "a is always below b + 5");
        assert_eq!(share(&b, &a), 0.0);
        // Equal statistics on every resample count as at or below.
        assert_eq!(share(&a, &a), 1.0);
    }

    #[test]
    fn the_difference_of_two_two_seed_means_has_the_noise_of_one_training() {
        // sd 1.22 per training, two seeds each: the difference's sd is 1.22, its 95% half-width 2.39.
        let i = difference_of_means(57.06, 2, 57.715, 2, 1.22).expect("interval");
        assert!((i.high - i.low - 2.0 * 1.96 * 1.22).abs() < 0.01, "{i:?}");
        assert!(i.contains(0.0) && i.contains(-0.655));
        assert!(difference_of_means(1.0, 0, 0.0, 2, 1.0).is_none());
    }
}
