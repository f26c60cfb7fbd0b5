//! Device profiles and latency tables: the hardware performance model of HSCoNAS.
//!
//! - [`DeviceProfile`]: what to measure on and how (`devices/profiles/<name>.toml`; the shipped ones,
//!   `local-cpu`, `xeon-gold-6136`, `gv100` and `jetson-xavier`, are embedded in the binaries).
//!
//! Still to come (the latency-model issue, DESIGN.md sections 4 to 6): latency tables
//! (`devices/tables/*.json`, per-piece timing statistics keyed `stem`, `head`, `L<layer>:<op>:<scale>` as in
//! `hsconas_models::hsconas::Piece::key`, with provenance that must match the device a table is used for)
//! and the latency model (table sum plus a bias calibrated from end-to-end measurements).

mod profile;

pub use profile::{
    DeviceKind, DeviceProfile, Engine, ExecutionProvider, Precision, ProfileError, TableStatistic,
};
