//! The OpenTelemetry SDK environment variables for an OTLP exporter.
//!
//! Signal-specific (`OTEL_EXPORTER_OTLP_LOGS_*`, `..._METRICS_*`) first,
//! then the general `OTEL_EXPORTER_OTLP_*`, as OpenTelemetry SDKs read
//! them. Only consulted for keys the config file leaves out: the file wins.
//!
//! Endpoints follow the OTLP exporter specification: a signal-specific
//! endpoint is the full URL and is used as given; the general one (and the
//! file's `exporter.endpoint`) is a base URL that HTTP appends `/v1/logs`
//! to. `INSECURE` only decides the scheme of a gRPC endpoint written
//! without one.

use std::path::PathBuf;

use super::raw::{RawExporter, RawTls};
use super::{EnvLookup, Protocol, TlsConfig};

/// Which signal's variables to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Metrics,
}

impl Signal {
    /// The infix of the signal-specific variables.
    pub(crate) fn var_infix(self) -> &'static str {
        match self {
            Signal::Logs => "LOGS",
            Signal::Metrics => "METRICS",
        }
    }

    /// The path OTLP/HTTP appends to a base URL.
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// A variable that is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub var: String,
    pub value: String,
    /// The signal-specific variable, not the general one.
    pub specific: bool,
}

/// The first set, non-empty value of `OTEL_EXPORTER_OTLP_{signal}_{key}` or
/// `OTEL_EXPORTER_OTLP_{key}`.
pub(crate) fn lookup_signal(env: EnvLookup<'_>, signal: Signal, key: &str) -> Option<Found> {
    [(format!("OTEL_EXPORTER_OTLP_{}_{key}", signal.var_infix()), true), (format!("OTEL_EXPORTER_OTLP_{key}"), false)]
        .into_iter()
        .find_map(|(var, specific)| {
            env(&var).filter(|v| !v.trim().is_empty()).map(|value| Found { var, value, specific })
        })
}

/// An error for the key path or variable named first.
pub(crate) type KeyError = (String, String);

/// The endpoint and whether it is used as given (see the module doc).
/// `file` is `exporter.endpoint`, `file_signal` the file's signal-specific
/// key (`exporter.logs_endpoint`).
pub fn endpoint(
    file: Option<String>,
    file_signal: Option<String>,
    protocol: Protocol,
    env: EnvLookup<'_>,
    signal: Signal,
) -> Result<(String, bool), KeyError> {
    let signal_key = format!("exporter.{}_endpoint", signal.var_infix().to_ascii_lowercase());
    let (text, specific) = match (file, file_signal) {
        (Some(_), Some(_)) => {
            return Err((signal_key, "set either exporter.endpoint or this, not both".into()));
        }
        (Some(e), None) => (e, false),
        (None, Some(e)) => (e, true),
        (None, None) => match lookup_signal(env, signal, "ENDPOINT") {
            Some(f) => (f.value, f.specific),
            None => (default_endpoint(protocol).to_string(), false),
        },
    };
    let mut text = text.trim().to_string();
    if protocol == Protocol::Grpc && !text.contains("://") && !text.is_empty() {
        // The specification's INSECURE: the scheme of an endpoint given without one.
        let scheme = if insecure(env, signal)?.unwrap_or(false) { "http" } else { "https" };
        text = format!("{scheme}://{text}");
    }
    // gRPC ignores the path, so only HTTP tells the two kinds apart.
    let as_is = specific && matches!(protocol, Protocol::HttpProtobuf | Protocol::HttpJson);
    Ok((text, as_is))
}

/// The collector's usual port for each protocol.
pub(crate) fn default_endpoint(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "http://localhost:4317",
        _ => "http://localhost:4318",
    }
}

/// `OTEL_EXPORTER_OTLP_{,signal_}INSECURE`: `true` or `false`.
pub(crate) fn insecure(env: EnvLookup<'_>, signal: Signal) -> Result<Option<bool>, KeyError> {
    let Some(f) = lookup_signal(env, signal, "INSECURE") else { return Ok(None) };
    match f.value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        _ => Err((f.var, format!("`{}` is not true or false", f.value.trim()))),
    }
}

