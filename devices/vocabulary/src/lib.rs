//! The words every HSCoNAS crate uses for devices and measurements, each defined once.
//!
//! Both sides of a measurement use them: the on-device runtime (`hsconas-runtime`, which must build for an
//! aarch64 board without libtorch) and the latency model on the host (`hsconas-devices`). This crate holds
//! only the definitions, their names on the command line and in files, and the arithmetic that compares
//! them; reading the machine (sysinfo, sysfs) and timing models are the runtime's.
//!
//! | concept | type | spelled in files and flags |
//! |---|---|---|
//! | inference engine | [`Engine`] | `ort`, `tract` |
//! | ONNX Runtime execution provider | [`ExecutionProvider`] | `cpu`, `cuda`, `tensorrt` |
//! | numeric precision | [`Precision`] | `fp32`, `fp16`, `int8` |
//! | what an INT8 model is exported for | [`Int8Flavour`] | `cpu`, `tensorrt` |
//! | how many levels INT8 weights use | [`WeightRange`] | `full`, `reduced` |
//! | the statistic that stands for "the latency" | [`Statistic`] | `min`, `p10`, `median`, `mean` |
//! | a model's timing summary | [`Stats`] | `min_ms`, `p10_ms`, ... |
//! | how long and how often to time | [`Protocol`] (defaults: [`Protocol::default`], [`Protocol::for_profiling`]) | `warmup`, `min_runs`, ... |
//! | what the device is | [`Fingerprint`] | `cpu_model`, `logical_cpus`, ... |
//! | its power and clock state | [`PowerState`] | `power_mode`, `cpu_governor`, ... |
//!
//! Two more words the project keeps apart: a *device profile* is the TOML file that says what to measure
//! on and how (`hsconas_devices::DeviceProfile`); *profiling* is measuring a latency table with it
//! (`hsconas profile`). The runtime's `measure` command and the agent's `/v1/profile` endpoints time
//! groups of models for it.

mod engine;
mod machine;
mod quantization;
mod timing;

pub use engine::{Engine, ExecutionProvider, Precision};
pub use machine::{Clock, Fingerprint, PowerState};
pub use quantization::{Int8Flavour, WeightRange};
pub use timing::{Protocol, ReferenceTiming, Statistic, Stats};

/// A name or a setting that is not one of the vocabulary's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VocabularyError {
    /// A word that names none of the values (e.g. `--provider rocm`).
    #[error("unknown {what} '{given}' (expected {expected})")]
    Unknown {
        /// What was being named (`engine`, `execution provider`, ...).
        what: &'static str,
        /// The word given.
        given: String,
        /// The accepted words.
        expected: &'static str,
    },
    /// A timing protocol whose values do not make sense together.
    #[error("timing protocol: {0}")]
    Protocol(String),
}
