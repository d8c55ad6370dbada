//! Progress of `fetch` and `backfill` on stderr: a bar (windows done /
//! total, records, calls, ETA) when stderr is a terminal, one plain line
//! per window otherwise, so a log file or a pipe gets no control codes.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::timefmt::format_millis;

pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    records: u64,
    started: Instant,
}

impl Progress {
    /// `total` windows to go; `label` starts every plain line.
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix} [{bar:20}] {pos}/{len} windows, {msg}, ETA {eta}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar
        });
        Self { label: label.to_string(), bar, total, done: 0, records: 0, started: Instant::now() }
    }

    /// Records emitted since the last call.
    pub fn records(&mut self, n: u64, calls: u64) {
        self.records += n;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} records, {calls} calls", self.records));
        }
    }

    /// One more window done.
    pub fn window_done(&mut self, start_ms: i64, end_ms: i64, calls: u64) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{} records, {calls} calls", self.records));
                bar.inc(1);
            }
            None => eprintln!(
                "{}: window {}/{} done ({} .. {}): {} records, {} calls, ETA {}",
                self.label,
                self.done,
                self.total,
                format_millis(start_ms),
                format_millis(end_ms),
                self.records,
                calls,
                self.eta()
            ),
        }
    }

    /// Time left at the pace so far, whole seconds.
    fn eta(&self) -> String {
        let left = self.total.saturating_sub(self.done);
        if self.done == 0 || left == 0 {
            return if left == 0 { "0s".into() } else { "unknown".into() };
        }
        let per = self.started.elapsed().as_secs_f64() / self.done as f64;
        let secs = (per * left as f64).min(1e9).round() as u64;
        humantime::format_duration(Duration::from_secs(secs)).to_string()
    }

    /// Clears the bar (the summary line follows).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    pub fn total_records(&self) -> u64 {
        self.records
    }
}
