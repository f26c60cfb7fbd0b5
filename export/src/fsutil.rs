use std::path::Path;

use crate::ExportError;

/// [`hsconas_models::fsutil::write_atomic`] with the path in the error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    hsconas_models::fsutil::write_atomic(path, bytes).map_err(|source| ExportError::Io {
        action: "writing",
        path: path.to_path_buf(),
        source,
    })
}
