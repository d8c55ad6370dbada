//! The dead-letter file: records a backend rejected for good.
//!
//! A permanent rejection (HTTP 400/413/500, gRPC INVALID_ARGUMENT, ...)
//! never succeeds on retry, yet dropping the records silently would break
//! the promise. They are appended here as JSON lines (OTLP/JSON) with the
//! reason, synced to disk, and counted; only then may the checkpoint move.
//! When the file would exceed its cap, writing fails and the source stops
//! moving instead of losing records.
//!
//! The operator's side ([`summarize`], [`replay`]) reads the same lines.
//! Replay first renames the file away under `dead-letter.lock` (which every
//! append also takes), so a running sidecar's next dead letter starts a new
//! file and nothing is appended to the one being replayed. A replayed file
//! is kept as `dead-letter.jsonl.replayed-<time>`; what fails again, or is
//! not tried, is written to the new `dead-letter.jsonl`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use tokio_util::sync::CancellationToken;

use super::{DeliverError, Delivered, Exporter};
use crate::convert::Batch;
use crate::metrics::{SourceMetrics, lock};

/// The live file's name in the state directory.
pub const FILE_NAME: &str = "dead-letter.jsonl";
/// Taken around every append and the replay's rename.
const LOCK_NAME: &str = "dead-letter.lock";
/// Longest reason shown by [`Summary`]'s text.
const REASON_SHOWN: usize = 160;
/// How [`Exporter::deliver`]'s reason starts when retries ran out.
const GAVE_UP: &str = "gave up after";

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead-letter file {path} is full ({size} bytes, cap {cap}); replay it or move it away to resume")]
    Full { path: PathBuf, size: u64, cap: u64 },
    #[error("cannot write dead-letter file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot encode dead letters: {0}")]
    Encode(#[from] serde_json::Error),
}

pub struct DeadLetter {
    path: PathBuf,
    cap: u64,
    guard: Mutex<()>,
}

