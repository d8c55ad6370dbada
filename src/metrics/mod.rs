//! The sidecar's own metrics and status, shared by the poller, the
//! exporter and the server.
//!
//! One [`SourceMetrics`] per source: the poller and exporter bump its
//! counters, observe its histograms and update its status; per-app gauges
//! (clock skew, budget) live on the [`Registry`]. What is exported is
//! listed once, in `catalogue`: `/metrics` (`prometheus`) and the OTLP
//! push (`telemetry`) both iterate that list, so neither can miss a family
//! or word its help differently. Labels stay low-cardinality (app, source,
//! status class); per-site data lives only in `/status`.

pub(crate) mod catalogue;
mod histogram;
mod metrics_source;
pub use metrics_source::MetricsSourceInfo;
pub(crate) mod prometheus;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub use histogram::{DELAY_BUCKETS, DURATION_BUCKETS, Histogram, HistogramSnapshot};
pub(crate) use histogram::{HistogramSink, Recorder, SinkSlot};
pub use prometheus::render_prometheus;

use serde::Serialize;

/// Sites remembered per source for silent-site detection: the API covers
/// about 3,500 sites of an app, so this leaves room without letting a
/// hostile answer grow the map without end.
pub(crate) const MAX_SITES: usize = 20_000;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a source is doing, for `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    #[default]
    Starting,
    CatchingUp,
    Live,
    Throttled,
    Error,
    Stopped,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LastError {
    pub at_ms: i64,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    pub state: SourceState,
    pub last_poll_ok_ms: Option<i64>,
    pub last_export_ok_ms: Option<i64>,
    pub last_api_error: Option<LastError>,
    pub last_export_error: Option<LastError>,
    pub last_checkpoint_error: Option<LastError>,
    /// The API or the exporter is failing right now (cleared by the next success).
    pub api_failing: bool,
    pub export_failing: bool,
    pub checkpoint_failing: bool,
    /// 401/403/404: the source's configuration is wrong.
    pub config_error: bool,
}

/// When a site's records were last seen, and how often they come.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct SiteSeen {
    pub last_record_ms: i64,
    /// Smoothed gap between records of this site, in ms.
    pub typical_gap_ms: f64,
    pub records: u64,
}

impl SiteSeen {
    /// One more record of the site, timed `ts_ms`.
    fn note(&mut self, ts_ms: i64) {
        if self.records > 0 && ts_ms > self.last_record_ms {
            let gap = (ts_ms - self.last_record_ms) as f64;
            self.typical_gap_ms = if self.typical_gap_ms == 0.0 { gap } else { 0.9 * self.typical_gap_ms + 0.1 * gap };
        }
        self.last_record_ms = self.last_record_ms.max(ts_ms);
        self.records += 1;
    }
}

/// Something [`SourceMetrics::add`] can add to: a counter, or the
/// exporter's duration histogram fed in microseconds.
pub trait Accumulate {
    fn accumulate(&self, n: u64);
}

impl Accumulate for AtomicU64 {
    fn accumulate(&self, n: u64) {
        self.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct SourceMetrics {
    pub source: String,
    pub app: String,
    pub(crate) api_requests: Mutex<BTreeMap<String, u64>>,
    /// Values each privacy rule changed, by rule name.
    pub(crate) privacy_changed: Mutex<BTreeMap<String, u64>>,
    /// Forge API call durations, observed by [`Self::api_call`].
    pub api_duration: Histogram,
    pub rate_limited: AtomicU64,
    pub pages: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub send_failed: AtomicU64,
    pub export_retries: AtomicU64,
    pub rejected: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub duplicates: AtomicU64,
    /// Records the second pass recognised by their bytes, not decoded again.
    pub recognised: AtomicU64,
    /// Records of the current page not yet answered for by the backend.
    pub in_flight: AtomicU64,
    pub gap_seconds: AtomicU64,
    pub gave_up_pages: AtomicU64,
    pub cursor_loops: AtomicU64,
    pub out_of_window: AtomicU64,
    pub bad_time: AtomicU64,
    pub bad_ids: AtomicU64,
    /// Export requests made; the histogram's count is what `/metrics` shows.
    pub export_requests: AtomicU64,
    /// Export request durations: [`Self::export_call`].
    pub(crate) export_durations: Histogram,
    /// First seen minus record time, per record: [`Self::observe_arrival_delay`].
    pub arrival_delay: Histogram,
    /// Records found only by the second (late) pass: `SourceMetrics::add(&m.found_late, n)`.
    pub found_late: AtomicU64,
    /// Sites let go from the per-site map at its cap ([`MAX_SITES`]).
    pub sites_evicted: AtomicU64,
    /// Seconds the second pass skipped because the delivered-record memory was full.
    pub late_pass_skipped_seconds: AtomicU64,
    pub watermark_ms: AtomicI64,
    pub late_watermark_ms: AtomicI64,
    /// Wall-clock ms of the loop's last sign of life (liveness).
    pub last_tick_ms: AtomicI64,
    /// Records in the current backfill, for progress in `/status`.
    pub backfill_start_ms: AtomicI64,
    pub(crate) status: Mutex<SourceStatus>,
    pub(crate) sites: Mutex<HashMap<String, SiteSeen>>,
    /// API calls of the last minute (ms timestamps), for `/status`.
    pub(crate) recent_calls: Mutex<std::collections::VecDeque<i64>>,
    /// Set for an App metrics source.
    pub metrics_source: OnceLock<MetricsSourceInfo>,
}

impl Default for SourceMetrics {
    fn default() -> Self {
        Self::new("", "")
    }
}

impl SourceMetrics {
    /// A source's metrics on their own (tests); [`Registry::source`] makes
    /// the ones that are exported.
    pub fn new(source: &str, app: &str) -> Self {
        Self::with_sink(source, app, Arc::default())
    }

    fn with_sink(source: &str, app: &str, sink: Arc<SinkSlot>) -> Self {
        use catalogue::names;
        let labels = || vec![app.to_string(), source.to_string()];
        let histogram = |family, bounds| Histogram::new(family, bounds, labels(), sink.clone());
        Self {
            source: source.to_string(),
            app: app.to_string(),
            api_requests: Mutex::default(),
            privacy_changed: Mutex::default(),
            api_duration: histogram(names::API_DURATION, DURATION_BUCKETS),
            rate_limited: AtomicU64::default(),
            pages: AtomicU64::default(),
            received: AtomicU64::default(),
            sent: AtomicU64::default(),
            send_failed: AtomicU64::default(),
            export_retries: AtomicU64::default(),
            rejected: AtomicU64::default(),
            dead_lettered: AtomicU64::default(),
            duplicates: AtomicU64::default(),
            recognised: AtomicU64::default(),
            in_flight: AtomicU64::default(),
            gap_seconds: AtomicU64::default(),
            gave_up_pages: AtomicU64::default(),
            cursor_loops: AtomicU64::default(),
            out_of_window: AtomicU64::default(),
            bad_time: AtomicU64::default(),
            bad_ids: AtomicU64::default(),
            export_requests: AtomicU64::default(),
            export_durations: histogram(names::EXPORT_DURATION, DURATION_BUCKETS),
            arrival_delay: histogram(names::ARRIVAL_DELAY, DELAY_BUCKETS),
            found_late: AtomicU64::default(),
            sites_evicted: AtomicU64::default(),
            late_pass_skipped_seconds: AtomicU64::default(),
            watermark_ms: AtomicI64::default(),
            late_watermark_ms: AtomicI64::default(),
            last_tick_ms: AtomicI64::default(),
            backfill_start_ms: AtomicI64::default(),
            status: Mutex::default(),
            sites: Mutex::default(),
            recent_calls: Mutex::default(),
            metrics_source: OnceLock::new(),
        }
    }

    /// Adds `n` to a counter field (`SourceMetrics::add(&m.sent, 3)`).
    pub fn add<C: Accumulate + ?Sized>(counter: &C, n: u64) {
        counter.accumulate(n);
    }

    /// One Forge API call: counted by answer class, timed, and kept for the
    /// calls-per-minute figure of `/status`.
    pub fn api_call(&self, status_class: &str, now_ms: i64, seconds: f64) {
        *lock(&self.api_requests).entry(status_class.to_string()).or_default() += 1;
        self.api_duration.observe(seconds);
        let mut calls = lock(&self.recent_calls);
        calls.push_back(now_ms);
        while calls.front().is_some_and(|t| now_ms - t >= 60_000) {
            calls.pop_front();
        }
    }

    /// A page's privacy counts: rule `names[i]` changed `counts[i]` values.
    pub fn privacy_changed(&self, names: &[String], counts: &[u64]) {
        let mut m = lock(&self.privacy_changed);
        for (name, n) in names.iter().zip(counts) {
            *m.entry(name.clone()).or_default() += n;
        }
    }

    /// One export request that took `seconds`.
    pub fn export_call(&self, seconds: f64) {
        self.export_requests.fetch_add(1, Ordering::Relaxed);
        self.export_durations.observe(seconds);
    }

    /// The export request durations.
    pub(crate) fn export_duration(&self) -> &Histogram {
        &self.export_durations
    }

    /// One record first seen `seconds` after its own timestamp.
    pub fn observe_arrival_delay(&self, seconds: f64) {
        self.arrival_delay.observe(seconds);
    }

    pub(crate) fn calls_last_minute(&self, now_ms: i64) -> usize {
        lock(&self.recent_calls).iter().filter(|t| now_ms - **t < 60_000).count()
    }

    pub(crate) fn tick(&self, now_ms: i64) {
        self.last_tick_ms.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut SourceStatus)) {
        f(&mut lock(&self.status));
    }

    pub fn status(&self) -> SourceStatus {
        lock(&self.status).clone()
    }

    /// Notes a record of `site` at `ts_ms` (record time).
    pub fn site_seen(&self, site: &str, ts_ms: i64) {
        self.sites_seen([(site, ts_ms)]);
    }

    /// [`Self::site_seen`] for each record of a page, in order, under one lock.
    pub(crate) fn sites_seen<'a>(&self, records: impl IntoIterator<Item = (&'a str, i64)>) {
        let mut sites = lock(&self.sites);
        for (site, ts_ms) in records {
            // The hot path: one lookup, no key allocated; a new site costs a second.
            if let Some(seen) = sites.get_mut(site) {
                seen.note(ts_ms);
                continue;
            }
            if sites.len() >= MAX_SITES {
                // Site ids come from outside: the map stays bounded by
                // letting the stalest site go (counted).
                let stalest = sites.iter().min_by_key(|(_, s)| s.last_record_ms).map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    sites.remove(&k);
                    self.sites_evicted.fetch_add(1, Ordering::Relaxed);
                }
            }
            sites.entry(site.to_string()).or_default().note(ts_ms);
        }
    }
}

/// The per-app gauges the scheduler sets; unset ones are not exported.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AppGauges {
    /// Forge API clock minus host clock, in seconds.
    pub clock_skew_seconds: Option<f64>,
    /// API calls per minute the app's sources need to keep up.
    pub calls_needed_per_minute: Option<f64>,
    /// API calls per minute the budget actually allows.
    pub effective_rate_per_minute: Option<f64>,
}

/// Decides readiness for the `forge_sidecar_ready` gauge (installed by the server).
pub(crate) type ReadyProbe = Box<dyn Fn(&Registry, i64) -> bool + Send + Sync>;

/// Every source's metrics, and the per-app gauges.
#[derive(Default)]
pub struct Registry {
    sources: Mutex<Vec<Arc<SourceMetrics>>>,
    apps: Mutex<BTreeMap<String, AppGauges>>,
    sink: Arc<SinkSlot>,
    ready: OnceLock<ReadyProbe>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("sources", &self.sources).field("apps", &self.apps).finish_non_exhaustive()
    }
}

impl Registry {
    pub fn source(&self, source: &str, app: &str) -> Arc<SourceMetrics> {
        let m = Arc::new(SourceMetrics::with_sink(source, app, self.sink.clone()));
        lock(&self.sources).push(m.clone());
        m
    }

    pub fn sources(&self) -> Vec<Arc<SourceMetrics>> {
        lock(&self.sources).clone()
    }

    /// Sets `forge_sidecar_clock_skew_seconds{app}`: API clock minus host clock.
    pub fn set_clock_skew(&self, app: &str, seconds: f64) {
        self.app_gauges(app, |g| g.clock_skew_seconds = Some(seconds));
    }

    /// Sets `forge_sidecar_budget_calls_needed_per_minute{app}` and
    /// `forge_sidecar_budget_effective_rate_per_minute{app}`.
    pub fn set_budget(&self, app: &str, calls_needed_per_minute: f64, effective_rate_per_minute: f64) {
        self.app_gauges(app, |g| {
            g.calls_needed_per_minute = Some(calls_needed_per_minute);
            g.effective_rate_per_minute = Some(effective_rate_per_minute);
        });
    }

    fn app_gauges(&self, app: &str, f: impl FnOnce(&mut AppGauges)) {
        f(lock(&self.apps).entry(app.to_string()).or_default());
    }

    /// The per-app gauges set so far, by app.
    pub fn apps(&self) -> Vec<(String, AppGauges)> {
        lock(&self.apps).iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Forwards every histogram observation from now on (the OTLP push).
    /// False when a sink was installed already.
    pub(crate) fn set_histogram_sink(&self, sink: Arc<dyn HistogramSink>) -> bool {
        self.sink.set(sink).is_ok()
    }

    /// Installs the readiness rule; false when one was installed already.
    pub fn set_ready_probe(&self, probe: ReadyProbe) -> bool {
        self.ready.set(probe).is_ok()
    }

    /// Readiness at `now_ms`, when a rule is installed.
    pub fn ready(&self, now_ms: i64) -> Option<bool> {
        self.ready.get().map(|probe| probe(self, now_ms))
    }
}

pub(crate) fn lag_seconds(mark_ms: i64, now_ms: i64) -> f64 {
    if mark_ms == 0 { 0.0 } else { ((now_ms - mark_ms) as f64 / 1000.0).max(0.0) }
}

/// Resident memory (bytes) and CPU seconds of this process, on Linux.
pub(crate) fn process_usage() -> Option<(u64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports in clock ticks of 1/100 s and pages of 4 KiB on the platforms we ship for.
    Some((pages * 4096, (utime + stime) / 100.0))
}

#[cfg(test)]
mod tests;
