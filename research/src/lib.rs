//! Experiment campaigns, apart from the product: the search-level proof (`research/scripts/search-proof.sh`),
//! the measurement of a list of networks on a drifting device, and the binaries that keep the campaigns'
//! books (`ground_truth`: the accuracy ground truth of `research/scripts/ground-truth.sh`; `reproduce_report`:
//! the results study of `research/scripts/reproduce.sh`; `transfer_curve`: the latency transfer's N-curve,
//! `research/scripts/transfer-curve.sh`).
//!
//! The boundary: what a user of hsconas runs on their own task (an estimator's scores, the ranking
//! statistics of one set of scores against trained networks, fitting and using the predictor, the search,
//! the latency model) lives in the product crates; what answers one of the project's research questions
//! with a campaign of trainings and measurements (the proof, the drift-normalised measurement, the report
//! that compares every estimator on the ground truth: [`scoring`]) lives here. Nothing in the product
//! depends on this crate.

pub mod measurement;
pub mod proof;
pub mod scoring;

/// Why a campaign step cannot be done as asked.
#[derive(Debug, thiserror::Error)]
pub enum ResearchError {
    /// A proof or a measured list that cannot be judged as asked.
    #[error("{0}")]
    Proof(String),
    /// An estimator's scores lack a network of the ground truth they are scored against.
    #[error("the {estimator} scores have none for {id} ({arch}): estimate that network first")]
    MissingEstimate {
        /// The estimator's name.
        estimator: String,
        /// The ground-truth id of the network.
        id: String,
        /// Its architecture string.
        arch: String,
    },
    /// A combination of estimators was asked of none.
    #[error("a combination of estimators needs at least one estimator")]
    EmptyCombination,
}
