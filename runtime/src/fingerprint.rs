//! Reads what the device is ([`Fingerprint`]), stored with every measurement so that a latency table can be
//! matched to its device.

use hsconas_vocabulary::Fingerprint;

/// Reads this machine's fingerprint.
pub fn detect() -> Fingerprint {
    use sysinfo::{CpuRefreshKind, RefreshKind, System};
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::everything())
            .with_memory(sysinfo::MemoryRefreshKind::everything()),
    );
    let brand = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .unwrap_or_default();
    let cpu_model = if brand.is_empty() {
        proc_cpu_model().unwrap_or_else(|| "unknown".into())
    } else {
        brand
    };
    Fingerprint {
        hostname: System::host_name().unwrap_or_default(),
        cpu_model,
        physical_cores: System::physical_core_count(),
        logical_cpus: sys.cpus().len(),
        cpu_mhz: sys.cpus().first().map_or(0, |c| c.frequency()),
        memory_bytes: sys.total_memory(),
        os: System::long_os_version().unwrap_or_default(),
        kernel: System::kernel_version().unwrap_or_default(),
        arch: std::env::consts::ARCH.to_string(),
        gpus: nvidia_gpus(),
        runtime_version: env!("CARGO_PKG_VERSION").to_string(),
        power: crate::power::detect(),
    }
}

/// Whether this is an x86 CPU without VNNI (AVX2, or AVX-512 without VNNI): ONNX Runtime's U8S8
/// integer kernels use `VPMADDUBSW` there, whose int16 pair sums saturate with full-range int8 weights
/// (the remedies: weights of 7 bits at export, or its slower U8U8 kernels at run time). False on VNNI
/// CPUs and on other architectures.
pub fn x86_without_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !(std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `model name` of `/proc/cpuinfo`, or the device-tree model (ARM boards).
fn proc_cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .or_else(|| {
            std::fs::read_to_string("/proc/device-tree/model")
                .ok()
                .map(|s| s.trim_end_matches('\0').trim().to_string())
        })
}

/// GPUs that `nvidia-smi` lists, if it is installed.
fn nvidia_gpus() -> Vec<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                l.split_once(',')
                    .map(|(name, driver)| format!("{} (driver {})", name.trim(), driver.trim()))
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the first `key : value` line of a `/proc` file.
    fn proc_field(file: &str, key: &str) -> Option<String> {
        std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    }

    #[test]
    fn agrees_with_what_the_kernel_reports() {
        let f = detect();
        // Checked against /proc, read independently of sysinfo (Linux, where the runtime is used).
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
        let processors = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        assert_eq!(f.logical_cpus, processors);
        let mem_kb: u64 = proc_field("/proc/meminfo", "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .expect("MemTotal");
        assert_eq!(f.memory_bytes, mem_kb * 1024);
        if let Some(model) = proc_field("/proc/cpuinfo", "model name") {
            assert_eq!(f.cpu_model, model);
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        assert_eq!(f.kernel, release.trim());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        assert_eq!(f.hostname, host.trim());
        assert_eq!(f.arch, std::env::consts::ARCH);
        assert_eq!(f.runtime_version, env!("CARGO_PKG_VERSION"));
        if let Some(cores) = f.physical_cores {
            assert!(
                (1..=f.logical_cpus).contains(&cores),
                "{cores} physical cores"
            );
        }
    }
}
