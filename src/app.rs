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
    sources: JoinSet<()>,
    server: Option<tokio::task::JoinHandle<()>>,
    telemetry: Option<crate::telemetry::Telemetry>,
    _lock: DirLock,
}

/// Options for embedding (the demo and tests).
#[derive(Default)]
pub struct Options {
    /// Replaces the transport built from `exporter` (the demo's console).
    pub transport: Option<Transport>,
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
        let mut budgets: HashMap<String, Arc<Budget>> = HashMap::new();
        let cancel = CancellationToken::new();
        let mut sources = JoinSet::new();
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
            let task = SourceTask::new(source.clone(), budget, metrics, shared.clone());
            sources.spawn(task.run(cancel.child_token()));
        }
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
        let telemetry = match &cfg.telemetry.otlp {
            Some(t) => {
                let started = crate::telemetry::Telemetry::start(t, &cfg.exporter, registry.clone())?;
                tracing::info!(endpoint = %t.endpoint, interval = ?t.interval, "pushing the sidecar's own metrics over OTLP");
                Some(started)
            }
            None => None,
        };
        tracing::info!(sources = cfg.sources.len(), apps = budgets.len(), "forge-otel-sidecar started");
        Ok(Self { registry, server_addr, cancel, server_cancel, sources, server, telemetry, _lock: lock })
    }

    /// Staged shutdown. True when every source stopped within `grace`.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        tracing::info!(grace = ?grace, "shutting down: finishing exports in flight and saving checkpoints");
        self.cancel.cancel();
        let sources = async { while self.sources.join_next().await.is_some() {} };
        let clean = tokio::time::timeout(grace, sources).await.is_ok();
        if !clean {
            tracing::warn!(
                "sources still busy after the grace period; abandoning them (their checkpoints did not move)"
            );
            self.sources.abort_all();
        }
        self.server_cancel.cancel();
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s).await;
        }
        if let Some(t) = self.telemetry.take() {
            // The SDK's shutdown blocks while it pushes the last values.
            let _ =
                tokio::time::timeout(Duration::from_secs(5), tokio::task::spawn_blocking(move || t.shutdown())).await;
        }
        clean
    }

    /// Stops everything at once, as a crash would (tests).
    pub fn abort(mut self) {
        self.sources.abort_all();
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}
