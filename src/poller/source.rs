//! One source's task: carries out what [`super::plan`], [`super::action`]
//! and [`super::filter`] decide, strictly in order: plan a window, wait
//! for the app's budget, fetch a page, convert it, drop what was
//! delivered before, deliver the rest and wait for the answer, record what
//! went, and only then move the checkpoint. Nothing is queued between
//! stages, so nothing can be dropped from a queue; a crash repeats at
//! most one page.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::action::{self, Situation};
use super::budget::Budget;
use super::filter::ReadCounts;
use super::known::KnownRecords;
use super::plan::{self, Next, Params};
use super::{Shared, health, ms};
use crate::backoff::Backoff;
use crate::checkpoint::{Checkpoint, Delivered, LoadError, Loaded};
use crate::config::{API_RETENTION, MAX_WINDOW, SourceConfig};
use crate::convert::{self, Decoded, PageBuffers, Raw, RequestHead};
use crate::forge::client::{ForgeError, Query};
use crate::metrics::{LastError, SourceMetrics};
use crate::progress::{Pass, Progress};

/// A window whose cursors loop is read again this many times before it is cut short.
const MAX_LOOP_RESTARTS: u32 = 3;
/// Empty pages in a row that still carry a cursor before the chain counts as a loop.
const MAX_EMPTY_PAGES: u32 = 20;
/// Delivered-record counts kept at most per source (about 40 bytes each in memory).
const MAX_DELIVERED: usize = 2_000_000;
/// The small checkpoint file is rewritten after a page at most this often
/// (every page's counts are in the journal already; see `commit`).
const SMALL_FILE_EVERY: Duration = Duration::from_secs(5);
/// How long a checkpoint write still failing when the source stops is retried.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How far past each end of a window a request reaches (DESIGN.md 5).
const EDGE_MS: i64 = 1;
/// A clock skew above this is reported.
const SKEW_WARN_MS: i64 = 5_000;

enum PageError {
    Cancelled,
    Stuck(String),
}

pub struct SourceTask {
    source: SourceConfig,
    groups: Vec<Vec<String>>,
    levels: Vec<String>,
    query_key: String,
    head: Arc<RequestHead>,
    budget: Arc<Budget>,
    metrics: Arc<SourceMetrics>,
    shared: Arc<Shared>,
    cp: Checkpoint,
    delivered: Delivered,
    /// Copies seen in the current read of the current site group.
    read: ReadCounts,
    seen_cursors: HashSet<String>,
    /// Times the current window was restarted after a cursor loop.
    loop_restarts: u32,
    empty_pages: u32,
    /// Moved by 400 answers: new windows start later, planning's "now" earlier.
    older_margin_ms: i64,
    future_lag_ms: i64,
    /// Journal entries appended since the last compaction.
    appended: usize,
    /// Counts of the page's last request, appended with the checkpoint.
    unsaved: Vec<(i64, u64, u32)>,
    /// The live counts to rewrite the journal with, after the checkpoint.
    compaction: Option<Delivered>,
    /// When the small file was last written, and whether the checkpoint
    /// moved since (see [`SMALL_FILE_EVERY`]).
    small_saved: Option<Instant>,
    small_dirty: bool,
    skew_reported: bool,
    buffers: PageBuffers,
    /// Records the first pass read, for the second to recognise.
    known: KnownRecords,
    /// The checkpoint write started after the last page, collected before
    /// the next request.
    writing: Option<Writing>,
    /// A write was given up (the source stopped first): the small file
    /// must not move past the counts it carried.
    write_lost: bool,
}

/// A checkpoint write in flight ([`SourceTask::commit`]).
struct Writing {
    write: super::carry::Deferred<crate::checkpoint::CheckpointError>,
    /// Whether it writes the small file, and when it was decided.
    small: bool,
    at: Instant,
}

