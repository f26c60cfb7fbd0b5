//! The accuracy ground truth of the search space (`docs/evidence/ground-truth/ground-truth.json`): a fixed
//! set of architectures, each trained from scratch with one recipe, with its size, latency and accuracy
//! per seed; and how well an estimator's scores rank them ([`RankingScore`]). Experiments read this file
//! instead of retraining.

use std::path::Path;

use hsconas_devices::metrics::{kendall_tau, pearson, ranks};
use hsconas_models::Arch;
use serde::{Deserialize, Serialize};

use crate::NasError;

/// The trained set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// How every network was trained (the same for all).
    pub recipe: String,
    /// Where it was trained and measured.
    pub machine: String,
    /// The networks, in the order of the architecture list.
    pub networks: Vec<TrainedNetwork>,
}

/// One architecture of the set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedNetwork {
    /// Its id in the list (`e03`).
    pub id: String,
    /// Why it is in the set (`uniform`, `spread`, `skip`, `equal`).
    pub group: String,
    /// The architecture.
    pub arch: Arch,
    /// Trainable parameters at the set's input size and classes.
    pub params: usize,
    /// Multiply-accumulates of one image.
    pub macs: usize,
    /// Latency predicted by the table the set was selected with, ms.
    pub predicted_ms: f64,
    /// Latency measured end to end on the machine, ms: the median of [`Self::measurements_ms`] (absent
    /// until measured).
    pub measured_ms: Option<f64>,
    /// Every end-to-end measurement of it, ms, one per `hsconas latency validate` run (repeated because
    /// a shared machine's speed drifts between runs).
    #[serde(default)]
    pub measurements_ms: Vec<f64>,
    /// Finished trainings, by seed.
    pub runs: Vec<TrainedRun>,
}

/// One finished training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedRun {
    /// Seed of initialisation and data order.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// Validation top-1, percent.
    pub val_top1: f64,
    /// Test top-1, percent.
    pub test_top1: f64,
}

impl TrainedNetwork {
    /// Mean test top-1 over the finished seeds (`None` before the first).
    pub fn test_top1(&self) -> Option<f64> {
        let n = self.runs.len();
        (n > 0).then(|| self.runs.iter().map(|r| r.test_top1).sum::<f64>() / n as f64)
    }

    /// Test top-1 of one seed.
    pub fn seed_top1(&self, seed: u64) -> Option<f64> {
        self.runs
            .iter()
            .find(|r| r.seed == seed)
            .map(|r| r.test_top1)
    }
}

