//! The OpenTelemetry SDK environment variables for the logs exporter.
//!
//! Signal-specific (`OTEL_EXPORTER_OTLP_LOGS_*`) first, then the general
//! `OTEL_EXPORTER_OTLP_*`, as OpenTelemetry SDKs read them. Only consulted
//! for keys the config file leaves out.

use super::EnvLookup;

/// The first set, non-empty value of `OTEL_EXPORTER_OTLP_LOGS_{key}` or
/// `OTEL_EXPORTER_OTLP_{key}`, with the variable's name for error messages.
pub fn lookup(env: EnvLookup<'_>, key: &str) -> Option<(String, String)> {
    [format!("OTEL_EXPORTER_OTLP_LOGS_{key}"), format!("OTEL_EXPORTER_OTLP_{key}")]
        .into_iter()
        .find_map(|name| env(&name).filter(|v| !v.trim().is_empty()).map(|v| (name, v)))
}

/// Parses `k1=v1,k2=v2` with percent-encoded values (the W3C baggage
/// format the OTLP exporter spec uses for HEADERS).
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
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

    #[test]
    fn signal_specific_wins() {
        let env = |n: &str| match n {
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" => Some("http://logs:4318".to_string()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://all:4318".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/json".to_string()),
            _ => None,
        };
        assert_eq!(lookup(&env, "ENDPOINT").map(|v| v.1), Some("http://logs:4318".into()));
        assert_eq!(lookup(&env, "PROTOCOL").map(|v| v.0), Some("OTEL_EXPORTER_OTLP_PROTOCOL".into()));
        assert_eq!(lookup(&env, "TIMEOUT"), None);
    }
}
