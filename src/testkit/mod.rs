//! Test support shipped with the crate: an in-process OTLP receiver
//! (plain or TLS).
//!
//! Used by the integration tests, the end-to-end harness and the benches;
//! not part of the sidecar's data path.

pub mod receiver;
pub mod tls;
