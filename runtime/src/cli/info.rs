//! `hsconas-runtime info`.

use clap::Args;
use hsconas_foundation::outln;
use hsconas_runtime::backend;
use serde_json::json;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let f = hsconas_runtime::fingerprint::detect();
    let backends = backend::availability();
    if args.json {
        let report = json!({ "fingerprint": f, "backends": backends });
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    outln!("host          {}", f.hostname)?;
    outln!(
        "cpu           {} ({} logical, {} physical, {} MHz)",
        f.cpu_model,
        f.logical_cpus,
        f.physical_cores.map_or("?".into(), |n| n.to_string()),
        f.cpu_mhz
    )?;
    outln!(
        "memory        {:.1} GiB",
        f.memory_bytes as f64 / (1u64 << 30) as f64
    )?;
    outln!("os            {} (kernel {}, {})", f.os, f.kernel, f.arch)?;
    outln!(
        "gpus          {}",
        if f.gpus.is_empty() {
            "none visible".into()
        } else {
            f.gpus.join("; ")
        }
    )?;
    match (&backends.ort_version, &backends.ort_error) {
        (Some(v), _) => {
            outln!(
                "ort           {v} ({}; this build loads {} or newer)",
                backends.ort_library.display(),
                backends.ort_minimum
            )?;
            let offered: Vec<String> = backends
                .ort_providers
                .iter()
                .map(|p| p.to_string())
                .collect();
            outln!("providers     {}", offered.join(", "))?;
        }
        (None, e) => outln!(
            "ort           unavailable: {}",
            e.as_deref().unwrap_or("unknown error")
        )?,
    }
    outln!("tract         {}", backends.tract_version)?;
    Ok(())
}
