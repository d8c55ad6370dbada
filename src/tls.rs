//! TLS setup shared by the Forge client and the OTLP exporters.

/// Installs rustls' ring provider for the process (reqwest is built
/// without a provider of its own). Later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
