//! The ridge regression behind the predictor, its strength chosen by leave-one-out cross-validation
//! (the lowest error, or the one-standard-error rule for adaptations), and held-out predictions: each
//! network predicted by a model that never saw it.

use hsconas_foundation::stats::simplest_within_one_standard_error;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::NasError;

/// The ridge strengths cross-validation chooses from (on standardised features).
pub const RIDGE_STRENGTHS: [f64; 5] = [0.1, 1.0, 10.0, 100.0, 1000.0];

/// A fitted ridge regression: `y = intercept + sum_k weights[k] * (x[k] - mean[k]) / scale[k]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ridge {
    /// The ridge strength it was fitted with.
    pub strength: f64,
    /// Each feature's mean over the fitted networks.
    pub mean: Vec<f64>,
    /// Each feature's standard deviation (1 where it does not vary).
    pub scale: Vec<f64>,
    /// The weights of the standardised features.
    pub weights: Vec<f64>,
    /// The mean accuracy of the fitted networks.
    pub intercept: f64,
}

impl Ridge {
    /// Fits `y` on the rows of `x` with ridge strength `strength`. Needs two rows or more, all of one
    /// length, and a positive strength.
    pub fn fit(x: &[Vec<f64>], y: &[f64], strength: f64) -> Result<Ridge, NasError> {
        let refuse = |m: String| Err(NasError::Estimator(m));
        let (n, k) = (x.len(), x.first().map_or(0, Vec::len));
        if n < 2 || n != y.len() || k == 0 || x.iter().any(|r| r.len() != k) {
            return refuse(format!(
                "a ridge fit needs two or more rows of equal length and one target each ({n} rows, {} targets)",
                y.len()
            ));
        }
        if strength.is_nan() || strength <= 0.0 {
            return refuse(format!("ridge strength {strength} must be positive"));
        }
        let mean: Vec<f64> = (0..k)
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect();
        let scale: Vec<f64> = (0..k)
            .map(|j| {
                let sd =
                    (x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64).sqrt();
                if sd > 1e-12 {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        let z = DMatrix::from_fn(n, k, |i, j| (x[i][j] - mean[j]) / scale[j]);
        let intercept = y.iter().sum::<f64>() / n as f64;
        let centred = DVector::from_iterator(n, y.iter().map(|v| v - intercept));
        let gram = z.transpose() * &z + DMatrix::identity(k, k) * strength;
        let weights = gram
            .cholesky()
            .ok_or_else(|| NasError::Estimator("ridge system not positive definite".into()))?
            .solve(&(z.transpose() * centred));
        Ok(Ridge {
            strength,
            mean,
            scale,
            weights: weights.iter().copied().collect(),
            intercept,
        })
    }

    /// The predicted accuracy of one feature row.
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.intercept
            + x.iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((v, m), s), w)| w * (v - m) / s)
                .sum::<f64>()
    }

    /// Fitted with the strength of [`RIDGE_STRENGTHS`] whose leave-one-out squared error over `x` is
    /// lowest (the smaller strength on ties). Needs three rows or more.
    pub fn fit_cross_validated(x: &[Vec<f64>], y: &[f64]) -> Result<Ridge, NasError> {
        Ridge::fit_cross_validated_among(x, y, &RIDGE_STRENGTHS)
    }

    /// [`Ridge::fit_cross_validated`] choosing among `strengths` (the first on ties).
    pub fn fit_cross_validated_among(
        x: &[Vec<f64>],
        y: &[f64],
        strengths: &[f64],
    ) -> Result<Ridge, NasError> {
        let errors = Ridge::leave_one_out_errors(x, y, strengths)?;
        Ridge::fit(x, y, strengths[lowest_mean(&errors)])
    }

    /// Fitted with the strongest of `strengths` (ascending) whose mean leave-one-out squared error is
    /// within one standard error of the lowest (the one-standard-error rule): with a few networks, the
    /// lowest cross-validated error often belongs to a weak shrinkage that fits their noise, and this
    /// rule prefers the simpler model the data cannot tell apart from it. Needs three rows or more.
    pub fn fit_cross_validated_one_se(
        x: &[Vec<f64>],
        y: &[f64],
        strengths: &[f64],
    ) -> Result<Ridge, NasError> {
        let errors = Ridge::leave_one_out_errors(x, y, strengths)?;
        // The strongest shrinkage is the simplest model: the rule reads them simplest first.
        let simplest_first: Vec<Vec<f64>> = errors.iter().rev().cloned().collect();
        let chosen = simplest_within_one_standard_error(&simplest_first)
            .map(|i| strengths.len() - 1 - i)
            .ok_or_else(|| NasError::Estimator("no ridge strength could be fitted".into()))?;
        Ridge::fit(x, y, strengths[chosen])
    }

    /// For each of `strengths`, the squared error of each row's prediction by the model fitted on the
    /// other rows. Needs three rows or more.
    fn leave_one_out_errors(
        x: &[Vec<f64>],
        y: &[f64],
        strengths: &[f64],
    ) -> Result<Vec<Vec<f64>>, NasError> {
        if x.len() < 3 || strengths.is_empty() {
            return Err(NasError::Estimator(format!(
                "cross-validation needs three or more networks and a strength to try, not {} and {}",
                x.len(),
                strengths.len()
            )));
        }
        strengths
            .iter()
            .map(|&strength| {
                (0..x.len())
                    .map(|i| {
                        let (rest_x, rest_y) = without(x, y, i);
                        Ok((Ridge::fit(&rest_x, &rest_y, strength)?.predict(&x[i]) - y[i]).powi(2))
                    })
                    .collect()
            })
            .collect()
    }
}

