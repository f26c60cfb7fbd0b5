//! Files that are replaced whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file-system step that failed, with the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("{action} '{}': {source}", path.display())]
pub struct FsError {
    /// What was being done (`creating the folder of`, `writing`, `replacing`, ...).
    pub action: &'static str,
    /// The file it was done to.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

impl FsError {
    /// `action` on `path` failed with `source`.
    pub fn new(action: &'static str, path: &Path, source: std::io::Error) -> FsError {
        FsError {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, written and synced, renamed
/// over the target, then the folder synced so that the rename itself survives a power loss. An
/// interrupted job leaves the old file or the new one, never a torn one. The folder is created when
/// missing; the result is an ordinary `0644` file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let fail = |action| move |source| FsError::new(action, path, source);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail("creating the folder of"))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(fail("creating a temporary file next to"))?;
    // Temporary files are created private (0600); the result is an ordinary file.
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(fail("setting the permissions of"))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(fail("writing"))?;
    tmp.persist(path).map_err(|e| fail("replacing")(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("syncing the folder of"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_creates_folders() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a/b/file.json");
        write_atomic(&path, b"first").expect("written");
        write_atomic(&path, b"second").expect("replaced");
        assert_eq!(std::fs::read(&path).expect("readable"), b"second");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("metadata").permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        // Nothing but the file is left in its folder.
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("folder"))
            .expect("listable")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["file.json"]);
    }

    #[test]
    fn errors_name_the_path_and_the_step() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blocker = dir.path().join("plain-file");
        std::fs::write(&blocker, b"x").expect("written");
        let err =
            write_atomic(&blocker.join("inside.json"), b"y").expect_err("a file is no folder");
        assert_eq!(err.action, "creating the folder of");
        assert!(err.to_string().contains("plain-file/inside.json"), "{err}");
    }
}
