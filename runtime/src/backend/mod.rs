//! ONNX backends behind one small trait: load (once), describe inputs and outputs, run (many times).

mod ort_backend;
mod placement;
mod tract_backend;

use hsconas_vocabulary::{Engine, ExecutionProvider};
use serde::{Deserialize, Serialize};

use crate::RuntimeError;

pub use ort_backend::{minimum_ort_version, ort_library_path, OrtBackend};
pub use tract_backend::TractBackend;

/// How to build a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendConfig {
    /// Engine.
    pub kind: Engine,
    /// Execution providers in order of preference (ort only); CPU is always the last fallback, and a
    /// fallback is reported in [`LoadedModel::provider`], never silent.
    pub providers: Vec<ExecutionProvider>,
    /// Intra-op threads (ort; tract runs single-threaded).
    pub threads: usize,
    /// Apply all graph optimisations (ort level 3, tract's optimised plan). Off: basic only.
    pub optimize: bool,
    /// TensorRT settings, used when `tensorrt` is among the providers.
    #[serde(default)]
    pub tensorrt: TensorrtOptions,
    /// Fail instead of falling back when the first provider of `providers` cannot be registered.
    pub require_provider: bool,
    /// Find out which provider runs each node (one profiled run when the inputs are prepared, see
    /// [`LoadedModel::placement`]). Always done when a provider other than CPU is registered.
    #[serde(default)]
    pub placement: bool,
    /// Run through ONNX Runtime's I/O binding (inputs copied once to the provider's memory, outputs left
    /// there) even on the CPU. Always done on a GPU provider; on the CPU it only checks that path.
    #[serde(default)]
    pub io_binding: bool,
    /// ONNX Runtime's `session.x64quantprecision`: on x86 CPUs without VNNI, run integer convolutions
    /// and matrix products with its U8U8 kernels (int8 weights converted to uint8), which cannot
    /// saturate, instead of the faster U8S8 ones, which can (see
    /// [`crate::fingerprint::x86_without_vnni`]). No effect on FP32 models nor on other CPUs.
    #[serde(default)]
    pub x64_quant_precision: bool,
}

/// TensorRT engine settings. They change the engines TensorRT builds, hence the timings: a latency table
/// records them and refuses to be used with others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorrtOptions {
    /// Let TensorRT choose FP16 kernels where it finds them faster (off: FP32 only).
    #[serde(default)]
    pub fp16: bool,
    /// Let TensorRT run a QDQ model's quantised nodes in INT8 (explicit quantisation: the scales come from
    /// the model, `hsconas export onnx --precision int8 --int8-flavour tensorrt`; no calibration table).
    /// Off: TensorRT runs a QDQ model's nodes in FP32 or FP16.
    #[serde(default)]
    pub int8: bool,
    /// The most GPU memory, in MiB, TensorRT may use as scratch space while it builds an engine (`None`:
    /// ONNX Runtime's default).
    #[serde(default)]
    pub workspace_mib: Option<usize>,
    /// Folder for the engine and timing caches, so that a model TensorRT has built once (minutes on a
    /// Jetson) is not built again. Not part of what a table records: it changes the build time only.
    #[serde(default)]
    pub cache: Option<std::path::PathBuf>,
}

/// Where TensorRT engines are cached unless told otherwise: `$HSCONAS_CACHE/tensorrt`, else
/// `$XDG_CACHE_HOME/hsconas/tensorrt`, else `~/.cache/hsconas/tensorrt`, else the temporary folder. One
/// folder for every command and the agent, so that an engine built once is reused by all of them.
pub fn default_tensorrt_cache() -> std::path::PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HSCONAS_CACHE") {
        return std::path::PathBuf::from(dir).join("tensorrt");
    }
    let base = var("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| var("HOME").map(|home| std::path::PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("hsconas").join("tensorrt")
}

/// Which execution provider ran how many kernels of a model, as ONNX Runtime's profiler saw them in one
/// run (`cpu`, `cuda`, `tensorrt`, or ONNX Runtime's own name for any other). A TensorRT engine is one
/// kernel however many nodes it fuses.
pub type Placement = std::collections::BTreeMap<String, usize>;

impl Default for BackendConfig {
    /// ort on CPU, 1 thread, fully optimised.
    fn default() -> Self {
        BackendConfig {
            kind: Engine::Ort,
            providers: vec![ExecutionProvider::Cpu],
            threads: 1,
            optimize: true,
            tensorrt: TensorrtOptions::default(),
            require_provider: false,
            placement: false,
            io_binding: false,
            x64_quant_precision: false,
        }
    }
}

/// Name, element type and shape of a model input or output. Symbolic dimensions are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Tensor name in the graph.
    pub name: String,
    /// Dimensions; `None` where the model leaves it symbolic.
    pub shape: Vec<Option<usize>>,
}

impl TensorSpec {
    /// The concrete shape, with symbolic dimensions set to `fill`.
    pub fn concrete_shape(&self, fill: usize) -> Vec<usize> {
        self.shape.iter().map(|d| d.unwrap_or(fill)).collect()
    }
}

/// A dense f32 tensor passed in and out of models (defined in `hsconas-foundation`).
pub use hsconas_foundation::HostTensor;