/// The index of the row of `errors` with the lowest mean (the first on ties). `errors` is not empty.
fn lowest_mean(errors: &[Vec<f64>]) -> usize {
    let mean = |e: &Vec<f64>| e.iter().sum::<f64>() / e.len().max(1) as f64;
    (1..errors.len()).fold(0, |best, i| {
        if mean(&errors[i]) < mean(&errors[best]) {
            i
        } else {
            best
        }
    })
}

/// Root mean square of `predicted - actual` (points when both are top-1 in percent).
pub fn rmse(predicted: &[f64], actual: &[f64]) -> f64 {
    (predicted
        .iter()
        .zip(actual)
        .map(|(p, v)| (p - v).powi(2))
        .sum::<f64>()
        / actual.len().max(1) as f64)
        .sqrt()
}

/// Each network's prediction by a model that never saw it: fitted (with its strength cross-validated)
/// on all the other networks. Needs four networks or more.
pub fn held_out_predictions(x: &[Vec<f64>], y: &[f64]) -> Result<Vec<f64>, NasError> {
    (0..x.len())
        .map(|i| {
            let (rest_x, rest_y) = without(x, y, i);
            Ok(Ridge::fit_cross_validated(&rest_x, &rest_y)?.predict(&x[i]))
        })
        .collect()
}

pub(crate) fn without(x: &[Vec<f64>], y: &[f64], i: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let keep = |j: &usize| *j != i;
    (
        (0..x.len()).filter(keep).map(|j| x[j].clone()).collect(),
        (0..y.len()).filter(keep).map(|j| y[j]).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_recovers_a_linear_relation_and_shrinks_with_strength() {
        // y = 50 + 3 a - 2 b, no noise.
        let x: Vec<Vec<f64>> = (0..12)
            .map(|i| vec![f64::from(i), f64::from((i * 7) % 5)])
            .collect();
        let y: Vec<f64> = x.iter().map(|r| 50.0 + 3.0 * r[0] - 2.0 * r[1]).collect();
        let weak = Ridge::fit(&x, &y, 1e-9).expect("fit");
        for (r, v) in x.iter().zip(&y) {
            assert!(
                (weak.predict(r) - v).abs() < 1e-4,
                "{} vs {v}",
                weak.predict(r)
            );
        }
        let strong = Ridge::fit(&x, &y, 1e6).expect("fit");
        assert!(
            (strong.predict(&x[0]) - strong.intercept).abs() < 0.1,
            "all shrunk away"
        );
        assert!(Ridge::fit(&x, &y, 0.0).is_err());
        assert!(Ridge::fit(&x[..1], &y[..1], 1.0).is_err());

        let chosen = Ridge::fit_cross_validated(&x, &y).expect("fit");
        assert_eq!(chosen.strength, RIDGE_STRENGTHS[0], "no noise: the weakest");
        let held = held_out_predictions(&x, &y).expect("held out");
        assert!(
            held.iter().zip(&y).all(|(p, v)| (p - v).abs() < 1.0),
            "{held:?}"
        );
    }

    /// The one-standard-error rule keeps a weak shrinkage where the rows follow their features and takes
    /// the strongest where they are noise, which the lowest error alone does not always do.
    #[test]
    fn the_one_standard_error_rule_shrinks_noise_away_and_keeps_a_signal() {
        let strengths = [1.0, 10.0, 100.0, 1e7];
        let x: Vec<Vec<f64>> = (0..10)
            .map(|i| vec![i as f64, ((i * 7) % 10) as f64])
            .collect();
        let signal: Vec<f64> = x.iter().map(|r| 3.0 * r[0] - r[1]).collect();
        let fit = Ridge::fit_cross_validated_one_se(&x, &signal, &strengths).expect("fit");
        assert_eq!(fit.strength, 1.0, "a clear signal keeps the weakest");
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut noise_picks = Vec::new();
        for _ in 0..20 {
            let noise: Vec<f64> = (0..10).map(|_| rng.random_range(-1.0..1.0)).collect();
            let lowest = Ridge::fit_cross_validated_among(&x, &noise, &strengths).expect("fit");
            let one_se = Ridge::fit_cross_validated_one_se(&x, &noise, &strengths).expect("fit");
            assert!(
                one_se.strength >= lowest.strength,
                "never weaker than the lowest error's"
            );
            noise_picks.push(one_se.strength);
        }
        let strongest = noise_picks.iter().filter(|&&s| s == 1e7).count();
        assert!(
            strongest >= 15,
            "noise is mostly shrunk to a shift: {noise_picks:?}"
        );
        assert!(Ridge::fit_cross_validated_one_se(&x[..2], &signal[..2], &strengths).is_err());
        assert!(Ridge::fit_cross_validated_one_se(&x, &signal, &[]).is_err());
    }

    #[test]
    fn held_out_predictions_do_not_see_their_network() {
        // y = x except one outlier. A model that never saw the outlier fits the other seven exactly
        // (up to the weakest ridge's shrinkage, under 2%) and predicts 3 there; one fitted with it (a
        // leak) is pulled towards 100 and predicts above 10.
        let x: Vec<Vec<f64>> = (0..8).map(|i| vec![f64::from(i)]).collect();
        let mut y: Vec<f64> = x.iter().map(|r| r[0]).collect();
        y[3] = 100.0;
        let held = held_out_predictions(&x, &y).expect("held out");
        assert!(
            (held[3] - 3.0).abs() < 0.1,
            "held-out prediction {}",
            held[3]
        );
        let leaking = Ridge::fit_cross_validated(&x, &y)
            .expect("fit")
            .predict(&x[3]);
        assert!(leaking > 10.0, "the test tells a leak apart: {leaking}");
    }
}
