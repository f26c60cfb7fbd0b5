//! Device profiles and latency tables: the hardware performance model of HSCoNAS.
//!
//! - [`DeviceProfile`]: what to measure on and how (`devices/profiles/<name>.toml`; the shipped ones,
//!   `local-cpu`, `xeon-gold-6136`, `gv100` and `jetson-xavier`, are embedded in the binaries).
//!
//! - [`LatencyTable`]: per-piece timing statistics keyed `stem`, `head`, `L<layer>:<op>:<scale>` and, in
//!   a mixed-precision table, `L<layer>:<op>:<scale>@int8` (as in `hsconas_models::build::Piece::key`), with the provenance that ties them to a device (a table is
//!   refused for a profile it was not measured with), the calibration bias and validation metrics; the
//!   prediction is table sum + bias.
//!
//! - [`LatencyModel`]: a table compiled into dense arrays with its correction, for the search's millions of
//!   predictions.
//!
//! - [`metrics`]: how well predictions match measurements (RMSE, RMSPE, within ±5/±10%, Kendall tau,
//!   Spearman rho) and the least-squares fits the corrections use.
//!
//! - [`drift`]: the reference network timed in every measured group, and measurements normalised to the
//!   device state the table was built in.
//!
//! - [`fleet_agreement`]: whether several devices of one profile agree enough to measure one table.
//!
//! - [`transfer`]: another device's table rescaled to this one from a few networks measured here (a
//!   global, per-operator, per-stage or per-entry correction, chosen by the one-standard-error rule);
//!   [`transfer_refine`]: which pieces to profile when that is not enough, and the source refined by them.
//!
//! The words these use (engine, execution provider, precision, statistic, timing protocol, fingerprint)
//! are defined once, in `hsconas_vocabulary`.
//!
//! Measuring tables needs the runtime and the exporter; that lives in the `hsconas` CLI (`hsconas profile`,
//! `calibrate`, `latency`).

mod correction;
pub mod drift;
pub mod fleet_agreement;
mod int8_gain;
mod latency_model;
pub mod metrics;
mod profile;
mod table;
pub mod transfer;
mod transfer_error;
pub mod transfer_refine;
pub mod transfer_terms;

pub use correction::{
    int8_layers_per_stage, Calibration, Correction, CorrectionKind, HeldOutRmse, NetworkSample,
    STAGES,
};
pub use drift::{
    DriftModel, DriftPoint, DriftSummary, DriftTrace, ReferenceNetwork, REFERENCE_BURST,
};
pub use fleet_agreement::{CalibrationTimings, FleetAgreement, FleetDevice, FleetRule};
pub use int8_gain::{int8_gains, BlockGain, GainGroup, Int8Gains};
pub use latency_model::{LatencyModel, LayerPart, Prediction};
pub use profile::{DeviceKind, DeviceProfile, ProfileError};
pub use table::{EntryStats, Int8Pieces, LatencyTable, Provenance, TableError, FORMAT_VERSION};
