//! Whether a table belongs to this machine: its recorded fingerprint against the fingerprint of the machine
//! it is used on. A table measured on another CPU, core count, memory size or GPU set predicts that
//! machine, not this one.

use serde_json::Value;

/// The fields of the two fingerprints (as the runtime reports them) that differ, one line each, naming the
/// field and both values: CPU model, architecture, logical and physical cores, GPUs, and memory when it
/// differs by more than 10%. Host name, kernel, OS and clock speed may change without changing latency
/// and are not compared; a field missing on either side is not compared either.
pub fn machine_differences(table: &Value, here: &Value) -> Vec<String> {
    let mut differences = Vec::new();
    for (field, label) in [
        ("cpu_model", "CPU model"),
        ("arch", "architecture"),
        ("logical_cpus", "logical CPUs"),
        ("physical_cores", "physical cores"),
        ("gpus", "GPUs"),
    ] {
        let (a, b) = (&table[field], &here[field]);
        if !a.is_null() && !b.is_null() && a != b {
            differences.push(format!("{label}: table {a}, here {b}"));
        }
    }
    if let (Some(a), Some(b)) = (
        table["memory_bytes"].as_f64(),
        here["memory_bytes"].as_f64(),
    ) {
        if a > 0.0 && (b / a - 1.0).abs() > 0.10 {
            differences.push(format!(
                "memory: table {:.1} GiB, here {:.1} GiB",
                a / 1024f64.powi(3),
                b / 1024f64.powi(3)
            ));
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vm() -> Value {
        json!({"cpu_model": "Intel(R) Xeon(R) Processor", "arch": "x86_64", "logical_cpus": 2,
               "physical_cores": 2, "gpus": [], "memory_bytes": 25276510208u64, "hostname": "vm",
               "kernel": "6.1", "cpu_mhz": 2299})
    }

    #[test]
    fn the_same_machine_with_another_name_and_kernel_matches() {
        let mut renamed = vm();
        renamed["hostname"] = json!("ci-runner");
        renamed["kernel"] = json!("6.18");
        renamed["cpu_mhz"] = json!(3000);
        renamed["memory_bytes"] = json!(25_000_000_000u64);
        assert!(machine_differences(&vm(), &renamed).is_empty());
    }

    #[test]
    fn another_cpu_core_count_gpu_or_memory_is_named() {
        let mut other = vm();
        other["cpu_model"] = json!("AMD EPYC 7B13");
        other["logical_cpus"] = json!(16);
        other["gpus"] = json!(["NVIDIA H200 (driver 570)"]);
        other["memory_bytes"] = json!(137_438_953_472u64);
        let d = machine_differences(&vm(), &other);
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(
            d[0].contains("CPU model") && d[0].contains("AMD EPYC 7B13"),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l.starts_with("logical CPUs: table 2, here 16")),
            "{d:?}"
        );
        assert!(d.iter().any(|l| l.starts_with("GPUs")), "{d:?}");
        assert!(
            d.iter()
                .any(|l| l.starts_with("memory: table 23.5 GiB, here 128.0 GiB")),
            "{d:?}"
        );
        // A table without a fingerprint (older files) is not compared.
        assert!(machine_differences(&json!({}), &other).is_empty());
    }
}