impl SourceTask {
    pub fn new(source: SourceConfig, budget: Arc<Budget>, metrics: Arc<SourceMetrics>, shared: Arc<Shared>) -> Self {
        let query_key = source.query_key();
        let groups = source.site_groups();
        let mut levels = source.levels.clone();
        levels.sort();
        levels.dedup();
        let head = Arc::new(RequestHead::new(&convert::source_resource(&source)));
        let cp = Checkpoint::fresh(&source.name, &query_key, 0);
        Self {
            source,
            groups,
            levels,
            query_key,
            head,
            budget,
            metrics,
            shared,
            cp,
            delivered: Delivered::default(),
            read: ReadCounts::default(),
            seen_cursors: HashSet::new(),
            loop_restarts: 0,
            empty_pages: 0,
            older_margin_ms: 0,
            future_lag_ms: 0,
            appended: 0,
            unsaved: Vec::new(),
            compaction: None,
            small_saved: None,
            small_dirty: false,
            skew_reported: false,
            buffers: PageBuffers::default(),
            known: KnownRecords::default(),
            writing: None,
            write_lost: false,
        }
    }

    fn host_now(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    /// Planning time: the earlier of the host's clock and the API's
    /// (DESIGN.md 5), less what 400s for future windows taught.
    fn plan_now(&mut self) -> i64 {
        let host = self.host_now();
        let offset = self.shared.client.api_clock_offset_ms().unwrap_or(0);
        if offset.abs() > SKEW_WARN_MS && !self.skew_reported {
            self.skew_reported = true;
            tracing::warn!(source = %self.source.name, skew_ms = offset, "the host clock and the API's clock differ; planning with the earlier one");
        }
        host + offset.min(0) - self.future_lag_ms
    }

    fn hard_oldest(now: i64) -> i64 {
        now - ms(API_RETENTION)
    }

    fn params(&self, now: i64) -> Params {
        let p = &self.shared.poll;
        Params {
            now_ms: now,
            settle_ms: ms(p.settle_delay),
            late_ms: ms(p.late_arrival),
            interval_ms: ms(p.interval),
            oldest_ms: Self::hard_oldest(now) + ms(p.retention_margin) + self.older_margin_ms,
            // The request reaches past both ends and must stay within the API's hour.
            max_window_ms: ms(MAX_WINDOW) - 2 * EDGE_MS,
        }
    }

    fn tick(&self) {
        self.metrics.tick(self.host_now());
    }

    async fn sleep(&self, d: Duration, cancel: &CancellationToken) -> bool {
        let (metrics, clock) = (self.metrics.clone(), self.shared.clock.clone());
        crate::wait::wait(d, cancel, &move || metrics.tick(clock.now_ms())).await
    }

    /// Loads the checkpoint. A file that cannot be read right now, or that
    /// a newer version wrote, is never moved aside or overwritten: the
    /// source waits and tries again. False when cancelled meanwhile.
    async fn load(&mut self, cancel: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(Duration::from_secs(1), self.shared.poll.config_error_retry);
        loop {
            let (store, name, key) = (self.shared.store.clone(), self.source.name.clone(), self.query_key.clone());
            let loaded = tokio::task::spawn_blocking(move || store.load(&name, &key)).await.unwrap_or_else(|e| {
                Err(LoadError::Unreadable { path: Default::default(), source: std::io::Error::other(e) })
            });
            let now = self.plan_now();
            let start = (now - ms(self.shared.poll.initial_lookback)).max(self.params(now).oldest_ms);
            let name = &self.source.name;
            match loaded {
                Ok(Loaded::Missing) => {
                    tracing::info!(source = %name, from = %crate::timefmt::format_millis(start), "no checkpoint; first start");
                    self.cp = Checkpoint::fresh(name, &self.query_key, start);
                }
                Ok(Loaded::Resumed { mut cp, delivered, query_changed, migrated_from }) => {
                    if let Some(v) = migrated_from {
                        tracing::info!(source = %name, from_version = v, "checkpoint migrated");
                    }
                    if query_changed {
                        // The new filter applies from the watermark on; nothing is read again.
                        tracing::warn!(source = %name, "the source's filters changed; keeping its watermark, the new filters apply from there");
                        cp.query_key = self.query_key.clone();
                        cp.current = None;
                    }
                    if let Some(p) = &mut cp.current {
                        // The group is read again from its first page: the counts of
                        // what went out recognise it, and the read's own counts restart.
                        p.cursor = None;
                        p.pages = 0;
                    }
                    tracing::info!(source = %name, watermark = %crate::timefmt::format_millis(cp.watermark_ms), "resuming from checkpoint");
                    self.cp = cp;
                    self.delivered = delivered;
                }
                Ok(Loaded::MovedAside { to, reason }) => {
                    let message = format!("checkpoint {reason}; moved to {}; starting afresh", to.display());
                    tracing::error!(source = %name, "{message}");
                    self.metrics.update(|s| s.last_checkpoint_error = Some(LastError { at_ms: now, message }));
                    self.cp = Checkpoint::fresh(name, &self.query_key, start);
                }
                Err(e) => {
                    let message = e.to_string();
                    let wait = match e {
                        LoadError::Newer { .. } => self.shared.poll.config_error_retry,
                        LoadError::Unreadable { .. } => backoff.next_delay(),
                    };
                    tracing::error!(source = %name, retry_in = ?wait, "{message}; the source waits, nothing is overwritten");
                    health::checkpoint_failed(&self.metrics, now, message);
                    if !self.sleep(wait, cancel).await {
                        return false;
                    }
                    continue;
                }
            }
            self.metrics.update(|s| s.checkpoint_failing = false);
            self.metrics.gap_seconds.store(self.cp.gap_seconds_total, Ordering::Relaxed);
            self.metrics.backfill_start_ms.store(self.cp.watermark_ms, Ordering::Relaxed);
            self.publish_marks();
            return true;
        }
    }

    fn publish_marks(&self) {
        self.metrics.watermark_ms.store(self.cp.watermark_ms, Ordering::Relaxed);
        self.metrics.late_watermark_ms.store(self.cp.late_watermark_ms, Ordering::Relaxed);
    }

    fn start_read(&mut self) {
        self.read.clear();
        self.seen_cursors.clear();
        self.empty_pages = 0;
    }

    /// Runs until cancelled. Progress is saved after every delivered page.
    pub async fn run(mut self, cancel: CancellationToken) {
        if !self.load(&cancel).await {
            return;
        }
        let poll = self.shared.poll.clone();
        let mut api_backoff = Backoff::new(poll.backoff_initial, poll.backoff_max);
        let mut attempts: u32 = 0;
        while !cancel.is_cancelled() {
            // A write that ended while the source slept is collected now:
            // a failure shows on /status and is retried without waiting
            // for the next request.
            if self.writing.as_ref().is_some_and(|w| w.write.is_finished()) && !self.settle(&cancel).await {
                break;
            }
            let now = self.plan_now();
            self.tick();
            self.clamp_retention(now);
            let params = self.params(now);
            let (progress, due) = match self.cp.current.clone() {
                Some(p) => {
                    let due = plan::due(&p.window, &params);
                    (p, due)
                }
                None => match plan::next(self.cp.watermark_ms, self.cp.late_watermark_ms, &params) {
                    Next::Fetch(planned) => {
                        let p = Progress::start(planned.window);
                        self.cp.current = Some(p.clone());
                        self.start_read();
                        (p, planned.due_ms)
                    }
                    Next::Sleep(until) => {
                        health::set_state(&self.metrics, &self.cp, now, &poll);
                        let d = Duration::from_millis((until - now).clamp(1, ms(poll.interval).max(1)) as u64);
                        if !self.sleep(d, &cancel).await {
                            break;
                        }
                        continue;
                    }
                },
            };
            health::set_state(&self.metrics, &self.cp, now, &poll);
            // What the last page delivered is on disk before this request
            // (and before its slot of the budget is taken).
            if !self.settle(&cancel).await {
                break;
            }
            let (metrics, clock) = (self.metrics.clone(), self.shared.clock.clone());
            if self.budget.acquire(due, &cancel, &move || metrics.tick(clock.now_ms())).await.is_none() {
                break;
            }
            let result = self.fetch(&progress).await;
            match result {
                Ok((page, call_ms)) => {
                    api_backoff.reset();
                    attempts = 0;
                    health::api_ok(&self.metrics, call_ms);
                    let delivered = self.deliver_page(&progress, &page, call_ms, &cancel).await;
                    self.buffers.recycle(page.records);
                    let wait = match delivered {
                        Ok(wait) => wait,
                        Err(PageError::Cancelled) => break,
                        Err(PageError::Stuck(message)) => {
                            health::stuck(&self.metrics);
                            tracing::error!(source = %self.source.name, error = %message, "cannot move past this page; retrying later");
                            if !self.sleep(poll.config_error_retry, &cancel).await {
                                break;
                            }
                            continue;
                        }
                    };
                    if !self.commit(&cancel, false).await {
                        break;
                    }
                    if let Some(wait) = wait
                        && !self.sleep(wait, &cancel).await
                    {
                        break;
                    }
                }
                Err(e) => {
                    attempts += 1;
                    let situation = Situation {
                        progress: &progress,
                        attempts,
                        now_ms: now,
                        hard_oldest_ms: Self::hard_oldest(now),
                        backoff: api_backoff.next_delay(),
                        config_error_retry: poll.config_error_retry,
                        max_page_attempts: poll.max_page_attempts,
                        max_server_delay: self.shared.max_server_delay,
                    };
                    let act = action::on_error(&e, &situation);
                    let wait = self.carry_out(&e, act, &progress, &mut attempts);
                    if let Some(wait) = wait
                        && !self.sleep(wait, &cancel).await
                    {
                        break;
                    }
                    if self.cp.current.as_ref() != Some(&progress) && !self.commit(&cancel, true).await {
                        break;
                    }
                }
            }
        }
        self.flush_small().await;
        self.metrics.update(|s| s.state = crate::metrics::SourceState::Stopped);
        tracing::info!(source = %self.source.name, "source stopped");
    }

    /// One page: the request reaches [`EDGE_MS`] past both ends of the window.
    async fn fetch(&mut self, progress: &Progress) -> Result<(Decoded, i64), ForgeError> {
        let group = self.groups.get(progress.group).cloned().unwrap_or_default();
        let w = &progress.window;
        let query = Query {
            app_id: &self.source.app_id,
            environment_id: &self.source.environment_id,
            start_ms: w.start_ms - EDGE_MS,
            end_ms: w.end_ms + EDGE_MS,
            levels: &self.levels,
            message: self.source.message.as_deref(),
            sites: &group,
            cursor: progress.cursor.as_deref(),
        };
        let t = Instant::now();
        let observed_ns = u64::try_from(self.host_now()).unwrap_or(0).saturating_mul(1_000_000);
        let result = match self.shared.client.fetch(&query, &mut self.buffers.body).await {
            Ok(()) => {
                let known = &self.known;
                let find = |rest: &[u8]| known.find(rest);
                let raw = match w.pass {
                    _ if self.shared.poll.late_arrival.is_zero() => Raw::Off,
                    // Read once only: nothing to recognise later.
                    Pass::First if w.complete => Raw::Off,
                    Pass::First => Raw::Keys,
                    Pass::Late if known.len() > 0 => Raw::Skip(&find),
                    Pass::Late => Raw::Off,
                };
                self.buffers
                    .decode_raw(observed_ns, self.source.privacy.rules(), raw)
                    .map_err(|e| ForgeError::Malformed(e.to_string()))
            }
            Err(e) => Err(e),
        };
        if w.pass == Pass::Late {
            self.known.index_if_needed(w.start_ms.saturating_mul(1_000_000));
        }
        let call_ms = self.host_now();
        let class = match &result {
            Ok(_) => "200",
            Err(e) => e.status_class(),
        };
        self.metrics.api_call(class, call_ms, t.elapsed().as_secs_f64());
        result.map(|page| (page, call_ms))
    }
}

mod act;
mod deliver;
