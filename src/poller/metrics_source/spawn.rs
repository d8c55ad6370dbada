//! Starting the metrics sources: one client per source (its own account),
//! one budget per account, a restart after a panic, and the accounts'
//! rates on /metrics and /status.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::Clock;
use super::super::budget::Budget;
use super::{CALLS_PER_PERIOD, MetricsShared, MetricsSourceTask, RESTART_PAUSE, account_key};
use crate::checkpoint::Store;
use crate::export::metrics::MetricsExporter;
use crate::forge::metrics_client::MetricsClient;

/// Starts a task per metrics source, one client per source (its own
/// account) and one budget per account; the future ends when they all have.
/// `metrics_transport` replaces the one the config describes (the demo's console).
/// A task that panics while the process is not shutting down is reported
/// and started again after a pause, as log sources are.
pub fn spawn_sources(
    cfg: &crate::config::Config,
    registry: &Arc<crate::metrics::Registry>,
    clock: Arc<dyn Clock>,
    metrics_transport: Option<crate::export::metrics::MetricsTransport>,
    cancel: &CancellationToken,
) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use crate::export::metrics::MetricsTransport;
    let mut set = tokio::task::JoinSet::new();
    if !cfg.metrics_sources.is_empty() {
        // `OTEL_EXPORTER_OTLP_METRICS_*` over the general variables, as the logs exporter reads its own.
        let exporter = cfg.metrics_exporter.as_ref().unwrap_or(&cfg.exporter);
        let transport = match metrics_transport {
            Some(t) => t,
            None => MetricsTransport::new(exporter).map_err(|e| anyhow::anyhow!("metrics exporter: {e}"))?,
        };
        let shared = Arc::new(MetricsShared {
            exporter: MetricsExporter::new(
                transport,
                exporter.retry.clone(),
                &cfg.state.dir,
                cfg.state.dead_letter_max_bytes,
            ),
            store: Store::new(&cfg.state.dir),
            poll: cfg.poll.clone(),
            max_server_delay: cfg.forge.max_retry_delay,
            clock,
        });
        let mut budgets: std::collections::HashMap<String, Arc<Budget>> = std::collections::HashMap::new();
        for s in &cfg.metrics_sources {
            let email = s.email(&cfg.forge);
            let client = MetricsClient::new(&cfg.forge, email, s.token(&cfg.forge))
                .map_err(|e| anyhow::anyhow!("metrics source {}: {e}", s.name))?;
            let key = account_key(email);
            let budget = budgets
                .entry(key.clone())
                .or_insert_with(|| {
                    let memory =
                        crate::poller::budget::memory::Memory::open(&cfg.state.dir, &key, CALLS_PER_PERIOD as usize);
                    Arc::new(Budget::with_memory(&key, CALLS_PER_PERIOD, cfg.forge.rate_period, memory))
                })
                .clone();
            let info = crate::metrics::MetricsSourceInfo {
                environments: s.environments.clone(),
                account: key,
                calls_per_period: CALLS_PER_PERIOD,
            };
            let metrics = registry.metrics_source(&s.name, &s.app_id, info);
            let (source, client, shared, cancel) = (s.clone(), Arc::new(client), shared.clone(), cancel.clone());
            set.spawn(async move {
                loop {
                    let task = MetricsSourceTask::new(
                        source.clone(),
                        client.clone(),
                        budget.clone(),
                        metrics.clone(),
                        shared.clone(),
                    );
                    let ended = tokio::spawn(task.run(cancel.child_token())).await;
                    let Err(e) = ended else { return };
                    if !e.is_panic() || cancel.is_cancelled() {
                        return;
                    }
                    let message =
                        format!("metrics source task failed: {e}; restarting it in {}s", RESTART_PAUSE.as_secs());
                    tracing::error!(source = %source.name, "{message}");
                    let now = shared.clock.now_ms();
                    metrics.update(|st| {
                        st.state = crate::metrics::SourceState::Error;
                        st.last_api_error = Some(crate::metrics::LastError { at_ms: now, message });
                    });
                    if !crate::wait::wait(RESTART_PAUSE, &cancel, &|| {}).await {
                        return;
                    }
                }
            });
        }
        set.spawn(report_budgets(budgets.clone(), registry.clone(), cancel.clone()));
        tracing::info!(
            metrics_sources = cfg.metrics_sources.len(),
            accounts = budgets.len(),
            "App metrics sources started"
        );
    }
    Ok(async move { while set.join_next().await.is_some() {} })
}

/// Keeps each account's effective rate on /metrics and /status current.
async fn report_budgets(
    budgets: std::collections::HashMap<String, Arc<Budget>>,
    registry: Arc<crate::metrics::Registry>,
    cancel: CancellationToken,
) {
    loop {
        for (key, b) in &budgets {
            let per_minute = 60.0 / b.period().as_secs_f64().max(0.001);
            registry.set_budget(key, 0.0, b.effective_rate() * per_minute);
        }
        if !crate::wait::wait(Duration::from_secs(5), &cancel, &|| {}).await {
            return;
        }
    }
}