/// The TLS files: each file key, else its variable (`CERTIFICATE`,
/// `CLIENT_CERTIFICATE`, `CLIENT_KEY`).
pub fn tls(raw: &RawTls, env: EnvLookup<'_>, signal: Signal) -> TlsConfig {
    let pick = |file: &Option<String>, key: &str| {
        file.clone().or_else(|| lookup_signal(env, signal, key).map(|f| f.value.trim().to_string())).map(PathBuf::from)
    };
    TlsConfig {
        ca_file: pick(&raw.ca_file, "CERTIFICATE"),
        cert_file: pick(&raw.cert_file, "CLIENT_CERTIFICATE"),
        key_file: pick(&raw.key_file, "CLIENT_KEY"),
    }
}

/// Which exporter keys the variables filled (key path, variable name), for
/// `check-config` to say where a value came from.
pub(crate) fn filled_keys(raw: &RawExporter, env: EnvLookup<'_>, signal: Signal) -> Vec<(String, String)> {
    let keys: [(&str, &str, bool); 8] = [
        ("exporter.protocol", "PROTOCOL", raw.protocol.is_some()),
        ("exporter.endpoint", "ENDPOINT", raw.endpoint.is_some() || raw.logs_endpoint.is_some()),
        ("exporter.headers", "HEADERS", raw.headers.is_some()),
        ("exporter.compression", "COMPRESSION", raw.compression.is_some()),
        ("exporter.timeout", "TIMEOUT", raw.timeout.is_some()),
        ("exporter.tls.ca_file", "CERTIFICATE", raw.tls.ca_file.is_some()),
        ("exporter.tls.cert_file", "CLIENT_CERTIFICATE", raw.tls.cert_file.is_some()),
        ("exporter.tls.key_file", "CLIENT_KEY", raw.tls.key_file.is_some()),
    ];
    keys.into_iter()
        .filter(|(_, _, in_file)| !in_file)
        .filter_map(|(path, key, _)| lookup_signal(env, signal, key).map(|f| (path.to_string(), f.var)))
        .collect()
}

/// A warning when the endpoint's port is the other protocol's usual one
/// (4317 is OTLP/gRPC, 4318 OTLP/HTTP): the requests would fail in ways
/// that do not name the cause.
pub(crate) fn port_mismatch(path: &str, protocol: Protocol, endpoint: &str) -> Option<String> {
    let port = port_of(endpoint)?;
    match (protocol, port) {
        (Protocol::Grpc, 4318) => Some(format!(
            "{path}: port 4318 is the OTLP/HTTP port, but the protocol is grpc (gRPC uses 4317; or set the protocol to http/protobuf)"
        )),
        (Protocol::HttpProtobuf | Protocol::HttpJson, 4317) => Some(format!(
            "{path}: port 4317 is the OTLP/gRPC port, but the protocol is HTTP (HTTP uses 4318; or set the protocol to grpc)"
        )),
        _ => None,
    }
}

/// The explicit port of a URL's authority.
fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = host_port.rsplit_once(':')?;
    // An IPv6 literal without a port ends with `]`.
    if host.starts_with('[') && !host.ends_with(']') {
        return None;
    }
    port.parse().ok()
}

