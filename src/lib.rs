//! forge-otel-sidecar: pulls an Atlassian Forge app's logs from the App
//! logs API and delivers them over OTLP without loss.
//!
//! # Layout
//!
//! The data path, in order; a stage imports only what the stages before it
//! produce, never a later one:
//! - [`config`]: the YAML file, `${env:VAR}` expansion, validation ([`secret`] for tokens).
//! - [`poller`]: one task per source; its decisions are pure functions
//!   (window plans and deadlines, the per-app budget, API error → action,
//!   which records of a page go out), the loop carries them out.
//! - [`forge`]: the App logs API: a page's bytes, and the API's wire types.
//! - [`convert`]: a page's bytes → OTLP protobuf records and export
//!   requests, [`privacy`] rules applied on the way.
//! - [`export`]: delivery with acknowledgement, retries, dead letters.
//! - [`checkpoint`]: marks and delivered counts, saved only after the backend's answer.
//!
//! Below them all, the shared vocabulary: [`progress`] (passes, windows,
//! the page in progress), [`privacy`] (redaction rules), [`net`] (HTTP error chains and server-given
//! delays, capped), [`wait`] (the one cancellable wait), [`backoff`],
//! [`fingerprint`], [`timefmt`], [`tls`].
//!
//! Around it:
//! - [`app`]: wiring, supervision and staged shutdown; [`server`] and
//!   [`metrics`]: health, readiness, Prometheus metrics, `/status`;
//!   [`telemetry`]: the same metrics pushed over OTLP; [`logging`].
//! - [`simulator`]: the built-in Forge API simulator; [`demo`]: simulator,
//!   sidecar and console in one process; `testkit` (feature `testkit`,
//!   tests only): an in-process OTLP receiver and the crash hook.
//! - [`tools`]: the support desk's one-off commands (`fetch`, `backfill`,
//!   `import-audit`).

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
pub mod tools;
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
