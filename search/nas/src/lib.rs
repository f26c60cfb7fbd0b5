//! The search of docs/DESIGN.md section 1: the objective `F = ACC + beta * |LAT/T - 1|` (or a hard latency
//! constraint), candidate evaluation with a cache, progressive space shrinking, the evolutionary search,
//! its random-search baseline, the Pareto front over (accuracy, latency) and the choice of the winner
//! once candidates were measured on the device.

pub mod driver;
mod error;
mod estimator;
pub mod evaluator;
pub mod evolution;
pub mod ground_truth;
pub mod objective;
pub mod pareto;
pub mod percentile;
pub mod predictor;
pub mod refine;
pub mod report;
pub mod shrink;
pub mod winner;

pub use driver::{CorrectionSettings, SearchDriver, SearchHost, SearchOutcome};
pub use error::{NasError, OracleError};
pub use estimator::Estimator;
pub use evaluator::{AccuracyOracle, Candidate, Evaluator};
pub use evolution::{random_search, Evolution, EvolutionSettings, GenerationStats};
pub use ground_truth::{
    ArchScore, EstimatorScores, GroundTruth, RankingScore, TrainedNetwork, TrainedRun,
};
pub use objective::{Objective, ObjectiveMode};
pub use pareto::{measured_front, objective_front, pareto_front};
pub use percentile::PercentileScale;
pub use refine::{RefineSettings, Refined, Refinement};
pub use report::{
    RandomBaseline, Remeasured, Reranked, SearchReport, SearchSettings, SearchState, WinnerSummary,
};
pub use shrink::{shrink_layer, LayerDecision, OpQuality};
pub use winner::{choose_winner, WinnerChoice, WinnerReason};

#[cfg(test)]
mod budget_tests;
#[cfg(test)]
mod precision_tests;
#[cfg(test)]
mod tests;
