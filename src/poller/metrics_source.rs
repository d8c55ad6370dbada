//! One App metrics source's task (DESIGN.md decision 13): the logs
//! sources' rules with the metrics API's numbers. Windows of at most 15
//! minutes within the 14 days, planned by [`super::plan`] with the same
//! two marks and late second read (metrics are re-aggregated late too); a
//! budget per account ([`super::budget`], 5 calls per period, shared by
//! every metrics source of that email across apps); data points counted
//! like log records ([`super::filter`]) under the checkpoint name
//! `metrics:<name>`, so a window read again delivers only the points it has
//! not delivered; the export acknowledged before the journal and the
//! checkpoint move. One query is one "page": the API does not paginate.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::action::{self, Action, Situation};
use super::budget::Budget;
use super::carry::{self, Then};
use super::filter::{self, ReadCounts, Seen};
use super::plan::{self, Next, Params};
use super::{Clock, health, ms};
use crate::backoff::Backoff;
use crate::checkpoint::{Checkpoint, Delivered, Store};
use crate::config::{API_RETENTION, MetricsSourceConfig, PollConfig};
use crate::convert::metrics::{self as mconv, MetricsAnswer};
use crate::export::DeliverError;
use crate::export::metrics::MetricsExporter;
use crate::forge::client::ForgeError;
use crate::forge::metrics_client::{MAX_WINDOW, MetricsClient, MetricsQuery};
use crate::metrics::SourceMetrics;
use crate::progress::{Progress, Window};

/// The pause before a panicked task starts again.
const RESTART_PAUSE: Duration = Duration::from_secs(5);
/// Calls per `forge.rate_period` the API allows each account (5 per minute).
pub const CALLS_PER_PERIOD: u32 = 5;
/// Delivered-point counts kept at most per source.
const MAX_DELIVERED: usize = 2_000_000;
/// How far past each end of a window a query reaches. Whether the API
/// selects a point by its start, its end or any overlap is not documented;
/// reaching one point's span (a minute) past both ends returns every point
/// whose end lies in the window whichever it is, and the filter keeps
/// exactly those, so no point falls between two windows.
const REACH_MS: i64 = 60_000;

/// The budget key of an account: its email's hash, so the state
/// directory's file names and the logs carry no address.
pub fn account_key(email: &str) -> String {
    format!("metrics-account-{:08x}", crate::fingerprint::hash_bytes(email.as_bytes()) as u32)
}

/// What every metrics source shares.
pub struct MetricsShared {
    pub exporter: MetricsExporter,
    pub store: Store,
    pub poll: PollConfig,
    pub max_server_delay: Duration,
    pub clock: Arc<dyn Clock>,
}

pub struct MetricsSourceTask {
    source: MetricsSourceConfig,
    name: String,
    query_key: String,
    client: Arc<MetricsClient>,
    budget: Arc<Budget>,
    metrics: Arc<SourceMetrics>,
    shared: Arc<MetricsShared>,
    cp: Checkpoint,
    delivered: Delivered,
    older_margin_ms: i64,
    future_lag_ms: i64,
    appended: usize,
    /// The counts a due journal compaction rewrites, done by the next
    /// [`Self::commit`] after the small file (never beside an append).
    compaction: Option<Delivered>,
}

enum Stop {
    Cancelled,
}

impl MetricsSourceTask {
    pub fn new(
        source: MetricsSourceConfig,
        client: Arc<MetricsClient>,
        budget: Arc<Budget>,
        metrics: Arc<SourceMetrics>,
        shared: Arc<MetricsShared>,
    ) -> Self {
        let name = source.checkpoint_name();
        let query_key = source.query_key();
        let cp = Checkpoint::fresh(&name, &query_key, 0);
        Self {
            source,
            name,
            query_key,
            client,
            budget,
            metrics,
            shared,
            cp,
            delivered: Delivered::default(),
            older_margin_ms: 0,
            future_lag_ms: 0,
            appended: 0,
            compaction: None,
        }
    }

    fn now(&self) -> i64 {
        self.shared.clock.now_ms() - self.future_lag_ms
    }

