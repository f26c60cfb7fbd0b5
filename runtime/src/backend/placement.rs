//! Which execution provider ran each kernel, from ONNX Runtime's profiler: a session built with profiling
//! on writes one JSON event per kernel run (`"cat": "Node"`, `args.provider`); one run is enough.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hsconas_vocabulary::ExecutionProvider;

use super::Placement;
use crate::RuntimeError;

/// A fresh file-name prefix in the temporary folder for one session's profile (ONNX Runtime appends a
/// timestamp and `.json`).
pub(super) fn profile_prefix() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "hsconas-placement-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Reads the placement from a profile file and removes the file.
pub(super) fn read_and_remove(file: &Path) -> Result<Placement, RuntimeError> {
    let text = std::fs::read_to_string(file).map_err(|source| {
        RuntimeError::Fs(hsconas_foundation::FsError::new(
            "reading the ONNX Runtime profile",
            file,
            source,
        ))
    });
    let _ = std::fs::remove_file(file);
    from_profile(&text?).map_err(|reason| {
        RuntimeError::Inference(format!(
            "ONNX Runtime's profile {}: {reason}",
            file.display()
        ))
    })
}

/// Kernels per provider in the text of a profile: each distinct kernel (`<node>_kernel_time` events)
/// counted once, under `cpu`, `cuda`, `tensorrt` or ONNX Runtime's own name for another provider.
pub fn from_profile(text: &str) -> Result<Placement, String> {
    let events: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON list of events ({e})"))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut placement = Placement::new();
    for event in &events {
        let name = event["name"].as_str().unwrap_or_default();
        let (Some("Node"), Some(kernel), Some(provider)) = (
            event["cat"].as_str(),
            name.strip_suffix("_kernel_time"),
            event["args"]["provider"].as_str(),
        ) else {
            continue;
        };
        if seen.insert(kernel.to_string()) {
            *placement.entry(short_name(provider)).or_default() += 1;
        }
    }
    if placement.is_empty() {
        return Err("no kernel events (was the model run with profiling on?)".into());
    }
    Ok(placement)
}

/// hsconas's word for a provider ONNX Runtime names (`cuda` for `CUDAExecutionProvider`); ONNX Runtime's
/// name for one hsconas has no word for.
fn short_name(provider: &str) -> String {
    ExecutionProvider::from_onnx_runtime_name(provider)
        .map_or_else(|| provider.to_string(), |p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_are_counted_once_per_provider() {
        // The shape of ONNX Runtime 1.17-1.31 profiles: session events, then per kernel a fence before, the
        // kernel time and a fence after (args only on the kernel time), for every run.
        let profile = r#"[
          {"cat":"Session","name":"model_loading_array","args":{}},
          {"cat":"Node","name":"TRTKernel_graph_main_0_kernel_time","args":{"op_name":"TRTKernel","provider":"TensorrtExecutionProvider"}},
          {"cat":"Node","name":"/head/Gemm_fence_before","args":{"op_name":"Gemm"}},
          {"cat":"Node","name":"/head/Gemm_kernel_time","args":{"op_name":"Gemm","provider":"CUDAExecutionProvider"}},
          {"cat":"Node","name":"/head/Gemm_kernel_time","args":{"op_name":"Gemm","provider":"CUDAExecutionProvider"}},
          {"cat":"Node","name":"/stem/Resize_kernel_time","args":{"op_name":"Resize","provider":"CPUExecutionProvider"}},
          {"cat":"Node","name":"custom_kernel_time","args":{"provider":"OpenVINOExecutionProvider"}}
        ]"#;
        let placement = from_profile(profile).expect("parses");
        let expected: Placement = [
            ("tensorrt", 1),
            ("cuda", 1),
            ("cpu", 1),
            ("OpenVINOExecutionProvider", 1),
        ]
        .into_iter()
        .map(|(p, n)| (p.to_string(), n))
        .collect();
        assert_eq!(placement, expected);
        assert!(from_profile("[]").is_err());
        assert!(from_profile("{not json").is_err());
    }
}