/// Parses `k1=v1,k2=v2` with percent-encoded values (the W3C baggage
/// format the OTLP exporter spec uses for HEADERS).
pub(crate) fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err("expected key=value pairs separated by commas".into());
        };
        let key = percent_decode(k.trim());
        if key.is_empty() {
            return Err("empty header name".into());
        }
        out.push((key, percent_decode(v.trim())));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_decode() {
        let h = parse_headers("DD-API-KEY=abc%3D%3D, x-a = b ,").unwrap_or_default();
        assert_eq!(h, vec![("DD-API-KEY".into(), "abc==".into()), ("x-a".into(), "b".into())]);
        assert!(parse_headers("novalue").is_err());
    }

    fn lookup(env: EnvLookup<'_>, key: &str) -> Option<(String, String)> {
        lookup_signal(env, Signal::Logs, key).map(|f| (f.var, f.value))
    }

    #[test]
    fn signal_specific_wins() {
        let env = |n: &str| match n {
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" => Some("http://logs:4318".to_string()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://all:4318".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/json".to_string()),
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL" => Some("grpc".to_string()),
            _ => None,
        };
        assert_eq!(lookup(&env, "ENDPOINT").map(|v| v.1), Some("http://logs:4318".into()));
        assert_eq!(lookup(&env, "PROTOCOL").map(|v| v.0), Some("OTEL_EXPORTER_OTLP_PROTOCOL".into()));
        assert_eq!(lookup(&env, "TIMEOUT"), None);
        let metrics = lookup_signal(&env, Signal::Metrics, "PROTOCOL");
        assert_eq!(metrics.map(|f| (f.value, f.specific)), Some(("grpc".into(), true)));
        let metrics = lookup_signal(&env, Signal::Metrics, "ENDPOINT");
        assert_eq!(metrics.map(|f| (f.value, f.specific)), Some(("http://all:4318".into(), false)));
    }

    #[test]
    fn endpoint_table() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
        };
        let none = vars(&[]);
        let generic = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]);
        let both = vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://intake/custom/logs"),
        ]);
        let bare = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]);
        let bare_insecure = vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "TRUE"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
        ]);
        let f = |s: &str| Some(s.to_string());
        let http = Protocol::HttpProtobuf;
        type Env<'a> = &'a dyn Fn(&str) -> Option<String>;
        type Case<'a> = (Option<String>, Option<String>, Protocol, Env<'a>, (&'a str, bool));
        let cases: Vec<Case<'_>> = vec![
            (None, None, Protocol::Grpc, &none, ("http://localhost:4317", false)),
            (None, None, http, &none, ("http://localhost:4318", false)),
            (None, None, http, &generic, ("http://c:4318", false)),
            (None, None, http, &both, ("https://intake/custom/logs", true)),
            (None, None, Protocol::Grpc, &both, ("https://intake/custom/logs", false)),
            (f("http://file:4318"), None, http, &both, ("http://file:4318", false)),
            (None, f(" https://file/logs "), http, &both, ("https://file/logs", true)),
            (None, None, Protocol::Grpc, &bare, ("https://collector:4317", false)),
            (None, None, Protocol::Grpc, &bare_insecure, ("http://collector:4317", false)),
            (None, None, http, &bare, ("collector:4317", false)),
        ];
        for (file, file_signal, protocol, env, want) in cases {
            let got = endpoint(file.clone(), file_signal.clone(), protocol, env, Signal::Logs);
            assert_eq!(got, Ok((want.0.to_string(), want.1)), "{file:?} {file_signal:?} {protocol:?}");
        }
        let both_in_file = endpoint(f("http://a"), f("http://b"), http, &none, Signal::Logs);
        assert_eq!(both_in_file.map_err(|e| e.0), Err("exporter.logs_endpoint".to_string()));
        let bad = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "yes")]);
        let err = endpoint(None, None, Protocol::Grpc, &bad, Signal::Logs).map_err(|e| e.0);
        assert_eq!(err, Err("OTEL_EXPORTER_OTLP_INSECURE".to_string()));
    }

    #[test]
    fn tls_files_file_then_logs_then_generic() {
        let env = |n: &str| match n {
            "OTEL_EXPORTER_OTLP_CERTIFICATE" => Some("/generic/ca.pem".to_string()),
            "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE" => Some("/logs/ca.pem".to_string()),
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" => Some("/generic/client.pem".to_string()),
            "OTEL_EXPORTER_OTLP_CLIENT_KEY" => Some("/generic/client-key.pem".to_string()),
            _ => None,
        };
        let raw = RawTls { cert_file: Some("/file/client.pem".into()), ..RawTls::default() };
        let tls = tls(&raw, &env, Signal::Logs);
        assert_eq!(tls.ca_file, Some(PathBuf::from("/logs/ca.pem")));
        assert_eq!(tls.cert_file, Some(PathBuf::from("/file/client.pem")));
        assert_eq!(tls.key_file, Some(PathBuf::from("/generic/client-key.pem")));
        let metrics = super::tls(&RawTls::default(), &env, Signal::Metrics);
        assert_eq!(metrics.ca_file, Some(PathBuf::from("/generic/ca.pem")));
    }

    #[test]
    fn port_mismatch_table() {
        let cases = [
            (Protocol::Grpc, "http://c:4318", true),
            (Protocol::Grpc, "http://c:4317", false),
            (Protocol::Grpc, "https://user@c:4318/", true),
            (Protocol::HttpProtobuf, "http://c:4317/v1/logs", true),
            (Protocol::HttpJson, "http://c:4317", true),
            (Protocol::HttpProtobuf, "http://c:4318", false),
            (Protocol::HttpProtobuf, "https://c/otlp:4317", false),
            (Protocol::HttpProtobuf, "http://[::1]:4317", true),
            (Protocol::HttpProtobuf, "http://[::1]", false),
            (Protocol::Stdout, "http://c:4317", false),
        ];
        for (protocol, url, warn) in cases {
            assert_eq!(port_mismatch("exporter.endpoint", protocol, url).is_some(), warn, "{protocol:?} {url}");
        }
    }
}
