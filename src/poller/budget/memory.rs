//! The budget's memory: the wall-clock times of an app's recent calls, in
//! a small file of the state directory, so a process started right after
//! another (a crash, a kill -9, a rolling update) does not spend calls its
//! predecessor already spent in the API's window.
//!
//! Holds the calls of the last period only. Written on a blocking thread
//! (the call waits for it), never on the async runtime; not fsynced (a
//! process crash keeps the page cache; only a power loss forgets, and that
//! risks one 429 at most). The file stays open between writes.
//!
//! A write reserves the next few calls: the file says that up to a tenth
//! of the limit more (1 to [`RESERVE_CALLS`]) may follow the ones it
//! lists, none after a time a few seconds ahead, and the calls it covers are made without
//! writing (a write and two thread hand-offs per call were a third of an
//! idle poll's CPU). A process that starts after a crash counts the
//! reserved calls as made at the reserve's end (or at its own start, if
//! earlier): it may wait for a few calls its predecessor never made, never
//! spend one it did. A process that stops cleanly writes its exact calls
//! ([`Memory::release`]).

use std::collections::VecDeque;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::metrics::lock;

/// Calls remembered: enough for any limit the config allows.
const KEPT: usize = 10_000;

/// Calls a write reserves at most, and how far ahead at most.
const RESERVE_CALLS: usize = 16;
const RESERVE_AHEAD: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
struct File {
    app: String,
    calls_unix_ms: Vec<i64>,
    /// Calls that may follow `calls_unix_ms` without another write...
    #[serde(default)]
    reserved: u32,
    /// ...none later than this.
    #[serde(default)]
    reserved_until_unix_ms: i64,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    app: String,
    calls: Mutex<Calls>,
    written: Mutex<Written>,
    next_seq: Mutex<u64>,
}

