//! The accuracy ground truth of the search space (`docs/evidence/ground-truth/ground-truth.json`): a fixed
//! set of architectures, each trained from scratch with one recipe, with its size, latency and accuracy
//! per seed ([`GroundTruth`]); and how well one estimator's scores rank trained networks ([`RankingScore`],
//! module `scoring`). Experiments read these files instead of retraining; the search-level proof, the
//! campaign's drift-normalised measurement and the report comparing every estimator on the set are
//! research (`hsconas-research`).

use std::path::Path;

use hsconas_models::Arch;
use serde::{Deserialize, Serialize};

use crate::NasError;

mod scoring;

pub use scoring::{resampled_kendall_tau, ArchScore, EstimatorScores, RankingScore};

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
}
