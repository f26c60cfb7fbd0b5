//! The device's power and clock state, which changes latency as much as the hardware does: the CPU
//! frequency governor and turbo, and on a Jetson the `nvpmodel` power mode and whether `jetson_clocks`
//! locked the clocks. Read from the usual sysfs and `nvpmodel` files under a root folder (`/` on a device;
//! tests pass folders that carry real Jetson file layouts, and `HSCONAS_SYSFS_ROOT` does the same for the
//! binaries).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variable naming another root for the power-state files (tests and fixtures).
pub const ROOT_VARIABLE: &str = "HSCONAS_SYSFS_ROOT";

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
    /// Reads the state under `HSCONAS_SYSFS_ROOT`, else under `/`.
    pub fn detect() -> PowerState {
        let root =
            std::env::var_os(ROOT_VARIABLE).map_or_else(|| PathBuf::from("/"), PathBuf::from);
        PowerState::read(&root)
    }

    /// Reads the state from the files under `root`.
    pub fn read(root: &Path) -> PowerState {
        let text = |rel: &str| {
            std::fs::read_to_string(root.join(rel))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let number = |rel: &str| text(rel).and_then(|s| s.parse::<u64>().ok());
        let cpufreq = "sys/devices/system/cpu/cpu0/cpufreq";
        // cpufreq reports kHz.
        let cpu_mhz = match (
            number(&format!("{cpufreq}/scaling_cur_freq")),
            number(&format!("{cpufreq}/scaling_min_freq")),
            number(&format!("{cpufreq}/scaling_max_freq")),
        ) {
            (Some(c), Some(lo), Some(hi)) => Some(Clock {
                current: c / 1000,
                min: lo / 1000,
                max: hi / 1000,
            }),
            _ => None,
        };
        let turbo = number("sys/devices/system/cpu/intel_pstate/no_turbo")
            .map(|no| no == 0)
            .or_else(|| number("sys/devices/system/cpu/cpufreq/boost").map(|b| b == 1));
        let gpu_mhz = jetson_gpu(root);
        let clocks_locked =
            cpu_mhz.map(|cpu| cpu.min == cpu.max && gpu_mhz.is_none_or(|gpu| gpu.min == gpu.max));
        PowerState {
            cpu_governor: text(&format!("{cpufreq}/scaling_governor")),
            cpu_mhz,
            turbo,
            power_mode: nvpmodel_mode(root),
            gpu_mhz,
            clocks_locked,
        }
    }

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

/// `ID NAME` of the active nvpmodel mode: the ID from `/var/lib/nvpmodel/status` (`pmode:0002 ...`),
/// the name from the `< POWER_MODEL ID=2 NAME=MODE_15W >` line of `/etc/nvpmodel.conf`.
fn nvpmodel_mode(root: &Path) -> Option<String> {
    let status = std::fs::read_to_string(root.join("var/lib/nvpmodel/status")).ok()?;
    let id: u32 = status
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pmode:"))?
        .parse()
        .ok()?;
    let conf = std::fs::read_to_string(root.join("etc/nvpmodel.conf")).unwrap_or_default();
    let name = conf.lines().find_map(|line| {
        let line = line.trim().strip_prefix('<')?.trim_start();
        let fields = line.strip_prefix("POWER_MODEL")?;
        let value = |key: &str| {
            fields
                .split_whitespace()
                .find_map(|f| f.strip_prefix(key))
                .map(|v| v.trim_end_matches('>').to_string())
        };
        (value("ID=")?.parse::<u32>().ok()? == id).then(|| value("NAME="))?
    });
    Some(match name {
        Some(name) => format!("{id} {name}"),
        None => id.to_string(),
    })
}

/// The integrated GPU's devfreq clock (`/sys/class/devfreq/<addr>.gv11b` on Xavier, `.ga10b` on Orin,
/// `.gp10b` on TX2; devfreq reports Hz).
fn jetson_gpu(root: &Path) -> Option<Clock> {
    let entries = std::fs::read_dir(root.join("sys/class/devfreq")).ok()?;
    let dir = entries.flatten().map(|e| e.path()).find(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            [".gv11b", ".ga10b", ".gp10b", ".gpu"]
                .iter()
                .any(|s| n.ends_with(s))
        })
    })?;
    let hz = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some(Clock {
        current: hz("cur_freq")? / 1_000_000,
        min: hz("min_freq")? / 1_000_000,
        max: hz("max_freq")? / 1_000_000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PowerState {
        let root = hsconas_foundation::package_dir!()
            .join("../tests/fixtures")
            .join(name);
        PowerState::read(&root)
    }

    /// Jetson file layouts: MAXN with `jetson_clocks` (every minimum at its maximum), and the 15 W mode with
    /// floating clocks.
    #[test]
    fn jetson_power_modes_and_locked_clocks_are_read() {
        let maxn = fixture("jetson-xavier-maxn");
        assert_eq!(maxn.power_mode.as_deref(), Some("0 MAXN"));
        assert_eq!(maxn.cpu_governor.as_deref(), Some("schedutil"));
        assert_eq!(
            maxn.cpu_mhz,
            Some(Clock {
                current: 2265,
                min: 2265,
                max: 2265
            })
        );
        assert_eq!(
            maxn.gpu_mhz,
            Some(Clock {
                current: 1377,
                min: 1377,
                max: 1377
            })
        );
        assert_eq!(maxn.clocks_locked, Some(true));
        assert_eq!(maxn.turbo, None);

        let w15 = fixture("jetson-xavier-15w");
        assert_eq!(w15.power_mode.as_deref(), Some("2 MODE_15W"));
        assert_eq!(w15.clocks_locked, Some(false));
        let differences = maxn.differences(&w15);
        assert!(
            differences.contains(&"power mode: table 0 MAXN, here 2 MODE_15W".to_string()),
            "{differences:?}"
        );
        assert!(differences
            .iter()
            .any(|d| d.starts_with("clocks locked: table on, here off")));
        assert!(differences
            .iter()
            .any(|d| d.starts_with("GPU frequency range: table 1377-1377 MHz")));
        assert!(maxn.differences(&maxn.clone()).is_empty());
    }

    /// A machine without these files (a VM, a container) has no state, and nothing unknown differs.
    #[test]
    fn missing_files_give_an_empty_state_that_differs_from_nothing() {
        let empty = PowerState::read(Path::new("/nonexistent"));
        assert_eq!(empty, PowerState::default());
        assert!(empty.differences(&fixture("jetson-xavier-maxn")).is_empty());
    }
}
