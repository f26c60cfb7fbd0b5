//! How many trainings a predictor needs on a new task (`hsconas predictor curve`): for each size K, many
//! random draws of K trained networks to fit on, each scored on the networks it left out, against the
//! prior alone and MACs on the same held-out networks.
//!
//! A draw's tau is over the networks not drawn, so draws of one K share networks and their taus are not
//! independent: the spread reported (the 2.5th and 97.5th percentiles over draws) says how much one
//! particular choice of K networks matters, not a confidence interval of the mean.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use hsconas_devices::metrics::kendall_tau;
use hsconas_models::NetConfig;

use super::fit::{fit_model, prior_predictions};
use super::{features_at, rmse, Predictor, TrainingResults};
use crate::NasError;

/// Fewest networks left out of a draw for its tau to mean anything.
pub const MIN_HELD_OUT: usize = 4;

/// Kendall's tau over the draws of one K.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TauSpread {
    /// Mean over the draws.
    pub mean: f64,
    /// 2.5th percentile over the draws.
    pub low: f64,
    /// 97.5th percentile over the draws.
    pub high: f64,
}

impl TauSpread {
    fn of(mut taus: Vec<f64>) -> TauSpread {
        taus.sort_by(f64::total_cmp);
        let at = |q: f64| taus[((taus.len() - 1) as f64 * q).round() as usize];
        TauSpread {
            mean: taus.iter().sum::<f64>() / taus.len() as f64,
            low: at(0.025),
            high: at(0.975),
        }
    }
}

/// The scores of one K.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Trained networks fitted on.
    pub k: usize,
    /// Networks each draw is scored on (the others).
    pub held_out: usize,
    /// Draws.
    pub draws: usize,
    /// The fitted model (adapted from the prior when there is one).
    pub fitted: TauSpread,
    /// The prior alone, on the same held-out networks (absent without a prior).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<TauSpread>,
    /// MACs, on the same held-out networks.
    pub macs: TauSpread,
    /// Share of draws in which the fitted model's tau is above the prior's (absent without a prior).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted_above_prior: Option<f64>,
    /// Share of draws in which the fitted model's tau is above MACs'.
    pub fitted_above_macs: f64,
    /// The fitted model's root mean square error on the held-out networks (points of top-1), mean over
    /// the draws: what adaptation corrects even where the order stays the prior's.
    #[serde(default)]
    pub fitted_rmse: f64,
    /// The prior's root mean square error on the same networks, mean over the draws (absent without a
    /// prior).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_rmse: Option<f64>,
}

