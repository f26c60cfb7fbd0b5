//! ONNX Runtime through `ort` 2.0 with `load-dynamic`: the shared library is found at run time
//! (`ORT_DYLIB_PATH`, else the location `scripts/setup.sh` linked at build time, else next to the binary).

use std::path::PathBuf;
use std::sync::OnceLock;

use std::time::Instant;

use hsconas_vocabulary::ExecutionProvider;
use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider as OrtExecutionProvider};
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{IoBinding, Session};
use ort::value::{DynTensorValueType, DynValue, Tensor, ValueType};

use super::placement;
use super::{check_inputs, Backend, BackendConfig, HostTensor, LoadedModel, Placement, TensorSpec};
use crate::RuntimeError;

/// The `libonnxruntime.so` this process uses: `ORT_DYLIB_PATH` if set, else the one `scripts/setup.sh`
/// installed (recorded at build time), else `libonnxruntime.so` next to the executable.
pub fn ort_library_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(p);
    }
    if let Some(p) = option_env!("HSCONAS_DEFAULT_ORT_DYLIB")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        return p;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("libonnxruntime.so")))
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"))
}

/// The oldest ONNX Runtime release this build loads, `1.<api level>` (`ort`'s `api-17` feature: 1.17,
/// which covers the JetPack 6 builds; 1.31.1 is the release the project is tested with).
pub fn minimum_ort_version() -> String {
    format!("1.{}", ort::MINOR_VERSION)
}

/// The version in a library file name such as `libonnxruntime.so.1.17.3` (after following links).
fn version_from_file_name(path: &std::path::Path) -> Option<String> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name = path.file_name()?.to_string_lossy().into_owned();
    let (_, version) = name.split_once(".so.")?;
    (!version.is_empty()).then(|| version.to_string())
}

/// Whether `version` (`1.16.3`) is older than the minimum this build loads.
fn below_minimum(version: &str) -> bool {
    let minor = |v: &str| -> Option<(u32, u32)> {
        let mut parts = v.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (minor(version), minor(&minimum_ort_version())) {
        (Some(have), Some(floor)) => have < floor,
        _ => false,
    }
}

/// One ONNX Runtime environment per process (ONNX Runtime allows no more).
fn environment() -> Result<&'static Environment, RuntimeError> {
    static ENV: OnceLock<Result<Environment, (PathBuf, String)>> = OnceLock::new();
    let result = ENV.get_or_init(|| {
        let path = ort_library_path();
        if !path.exists() {
            return Err((path, "no such file".into()));
        }
        let builder = ort::init_from(&path).map_err(|e| {
            let reason = match version_from_file_name(&path) {
                Some(v) if below_minimum(&v) => format!(
                    "ONNX Runtime {v} is older than {}, the oldest release this build loads ({e})",
                    minimum_ort_version()
                ),
                _ => e.to_string(),
            };
            (path.clone(), reason)
        })?;
        builder
            .with_name("hsconas")
            .build()
            .map_err(|e| (path, e.to_string()))
    });
    result
        .as_ref()
        .map_err(|(path, reason)| RuntimeError::OrtLibrary {
            path: path.clone(),
            reason: reason.clone(),
        })
}

/// The ONNX Runtime backend.
pub struct OrtBackend {
    config: BackendConfig,
    env: &'static Environment,
}

impl std::fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OrtBackend {
    /// Loads ONNX Runtime (once per process). Providers are registered per session, at load time.
    pub fn new(config: BackendConfig) -> Result<OrtBackend, RuntimeError> {
        let env = environment()?;
        Ok(OrtBackend { config, env })
    }

    /// ONNX Runtime's version: from the library's file name (`libonnxruntime.so.1.31.1`, following links),
    /// else its build information string.
    pub fn runtime_version() -> String {
        version_from_file_name(&ort_library_path()).unwrap_or_else(|| ort::info().to_string())
    }

    fn session_builder(&self) -> Result<(SessionBuilder, ExecutionProvider), RuntimeError> {
        let err = |e: ort::Error| RuntimeError::BadSetting(e.to_string());
        let mut builder = Session::builder(self.env).map_err(err)?;
        let level = if self.config.optimize {
            GraphOptimizationLevel::All
        } else {
            GraphOptimizationLevel::Level1
        };
        let setting = |e: ort::Error<SessionBuilder>| RuntimeError::BadSetting(e.to_string());
        builder = builder.with_optimization_level(level).map_err(setting)?;
        builder = builder
            .with_intra_threads(self.config.threads)
            .map_err(setting)?;
        builder = builder.with_inter_threads(1).map_err(setting)?;
        if self.config.x64_quant_precision {
            builder = builder
                .with_config_entry("session.x64quantprecision", "1")
                .map_err(setting)?;
        }
        let used = self.register_providers(&mut builder)?;
        Ok((builder, used))
    }

