//! Validation of the `exporter` section: endpoint, protocol, headers,
//! TLS, retries and the `OTEL_EXPORTER_OTLP_*` conventions, for the logs and
//! the metrics exporter; and `telemetry.otlp`, which defaults to the exporter.

use std::time::Duration;

use super::raw;
use super::trust;
use super::validate::{CREDENTIALS_IN_ENDPOINT, Errors};
use super::*;

/// The metrics sources' exporter; errors the logs exporter reports
/// already (the file's keys, the general variables) are not repeated.
pub(super) fn metrics_exporter(raw: &raw::RawExporter, env: EnvLookup<'_>, errs: &mut Errors) -> ExporterConfig {
    let mut own = Errors(Vec::new());
    let m = exporter(raw.clone(), env, &mut own, otel_env::Signal::Metrics);
    for e in own.0 {
        if !errs.0.contains(&e) {
            errs.0.push(e);
        }
    }
    m
}

/// The exporter of one signal: the file's keys first, then
/// `OTEL_EXPORTER_OTLP_{LOGS|METRICS}_*`, then `OTEL_EXPORTER_OTLP_*`.
/// The metrics exporter takes the file's endpoint as a base URL (a
/// `logs_endpoint` less its `/v1/logs`).
pub(super) fn exporter(
    raw: raw::RawExporter,
    env: EnvLookup<'_>,
    errs: &mut Errors,
    signal: otel_env::Signal,
) -> ExporterConfig {
    let lookup = |key: &str| otel_env::lookup_signal(env, signal, key).map(|f| (f.var, f.value));
    let (file_endpoint, file_signal_endpoint) = match signal {
        otel_env::Signal::Logs => (raw.endpoint, raw.logs_endpoint),
        otel_env::Signal::Metrics => {
            let from_logs = raw.logs_endpoint.map(|e| {
                let e = e.trim().trim_end_matches('/');
                e.strip_suffix("/v1/logs").unwrap_or(e).to_string()
            });
            (raw.endpoint.or(from_logs), None)
        }
    };
    let (protocol_path, protocol_text) = match raw.protocol {
        Some(p) => ("exporter.protocol".to_string(), Some(p)),
        None => match lookup("PROTOCOL") {
            Some((name, v)) => (name, Some(v)),
            None => ("exporter.protocol".to_string(), None),
        },
    };
    let protocol = match protocol_text {
        None => Protocol::Grpc,
        Some(t) => Protocol::parse(&t).unwrap_or_else(|| {
            errs.push(&protocol_path, format!("`{t}` is not one of grpc, http/protobuf, http/json, stdout"));
            Protocol::Grpc
        }),
    };
    let (endpoint, endpoint_as_is) = otel_env::endpoint(file_endpoint, file_signal_endpoint, protocol, env, signal)
        .unwrap_or_else(|(path, e)| {
            errs.push(path, e);
            (otel_env::default_endpoint(protocol).to_string(), false)
        });
    if protocol != Protocol::Stdout && !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        let shown = trust::redact_url(&endpoint);
        errs.push("exporter.endpoint", format!("`{shown}` must start with http:// or https://"));
    } else if trust::has_userinfo(&endpoint) {
        errs.push("exporter.endpoint", CREDENTIALS_IN_ENDPOINT);
    }
    let headers: Vec<(String, Secret)> = match raw.headers {
        Some(map) => map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect(),
        None => match lookup("HEADERS") {
            Some((name, text)) => match otel_env::parse_headers(&text) {
                Ok(h) => h.into_iter().map(|(k, v)| (k, Secret::new(v))).collect(),
                Err(e) => {
                    errs.push(name, e);
                    Vec::new()
                }
            },
            None => Vec::new(),
        },
    };
    for (i, (k, _)) in headers.iter().enumerate() {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
            // Not echoed: a value written `Name: value=...` lands in the name.
            errs.push(
                format!("exporter.headers[{i}]"),
                "not a valid header name (letters, digits, `-` and `_` only; write `name=value`)",
            );
        }
    }
    let compression =
        match raw.compression.map(|c| ("exporter.compression".to_string(), c)).or_else(|| lookup("COMPRESSION")) {
            None => Compression::None,
            Some((path, t)) => Compression::parse(&t).unwrap_or_else(|| {
                errs.push(path, format!("`{t}` is not one of none, gzip, zstd"));
                Compression::None
            }),
        };
    let timeout = match raw.timeout {
        Some(t) => errs.duration("exporter.timeout", &Some(t), Duration::from_secs(10)),
        None => match lookup("TIMEOUT") {
            // The OTLP spec gives this variable in milliseconds.
            Some((name, v)) => v
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .ok()
                .filter(|d| *d <= super::validate::MAX_DURATION)
                .unwrap_or_else(|| {
                    errs.push(name, format!("`{v}` is not a number of milliseconds of at most 366 days"));
                    Duration::from_secs(10)
                }),
            None => Duration::from_secs(10),
        },
    };
    if timeout.is_zero() {
        errs.push("exporter.timeout", "must be more than 0");
    }
    let max_request_bytes = errs.size("exporter.max_request_bytes", &raw.max_request_bytes, 4 << 20);
    if max_request_bytes < 1024 {
        errs.push("exporter.max_request_bytes", "must be at least 1KiB");
    }
    let retry = RetryConfig {
        initial_backoff: errs.duration(
            "exporter.retry.initial_backoff",
            &raw.retry.initial_backoff,
            Duration::from_secs(1),
        ),
        max_backoff: errs.duration("exporter.retry.max_backoff", &raw.retry.max_backoff, Duration::from_secs(30)),
        max_retry_after: errs.duration(
            "exporter.retry.max_retry_after",
            &raw.retry.max_retry_after,
            Duration::from_secs(300),
        ),
        max_elapsed: match errs.duration("exporter.retry.max_elapsed", &raw.retry.max_elapsed, Duration::ZERO) {
            d if d.is_zero() => None,
            d => Some(d),
        },
    };
    let tls = otel_env::tls(&raw.tls, env, signal);
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        errs.push("exporter.tls", "cert_file and key_file go together");
    }
    ExporterConfig {
        protocol,
        endpoint,
        endpoint_as_is,
        headers,
        compression,
        timeout,
        max_request_bytes: usize::try_from(max_request_bytes).unwrap_or(usize::MAX),
        tls,
        retry,
    }
}

