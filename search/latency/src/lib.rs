//! The hardware performance model, host side (paper section III-A): measure a latency table on the device
//! (in process or through its agent), calibrate the bias on sampled networks, and validate the model on
//! held-out networks against MACs and parameter counts.
//!
//! - [`profiling`]: every piece exported to ONNX and measured, resumable ([`profile_table`]).
//! - [`calibration`]: paper Eq. 3 plus a cross-validated linear correction ([`calibrate`]).
//! - [`validation`]: the report of RMSE, RMSPE, within ±5/±10%, Kendall and Spearman ([`validate`]).
//! - [`measurer`]: where models are measured (this process or a remote agent), always in interleaved groups.
//! - [`fleet`]: one table measured by several devices of a profile, after checking they agree.
//! - [`reference`]: the reference network timed in every group, and the drift trace it gives.
//! - [`transfer`]: a table for this device from another device's table and a few networks measured here
//!   ([`transfer_table`]); [`transfer_pieces`]: refined by profiling the pieces that matter most.

pub mod calibration;
mod clock;
mod error;
pub mod fleet;
pub mod measurer;
pub mod networks;
pub mod pieces;
pub mod profiling;
pub mod reference;
pub mod transfer;
pub mod transfer_pieces;
pub mod validation;

pub use calibration::{calibrate, CalibrateJob};
pub use error::LatencyError;
pub use fleet::{check_fleet, profile_table_on_fleet, FleetMember};
pub use measurer::Measurer;
pub use networks::{DriftPolicy, Measured, NetworkRun};
pub use profiling::{profile_table, ProfileJob};
pub use reference::{default_reference_arch, ReferenceModel};
pub use transfer::{transfer_table, TransferJob, Transferred};
pub use validation::{validate, ValidateJob, ValidationReport};
