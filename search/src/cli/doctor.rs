//! `hsconas doctor`.

use clap::Args;
use hsconas_runtime::backend::{self, Availability};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    version: &'static str,
    libtorch: hsconas_search::libtorch::LibtorchInfo,
    backends: Availability,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        libtorch: hsconas_search::libtorch::info(),
        backends: backend::availability(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("hsconas {}", report.version);
    let t = &report.libtorch;
    let cuda = if t.cuda_available {
        format!("available ({} devices)", t.cuda_devices)
    } else {
        "not available".into()
    };
    println!("libtorch      linked; {} threads; CUDA {cuda}", t.threads);
    let b = &report.backends;
    match (&b.ort_version, &b.ort_error) {
        (Some(v), _) => println!("onnxruntime   {v} ({})", b.ort_library.display()),
        (None, e) => println!(
            "onnxruntime   unavailable: {}",
            e.as_deref().unwrap_or("unknown error")
        ),
    }
    println!("tract         {}", b.tract_version);
    Ok(())
}
