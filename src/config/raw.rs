//! The configuration file as written by users: strict serde structs.
//!
//! Every struct rejects unknown keys. Durations and sizes stay strings here
//! and are parsed in `validate`, so each error can name its key path.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Deserialize;

/// A value that may be written as a number or as a string holding one
/// (`${env:VAR}` expansion always yields strings).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Lenient<T> {
    Value(T),
    Text(String),
}

impl<T: FromStr> Lenient<T> {
    pub fn get(&self) -> Result<T, String>
    where
        T: Clone,
    {
        match self {
            Lenient::Value(v) => Ok(v.clone()),
            Lenient::Text(s) => s.trim().parse().map_err(|_| format!("`{s}` is not a valid value")),
        }
    }
}

/// A scalar read as text: durations and sizes may be written `0` or `1048576`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub forge: Option<RawForge>,
    pub sources: Option<Vec<RawSource>>,
    pub metrics_sources: Option<Vec<super::metrics_sources::RawMetricsSource>>,
    #[serde(default)]
    pub poll: RawPoll,
    #[serde(default)]
    pub exporter: RawExporter,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// Privacy rules of every source that sets none of its own.
    pub privacy: Option<StrOr<RawPrivacy>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetry {
    #[serde(default)]
    pub otlp: RawTelemetryOtlp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetryOtlp {
    pub enabled: Option<Lenient<bool>>,
    pub protocol: Option<String>,
    pub endpoint: Option<String>,
    pub interval: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForge {
    pub base_url: Option<String>,
    pub allow_insecure_http: Option<Lenient<bool>>,
    pub email: Option<String>,
    pub api_token: Option<String>,
    pub api_token_file: Option<String>,
    pub request_timeout: Option<Scalar>,
    pub requests_per_minute: Option<Lenient<u32>>,
    pub rate_period: Option<Scalar>,
    pub max_response_size: Option<Scalar>,
    pub max_pages_per_window: Option<Lenient<u32>>,
    pub max_retry_delay: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub app_id: Option<String>,
    pub environment_id: Option<String>,
    pub name: Option<String>,
    pub service_name: Option<String>,
    pub levels: Option<Vec<String>>,
    pub message: Option<String>,
    pub installation_contexts: Option<Vec<String>>,
    pub resource_attributes: Option<BTreeMap<String, yaml_serde::Value>>,
    /// Replaces the top-level `privacy` rules for this source.
    pub privacy: Option<StrOr<RawPrivacy>>,
}

/// A value written as a bare string (a preset, a named pattern) or as a
/// map. Not an untagged enum: the map keeps its own unknown-key errors
/// with their paths.
#[derive(Debug, Clone)]
pub enum StrOr<T> {
    Str(String),
    Map(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StrOr<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = StrOr<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a name or a map")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrOr::Str(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(StrOr::Map)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// `privacy:` as a map (`privacy: recommended` is the preset alone).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrivacy {
    pub preset: Option<String>,
    pub attributes: Option<Vec<RawAttrRule>>,
    pub mask: Option<Vec<StrOr<RawMask>>>,
    pub marker: Option<String>,
    pub hash_key: Option<String>,
    pub hash_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAttrRule {
    pub key: Option<String>,
    pub action: Option<String>,
    pub max_bytes: Option<Lenient<usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMask {
    pub name: Option<String>,
    pub pattern: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoll {
    pub interval: Option<Scalar>,
    pub settle_delay: Option<Scalar>,
    pub late_arrival: Option<Scalar>,
    pub initial_lookback: Option<Scalar>,
    pub retention_margin: Option<Scalar>,
    pub backoff_initial: Option<Scalar>,
    pub backoff_max: Option<Scalar>,
    pub config_error_retry: Option<Scalar>,
    pub max_page_attempts: Option<Lenient<u32>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExporter {
    pub protocol: Option<String>,
    pub endpoint: Option<String>,
    /// The full logs URL, used as given (OTLP/HTTP appends nothing).
    pub logs_endpoint: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub compression: Option<String>,
    pub timeout: Option<Scalar>,
    pub max_request_bytes: Option<Scalar>,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub retry: RawRetry,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub initial_backoff: Option<Scalar>,
    pub max_backoff: Option<Scalar>,
    pub max_retry_after: Option<Scalar>,
    pub max_elapsed: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    pub dir: Option<String>,
    pub dead_letter_max_size: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<String>,
    pub site_silence_after: Option<Scalar>,
    pub enabled: Option<Lenient<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}
