//! How well accuracy estimators rank the ground truth's networks (`ground_truth score`): each estimator's
//! Kendall tau, Spearman rho and top-3 regret over the whole set and within the equal-latency group, the
//! seed-to-seed noise ceiling, and whether the leading estimator is ahead beyond the sampling noise. The
//! per-estimator statistics ([`RankingScore`]) are the product's; this report is the campaign's.

use hsconas_devices::metrics::{kendall_tau, ranks};
use hsconas_foundation::intervals::Bootstrap;
use hsconas_nas::ground_truth::resampled_kendall_tau;
use hsconas_nas::{ArchScore, EstimatorScores, GroundTruth, RankingScore, TrainedNetwork};
use serde::{Deserialize, Serialize};

use crate::ResearchError;

/// The parameter-free combination of several estimators: each one's scores turned into ranks over
/// the architectures every part scored, then averaged (larger is better, as for the parts). Named
/// `a+b`; the seconds of an architecture are the parts' summed. Nothing is fitted, so scoring it on
/// the whole ground truth is not scoring it on its own training data.
pub fn rank_average(parts: &[&EstimatorScores]) -> Result<EstimatorScores, ResearchError> {
    let Some(first) = parts.first() else {
        return Err(ResearchError::EmptyCombination);
    };
    let common: Vec<&str> = first
        .networks
        .iter()
        .map(|s| s.arch.as_str())
        .filter(|arch| {
            parts
                .iter()
                .all(|p| p.networks.iter().any(|s| s.arch == *arch))
        })
        .collect();
    let mut networks: Vec<ArchScore> = common
        .iter()
        .map(|arch| ArchScore {
            arch: arch.to_string(),
            score: 0.0,
            seconds: 0.0,
        })
        .collect();
    for part in parts {
        let found: Vec<&ArchScore> = common
            .iter()
            .filter_map(|arch| part.networks.iter().find(|s| s.arch == *arch))
            .collect();
        let scores: Vec<f64> = found.iter().map(|s| s.score).collect();
        for ((n, rank), s) in networks.iter_mut().zip(ranks(&scores)).zip(&found) {
            n.score += rank / parts.len() as f64;
            n.seconds += s.seconds;
        }
    }
    Ok(EstimatorScores {
        estimator: parts
            .iter()
            .map(|p| p.estimator.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        seed: first.seed,
        batch_size: first.batch_size,
        networks,
    })
}

/// Every estimator scored against the ground truth (what `research/scripts/ground-truth.sh score` writes as
/// `estimators.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreReport {
    /// Trained networks compared.
    pub networks: usize,
    /// Of them, in the equal-latency group.
    pub equal_latency_networks: usize,
    /// Seed 0 against seed 1 of the networks trained twice (absent under three such networks).
    pub noise_ceiling: Option<NoiseCeiling>,
    /// The largest group of the set within ±5% of one measured latency (absent before the set is
    /// measured).
    #[serde(default)]
    pub measured_equal_latency: Option<LatencyCluster>,
    /// One row per estimator, in the order given.
    pub estimators: Vec<EstimatorRow>,
    /// The estimator with the highest tau in each group (and the best single one, when a rank average
    /// leads) against every other, on the same resamples.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<EstimatorComparison>,
}

/// Whether the leading estimator of a group is ahead of another beyond the sampling noise of the
/// networks: the share of paired resamples (the same networks for both) in which its tau is at or below
/// the other's. 0.5 is a coin toss; under 0.05 the lead holds in 95% of resamples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatorComparison {
    /// `all` or `equal_latency`.
    pub group: String,
    /// The estimator with the highest tau in the group (or the best single estimator).
    pub leader: String,
    /// The one it is compared with.
    pub other: String,
    /// Share of resamples in which the leader's tau is at or below the other's.
    pub leader_at_or_below: f64,
}

/// How well one training seed ranks the networks like another: the best any estimator can hope for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseCeiling {
    /// Networks trained with both seeds.
    pub networks: usize,
    /// Kendall's tau between the two seeds' test accuracies.
    pub kendall_tau: f64,
}

/// One estimator against the ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatorRow {
    /// Its name.
    pub estimator: String,
    /// Mean seconds per network.
    pub seconds_per_network: f64,
    /// Over every trained network.
    pub all: Option<RankingScore>,
    /// Within the equal-latency group (`group == "equal"`).
    pub equal_latency: Option<RankingScore>,
}