    fn params(&self, now: i64) -> Params {
        let p = &self.shared.poll;
        Params {
            now_ms: now,
            settle_ms: ms(self.source.settle_delay.unwrap_or(p.settle_delay)),
            late_ms: ms(p.late_arrival),
            interval_ms: ms(p.interval),
            oldest_ms: now - ms(API_RETENTION) + ms(p.retention_margin) + self.older_margin_ms + REACH_MS,
            // The query, reach included, stays within the API's 15 minutes.
            max_window_ms: ms(MAX_WINDOW) - 2 * REACH_MS,
        }
    }

    async fn sleep(&self, d: Duration, cancel: &CancellationToken) -> bool {
        let (metrics, clock) = (self.metrics.clone(), self.shared.clock.clone());
        crate::wait::wait(d, cancel, &move || metrics.tick(clock.now_ms())).await
    }

    fn publish_marks(&self) {
        self.metrics.watermark_ms.store(self.cp.watermark_ms, Ordering::Relaxed);
        self.metrics.late_watermark_ms.store(self.cp.late_watermark_ms, Ordering::Relaxed);
    }

    /// Runs until cancelled.
    pub async fn run(mut self, cancel: CancellationToken) {
        if !self.load(&cancel).await {
            return;
        }
        let poll = self.shared.poll.clone();
        let mut api_backoff = Backoff::new(poll.backoff_initial, poll.backoff_max);
        let mut attempts = 0u32;
        while !cancel.is_cancelled() {
            let now = self.now();
            self.metrics.tick(now);
            let params = self.params(now);
            let gap =
                plan::clamp_to_retention(&mut self.cp.watermark_ms, &mut self.cp.late_watermark_ms, params.oldest_ms);
            if gap > 0 {
                self.cp.gap_seconds_total += (gap / 1000) as u64;
                SourceMetrics::add(&self.metrics.gap_seconds, (gap / 1000) as u64);
            }
            let (progress, due) = match self.cp.current.clone() {
                Some(p) => (p.clone(), plan::due(&p.window, &params)),
                None => match plan::next(self.cp.watermark_ms, self.cp.late_watermark_ms, &params) {
                    Next::Fetch(planned) => {
                        let p = Progress::start(planned.window);
                        self.cp.current = Some(p.clone());
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
            let (metrics, clock) = (self.metrics.clone(), self.shared.clock.clone());
            if self.budget.acquire(due, &cancel, &move || metrics.tick(clock.now_ms())).await.is_none() {
                break;
            }
            match self.fetch(&progress.window).await {
                Ok(answer) => {
                    api_backoff.reset();
                    attempts = 0;
                    health::api_ok(&self.metrics, self.shared.clock.now_ms());
                    match self.deliver(&progress.window, &answer, &cancel).await {
                        Ok(()) => {}
                        Err(Stop::Cancelled) => break,
                    }
                    self.finish(progress.window);
                    if !self.commit(&cancel).await {
                        break;
                    }
                }
                Err(e) => {
                    attempts += 1;
                    let situation = Situation {
                        progress: &progress,
                        attempts,
                        now_ms: now,
                        hard_oldest_ms: now - ms(API_RETENTION),
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
                    if self.cp.current.as_ref() != Some(&progress) && !self.commit(&cancel).await {
                        break;
                    }
                }
            }
        }
        self.metrics.update(|s| s.state = crate::metrics::SourceState::Stopped);
        tracing::info!(source = %self.name, "metrics source stopped");
    }

    async fn fetch(&self, w: &Window) -> Result<MetricsAnswer, ForgeError> {
        let app_ari = self.source.app_ari();
        let q = MetricsQuery {
            app_ari: &app_ari,
            environments: &self.source.environments,
            metrics: &self.source.metrics,
            start_ms: w.start_ms - REACH_MS,
            // Never past now: the window's points all ended before it.
            end_ms: (w.end_ms + REACH_MS).min(self.shared.clock.now_ms()).max(w.end_ms),
        };
        let t = Instant::now();
        let result = match self.client.query(&q).await {
            Ok(v) => mconv::parse(&v).map_err(|e| ForgeError::Malformed(e.to_string())),
            Err(e) => Err(e),
        };
        let class = match &result {
            Ok(_) => "200",
            Err(e) => e.status_class(),
        };
        self.metrics.api_call(class, self.shared.clock.now_ms(), t.elapsed().as_secs_f64());
        result
    }

    /// Delivers the window's points not delivered before, then records them.
    async fn deliver(&mut self, w: &Window, answer: &MetricsAnswer, cancel: &CancellationToken) -> Result<(), Stop> {
        let (start_ns, end_ns) = (w.start_ms.saturating_mul(1_000_000), w.end_ms.saturating_mul(1_000_000));
        let seen = answer.keys().iter().map(|k| Seen { time_unix_nano: k.time_unix_nano, fingerprint: k.fingerprint });
        let delivered = &self.delivered;
        let mut read = ReadCounts::default();
        let f = filter::filter(seen, start_ns, end_ns, |t, fp| delivered.count(t, fp), &mut read);
        let m = self.metrics.clone();
        SourceMetrics::add(&m.pages, 1);
        SourceMetrics::add(&m.received, f.received);
        SourceMetrics::add(&m.duplicates, f.duplicates);
        SourceMetrics::add(&m.out_of_window, f.outside);
        if f.deliver.is_empty() {
            return Ok(());
        }
        let req = answer.request(&self.source, &f.deliver);
        let points = mconv::point_count(&req);
        SourceMetrics::add(&m.in_flight, points);
        loop {
            let result = self.shared.exporter.deliver(&req, points, &m, cancel).await;
            match result {
                Ok(_) => break,
                Err(DeliverError::Cancelled) => {
                    m.in_flight.fetch_sub(points, Ordering::Relaxed);
                    return Err(Stop::Cancelled);
                }
                Err(DeliverError::DeadLetter(e)) => {
                    // The dead-letter file is full: nothing moves until it is dealt with.
                    health::stuck(&m);
                    tracing::error!(source = %self.name, error = %e, "metrics neither delivered nor dead-lettered; retrying later");
                    if !self.sleep(self.shared.poll.config_error_retry, cancel).await {
                        m.in_flight.fetch_sub(points, Ordering::Relaxed);
                        return Err(Stop::Cancelled);
                    }
                }
            }
        }
        m.in_flight.fetch_sub(points, Ordering::Relaxed);
        for (t, fp, n) in &f.raise {
            self.delivered.raise(*t, *fp, *n);
        }
        self.persist(f.raise, cancel).await
    }

    /// Closes a window: marks move, old counts go.
    fn finish(&mut self, window: Window) {
        plan::advance(&mut self.cp.watermark_ms, &mut self.cp.late_watermark_ms, &window);
        self.cp.current = None;
        self.delivered.prune_before(self.cp.late_watermark_ms);
        if let Some(until) = self.delivered.cap(MAX_DELIVERED) {
            self.cp.late_watermark_ms = self.cp.late_watermark_ms.max(until.min(self.cp.watermark_ms));
        }
        self.publish_marks();
        if self.appended > 2 * self.delivered.len() + 10_000 {
            // Every count appended so far is in this copy; the commit that
            // follows this window rewrites the journal from it, in the same
            // blocking call as the small file and before any later append.
            self.appended = self.delivered.len();
            self.compaction = Some(self.delivered.clone());
        }
    }

    /// Carries out an error's action ([`carry::carry_out`]); returns how long to wait.
    fn carry_out(&mut self, e: &ForgeError, act: Action, progress: &Progress, attempts: &mut u32) -> Option<Duration> {
        let w = &progress.window;
        let message = format!(
            "metrics source {} window {}..{}: {e}",
            self.source.name,
            crate::timefmt::format_millis(w.start_ms),
            crate::timefmt::format_millis(w.end_ms)
        );
        let scene = carry::Scene {
            name: &self.name,
            metrics: &self.metrics,
            budget: &self.budget,
            cp: &mut self.cp,
            older_margin_ms: &mut self.older_margin_ms,
            future_lag_ms: &mut self.future_lag_ms,
            now_ms: self.shared.clock.now_ms(),
        };
        match carry::carry_out(scene, act, w, &message, attempts) {
            Then::Wait(wait) => wait,
            // One query is the whole window: reading it again is a retry.
            Then::RestartGroup(after) => Some(after),
            Then::Bisect(window) => {
                self.cp.current = Some(Progress::start(window));
                None
            }
            Then::GiveUp(window) => {
                self.finish(window);
                None
            }
        }
    }
}

mod persist;
mod spawn;
pub use spawn::spawn_sources;
