//! How well an accuracy estimator's scores rank the ground truth's networks by their trained accuracy.

use hsconas_devices::metrics::{kendall_tau, pearson, ranks};
use hsconas_foundation::intervals::{Bootstrap, Interval};
use serde::{Deserialize, Serialize};

/// Scores of one accuracy estimator for a list of architectures (what `hsconas estimate --json` prints;
/// larger is better).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatorScores {
    /// The estimator's name (`synflow`, `params`, `supernet`, ...).
    pub estimator: String,
    /// Seed of the networks' initialisation and of the batch.
    pub seed: u64,
    /// Images in the batch the estimator saw.
    pub batch_size: usize,
    /// One score per architecture, in the order asked.
    pub networks: Vec<ArchScore>,
}

/// One architecture's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchScore {
    /// The architecture string.
    pub arch: String,
    /// The score.
    pub score: f64,
    /// Seconds it took.
    pub seconds: f64,
}

/// How well scores rank networks by their trained accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingScore {
    /// Networks compared.
    pub networks: usize,
    /// Kendall's tau between scores and trained accuracy.
    pub kendall_tau: f64,
    /// Spearman's rho.
    pub spearman_rho: f64,
    /// Best trained accuracy of the set minus the best trained accuracy among the estimator's top 3,
    /// points (0: the estimator's top 3 holds the best network).
    pub top3_regret: f64,
    /// 95% bootstrap interval of `kendall_tau` over the networks (resampled with replacement,
    /// [`Bootstrap::default`]); absent in reports written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kendall_tau_ci95: Option<Interval>,
}

/// Kendall's tau of the networks `idx` (a resample, indices into both slices) of `estimate` against
/// `trained`: what [`RankingScore::of`]'s bootstrap interval resamples.
pub fn resampled_kendall_tau(estimate: &[f64], trained: &[f64], idx: &[usize]) -> f64 {
    let pick = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    kendall_tau(&pick(estimate), &pick(trained))
}

impl RankingScore {
    /// Scores `estimate` (larger is better) against `trained` (accuracy), network by network. `None` with
    /// fewer than three networks.
    pub fn of(estimate: &[f64], trained: &[f64]) -> Option<RankingScore> {
        let n = estimate.len().min(trained.len());
        if n < 3 {
            return None;
        }
        let (estimate, trained) = (&estimate[..n], &trained[..n]);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| estimate[b].total_cmp(&estimate[a]));
        let best = trained.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let best_of_top3 = order[..3]
            .iter()
            .map(|&i| trained[i])
            .fold(f64::NEG_INFINITY, f64::max);
        Some(RankingScore {
            networks: n,
            kendall_tau: kendall_tau(estimate, trained),
            spearman_rho: pearson(&ranks(estimate), &ranks(trained)),
            top3_regret: best - best_of_top3,
            kendall_tau_ci95: Bootstrap::default()
                .interval(n, |idx| resampled_kendall_tau(estimate, trained, idx)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_scores_of_perfect_reversed_and_partial_estimators() {
        let trained = [50.0, 60.0, 55.0, 70.0, 65.0];
        let perfect = RankingScore::of(&[1.0, 3.0, 2.0, 5.0, 4.0], &trained).expect("score");
        assert_eq!(
            (
                perfect.kendall_tau,
                perfect.spearman_rho,
                perfect.top3_regret
            ),
            (1.0, 1.0, 0.0)
        );
        let reversed = RankingScore::of(&[5.0, 3.0, 4.0, 1.0, 2.0], &trained).expect("score");
        assert_eq!((reversed.kendall_tau, reversed.spearman_rho), (-1.0, -1.0));
        // Its top 3 are the networks at 50, 55 and 60: 10 points below the best.
        assert_eq!(reversed.top3_regret, 10.0);
        assert!(RankingScore::of(&[1.0, 2.0], &[1.0, 2.0]).is_none());
    }
}