    /// The model as ONNX Runtime rewrites it for this configuration (its graph optimisations, e.g. the
    /// fusion of QuantizeLinear / DequantizeLinear pairs into integer kernels), serialised as ONNX: what
    /// shows which kernels a session runs. The session is built and dropped; nothing runs.
    pub fn optimised_model(&self, onnx: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let dir = tempfile::tempdir().map_err(|e| RuntimeError::BadSetting(e.to_string()))?;
        let path = dir.path().join("optimised.onnx");
        let (builder, _) = self.session_builder()?;
        // ONNX Runtime warns that a layout-optimised model is specific to this machine: it is, and it is
        // only read back to list its operators.
        let setting = |e: ort::Error<SessionBuilder>| RuntimeError::BadSetting(e.to_string());
        let builder = builder.with_optimized_model_path(&path).map_err(setting)?;
        let mut builder = builder
            .with_log_level(ort::logging::LogLevel::Error)
            .map_err(setting)?;
        drop(
            builder
                .commit_from_memory(onnx)
                .map_err(|e| RuntimeError::BadModel(e.to_string()))?,
        );
        std::fs::read(&path).map_err(|e| {
            RuntimeError::BadModel(format!(
                "ONNX Runtime wrote no optimised model to {}: {e}",
                path.display()
            ))
        })
    }

    /// The TensorRT provider with the configured precision, workspace and caches.
    fn tensorrt(&self) -> ep::TensorRT {
        let options = &self.config.tensorrt;
        let mut trt = ep::TensorRT::default()
            .with_fp16(options.fp16)
            .with_int8(options.int8);
        if let Some(mib) = options.workspace_mib {
            trt = trt.with_max_workspace_size(mib.saturating_mul(1 << 20));
        }
        if let Some(dir) = &options.cache {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::warn!("TensorRT cache folder {}: {e}", dir.display());
            }
            trt = trt
                .with_engine_cache(true)
                .with_engine_cache_path(dir.display())
                .with_timing_cache(true)
                .with_timing_cache_path(dir.display());
        }
        trt
    }

    /// Registers every usable provider of the ordered list, in order, so that each node runs on the first
    /// one that supports it (CPU, always available, ends the list). Returns the first registered one,
    /// which [`LoadedModel::provider`] reports. A provider that cannot be registered is a warning, or an
    /// error when it comes first and [`BackendConfig::require_provider`] is set.
    fn register_providers(
        &self,
        builder: &mut SessionBuilder,
    ) -> Result<ExecutionProvider, RuntimeError> {
        let mut primary = None;
        let mut failures = Vec::new();
        for (i, provider) in self.config.providers.iter().enumerate() {
            let outcome = match provider {
                ExecutionProvider::Cpu => break,
                ExecutionProvider::Cuda => register(ep::CUDA::default(), builder),
                ExecutionProvider::Tensorrt => register(self.tensorrt(), builder),
            };
            match outcome {
                Ok(()) => {
                    primary.get_or_insert(*provider);
                }
                Err(reason) if i == 0 && self.config.require_provider => {
                    return Err(RuntimeError::ProviderUnavailable {
                        provider: provider.to_string(),
                        reason,
                    });
                }
                Err(reason) => {
                    tracing::warn!("execution provider {provider} is not available ({reason})");
                    failures.push(format!("{provider}: {reason}"));
                }
            }
        }
        let primary = primary.unwrap_or(ExecutionProvider::Cpu);
        if !failures.is_empty() {
            tracing::warn!(
                "running on {primary}{} instead of the first provider asked for ({})",
                if primary == ExecutionProvider::Cpu {
                    ""
                } else {
                    " (CPU for the nodes it lacks)"
                },
                failures.join("; ")
            );
        }
        Ok(primary)
    }
}

