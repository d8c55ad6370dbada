//! A built-in simulator of the Forge App logs API, faithful to its
//! documented rules: Basic auth, 404 for unknown apps and environments,
//! strict dates, at most one hour per window and 14 days back, at most 50
//! sites, opaque cursors bound to their query, a per-app rate limit shared
//! by the app's environments, late records, and fault knobs for tests.
//! [`behaviour`] adds what the field has shown beyond the documentation:
//! another client on the same budget, other 429 styles, a clock offset,
//! moved window edges, identical twins, shuffled pages, expiring cursors
//! and odd trace ids.
//!
//! Records are generated from a seed on demand ([`data`]), so memory does
//! not grow with the history. Introspection for tests lives off the API
//! path, under `/_sim/`: the sequence numbers of all records before a time
//! (one entry per copy), the request log, the fault and behaviour knobs.
//!
//! The App metrics API's GraphQL endpoint is [`metrics`], its data
//! [`metrics_data`], with its own request log and fault knobs under
//! `/_sim/metrics/`.

mod api;
pub mod behaviour;
pub mod data;
mod limiter;
pub mod metrics;
pub mod metrics_data;
mod page;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::timefmt::system_millis;
pub use behaviour::{Behaviour, RateLimitStyle};
pub use data::{Generator, Stream};
pub use metrics::{MetricsFaults, MetricsRequest, MetricsSimConfig};
pub use metrics_data::SimPoint;

/// How the simulator behaves. `Default` is the demo's setting.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// (app id, environment ids).
    pub apps: Vec<(String, Vec<String>)>,
    pub email: String,
    pub token: String,
    /// How much history exists before the simulator started (at most 14 days).
    pub history: Duration,
    pub records_per_second: f64,
    pub page_size: usize,
    /// Calls allowed per app in any `rate_window`; 0 switches the limit off.
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub late_fraction: f64,
    pub max_late: Duration,
    pub edge_fraction: f64,
    /// Treat `endDate` as inclusive: the same as `behaviour.end_inclusive`.
    pub inclusive_end: bool,
    pub sites: usize,
    pub pad_bytes: usize,
    pub faults: Faults,
    /// The field's behaviours, changeable at run time (`/_sim/behaviour`).
    pub behaviour: Behaviour,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            apps: vec![("demo-app".into(), vec!["production".into()])],
            email: "demo@example.com".into(),
            token: "demo-token".into(),
            history: Duration::from_secs(3 * 3600),
            records_per_second: 2.0,
            page_size: 100,
            rate_limit: 30,
            rate_window: Duration::from_secs(60),
            late_fraction: 0.05,
            max_late: Duration::from_secs(120),
            edge_fraction: 0.02,
            inclusive_end: false,
            sites: 8,
            pad_bytes: 0,
            faults: Faults::default(),
            behaviour: Behaviour::default(),
        }
    }
}

/// Fault knobs, changeable at run time (`PUT /_sim/faults` or [`SimHandle::set_faults`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability of a 500 answer.
    pub p_500: f64,
    /// Probability of a 503 answer.
    pub p_503: f64,
    /// Probability of a 429 without `Retry-After`.
    pub p_429_no_retry_after: f64,
    /// Answer 429 with this `Retry-After` (seconds) to the next `n_429` calls.
    pub n_429: u32,
    /// Answer 400 ("window out of range") to the next `n_400` calls.
    pub n_400: u32,
    pub retry_after_secs: u64,
    /// When set, the `Retry-After` of those 429s verbatim instead (an HTTP
    /// date, a number past any sane wait).
    pub retry_after_text: Option<String>,
    /// Probability of a 200 with malformed JSON.
    pub p_malformed: f64,
    /// Probability of a 200 whose body is cut in half.
    pub p_truncated: f64,
    /// Probability of a 200 with an HTML body.
    pub p_html: f64,
    /// Probability and length of a slow answer.
    pub p_slow: f64,
    pub slow_ms: u64,
    /// Every page returns the cursor it was asked with (or the first cursor) forever.
    pub cursor_loop: bool,
    /// The first page of any window containing this time (ms since epoch) is always malformed.
    pub broken_at_ms: Option<i64>,
    /// Records of these site numbers with timestamps from `silent_after_ms` on
    /// are withheld (a site admin switched log access off).
    pub silent_sites: Vec<usize>,
    pub silent_after_ms: i64,
}

/// One API call as the simulator saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    pub app: String,
    #[serde(default)]
    pub environment: String,
    pub status: u16,
}

const REQUEST_LOG_CAP: usize = 200_000;

/// The record index inside a sequence number (see [`Generator::seq`]).
const INDEX_MASK: u64 = (1 << 40) - 1;

