//! Counters and status shared by the poller, the exporter and the server.
//!
//! One [`SourceMetrics`] per source: the poller and exporter bump its
//! counters and update its status; the server renders them as Prometheus
//! text and as `/status` JSON. Labels stay low-cardinality (app, source,
//! status class); per-site data lives only in `/status`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

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
pub struct SiteSeen {
    pub last_record_ms: i64,
    /// Smoothed gap between records of this site, in ms.
    pub typical_gap_ms: f64,
    pub records: u64,
}

#[derive(Debug, Default)]
pub struct SourceMetrics {
    pub source: String,
    pub app: String,
    pub api_requests: Mutex<BTreeMap<String, u64>>,
    pub api_seconds_sum: AtomicU64,
    pub rate_limited: AtomicU64,
    pub pages: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub send_failed: AtomicU64,
    pub export_retries: AtomicU64,
    pub rejected: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub duplicates: AtomicU64,
    pub gap_seconds: AtomicU64,
    pub gave_up_pages: AtomicU64,
    pub cursor_loops: AtomicU64,
    pub out_of_window: AtomicU64,
    pub bad_time: AtomicU64,
    pub bad_ids: AtomicU64,
    pub export_requests: AtomicU64,
    pub export_micros_sum: AtomicU64,
    pub watermark_ms: AtomicI64,
    pub late_watermark_ms: AtomicI64,
    /// Wall-clock ms of the loop's last sign of life (liveness).
    pub last_tick_ms: AtomicI64,
    /// Records in the current backfill, for progress in `/status`.
    pub backfill_start_ms: AtomicI64,
    pub status: Mutex<SourceStatus>,
    pub sites: Mutex<HashMap<String, SiteSeen>>,
    /// API calls of the last minute (ms timestamps), for `/status`.
    pub recent_calls: Mutex<std::collections::VecDeque<i64>>,
}

impl SourceMetrics {
    pub fn new(source: &str, app: &str) -> Self {
        Self { source: source.to_string(), app: app.to_string(), ..Self::default() }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn api_call(&self, status_class: &str, now_ms: i64, seconds: f64) {
        *lock(&self.api_requests).entry(status_class.to_string()).or_default() += 1;
        self.api_seconds_sum.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        let mut calls = lock(&self.recent_calls);
        calls.push_back(now_ms);
        while calls.front().is_some_and(|t| now_ms - t >= 60_000) {
            calls.pop_front();
        }
    }

    pub fn calls_last_minute(&self, now_ms: i64) -> usize {
        lock(&self.recent_calls).iter().filter(|t| now_ms - **t < 60_000).count()
    }

    pub fn tick(&self, now_ms: i64) {
        self.last_tick_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn update(&self, f: impl FnOnce(&mut SourceStatus)) {
        f(&mut lock(&self.status));
    }

    pub fn status(&self) -> SourceStatus {
        lock(&self.status).clone()
    }

    /// Notes a record of `site` at `ts_ms` (record time).
    pub fn site_seen(&self, site: &str, ts_ms: i64) {
        let mut sites = lock(&self.sites);
        let seen = sites.entry(site.to_string()).or_default();
        if seen.records > 0 && ts_ms > seen.last_record_ms {
            let gap = (ts_ms - seen.last_record_ms) as f64;
            seen.typical_gap_ms = if seen.typical_gap_ms == 0.0 { gap } else { 0.9 * seen.typical_gap_ms + 0.1 * gap };
        }
        seen.last_record_ms = seen.last_record_ms.max(ts_ms);
        seen.records += 1;
    }
}

/// Every source's metrics.
#[derive(Debug, Default)]
pub struct Registry {
    sources: Mutex<Vec<Arc<SourceMetrics>>>,
}

impl Registry {
    pub fn source(&self, source: &str, app: &str) -> Arc<SourceMetrics> {
        let m = Arc::new(SourceMetrics::new(source, app));
        lock(&self.sources).push(m.clone());
        m
    }

    pub fn sources(&self) -> Vec<Arc<SourceMetrics>> {
        lock(&self.sources).clone()
    }
}
