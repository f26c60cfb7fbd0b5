//! `hsconas doctor`.

use clap::Args;
use hsconas_foundation::outln;
use hsconas_runtime::backend::{self, Availability};
use serde::Serialize;

#[cfg(feature = "train")]
use hsconas_train::libtorch::LibtorchInfo;

/// Stands in for libtorch's report in a build without the `train` feature (never constructed).
#[cfg(not(feature = "train"))]
#[derive(Serialize)]
enum LibtorchInfo {}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    version: &'static str,
    /// `None` when this binary was built without the `train` feature (no libtorch linked).
    libtorch: Option<LibtorchInfo>,
    backends: Availability,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        libtorch: libtorch_info(),
        backends: backend::availability(),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    outln!("hsconas {}", report.version)?;
    match &report.libtorch {
        #[cfg(feature = "train")]
        Some(t) => {
            let cuda = if t.cuda_available {
                format!("available ({} devices)", t.cuda_devices)
            } else {
                "not available".into()
            };
            outln!("libtorch      linked; {} threads; CUDA {cuda}", t.threads)?;
        }
        _ => outln!(
            "libtorch      not linked: built without the `train` feature (no supernet, train, search, run)"
        )?,
    }
    let b = &report.backends;
    match (&b.ort_version, &b.ort_error) {
        (Some(v), _) => {
            outln!(
                "onnxruntime   {v} ({}; {} or newer loads)",
                b.ort_library.display(),
                b.ort_minimum
            )?;
            let offered: Vec<String> = b.ort_providers.iter().map(|p| p.to_string()).collect();
            outln!("providers     {}", offered.join(", "))?;
        }
        (None, e) => outln!(
            "onnxruntime   unavailable: {}",
            e.as_deref().unwrap_or("unknown error")
        )?,
    }
    outln!("tract         {}", b.tract_version)?;
    Ok(())
}

#[cfg(feature = "train")]
fn libtorch_info() -> Option<LibtorchInfo> {
    Some(hsconas_train::libtorch::info())
}

#[cfg(not(feature = "train"))]
fn libtorch_info() -> Option<LibtorchInfo> {
    None
}
