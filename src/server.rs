//! The operator's view: `/healthz`, `/readyz`, `/metrics`, `/status`.
//!
//! Liveness fails only when a source loop stops ticking (restarting helps
//! then); dependency trouble (bad token, collector down, API errors) shows
//! on readiness and `/status` instead, where a restart would not help
//! (DESIGN.md 11). Nothing here ever prints a secret: errors are stored
//! already rendered from typed errors that carry none.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::prometheus::CONTENT_TYPE;
use crate::metrics::{Registry, SourceMetrics, lock, render_prometheus};
use crate::timefmt::{format_millis, system_millis};

#[derive(Clone)]
pub(crate) struct ServerState {
    pub registry: Arc<Registry>,
    /// A loop that has not ticked for this long is stuck.
    pub stuck_after: Duration,
    /// A source whose last good poll is older than this is not ready.
    pub stale_after: Duration,
    pub site_silence_after: Duration,
    pub settle_delay: Duration,
    /// Each app's static demand figures, for its block on `/status`.
    pub apps: Arc<Vec<AppPlan>>,
    pub clock: fn() -> i64,
}

/// What `/status` needs to know of an app besides the registry.
#[derive(Debug, Clone)]
pub(crate) struct AppPlan {
    pub app: String,
    /// Its log sources' names (metrics sources have their own budget).
    pub sources: Vec<String>,
    pub calls_per_round: f64,
    pub interval: Duration,
    pub settle: Duration,
    pub late: Duration,
    pub budget_per_minute: f64,
}

fn app_plans(cfg: &Config) -> Vec<AppPlan> {
    let per_minute = 60.0 / cfg.forge.rate_period.as_secs_f64().max(0.001);
    crate::poller::demand::calls_per_round(cfg)
        .into_iter()
        .map(|(app, calls_per_round)| AppPlan {
            sources: cfg.sources.iter().filter(|s| s.app_id == app).map(|s| s.name.clone()).collect(),
            app,
            calls_per_round,
            interval: cfg.poll.interval,
            settle: cfg.poll.settle_delay,
            late: cfg.poll.late_arrival,
            budget_per_minute: f64::from(cfg.forge.requests_per_minute) * per_minute,
        })
        .collect()
}

fn wall_ms() -> i64 {
    system_millis(SystemTime::now())
}

impl ServerState {
    pub fn new(registry: Arc<Registry>, cfg: &Config) -> Self {
        let interval = cfg.poll.interval;
        let stuck_after =
            [interval * 3, cfg.forge.request_timeout * 2, cfg.exporter.timeout * 2, Duration::from_secs(60)]
                .into_iter()
                .max()
                .unwrap_or(Duration::from_secs(60));
        let stale_after = (interval * 5).max(Duration::from_secs(120)).max(cfg.poll.backoff_max * 2);
        // The OTLP push reports readiness too, by the same rule.
        let limits = Limits { stuck_after, stale_after };
        registry.set_ready_probe(Box::new(move |r, now| all_ready(&limits, r, now)));
        Self {
            registry,
            stuck_after,
            stale_after,
            site_silence_after: cfg.server.site_silence_after,
            settle_delay: cfg.poll.settle_delay,
            apps: Arc::new(app_plans(cfg)),
            clock: wall_ms,
        }
    }

    fn limits(&self) -> Limits {
        Limits { stuck_after: self.stuck_after, stale_after: self.stale_after }
    }
}

/// What readiness and liveness are judged by, besides the registry.
#[derive(Debug, Clone, Copy)]
struct Limits {
    stuck_after: Duration,
    stale_after: Duration,
}

pub(crate) fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn stuck(s: &Limits, m: &SourceMetrics, now: i64) -> bool {
    let last = m.last_tick_ms.load(Ordering::Relaxed);
    last > 0 && now - last > ms(s.stuck_after)
}

async fn healthz(State(s): State<ServerState>) -> Response {
    let now = (s.clock)();
    let stuck: Vec<String> =
        s.registry.sources().iter().filter(|m| stuck(&s.limits(), m, now)).map(|m| m.source.clone()).collect();
    if stuck.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "stuck", "sources": stuck}))).into_response()
    }
}

