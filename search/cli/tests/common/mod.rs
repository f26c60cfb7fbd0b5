//! What the end-to-end tests of the `hsconas` binary share: the repository root and running the binary
//! there.

use std::path::PathBuf;
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
