//! `backfill`: a source's records of a time range delivered through the
//! configured exporter, each batch acknowledged before it counts as done.
//!
//! The running source's checkpoint is left alone: a backfill keeps its own
//! progress file in the state directory (`backfill-<source>.json`: the
//! range, the window under way and the record copies of it already
//! delivered), written after every acknowledged request, so `--resume`
//! after an interruption delivers nothing twice and misses nothing.
//!
//! A backfill is deduplicated against nothing the sidecar delivered: a
//! range the source already delivered arrives twice. The overlap with the
//! source's checkpoint (everything before its watermark) is printed before
//! anything is sent, and `--yes` is needed to go on.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::progress::Progress;
use super::query::{QueryArgs, Range, target};
use super::read::{Reader, WindowRead};
use super::{ToolError, now_ms, write_atomic};
use crate::config::{Config, SourceConfig};
use crate::convert::{self, Record, RequestHead, source_resource};
use crate::export::{DeadLetter, DeliverError, Delivered, Exporter, Transport};
use crate::metrics::SourceMetrics;
use crate::timefmt::format_millis;

pub const HELP: &str = "\
Examples:
  forge-otel-sidecar backfill -c config.yaml --from 2026-03-03T00:00:00Z --to 2026-03-04T00:00:00Z
  forge-otel-sidecar backfill -c config.yaml --source prod --since 6h --yes
  forge-otel-sidecar backfill -c config.yaml --resume

Records go through the config's exporter and are not deduplicated against what the running
sidecar delivered: a range its source already delivered arrives twice. The overlap is printed
first; --yes proceeds anyway. Progress is kept in state.dir/backfill-<source>.json (the source's
checkpoint is not touched); an interrupted backfill continues with --resume.

Exit codes: 0 every record accepted, 1 runtime failure or records dead-lettered,
2 configuration or usage error.";

#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Continue the interrupted backfill of this source (its range is in the progress file).
    #[arg(long)]
    pub resume: bool,
    /// Proceed even though the range overlaps what the source already delivered.
    #[arg(long)]
    pub yes: bool,
}

/// The progress file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub query_key: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Start of the window under way; everything before it is delivered.
    pub window_ms: i64,
    /// Copies of the window's records already delivered: (time ns, fingerprint, copies).
    pub delivered: Vec<(i64, u64, u32)>,
}

pub fn progress_path(dir: &Path, source: &str) -> PathBuf {
    dir.join(format!("backfill-{}.json", super::file_stem(source)))
}

fn load(path: &Path) -> Result<Option<Saved>, ToolError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ToolError::runtime(format!("{}: not a backfill progress file: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ToolError::runtime(format!("cannot read {}: {e}", path.display()))),
    }
}

fn save(path: &Path, saved: &Saved) -> Result<(), ToolError> {
    let bytes = serde_json::to_vec(saved).map_err(|e| ToolError::runtime(e.to_string()))?;
    write_atomic(path, &bytes).map_err(|e| ToolError::runtime(format!("cannot write {}: {e}", path.display())))
}

/// What the source's checkpoint says it delivered: everything before its
/// watermark. Read only (the running sidecar owns the file); `None` when
/// there is no checkpoint or it cannot be read.
pub fn source_watermark(dir: &Path, source: &str) -> Option<i64> {
    let path = crate::checkpoint::Store::new(dir).path(source);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v.get("watermark_ms")?.as_i64()
}

/// The part of `range` before `watermark_ms`, if any.
pub fn overlap(range: Range, watermark_ms: Option<i64>) -> Option<Range> {
    let w = watermark_ms?;
    (range.from_ms < w).then(|| Range { from_ms: range.from_ms, to_ms: range.to_ms.min(w) })
}

/// The range to deliver and what of it is already done.
fn plan(args: &BackfillArgs, cfg: &Config, source: &SourceConfig, path: &Path) -> Result<Saved, ToolError> {
    let existing = load(path)?;
    if args.resume {
        let saved = existing.ok_or_else(|| {
            ToolError::usage(format!(
                "--resume: no interrupted backfill of source `{}` ({})",
                source.name,
                path.display()
            ))
        })?;
        if saved.query_key != source.query_key() {
            return Err(ToolError::usage(format!(
                "--resume: the interrupted backfill in {} was made with other filters (app, environment, sites, levels, message)",
                path.display()
            )));
        }
        return Ok(saved);
    }
    if let Some(saved) = existing {
        return Err(ToolError::usage(format!(
            "an interrupted backfill of {} is in {}: add --resume to finish it, or delete the file to start another",
            Range { from_ms: saved.from_ms, to_ms: saved.to_ms },
            path.display()
        )));
    }
    let range = Range::parse(&args.query, now_ms())?;
    match overlap(range, source_watermark(&cfg.state.dir, &source.name)) {
        Some(o) => {
            eprintln!(
                "warning: source `{}` already delivered everything up to {}; this backfill overlaps it over {o} ({} min): \
                 those records will arrive twice (a backfill is deduplicated against nothing)",
                source.name,
                format_millis(o.to_ms),
                (o.to_ms - o.from_ms) / 60_000
            );
            if !args.yes {
                return Err(ToolError::usage("not started: add --yes to deliver the range anyway"));
            }
        }
        None => eprintln!(
            "note: a backfill is deduplicated against nothing; {range} does not overlap what source `{}` delivered",
            source.name
        ),
    }
    Ok(Saved {
        query_key: source.query_key(),
        from_ms: range.from_ms,
        to_ms: range.to_ms,
        window_ms: range.from_ms,
        delivered: vec![],
    })
}