/// Why a source is not ready; empty when it is.
fn not_ready_reasons(s: &Limits, m: &SourceMetrics, now: i64) -> Vec<String> {
    let st = m.status();
    let mut reasons = Vec::new();
    if st.config_error {
        reasons.push(format!(
            "configuration error: {}",
            st.last_api_error.as_ref().map(|e| e.message.as_str()).unwrap_or("API refused the source")
        ));
    } else if st.api_failing {
        reasons.push(format!(
            "Forge API failing: {}",
            st.last_api_error.as_ref().map(|e| e.message.as_str()).unwrap_or("unknown error")
        ));
    }
    if st.export_failing {
        reasons.push(format!(
            "export failing: {}",
            st.last_export_error.as_ref().map(|e| e.message.as_str()).unwrap_or("unknown error")
        ));
    }
    if st.checkpoint_failing {
        reasons.push(format!(
            "checkpoint not saved: {}",
            st.last_checkpoint_error.as_ref().map(|e| e.message.as_str()).unwrap_or("unknown error")
        ));
    }
    match st.last_poll_ok_ms {
        None if reasons.is_empty() => reasons.push("no successful poll yet".into()),
        Some(t) if now - t > ms(s.stale_after) => reasons.push(format!("last successful poll at {}", format_millis(t))),
        _ => {}
    }
    if stuck(s, m, now) {
        reasons.push("loop stuck".into());
    }
    reasons
}

pub(crate) fn is_ready(s: &ServerState, now: i64) -> bool {
    all_ready(&s.limits(), &s.registry, now)
}

fn all_ready(limits: &Limits, registry: &Registry, now: i64) -> bool {
    registry.sources().iter().all(|m| not_ready_reasons(limits, m, now).is_empty())
}

async fn readyz(State(s): State<ServerState>) -> Response {
    let now = (s.clock)();
    let failing: Vec<_> = s
        .registry
        .sources()
        .iter()
        .filter_map(|m| {
            let r = not_ready_reasons(&s.limits(), m, now);
            (!r.is_empty()).then(|| json!({"source": m.source, "reasons": r}))
        })
        .collect();
    if failing.is_empty() {
        (StatusCode::OK, Json(json!({"ready": true}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "sources": failing}))).into_response()
    }
}

