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
    /// Records of the current page not yet answered for by the backend.
    pub in_flight: AtomicU64,
    pub gap_seconds: AtomicU64,
    pub gave_up_pages: AtomicU64,
    /// Records only the second pass found.
    pub found_late: AtomicU64,
    /// Seconds of time the second pass skipped because the delivered-record memory was full.
    pub late_pass_skipped_seconds: AtomicU64,
    pub arrival_delay_seconds_sum: Mutex<f64>,
    pub arrival_delay_count: AtomicU64,
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

    /// A delivered record was first seen `secs` after its own timestamp.
    pub fn observe_arrival_delay(&self, secs: f64) {
        *lock(&self.arrival_delay_seconds_sum) += secs;
        self.arrival_delay_count.fetch_add(1, Ordering::Relaxed);
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
        self.sites_seen([(site, ts_ms)]);
    }

    /// [`Self::site_seen`] for each record of a page, in order, under one lock.
    pub fn sites_seen<'a>(&self, records: impl IntoIterator<Item = (&'a str, i64)>) {
        let mut sites = lock(&self.sites);
        for (site, ts_ms) in records {
            // The hot path: look up without allocating a key; allocate only for a new site.
            if !sites.contains_key(site) {
                sites.insert(site.to_string(), SiteSeen::default());
            }
            let Some(seen) = sites.get_mut(site) else { continue };
            if seen.records > 0 && ts_ms > seen.last_record_ms {
                let gap = (ts_ms - seen.last_record_ms) as f64;
                seen.typical_gap_ms =
                    if seen.typical_gap_ms == 0.0 { gap } else { 0.9 * seen.typical_gap_ms + 0.1 * gap };
            }
            seen.last_record_ms = seen.last_record_ms.max(ts_ms);
            seen.records += 1;
        }
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

/// Prometheus text exposition of every source's counters.
pub fn render_prometheus(registry: &Registry, now_ms: i64, ready: bool) -> String {
    use std::fmt::Write;
    let sources = registry.sources();
    let mut out = String::with_capacity(4096);
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let labels = |m: &SourceMetrics| format!("app=\"{}\",source=\"{}\"", esc(&m.app), esc(&m.source));
    let counter = |f: &dyn Fn(&SourceMetrics) -> u64| -> Vec<(String, f64)> {
        sources.iter().map(|m| (labels(m), f(m) as f64)).collect()
    };
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

    let mut api = Vec::new();
    for m in &sources {
        for (status, n) in lock(&m.api_requests).iter() {
            api.push((format!("{},status=\"{}\"", labels(m), esc(status)), *n as f64));
        }
    }
    family("forge_sidecar_api_requests_total", "counter", "Forge API calls by answer.", api);
    let calls = |m: &SourceMetrics| lock(&m.api_requests).values().sum::<u64>();
    family(
        "forge_sidecar_api_request_duration_seconds_sum",
        "counter",
        "Total time spent in Forge API calls.",
        sources.iter().map(|m| (labels(m), load(&m.api_seconds_sum) as f64 / 1e6)).collect(),
    );
    family("forge_sidecar_api_request_duration_seconds_count", "counter", "Forge API calls timed.", counter(&calls));
    family(
        "forge_sidecar_rate_limited_total",
        "counter",
        "429 answers from the Forge API.",
        counter(&|m| load(&m.rate_limited)),
    );
    family("forge_sidecar_pages_total", "counter", "Pages fetched and processed.", counter(&|m| load(&m.pages)));
    family(
        "forge_sidecar_received_log_records_total",
        "counter",
        "Records fetched inside their window (received = sent + rejected + dead-lettered + duplicates + in flight).",
        counter(&|m| load(&m.received)),
    );
    family(
        "forge_sidecar_sent_log_records_total",
        "counter",
        "Records accepted by the backend.",
        counter(&|m| load(&m.sent)),
    );
    family(
        "forge_sidecar_rejected_log_records_total",
        "counter",
        "Records the backend refused in a partial success.",
        counter(&|m| load(&m.rejected)),
    );
    family(
        "forge_sidecar_send_failed_log_records_total",
        "counter",
        "Records whose export failed for good.",
        counter(&|m| load(&m.send_failed)),
    );
    family(
        "forge_sidecar_dead_lettered_log_records_total",
        "counter",
        "Records written to the dead-letter file.",
        counter(&|m| load(&m.dead_lettered)),
    );
    family(
        "forge_sidecar_duplicate_log_records_total",
        "counter",
        "Records dropped as already delivered.",
        counter(&|m| load(&m.duplicates)),
    );
    family(
        "forge_sidecar_in_flight_log_records",
        "gauge",
        "Records awaiting the backend's answer.",
        counter(&|m| load(&m.in_flight)),
    );
    family(
        "forge_sidecar_out_of_window_log_records_total",
        "counter",
        "Records outside the queried window (edge records), left to the neighbouring window.",
        counter(&|m| load(&m.out_of_window)),
    );
    family(
        "forge_sidecar_export_retries_total",
        "counter",
        "Export attempts retried.",
        counter(&|m| load(&m.export_retries)),
    );
    family(
        "forge_sidecar_export_duration_seconds_sum",
        "counter",
        "Total time spent in export requests.",
        sources.iter().map(|m| (labels(m), load(&m.export_micros_sum) as f64 / 1e6)).collect(),
    );
    family(
        "forge_sidecar_export_duration_seconds_count",
        "counter",
        "Export requests timed.",
        counter(&|m| load(&m.export_requests)),
    );
    family(
        "forge_sidecar_watermark_lag_seconds",
        "gauge",
        "Now minus the first-pass watermark.",
        sources.iter().map(|m| (labels(m), lag_seconds(m.watermark_ms.load(Ordering::Relaxed), now_ms))).collect(),
    );
    family(
        "forge_sidecar_late_watermark_lag_seconds",
        "gauge",
        "Now minus the second-pass (late records) watermark.",
        sources.iter().map(|m| (labels(m), lag_seconds(m.late_watermark_ms.load(Ordering::Relaxed), now_ms))).collect(),
    );
    family(
        "forge_sidecar_gap_seconds_total",
        "counter",
        "Seconds of history that could not be read (older than 14 days, or pages given up).",
        counter(&|m| load(&m.gap_seconds)),
    );
    family(
        "forge_sidecar_abandoned_pages_total",
        "counter",
        "Pages given up after repeated failures.",
        counter(&|m| load(&m.gave_up_pages)),
    );
    family(
        "forge_sidecar_cursor_loops_total",
        "counter",
        "Cursor loops detected and cut.",
        counter(&|m| load(&m.cursor_loops)),
    );
    family(
        "forge_sidecar_invalid_timestamp_log_records_total",
        "counter",
        "Records delivered with an unparsable timestamp.",
        counter(&|m| load(&m.bad_time)),
    );
    family(
        "forge_sidecar_invalid_id_log_records_total",
        "counter",
        "Records with a malformed trace or span id (id dropped).",
        counter(&|m| load(&m.bad_ids)),
    );
    let mut states = Vec::new();
    for m in &sources {
        let current = m.status().state;
        for s in [
            SourceState::Starting,
            SourceState::CatchingUp,
            SourceState::Live,
            SourceState::Throttled,
            SourceState::Error,
            SourceState::Stopped,
        ] {
            let name = serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            states.push((format!("{},state=\"{name}\"", labels(m)), f64::from(u8::from(current == s))));
        }
    }
    family("forge_sidecar_source_state", "gauge", "1 for the state each source is in.", states);
    family(
        "forge_sidecar_ready",
        "gauge",
        "1 when every source is ready.",
        vec![(String::new(), f64::from(u8::from(ready)))],
    );
    if let Some((rss, cpu)) = process_usage() {
        family("process_resident_memory_bytes", "gauge", "Resident memory.", vec![(String::new(), rss as f64)]);
        family("process_cpu_seconds_total", "counter", "CPU time, user and system.", vec![(String::new(), cpu)]);
    }
    out.replace("{}", "")
}

fn lag_seconds(mark_ms: i64, now_ms: i64) -> f64 {
    if mark_ms == 0 { 0.0 } else { ((now_ms - mark_ms) as f64 / 1000.0).max(0.0) }
}

/// Resident memory (bytes) and CPU seconds of this process, on Linux.
pub fn process_usage() -> Option<(u64, f64)> {
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
