//! Reads the device's power and clock state ([`PowerState`]), which changes latency as much as the
//! hardware does: the CPU frequency governor and turbo, and on a Jetson the `nvpmodel` power mode and whether `jetson_clocks`
//! locked the clocks. Read from the usual sysfs and `nvpmodel` files under a root folder (`/` on a device;
//! tests pass folders that carry real Jetson file layouts, and `HSCONAS_SYSFS_ROOT` does the same for the
//! binaries).

use std::path::{Path, PathBuf};

use hsconas_vocabulary::{Clock, PowerState};

/// Environment variable naming another root for the power-state files (tests and fixtures).
pub const ROOT_VARIABLE: &str = "HSCONAS_SYSFS_ROOT";

/// Reads the state under `HSCONAS_SYSFS_ROOT`, else under `/`.
pub fn detect() -> PowerState {
    let root = std::env::var_os(ROOT_VARIABLE).map_or_else(|| PathBuf::from("/"), PathBuf::from);
    read(&root)
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
        read(&root)
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
        let empty = read(Path::new("/nonexistent"));
        assert_eq!(empty, PowerState::default());
        assert!(empty.differences(&fixture("jetson-xavier-maxn")).is_empty());
    }
}
