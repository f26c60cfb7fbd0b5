//! What the device is and the state it was in: stored with every measurement, compared when a table is
//! used on a machine (reading them from the machine is the runtime's: `hsconas_runtime::fingerprint`).

use serde::{Deserialize, Serialize};

/// The device and the software that measures on it. The default is the unknown machine (every field empty
/// or zero), which differs from no machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Host name.
    pub hostname: String,
    /// CPU model (from sysinfo, `/proc/cpuinfo`, or the device-tree model on boards such as Jetsons).
    pub cpu_model: String,
    /// Physical cores.
    pub physical_cores: Option<usize>,
    /// Logical CPUs.
    pub logical_cpus: usize,
    /// Nominal CPU frequency in MHz.
    pub cpu_mhz: u64,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Operating system, e.g. `Linux 12 Debian GNU/Linux`.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU architecture, e.g. `x86_64`, `aarch64`.
    pub arch: String,
    /// GPUs as `name (driver X)`, from `nvidia-smi` where present.
    pub gpus: Vec<String>,
    /// Version of this runtime.
    pub runtime_version: String,
    /// Power and clock state (governor, turbo, Jetson power mode and clocks); empty in tables measured
    /// before it was recorded.
    #[serde(default)]
    pub power: PowerState,
}

impl Fingerprint {
    /// What differs between the machine a table was measured on (`self`) and `here`, one line each as
    /// `label: table X, here Y`: CPU model, architecture, logical and physical cores, GPUs, and memory when
    /// it differs by more than 10%. Host name, kernel, OS and clock speed may change without changing
    /// latency and are not compared; neither is a field unknown on either side (no physical core count, no
    /// memory), nor anything when either side is the unknown machine (no CPU model). The power state is
    /// compared apart ([`PowerState::differences`]).
    pub fn machine_differences(&self, here: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        if self.cpu_model.is_empty() || here.cpu_model.is_empty() {
            return out;
        }
        let mut compare = |label: &str, a: String, b: String, known: bool| {
            if known && a != b {
                out.push(format!("{label}: table {a}, here {b}"));
            }
        };
        compare(
            "CPU model",
            format!("{:?}", self.cpu_model),
            format!("{:?}", here.cpu_model),
            true,
        );
        compare(
            "architecture",
            format!("{:?}", self.arch),
            format!("{:?}", here.arch),
            !self.arch.is_empty() && !here.arch.is_empty(),
        );
        compare(
            "logical CPUs",
            self.logical_cpus.to_string(),
            here.logical_cpus.to_string(),
            self.logical_cpus > 0 && here.logical_cpus > 0,
        );
        if let (Some(a), Some(b)) = (self.physical_cores, here.physical_cores) {
            compare("physical cores", a.to_string(), b.to_string(), true);
        }
        compare(
            "GPUs",
            format!("{:?}", self.gpus),
            format!("{:?}", here.gpus),
            true,
        );
        let (a, b) = (self.memory_bytes as f64, here.memory_bytes as f64);
        if a > 0.0 && b > 0.0 && (b / a - 1.0).abs() > 0.10 {
            out.push(format!(
                "memory: table {:.1} GiB, here {:.1} GiB",
                a / 1024f64.powi(3),
                b / 1024f64.powi(3)
            ));
        }
        out
    }
}

/// The power and clock state; `None` where the machine does not expose it (a VM has no cpufreq).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerState {
    /// CPU frequency governor of cpu0 (`performance`, `schedutil`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_governor: Option<String>,
    /// Current, lowest allowed and highest allowed frequency of cpu0, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_mhz: Option<Clock>,
    /// Whether turbo/boost is on (Intel `no_turbo` inverted, or cpufreq `boost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turbo: Option<bool>,
    /// The Jetson power mode as `ID NAME` (`0 MAXN`), from nvpmodel's status and configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_mode: Option<String>,
    /// The integrated GPU's frequencies (Jetson devfreq), MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_mhz: Option<Clock>,
    /// Clocks pinned at their maximum (`jetson_clocks`, or a `performance` setup): the lowest allowed
    /// frequency equals the highest for the CPU and, where there is one, the integrated GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clocks_locked: Option<bool>,
}

