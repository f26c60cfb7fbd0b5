//! Backend and protocol flags shared by `bench` and `profile`.

use clap::Args;
use hsconas_runtime::backend::{BackendConfig, TensorrtOptions};
use hsconas_vocabulary::{Engine, ExecutionProvider, Protocol};

/// `--backend`, `--provider`, `--threads`, `--no-optimize`, the TensorRT settings, `--placement`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Inference engine.
    #[arg(long, default_value = "ort", value_name = "ort|tract")]
    pub backend: Engine,
    /// ONNX Runtime execution providers, in order of preference (comma-separated): every available one
    /// is registered in this order, so each node runs on the first that supports it; CPU ends the list.
    /// A provider that is not available is a warning (see --require-provider), and the one that ran
    /// first is reported.
    #[arg(
        long,
        default_value = "cpu",
        value_delimiter = ',',
        value_name = "cpu|cuda|tensorrt"
    )]
    pub provider: Vec<ExecutionProvider>,
    /// Intra-op threads (ONNX Runtime).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Basic graph optimisations only.
    #[arg(long)]
    pub no_optimize: bool,
    /// Folder for TensorRT engine and timing caches [default: ~/.cache/hsconas/tensorrt].
    #[arg(long, value_name = "DIR")]
    pub tensorrt_cache: Option<std::path::PathBuf>,
    /// Let TensorRT use FP16 kernels.
    #[arg(long)]
    pub tensorrt_fp16: bool,
    /// Let TensorRT run an INT8 QDQ model's quantised nodes in INT8 (export it with --precision int8
    /// --int8-flavour tensorrt).
    #[arg(long)]
    pub tensorrt_int8: bool,
    /// TensorRT's scratch memory for building engines, in MiB [default: ONNX Runtime's].
    #[arg(long, value_name = "MIB")]
    pub tensorrt_workspace_mib: Option<usize>,
    /// Fail instead of falling back when the first --provider cannot run here.
    #[arg(long)]
    pub require_provider: bool,
    /// Report how many kernels each provider ran (one profiled run before timing; always done when a
    /// GPU provider is registered).
    #[arg(long)]
    pub placement: bool,
    /// Time through ONNX Runtime's I/O binding even on the CPU (always used on a GPU provider: inputs
    /// copied to the device once, outputs left there).
    #[arg(long)]
    pub io_binding: bool,
    /// On an x86 CPU without VNNI, run INT8 models with ONNX Runtime's U8U8 kernels, which cannot
    /// saturate, instead of its faster U8S8 ones (`session.x64quantprecision`; no effect elsewhere).
    #[arg(long)]
    pub x64_quant_precision: bool,
}

impl EngineArgs {
    pub fn config(&self) -> BackendConfig {
        BackendConfig {
            kind: self.backend,
            providers: self.provider.clone(),
            threads: self.threads,
            optimize: !self.no_optimize,
            tensorrt: TensorrtOptions {
                fp16: self.tensorrt_fp16,
                int8: self.tensorrt_int8,
                workspace_mib: self.tensorrt_workspace_mib,
                cache: Some(
                    self.tensorrt_cache
                        .clone()
                        .unwrap_or_else(hsconas_runtime::backend::default_tensorrt_cache),
                ),
            },
            require_provider: self.require_provider,
            placement: self.placement,
            io_binding: self.io_binding,
            x64_quant_precision: self.x64_quant_precision,
        }
    }
}

/// `--warmup`, `--runs`, `--min-time-ms`, `--max-runs`, `--pin`, `--seed`.
#[derive(Debug, Clone, Args)]
pub struct ProtocolArgs {
    /// Untimed runs before timing.
    #[arg(long, default_value_t = Protocol::default().warmup, value_name = "N")]
    pub warmup: usize,
    /// Timed runs, at least.
    #[arg(long, default_value_t = Protocol::default().min_runs, value_name = "N")]
    pub runs: usize,
    /// Timed milliseconds, at least.
    #[arg(long, default_value_t = Protocol::default().min_time_ms, value_name = "T")]
    pub min_time_ms: f64,
    /// Timed runs, at most.
    #[arg(long, default_value_t = Protocol::default().max_runs, value_name = "N")]
    pub max_runs: usize,
    /// Pin the measuring thread to these CPUs (e.g. `0` or `2,3`).
    #[arg(long, value_delimiter = ',', value_name = "CPUS")]
    pub pin: Vec<usize>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl ProtocolArgs {
    pub fn protocol(&self) -> Protocol {
        Protocol {
            warmup: self.warmup,
            min_runs: self.runs,
            min_time_ms: self.min_time_ms,
            max_runs: self.max_runs.max(self.runs),
            seed: self.seed,
            pin: self.pin.clone(),
            burst: 1,
            last_burst: None,
            last_alone: false,
        }
    }
}