/// What "equal measured latency" means in [`ScoreReport::measured_equal_latency`]: within ±5% of one value.
pub const EQUAL_LATENCY_TOLERANCE: f64 = 0.05;

/// Scores each estimator's scores against the trained networks' mean test accuracy. Every trained
/// network must have a score in each set (matched by architecture string).
pub fn score_estimators(
    truth: &GroundTruth,
    scores: &[EstimatorScores],
) -> Result<ScoreReport, ResearchError> {
    let trained: Vec<&TrainedNetwork> = truth.trained().collect();
    let equal: Vec<&TrainedNetwork> = trained
        .iter()
        .copied()
        .filter(|n| n.group == "equal")
        .collect();
    let twice: (Vec<f64>, Vec<f64>) = trained
        .iter()
        .filter_map(|n| Some((n.seed_top1(0)?, n.seed_top1(1)?)))
        .unzip();
    let noise_ceiling = (twice.0.len() >= 3).then(|| NoiseCeiling {
        networks: twice.0.len(),
        kendall_tau: kendall_tau(&twice.0, &twice.1),
    });
    let mut estimators = Vec::with_capacity(scores.len());
    // Per estimator and group: its scores and the accuracies, aligned network by network.
    let mut aligned: Vec<[(Vec<f64>, Vec<f64>); 2]> = Vec::with_capacity(scores.len());
    for set in scores {
        let of = |networks: &[&TrainedNetwork]| -> Result<(Vec<f64>, Vec<f64>), ResearchError> {
            let mut estimate = Vec::with_capacity(networks.len());
            let mut accuracy = Vec::with_capacity(networks.len());
            for n in networks {
                let arch = n.arch.to_string();
                let s = set
                    .networks
                    .iter()
                    .find(|s| s.arch == arch)
                    .ok_or_else(|| ResearchError::MissingEstimate {
                        estimator: set.estimator.clone(),
                        id: n.id.clone(),
                        arch: arch.clone(),
                    })?;
                estimate.push(s.score);
                accuracy.push(n.test_top1().unwrap_or(f64::NAN));
            }
            Ok((estimate, accuracy))
        };
        let groups = [of(&trained)?, of(&equal)?];
        let seconds: f64 = set.networks.iter().map(|s| s.seconds).sum();
        estimators.push(EstimatorRow {
            estimator: set.estimator.clone(),
            seconds_per_network: seconds / set.networks.len().max(1) as f64,
            all: RankingScore::of(&groups[0].0, &groups[0].1),
            equal_latency: RankingScore::of(&groups[1].0, &groups[1].1),
        });
        aligned.push(groups);
    }
    let comparisons = compare_with_the_leader(&estimators, &aligned);
    Ok(ScoreReport {
        networks: trained.len(),
        equal_latency_networks: equal.len(),
        noise_ceiling,
        measured_equal_latency: latency_cluster(truth, EQUAL_LATENCY_TOLERANCE),
        estimators,
        comparisons,
    })
}

/// In each group, the estimator with the highest tau against every other, and so is the single
/// estimator with the highest tau when a rank average (a name with `+`) leads ([`EstimatorComparison`]).
fn compare_with_the_leader(
    rows: &[EstimatorRow],
    aligned: &[[(Vec<f64>, Vec<f64>); 2]],
) -> Vec<EstimatorComparison> {
    let mut comparisons = Vec::new();
    for (g, group) in ["all", "equal_latency"].into_iter().enumerate() {
        let tau = |i: usize| {
            let score = if g == 0 {
                &rows[i].all
            } else {
                &rows[i].equal_latency
            };
            score.as_ref().map(|s| s.kendall_tau)
        };
        let best = |single: bool| {
            (0..rows.len())
                .filter(|&i| tau(i).is_some() && !(single && rows[i].estimator.contains('+')))
                .max_by(|&a, &b| {
                    let of = |i: usize| tau(i).unwrap_or(f64::NEG_INFINITY);
                    of(a).total_cmp(&of(b))
                })
        };
        let mut leaders: Vec<usize> = [best(false), best(true)].into_iter().flatten().collect();
        leaders.dedup();
        for leader in leaders {
            let (lead_estimate, accuracy) = &aligned[leader][g];
            for other in (0..rows.len()).filter(|&i| i != leader && tau(i).is_some()) {
                let other_estimate = &aligned[other][g].0;
                let Some(share) = Bootstrap::default().share_at_or_below(
                    accuracy.len(),
                    |idx| resampled_kendall_tau(lead_estimate, accuracy, idx),
                    |idx| resampled_kendall_tau(other_estimate, accuracy, idx),
                ) else {
                    continue;
                };
                comparisons.push(EstimatorComparison {
                    group: group.into(),
                    leader: rows[leader].estimator.clone(),
                    other: rows[other].estimator.clone(),
                    leader_at_or_below: share,
                });
            }
        }
    }
    comparisons
}

