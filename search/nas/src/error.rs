//! Why a search step failed.

use hsconas_models::SpaceError;

/// What an accuracy oracle's failure is: any error, kept whole for the caller's report.
pub type OracleError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the search algorithms.
#[derive(Debug, thiserror::Error)]
pub enum NasError {
    /// The accuracy oracle failed for an architecture.
    #[error("evaluating {arch}")]
    Oracle {
        /// The architecture string.
        arch: String,
        /// The oracle's error.
        #[source]
        source: OracleError,
    },
    /// The oracle gave something that is not a fraction.
    #[error("accuracy of {arch} is {accuracy}, not a fraction in 0..=1")]
    AccuracyOutOfRange {
        /// The architecture string.
        arch: String,
        /// What the oracle said.
        accuracy: f64,
    },
    /// Evolution settings the algorithm cannot run with.
    #[error("invalid evolution settings: {0}")]
    Settings(String),
    /// An estimator's scores that cannot be put on a scale.
    #[error("{0}")]
    Estimator(String),
    /// Shrinking was asked of a layer that does not exist or allows nothing.
    #[error("layer {layer} {problem}")]
    Layer {
        /// 1-based layer.
        layer: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A subspace quality was asked of zero samples.
    #[error("a subspace quality needs at least one sample")]
    NoSamples,
    /// A search state or report that cannot be used.
    #[error("{}: {message}", path.display())]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A step the search host does (fine-tuning, measuring on the device) failed.
    #[error("{step}")]
    Host {
        /// What the host was doing.
        step: &'static str,
        /// Its error.
        #[source]
        source: OracleError,
    },
    /// The latency table cannot make a model (incomplete, or a correction it refuses).
    #[error(transparent)]
    Table(#[from] hsconas_devices::TableError),
    /// Writing the state or the report failed.
    #[error(transparent)]
    Fs(#[from] hsconas_foundation::FsError),
    /// A shrunk space that the space itself refuses.
    #[error(transparent)]
    Space(#[from] SpaceError),
}

impl NasError {
    /// `accuracy` when it is a fraction in `0..=1`, else [`NasError::AccuracyOutOfRange`] for `arch`.
    pub(crate) fn check_accuracy(
        arch: &impl std::fmt::Display,
        accuracy: f64,
    ) -> Result<f64, NasError> {
        if (0.0..=1.0).contains(&accuracy) {
            Ok(accuracy)
        } else {
            Err(NasError::AccuracyOutOfRange {
                arch: arch.to_string(),
                accuracy,
            })
        }
    }
}