/// An engine that loads ONNX models; shareable between threads (a fleet measures from one thread per
/// device).
pub trait Backend: Send + Sync {
    /// Engine name and version, e.g. `onnxruntime 1.31.1` or `tract 0.23.9`.
    fn version(&self) -> String;
    /// Parses and prepares a model (session creation, optimisation). Never timed.
    fn load(&self, onnx: &[u8]) -> Result<Box<dyn LoadedModel>, RuntimeError>;
}

/// A prepared model.
pub trait LoadedModel: Send {
    /// Graph inputs.
    fn inputs(&self) -> &[TensorSpec];
    /// Graph outputs.
    fn outputs(&self) -> &[TensorSpec];
    /// The execution provider actually used (`cpu` for tract), after any fallback.
    fn provider(&self) -> ExecutionProvider;
    /// Kernels per provider, once [`LoadedModel::prepare`] has run, when the backend was asked to find out
    /// ([`BackendConfig::placement`]) or registered a provider other than CPU; `None` otherwise (and for
    /// tract, which runs everything on the CPU).
    fn placement(&self) -> Option<&Placement> {
        None
    }
    /// Milliseconds it took to copy the prepared inputs to the device the model runs on (GPU providers,
    /// which keep inputs and outputs bound on the device so that the timed runs exclude the copies);
    /// `None` when the model runs on the CPU.
    fn input_copy_ms(&self) -> Option<f64> {
        None
    }
    /// Milliseconds it takes to copy one run's outputs back to the host, on the same providers (the timed
    /// runs leave them on the device); `None` when the model runs on the CPU.
    fn output_copy_ms(&self) -> Option<f64> {
        None
    }
    /// Runs once on the given inputs (one per graph input, in order).
    fn run(&mut self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, RuntimeError>;
    /// Stores inputs in the backend's own form so that [`LoadedModel::run_prepared`] allocates nothing
    /// it can reuse. Never timed.
    fn prepare(&mut self, inputs: &[HostTensor]) -> Result<(), RuntimeError>;
    /// Runs once on the prepared inputs, discarding the outputs: the timed call.
    fn run_prepared(&mut self) -> Result<(), RuntimeError>;
}

/// Which engines this process can use, as `info`, the agent and `hsconas doctor` report it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Availability {
    /// The ONNX Runtime library this process loads (see [`ort_library_path`]).
    pub ort_library: std::path::PathBuf,
    /// `onnxruntime <version>` if it loaded.
    pub ort_version: Option<String>,
    /// The oldest ONNX Runtime release this build loads (`1.17`).
    #[serde(default)]
    pub ort_minimum: String,
    /// Why it did not load.
    pub ort_error: Option<String>,
    /// The execution providers the loaded ONNX Runtime offers (`cpu`, and `cuda`/`tensorrt` in GPU
    /// builds with their libraries present); empty when it did not load.
    #[serde(default)]
    pub ort_providers: Vec<ExecutionProvider>,
    /// `tract <version>` (always available).
    pub tract_version: String,
}

/// Tries to load each engine (ONNX Runtime is loaded once per process).
pub fn availability() -> Availability {
    let ort = build(&BackendConfig::default()).map(|b| b.version());
    Availability {
        ort_library: ort_library_path(),
        ort_version: ort.as_ref().ok().cloned(),
        ort_minimum: ort_backend::minimum_ort_version(),
        ort_providers: if ort.is_ok() {
            ort_backend::offered_providers()
        } else {
            Vec::new()
        },
        ort_error: ort.err().map(|e| e.to_string()),
        tract_version: TractBackend::new(true).version(),
    }
}

/// Builds the backend a config asks for.
pub fn build(config: &BackendConfig) -> Result<Box<dyn Backend>, RuntimeError> {
    if config.threads == 0 {
        return Err(RuntimeError::BadSetting(
            "the thread count must be at least 1".into(),
        ));
    }
    Ok(match config.kind {
        Engine::Ort => Box::new(OrtBackend::new(config.clone())?),
        Engine::Tract => Box::new(TractBackend::new(config.optimize)),
    })
}

/// Checks inputs against the model's specs (count and every fixed dimension).
pub(crate) fn check_inputs(
    specs: &[TensorSpec],
    inputs: &[HostTensor],
) -> Result<(), RuntimeError> {
    if specs.len() != inputs.len() {
        return Err(RuntimeError::BadInput(format!(
            "the model has {} inputs, {} were given",
            specs.len(),
            inputs.len()
        )));
    }
    for (spec, input) in specs.iter().zip(inputs) {
        let fits = spec.shape.len() == input.shape.len()
            && spec
                .shape
                .iter()
                .zip(&input.shape)
                .all(|(want, got)| want.is_none_or(|w| w == *got));
        if !fits {
            return Err(RuntimeError::BadInput(format!(
                "input '{}' has shape {:?}, the model expects {}",
                spec.name,
                input.shape,
                describe_shape(&spec.shape)
            )));
        }
        let n: usize = input.shape.iter().product();
        if n != input.data.len() {
            return Err(RuntimeError::BadInput(format!(
                "input '{}' has shape {:?} ({n} values) but {} values",
                spec.name,
                input.shape,
                input.data.len()
            )));
        }
    }
    Ok(())
}

/// `[batch, 3, 224, 224]` with `?` for symbolic dimensions.
pub fn describe_shape(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("?".to_string(), |n| n.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}
