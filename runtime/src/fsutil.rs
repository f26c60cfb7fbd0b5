//! File helpers. `write_atomic` mirrors `hsconas_models::fsutil::write_atomic` on purpose: the runtime depends on no
//! other hsconas crate, so that it builds on its own on a device.

use std::io::Write;
use std::path::Path;

use crate::RuntimeError;

/// Writes `bytes` to `path` atomically (temporary file in the same folder, synced, renamed over the target),
/// so that an interrupted run leaves the previous file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let io = |action, source| RuntimeError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("creating the folder of", e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| io("creating a temporary file next to", e))?;
    // Temporary files are created private (0600); the result is an ordinary file (0644).
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    tmp.as_file()
        .set_permissions(mode)
        .map_err(|e| io("setting permissions of", e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io("writing", e))?;
    tmp.persist(path).map_err(|e| io("replacing", e.error))?;
    Ok(())
}
