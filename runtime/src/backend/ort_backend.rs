//! ONNX Runtime through `ort` 2.0 with `load-dynamic`: the shared library is found at run time
//! (`ORT_DYLIB_PATH`, else the location `scripts/setup.sh` linked at build time, else next to the binary).

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::{DynValue, Tensor, ValueType};

use super::{check_inputs, Backend, BackendConfig, HostTensor, LoadedModel, Provider, TensorSpec};
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

/// One ONNX Runtime environment per process (ONNX Runtime allows no more).
fn environment() -> Result<&'static Environment, RuntimeError> {
    static ENV: OnceLock<Result<Environment, (PathBuf, String)>> = OnceLock::new();
    let result = ENV.get_or_init(|| {
        let path = ort_library_path();
        if !path.exists() {
            return Err((path, "no such file".into()));
        }
        let builder = ort::init_from(&path).map_err(|e| (path.clone(), e.to_string()))?;
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
        let path = std::fs::canonicalize(ort_library_path()).unwrap_or_else(|_| ort_library_path());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.split_once(".so.") {
            Some((_, version)) if !version.is_empty() => version.to_string(),
            _ => ort::info().to_string(),
        }
    }

    fn session_builder(&self) -> Result<(SessionBuilder, Provider), RuntimeError> {
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
        let used = self.register_providers(&mut builder)?;
        Ok((builder, used))
    }

    /// Registers every usable provider of the ordered list, in order, so that each node runs on the first
    /// one that supports it (CPU, always available, ends the list). Returns the first registered one,
    /// which [`LoadedModel::provider`] reports. A provider that cannot be registered is a warning, or an
    /// error when it comes first and [`BackendConfig::require_provider`] is set.
    fn register_providers(&self, builder: &mut SessionBuilder) -> Result<Provider, RuntimeError> {
        let mut primary = None;
        let mut failures = Vec::new();
        for (i, provider) in self.config.providers.iter().enumerate() {
            let outcome = match provider {
                Provider::Cpu => break,
                Provider::Cuda => register(ep::CUDA::default(), builder),
                Provider::Tensorrt => {
                    let mut trt = ep::TensorRT::default();
                    if let Some(dir) = &self.config.tensorrt_cache {
                        trt = trt
                            .with_engine_cache(true)
                            .with_engine_cache_path(dir.display())
                            .with_timing_cache(true);
                    }
                    register(trt, builder)
                }
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
        let primary = primary.unwrap_or(Provider::Cpu);
        if !failures.is_empty() {
            tracing::warn!(
                "running on {primary}{} instead of the first provider asked for ({})",
                if primary == Provider::Cpu {
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
pub fn offered_providers() -> Vec<Provider> {
    let mut offered = vec![Provider::Cpu];
    if ep::CUDA::is_available().unwrap_or(false) {
        offered.push(Provider::Cuda);
    }
    if ep::TensorRT::is_available().unwrap_or(false) {
        offered.push(Provider::Tensorrt);
    }
    offered
}

fn register<E: ExecutionProvider>(ep: E, builder: &mut SessionBuilder) -> Result<(), String> {
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
    provider: Provider,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    prepared: Vec<DynValue>,
}

impl Backend for OrtBackend {
    fn version(&self) -> String {
        format!("onnxruntime {}", Self::runtime_version())
    }

    fn load(&self, onnx: &[u8]) -> Result<Box<dyn LoadedModel>, RuntimeError> {
        let (mut builder, provider) = self.session_builder()?;
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

    fn provider(&self) -> Provider {
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

    fn prepare(&mut self, inputs: &[HostTensor]) -> Result<(), RuntimeError> {
        check_inputs(&self.inputs, inputs)?;
        self.prepared = to_values(inputs)?;
        Ok(())
    }

    fn run_prepared(&mut self) -> Result<(), RuntimeError> {
        if self.prepared.is_empty() && !self.inputs.is_empty() {
            return Err(RuntimeError::BadInput("run_prepared before prepare".into()));
        }
        let refs: Vec<ort::session::SessionInputValue<'_>> =
            self.prepared.iter().map(Into::into).collect();
        self.session
            .run(refs.as_slice())
            .map_err(|e| RuntimeError::Inference(e.to_string()))?;
        Ok(())
    }
}