#[derive(Debug, Default)]
struct Calls {
    times: VecDeque<i64>,
    /// Calls the file still covers without a write, and until when.
    reserved: usize,
    reserved_until_ms: i64,
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
    /// Calls a write reserves (a tenth of the limit, 1 to
    /// [`RESERVE_CALLS`]), for at most `reserve_ms`.
    reserve: usize,
    reserve_ms: i64,
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
        let kept = KEPT.min(limit.max(1));
        let now = crate::timefmt::system_millis(SystemTime::now());
        let times = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<File>(&b).ok())
            .filter(|f| f.app == app)
            .map(|f| {
                // Reserved calls count as made at the reserve's end, or
                // now if that is later than now: never earlier than made.
                let reserved = (f.reserved as usize).min(kept);
                let at = f.reserved_until_unix_ms.min(now);
                let mut calls = f.calls_unix_ms;
                calls.extend(std::iter::repeat_n(at, reserved));
                calls.into_iter().rev().take(kept).rev().collect()
            })
            .unwrap_or_default();
        let reserve = (limit / 10).clamp(1, RESERVE_CALLS);
        Self {
            shared: Arc::new(Shared {
                path,
                app: app.to_string(),
                calls: Mutex::new(Calls { times, ..Calls::default() }),
                written: Mutex::new(Written::default()),
                next_seq: Mutex::new(0),
            }),
            limit: limit.max(1),
            keep_ms: i64::MAX,
            reserve,
            reserve_ms: RESERVE_AHEAD.as_millis() as i64,
        }
    }

    /// Forgets calls older than `period` from now on, and reserves calls
    /// for at most a sixth of it.
    pub(crate) fn keeping(mut self, period: Duration) -> Self {
        self.keep_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
        self.reserve_ms = (self.keep_ms / 6).clamp(1, RESERVE_AHEAD.as_millis() as i64);
        self
    }

    /// How long ago each remembered call within the last `period` was, oldest first.
    pub(crate) fn recent_calls(&self, period: Duration) -> Vec<Duration> {
        let now = crate::timefmt::system_millis(SystemTime::now());
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
        let mut out: Vec<Duration> = lock(&self.shared.calls)
            .times
            .iter()
            .filter(|t| now - **t < period_ms)
            .map(|t| Duration::from_millis(u64::try_from(now - *t).unwrap_or(0)))
            .collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// Remembers a call about to be made. When an earlier write reserved
    /// it, that is all; otherwise the file is written on a blocking thread
    /// with the calls so far and a reserve for the next ones, and the
    /// handle ends once it is written (the caller waits for it before
    /// making the call). `None` when no write is needed, or outside a
    /// runtime (written already).
    pub fn record(&self, _at: tokio::time::Instant) -> Option<tokio::task::JoinHandle<()>> {
        let now = crate::timefmt::system_millis(SystemTime::now());
        let file = {
            let mut calls = lock(&self.shared.calls);
            calls.times.push_back(now);
            while calls.times.len() > self.limit.min(KEPT)
                || calls.times.front().is_some_and(|t| now - *t >= self.keep_ms)
            {
                calls.times.pop_front();
            }
            if calls.reserved > 0 && now <= calls.reserved_until_ms {
                calls.reserved -= 1;
                return None;
            }
            calls.reserved = self.reserve;
            calls.reserved_until_ms = now.saturating_add(self.reserve_ms);
            self.shared.snapshot(&calls)
        };
        let seq = self.shared.next_seq();
        let shared = self.shared.clone();
        let write = move || {
            if !shared.write(seq, &file) {
                // Not on disk: the next call writes again.
                lock(&shared.calls).reserved = 0;
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

    /// Writes the calls made, without a reserve, when a reserve is still
    /// on file (a clean stop: the next process counts exactly these).
    /// Blocking; also done when the last handle on the memory is dropped.
    pub fn release(&self) {
        self.shared.release();
    }
}

impl Shared {
    /// The file for `calls`: the calls made and the reserve on them.
    fn snapshot(&self, calls: &Calls) -> File {
        File {
            app: self.app.clone(),
            calls_unix_ms: calls.times.iter().copied().collect(),
            reserved: u32::try_from(calls.reserved).unwrap_or(u32::MAX),
            reserved_until_unix_ms: calls.reserved_until_ms,
        }
    }

    fn next_seq(&self) -> u64 {
        let mut s = lock(&self.next_seq);
        *s += 1;
        *s
    }

    /// Writes `file` unless a newer snapshot is on disk already. False
    /// when the write failed.
    fn write(&self, seq: u64, file: &File) -> bool {
        let mut written = lock(&self.written);
        if seq <= written.seq {
            return true;
        }
        match write_file(&self.path, &mut written.file, file) {
            Ok(()) => {
                written.seq = seq;
                true
            }
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "budget memory not written");
                false
            }
        }
    }

    fn release(&self) {
        let file = {
            let mut calls = lock(&self.calls);
            if calls.reserved_until_ms == 0 {
                return;
            }
            calls.reserved = 0;
            calls.reserved_until_ms = 0;
            self.snapshot(&calls)
        };
        let seq = self.next_seq();
        self.write(seq, &file);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.release();
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
        let seen = Memory::open(dir.path(), "app-1", 30).recent_calls(Duration::from_secs(60));
        assert_eq!(seen.len(), 4, "the call and the three it reserved");
        // Another process wrote a longer text meanwhile: the file kept open
        // is padded to its length now, not to the one it had.
        std::fs::write(&p, vec![b'x'; 8192]).unwrap();
        m.release();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 8192);
        let file: File = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((file.calls_unix_ms.len(), file.reserved), (1, 0));
    }

    fn on_disk(dir: &Path, app: &str) -> File {
        serde_json::from_slice(&std::fs::read(path(dir, app)).unwrap()).unwrap()
    }

    #[test]
    fn a_write_reserves_the_next_calls() {
        let dir = tempfile::tempdir().unwrap();
        // A limit of 30 reserves 3 calls for at most 10 s.
        let m = Memory::open(dir.path(), "app-1", 30).keeping(Duration::from_secs(60));
        assert_eq!((m.reserve, m.reserve_ms), (3, 10_000));
        m.record(tokio::time::Instant::now());
        let first = on_disk(dir.path(), "app-1");
        assert_eq!((first.calls_unix_ms.len(), first.reserved), (1, 3));
        let now = crate::timefmt::system_millis(SystemTime::now());
        assert!((now..=now + 10_000).contains(&first.reserved_until_unix_ms));
        for _ in 0..3 {
            m.record(tokio::time::Instant::now());
        }
        let covered = on_disk(dir.path(), "app-1");
        assert_eq!((covered.calls_unix_ms.len(), covered.reserved), (1, 3), "the reserve covered them: no write");
        m.record(tokio::time::Instant::now());
        let next = on_disk(dir.path(), "app-1");
        assert_eq!(
            (next.calls_unix_ms.len(), next.reserved),
            (5, 3),
            "the fifth call writes all five and a new reserve"
        );
    }

    #[test]
    fn a_reserve_runs_out_with_its_time() {
        let dir = tempfile::tempdir().unwrap();
        // A 60 ms period reserves for 10 ms.
        let m = Memory::open(dir.path(), "app-1", 30).keeping(Duration::from_millis(60));
        m.record(tokio::time::Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        m.record(tokio::time::Instant::now());
        assert_eq!(on_disk(dir.path(), "app-1").calls_unix_ms.len(), 2, "the reserve had ended: written");
    }

    #[test]
    fn a_crash_leaves_the_reserved_calls_counted_and_a_clean_stop_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let m = Memory::open(dir.path(), "app-1", 30).keeping(Duration::from_secs(60));
        m.record(tokio::time::Instant::now());
        m.record(tokio::time::Instant::now());
        // A kill -9 now: the file lists one call and reserves three; the
        // next process counts four (it cannot know the second was the only
        // other one), none of them older than the reserve's end or now.
        let after_crash = Memory::open(dir.path(), "app-1", 30).recent_calls(Duration::from_secs(60));
        assert_eq!(after_crash.len(), 4);
        assert!(after_crash.iter().skip(1).all(|ago| *ago < Duration::from_secs(1)));
        // At most the limit, however large the reserve on file.
        let mut big = on_disk(dir.path(), "app-1");
        big.reserved = 1_000;
        std::fs::write(path(dir.path(), "app-1"), serde_json::to_vec(&big).unwrap()).unwrap();
        assert_eq!(Memory::open(dir.path(), "app-1", 30).recent_calls(Duration::from_secs(60)).len(), 30);
        // A clean stop writes the two calls made, and no reserve.
        m.release();
        let released = on_disk(dir.path(), "app-1");
        assert_eq!((released.calls_unix_ms.len(), released.reserved, released.reserved_until_unix_ms), (2, 0, 0));
        assert_eq!(Memory::open(dir.path(), "app-1", 30).recent_calls(Duration::from_secs(60)).len(), 2);
        // Dropping the last handle releases too.
        m.record(tokio::time::Instant::now());
        assert_eq!(on_disk(dir.path(), "app-1").reserved, 3);
        drop(m);
        assert_eq!(on_disk(dir.path(), "app-1").reserved, 0);
        // A file without a reserve (an older version's) reads as before.
        std::fs::write(path(dir.path(), "app-1"), br#"{"app":"app-1","calls_unix_ms":[1,2]}"#).unwrap();
        assert!(Memory::open(dir.path(), "app-1", 30).recent_calls(Duration::from_secs(60)).is_empty(), "old calls");
    }

    #[test]
    fn a_broken_file_is_an_empty_memory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path(), "a"), b"{not json").unwrap();
        assert!(Memory::open(dir.path(), "a", 30).recent_calls(Duration::from_secs(60)).is_empty());
    }
}
