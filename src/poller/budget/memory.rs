//! The budget's memory: the wall-clock times of an app's recent calls, in
//! a small file of the state directory, so a process started right after
//! another (a crash, a kill -9, a rolling update) does not spend calls its
//! predecessor already spent in the API's window.
//!
//! Holds the calls of the last period only. Written before every call on
//! a blocking thread (the call waits for it), never on the async runtime;
//! not fsynced (a process crash keeps the page cache; only a power loss
//! forgets, and that risks one 429 at most). The file stays open between
//! writes.

use std::collections::VecDeque;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::metrics::lock;

/// Calls remembered: enough for any limit the config allows.
const KEPT: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
struct File {
    app: String,
    calls_unix_ms: Vec<i64>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    app: String,
    calls: Mutex<VecDeque<i64>>,
    written: Mutex<Written>,
    next_seq: Mutex<u64>,
}

/// The file as this process last wrote it.
#[derive(Debug, Default)]
struct Written {
    /// Sequence of the newest snapshot on disk: an older one never overwrites it.
    seq: u64,
    /// Kept open between writes (dropped after a failure, so the next
    /// write opens the file afresh).
    file: Option<std::fs::File>,
}

#[derive(Debug, Clone)]
pub(crate) struct Memory {
    shared: Arc<Shared>,
    limit: usize,
    /// Calls older than this are forgotten (the budget's period): the file
    /// stays as small as the calls that still count.
    keep_ms: i64,
}

/// The file of an app's memory in `dir`.
pub fn path(dir: &Path, app: &str) -> PathBuf {
    let stem: String =
        app.chars().map(|c| if c.is_ascii_alphanumeric() || "-_".contains(c) { c } else { '_' }).collect();
    let hash = crate::fingerprint::hash_bytes(app.as_bytes());
    dir.join(format!("budget-{stem}-{:08x}.json", hash as u32))
}

impl Memory {
    /// Loads what the file remembers (nothing when it is missing or unreadable).
    pub fn open(dir: &Path, app: &str, limit: usize) -> Self {
        let path = path(dir, app);
        let calls = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<File>(&b).ok())
            .filter(|f| f.app == app)
            .map(|f| f.calls_unix_ms.into_iter().rev().take(KEPT.min(limit.max(1))).rev().collect())
            .unwrap_or_default();
        Self {
            shared: Arc::new(Shared {
                path,
                app: app.to_string(),
                calls: Mutex::new(calls),
                written: Mutex::new(Written::default()),
                next_seq: Mutex::new(0),
            }),
            limit: limit.max(1),
            keep_ms: i64::MAX,
        }
    }

    /// Forgets calls older than `period` from now on.
    pub(crate) fn keeping(mut self, period: Duration) -> Self {
        self.keep_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
        self
    }

    /// How long ago each remembered call within the last `period` was, oldest first.
    pub(crate) fn recent_calls(&self, period: Duration) -> Vec<Duration> {
        let now = crate::timefmt::system_millis(SystemTime::now());
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
        let mut out: Vec<Duration> = lock(&self.shared.calls)
            .iter()
            .filter(|t| now - **t < period_ms)
            .map(|t| Duration::from_millis(u64::try_from(now - *t).unwrap_or(0)))
            .collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// Remembers a call about to be made and writes the file on a blocking
    /// thread; the handle ends once it is written (the caller waits for it
    /// before making the call). `None` outside a runtime: written already.
    pub fn record(&self, _at: tokio::time::Instant) -> Option<tokio::task::JoinHandle<()>> {
        let now = crate::timefmt::system_millis(SystemTime::now());
        let snapshot: Vec<i64> = {
            let mut calls = lock(&self.shared.calls);
            calls.push_back(now);
            while calls.len() > self.limit.min(KEPT) || calls.front().is_some_and(|t| now - *t >= self.keep_ms) {
                calls.pop_front();
            }
            calls.iter().copied().collect()
        };
        let seq = {
            let mut s = lock(&self.shared.next_seq);
            *s += 1;
            *s
        };
        let shared = self.shared.clone();
        let write = move || {
            let mut written = lock(&shared.written);
            if seq <= written.seq {
                return;
            }
            let file = File { app: shared.app.clone(), calls_unix_ms: snapshot };
            match write_file(&shared.path, &mut written.file, &file) {
                Ok(()) => written.seq = seq,
                Err(e) => tracing::debug!(path = %shared.path.display(), error = %e, "budget memory not written"),
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => Some(h.spawn_blocking(write)),
            Err(_) => {
                write();
                None
            }
        }
    }
}

/// Overwrites the file in place, in one write from its start: no new
/// file, no rename (this runs before every call), and the file stays open
/// in `open` between writes. A shorter text is padded with blanks to the
/// file's length (read each time: a command of this tool may have written
/// it meanwhile), which JSON ignores, so no truncation can leave a stale
/// tail; the file is as long as the most calls it held within one period.
fn write_file(path: &Path, open: &mut Option<std::fs::File>, file: &File) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(file).map_err(std::io::Error::other)?;
    let mut f = match open.take() {
        Some(kept) => kept,
        None => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            opts.open(path)?
        }
    };
    let old = f.metadata()?.len();
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) < old {
        bytes.resize(usize::try_from(old).unwrap_or(bytes.len()), b' ');
    }
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&bytes)?;
    *open = Some(f);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_calls_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let m = Memory::open(dir.path(), "app-1", 30);
        for _ in 0..40 {
            m.record(tokio::time::Instant::now());
        }
        let again = Memory::open(dir.path(), "app-1", 30);
        let recent = again.recent_calls(Duration::from_secs(60));
        assert_eq!(recent.len(), 30, "the last `limit` calls");
        assert!(recent.iter().all(|d| *d < Duration::from_secs(60)));
        assert!(Memory::open(dir.path(), "app-2", 30).recent_calls(Duration::from_secs(60)).is_empty());
        assert!(again.recent_calls(Duration::ZERO).is_empty(), "nothing older than the period counts");
    }

    #[test]
    fn calls_older_than_the_period_leave_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = Memory::open(dir.path(), "app-1", 10_000).keeping(Duration::from_millis(50));
        for _ in 0..5 {
            m.record(tokio::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(80));
        m.record(tokio::time::Instant::now());
        let file: File = serde_json::from_slice(&std::fs::read(path(dir.path(), "app-1")).unwrap()).unwrap();
        assert_eq!(file.calls_unix_ms.len(), 1, "only the call within the period is kept");
    }

    #[test]
    fn a_shorter_memory_overwrites_a_longer_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "app-1");
        std::fs::write(&p, vec![b'x'; 4096]).unwrap();
        let m = Memory::open(dir.path(), "app-1", 30);
        m.record(tokio::time::Instant::now());
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 4096, "padded, never truncated");
        let file: File = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(file.calls_unix_ms.len(), 1);
        assert_eq!(Memory::open(dir.path(), "app-1", 30).recent_calls(Duration::from_secs(60)).len(), 1);
        // Another process wrote a longer text meanwhile: the file kept open
        // is padded to its length now, not to the one it had.
        std::fs::write(&p, vec![b'x'; 8192]).unwrap();
        m.record(tokio::time::Instant::now());
        let file: File = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(file.calls_unix_ms.len(), 2);
    }

    #[test]
    fn a_broken_file_is_an_empty_memory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path(), "a"), b"{not json").unwrap();
        assert!(Memory::open(dir.path(), "a", 30).recent_calls(Duration::from_secs(60)).is_empty());
    }
}