async fn metrics(State(s): State<ServerState>) -> Response {
    let now = (s.clock)();
    let body = render_prometheus(&s.registry, now, is_ready(&s, now));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

async fn status(State(s): State<ServerState>) -> Response {
    let now = (s.clock)();
    let all = s.registry.sources();
    let (metrics, logs): (Vec<_>, Vec<_>) = all.iter().partition(|m| m.metrics_source.get().is_some());
    let sources: Vec<_> = logs.iter().map(|m| source_status(&s, m, now)).collect();
    let apps = s.registry.apps();
    let metrics_sources: Vec<_> = metrics.iter().map(|m| metrics_source_status(&s, m, &apps, now)).collect();
    Json(json!({
        "time": format_millis(now),
        "ready": is_ready(&s, now),
        "apps": apps_status(&s, now),
        "sources": sources,
        "metrics_sources": metrics_sources,
    }))
    .into_response()
}

/// An App metrics source: its account's budget instead of sites and backfill.
fn metrics_source_status(
    s: &ServerState,
    m: &SourceMetrics,
    apps: &[(String, crate::metrics::AppGauges)],
    now: i64,
) -> serde_json::Value {
    let st = m.status();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (w, w2) = (m.watermark_ms.load(Ordering::Relaxed), m.late_watermark_ms.load(Ordering::Relaxed));
    let info = m.metrics_source.get().cloned().unwrap_or_default();
    let (environments, account) = (info.environments, info.account);
    let rate = apps.iter().find(|(k, _)| *k == account).and_then(|(_, g)| g.effective_rate_per_minute);
    let error =
        |e: Option<crate::metrics::LastError>| e.map(|e| json!({"at": format_millis(e.at_ms), "message": e.message}));
    json!({
        "source": m.source,
        "app": m.app,
        "environments": environments,
        "state": st.state,
        "watermark": (w > 0).then(|| format_millis(w)),
        "late_watermark": (w2 > 0).then(|| format_millis(w2)),
        "lag_seconds": if w > 0 { (now - w) as f64 / 1000.0 } else { 0.0 },
        "last_poll_ok": st.last_poll_ok_ms.map(format_millis),
        "last_export_ok": st.last_export_ok_ms.map(format_millis),
        "last_api_error": error(st.last_api_error),
        "last_export_error": error(st.last_export_error),
        "last_checkpoint_error": error(st.last_checkpoint_error),
        "config_error": st.config_error,
        "points": counts(m),
        "gap_seconds": load(&m.gap_seconds),
        "account": {
            "budget_key": account,
            "calls_per_period": info.calls_per_period,
            "effective_rate_per_minute": rate,
            "api_calls_last_minute": m.calls_last_minute(now),
        },
        "not_ready": not_ready_reasons(&s.limits(), m, now),
    })
}

/// Each app's demand on its budget, what the budget gives, and how far
/// behind its passes are ([`crate::poller::demand`]).
fn apps_status(s: &ServerState, now: i64) -> Vec<serde_json::Value> {
    let gauges: std::collections::BTreeMap<_, _> = s.registry.apps().into_iter().collect();
    let sources = s.registry.sources();
    s.apps
        .iter()
        .map(|p| {
            let marks: Vec<(i64, i64)> = sources
                .iter()
                .filter(|m| m.app == p.app && p.sources.contains(&m.source))
                .map(|m| (m.watermark_ms.load(Ordering::Relaxed), m.late_watermark_ms.load(Ordering::Relaxed)))
                .collect();
            let d = crate::poller::demand::app_demand(&crate::poller::demand::Inputs {
                calls_per_round: p.calls_per_round,
                interval: p.interval,
                settle: p.settle,
                late: p.late,
                budget_per_minute: p.budget_per_minute,
                effective_rate_per_minute: gauges.get(&p.app).and_then(|g| g.effective_rate_per_minute),
                marks: &marks,
                now_ms: now,
            });
            let mut v = json!({ "app": p.app, "sources": p.sources });
            if let (Some(obj), Ok(serde_json::Value::Object(fields))) = (v.as_object_mut(), serde_json::to_value(d)) {
                obj.extend(fields);
            }
            v
        })
        .collect()
}

fn source_status(s: &ServerState, m: &SourceMetrics, now: i64) -> serde_json::Value {
    let st = m.status();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let w = m.watermark_ms.load(Ordering::Relaxed);
    let w2 = m.late_watermark_ms.load(Ordering::Relaxed);
    let start = m.backfill_start_ms.load(Ordering::Relaxed);
    let target = now - ms(s.settle_delay);
    let progress =
        if start > 0 && target > start { ((w - start) as f64 / (target - start) as f64).clamp(0.0, 1.0) } else { 1.0 };
    let newest_site = lock(&m.sites).values().map(|v| v.last_record_ms).max().unwrap_or(0);
    let mut sites: Vec<_> = lock(&m.sites)
        .iter()
        .map(|(site, seen)| {
            let quiet = newest_site - seen.last_record_ms;
            let usual = (seen.typical_gap_ms * 20.0) as i64;
            let silent = seen.records >= 3 && quiet > ms(s.site_silence_after).max(usual);
            json!({
                "installation_context": site,
                "last_record": format_millis(seen.last_record_ms),
                "records": seen.records,
                "typical_gap_seconds": seen.typical_gap_ms / 1000.0,
                "silent": silent,
            })
        })
        .collect();
    sites.sort_by(|a, b| a["installation_context"].as_str().cmp(&b["installation_context"].as_str()));
    let fmt = |t: Option<i64>| t.map(format_millis);
    json!({
        "source": m.source,
        "app": m.app,
        "state": st.state,
        "watermark": (w > 0).then(|| format_millis(w)),
        "late_watermark": (w2 > 0).then(|| format_millis(w2)),
        "lag_seconds": if w > 0 { (now - w) as f64 / 1000.0 } else { 0.0 },
        "backfill_progress": progress,
        "last_poll_ok": fmt(st.last_poll_ok_ms),
        "last_export_ok": fmt(st.last_export_ok_ms),
        "last_api_error": st.last_api_error.map(|e| json!({"at": format_millis(e.at_ms), "message": e.message})),
        "last_export_error": st.last_export_error.map(|e| json!({"at": format_millis(e.at_ms), "message": e.message})),
        "last_checkpoint_error": st.last_checkpoint_error.map(|e| json!({"at": format_millis(e.at_ms), "message": e.message})),
        "config_error": st.config_error,
        "api_calls_last_minute": m.calls_last_minute(now),
        "records": counts(m),
        "gap_seconds": load(&m.gap_seconds),
        "late_pass_skipped_seconds": load(&m.late_pass_skipped_seconds),
        "not_ready": not_ready_reasons(&s.limits(), m, now),
        "sites": sites,
    })
}

/// What a source fetched and what became of it (records or data points).
fn counts(m: &SourceMetrics) -> serde_json::Value {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    json!({
        "fetched": load(&m.received),
        "delivered": load(&m.sent),
        "duplicates_dropped": load(&m.duplicates),
        "dead_lettered": load(&m.dead_lettered),
        "rejected": load(&m.rejected),
        "in_flight": load(&m.in_flight),
    })
}

pub(crate) async fn spawn(
    addr: SocketAddr,
    state: ServerState,
    cancel: CancellationToken,
) -> std::io::Result<(tokio::task::JoinHandle<()>, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(state);
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await;
    });
    Ok((handle, local))
}

#[cfg(test)]
mod tests;
