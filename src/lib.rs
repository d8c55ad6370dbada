//! forge-otel-sidecar: pulls an Atlassian Forge app's logs from the App
//! logs API and delivers them over OTLP without loss.
//!
//! # Layout
//!
//! The data path, in order:
//! - [`config`]: the YAML file, `${env:VAR}` expansion, validation ([`secret`] for tokens).
//! - [`poller`]: one task per source: window planning, the per-app budget, the loop.
//! - [`forge`]: the App logs API client and its wire types.
//! - [`convert`]: Forge records → OTLP messages, [`privacy`] rules applied on the way.
//! - [`export`]: delivery with acknowledgement, retries, dead letters.
//! - [`checkpoint`]: progress saved only after the backend's answer.
//!
//! Around it:
//! - [`app`]: wiring and staged shutdown; [`server`] and [`metrics`]: health,
//!   readiness, Prometheus metrics, `/status`; [`logging`].
//! - [`simulator`]: the built-in Forge API simulator; [`demo`]: simulator,
//!   sidecar and console in one process; [`testkit`]: an in-process OTLP receiver.
//! - Small helpers: [`backoff`], [`fingerprint`], [`timefmt`], [`tls`].

pub mod app;
pub mod backoff;
pub mod checkpoint;
pub mod config;
pub mod convert;
pub mod demo;
pub mod export;
pub mod fingerprint;
pub mod forge;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod poller;
pub mod privacy;
pub mod progress;
pub mod secret;
pub mod server;
pub mod simulator;
pub mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod timefmt;
pub mod tls;
pub mod wait;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
