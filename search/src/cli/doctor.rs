//! `hsconas doctor`.

use clap::Args;
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
    onnxruntime_library: Option<String>,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let ort = std::env::var("ORT_DYLIB_PATH")
        .ok()
        .or_else(|| option_env!("HSCONAS_DEFAULT_ORT_DYLIB").map(String::from));
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        libtorch: hsconas_search::libtorch::info(),
        onnxruntime_library: ort.filter(|p| std::path::Path::new(p).exists()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("hsconas {}", report.version);
        let t = &report.libtorch;
        println!(
            "libtorch      linked; {} threads; CUDA {}",
            t.threads,
            if t.cuda_available {
                format!("available ({} devices)", t.cuda_devices)
            } else {
                "not available".into()
            }
        );
        match &report.onnxruntime_library {
            Some(p) => println!("onnxruntime   {p}"),
            None => println!("onnxruntime   not found: run scripts/setup.sh or set ORT_DYLIB_PATH"),
        }
    }
    Ok(())
}