/// One clock's frequencies, MHz.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// Now.
    pub current: u64,
    /// Lowest the governor may choose.
    pub min: u64,
    /// Highest the governor may choose.
    pub max: u64,
}

impl PowerState {
    /// What differs between the state a table was measured in and `other`, as `label: table X, here Y`
    /// (frequencies that merely float under a governor are not compared; their limits are).
    pub fn differences(&self, other: &PowerState) -> Vec<String> {
        let mut out = Vec::new();
        let mut compare = |label: &str, a: Option<String>, b: Option<String>| {
            if let (Some(a), Some(b)) = (a, b) {
                if a != b {
                    out.push(format!("{label}: table {a}, here {b}"));
                }
            }
        };
        compare(
            "power mode",
            self.power_mode.clone(),
            other.power_mode.clone(),
        );
        compare(
            "CPU governor",
            self.cpu_governor.clone(),
            other.cpu_governor.clone(),
        );
        compare("turbo", on_off(self.turbo), on_off(other.turbo));
        compare(
            "clocks locked",
            on_off(self.clocks_locked),
            on_off(other.clocks_locked),
        );
        let limit = |c: Option<Clock>| c.map(|c| format!("{}-{} MHz", c.min, c.max));
        compare(
            "CPU frequency range",
            limit(self.cpu_mhz),
            limit(other.cpu_mhz),
        );
        compare(
            "GPU frequency range",
            limit(self.gpu_mhz),
            limit(other.gpu_mhz),
        );
        out
    }
}

fn on_off(flag: Option<bool>) -> Option<String> {
    flag.map(|f| if f { "on" } else { "off" }.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> Fingerprint {
        Fingerprint {
            hostname: "vm".into(),
            cpu_model: "Intel(R) Xeon(R) Processor".into(),
            physical_cores: Some(2),
            logical_cpus: 2,
            cpu_mhz: 2299,
            memory_bytes: 25_276_510_208,
            os: "Linux".into(),
            kernel: "6.1".into(),
            arch: "x86_64".into(),
            gpus: Vec::new(),
            runtime_version: "0.1.0".into(),
            power: PowerState::default(),
        }
    }

    #[test]
    fn the_same_machine_with_another_name_and_kernel_matches() {
        let renamed = Fingerprint {
            hostname: "ci-runner".into(),
            kernel: "6.18".into(),
            cpu_mhz: 3000,
            memory_bytes: 25_000_000_000,
            ..vm()
        };
        assert!(vm().machine_differences(&renamed).is_empty());
    }

    #[test]
    fn another_cpu_core_count_gpu_or_memory_is_named() {
        let other = Fingerprint {
            cpu_model: "AMD EPYC 7B13".into(),
            logical_cpus: 16,
            gpus: vec!["NVIDIA H200 (driver 570)".into()],
            memory_bytes: 137_438_953_472,
            ..vm()
        };
        let d = vm().machine_differences(&other);
        assert_eq!(d.len(), 4, "{d:?}");
        assert_eq!(
            d[0],
            "CPU model: table \"Intel(R) Xeon(R) Processor\", here \"AMD EPYC 7B13\""
        );
        assert!(
            d.contains(&"logical CPUs: table 2, here 16".to_string()),
            "{d:?}"
        );
        assert!(
            d.contains(&"GPUs: table [], here [\"NVIDIA H200 (driver 570)\"]".to_string()),
            "{d:?}"
        );
        assert!(
            d.contains(&"memory: table 23.5 GiB, here 128.0 GiB".to_string()),
            "{d:?}"
        );
        // The unknown machine (a table without a fingerprint) is compared with nothing.
        let unknown = Fingerprint::default();
        assert!(unknown.machine_differences(&other).is_empty());
        assert!(other.machine_differences(&unknown).is_empty());
    }
}