/// The providers the loaded ONNX Runtime can register: CPU always, CUDA and TensorRT when its build and
/// libraries have them.
pub fn offered_providers() -> Vec<ExecutionProvider> {
    let mut offered = vec![ExecutionProvider::Cpu];
    if ep::CUDA::is_available().unwrap_or(false) {
        offered.push(ExecutionProvider::Cuda);
    }
    if ep::TensorRT::is_available().unwrap_or(false) {
        offered.push(ExecutionProvider::Tensorrt);
    }
    offered
}

fn register<E: OrtExecutionProvider>(ep: E, builder: &mut SessionBuilder) -> Result<(), String> {
    match E::is_available() {
        Ok(true) => ep.register(builder).map_err(|e| e.to_string()),
        Ok(false) => Err(format!(
            "this ONNX Runtime build has no {} (install onnxruntime-gpu and the matching CUDA/TensorRT libraries)",
            E::NAME
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn spec_of(name: &str, dtype: &ValueType) -> TensorSpec {
    let shape = dtype
        .tensor_shape()
        .map(|s| s.iter().map(|&d| (d > 0).then_some(d as usize)).collect())
        .unwrap_or_default();
    TensorSpec {
        name: name.to_string(),
        shape,
    }
}

struct OrtModel {
    session: Session,
    provider: ExecutionProvider,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    prepared: Vec<DynValue>,
    /// The provider whose memory inputs and outputs stay bound in: the GPU provider the model runs on,
    /// or the CPU when [`BackendConfig::io_binding`] asks for the binding path there.
    device: Option<ExecutionProvider>,
    /// Inputs copied to the device and outputs bound there (GPU providers only).
    binding: Option<IoBinding>,
    input_copy_ms: Option<f64>,
    output_copy_ms: Option<f64>,
    /// Whether the session profiles until the first prepared run has been seen.
    profiling: bool,
    placement: Option<Placement>,
}

impl Backend for OrtBackend {
    fn version(&self) -> String {
        format!("onnxruntime {}", Self::runtime_version())
    }

    fn load(&self, onnx: &[u8]) -> Result<Box<dyn LoadedModel>, RuntimeError> {
        let (mut builder, provider) = self.session_builder()?;
        // On a GPU provider inputs and outputs are bound on the device and the placement is always read.
        let gpu = provider != ExecutionProvider::Cpu;
        let profiled = self.config.placement || gpu;
        if profiled {
            builder = builder
                .with_profiling(placement::profile_prefix())
                .map_err(|e| RuntimeError::BadSetting(e.to_string()))?;
        }
        let session = builder
            .commit_from_memory(onnx)
            .map_err(|e| RuntimeError::BadModel(e.to_string()))?;
        let inputs = session
            .inputs()
            .iter()
            .map(|o| spec_of(o.name(), o.dtype()))
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| spec_of(o.name(), o.dtype()))
            .collect();
        Ok(Box::new(OrtModel {
            session,
            provider,
            inputs,
            outputs,
            prepared: Vec::new(),
            device: (gpu || self.config.io_binding).then_some(provider),
            binding: None,
            input_copy_ms: None,
            output_copy_ms: None,
            profiling: profiled,
            placement: None,
        }))
    }
}

fn to_values(inputs: &[HostTensor]) -> Result<Vec<DynValue>, RuntimeError> {
    inputs
        .iter()
        .map(|t| {
            Tensor::from_array((t.shape.clone(), t.data.clone()))
                .map(|v| v.into_dyn())
                .map_err(|e| RuntimeError::BadInput(e.to_string()))
        })
        .collect()
}

impl LoadedModel for OrtModel {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    fn run(&mut self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, RuntimeError> {
        check_inputs(&self.inputs, inputs)?;
        let values = to_values(inputs)?;
        let refs: Vec<ort::session::SessionInputValue<'_>> =
            values.iter().map(Into::into).collect();
        let outputs = self
            .session
            .run(refs.as_slice())
            .map_err(|e| RuntimeError::Inference(e.to_string()))?;
        let mut result = Vec::with_capacity(outputs.len());
        for (_, value) in outputs.iter() {
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| RuntimeError::Inference(e.to_string()))?;
            result.push(HostTensor {
                shape: shape.iter().map(|&d| d as usize).collect(),
                data: data.to_vec(),
            });
        }
        Ok(result)
    }

    fn placement(&self) -> Option<&Placement> {
        self.placement.as_ref()
    }

    fn input_copy_ms(&self) -> Option<f64> {
        self.input_copy_ms
    }

    fn output_copy_ms(&self) -> Option<f64> {
        self.output_copy_ms
    }

    /// Keeps the inputs as ONNX Runtime values; on a GPU provider also binds them on the device (the one
    /// host-to-device copy, timed) and the outputs to device memory. With profiling on, runs once and
    /// reads the placement from the profile, which ends profiling before any timed run.
    fn prepare(&mut self, inputs: &[HostTensor]) -> Result<(), RuntimeError> {
        check_inputs(&self.inputs, inputs)?;
        self.prepared = to_values(inputs)?;
        if let Some(device) = self.device {
            let inference = |e: ort::Error| RuntimeError::Inference(e.to_string());
            let mut binding = self.session.create_binding().map_err(inference)?;
            let started = Instant::now();
            for (spec, value) in self.inputs.iter().zip(&self.prepared) {
                binding.bind_input(&spec.name, value).map_err(inference)?;
            }
            binding.synchronize_inputs().map_err(inference)?;
            self.input_copy_ms = Some(started.elapsed().as_secs_f64() * 1e3);
            let memory = device_memory(device).map_err(inference)?;
            for spec in &self.outputs {
                binding
                    .bind_output_to_device(&spec.name, &memory)
                    .map_err(inference)?;
            }
            self.binding = Some(binding);
        }
        if std::mem::take(&mut self.profiling) {
            self.run_prepared()?;
            let file = self
                .session
                .end_profiling()
                .map_err(|e| RuntimeError::Inference(e.to_string()))?;
            self.placement = Some(placement::read_and_remove(std::path::Path::new(&file))?);
        }
        if self.binding.is_some() {
            self.output_copy_ms = Some(self.time_output_copy()?);
        }
        Ok(())
    }

    fn run_prepared(&mut self) -> Result<(), RuntimeError> {
        if self.prepared.is_empty() && !self.inputs.is_empty() {
            return Err(RuntimeError::BadInput("run_prepared before prepare".into()));
        }
        let inference = |e: ort::Error| RuntimeError::Inference(e.to_string());
        if let Some(binding) = &self.binding {
            self.session.run_binding(binding).map_err(inference)?;
            binding.synchronize_outputs().map_err(inference)?;
            return Ok(());
        }
        let refs: Vec<ort::session::SessionInputValue<'_>> =
            self.prepared.iter().map(Into::into).collect();
        self.session.run(refs.as_slice()).map_err(inference)?;
        Ok(())
    }
}

impl Drop for OrtModel {
    /// A session still profiling (never prepared) would leave its profile file behind: end it and remove
    /// the file.
    fn drop(&mut self) {
        if self.profiling {
            if let Ok(file) = self.session.end_profiling() {
                let _ = std::fs::remove_file(file);
            }
        }
    }
}

impl OrtModel {
    /// Milliseconds to copy one run's bound outputs back to the host: one bound run, then every output
    /// copied twice, the second time timed (the first builds ONNX Runtime's copying session).
    fn time_output_copy(&mut self) -> Result<f64, RuntimeError> {
        let inference = |e: ort::Error| RuntimeError::Inference(e.to_string());
        let Some(binding) = &self.binding else {
            return Ok(0.0);
        };
        let mut outputs = self.session.run_binding(binding).map_err(inference)?;
        let mut tensors = Vec::with_capacity(self.outputs.len());
        for spec in &self.outputs {
            let value = outputs.remove(spec.name.as_str()).ok_or_else(|| {
                RuntimeError::Inference(format!("no bound output '{}'", spec.name))
            })?;
            tensors.push(value.downcast::<DynTensorValueType>().map_err(inference)?);
        }
        let copy_all = || -> Result<(), RuntimeError> {
            for t in &tensors {
                t.to(AllocationDevice::CPU, 0).map_err(inference)?;
            }
            Ok(())
        };
        copy_all()?;
        let started = Instant::now();
        copy_all()?;
        Ok(started.elapsed().as_secs_f64() * 1e3)
    }
}

/// The memory a GPU provider keeps its tensors in (device 0, the one ONNX Runtime's providers use by
/// default).
fn device_memory(device: ExecutionProvider) -> ort::Result<MemoryInfo<'static>> {
    let allocation = match device {
        ExecutionProvider::Cpu => AllocationDevice::CPU,
        ExecutionProvider::Cuda | ExecutionProvider::Tensorrt => AllocationDevice::CUDA,
    };
    MemoryInfo::new(allocation, 0, AllocatorType::Device, MemoryType::Default)
}
