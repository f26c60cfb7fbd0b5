//! What the workspace's tests share.

use std::path::PathBuf;

/// The directory of the package whose test is running: `CARGO_MANIFEST_DIR` as cargo sets it when it
/// runs the test, else `compiled` (the value at compile time, what [`crate::package_dir!`] passes).
///
/// Read at run time because one target folder may serve checkouts at different paths: cargo then reuses a
/// test binary compiled in another checkout, and a path fixed at compile time would read (or miss) that
/// checkout's files. Meant for a package's own tests and test helpers: the run-time value names the
/// package being tested.
pub fn package_dir(compiled: &'static str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(compiled), PathBuf::from)
}

/// The calling package's directory for its tests, read at run time ([`testing::package_dir`]).
///
/// [`testing::package_dir`]: crate::testing::package_dir
#[macro_export]
macro_rules! package_dir {
    () => {
        $crate::testing::package_dir(env!("CARGO_MANIFEST_DIR"))
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_package_dir_is_this_package_when_cargo_runs_the_test() {
        let dir = crate::package_dir!();
        assert!(dir.join("Cargo.toml").is_file(), "{}", dir.display());
        assert!(dir.join("src/testing.rs").is_file(), "{}", dir.display());
    }
}
