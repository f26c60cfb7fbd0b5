//! The accuracy ground truth of the search space (`docs/evidence/ground-truth/ground-truth.json`): a fixed
//! set of architectures, each trained from scratch with one recipe, with its size, latency and accuracy
//! per seed ([`GroundTruth`]); and how well an estimator's scores rank them ([`RankingScore`], module
//! `scoring`). Experiments read these files instead of retraining; the search-level proof and the
//! campaign's drift-normalised measurement are research (`hsconas-research`).

use std::path::Path;

use hsconas_models::Arch;
use serde::{Deserialize, Serialize};

use crate::NasError;

mod scoring;

pub use scoring::{
    score_estimators, ArchScore, EstimatorRow, EstimatorScores, NoiseCeiling, RankingScore,
    ScoreReport, EQUAL_LATENCY_TOLERANCE,
};

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
    /// Latency measured end to end on the machine, ms: from [`Self::measurements_ms`], each normalised by
    /// its run's median over the list before their median is taken ([`run_normalised_ms`]; absent until
    /// measured).
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

/// The median of some measurements ([`hsconas_devices::drift::median`], the workspace's one definition;
/// `None` for none).
pub fn median(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| hsconas_devices::drift::median(values))
}

impl TrainedNetwork {
    /// A network whose 20 layers are all `shuffle3:0.<tenths>` (`tenths` 1 to 9), trained with `runs`
    /// (seed, test top-1), unmeasured: for tests and examples of code that reads a ground truth.
    pub fn uniform(id: &str, group: &str, tenths: u8, runs: &[(u64, f64)]) -> TrainedNetwork {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
