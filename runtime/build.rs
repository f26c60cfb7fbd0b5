//! Records the version of tract this build links (from the workspace's `Cargo.lock`), so the runtime
//! reports `tract 0.23.9` rather than the version requirement.

use std::path::Path;

fn main() {
    let lock =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let version = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| {
            let mut lines = text.lines();
            while let Some(line) = lines.next() {
                if line == "name = \"tract-onnx\"" {
                    return lines
                        .next()
                        .and_then(|v| v.strip_prefix("version = \""))
                        .and_then(|v| v.strip_suffix('"'))
                        .map(str::to_string);
                }
            }
            None
        })
        .unwrap_or_else(|| "0.23 (version not recorded: no Cargo.lock)".to_string());
    println!("cargo:rustc-env=HSCONAS_TRACT_VERSION={version}");
}