/// The curve over `sizes` (each K from 2 up to the networks less [`MIN_HELD_OUT`]), `draws` draws per K
/// with `seed`: the model fitted as `hsconas predictor fit` fits it (adapting `prior` when given), scored
/// by Kendall's tau on the networks left out.
pub fn few_shot_curve(
    results: &TrainingResults,
    prior: Option<&Predictor>,
    config: NetConfig,
    sizes: &[usize],
    draws: usize,
    seed: u64,
) -> Result<Vec<CurvePoint>, NasError> {
    let n = results.networks.len();
    let refuse = |m: String| Err(NasError::Estimator(m));
    if draws == 0 {
        return refuse("a curve needs at least one draw per size".into());
    }
    // A plain fit cross-validates its strength (three networks or more); an adaptation of a prior
    // re-levels it from two.
    let smallest = if prior.is_some() { 2 } else { 3 };
    if let Some(&k) = sizes
        .iter()
        .find(|&&k| k < smallest || k + MIN_HELD_OUT > n)
    {
        return refuse(format!(
            "K = {k} with {n} trained networks: each K must be at least {smallest} ({}) and leave \
             {MIN_HELD_OUT} or more networks to score on",
            if prior.is_some() {
                "adapting a prior"
            } else {
                "a fit without a prior"
            }
        ));
    }
    let x: Vec<Vec<f64>> = results
        .networks
        .iter()
        .map(|r| features_at(&r.arch, &config))
        .collect::<Result<_, _>>()?;
    let y: Vec<f64> = results.networks.iter().map(|r| r.mean_top1()).collect();
    let base = prior_predictions(results, prior)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut points = Vec::with_capacity(sizes.len());
    for &k in sizes {
        let (mut fitted, mut prior_taus, mut macs) = (Vec::new(), Vec::new(), Vec::new());
        let (mut fitted_rmse, mut prior_rmse) = (0.0, 0.0);
        for _ in 0..draws {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            let (train, test) = order.split_at(k);
            let pick = |idx: &[usize], v: &dyn Fn(usize) -> f64| -> Vec<f64> {
                idx.iter().map(|&i| v(i)).collect()
            };
            let train_x: Vec<Vec<f64>> = train.iter().map(|&i| x[i].clone()).collect();
            let train_base = base.as_ref().map(|b| pick(train, &|i| b[i]));
            let ridge = fit_model(&train_x, &pick(train, &|i| y[i]), train_base.as_deref())?;
            let truth = pick(test, &|i| y[i]);
            let base = |i: usize| base.as_ref().map_or(0.0, |b| b[i]);
            let predicted = pick(test, &|i| base(i) + ridge.predict(&x[i]));
            fitted.push(kendall_tau(&predicted, &truth));
            fitted_rmse += rmse(&predicted, &truth) / draws as f64;
            if prior.is_some() {
                let alone = pick(test, &base);
                prior_taus.push(kendall_tau(&alone, &truth));
                prior_rmse += rmse(&alone, &truth) / draws as f64;
            }
            // The first feature is log MACs: the same order as MACs.
            macs.push(kendall_tau(&pick(test, &|i| x[i][0]), &truth));
        }
        let above = |other: &[f64]| {
            fitted.iter().zip(other).filter(|(f, o)| f > o).count() as f64 / draws as f64
        };
        points.push(CurvePoint {
            k,
            held_out: n - k,
            draws,
            fitted_above_prior: prior.map(|_| above(&prior_taus)),
            fitted_above_macs: above(&macs),
            prior: prior.map(|_| TauSpread::of(prior_taus)),
            macs: TauSpread::of(macs),
            fitted: TauSpread::of(fitted),
            fitted_rmse,
            prior_rmse: prior.map(|_| prior_rmse),
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use hsconas_models::{Arch, Layout, SearchSpace};

    use super::*;
    use crate::predictor::TrainedResult;

    fn config() -> NetConfig {
        NetConfig {
            layout: Layout::A,
            input_size: 32,
            classes: 10,
        }
    }

    /// 24 sampled architectures whose accuracy is `truth` of them.
    fn results(truth: impl Fn(&Arch) -> f64) -> TrainingResults {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        TrainingResults {
            networks: (0..24)
                .map(|_| {
                    let arch = SearchSpace::full().sample(&mut rng);
                    TrainedResult {
                        top1: vec![truth(&arch)],
                        arch,
                    }
                })
                .collect(),
            data: None,
            recipe: None,
        }
    }

    /// A task whose accuracy is the opposite of what the prior predicts: the prior alone ranks it
    /// backwards, and the adapted model learns that from a few networks, better with more.
    #[test]
    fn an_adapted_model_learns_a_task_its_prior_gets_backwards() {
        let prior = Predictor::built_in().expect("built in");
        let task = results(|a| {
            100.0 - prior.predict(a).expect("a prediction") + 0.01 * a.to_string().len() as f64
        });
        let curve =
            few_shot_curve(&task, Some(&prior), config(), &[4, 16], 40, 1).expect("a curve");
        let prior_tau = curve[0].prior.expect("a prior").mean;
        assert!(prior_tau < -0.8, "the prior is backwards: {prior_tau}");
        assert!(curve[1].fitted.mean > 0.5, "{:?}", curve[1]);
        assert!(curve[1].fitted.mean > curve[0].fitted.mean, "{curve:?}");
        assert!(curve[1].fitted_above_prior.expect("a prior") > 0.9);
        assert_eq!((curve[1].k, curve[1].held_out, curve[1].draws), (16, 8, 40));
        let s = curve[1].fitted;
        assert!(s.low <= s.mean && s.mean <= s.high, "{s:?}");
        // Reproducible for a seed.
        assert_eq!(
            few_shot_curve(&task, Some(&prior), config(), &[4, 16], 40, 1).expect("again"),
            curve
        );
    }

    /// A task at 24x24 inputs whose accuracy is the built-in (32x32) predictor's plus 2 points: read at
    /// its own configuration, the prior ranks every held-out draw exactly and the adapted model learns
    /// the shift (fed the features counted at 24x24, where the stages shrink unevenly, it would not).
    #[test]
    fn a_prior_of_another_input_size_is_read_at_its_own() {
        let prior = Predictor::built_in().expect("built in");
        let task = results(|a| prior.predict(a).expect("a prediction") + 2.0);
        let at_24 = NetConfig {
            input_size: 24,
            ..config()
        };
        let curve = few_shot_curve(&task, Some(&prior), at_24, &[4], 20, 2).expect("a curve");
        let p = &curve[0];
        assert_eq!(p.prior.expect("a prior").low, 1.0, "{p:?}");
        assert!(
            p.fitted_rmse < 0.05 && p.prior_rmse.expect("a prior") > 1.9,
            "{p:?}"
        );
    }

    /// Accuracies that are noise: a model scored on the networks it was fitted on would find a ranking
    /// (it fits them); scored on the ones it left out, it finds none.
    #[test]
    fn on_noise_the_held_out_tau_is_near_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let noise: Vec<f64> = (0..24)
            .map(|_| rand::Rng::random_range(&mut rng, 40.0..60.0))
            .collect();
        let mut task = results(|_| 0.0);
        for (n, v) in task.networks.iter_mut().zip(noise) {
            n.top1 = vec![v];
        }
        let curve = few_shot_curve(&task, None, config(), &[16], 200, 2).expect("a curve");
        assert!(curve[0].fitted.mean.abs() < 0.15, "{:?}", curve[0]);
    }

    #[test]
    fn sizes_that_leave_too_few_networks_are_refused() {
        let task = results(|a| a.to_string().len() as f64);
        for k in [1, 2, 21, 24] {
            let err = few_shot_curve(&task, None, config(), &[k], 10, 0).expect_err("refused");
            assert!(err.to_string().contains(&format!("K = {k}")), "{err}");
        }
        // Two networks adapt a prior (its level moves: the prior's order, hence its tau, stays), the
        // default sizes' first.
        let prior = Predictor::built_in().expect("built in");
        let two = few_shot_curve(&task, Some(&prior), config(), &[2], 10, 0).expect("K = 2");
        assert_eq!(two[0].fitted, two[0].prior.expect("a prior"), "{two:?}");
        assert!(few_shot_curve(&task, None, config(), &[4], 0, 0).is_err());
        let plain = few_shot_curve(&task, None, config(), &[20], 5, 0).expect("a curve");
        assert!(plain[0].prior.is_none() && plain[0].fitted_above_prior.is_none());
    }
}
