//! Wiring: one task per source, one budget per app, the exporter, the
//! HTTP server, and a staged shutdown.
//!
//! Shutdown order: stop taking new pages (cancel), let each source finish
//! the export in flight and save its checkpoint, then stop the server.
//! Each stage runs under the grace period; what is still running after it
//! is abandoned, which loses nothing (the checkpoint did not move).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{DirLock, Store};
use crate::config::Config;
use crate::export::{DeadLetter, Exporter, Transport};
use crate::forge::client::ForgeClient;
use crate::metrics::Registry;
use crate::poller::budget::Budget;
use crate::poller::budget::memory::Memory;
use crate::poller::{Clock, Shared, SourceTask, SystemClock};

pub struct App {
    pub registry: Arc<Registry>,
    pub server_addr: Option<SocketAddr>,
    cancel: CancellationToken,
    server_cancel: CancellationToken,
    /// The supervisor of the source tasks; ends when they all have.
    sources: tokio::task::JoinHandle<()>,
    server: Option<tokio::task::JoinHandle<()>>,
    telemetry: Option<crate::telemetry::Telemetry>,
    /// Each app's budget, whose memory is written exactly at a clean stop.
    budgets: Vec<Arc<Budget>>,
    _lock: DirLock,
}

/// Options for embedding (the demo and tests).
#[derive(Default)]
pub struct Options {
    /// Replaces the transport built from `exporter` (the demo's console).
    pub transport: Option<Transport>,
    /// Replaces the metrics sources' transport (the demo's metrics console).
    pub metrics_transport: Option<crate::export::metrics::MetricsTransport>,
    pub clock: Option<Arc<dyn Clock>>,
}

impl App {
    pub async fn start(cfg: Config, options: Options) -> anyhow::Result<Self> {
        let lock = DirLock::acquire(&cfg.state.dir).map_err(anyhow::Error::msg)?;
        let client = ForgeClient::new(&cfg.forge).context("Forge API client")?;
        let transport = match options.transport {
            Some(t) => t,
            None => Transport::new(&cfg.exporter).context("exporter")?,
        };
        let exporter = Exporter::new(
            transport,
            cfg.exporter.retry.clone(),
            DeadLetter::new(&cfg.state.dir, cfg.state.dead_letter_max_bytes),
        );
        let shared = Arc::new(Shared {
            client,
            exporter,
            store: Store::new(&cfg.state.dir),
            poll: cfg.poll.clone(),
            max_request_bytes: cfg.exporter.max_request_bytes,
            max_pages_per_window: cfg.forge.max_pages_per_window,
            max_server_delay: cfg.forge.max_retry_delay,
            clock: options.clock.unwrap_or_else(|| Arc::new(SystemClock)),
        });
        let registry = Arc::new(Registry::default());
        // Started before the sources, so the push sees their first calls too.
        let telemetry = match &cfg.telemetry.otlp {
            Some(t) => {
                let started = crate::telemetry::Telemetry::start(t, &cfg.exporter, registry.clone())?;
                tracing::info!(endpoint = %t.endpoint, interval = ?t.interval, "pushing the sidecar's own metrics over OTLP");
                Some(started)
            }
            None => None,
        };
        let mut budgets: HashMap<String, Arc<Budget>> = HashMap::new();
        let cancel = CancellationToken::new();
        let mut specs = Vec::new();
        for source in &cfg.sources {
            let budget = budgets
                .entry(source.app_id.clone())
                .or_insert_with(|| {
                    let limit = cfg.forge.requests_per_minute;
                    let memory = Memory::open(&cfg.state.dir, &source.app_id, limit as usize);
                    Arc::new(Budget::with_memory(&source.app_id, limit, cfg.forge.rate_period, memory))
                })
                .clone();
            let metrics = registry.source(&source.name, &source.app_id);
            specs.push(Spec { source: source.clone(), budget, metrics });
        }
        let demand = demand_per_minute(&cfg);
        let metrics_sources = crate::poller::metrics_source::spawn_sources(
            &cfg,
            &registry,
            shared.clock.clone(),
            options.metrics_transport,
            &cancel,
        )?;
        let logs = supervise(specs, shared.clone(), cancel.clone());
        let sources = tokio::spawn(async move {
            tokio::join!(logs, metrics_sources);
        });
        tokio::spawn(report_budgets(budgets.clone(), demand, shared.clone(), registry.clone(), cancel.clone()));
        let server_cancel = CancellationToken::new();
        let (server, server_addr) = match cfg.server.listen {
            Some(addr) => {
                let state = crate::server::ServerState::new(registry.clone(), &cfg);
                let (handle, addr) = crate::server::spawn(addr, state, server_cancel.clone())
                    .await
                    .with_context(|| format!("server.listen {addr}"))?;
                tracing::info!(%addr, "serving /healthz /readyz /metrics /status");
                (Some(handle), Some(addr))
            }
            None => (None, None),
        };
        tracing::info!(sources = cfg.sources.len(), apps = budgets.len(), "forge-otel-sidecar started");
        let budgets = budgets.into_values().collect();
        Ok(Self { registry, server_addr, cancel, server_cancel, sources, server, telemetry, budgets, _lock: lock })
    }