/// `telemetry.otlp`: the sidecar's own metrics pushed over OTLP, by default to the exporter's collector.
pub(super) fn telemetry(raw: &raw::RawTelemetry, exporter: &ExporterConfig, errs: &mut Errors) -> TelemetryConfig {
    let o = &raw.otlp;
    if !errs.number("telemetry.otlp.enabled", &o.enabled, false) {
        return TelemetryConfig { otlp: None };
    }
    let protocol = match &o.protocol {
        Some(t) => Protocol::parse(t).unwrap_or_else(|| {
            errs.push("telemetry.otlp.protocol", format!("`{t}` is not one of grpc, http/protobuf"));
            Protocol::Grpc
        }),
        None => exporter.protocol,
    };
    if matches!(protocol, Protocol::Stdout | Protocol::HttpJson) {
        errs.push("telemetry.otlp.protocol", "must be grpc or http/protobuf (set it when the exporter uses another)");
    }
    let endpoint = o.endpoint.clone().unwrap_or_else(|| exporter.base_endpoint());
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        let shown = trust::redact_url(&endpoint);
        errs.push("telemetry.otlp.endpoint", format!("`{shown}` must start with http:// or https://"));
    } else if trust::has_userinfo(&endpoint) {
        errs.push("telemetry.otlp.endpoint", CREDENTIALS_IN_ENDPOINT);
    }
    let interval = errs.duration("telemetry.otlp.interval", &o.interval, Duration::from_secs(60));
    if interval.is_zero() {
        errs.push("telemetry.otlp.interval", "must be more than 0");
    }
    TelemetryConfig { otlp: Some(TelemetryOtlp { protocol, endpoint, interval }) }
}
