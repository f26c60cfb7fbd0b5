//! The search of DESIGN.md section 4: the objective `F = ACC + beta * |LAT/T - 1|` (or a hard latency
//! constraint), candidate evaluation with a cache, progressive space shrinking, the evolutionary search,
//! its random-search baseline and the Pareto front over (accuracy, latency).

pub mod evaluator;
pub mod evolution;
pub mod objective;
pub mod pareto;
pub mod shrink;

pub use evaluator::{AccuracyOracle, Candidate, Evaluator};
pub use evolution::{random_search, Evolution, EvolutionSettings, GenerationStats};
pub use objective::{Objective, ObjectiveMode};
pub use pareto::pareto_front;
pub use shrink::{shrink_layer, LayerDecision, OpQuality};

#[cfg(test)]
mod tests;
