//! The HSCoNAS on-device runtime: runs ONNX models and times them carefully. It knows nothing about
//! neural architecture search, depends on no `tch`, `models` or `search` code, and is what users build or
//! cross-compile for the target device (a Jetson, a GPU server, a CPU box).
//!
//! - [`backend`]: one small trait over ONNX Runtime (`ort`: CPU, CUDA, TensorRT execution providers, loaded
//!   dynamically) and `tract` (pure Rust). Prepare once, run many.
//! - The words it shares with the host (engine, execution provider, precision, statistic, protocol,
//!   fingerprint, power state) are `hsconas_vocabulary`'s; this crate reads and measures them.
//! - [`timing`]: the timing protocol of docs/DESIGN.md section 4 (warm-up, minimum runs and time, low-percentile
//!   statistics, optional CPU pinning, interleaved rounds over several models).
//! - [`fingerprint`]: what the device is (CPU, cores, memory, OS, GPU) and its [`power`] state (governor,
//!   turbo, Jetson power mode and clocks), stored with every measurement.
//! - [`measure_job`]: one measurement as a job, run in process or in a worker process with a time limit.
//! - [`agent`]: the HTTP agent (`hsconas-runtime serve`) and the client the host drives it with.

pub mod agent;
pub mod backend;
mod error;
pub mod fingerprint;
pub mod measure_job;
pub mod power;
pub mod timing;

pub use backend::{Backend, BackendConfig, LoadedModel, TensorSpec};
pub use error::RuntimeError;
