//! The poller: one task per source, strictly sequential.
//!
//! Each step plans a window ([`window`]), waits for the app's budget
//! ([`budget`]), fetches one page, converts it ([`crate::convert`]), drops
//! records already delivered (by fingerprint), delivers the rest through
//! the [`Exporter`] and waits for its answer, and only then saves the
//! checkpoint ([`crate::checkpoint`]). Nothing is queued between stages, so
//! nothing can be dropped from a queue; a crash repeats at most one page.

pub mod budget;
pub mod window;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::checkpoint::{Checkpoint, Delivered, Loaded, Progress, Store};
use crate::config::{API_RETENTION, MAX_WINDOW, PollConfig, SourceConfig};
use crate::convert::{self, RequestHead};
use crate::convert::{Decoded, PageBuffers};
use crate::export::{DeliverError, Exporter};
use crate::forge::client::{ForgeClient, ForgeError, Query};
use crate::metrics::{LastError, SourceMetrics, SourceState};
use budget::{Budget, Priority};
use window::{Next, Params, Pass, Window};

/// A window whose cursors loop is read again this many times before it is cut short.
const MAX_LOOP_RESTARTS: u32 = 3;

/// A window whose page keeps failing is halved down to this span, then given up.
const MIN_SPLIT_MS: i64 = 1000;

/// Fingerprints kept at most per source (8 bytes each in memory and file).
const MAX_FINGERPRINTS: usize = 2_000_000;

/// A fault-injection point for the crash tests (TEST-PLAN C1): with
/// `FORGE_SIDECAR_FAULT_ABORT_BEFORE_COMMIT=N` the process aborts, as a
/// SIGKILL would, right after the N-th delivered page and before its
/// checkpoint is written. Unset in normal use.
mod crash_point {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static COMMITS: AtomicU64 = AtomicU64::new(0);

    pub fn before_commit() {
        let at = AT
            .get_or_init(|| std::env::var("FORGE_SIDECAR_FAULT_ABORT_BEFORE_COMMIT").ok().and_then(|v| v.parse().ok()));
        if let Some(n) = at
            && COMMITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
        {
            eprintln!("fault injection: aborting before checkpoint write {n}");
            std::process::abort();
        }
    }
}

/// Wall-clock time, injected so tests can control it.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::timefmt::system_millis(std::time::SystemTime::now())
    }
}

/// What every source task shares.
pub struct Shared {
    pub client: ForgeClient,
    pub exporter: Exporter,
    pub store: Store,
    pub poll: PollConfig,
    pub max_request_bytes: usize,
    pub max_pages_per_window: u32,
    pub clock: Arc<dyn Clock>,
}

enum PageError {
    Cancelled,
    Stuck(String),
}