impl DeadLetter {
    pub fn new(state_dir: &Path, cap: u64) -> Self {
        Self { path: state_dir.join(FILE_NAME), cap, guard: Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one rejected request. Returns once the line is on disk.
    pub fn write(&self, source: &str, reason: &str, now_ms: i64, batch: &Batch) -> Result<(), DeadLetterError> {
        // The request as OTLP/JSON; should the bytes not decode, they are kept as they are.
        let request = match batch.request() {
            Ok(req) => serde_json::to_value(req)?,
            Err(_) => serde_json::json!({
                "protobufBase64": base64::engine::general_purpose::STANDARD.encode(batch.bytes()),
            }),
        };
        let line = serde_json::json!({
            "time": crate::timefmt::format_millis(now_ms),
            "source": source,
            "reason": reason,
            "records": batch.records(),
            "request": request,
        });
        let mut text = serde_json::to_string(&line)?;
        text.push('\n');
        self.append(&text, true)
    }

    /// Appends whole lines, synced. Lines that were already dead letters
    /// (`capped` false) are never refused: refusing would lose them.
    fn append(&self, text: &str, capped: bool) -> Result<(), DeadLetterError> {
        let _g = lock(&self.guard);
        let io = |source| DeadLetterError::Io { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            crate::checkpoint::create_private_dir(dir).map_err(io)?;
        }
        let _file_lock = FileLock::take(&self.path).map_err(io)?;
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if capped && size + text.len() as u64 > self.cap {
            return Err(DeadLetterError::Full { path: self.path.clone(), size, cap: self.cap });
        }
        // Owner-only (0600): the file holds whole records.
        let mut f = crate::checkpoint::open_private(&self.path, std::fs::OpenOptions::new().create(true).append(true))
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        Ok(())
    }
}

/// An exclusive lock on `dead-letter.lock` beside `file`, held until dropped.
struct FileLock(std::fs::File);

impl FileLock {
    fn take(file: &Path) -> std::io::Result<Self> {
        let path = file.with_file_name(LOCK_NAME);
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        f.lock()?;
        Ok(Self(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// One line of the file, as written by [`DeadLetter::write`].
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Entry {
    pub time: String,
    pub source: String,
    pub reason: String,
    pub records: u64,
    pub request: serde_json::Value,
}

impl Entry {
    /// The request to send again.
    pub fn batch(&self) -> Result<Batch, String> {
        if let Some(b64) = self.request.get("protobufBase64").and_then(|v| v.as_str()) {
            use prost::Message;
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| e.to_string())?;
            let req = ExportLogsServiceRequest::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
            return Ok(Batch::from(&req));
        }
        let req: ExportLogsServiceRequest = serde_json::from_value(self.request.clone()).map_err(|e| e.to_string())?;
        Ok(Batch::from(&req))
    }
}

/// Calls `each` with every line of `path` (without its newline) and, when
/// it parses, its entry.
fn for_each_line(path: &Path, mut each: impl FnMut(&str, Option<Entry>)) -> std::io::Result<()> {
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    for line in reader.split(b'\n') {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        each(&text, serde_json::from_str(&text).ok());
    }
    Ok(())
}

/// What a dead-letter file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub path: PathBuf,
    pub bytes: u64,
    pub entries: u64,
    pub records: u64,
    /// Lines that are not dead-letter entries (kept as they are).
    pub unreadable: u64,
    /// Reason → (entries, records).
    pub by_reason: BTreeMap<String, (u64, u64)>,
    /// Source → records.
    pub by_source: BTreeMap<String, u64>,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    /// Each entry: (time, source, records, reason), when asked for.
    pub list: Vec<(String, String, u64, String)>,
    /// Files left by earlier replays.
    pub earlier: Vec<(PathBuf, u64)>,
}

/// Reads the dead-letter file of `state_dir`; an absent file is empty.
pub fn summarize(state_dir: &Path, list: bool) -> std::io::Result<Summary> {
    let path = state_dir.join(FILE_NAME);
    let mut s = Summary { path: path.clone(), ..Summary::default() };
    s.earlier = earlier_files(state_dir)?;
    match std::fs::metadata(&path) {
        Ok(m) => s.bytes = m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(s),
        Err(e) => return Err(e),
    }
    for_each_line(&path, |_, entry| {
        let Some(e) = entry else {
            s.unreadable += 1;
            return;
        };
        s.entries += 1;
        s.records += e.records;
        let r = s.by_reason.entry(e.reason.clone()).or_default();
        r.0 += 1;
        r.1 += e.records;
        *s.by_source.entry(e.source.clone()).or_default() += e.records;
        // The fixed-width UTC format sorts as text.
        if s.oldest.as_ref().is_none_or(|o| e.time < *o) {
            s.oldest = Some(e.time.clone());
        }
        if s.newest.as_ref().is_none_or(|n| e.time > *n) {
            s.newest = Some(e.time.clone());
        }
        if list {
            s.list.push((e.time, e.source, e.records, e.reason));
        }
    })?;
    Ok(s)
}

/// `dead-letter.jsonl.replayed-*` and `.replaying-*` files, by name.
fn earlier_files(state_dir: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let dir = match std::fs::read_dir(state_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for item in dir {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{FILE_NAME}.replay")) {
            out.push((item.path(), item.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
    out.sort();
    Ok(out)
}

fn shorten(reason: &str) -> String {
    let one_line = reason.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= REASON_SHOWN {
        return one_line;
    }
    let cut: String = one_line.chars().take(REASON_SHOWN).collect();
    format!("{cut}...")
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "file: {} ({} bytes)", self.path.display(), self.bytes)?;
        writeln!(f, "entries: {}, records: {}", self.entries, self.records)?;
        if let (Some(o), Some(n)) = (&self.oldest, &self.newest) {
            writeln!(f, "oldest: {o}\nnewest: {n}")?;
        }
        if self.unreadable > 0 {
            writeln!(f, "unreadable lines: {} (kept; replay leaves them in the file)", self.unreadable)?;
        }
        if !self.by_reason.is_empty() {
            writeln!(f, "by reason:")?;
            for (reason, (entries, records)) in &self.by_reason {
                writeln!(f, "  {records} records in {entries} entries: {}", shorten(reason))?;
            }
            writeln!(f, "by source:")?;
            for (source, records) in &self.by_source {
                writeln!(f, "  {source}: {records} records")?;
            }
        }
        if !self.list.is_empty() {
            writeln!(f, "entries:")?;
            for (time, source, records, reason) in &self.list {
                writeln!(f, "  {time}  {source}  {records} records  {}", shorten(reason))?;
            }
        }
        for (path, bytes) in &self.earlier {
            writeln!(f, "earlier replay: {} ({bytes} bytes)", path.display())?;
        }
        Ok(())
    }
}

mod replay;
pub use replay::{ReplayReport, replay};

#[cfg(test)]
mod tests;
