//! forge-otel-sidecar: pulls an Atlassian Forge app's logs from the App
//! logs API and delivers them over OTLP without loss.
//!
//! # Layout
//!
//! - [`config`]: the YAML file, `${env:VAR}` expansion, validation.
//! - [`secret`]: the redacting secret type.
//! - [`fingerprint`]: a stable hash for record fingerprints.
//! - [`logging`]: tracing setup (text or JSON lines).

pub mod config;
pub mod fingerprint;
pub mod forge;
pub mod logging;
pub mod secret;
pub mod simulator;
pub mod timefmt;
pub mod tls;

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
pub mod app;
pub mod backoff;
pub mod checkpoint;
pub mod convert;
pub mod export;
pub mod metrics;
pub mod poller;
pub mod server;
pub mod testkit;
pub mod demo;
