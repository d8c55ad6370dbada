//! Checkpoints: a source's progress, in two files per source.
//!
//! - The small file (`<source>-<hash>.checkpoint.json`, [`Checkpoint`]):
//!   the two marks (W, W2; DESIGN.md 5 and 6), the page in progress
//!   (window, site group, cursor) and the counters that must survive
//!   restarts. Versioned JSON, rewritten whole, atomically: a temporary
//!   file, fsync, rename, fsync of the directory.
//! - The journal (`<source>-<hash>.checkpoint.journal`, [`journal`]): the
//!   delivered counts ([`Delivered`]) of the stretches the second pass has
//!   yet to read, as checksummed entries appended per accepted request and
//!   fsynced before the small file moves the marks past them. A page
//!   writes its own entries, never the whole set, so the cost of a
//!   checkpoint follows the page, not the horizon (DESIGN.md 7). Once
//!   dead entries outweigh live ones, [`Store::compact`] rewrites it.
//!
//! Order of writes, and what a crash at each point costs:
//! 1. A request is accepted by the backend; its counts are appended to the
//!    journal (one write) before the page's next request is sent (the
//!    page's last request: in the same blocking call as step 2, before
//!    it, [`Store::save_page`]). A crash of the process before that write:
//!    the records of that request are delivered again (at most one page);
//!    after it, the entries are the kernel's and survive the process. A
//!    torn entry at the journal's end is cut off on load.
//! 2. After the page, the small file moves the marks and cursor: the
//!    journal is fsynced first (so the marks on disk never pass counts
//!    that are not), then the small file is written (its data fsynced,
//!    then renamed; the directory is synced lazily). The poller writes it
//!    after a page at most every few seconds, and always when an error
//!    moved the progress, a counter moved or the source stops. A crash
//!    before the rename: the pages since the last write are read again,
//!    and their records are recognised by their counts and not sent
//!    twice. A power loss (not a process crash) can take the entries and
//!    the small file written since the last fsync: those few seconds of
//!    pages are read again and delivered a second time, never skipped.
//! 3. After W2 moves, the journal may be compacted: the directory is
//!    synced (the small file that moved W2 is the one kept), then the
//!    journal rewritten (temporary file, fsync, rename). A crash leaves the
//!    old journal or the new one, whole.
//!
//! Loading never throws progress away: a file that cannot be read right
//! now is an error to retry ([`LoadError::Unreadable`]); a file from a
//! newer version is refused and left alone ([`LoadError::Newer`]); version
//! 1 files (fingerprints inline) are migrated; only a file that is not a
//! checkpoint at all is moved aside. Changed filters are reported, with
//! the marks kept. A journal without its small file belongs to no
//! progress and is moved aside, so a missing checkpoint means a clean start.
//!
//! All calls for one source must come from one task at a time; the
//! methods block (file I/O, fsync) and belong on a blocking thread.

mod delivered;
mod files;
mod inspect;
mod journal;
mod legacy;
mod lock;
mod marks;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use crate::progress::{Pass, Progress, Window};
pub use delivered::{Delivered, FingerprintHasher};
pub use files::{create_private_dir, open_private};
pub use inspect::{Marks, Stored};
pub use journal::ENTRY_LEN;
pub use lock::DirLock;
pub use marks::{Checkpoint, VERSION};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoint {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot encode checkpoint: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    Missing,
    /// `query_changed`: written for other filters; `cp` is returned as
    /// stored (its old `query_key` included) and the caller keeps the
    /// marks (DESIGN.md 7). `migrated_from`: the older version converted.
    Resumed {
        cp: Checkpoint,
        delivered: Delivered,
        query_changed: bool,
        migrated_from: Option<u32>,
    },
    /// Corrupt (not parseable at all): moved aside to `to`; the caller
    /// starts afresh and reports it.
    MovedAside {
        to: PathBuf,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Could not be read (or repaired) right now: nothing moved; retry later.
    #[error("cannot read checkpoint {path} (left as it is; retrying): {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// Written by a newer version: refused, nothing touched.
    #[error(
        "checkpoint {path} was written by a newer forge-otel-sidecar ({detail}); it is left untouched and this source waits: run the newer version, or start the source afresh with `reset`"
    )]
    Newer { path: PathBuf, detail: String },
}

