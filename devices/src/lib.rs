//! Device profiles and latency tables: the hardware performance model of HSCoNAS.
//!
//! This crate will hold (see the latency-model issue and DESIGN.md sections 4 to 6):
//! - device profiles (`devices/profiles/<name>.toml`: backend, execution provider, batch, threads, input
//!   size, layout, agent address, notes such as the power mode);
//! - latency tables (`devices/tables/*.json`): per-piece timing statistics keyed `stem`, `head`,
//!   `L<layer>:<op>:<scale>` (see `hsconas_models::hsconas::Piece::key`), with provenance that must match
//!   the device a table is used for;
//! - the latency model: table sum plus a bias calibrated from end-to-end measurements.
//!
//! It is empty until that issue lands; the workspace builds it so that the dependency direction
//! (models <- devices <- search) is fixed from the start.