/// The largest group of `truth`'s networks whose measured latency lies within ±`tolerance` (a fraction)
/// of one value, the smallest such value on ties; `None` while nothing is measured.
pub fn latency_cluster(truth: &GroundTruth, tolerance: f64) -> Option<LatencyCluster> {
    let measured: Vec<(&str, f64)> = truth
        .networks
        .iter()
        .filter_map(|n| Some((n.id.as_str(), n.measured_ms?)))
        .collect();
    // A largest group has a network on one of its edges, so the centres worth trying are those
    // that put a network exactly on an edge.
    let centres = measured
        .iter()
        .flat_map(|&(_, ms)| [ms / (1.0 + tolerance), ms / (1.0 - tolerance)]);
    let mut best: Option<LatencyCluster> = None;
    for centre in centres {
        let ids: Vec<String> = measured
            .iter()
            .filter(|&&(_, ms)| (ms / centre - 1.0).abs() <= tolerance + 1e-12)
            .map(|&(id, _)| id.to_string())
            .collect();
        let better = best.as_ref().is_none_or(|b| {
            ids.len() > b.ids.len() || (ids.len() == b.ids.len() && centre < b.centre_ms)
        });
        if better {
            best = Some(LatencyCluster {
                centre_ms: centre,
                tolerance,
                ids,
            });
        }
    }
    best
}

