//! The latency workflow (arch, export, device, latency, doctor) of the `hsconas` binary as built: with the
//! default `train` feature, and without it (`cargo test --no-default-features --test latency_workflow`,
//! which `scripts/test.sh` runs), where no libtorch is linked and the training commands are absent.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    hsconas_foundation::package_dir!().join("../..")
}

fn hsconas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hsconas"))
        .args(args)
        .output()
        .expect("hsconas runs")
}

fn ok(args: &[&str]) -> String {
    let out = hsconas(args);
    assert!(
        out.status.success(),
        "hsconas {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn doctor_says_whether_libtorch_is_linked() {
    let report: Value = serde_json::from_str(&ok(&["doctor", "--json"])).expect("JSON");
    assert_eq!(
        report["libtorch"].is_object(),
        cfg!(feature = "train"),
        "{report}"
    );
    let providers = report["backends"]["ort_providers"]
        .as_array()
        .expect("the providers ONNX Runtime offers");
    assert_eq!(providers.first(), Some(&Value::from("cpu")), "{report}");
    // The linked tract release, as Cargo.lock has it (`tract 0.23.9`), not the version requirement.
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).expect("Cargo.lock");
    let locked = lock
        .split("name = \"tract-onnx\"\nversion = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("tract-onnx in Cargo.lock");
    assert_eq!(
        report["backends"]["tract_version"],
        format!("tract {locked}"),
        "{report}"
    );
    let text = ok(&["doctor"]);
    let expected = if cfg!(feature = "train") {
        "libtorch      linked"
    } else {
        "libtorch      not linked"
    };
    assert!(text.contains(expected), "{text}");
}

#[test]
fn training_commands_exist_only_with_the_train_feature() {
    for command in ["supernet", "train", "estimate", "search", "run"] {
        let out = hsconas(&[command, "--help"]);
        if cfg!(feature = "train") {
            assert!(out.status.success(), "{command}: {out:?}");
        } else {
            assert_eq!(out.status.code(), Some(2), "{command}: {out:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
        }
    }
    let help = ok(&["--help"]);
    assert_eq!(
        help.contains("built without libtorch"),
        !cfg!(feature = "train"),
        "{help}"
    );
}

#[test]
fn sampled_networks_are_predicted_and_exported() {
    let sampled = ok(&["arch", "sample", "--seed", "5", "--count", "2"]);
    let table = root().join("devices/tables/local-cpu-A-32.json");
    let table = table.to_str().expect("UTF-8 path");
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, arch) in sampled.lines().enumerate() {
        let info: Value =
            serde_json::from_str(&ok(&["arch", "info", "--arch", arch, "--json"])).expect("JSON");
        assert_eq!(info["arch"], arch);
        let predicted: Value = serde_json::from_str(&ok(&[
            "latency", "predict", "--table", table, "--arch", arch, "--json",
        ]))
        .expect("JSON");
        let ms = predicted["predicted_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("no predicted_ms in {predicted}"));
        assert!(ms > 0.05 && ms < 50.0, "{ms} ms for {arch}");
        let onnx = dir.path().join(format!("net-{i}.onnx"));
        ok(&[
            "export",
            "onnx",
            "--arch",
            arch,
            "--input-size",
            "32",
            "--out",
            onnx.to_str().expect("UTF-8 path"),
        ]);
        assert!(std::fs::metadata(&onnx).expect("written").len() > 100_000);
    }
    let devices: Value = serde_json::from_str(&ok(&["device", "list", "--json"])).expect("JSON");
    assert!(
        devices.as_array().is_some_and(|d| d.len() >= 4),
        "{devices}"
    );
}

/// A table records the device's power state; used while the device is in another one (a Jetson at 15 W
/// for a table measured at MAXN with locked clocks; file layouts from `tests/fixtures`) it is refused,
/// or only a warning with `--allow-power-change`.
#[test]
fn a_table_from_another_power_mode_is_refused() {
    let fixtures = root().join("tests/fixtures");
    let maxn = hsconas_runtime::power::read(&fixtures.join("jetson-xavier-maxn"));
    assert_eq!(maxn.power_mode.as_deref(), Some("0 MAXN"));
    let mut table: Value = serde_json::from_slice(
        &std::fs::read(root().join("devices/tables/local-cpu-A-32.json")).expect("table"),
    )
    .expect("JSON");
    table["provenance"]["fingerprint"]["power"] = serde_json::to_value(&maxn).expect("JSON");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("maxn.json");
    std::fs::write(&path, serde_json::to_vec(&table).expect("JSON")).expect("write");
    let arch = vec!["shuffle3:0.5"; 20].join(",");
    let predict = |state: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hsconas"))
            .args([
                "latency",
                "predict",
                "--table",
                path.to_str().expect("utf-8"),
            ])
            .args(["--arch", &arch])
            .args(extra)
            .env("HSCONAS_SYSFS_ROOT", fixtures.join(state))
            .output()
            .expect("hsconas runs")
    };
    let refused = predict("jetson-xavier-15w", &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("power mode: table 0 MAXN, here 2 MODE_15W")
            && stderr.contains("clocks locked: table on, here off")
            && stderr.contains("--allow-power-change"),
        "{stderr}"
    );
    let warned = predict("jetson-xavier-15w", &["--allow-power-change"]);
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("power mode"),
        "{stderr}"
    );
    let same = predict("jetson-xavier-maxn", &[]);
    let stderr = String::from_utf8_lossy(&same.stderr);
    assert!(
        same.status.success() && !stderr.contains("power"),
        "{stderr}"
    );
}
