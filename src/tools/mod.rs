//! The support desk's one-off commands, beside the long-running sidecar:
//! [`fetch`] (a time range to a file or stdout), [`backfill`] (a range
//! through the configured exporter) and [`audit`] (the developer console's
//! audit log CSV through the exporter) and [`reset`] (a source started
//! afresh on purpose).
//!
//! - [`query`]: which source, sites, levels and time range a command reads;
//! - [`read`]: the window-by-window, page-by-page reader, paced by the
//!   app's budget shared with a running sidecar through the state directory;
//! - [`progress`]: a bar on a terminal, plain lines otherwise;
//! - [`cli`]: the entry points `main` calls.
//!
//! None of them but `reset` takes the state directory's lock (a running
//! sidecar holds it): each reads and writes only its own files there (the
//! budget memory, `backfill-*.json`, `audit-imported.json`); `reset`
//! deletes a source's checkpoint, so it takes the lock and is refused
//! while a sidecar runs.

pub mod audit;
pub mod backfill;
pub mod cli;
pub mod fetch;
pub mod progress;
pub mod query;
pub mod read;
pub mod reset;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// A command's failure and the exit code it maps to: 2 for configuration
/// and usage errors, 1 for failures at run time.
#[derive(Debug)]
pub struct ToolError {
    pub code: u8,
    pub message: String,
}

impl ToolError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self { code: 2, message: message.into() }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Self { code: 1, message: message.into() }
    }

    pub fn exit(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    crate::timefmt::system_millis(std::time::SystemTime::now())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// kill leaves either the old content or the new; readable by the owner only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Creates the state directory when missing (the commands may run before
/// the sidecar ever did).
pub fn ensure_dir(dir: &Path) -> Result<(), ToolError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ToolError::runtime(format!("cannot create the state directory {}: {e}", dir.display())))
}

/// A file name part made of `name`: safe characters kept, a hash against collisions.
pub fn file_stem(name: &str) -> String {
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_".contains(c) { c } else { '_' }).collect();
    format!("{stem}-{:08x}", crate::fingerprint::hash_bytes(name.as_bytes()) as u32)
}

/// A cancellation token cancelled by SIGINT or SIGTERM.
pub fn cancel_on_signal() -> tokio_util::sync::CancellationToken {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        on_signal.cancel();
    });
    cancel
}