/// Networks of (nearly) equal measured latency: within ±`tolerance` of `centre_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyCluster {
    /// The value they lie around, ms.
    pub centre_ms: f64,
    /// Their largest relative distance from it (0.05: ±5%).
    pub tolerance: f64,
    /// Their ids, in the set's order.
    pub ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_average_combines_the_common_architectures() {
        let set = |name: &str, scores: &[(&str, f64)]| EstimatorScores {
            estimator: name.into(),
            seed: 0,
            batch_size: 1,
            networks: scores
                .iter()
                .map(|(arch, score)| ArchScore {
                    arch: arch.to_string(),
                    score: *score,
                    seconds: 1.0,
                })
                .collect(),
        };
        let a = set(
            "a",
            &[("x", 10.0), ("y", 30.0), ("z", 20.0), ("only-a", 0.0)],
        );
        let b = set("b", &[("z", 0.3), ("y", 0.1), ("x", 0.2)]);
        let both = rank_average(&[&a, &b]).expect("combines");
        assert_eq!(both.estimator, "a+b");
        let score = |arch: &str| {
            both.networks
                .iter()
                .find(|n| n.arch == arch)
                .map(|n| n.score)
        };
        // Ranks in a: x 1, z 2, y 3; in b: y 1, x 2, z 3 (1-based, larger better).
        assert_eq!(both.networks.len(), 3);
        assert!(score("only-a").is_none());
        // Mean ranks: x 1.5, y 2.0, z 2.5.
        assert!(
            score("z") > score("y") && score("y") > score("x"),
            "{both:?}"
        );
        assert_eq!(both.networks[0].seconds, 2.0);
        assert!(rank_average(&[]).is_err());
    }

    #[test]
    fn estimators_are_scored_over_the_set_and_the_equal_latency_group() {
        let truth = GroundTruth {
            recipe: "r".into(),
            machine: "m".into(),
            networks: vec![
                TrainedNetwork::uniform("u1", "uniform", 1, &[(0, 40.0)]),
                TrainedNetwork::uniform("e2", "equal", 2, &[(0, 50.0), (1, 52.0)]),
                TrainedNetwork::uniform("e3", "equal", 3, &[(0, 55.0), (1, 51.0)]),
                TrainedNetwork::uniform("e4", "equal", 4, &[(0, 60.0), (1, 61.0)]),
                TrainedNetwork::uniform("u5", "uniform", 5, &[]),
            ],
        };
        let scores = |name: &str, values: [f64; 5]| EstimatorScores {
            estimator: name.into(),
            seed: 0,
            batch_size: 1,
            networks: truth
                .networks
                .iter()
                .zip(values)
                .map(|(n, score)| ArchScore {
                    arch: n.arch.to_string(),
                    score,
                    seconds: 2.0,
                })
                .collect(),
        };
        let report = score_estimators(
            &truth,
            &[
                scores("right", [1.0, 2.0, 3.0, 4.0, 0.0]),
                scores("wrong-within", [1.0, 4.0, 3.0, 2.0, 0.0]),
            ],
        )
        .expect("scores");
        assert_eq!((report.networks, report.equal_latency_networks), (4, 3));
        let ceiling = report.noise_ceiling.expect("three networks trained twice");
        assert_eq!((ceiling.networks, ceiling.kendall_tau), (3, 1.0 / 3.0));
        let right = &report.estimators[0];
        assert_eq!(right.seconds_per_network, 2.0);
        assert_eq!(right.all.as_ref().map(|s| s.kendall_tau), Some(1.0));
        assert_eq!(
            right.equal_latency.as_ref().map(|s| s.kendall_tau),
            Some(1.0)
        );
        // Ranks the small network last (right over the set) but the equal group backwards.
        let wrong = &report.estimators[1];
        assert!(wrong
            .all
            .as_ref()
            .is_some_and(|s| s.kendall_tau > -1.0 && s.kendall_tau < 1.0));
        assert_eq!(
            wrong.equal_latency.as_ref().map(|s| s.kendall_tau),
            Some(-1.0)
        );
        // A perfect ranking keeps tau 1 on every resample that is not all ties; its interval ends at 1.
        let interval = right
            .all
            .as_ref()
            .and_then(|s| s.kendall_tau_ci95)
            .expect("an interval");
        assert!(
            interval.contains(1.0) && interval.high == 1.0,
            "{interval:?}"
        );
        // The leader of the equal group is `right`; the paired resamples never put it below `wrong`.
        let equal = report
            .comparisons
            .iter()
            .find(|c| c.group == "equal_latency")
            .expect("a comparison in the equal group");
        assert_eq!(
            (equal.leader.as_str(), equal.other.as_str()),
            ("right", "wrong-within")
        );
        assert!(equal.leader_at_or_below < 0.5, "{equal:?}");

        let mut missing = scores("partial", [1.0; 5]);
        missing.networks.remove(2);
        let err = score_estimators(&truth, &[missing]).expect_err("a network without a score");
        assert!(err.to_string().contains("e3"), "{err}");
    }

    #[test]
    fn the_largest_group_of_equal_measured_latency() {
        let mut truth = GroundTruth {
            recipe: "r".into(),
            machine: "m".into(),
            networks: vec![
                TrainedNetwork::uniform("a", "equal", 1, &[]),
                TrainedNetwork::uniform("b", "equal", 2, &[]),
                TrainedNetwork::uniform("c", "equal", 3, &[]),
                TrainedNetwork::uniform("d", "equal", 4, &[]),
                TrainedNetwork::uniform("e", "equal", 5, &[]),
            ],
        };
        assert!(latency_cluster(&truth, 0.05).is_none(), "nothing measured");
        // 1.0 and 1.1 fit around 1.05 (±4.8%); 1.1, 1.15 and 1.2 around 1.15 (±4.3%); 2.0 is alone.
        for (n, ms) in truth.networks.iter_mut().zip([2.0, 1.1, 1.15, 1.2, 1.0]) {
            n.measured_ms = Some(ms);
        }
        let cluster = latency_cluster(&truth, 0.05).expect("measured");
        assert_eq!(cluster.ids, ["b", "c", "d"]);
        assert!(cluster.ids.iter().all(|id| {
            let n = truth.networks.iter().find(|n| &n.id == id).expect("id");
            (n.measured_ms.expect("measured") / cluster.centre_ms - 1.0).abs() <= 0.05 + 1e-9
        }));
        assert_eq!(latency_cluster(&truth, 0.0).map(|c| c.ids.len()), Some(1));
        truth.networks[1].measured_ms = None;
        assert_eq!(
            latency_cluster(&truth, 0.05).map(|c| c.ids),
            Some(vec!["c".to_string(), "d".to_string()]),
            "an unmeasured network is in no group"
        );
    }
}