/// Checkpoint files of one state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// Each journal this process appended to (shared by clones).
    journals: Arc<Mutex<HashMap<PathBuf, Arc<Mutex<JournalState>>>>>,
}

/// A journal as this process left it.
#[derive(Debug, Default)]
struct JournalState {
    /// Kept open from the last append; dropped whenever the file is
    /// replaced, repaired or removed.
    open: Option<journal::Open>,
    /// Appended to since its last fsync.
    unsynced: bool,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A file name from a source name: letters, digits, `-`, `_` and `.` kept.
fn file_stem(source: &str) -> String {
    let stem: String =
        source.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let hash = crate::fingerprint::hash_bytes(source.as_bytes());
    format!("{stem}-{:08x}", hash as u32)
}

/// `path` with `.corrupt-<now in ms>` (or another tag) appended, and a
/// counter when that name is taken, so nothing set aside is overwritten.
fn aside_name(path: &Path, tag: &str) -> PathBuf {
    let stamp = crate::timefmt::system_millis(std::time::SystemTime::now());
    let named = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(if n == 0 { format!(".{tag}-{stamp}") } else { format!(".{tag}-{stamp}-{n}") });
        PathBuf::from(name)
    };
    (0..1000).map(named).find(|p| !p.exists()).unwrap_or_else(|| named(1000))
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), journals: Default::default() }
    }

    /// The small file.
    pub fn path(&self, source: &str) -> PathBuf {
        self.dir.join(format!("{}.checkpoint.json", file_stem(source)))
    }

    pub(crate) fn journal_path(&self, source: &str) -> PathBuf {
        self.dir.join(format!("{}.checkpoint.journal", file_stem(source)))
    }

    /// Reads a source's checkpoint and replays its journal (counts of
    /// stretches before W2 are dropped). Repairs what a crash can leave: a
    /// torn journal tail is cut off; a journal damaged in the middle is
    /// copied aside and rewritten with what came before the damage. A
    /// version 1 file's fingerprints are written to the journal here; the
    /// small file becomes version 2 on the next [`Store::save`] (a crash
    /// in between migrates again, harmlessly).
    pub fn load(&self, source: &str, query_key: &str) -> Result<Loaded, LoadError> {
        // What is read, repaired or moved here is the file on disk, and no
        // append of this process reaches it meanwhile.
        let state = self.journal(source);
        let mut state = locked(&state);
        state.open = None;
        let path = self.path(source);
        let unreadable = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LoadError::Unreadable { path, source }
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.orphan_journal(source).map_err(unreadable(&self.journal_path(source)))?;
                return Ok(Loaded::Missing);
            }
            Err(e) => return Err(unreadable(&path)(e)),
        };
        let (cp, legacy, migrated_from) = match marks::decode(&bytes) {
            marks::Decoded::Current(cp) => (cp, None, None),
            marks::Decoded::Migrated { cp, delivered, from } => (cp, Some(delivered), Some(from)),
            marks::Decoded::Newer(detail) => return Err(LoadError::Newer { path, detail }),
            marks::Decoded::Corrupt(reason) => return self.move_aside(source, &path, reason),
        };
        let mut delivered = self.replay(source)?;
        delivered.prune_before(cp.late_watermark_ms);
        if let Some(mut old) = legacy {
            old.prune_before(cp.late_watermark_ms);
            delivered.merge(&old);
            let jpath = self.journal_path(source);
            journal::rewrite(&self.dir, &jpath, &delivered).map_err(unreadable(&jpath))?;
        }
        let query_changed = cp.query_key != query_key;
        Ok(Loaded::Resumed { cp, delivered, query_changed, migrated_from })
    }

    /// Replays the journal, repairing what a crash left.
    fn replay(&self, source: &str) -> Result<Delivered, LoadError> {
        let path = self.journal_path(source);
        let unreadable = |source| LoadError::Unreadable { path: path.clone(), source };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Delivered::default()),
            Err(e) => return Err(unreadable(e)),
        };
        let r = match journal::replay(io::BufReader::with_capacity(64 * 1024, file)) {
            Ok(r) => r,
            Err(journal::ReplayError::Io(e)) => return Err(unreadable(e)),
            Err(journal::ReplayError::Newer(format)) => {
                let detail = format!("journal format {format}");
                return Err(LoadError::Newer { path, detail });
            }
        };
        match r.damage {
            None => {}
            Some(journal::Damage::TornTail { bytes }) => {
                tracing::warn!(journal = %path.display(), entries = r.entries, dropped_bytes = bytes, "journal ends in a torn entry (a crash while appending); cut off");
                journal::truncate(&path, r.valid_len).map_err(unreadable)?;
            }
            Some(damage) => {
                // Kept for inspection; the counts after the damage are lost,
                // which can only make records be delivered again.
                let to = aside_name(&path, "corrupt");
                std::fs::copy(&path, &to).map_err(unreadable)?;
                tracing::error!(journal = %path.display(), moved_to = %to.display(), entries = r.entries, ?damage, "journal damaged; replay stopped there, the rest copied aside");
                journal::rewrite(&self.dir, &path, &r.delivered).map_err(unreadable)?;
            }
        }
        Ok(r.delivered)
    }

    /// Moves aside a journal that has no small file beside it.
    fn orphan_journal(&self, source: &str) -> io::Result<()> {
        let path = self.journal_path(source);
        let to = aside_name(&path, "orphan");
        match std::fs::rename(&path, &to) {
            Ok(()) => {
                tracing::warn!(journal = %path.display(), moved_to = %to.display(), "journal without a checkpoint moved aside");
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn move_aside(&self, source: &str, path: &Path, reason: String) -> Result<Loaded, LoadError> {
        let to = aside_name(path, "corrupt");
        match std::fs::rename(path, &to) {
            Ok(()) => {
                // Its journal goes with it: the caller starts afresh.
                let _ = self.orphan_journal(source);
                Ok(Loaded::MovedAside { to, reason })
            }
            Err(source) => Err(LoadError::Unreadable { path: path.to_path_buf(), source }),
        }
    }

    /// Appends delivered counts (record time in ns, fingerprint, count
    /// after delivery) to the source's journal: written (a crash of the
    /// process keeps them), made durable by the next [`Store::save`] or
    /// [`Store::save_page`] of the source, before its small file.
    pub(crate) fn append(&self, source: &str, entries: &[(i64, u64, u32)]) -> Result<(), CheckpointError> {
        if entries.is_empty() {
            return Ok(());
        }
        let path = self.journal_path(source);
        let state = self.journal(source);
        let mut state = locked(&state);
        state.unsynced = true;
        journal::append_open(&self.dir, &path, &mut state.open, entries)
            .map(drop)
            .map_err(|source| CheckpointError::Write { path, source })
    }

    /// Closes the journal kept open for appends (the next append or sync
    /// opens it by its path).
    #[cfg(test)]
    pub(crate) fn close_journal(&self, source: &str) {
        locked(&self.journal(source)).open = None;
    }

    /// What this process knows of a source's journal, locked: one source's
    /// appends never wait for another's.
    fn journal(&self, source: &str) -> Arc<Mutex<JournalState>> {
        let path = self.journal_path(source);
        locked(&self.journals).entry(path).or_default().clone()
    }

    /// Fsyncs the source's journal if it was appended to since its last
    /// fsync: the marks a small file moves must never be on disk before
    /// the counts they rely on.
    fn sync_journal(&self, source: &str) -> Result<(), CheckpointError> {
        let state = self.journal(source);
        let mut state = locked(&state);
        if !state.unsynced {
            return Ok(());
        }
        let path = self.journal_path(source);
        let synced = match &state.open {
            Some(open) => open.sync(),
            None => journal::sync(&path),
        };
        synced.map_err(|source| CheckpointError::Write { path, source })?;
        state.unsynced = false;
        Ok(())
    }

    /// Writes the small file atomically and durably (temporary file, fsync,
    /// rename, directory fsync), always as [`VERSION`], after the
    /// journal's appends are synced.
    pub fn save(&self, cp: &Checkpoint) -> Result<(), CheckpointError> {
        self.sync_journal(&cp.source)?;
        self.write_small(cp, false)
    }

    /// A page's end in one call: appends the counts of its last request
    /// (if any) to the journal, fsyncs the journal, then rewrites the small
    /// file, fsynced, leaving the rename's directory fsync to the next one
    /// that is needed ([`files::replace_lazy`]: a power loss at worst
    /// brings the previous small file back, and the page is read again and
    /// recognised by the journal's counts). Safe to call again after an
    /// error: an entry states a count, and replay keeps the largest.
    pub(crate) fn save_page(&self, cp: &Checkpoint, entries: &[(i64, u64, u32)]) -> Result<(), CheckpointError> {
        self.append(&cp.source, entries)?;
        self.sync_journal(&cp.source)?;
        self.write_small(cp, true)
    }

    fn write_small(&self, cp: &Checkpoint, lazy: bool) -> Result<(), CheckpointError> {
        let path = self.path(&cp.source);
        let bytes = if cp.version == VERSION {
            serde_json::to_vec(cp)?
        } else {
            serde_json::to_vec(&Checkpoint { version: VERSION, ..cp.clone() })?
        };
        let tmp = path.with_extension("json.tmp");
        let fill = |w: &mut io::BufWriter<&std::fs::File>| w.write_all(&bytes);
        let written = if lazy {
            files::replace_lazy(&self.dir, &path, &tmp, fill)
        } else {
            files::replace(&self.dir, &path, &tmp, fill)
        };
        written.map_err(|source| CheckpointError::Write { path, source })
    }

    /// Rewrites the journal with exactly `live` when its dead entries have
    /// come to outweigh the live ones (and to at least 1 MiB); returns
    /// whether it did. Called after W2 moves, with the pruned counts.
    pub fn compact(&self, source: &str, live: &Delivered) -> Result<bool, CheckpointError> {
        let path = self.journal_path(source);
        let err = |source| CheckpointError::Write { path: path.clone(), source };
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(err(e)),
        };
        if !journal::should_compact(len, live.len()) {
            return Ok(false);
        }
        // The small file that moved W2 past the dropped counts must be the
        // one a power loss keeps (its renames are synced lazily).
        files::sync_dir(&self.dir);
        let state = self.journal(source);
        let mut state = locked(&state);
        state.open = None;
        journal::rewrite(&self.dir, &path, live).map_err(err)?;
        // The rewritten journal is synced whole; what the old one held
        // unsynced is in it (`live` holds every count appended).
        state.unsynced = false;
        Ok(true)
    }

    /// Deletes a source's checkpoint and journal (the `reset SOURCE`
    /// command). The journal goes first: a crash in between leaves marks
    /// without counts (records may come twice), never counts that would
    /// hold back a fresh start.
    pub fn reset(&self, source: &str) -> Result<(), CheckpointError> {
        let journal = self.journal_path(source);
        let state = self.journal(source);
        let mut state = locked(&state);
        (state.open, state.unsynced) = (None, false);
        let small = self.path(source);
        for path in [journal.with_extension("journal.tmp"), journal, small.with_extension("json.tmp"), small] {
            files::remove(&path).map_err(|source| CheckpointError::Write { path, source })?;
        }
        files::sync_dir(&self.dir);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
