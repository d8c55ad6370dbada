//! `dead-letter replay`: the file's records sent again through the
//! configured exporter, then the file rotated.

use super::*;

/// How a replay went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub entries: u64,
    /// Records the backend accepted.
    pub delivered: u64,
    /// Records the backend accepted but reported rejected (partial success).
    pub rejected: u64,
    /// Records rejected again, now in the new dead-letter file.
    pub dead_lettered: u64,
    /// Lines written back untried (unreadable, or after a stop).
    pub kept_lines: u64,
    /// Where the replayed file was moved.
    pub rotated: Vec<PathBuf>,
    /// Why the replay stopped early, if it did.
    pub stopped: Option<String>,
}

impl ReplayReport {
    /// Every record reached the backend and was accepted.
    pub fn complete(&self) -> bool {
        self.rejected == 0 && self.dead_lettered == 0 && self.kept_lines == 0 && self.stopped.is_none()
    }
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replayed {} entries: {} records delivered, {} rejected by a partial success, {} dead-lettered again, {} lines kept untried",
            self.entries, self.delivered, self.rejected, self.dead_lettered, self.kept_lines
        )?;
        for p in &self.rotated {
            write!(f, "\nreplayed file kept as {}", p.display())?;
        }
        if let Some(why) = &self.stopped {
            write!(f, "\nstopped early: {why}")?;
        }
        Ok(())
    }
}

/// Sends every entry of the state directory's dead-letter file (and of any
/// replay a crash interrupted) through `exporter`, whose own dead-letter
/// file must be the same `dead-letter.jsonl`. See the module doc.
pub async fn replay(
    state_dir: &Path,
    exporter: &Exporter,
    now_ms: i64,
    cancel: &CancellationToken,
) -> Result<ReplayReport, DeadLetterError> {
    let live = state_dir.join(FILE_NAME);
    let io = |source| DeadLetterError::Io { path: live.clone(), source };
    let stamp: String = crate::timefmt::format_millis(now_ms).chars().filter(|c| !matches!(c, '-' | ':')).collect();
    let mut files: Vec<PathBuf> = earlier_files(state_dir)
        .map_err(io)?
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.to_string_lossy().contains(".replaying-"))
        .collect();
    let taking = live.with_file_name(format!("{FILE_NAME}.replaying-{stamp}"));
    {
        let _l = FileLock::take(&live).map_err(io)?;
        match std::fs::rename(&live, &taking) {
            Ok(()) => files.push(taking),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    let writer = DeadLetter::new(state_dir, u64::MAX);
    let mut report = ReplayReport::default();
    for file in files {
        replay_file(&file, exporter, &writer, cancel, &mut report).await?;
        let done = PathBuf::from(file.to_string_lossy().replace(".replaying-", ".replayed-"));
        std::fs::rename(&file, &done).map_err(|source| DeadLetterError::Io { path: file.clone(), source })?;
        report.rotated.push(done);
    }
    Ok(report)
}

async fn replay_file(
    file: &Path,
    exporter: &Exporter,
    writer: &DeadLetter,
    cancel: &CancellationToken,
    report: &mut ReplayReport,
) -> Result<(), DeadLetterError> {
    let mut lines: Vec<(String, Option<Entry>)> = Vec::new();
    for_each_line(file, |text, entry| lines.push((text.to_string(), entry)))
        .map_err(|source| DeadLetterError::Io { path: file.to_path_buf(), source })?;
    let mut metrics: BTreeMap<String, SourceMetrics> = BTreeMap::new();
    let mut keep = String::new();
    for (text, entry) in lines {
        let batch = entry.as_ref().map(Entry::batch);
        let (Some(entry), Some(Ok(batch))) = (entry, batch) else {
            keep.push_str(&text);
            keep.push('\n');
            report.kept_lines += 1;
            continue;
        };
        if report.stopped.is_some() || cancel.is_cancelled() {
            report.stopped.get_or_insert_with(|| "interrupted".into());
            keep.push_str(&text);
            keep.push('\n');
            report.kept_lines += 1;
            continue;
        }
        report.entries += 1;
        // The source's name is what a record dead-lettered again is filed under.
        let m = metrics.entry(entry.source.clone()).or_insert_with(|| SourceMetrics::new(&entry.source, ""));
        match exporter.deliver(&batch, m, cancel).await {
            Ok(Delivered::Accepted { records, rejected }) => {
                report.delivered += records.saturating_sub(rejected);
                report.rejected += rejected;
            }
            Ok(Delivered::DeadLettered { records, reason }) => {
                report.dead_lettered += records;
                if reason.starts_with(GAVE_UP) {
                    // The backend is unreachable: the rest would only wait as long each.
                    report.stopped = Some(reason);
                }
            }
            Err(e) => {
                // Not delivered and not written again: keep the line itself.
                keep.push_str(&text);
                keep.push('\n');
                report.kept_lines += 1;
                report.entries -= 1;
                report.stopped = Some(match e {
                    DeliverError::Cancelled => "interrupted".into(),
                    DeliverError::DeadLetter(e) => e.to_string(),
                });
            }
        }
    }
    if !keep.is_empty() {
        writer.append(&keep, false)?;
    }
    Ok(())
}
