//! The dead-letter file: records a backend rejected for good.
//!
//! A permanent rejection (HTTP 400/413/500, gRPC INVALID_ARGUMENT, ...)
//! never succeeds on retry, yet dropping the records silently would break
//! the promise. They are appended here as JSON lines (OTLP/JSON) with the
//! reason, synced to disk, and counted; only then may the checkpoint move.
//! When the file would exceed its cap, writing fails and the source stops
//! moving instead of losing records.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;

use crate::convert::Batch;
use crate::metrics::lock;

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead-letter file {path} is full ({size} bytes, cap {cap}); move it away to resume")]
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
        Self { path: state_dir.join("dead-letter.jsonl"), cap, guard: Mutex::new(()) }
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
        let _g = lock(&self.guard);
        let io = |source| DeadLetterError::Io { path: self.path.clone(), source };
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size + text.len() as u64 > self.cap {
            return Err(DeadLetterError::Full { path: self.path.clone(), size, cap: self.cap });
        }
        if let Some(dir) = self.path.parent() {
            crate::checkpoint::create_private_dir(dir).map_err(io)?;
        }
        // Owner-only (0600): the file holds whole records.
        let mut f = crate::checkpoint::open_private(&self.path, std::fs::OpenOptions::new().create(true).append(true))
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        Ok(())
    }
}