impl GroundTruth {
    /// Reads the file, refusing one that is not a ground truth.
    pub fn load(path: &Path) -> Result<GroundTruth, NasError> {
        let refuse = |message: String| NasError::State {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot be read ({e})")))?;
        serde_json::from_slice(&bytes).map_err(|e| refuse(format!("not a ground-truth file ({e})")))
    }

    /// The networks with at least one finished training.
    pub fn trained(&self) -> impl Iterator<Item = &TrainedNetwork> {
        self.networks.iter().filter(|n| !n.runs.is_empty())
    }

    /// The largest group of networks whose measured latency lies within ±`tolerance` (a fraction) of
    /// one value, the smallest such value on ties; `None` while nothing is measured.
    pub fn latency_cluster(&self, tolerance: f64) -> Option<LatencyCluster> {
        let measured: Vec<(&str, f64)> = self
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

/// The median of some measurements (`None` for none).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    (n > 0).then(|| (sorted[(n - 1) / 2] + sorted[n / 2]) / 2.0)
}

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

impl EstimatorScores {
    /// The parameter-free combination of several estimators: each one's scores turned into ranks over
    /// the architectures every part scored, then averaged (larger is better, as for the parts). Named
    /// `a+b`; the seconds of an architecture are the parts' summed. Nothing is fitted, so scoring it on
    /// the whole ground truth is not scoring it on its own training data.
    pub fn rank_average(parts: &[&EstimatorScores]) -> Result<EstimatorScores, NasError> {
        let Some(first) = parts.first() else {
            return Err(NasError::EmptyCombination);
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
        })
    }
}

/// Every estimator scored against the ground truth (what `scripts/ground-truth.sh score` writes as
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
) -> Result<ScoreReport, NasError> {
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
    for set in scores {
        let of = |networks: &[&TrainedNetwork]| -> Result<Option<RankingScore>, NasError> {
            let mut estimate = Vec::with_capacity(networks.len());
            let mut accuracy = Vec::with_capacity(networks.len());
            for n in networks {
                let arch = n.arch.to_string();
                let s = set
                    .networks
                    .iter()
                    .find(|s| s.arch == arch)
                    .ok_or_else(|| NasError::MissingEstimate {
                        estimator: set.estimator.clone(),
                        id: n.id.clone(),
                        arch: arch.clone(),
                    })?;
                estimate.push(s.score);
                accuracy.push(n.test_top1().unwrap_or(f64::NAN));
            }
            Ok(RankingScore::of(&estimate, &accuracy))
        };
        let seconds: f64 = set.networks.iter().map(|s| s.seconds).sum();
        estimators.push(EstimatorRow {
            estimator: set.estimator.clone(),
            seconds_per_network: seconds / set.networks.len().max(1) as f64,
            all: of(&trained)?,
            equal_latency: of(&equal)?,
        });
    }
    Ok(ScoreReport {
        networks: trained.len(),
        equal_latency_networks: equal.len(),
        noise_ceiling,
        measured_equal_latency: truth.latency_cluster(EQUAL_LATENCY_TOLERANCE),
        estimators,
    })
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
        let both = EstimatorScores::rank_average(&[&a, &b]).expect("combines");
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
        assert!(EstimatorScores::rank_average(&[]).is_err());
    }

    #[test]
    fn mean_accuracy_and_the_file_round_trip() {
        let arch: Arch = vec!["shuffle3:0.5"; 20].join(",").parse().expect("arch");
        let truth = GroundTruth {
            recipe: "r".into(),
            machine: "m".into(),
            networks: vec![TrainedNetwork {
                id: "e00".into(),
                group: "equal".into(),
                arch,
                params: 1,
                macs: 2,
                predicted_ms: 1.0,
                measured_ms: None,
                measurements_ms: Vec::new(),
                runs: vec![
                    TrainedRun {
                        seed: 0,
                        epochs: 15,
                        val_top1: 50.0,
                        test_top1: 51.0,
                    },
                    TrainedRun {
                        seed: 1,
                        epochs: 15,
                        val_top1: 52.0,
                        test_top1: 53.0,
                    },
                ],
            }],
        };
        assert_eq!(truth.networks[0].test_top1(), Some(52.0));
        assert_eq!(truth.networks[0].seed_top1(1), Some(53.0));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gt.json");
        std::fs::write(&path, serde_json::to_vec(&truth).expect("json")).expect("write");
        assert_eq!(GroundTruth::load(&path).expect("load"), truth);
        std::fs::write(&path, b"{\"recipe\": 3}").expect("write");
        let err = GroundTruth::load(&path)
            .expect_err("not a ground truth")
            .to_string();
        assert!(
            err.contains("gt.json") && err.contains("ground-truth"),
            "{err}"
        );
    }

    fn network(id: &str, group: &str, tenths: u8, runs: &[(u64, f64)]) -> TrainedNetwork {
        let arch: Arch = vec![format!("shuffle3:0.{tenths}"); 20]
            .join(",")
            .parse()
            .expect("arch");
        TrainedNetwork {
            id: id.into(),
            group: group.into(),
            arch,
            params: 0,
            macs: 0,
            predicted_ms: 1.0,
            measured_ms: None,
            measurements_ms: Vec::new(),
            runs: runs
                .iter()
                .map(|&(seed, test_top1)| TrainedRun {
                    seed,
                    epochs: 1,
                    val_top1: test_top1,
                    test_top1,
                })
                .collect(),
        }
    }

    #[test]
    fn estimators_are_scored_over_the_set_and_the_equal_latency_group() {
        let truth = GroundTruth {
            recipe: "r".into(),
            machine: "m".into(),
            networks: vec![
                network("u1", "uniform", 1, &[(0, 40.0)]),
                network("e2", "equal", 2, &[(0, 50.0), (1, 52.0)]),
                network("e3", "equal", 3, &[(0, 55.0), (1, 51.0)]),
                network("e4", "equal", 4, &[(0, 60.0), (1, 61.0)]),
                network("u5", "uniform", 5, &[]),
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
                network("a", "equal", 1, &[]),
                network("b", "equal", 2, &[]),
                network("c", "equal", 3, &[]),
                network("d", "equal", 4, &[]),
                network("e", "equal", 5, &[]),
            ],
        };
        assert!(truth.latency_cluster(0.05).is_none(), "nothing measured");
        // 1.0 and 1.1 fit around 1.05 (±4.8%); 1.1, 1.15 and 1.2 around 1.15 (±4.3%); 2.0 is alone.
        for (n, ms) in truth.networks.iter_mut().zip([2.0, 1.1, 1.15, 1.2, 1.0]) {
            n.measured_ms = Some(ms);
        }
        let cluster = truth.latency_cluster(0.05).expect("measured");
        assert_eq!(cluster.ids, ["b", "c", "d"]);
        assert!(cluster.ids.iter().all(|id| {
            let n = truth.networks.iter().find(|n| &n.id == id).expect("id");
            (n.measured_ms.expect("measured") / cluster.centre_ms - 1.0).abs() <= 0.05 + 1e-9
        }));
        assert_eq!(truth.latency_cluster(0.0).map(|c| c.ids.len()), Some(1));
        truth.networks[1].measured_ms = None;
        assert_eq!(
            truth.latency_cluster(0.05).map(|c| c.ids),
            Some(vec!["c".to_string(), "d".to_string()]),
            "an unmeasured network is in no group"
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
