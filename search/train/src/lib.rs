//! Training and evaluation with libtorch, the only crate of the workspace that links it: networks built
//! from the layer-graph IR and the weight-sharing supernet ([`nn`]), SGD with momentum and clipping ([`sgd`]), atomic checkpoints
//! ([`checkpoint`]), the epoch loop with resume ([`trainer`]), accuracy with batch-norm recalibration
//! ([`eval`]), the supernet's path sampling and per-epoch probes ([`supernet_run`]) and stand-alone networks
//! trained from scratch ([`standalone_run`]), the ranks of a data-parallel job ([`collective`]), zero-cost accuracy proxies ([`proxies`]) and the short-training estimator ([`short_training`]).

pub mod checkpoint;
pub mod collective;
mod error;
pub mod eval;
pub mod libtorch;
pub mod nn;
pub mod proxies;
pub mod sgd;
pub mod short_training;
pub mod standalone_run;
pub mod supernet_run;
pub mod trainer;

pub use collective::{Collective, LrScaling, SingleProcess};
pub use error::TrainError;
pub use eval::Accuracy;
pub use sgd::SgdSettings;
pub use trainer::{train, EpochRecord, TrainSettings, TrainState};