    /// Staged shutdown. True when every source stopped within `grace`.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        tracing::info!(grace = ?grace, "shutting down: finishing exports in flight and saving checkpoints");
        self.cancel.cancel();
        let clean = tokio::time::timeout(grace, &mut self.sources).await.is_ok();
        if !clean {
            tracing::warn!(
                "sources still busy after the grace period; abandoning them (their checkpoints did not move)"
            );
            // Dropping the supervisor's set aborts every source task.
            self.sources.abort();
        }
        self.server_cancel.cancel();
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s).await;
        }
        // The calls made, without the reserve a crash would leave.
        let budgets = std::mem::take(&mut self.budgets);
        let release = tokio::task::spawn_blocking(move || budgets.iter().for_each(|b| b.release_memory()));
        let _ = tokio::time::timeout(Duration::from_secs(2), release).await;
        if let Some(t) = self.telemetry.take() {
            // The SDK's shutdown blocks while it pushes the last values.
            let _ =
                tokio::time::timeout(Duration::from_secs(5), tokio::task::spawn_blocking(move || t.shutdown())).await;
        }
        clean
    }

    /// Stops everything at once, as a crash would (tests).
    pub fn abort(mut self) {
        self.sources.abort();
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// What a source task is started from (and restarted from, after a panic).
struct Spec {
    source: crate::config::SourceConfig,
    budget: Arc<Budget>,
    metrics: Arc<crate::metrics::SourceMetrics>,
}

/// Runs every source task; one that ends by a panic while the process is
/// not shutting down is reported and started again after a pause, so a
/// bug in one source can neither stop it for good unnoticed nor take the
/// others down. Ends when every task has stopped.
async fn supervise(specs: Vec<Spec>, shared: Arc<Shared>, cancel: CancellationToken) {
    const RESTART_PAUSE: Duration = Duration::from_secs(5);
    let mut set = JoinSet::new();
    let mut ids = HashMap::new();
    let spawn = |set: &mut JoinSet<()>, spec: &Spec| {
        let task = SourceTask::new(spec.source.clone(), spec.budget.clone(), spec.metrics.clone(), shared.clone());
        set.spawn(task.run(cancel.child_token())).id()
    };
    for (i, spec) in specs.iter().enumerate() {
        ids.insert(spawn(&mut set, spec), i);
    }
    while let Some(ended) = set.join_next_with_id().await {
        let Err(e) = ended else { continue };
        let Some(spec) = ids.remove(&e.id()).and_then(|i| specs.get(i).map(|s| (i, s))) else { continue };
        if !e.is_panic() || cancel.is_cancelled() {
            continue;
        }
        let (i, spec) = spec;
        let message = format!("source task failed: {e}; restarting it in {}s", RESTART_PAUSE.as_secs());
        tracing::error!(source = %spec.source.name, "{message}");
        let now = shared.clock.now_ms();
        spec.metrics.update(|s| {
            s.state = crate::metrics::SourceState::Error;
            s.last_api_error = Some(crate::metrics::LastError { at_ms: now, message });
        });
        if !crate::wait::wait(RESTART_PAUSE, &cancel, &|| {}).await {
            continue;
        }
        ids.insert(spawn(&mut set, spec), i);
    }
}

/// Calls per minute each app's sources need to keep to their `interval`:
/// every site group of every source, once per interval, for each pass.
/// The configured demand: a pass that waits reads a longer window instead
/// of more windows, so the calls made stay within the budget.
fn demand_per_minute(cfg: &Config) -> HashMap<String, f64> {
    let interval = cfg.poll.interval;
    crate::poller::demand::calls_per_round(cfg)
        .into_iter()
        .map(|(app, calls)| (app, crate::poller::demand::per_minute(calls, interval)))
        .collect()
}

/// Keeps the budget and clock figures on /metrics and /status current,
/// and warns once per app when the configured interval cannot be met.
async fn report_budgets(
    budgets: HashMap<String, Arc<Budget>>,
    demand: HashMap<String, f64>,
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    cancel: CancellationToken,
) {
    let mut warned = std::collections::HashSet::new();
    loop {
        for (app, b) in &budgets {
            let per_minute = 60.0 / b.period().as_secs_f64().max(0.001);
            let effective = b.effective_rate() * per_minute;
            let needed = demand.get(app).copied().unwrap_or(0.0);
            registry.set_budget(app, needed, effective);
            if let Some(offset) = shared.client.api_clock_offset_ms() {
                registry.set_clock_skew(app, offset as f64 / 1000.0);
            }
            if needed > b.limit() as f64 * per_minute && warned.insert(app.clone()) {
                tracing::warn!(app = %app, needed_per_minute = needed, budget_per_minute = b.limit() as f64 * per_minute, "the configured poll.interval cannot be met within this app's API budget; windows grow instead (earliest deadline first), see /status");
            }
        }
        if !crate::wait::wait(Duration::from_secs(5), &cancel, &|| {}).await {
            return;
        }
    }
}
