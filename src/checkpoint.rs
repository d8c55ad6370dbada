//! Checkpoints: a source's progress, one small versioned JSON file each.
//!
//! Written after every acknowledged page and never before (DESIGN.md 1
//! and 7), atomically: a temporary file in the same directory, fsync,
//! rename, fsync of the directory. A missing file is a first start; a
//! corrupt one is moved aside and reported; a file written for another
//! query (the source's filters changed) is not resumed.
//!
//! Besides the two marks (`w`, `w2`, see [`crate::poller::window`]) and the
//! page in progress (window, site group, cursor), the file keeps the
//! fingerprints of records delivered at or after `w2`, bucketed by minute,
//! so the second pass (and a window restarted after a crash) can drop
//! records already delivered.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::poller::window::Pass;

pub const VERSION: u32 = 1;
const MINUTE_NS: i64 = 60_000_000_000;

/// The page a source is in the middle of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub pass: Pass,
    pub start_ms: i64,
    pub end_ms: i64,
    pub complete: bool,
    /// Index of the site group (groups of at most 50 sites).
    pub group: usize,
    /// Cursor of the next page of this group; `None` for its first page.
    pub cursor: Option<String>,
    /// Pages read so far in this group.
    pub pages: u32,
}

/// Fingerprints of delivered records, by the minute of their timestamp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprints {
    by_minute: BTreeMap<i64, HashSet<u64>>,
    len: usize,
}

impl Fingerprints {
    fn bucket(ts_ns: i64) -> i64 {
        ts_ns.div_euclid(MINUTE_NS)
    }

    pub fn contains(&self, ts_ns: i64, fp: u64) -> bool {
        self.by_minute.get(&Self::bucket(ts_ns)).is_some_and(|s| s.contains(&fp))
    }

    pub fn insert(&mut self, ts_ns: i64, fp: u64) {
        if self.by_minute.entry(Self::bucket(ts_ns)).or_default().insert(fp) {
            self.len += 1;
        }
    }

    /// Adds every fingerprint of `other`.
    pub fn extend(&mut self, other: Fingerprints) {
        for (minute, set) in other.by_minute {
            let mine = self.by_minute.entry(minute).or_default();
            for fp in set {
                if mine.insert(fp) {
                    self.len += 1;
                }
            }
        }
    }

    /// Drops the buckets wholly before `ms`.
    pub fn prune_before(&mut self, ms: i64) {
        let keep_from = Self::bucket(ms.saturating_mul(1_000_000));
        let kept = self.by_minute.split_off(&keep_from);
        self.by_minute = kept;
        self.len = self.by_minute.values().map(HashSet::len).sum();
    }

