//! File primitives of the state directory: private modes, atomic
//! replacement, durable directory entries.
//!
//! Checkpoints reveal which apps are polled and how far; the directory is
//! created 0700 and every file 0600 (on Unix; elsewhere the platform's
//! defaults apply). Existing directories keep the modes their owner gave them.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Creates `dir` and its missing parents, private to the owner.
pub(super) fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Options for a new file readable and writable by the owner only.
pub(super) fn private() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// Opens with `opts`; when the directory is missing, creates it and tries
/// once more. Saves a `mkdir` on every write of the hot path.
pub(super) fn open_in(dir: &Path, path: &Path, opts: &OpenOptions) -> io::Result<File> {
    match opts.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_dir(dir)?;
            opts.open(path)
        }
        other => other,
    }
}

/// Makes a rename or a new name in `dir` durable. Not every platform lets
/// a directory be opened or synced; there the rename is as durable as the
/// platform makes it.
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Replaces `path` with what `fill` writes: a temporary file `tmp` in the
/// same directory, fsync, rename over `path`, fsync of the directory. A
/// crash at any point leaves either the old file or the new one whole.
pub(super) fn replace(
    dir: &Path,
    path: &Path,
    tmp: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    replace_file(dir, path, tmp, fill)?;
    sync_dir(dir);
    Ok(())
}

/// [`replace`] whose rename over an existing file is left for the next
/// directory fsync (a new name is synced at once). Until then, a power
/// loss (not a process crash: the kernel has the rename) can bring back
/// the file as it was before: for the small checkpoint file that means a
/// page read again, whose records the journal recognises. Whoever drops
/// state the older file still needs (journal compaction) syncs the
/// directory first.
pub(super) fn replace_lazy(
    dir: &Path,
    path: &Path,
    tmp: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    let existed = path.exists();
    replace_file(dir, path, tmp, fill)?;
    if !existed {
        sync_dir(dir);
    }
    Ok(())
}

fn replace_file(
    dir: &Path,
    path: &Path,
    tmp: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    let file = open_in(dir, tmp, private().write(true).create(true).truncate(true))?;
    {
        let mut w = BufWriter::with_capacity(64 * 1024, &file);
        fill(&mut w)?;
        w.flush()?;
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)
}

/// Removes `path`; a file already gone is not an error.
pub(super) fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn new_directories_and_files_are_private() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = root.path().join("a/state");
        let path = dir.join("f");
        replace(&dir, &path, &dir.join("f.tmp"), |w| w.write_all(b"x")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&path).unwrap_or_default(), b"x");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert!(!dir.join("f.tmp").exists());
        assert!(remove(&path).is_ok());
        assert!(remove(&path).is_ok(), "already gone");
    }
}
/// Creates `dir` (and any missing parent) for the owner only (0700), when
/// it does not exist yet: checkpoints and dead letters hold whole records.
/// A directory that exists keeps the mode its owner gave it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens a state file with `options`, created 0600 whatever the umask; a
/// file already there from an earlier version is narrowed to 0600 as well
/// (best effort: it may belong to someone else).
pub fn open_private(path: &Path, options: &mut std::fs::OpenOptions) -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if file.metadata().is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        }
    }
    Ok(file)
}
