//! Device profiles and latency tables: the hardware performance model of HSCoNAS.
//!
//! - [`DeviceProfile`]: what to measure on and how (`devices/profiles/<name>.toml`; the shipped ones,
//!   `local-cpu`, `xeon-gold-6136`, `gv100` and `jetson-xavier`, are embedded in the binaries).
//!
//! - [`LatencyTable`]: per-piece timing statistics keyed `stem`, `head`, `L<layer>:<op>:<scale>` (as in
//!   `hsconas_models::hsconas::Piece::key`), with the provenance that ties them to a device (a table is
//!   refused for a profile it was not measured with), the calibration bias and validation metrics; the
//!   prediction is table sum + bias.
//!
//! Still to come (the latency-model issue): measuring tables (`hsconas profile`), calibration, validation
//! reports and a prediction path fast enough for the search.

mod profile;
mod table;

pub use profile::{
    DeviceKind, DeviceProfile, Engine, ExecutionProvider, Precision, ProfileError, TableStatistic,
};
pub use table::{
    Calibration, EntryStats, LatencyTable, NetworkSample, Provenance, TableError, FORMAT_VERSION,
};
