//! Configuration: one YAML file, read in two steps.
//!
//! 1. The file is parsed into a YAML tree and every string value gets
//!    `${env:VAR}` expansion ([`expand`]); all missing variables are named
//!    in one error.
//! 2. The tree is deserialized into strict structs ([`raw`], unknown keys
//!    rejected with their path) and [`validate`]d into the runtime types
//!    below, each error naming its key path (`poll.interval: ...`).
//!
//! Absent `exporter` keys are filled from the standard
//! `OTEL_EXPORTER_OTLP_LOGS_*` / `OTEL_EXPORTER_OTLP_*` variables; the file
//! wins over them ([`otel_env`]). Secrets (the API token, exporter header
//! values) are [`Secret`]s, so printing a `Config` never shows them;
//! [`print`] renders the effective config as a file that loads back.
//! [`metrics_sources`] are the App metrics API's sources, a list of their own.

pub mod expand;
mod load;
pub mod metrics_sources;
pub mod otel_env;
pub mod print;
mod privacy;
pub mod raw;
mod trust;
mod validate;
mod validate_exporter;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::secret::Secret;
pub use expand::EnvLookup;
pub use metrics_sources::{MetricsCredentials, MetricsSourceConfig};

/// The API reads at most this far back.
pub(crate) const API_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// `poll.interval` by default: five sources of one app, both passes, take
/// 20 of its 30 calls a minute (docs/BENCHMARKS.md, "Freshness").
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// `poll.settle_delay` by default: a record on time reaches the collector
/// within settle + interval + the budget's queue; later ones are caught by
/// the second pass at `late_arrival`.
pub const DEFAULT_SETTLE_DELAY: Duration = Duration::from_secs(5);
/// The API answers at most this long a window.
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// The API takes at most this many installation contexts per query.
pub(crate) const MAX_SITES_PER_QUERY: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config is not valid YAML: {0}")]
    Yaml(String),
    #[error("missing environment variables: {}", .0.join(", "))]
    MissingEnv(Vec<String>),
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    #[error("cannot read token file {path}: {reason}")]
    TokenFile { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Config {
    pub forge: ForgeConfig,
    pub sources: Vec<SourceConfig>,
    /// The App metrics API's sources ([`metrics_sources`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics_sources: Vec<MetricsSourceConfig>,
    pub poll: PollConfig,
    pub exporter: ExporterConfig,
    /// The metrics sources' exporter: `exporter` read with
    /// `OTEL_EXPORTER_OTLP_METRICS_*` in place of the `LOGS_*` variables
    /// ([`otel_env`]). `None` without metrics sources. Not printed: the
    /// file has no keys of its own for it.
    #[serde(skip)]
    pub metrics_exporter: Option<ExporterConfig>,
    pub state: StateConfig,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
    /// The top-level privacy rules, the default of every source.
    pub privacy: crate::privacy::PrivacySpec,
}

/// The sidecar's own metrics pushed over OTLP (besides `/metrics`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TelemetryConfig {
    /// `None`: off.
    pub otlp: Option<TelemetryOtlp>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TelemetryOtlp {
    pub protocol: Protocol,
    pub endpoint: String,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ForgeConfig {
    pub base_url: String,
    /// `http://` to a host other than loopback (off: the token would travel in clear).
    pub allow_insecure_http: bool,
    pub email: String,
    #[serde(flatten)]
    pub token: TokenSource,
    #[serde(serialize_with = "ser_duration")]
    pub request_timeout: Duration,
    pub requests_per_minute: u32,
    #[serde(serialize_with = "ser_duration")]
    pub rate_period: Duration,
    pub max_response_bytes: u64,
    pub max_pages_per_window: u32,
    /// Cap on any delay a Forge answer asks for (`Retry-After`, `X-RateLimit-Reset`).
    #[serde(serialize_with = "ser_duration")]
    pub max_retry_delay: Duration,
}

/// Where the API token comes from. A file is read again when the API
/// answers 401, so a rotated token is picked up without a restart.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub enum TokenSource {
    #[serde(rename = "api_token")]
    Inline(Secret),
    #[serde(rename = "api_token_file")]
    File(PathBuf),
}

impl TokenSource {
    /// The current token. Errors never contain the file's content.
    pub fn read(&self) -> Result<Secret, ConfigError> {
        match self {
            TokenSource::Inline(s) => Ok(s.clone()),
            TokenSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::TokenFile { path: path.clone(), reason: e.kind().to_string() })?;
                let token = text.trim_end_matches(['\n', '\r']).trim();
                if token.is_empty() {
                    return Err(ConfigError::TokenFile { path: path.clone(), reason: "file is empty".into() });
                }
                Ok(Secret::new(token))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceConfig {
    pub app_id: String,
    pub environment_id: String,
    pub name: String,
    pub service_name: String,
    pub levels: Vec<String>,
    pub message: Option<String>,
    pub installation_contexts: Vec<String>,
    pub resource_attributes: Vec<(String, AttrValue)>,
    /// What is dropped, hashed, cut or masked before export.
    pub privacy: crate::privacy::Privacy,
}

impl SourceConfig {
    /// Identifies what this source asks the API for. A checkpoint written
    /// for another query is not resumed (the source starts afresh).
    pub fn query_key(&self) -> String {
        let mut levels = self.levels.clone();
        levels.sort();
        let mut sites = self.installation_contexts.clone();
        sites.sort();
        let text = format!(
            "{}\n{}\n{}\n{}\n{}",
            self.app_id,
            self.environment_id,
            levels.join(","),
            self.message.as_deref().unwrap_or(""),
            sites.join(",")
        );
        format!("{:016x}", crate::fingerprint::hash_bytes(text.as_bytes()))
    }

    /// The site groups queried separately (at most 50 sites each); one
    /// empty group when the source has no site filter.
    pub(crate) fn site_groups(&self) -> Vec<Vec<String>> {
        if self.installation_contexts.is_empty() {
            vec![Vec::new()]
        } else {
            // A canonical order: reordering the list in the config keeps
            // every group (and a saved group index) the same.
            let mut sites = self.installation_contexts.clone();
            sites.sort();
            sites.dedup();
            sites.chunks(MAX_SITES_PER_QUERY).map(<[String]>::to_vec).collect()
        }
    }
}

/// A resource attribute value from the config.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttrValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
}

impl Eq for AttrValue {}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PollConfig {
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub settle_delay: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub late_arrival: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub initial_lookback: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub retention_margin: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub backoff_initial: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub backoff_max: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub config_error_retry: Duration,
    pub max_page_attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
    #[serde(rename = "stdout")]
    Stdout,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" | "http" => Some(Self::HttpProtobuf),
            "http/json" => Some(Self::HttpJson),
            "stdout" => Some(Self::Stdout),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Some(Self::None),
            "gzip" => Some(Self::Gzip),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExporterConfig {
    pub protocol: Protocol,
    /// gRPC: the collector's address. HTTP: the base URL `/v1/logs` is
    /// appended to (unless present), or the full URL if `endpoint_as_is`.
    pub endpoint: String,
    /// The endpoint is a signal-specific one (`exporter.logs_endpoint` or
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`): HTTP posts to it as given.
    pub endpoint_as_is: bool,
    pub headers: Vec<(String, Secret)>,
    pub compression: Compression,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    pub max_request_bytes: usize,
    pub tls: TlsConfig,
    pub retry: RetryConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RetryConfig {
    #[serde(serialize_with = "ser_duration")]
    pub initial_backoff: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_backoff: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_retry_after: Duration,
    /// `None`: retry without end (the checkpoint holds meanwhile).
    #[serde(serialize_with = "ser_opt_duration")]
    pub max_elapsed: Option<Duration>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StateConfig {
    pub dir: PathBuf,
    pub dead_letter_max_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerConfig {
    /// `None` when the server is switched off.
    pub listen: Option<SocketAddr>,
    /// A site is flagged silent on /status after at least this long without
    /// records (and far longer than its usual gap).
    #[serde(serialize_with = "ser_duration")]
    pub site_silence_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl ExporterConfig {
    /// Where OTLP/HTTP posts the logs.
    pub(crate) fn http_logs_url(&self) -> String {
        if self.endpoint_as_is { self.endpoint.clone() } else { crate::export::http::logs_url(&self.endpoint) }
    }

    /// The base URL another signal (the sidecar's own metrics) defaults to.
    pub(crate) fn base_endpoint(&self) -> String {
        match self.endpoint.trim_end_matches('/').strip_suffix("/v1/logs") {
            Some(base) if self.endpoint_as_is => base.to_string(),
            _ => self.endpoint.clone(),
        }
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_str("never"),
    }
}

/// The process environment, for `Config::load`.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_metrics;
