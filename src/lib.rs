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
pub mod logging;
pub mod secret;