pub struct SourceTask {
    source: SourceConfig,
    groups: Vec<Vec<String>>,
    query_key: String,
    head: RequestHead,
    budget: Arc<Budget>,
    metrics: Arc<SourceMetrics>,
    shared: Arc<Shared>,
    cp: Checkpoint,
    seen_cursors: HashSet<String>,
    /// Times the current window was restarted after a cursor loop.
    loop_restarts: u32,
    /// Fingerprints of the current window's final stretch (not persisted).
    window_fps: Delivered,
    /// Delivered counts of stretches the second pass reads again (journaled).
    delivered: Delivered,
    extra_margin_ms: i64,
    /// A page's body and records, reused from page to page.
    buffers: PageBuffers,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SourceTask {
    pub fn new(source: SourceConfig, budget: Arc<Budget>, metrics: Arc<SourceMetrics>, shared: Arc<Shared>) -> Self {
        let query_key = source.query_key();
        let groups = source.site_groups();
        let head = RequestHead::new(&convert::source_resource(&source));
        let cp = Checkpoint::fresh(&source.name, &query_key, 0);
        Self {
            source,
            groups,
            query_key,
            head,
            budget,
            metrics,
            shared,
            cp,
            seen_cursors: HashSet::new(),
            loop_restarts: 0,
            window_fps: Default::default(),
            delivered: Default::default(),
            extra_margin_ms: 0,
            buffers: PageBuffers::default(),
        }
    }

    fn now(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    fn oldest_ms(&self, now: i64) -> i64 {
        now - ms(API_RETENTION) + ms(self.shared.poll.retention_margin) + self.extra_margin_ms
    }

    fn load(&mut self) {
        let now = self.now();
        let start = (now - ms(self.shared.poll.initial_lookback)).max(self.oldest_ms(now));
        let name = self.source.name.clone();
        self.cp = match self.shared.store.load(&name, &self.query_key) {
            Ok(Loaded::Resumed { mut cp, delivered, query_changed, .. }) => {
                tracing::info!(source = %name, watermark = %crate::timefmt::format_millis(cp.watermark_ms), "resuming from checkpoint");
                if query_changed {
                    cp.query_key = self.query_key.clone();
                    cp.current = None;
                }
                self.delivered = delivered;
                cp
            }
            Ok(Loaded::Missing) => {
                tracing::info!(source = %name, from = %crate::timefmt::format_millis(start), "no checkpoint; first start");
                Checkpoint::fresh(&name, &self.query_key, start)
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(source = %name, "{message}");
                self.metrics.update(|s| s.last_checkpoint_error = Some(LastError { at_ms: now, message }));
                Checkpoint::fresh(&name, &self.query_key, start)
            }
            Ok(Loaded::MovedAside { to, reason }) => {
                let message = format!("checkpoint {reason}; moved to {}; starting afresh", to.display());
                tracing::error!(source = %name, "{message}");
                self.metrics.update(|s| s.last_checkpoint_error = Some(LastError { at_ms: now, message }));
                Checkpoint::fresh(&name, &self.query_key, start)
            }
        };
        self.metrics.gap_seconds.store(self.cp.gap_seconds_total, Ordering::Relaxed);
        self.metrics.backfill_start_ms.store(self.cp.watermark_ms, Ordering::Relaxed);
        self.publish_marks();
    }

    fn publish_marks(&self) {
        self.metrics.watermark_ms.store(self.cp.watermark_ms, Ordering::Relaxed);
        self.metrics.late_watermark_ms.store(self.cp.late_watermark_ms, Ordering::Relaxed);
    }

    fn params(&self, now: i64) -> Params {
        let p = &self.shared.poll;
        Params {
            now_ms: now,
            settle_ms: ms(p.settle_delay),
            late_ms: ms(p.late_arrival),
            interval_ms: ms(p.interval),
            oldest_ms: self.oldest_ms(now),
            max_window_ms: ms(MAX_WINDOW),
        }
    }

    /// Sleeps (ticking the liveness clock) unless cancelled. False when cancelled.
    async fn sleep(&self, d: Duration, cancel: &CancellationToken) -> bool {
        let until = Instant::now() + d;
        loop {
            self.metrics.tick(self.now());
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(left.min(Duration::from_secs(5))) => {}
            }
        }
    }

    fn set_state(&self, now: i64) {
        let behind = now - ms(self.shared.poll.settle_delay) - self.cp.watermark_ms;
        let catching_up = behind > ms(self.shared.poll.interval) * 2 + 1000;
        self.metrics.update(|s| {
            s.state = if s.config_error || s.api_failing || s.export_failing || s.checkpoint_failing {
                if s.state == SourceState::Throttled { SourceState::Throttled } else { SourceState::Error }
            } else if catching_up {
                SourceState::CatchingUp
            } else {
                SourceState::Live
            };
        });
    }

    /// Runs until cancelled. Progress is saved after every delivered page.
    pub async fn run(mut self, cancel: CancellationToken) {
        self.load();
        let poll = self.shared.poll.clone();
        let mut api_backoff = Backoff::new(poll.backoff_initial, poll.backoff_max);
        let mut page_attempts: u32 = 0;
        while !cancel.is_cancelled() {
            let now = self.now();
            self.metrics.tick(now);
            self.clamp_retention(now);
            let progress = match self.cp.current.clone() {
                Some(p) => p,
                None => match window::next(self.cp.watermark_ms, self.cp.late_watermark_ms, &self.params(now)) {
                    Next::Fetch(win) => {
                        let p = Progress::start(win);
                        self.cp.current = Some(p.clone());
                        self.seen_cursors.clear();
                        p
                    }
                    Next::Sleep(until) => {
                        self.set_state(now);
                        let d = Duration::from_millis((until - now).clamp(1, ms(poll.interval).max(1)) as u64);
                        if !self.sleep(d, &cancel).await {
                            break;
                        }
                        continue;
                    }
                },
            };
            self.set_state(now);
            let priority = if progress.window.pass == Pass::First { Priority::High } else { Priority::Low };
            let metrics = self.metrics.clone();
            let clock = self.shared.clock.clone();
            let tick = move || metrics.tick(clock.now_ms());
            if self.budget.acquire(priority, &cancel, &tick).await.is_none() {
                break;
            }
            let group = self.groups.get(progress.group).cloned().unwrap_or_default();
            let query = Query {
                app_id: &self.source.app_id,
                environment_id: &self.source.environment_id,
                start_ms: progress.window.start_ms,
                end_ms: progress.window.end_ms,
                levels: &self.source.levels,
                message: self.source.message.as_deref(),
                sites: &group,
                cursor: progress.cursor.as_deref(),
            };
            let t = Instant::now();
            let observed_ns = u64::try_from(now).unwrap_or(0).saturating_mul(1_000_000);
            let result = match self.shared.client.fetch(&query, &mut self.buffers.body).await {
                Ok(()) => self.buffers.decode(observed_ns).map_err(|e| ForgeError::Malformed(e.to_string())),
                Err(e) => Err(e),
            };
            let call_ms = self.now();
            let class = match &result {
                Ok(_) => "200",
                Err(e) => e.status_class(),
            };
            self.metrics.api_call(class, call_ms, t.elapsed().as_secs_f64());
            match result {
                Ok(page) => {
                    api_backoff.reset();
                    page_attempts = 0;
                    self.metrics.update(|s| {
                        s.last_poll_ok_ms = Some(call_ms);
                        s.api_failing = false;
                        s.config_error = false;
                        if s.state == SourceState::Throttled {
                            s.state = SourceState::Live;
                        }
                    });
                    let delivered = self.deliver_page(&progress, &page, &cancel).await;
                    self.buffers.recycle(page.records);
                    let wait = match delivered {
                        Ok(wait) => wait,
                        Err(PageError::Cancelled) => break,
                        Err(PageError::Stuck(message)) => {
                            self.metrics.update(|s| s.state = SourceState::Error);
                            tracing::error!(source = %self.source.name, error = %message, "cannot move past this page; retrying later");
                            if !self.sleep(poll.config_error_retry, &cancel).await {
                                break;
                            }
                            continue;
                        }
                    };
                    if !self.commit(&cancel).await {
                        break;
                    }
                    if let Some(wait) = wait
                        && !self.sleep(wait, &cancel).await
                    {
                        break;
                    }
                }
                Err(e) => {
                    let context = format!(
                        "source {} window {}..{} page {}",
                        self.source.name,
                        crate::timefmt::format_millis(progress.window.start_ms),
                        crate::timefmt::format_millis(progress.window.end_ms),
                        progress.pages + 1
                    );
                    let wait = self.on_api_error(&e, &context, &progress, &mut api_backoff, &mut page_attempts);
                    if let Some(wait) = wait
                        && !self.sleep(wait, &cancel).await
                    {
                        break;
                    }
                    if self.cp.current.as_ref() != Some(&progress) && !self.commit(&cancel).await {
                        break;
                    }
                }
            }
        }
        self.metrics.update(|s| s.state = SourceState::Stopped);
        tracing::info!(source = %self.source.name, "source stopped");
    }

    /// Decides what an API error means; returns how long to wait.
    fn on_api_error(
        &mut self,
        e: &ForgeError,
        context: &str,
        progress: &Progress,
        backoff: &mut Backoff,
        page_attempts: &mut u32,
    ) -> Option<Duration> {
        let now = self.now();
        let poll = &self.shared.poll;
        let message = format!("{context}: {e}");
        let config_error = matches!(e, ForgeError::Auth { .. } | ForgeError::NotFound { .. } | ForgeError::Token(_));
        self.metrics.update(|s| {
            s.api_failing = true;
            s.config_error = config_error;
            s.last_api_error = Some(LastError { at_ms: now, message: message.clone() });
        });
        match e {
            ForgeError::RateLimited { retry_after } => {
                SourceMetrics::add(&self.metrics.rate_limited, 1);
                let delay = retry_after.unwrap_or_else(|| backoff.next_delay());
                if self.budget.throttle(delay) {
                    tracing::warn!(source = %self.source.name, app = %self.source.app_id, "rate limited while under this process's budget: another client is using this app's API limit");
                }
                tracing::warn!(source = %self.source.name, retry_in = ?delay, "{message}");
                self.metrics.update(|s| s.state = SourceState::Throttled);
                None
            }
            ForgeError::Auth { .. } | ForgeError::NotFound { .. } | ForgeError::Token(_) => {
                tracing::error!(source = %self.source.name, retry_in = ?poll.config_error_retry, "{message}");
                Some(poll.config_error_retry)
            }
            ForgeError::BadRequest { message: api } => {
                if api.contains("14 days") || api.contains("older") {
                    self.extra_margin_ms = (self.extra_margin_ms + 600_000).min(86_400_000);
                }
                tracing::error!(source = %self.source.name, "{message}; re-planning the window");
                self.cp.current = None;
                Some(backoff.next_delay().max(poll.backoff_initial))
            }
            ForgeError::Server { .. } | ForgeError::Transport(_) => {
                let d = backoff.next_delay();
                tracing::warn!(source = %self.source.name, retry_in = ?d, "{message}");
                Some(d)
            }
            ForgeError::Malformed(_) | ForgeError::TooLarge { .. } => {
                *page_attempts += 1;
                let max = poll.max_page_attempts;
                if max > 0 && *page_attempts >= max {
                    *page_attempts = 0;
                    let span = progress.window.end_ms - progress.window.start_ms;
                    if span > MIN_SPLIT_MS {
                        // Bisect: a page that never parses usually holds a bad
                        // record; halving the window isolates it to a second.
                        let mid = progress.window.start_ms + span / 2;
                        tracing::warn!(source = %self.source.name, attempts = max, "{message}; retrying the window in halves");
                        self.cp.current = Some(Progress {
                            window: Window { end_ms: mid, complete: false, ..progress.window },
                            cursor: None,
                            pages: 0,
                            ..progress.clone()
                        });
                        self.seen_cursors.clear();
                        return Some(backoff.next_delay());
                    }
                    SourceMetrics::add(&self.metrics.gave_up_pages, 1);
                    if progress.window.pass == Pass::First {
                        let secs = (span / 1000).max(1) as u64;
                        self.cp.gap_seconds_total += secs;
                        SourceMetrics::add(&self.metrics.gap_seconds, secs);
                    }
                    tracing::error!(source = %self.source.name, attempts = max, "{message}; giving up on this stretch (counted as a gap)");
                    self.finish_group(Progress {
                        window: Window { complete: false, ..progress.window },
                        ..progress.clone()
                    });
                    return None;
                }
                let d = backoff.next_delay();
                tracing::warn!(source = %self.source.name, attempt = *page_attempts, retry_in = ?d, "{message}");
                Some(d)
            }
        }
    }

    fn clamp_retention(&mut self, now: i64) {
        let oldest = self.oldest_ms(now);
        if self.cp.current.as_ref().is_some_and(|p| p.window.start_ms < oldest) {
            self.cp.current = None;
        }
        let gap = window::clamp_to_retention(&mut self.cp.watermark_ms, &mut self.cp.late_watermark_ms, oldest);
        if gap > 0 {
            let secs = (gap / 1000) as u64;
            self.cp.gap_seconds_total += secs;
            SourceMetrics::add(&self.metrics.gap_seconds, secs);
            tracing::warn!(source = %self.source.name, gap_seconds = secs, "records older than the API's 14 days can no longer be read; starting at the oldest readable time");
            self.publish_marks();
        }
    }

    /// Delivers one page and moves the progress on. `Ok(Some(d))`: wait `d`
    /// before the next page (the window is being read again after a cursor loop).
    async fn deliver_page(
        &mut self,
        progress: &Progress,
        page: &Decoded,
        cancel: &CancellationToken,
    ) -> Result<Option<Duration>, PageError> {
        let (start_ns, end_ns) = (progress.window.start_ms * 1_000_000, progress.window.end_ms * 1_000_000);
        let stats = page.stats;
        let mut out = Vec::with_capacity(page.records.len());
        let mut new_fps = Vec::with_capacity(page.records.len());
        let mut sites = Vec::new();
        // The second pass will read this stretch again unless it is final: read
        // complete and with the second pass caught up to it (then W2 jumps over it).
        let read_again = !(progress.window.complete && self.cp.late_watermark_ms >= progress.window.start_ms);
        let keep_fingerprints = progress.window.pass == Pass::First && read_again;
        let (mut received, mut dups, mut outside) = (0u64, 0u64, 0u64);
        for r in page.records.iter() {
            let ts = r.time_unix_nano as i64;
            // Records without a usable time (absent or unparsable) stay in the window that returned them.
            let timed = r.time_unix_nano > 0;
            // Edge records belong to exactly one window, whichever way the API treats endDate.
            if timed && (ts < start_ns || ts >= end_ns) {
                outside += 1;
                continue;
            }
            received += 1;
            let bucket = if timed { ts } else { start_ns };
            let fp = r.fingerprint();
            if self.delivered.count(bucket, fp) > 0 || self.window_fps.count(bucket, fp) > 0 {
                dups += 1;
                continue;
            }
            new_fps.push((bucket, fp));
            if let Some(site) = r.site() {
                sites.push((site, ts / 1_000_000));
            }
            out.push(r.encoded);
        }
        self.metrics.sites_seen(sites);
        let m = &self.metrics;
        SourceMetrics::add(&m.pages, 1);
        SourceMetrics::add(&m.received, received);
        SourceMetrics::add(&m.duplicates, dups);
        SourceMetrics::add(&m.out_of_window, outside);
        SourceMetrics::add(&m.bad_time, stats.bad_time);
        SourceMetrics::add(&m.bad_ids, stats.bad_ids);
        let mut pending = out.len() as u64;
        SourceMetrics::add(&m.in_flight, pending);
        for batch in convert::batches(&self.head, out, self.shared.max_request_bytes) {
            let n = batch.records();
            let result = self.shared.exporter.deliver(&batch, m, cancel).await;
            if let Err(e) = result {
                // Not delivered: these records will be fetched again, so they
                // leave the books as if never received.
                m.in_flight.fetch_sub(pending, Ordering::Relaxed);
                m.received.fetch_sub(pending, Ordering::Relaxed);
                return Err(match e {
                    DeliverError::Cancelled => PageError::Cancelled,
                    DeliverError::DeadLetter(e) => PageError::Stuck(e.to_string()),
                });
            }
            m.in_flight.fetch_sub(n, Ordering::Relaxed);
            pending -= n;
        }
        // Only a first read of a stretch that is not final is read again by the
        // second pass, so only those fingerprints go into the checkpoint; a
        // final stretch's stay in memory until its window closes, for a window
        // read again from its first page (cursor loop, bisection), and would
        // otherwise make every checkpoint of a backfill larger.
        if keep_fingerprints {
            let entries: Vec<_> = new_fps.iter().map(|&(bucket, fp)| (bucket, fp, 1)).collect();
            if let Err(e) = self.shared.store.append(&self.source.name, &entries) {
                tracing::error!(source = %self.source.name, error = %e, "delivered counts not journaled");
            }
        }
        let store = if keep_fingerprints { &mut self.delivered } else { &mut self.window_fps };
        for (bucket, fp) in new_fps {
            store.raise(bucket, fp, 1);
        }
        match page.cursor.as_deref() {
            Some(c) => {
                let looped = Some(c) == progress.cursor.as_deref() || self.seen_cursors.contains(c);
                let too_many = progress.pages + 1 >= self.shared.max_pages_per_window;
                if looped || too_many {
                    SourceMetrics::add(&self.metrics.cursor_loops, 1);
                    let why = if looped {
                        "the API returned a cursor it had returned before"
                    } else {
                        "more pages than forge.max_pages_per_window"
                    };
                    tracing::error!(source = %self.source.name, window_start = %crate::timefmt::format_millis(progress.window.start_ms), "{why}; ending this window's pages here");
                    let now = self.now();
                    self.metrics.update(|s| {
                        s.last_api_error = Some(LastError { at_ms: now, message: format!("cursor loop: {why}") })
                    });
                    if self.loop_restarts < MAX_LOOP_RESTARTS {
                        // Read the window again from its first page, later; what
                        // was delivered already is dropped by fingerprint.
                        self.loop_restarts += 1;
                        self.seen_cursors.clear();
                        self.cp.current = Some(Progress { cursor: None, pages: 0, ..progress.clone() });
                        return Ok(Some(self.shared.poll.config_error_retry));
                    }
                    self.loop_restarts = 0;
                    SourceMetrics::add(&self.metrics.gave_up_pages, 1);
                    // Not final: the second pass reads this stretch once more.
                    self.finish_group(Progress {
                        window: Window { complete: false, ..progress.window },
                        ..progress.clone()
                    });
                } else {
                    self.seen_cursors.insert(c.to_string());
                    let mut next = progress.clone();
                    next.cursor = Some(c.to_string());
                    next.pages += 1;
                    self.cp.current = Some(next);
                }
            }
            None => self.finish_group(progress.clone()),
        }
        Ok(None)
    }

    /// Moves to the next site group, or closes the window after the last.
    /// A window cut short (cursor loop, page given up) is marked incomplete,
    /// so the second pass reads its stretch once more.
    fn finish_group(&mut self, mut progress: Progress) {
        self.seen_cursors.clear();
        self.loop_restarts = 0;
        progress.group += 1;
        progress.cursor = None;
        progress.pages = 0;
        if progress.group < self.groups.len() {
            self.cp.current = Some(progress);
            return;
        }
        let win = progress.window;
        let window_fps = std::mem::take(&mut self.window_fps);
        if progress.window.pass == Pass::First && !progress.window.complete {
            // Cut short: the second pass reads it again, so what was delivered must be recognised.
            let entries: Vec<_> = window_fps.entries().collect();
            if let Err(e) = self.shared.store.append(&self.source.name, &entries) {
                tracing::error!(source = %self.source.name, error = %e, "delivered counts not journaled");
            }
            self.delivered.merge(&window_fps);
        }
        window::advance(&mut self.cp.watermark_ms, &mut self.cp.late_watermark_ms, &win);
        self.cp.current = None;
        self.delivered.prune_before(self.cp.late_watermark_ms);
        if let Some(end) = self.delivered.cap(MAX_FINGERPRINTS) {
            tracing::warn!(source = %self.source.name, end, "fingerprint store full; oldest fingerprints dropped (late duplicates become possible)");
        }
        let _ = self.shared.store.compact(&self.source.name, &self.delivered);
        self.publish_marks();
    }

    /// Saves the checkpoint, retrying until it is on disk. False when
    /// cancelled before that (the next start repeats the last page).
    async fn commit(&mut self, cancel: &CancellationToken) -> bool {
        crash_point::before_commit();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            match self.shared.store.save(&self.cp) {
                Ok(()) => {
                    self.metrics.update(|s| s.checkpoint_failing = false);
                    return true;
                }
                Err(e) => {
                    let now = self.now();
                    let message = e.to_string();
                    tracing::error!(source = %self.source.name, error = %message, "checkpoint not saved; progress stops until it can be");
                    self.metrics.update(|s| {
                        s.checkpoint_failing = true;
                        s.state = SourceState::Error;
                        s.last_checkpoint_error = Some(LastError { at_ms: now, message });
                    });
                    if !self.sleep(backoff.next_delay(), cancel).await {
                        return false;
                    }
                }
            }
        }
    }
}