    /// Drops the oldest buckets until at most `max` remain. Returns how many went.
    pub fn cap(&mut self, max: usize) -> usize {
        let mut dropped = 0;
        while self.len > max {
            let Some((_, set)) = self.by_minute.pop_first() else { break };
            self.len -= set.len();
            dropped += set.len();
        }
        dropped
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Serialize for Fingerprints {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let packed: BTreeMap<String, String> = self
            .by_minute
            .iter()
            .map(|(minute, set)| {
                let mut v: Vec<u64> = set.iter().copied().collect();
                v.sort_unstable();
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                (minute.to_string(), STANDARD.encode(bytes))
            })
            .collect();
        packed.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Fingerprints {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let packed = BTreeMap::<String, String>::deserialize(d)?;
        let mut out = Fingerprints::default();
        for (minute, b64) in packed {
            let minute: i64 = minute.parse().map_err(D::Error::custom)?;
            let bytes = STANDARD.decode(b64).map_err(D::Error::custom)?;
            if bytes.len() % 8 != 0 {
                return Err(D::Error::custom("fingerprint bucket is not a whole number of u64"));
            }
            let set: HashSet<u64> = bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            out.len += set.len();
            out.by_minute.insert(minute, set);
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    pub source: String,
    /// [`crate::config::SourceConfig::query_key`] of the query this progress belongs to.
    pub query_key: String,
    pub watermark_ms: i64,
    pub late_watermark_ms: i64,
    pub current: Option<Progress>,
    pub fingerprints: Fingerprints,
    /// Seconds of history lost to the API's 14-day limit, ever.
    pub gap_seconds_total: u64,
}

impl Checkpoint {
    pub fn fresh(source: &str, query_key: &str, start_ms: i64) -> Self {
        Self {
            version: VERSION,
            source: source.to_string(),
            query_key: query_key.to_string(),
            watermark_ms: start_ms,
            late_watermark_ms: start_ms,
            current: None,
            fingerprints: Fingerprints::default(),
            gap_seconds_total: 0,
        }
    }
}

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
    Resumed(Checkpoint),
    Missing,
    /// The file was written for another query; starting afresh.
    QueryChanged,
    /// Unreadable or corrupt; moved to the given path.
    MovedAside {
        to: PathBuf,
        reason: String,
    },
}

/// Checkpoint files of one state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// A file name from a source name: letters, digits, `-`, `_` and `.` kept.
fn file_stem(source: &str) -> String {
    let stem: String =
        source.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let hash = crate::fingerprint::hash_bytes(source.as_bytes());
    format!("{stem}-{:08x}", hash as u32)
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    pub fn path(&self, source: &str) -> PathBuf {
        self.dir.join(format!("{}.checkpoint.json", file_stem(source)))
    }

    pub fn load(&self, source: &str, query_key: &str) -> Loaded {
        let path = self.path(source);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
            Err(e) => return self.move_aside(&path, format!("unreadable: {e}")),
        };
        match serde_json::from_slice::<Checkpoint>(&text) {
            Ok(cp) if cp.version != VERSION => self.move_aside(&path, format!("unknown version {}", cp.version)),
            Ok(cp) if cp.query_key != query_key => Loaded::QueryChanged,
            Ok(cp) if cp.late_watermark_ms > cp.watermark_ms => {
                self.move_aside(&path, "inconsistent marks (late watermark after watermark)".into())
            }
            Ok(cp) => Loaded::Resumed(cp),
            Err(e) => self.move_aside(&path, format!("corrupt: {e}")),
        }
    }

    fn move_aside(&self, path: &Path, reason: String) -> Loaded {
        let stamp = crate::timefmt::system_millis(std::time::SystemTime::now());
        let to = path.with_extension(format!("json.corrupt-{stamp}"));
        match std::fs::rename(path, &to) {
            Ok(()) => Loaded::MovedAside { to, reason },
            Err(e) => {
                Loaded::MovedAside { to: path.to_path_buf(), reason: format!("{reason}; could not move it aside: {e}") }
            }
        }
    }

    /// Writes atomically and durably.
    pub fn save(&self, cp: &Checkpoint) -> Result<(), CheckpointError> {
        let path = self.path(&cp.source);
        let err = |source| CheckpointError::Write { path: path.clone(), source };
        let bytes = serde_json::to_vec(cp)?;
        create_private_dir(&self.dir).map_err(err)?;
        let tmp = path.with_extension("json.tmp");
        {
            let mut f =
                open_private(&tmp, std::fs::OpenOptions::new().write(true).create(true).truncate(true)).map_err(err)?;
            f.write_all(&bytes).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &path).map_err(err)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            // Makes the rename itself durable; not every platform allows it.
            let _ = d.sync_all();
        }
        Ok(())
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

/// An exclusive lock on a state directory: two processes must never poll
/// the same sources (DESIGN.md 12).
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<Self, String> {
        create_private_dir(dir).map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
        let path = dir.join("sidecar.lock");
        let file = open_private(&path, std::fs::OpenOptions::new().create(true).truncate(false).write(true))
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

    fn sample() -> Checkpoint {
        let mut cp = Checkpoint::fresh("prod / eu", "q1", 1_000);
        cp.current = Some(Progress {
            pass: Pass::Late,
            start_ms: 1_000,
            end_ms: 2_000,
            complete: true,
            group: 1,
            cursor: Some("abc".into()),
            pages: 3,
        });
        cp.fingerprints.insert(1_500_000_000, 7);
        cp.fingerprints.insert(61_000_000_000, 8);
        cp.fingerprints.insert(61_000_000_001, 8);
        cp
    }

    #[test]
    fn round_trips_and_resumes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::new(dir.path());
        assert!(matches!(store.load("prod / eu", "q1"), Loaded::Missing));
        let cp = sample();
        assert_eq!(cp.fingerprints.len(), 2);
        store.save(&cp).unwrap_or_else(|e| panic!("{e}"));
        match store.load("prod / eu", "q1") {
            Loaded::Resumed(back) => assert_eq!(back, cp),
            other => panic!("{other:?}"),
        }
        assert!(matches!(store.load("prod / eu", "q2"), Loaded::QueryChanged));
        assert!(store.path("prod / eu").file_name().is_some_and(|n| n.to_string_lossy().starts_with("prod___eu-")));
    }

    #[test]
    fn corrupt_files_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::new(dir.path());
        for garbage in [&b"{\"version\":1,\"sour"[..], b"\x00\x01garbage", b"", b"{\"version\":99}"] {
            let _ = std::fs::write(store.path("s"), garbage);
            match store.load("s", "q") {
                Loaded::MovedAside { to, reason } => {
                    assert!(to.exists(), "{reason}");
                    assert!(!store.path("s").exists());
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn fingerprints_prune_and_cap() {
        let mut f = Fingerprints::default();
        for m in 0..10i64 {
            for k in 0..5u64 {
                f.insert(m * MINUTE_NS + 1, (m as u64) * 100 + k);
            }
        }
        assert_eq!(f.len(), 50);
        assert!(f.contains(3 * MINUTE_NS + 59, 301));
        f.prune_before(3 * 60_000 + 30_000);
        assert_eq!(f.len(), 35, "the bucket holding the cut is kept");
        assert!(f.contains(3 * MINUTE_NS, 301));
        assert!(!f.contains(2 * MINUTE_NS, 201));
        assert_eq!(f.cap(20), 15);
        assert_eq!(f.len(), 20);
    }

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
}
