//! What the linked libtorch offers on this machine.

use serde::Serialize;

/// Devices and threads libtorch sees.
#[derive(Debug, Clone, Serialize)]
pub struct LibtorchInfo {
    /// Whether a CUDA device is usable.
    pub cuda_available: bool,
    /// Number of CUDA devices.
    pub cuda_devices: i64,
    /// Intra-op threads libtorch uses.
    pub threads: i32,
}

/// Asks the linked libtorch.
pub fn info() -> LibtorchInfo {
    LibtorchInfo {
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        threads: tch::get_num_threads(),
    }
}
