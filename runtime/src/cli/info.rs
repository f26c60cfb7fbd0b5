//! `hsconas-runtime info`.

use clap::Args;
use hsconas_runtime::backend::{self, ort_library_path, BackendConfig, BackendKind};
use hsconas_runtime::Fingerprint;
use serde_json::json;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let f = Fingerprint::detect();
    let ort = backend::build(&BackendConfig::default())
        .map(|b| b.version())
        .map_err(|e| e.to_string());
    let tract = backend::build(&BackendConfig {
        kind: BackendKind::Tract,
        ..BackendConfig::default()
    })
    .map(|b| b.version())
    .map_err(|e| e.to_string());
    if args.json {
        let report = json!({
            "fingerprint": f,
            "backends": {
                "ort": { "library": ort_library_path(), "version": ort.as_ref().ok(), "error": ort.as_ref().err() },
                "tract": { "version": tract.as_ref().ok() },
            }
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("host          {}", f.hostname);
    println!(
        "cpu           {} ({} logical, {} physical, {} MHz)",
        f.cpu_model,
        f.logical_cpus,
        f.physical_cores.map_or("?".into(), |n| n.to_string()),
        f.cpu_mhz
    );
    println!(
        "memory        {:.1} GiB",
        f.memory_bytes as f64 / (1u64 << 30) as f64
    );
    println!("os            {} (kernel {}, {})", f.os, f.kernel, f.arch);
    println!(
        "gpus          {}",
        if f.gpus.is_empty() {
            "none visible".into()
        } else {
            f.gpus.join("; ")
        }
    );
    match &ort {
        Ok(v) => println!("ort           {v} ({})", ort_library_path().display()),
        Err(e) => println!("ort           unavailable: {e}"),
    }
    if let Ok(v) = &tract {
        println!("tract         {v}");
    }
    Ok(())
}
