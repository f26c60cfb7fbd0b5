//! Why a latency job failed.

use std::path::PathBuf;

use hsconas_devices::TableError;
use hsconas_export::ExportError;
use hsconas_foundation::FsError;
use hsconas_models::ModelError;
use hsconas_runtime::agent::ClientError;
use hsconas_runtime::RuntimeError;

/// Errors of profiling, calibration and validation.
#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    /// Settings a job cannot run with (a group of 0, too few networks, an uncalibrated table).
    #[error("{0}")]
    Invalid(String),
    /// The device's agent did not answer its health check.
    #[error("the agent at {url} does not answer")]
    AgentUnreachable {
        /// The agent's address.
        url: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// A group of models could not be measured; `what` names the models and the place.
    #[error("measuring {what}")]
    Measuring {
        /// Which models, where.
        what: String,
        /// The cause.
        #[source]
        source: Box<LatencyError>,
    },
    /// The measurement ran on another execution provider than the table's (a fallback, e.g. CPU timings
    /// for a TensorRT table): mixing them would make the latency model wrong.
    #[error(
        "{what} ran on the {ran} provider but the table was measured on {table}: timings of different \
         providers must not be mixed (check the device's GPU, drivers and ONNX Runtime build with \
         `hsconas-runtime info`)"
    )]
    ProviderMismatch {
        /// What was measured.
        what: String,
        /// The table's provider.
        table: String,
        /// The provider that ran.
        ran: String,
    },
    /// The device drifted beyond the threshold during a measurement and the job was asked to refuse.
    #[error(
        "{what} was refused: {why} (threshold {:.1}%); rerun on a steadier device, or without \
         --refuse-drift to keep normalised measurements",
        100.0 * threshold
    )]
    Drift {
        /// What was measured.
        what: String,
        /// How far it drifted, in words.
        why: String,
        /// The threshold, a fraction.
        threshold: f64,
    },
    /// The devices of a fleet measured the common calibration networks at speeds further apart than their
    /// noise explains: merging their timings would make one table of two devices.
    #[error(
        "the fleet's devices disagree: their speeds spread {:.1}% on the calibration networks, more than \
         the {:.1}% their measurement noise allows ({devices}); profile them separately, or leave out the \
         device that differs",
        100.0 * spread,
        100.0 * tolerance
    )]
    FleetDisagrees {
        /// `max ratio / min ratio - 1` over the devices.
        spread: f64,
        /// The largest spread accepted.
        tolerance: f64,
        /// Each device's ratio and noise, in words.
        devices: String,
    },
    /// A file an earlier run left that this run cannot continue from.
    #[error("{}: {message}", path.display())]
    Resume {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A call to the device's agent failed.
    #[error(transparent)]
    Agent(#[from] ClientError),
    /// The local engine failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A latency table could not be read, written or used.
    #[error(transparent)]
    Table(#[from] TableError),
    /// A table could not be transferred from another device's.
    #[error(transparent)]
    Transfer(#[from] hsconas_devices::transfer::TransferError),
    /// A model could not be exported.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A network could not be built.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A file-system step failed (with the path and what was being done).
    #[error(transparent)]
    Fs(#[from] FsError),
    /// JSON that could not be written.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}
