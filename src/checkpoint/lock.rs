//! An exclusive lock on a state directory: two processes must never poll
//! the same sources (DESIGN.md 12). Held for the life of the process; the
//! operating system releases it when the process ends, however it ends.

use std::path::Path;

use super::files;

pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<Self, String> {
        files::create_dir(dir).map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
        let path = dir.join("sidecar.lock");
        let file = files::private()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "state directory {} is in use by another forge-otel-sidecar; two instances must not poll the same sources",
                dir.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = DirLock::acquire(dir.path());
        assert!(first.is_ok());
        let second = DirLock::acquire(dir.path());
        assert!(second.is_err_and(|e| e.contains("in use by another")));
        drop(first);
        assert!(DirLock::acquire(dir.path()).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_new_state_directory_and_lock_file_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = root.path().join("state");
        let _lock = DirLock::acquire(&dir);
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("sidecar.lock")), 0o600);
    }
}
