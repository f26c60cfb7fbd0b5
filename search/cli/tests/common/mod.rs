//! What the end-to-end tests of the `hsconas` binary share: the repository root, running the binary
//! there, and building a crate it generated.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (relative paths in the tests' arguments are read from it).
pub fn root() -> PathBuf {
    hsconas_foundation::package_dir!().join("../..")
}

/// `hsconas ARGS` run in the repository root, to its end.
pub fn hsconas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hsconas"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("hsconas runs")
}

/// The target directory of this build, shared with the crates the tests generate.
#[allow(dead_code)] // not every test binary generates a crate
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory")
        .to_path_buf()
}

/// `cargo <args>` in a generated crate, with the workspace's target directory and ONNX Runtime.
#[allow(dead_code)] // not every test binary generates a crate
pub fn cargo(krate: &Path, args: &[&str]) -> Output {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", target_dir())
        .env(
            "ORT_DYLIB_PATH",
            hsconas_runtime::backend::ort_library_path(),
        )
        .output()
        .expect("cargo runs")
}

/// The output of a command that must succeed; panics with its error output otherwise.
#[allow(dead_code)] // not every test binary uses it
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A mixed-precision latency table of this machine at input 32 (every block in FP32 and INT8), profiled
/// into `table` with the tests' short protocol.
#[allow(dead_code)] // not every test binary uses it
pub fn profile_mixed_table_32(table: &Path) {
    let mut profile = vec![
        "profile",
        "--device",
        "local-cpu",
        "--input-size",
        "32",
        "--precision",
        "mixed",
        "--out",
        table.to_str().expect("utf-8"),
    ];
    profile.extend(hsconas_tests::FAST_PROTOCOL);
    ok(hsconas(&profile));
}