pub(crate) struct SimState {
    pub config: SimConfig,
    pub generator: Generator,
    pub streams: Vec<Stream>,
    pub faults: Mutex<Faults>,
    pub behaviour: Mutex<Behaviour>,
    pub counter: AtomicU64,
    pub rate: Mutex<HashMap<String, limiter::Limiter>>,
    pub log: Mutex<VecDeque<RequestRecord>>,
    /// The App metrics endpoint (`POST /graphql`).
    pub metrics: metrics::MetricsState,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SimState {
    fn new(config: SimConfig, metrics: MetricsSimConfig, now: SystemTime) -> Self {
        let history = config.history.min(crate::config::API_RETENTION);
        let t0_ns = (system_millis(now) - history.as_millis() as i64) * 1_000_000;
        let step_ns = (1e9 / config.records_per_second.max(1e-6)) as i64;
        let generator = Generator {
            seed: config.seed,
            t0_ns,
            step_ns: step_ns.max(1),
            late_permille: (config.late_fraction.clamp(0.0, 1.0) * 1000.0) as u64,
            max_late_ns: config.max_late.as_nanos() as i64,
            edge_permille: (config.edge_fraction.clamp(0.0, 1.0) * 1000.0) as u64,
            sites: (0..config.sites).map(|n| data::site_id(config.seed, n)).collect(),
            pad_bytes: config.pad_bytes,
        };
        let mut streams = Vec::new();
        for (app, envs) in &config.apps {
            for env in envs {
                streams.push(Stream { app_id: app.clone(), environment_id: env.clone(), index: streams.len() as u64 });
            }
        }
        let mut behaviour = config.behaviour.clone();
        behaviour.end_inclusive |= config.inclusive_end;
        Self {
            metrics: metrics::MetricsState::new(metrics, config.seed, t0_ns),
            faults: Mutex::new(config.faults.clone()),
            behaviour: Mutex::new(behaviour),
            config,
            generator,
            streams,
            counter: AtomicU64::new(0),
            rate: Mutex::new(HashMap::new()),
            log: Mutex::new(VecDeque::new()),
        }
    }

    /// `at_ms`: when the call arrived (a page takes a while to build; the
    /// rate limit counts the call at its arrival).
    fn record_request(&self, at_ms: i64, app: &str, environment: &str, status: u16) {
        let mut log = lock(&self.log);
        if log.len() >= REQUEST_LOG_CAP {
            log.pop_front();
        }
        log.push_back(RequestRecord { at_ms, app: app.to_string(), environment: environment.to_string(), status });
    }

    /// One entry per copy: a twinned record's seq appears twice.
    fn seqs_before(&self, before_ms: i64) -> Vec<u64> {
        let b = lock(&self.behaviour).clone();
        let mut all = Vec::new();
        for s in &self.streams {
            for seq in self.generator.seqs_before(s, before_ms.saturating_mul(1_000_000)) {
                for _ in 0..b.copies(seq & INDEX_MASK) {
                    all.push(seq);
                }
            }
        }
        all
    }
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// The API base URL (`forge.base_url`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every sequence number (all streams) with a timestamp before `before`,
    /// once per copy the API holds (twice for a twinned record).
    pub fn seqs_before(&self, before: SystemTime) -> Vec<u64> {
        self.state.seqs_before(system_millis(before))
    }

    /// How many copies of record `seq` the API holds under the current knobs.
    pub fn copies_of(&self, seq: u64) -> usize {
        lock(&self.state.behaviour).copies(seq & INDEX_MASK) as usize
    }

    /// The earlier of `host` and the API's time at `host`: records before it
    /// exist by both clocks, so an oracle can expect them.
    pub fn settled(&self, host: SystemTime) -> SystemTime {
        let offset = lock(&self.state.behaviour).clock_offset_ms.min(0);
        host.checked_sub(Duration::from_millis(offset.unsigned_abs())).unwrap_or(host)
    }

    pub fn behaviour(&self) -> Behaviour {
        lock(&self.state.behaviour).clone()
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    /// Calls of the simulated other client admitted by the rate limit so far (all apps).
    pub fn other_client_calls(&self) -> u64 {
        lock(&self.state.rate).values().map(|l| l.other_admitted).sum()
    }

    /// The timestamp (ns) of the first record of every stream.
    pub fn history_start_ns(&self) -> i64 {
        self.state.generator.t0_ns
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state.log).iter().cloned().collect()
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    pub fn generator(&self) -> &Generator {
        &self.state.generator
    }

    pub fn streams(&self) -> &[Stream] {
        &self.state.streams
    }

    /// Every App metrics data point, final values, of every app,
    /// environment and metric, ending before `before`.
    pub fn metric_points(&self, before: SystemTime) -> Vec<SimPoint> {
        metrics::all_points(&self.state, system_millis(before))
    }

    /// The App metrics calls seen so far, oldest first.
    pub fn metrics_requests(&self) -> Vec<MetricsRequest> {
        lock(&self.state.metrics.log).iter().cloned().collect()
    }

    pub fn set_metrics_faults(&self, faults: MetricsFaults) {
        *lock(&self.state.metrics.faults) = faults;
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// The most calls of `app` in any window of `window` length, from a request log.
pub fn max_calls_in_window(log: &[RequestRecord], app: &str, window: Duration) -> usize {
    // By arrival: calls answered at once may be logged before a slower earlier one.
    let mut times: Vec<i64> = log.iter().filter(|r| r.app == app).map(|r| r.at_ms).collect();
    times.sort_unstable();
    let w = window.as_millis() as i64;
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= w {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Starts the simulator on `listen` (port 0 picks a free port).
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    start_with_metrics(config, MetricsSimConfig::default(), listen).await
}

/// [`start`] with the App metrics endpoint's own settings.
pub async fn start_with_metrics(
    config: SimConfig,
    metrics: MetricsSimConfig,
    listen: SocketAddr,
) -> std::io::Result<SimHandle> {
    let state = Arc::new(SimState::new(config, metrics, SystemTime::now()));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let router = api::router(state.clone());
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move { token.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "simulator server failed");
        }
    });
    Ok(SimHandle { addr, state, shutdown, task })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_field;
#[cfg(test)]
mod tests_metrics;