/// Runs `backfill`; `Ok(true)` when every record was accepted, `Ok(false)`
/// when some were dead-lettered.
pub async fn run(args: &BackfillArgs, cfg: &Config) -> Result<bool, ToolError> {
    let source = target(cfg, &args.query)?;
    super::ensure_dir(&cfg.state.dir)?;
    let path = progress_path(&cfg.state.dir, &source.name);
    let mut saved = plan(args, cfg, &source, &path)?;
    save(&path, &saved)?;
    let transport = Transport::new(&cfg.exporter).map_err(|e| ToolError::usage(format!("exporter: {e}")))?;
    let dead_letter = DeadLetter::new(&cfg.state.dir, cfg.state.dead_letter_max_bytes);
    let exporter = Exporter::new(transport, cfg.exporter.retry.clone(), dead_letter);
    let metrics = SourceMetrics::new(&format!("backfill:{}", source.name), &source.app_id);
    let head = RequestHead::new(&source_resource(&source));
    let reader = Reader::new(cfg, &source)?;
    let cancel = super::cancel_on_signal();
    let range = Range { from_ms: saved.from_ms, to_ms: saved.to_ms };
    let windows: Vec<(i64, i64)> = range.windows().into_iter().filter(|(_, end)| *end > saved.window_ms).collect();
    let mut progress = Progress::new("backfill", windows.len() as u64);
    let (mut accepted, mut dead) = (0u64, 0u64);
    let mut body = Vec::new();
    for (start, end) in windows {
        let mut w = WindowRead::new(&source, start, end);
        if start == saved.window_ms {
            w.commit(&saved.delivered);
        }
        saved.window_ms = start;
        while let Some(page) = reader.next_page(&source, &mut w, &mut body, &cancel).await? {
            let records: Vec<Record<'_>> = page.decoded.records.iter().collect();
            let encoded: Vec<&[u8]> = page.emit.iter().filter_map(|&i| records.get(i).map(Record::encoded)).collect();
            let mut done = 0usize;
            for batch in convert::batches(&head, encoded, cfg.exporter.max_request_bytes) {
                let n = batch.records() as usize;
                match exporter.deliver(&batch, &metrics, &cancel).await {
                    Ok(Delivered::Accepted { records, rejected }) => accepted += records.saturating_sub(rejected),
                    Ok(Delivered::DeadLettered { records, .. }) => dead += records,
                    Err(DeliverError::Cancelled) => {
                        return Err(ToolError::runtime(format!(
                            "interrupted; continue with --resume ({accepted} records delivered this run)"
                        )));
                    }
                    Err(e) => return Err(ToolError::runtime(e.to_string())),
                }
                let raise = page.raise.get(done..done + n).unwrap_or_default();
                w.commit(raise);
                done += n;
                saved.delivered = w.emitted.iter().map(|((t, fp), c)| (*t, *fp, *c)).collect();
                save(&path, &saved)?;
                progress.records(n as u64, reader.calls());
            }
        }
        saved.window_ms = end;
        saved.delivered.clear();
        save(&path, &saved)?;
        progress.window_done(start, end, reader.calls());
    }
    progress.finish();
    let _ = std::fs::remove_file(&path);
    eprintln!("backfill of {range}: {accepted} records accepted, {dead} dead-lettered, {} API calls", reader.calls());
    Ok(dead == 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn overlap_is_the_part_before_the_watermark() {
        let r = Range { from_ms: 1000, to_ms: 5000 };
        assert_eq!(overlap(r, None), None);
        assert_eq!(overlap(r, Some(500)), None);
        assert_eq!(overlap(r, Some(1000)), None);
        assert_eq!(overlap(r, Some(3000)), Some(Range { from_ms: 1000, to_ms: 3000 }));
        assert_eq!(overlap(r, Some(9000)), Some(r));
    }

    #[test]
    fn the_watermark_is_read_from_the_checkpoint_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(source_watermark(dir.path(), "prod"), None);
        let path = crate::checkpoint::Store::new(dir.path()).path("prod");
        std::fs::write(&path, br#"{"version":3,"source":"prod","watermark_ms":1234}"#).unwrap();
        assert_eq!(source_watermark(dir.path(), "prod"), Some(1234));
    }

    #[test]
    fn progress_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = progress_path(dir.path(), "prod");
        assert_eq!(load(&path).unwrap(), None);
        let s = Saved { query_key: "k".into(), from_ms: 1, to_ms: 2, window_ms: 1, delivered: vec![(5, 6, 2)] };
        save(&path, &s).unwrap();
        assert_eq!(load(&path).unwrap(), Some(s));
    }
}
