//! `results.json` of the results study: every number of docs/RESULTS.md, written by the report and read
//! back through these types (`results.md` is rendered from them).

use hsconas_devices::metrics::PredictorAccuracy;
use hsconas_foundation::intervals::Interval;
use serde::{Deserialize, Serialize};

/// Everything the study found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// How every CIFAR-10 network was trained (`15 epochs, same recipe for every network`).
    pub recipe: String,
    /// Table A: every trained network at input 32.
    pub cifar10: Vec<CifarRow>,
    /// Each found network against the closest baselines in latency.
    pub comparisons: Vec<Comparison>,
    /// How far two trainings of one network differ (absent under three networks trained twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_noise: Option<SeedNoise>,
    /// How the supernet ranks the trained networks of the space (absent under three networks).
    pub supernet_ranking: Option<Ranking>,
    /// Table B: latency at input 224.
    pub imagenet224: Vec<LatencyRow>,
    /// The searches' winners.
    pub searches: Vec<SearchRow>,
    /// The latency model on held-out networks.
    pub latency_model: Vec<LatencyModelRow>,
    /// Wall time per phase.
    pub timing: Vec<Phase>,
}

/// One finished training of a network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    pub epochs: Option<usize>,
    pub test_top1: Option<f64>,
    pub val_top1: Option<f64>,
}

/// A network trained on CIFAR-10.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CifarRow {
    pub name: String,
    /// `found`, `uniform scaling` or `hand-designed`.
    pub kind: String,
    /// Its `hsconas train` flags.
    pub flags: String,
    pub params: usize,
    pub macs: usize,
    /// Latency (10th percentile) at input 32, ONNX Runtime, ms.
    pub ort_ms: Option<f64>,
    /// The same with tract.
    pub tract_ms: Option<f64>,
    pub seeds: Vec<SeedResult>,
    /// Validation top-1 with the supernet's weights, percent (networks of the space only).
    pub supernet_top1: Option<f64>,
    /// Test error over the seeds, percent.
    pub test_error_mean: Option<f64>,
    pub test_error_min: Option<f64>,
    pub test_error_max: Option<f64>,
}

/// A network's size and latency at one input size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyRow {
    pub name: String,
    pub kind: String,
    pub params: usize,
    pub macs: usize,
    pub ort_ms: Option<f64>,
    pub tract_ms: Option<f64>,
}

/// A found network against one baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub found: String,
    pub baseline: String,
    /// Latency of the found network over the baseline's.
    pub latency_ratio: f64,
    /// Found minus baseline mean test error, points.
    pub test_error_difference: Option<f64>,
    /// Its 95% interval from the seed noise (a normal approximation with the pooled standard deviation
    /// of one training, [`hsconas_foundation::intervals::difference_of_means`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_error_difference_ci95: Option<Interval>,
}

/// The standard deviation of one training's test error, pooled over the networks trained with two
/// seeds: `sqrt(mean((a - b)^2) / 2)` over their seed pairs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedNoise {
    pub networks: usize,
    pub one_training_sd: f64,
}

/// Supernet accuracy against trained accuracy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ranking {
    pub networks: usize,
    pub kendall_tau: f64,
    pub pearson: f64,
}

/// A search's winner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchRow {
    pub name: String,
    pub target_ms: f64,
    pub arch: String,
    /// Supernet validation accuracy, a fraction.
    pub supernet_top1: f64,
    pub score: f64,
    pub predicted_ms: f64,
    pub measured_ms: Option<f64>,
    /// Measured against the target, percent.
    pub deviation_percent: Option<f64>,
    pub evaluations: usize,
    pub correction_rounds: usize,
}

/// The active predictor of a table's validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyModelRow {
    pub table: String,
    pub predictor: String,
    pub accuracy: PredictorAccuracy,
}

/// Wall time of one phase of `research/scripts/reproduce.sh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub phase: String,
    pub seconds: u64,
}
