//! The effective config as a config file (`check-config`'s output).
//!
//! The output uses the input's key names and loads back, with the same
//! environment, as the same effective config. Secrets never appear: one
//! written as a bare `${env:VAR}` reference is printed as that reference;
//! one read from a file is printed as the file's path; one written
//! literally is printed as `[REDACTED]`, with a comment saying it must be
//! supplied again. Exporter keys filled from `OTEL_EXPORTER_OTLP_*`
//! variables are printed as their values (headers excepted: they are
//! secrets and come from the variable again) with a comment naming it.

use std::collections::BTreeMap;
use std::time::Duration;

use yaml_serde::{Mapping, Value};

use super::{AttrValue, Compression, Config, EnvLookup, LogFormat, Protocol, TokenSource};
use crate::privacy::{Action, MaskSpec, PrivacySpec};
use crate::secret::{REDACTED, Secret};

/// What `check-config` needs to know beyond the effective config: how the
/// secrets were written and which keys came from variables.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// `forge.api_token` as written, before `${env:...}` expansion.
    pub(super) api_token: Option<String>,
    /// `exporter.headers` values as written, by header name.
    pub(super) headers: BTreeMap<String, String>,
    /// Keys filled from variables: (key path, variable).
    pub(super) from_env: Vec<(String, String)>,
    /// The same for the metrics sources' exporter (`..._METRICS_*`).
    pub(super) metrics_from_env: Vec<(String, String)>,
    /// `metrics_sources[i].api_token` as written, by index.
    pub(super) metrics_api_tokens: Vec<Option<String>>,
    /// `hash_key` values as written, by key path (`privacy`, `sources[0].privacy`).
    pub(super) hash_keys: BTreeMap<String, String>,
    /// Bare references resolved against the loading environment.
    pub(super) references: BTreeMap<String, bool>,
}

impl Origins {
    /// Reads the written secrets from the unexpanded tree.
    pub(super) fn capture(tree: &Value, env: EnvLookup<'_>) -> Self {
        let api_token = tree.get("forge").and_then(|f| f.get("api_token")).and_then(Value::as_str).map(str::to_string);
        let headers: BTreeMap<String, String> = tree
            .get("exporter")
            .and_then(|e| e.get("headers"))
            .and_then(Value::as_mapping)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        let hash_key = |p: &Value| p.get("privacy")?.get("hash_key")?.as_str().map(str::to_string);
        let mut hash_keys = BTreeMap::new();
        if let Some(k) = hash_key(tree) {
            hash_keys.insert("privacy".to_string(), k);
        }
        let sources = tree.get("sources").and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or_default();
        for (i, s) in sources.iter().enumerate() {
            if let Some(k) = hash_key(s) {
                hash_keys.insert(format!("sources[{i}].privacy"), k);
            }
        }
        let metrics_api_tokens = super::metrics_sources::capture_tokens(tree);
        let mut references = BTreeMap::new();
        for text in api_token
            .iter()
            .chain(headers.values())
            .chain(hash_keys.values())
            .chain(metrics_api_tokens.iter().flatten())
        {
            if let Some((name, has_default)) = bare_reference(text) {
                // A default may itself be a secret: only a set variable makes the reference printable.
                let usable = !has_default || env(&name).is_some_and(|v| !v.is_empty());
                references.insert(text.clone(), usable);
            }
        }
        Self {
            api_token,
            headers,
            metrics_api_tokens,
            hash_keys,
            from_env: Vec::new(),
            metrics_from_env: Vec::new(),
            references,
        }
    }

    /// The printable form of a secret written as `written`.
    pub(super) fn secret_text(&self, written: Option<&String>) -> Option<String> {
        let w = written?;
        let (name, _) = bare_reference(w)?;
        self.references.get(w).copied().unwrap_or(false).then(|| format!("${{env:{name}}}"))
    }
}

/// `${VAR}`, `${env:VAR}` or `${env:VAR:-default}` and nothing else:
/// the variable's name and whether a default is given.
fn bare_reference(text: &str) -> Option<(String, bool)> {
    let body = text.trim().strip_prefix("${")?.strip_suffix('}')?;
    let body = body.strip_prefix("env:").unwrap_or(body);
    let (name, has_default) = match body.split_once(":-") {
        Some((name, _)) => (name.trim(), true),
        None => (body.trim(), false),
    };
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| (name.to_string(), has_default))
}

/// Renders `cfg` as a config file. `origins` may be the default (every
/// inline secret is then printed as `[REDACTED]`).
pub fn render(cfg: &Config, origins: &Origins) -> String {
    let mut notes = Vec::new();
    let mut root = Mapping::new();
    root.insert("forge".into(), forge(cfg, origins, &mut notes));
    let mut sources = Vec::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let mut m = source(s);
        // A source printed with its own rules only where they differ from the top level's.
        if s.privacy.spec() != &cfg.privacy
            && let Value::Mapping(map) = &mut m
        {
            let path = format!("sources[{i}].privacy");
            map.insert("privacy".into(), privacy(&path, s.privacy.spec(), origins, &mut notes));
        }
        sources.push(m);
    }
    root.insert("sources".into(), Value::Sequence(sources));
    root.insert("privacy".into(), privacy("privacy", &cfg.privacy, origins, &mut notes));
    if !cfg.metrics_sources.is_empty() {
        let list = super::metrics_sources::render(&cfg.metrics_sources, origins, &attributes, &mut notes);
        root.insert("metrics_sources".into(), list);
    }
    root.insert("poll".into(), poll(cfg));
    root.insert("exporter".into(), exporter(cfg, origins, &mut notes));
    let mut state = Mapping::new();
    state.insert("dir".into(), cfg.state.dir.display().to_string().into());
    state.insert("dead_letter_max_size".into(), size(cfg.state.dead_letter_max_bytes));
    root.insert("state".into(), state.into());
    let mut server = Mapping::new();
    if let Some(listen) = cfg.server.listen {
        server.insert("listen".into(), listen.to_string().into());
    }
    server.insert("enabled".into(), cfg.server.listen.is_some().into());
    server.insert("site_silence_after".into(), duration(cfg.server.site_silence_after));
    root.insert("server".into(), server.into());
    let mut log = Mapping::new();
    log.insert("format".into(), if cfg.log.format == LogFormat::Json { "json" } else { "text" }.into());
    log.insert("level".into(), cfg.log.level.clone().into());
    root.insert("log".into(), log.into());
    let mut otlp = Mapping::new();
    otlp.insert("enabled".into(), cfg.telemetry.otlp.is_some().into());
    if let Some(t) = &cfg.telemetry.otlp {
        otlp.insert("protocol".into(), protocol(t.protocol).into());
        otlp.insert("endpoint".into(), t.endpoint.clone().into());
        otlp.insert("interval".into(), duration(t.interval));
    }
    let mut telemetry = Mapping::new();
    telemetry.insert("otlp".into(), otlp.into());
    root.insert("telemetry".into(), telemetry.into());

    for (path, var) in &origins.from_env {
        notes.push(format!("{path}: from {var}"));
    }
    if let Some(m) = &cfg.metrics_exporter {
        // The file has no keys of its own for it: said here, so what the
        // metrics sources send where is not a guess.
        notes.push(format!(
            "metrics_sources export to {} over {} (the exporter section, with OTEL_EXPORTER_OTLP_METRICS_* in place of LOGS_*)",
            m.endpoint,
            protocol(m.protocol)
        ));
        for (path, var) in &origins.metrics_from_env {
            notes.push(format!("metrics exporter {path}: from {var}"));
        }
    }
    for w in cfg.warnings() {
        notes.push(format!("warning: {w}"));
    }
    let mut out = String::from("# The effective configuration; it loads back as the same configuration\n");
    out.push_str("# with the same environment. Secrets are never printed.\n");
    for n in notes {
        out.push_str(&format!("# {n}\n"));
    }
    match yaml_serde::to_string(&Value::Mapping(root)) {
        Ok(text) => out.push_str(&text),
        Err(e) => out.push_str(&format!("# cannot render config: {e}\n")),
    }
    out
}

fn forge(cfg: &Config, origins: &Origins, notes: &mut Vec<String>) -> Value {
    let f = &cfg.forge;
    let mut m = Mapping::new();
    m.insert("base_url".into(), f.base_url.clone().into());
    m.insert("email".into(), f.email.clone().into());
    match &f.token {
        TokenSource::File(path) => {
            m.insert("api_token_file".into(), path.display().to_string().into());
        }
        TokenSource::Inline(_) => {
            let text = origins.secret_text(origins.api_token.as_ref()).unwrap_or_else(|| {
                notes.push(format!(
                    "forge.api_token: written in the file; printed as {REDACTED}: supply it again (e.g. ${{env:FORGE_API_TOKEN}}) before using this output"
                ));
                REDACTED.to_string()
            });
            m.insert("api_token".into(), text.into());
        }
    }
    m.insert("request_timeout".into(), duration(f.request_timeout));
    m.insert("requests_per_minute".into(), f.requests_per_minute.into());
    m.insert("rate_period".into(), duration(f.rate_period));
    m.insert("max_response_size".into(), size(f.max_response_bytes));
    m.insert("max_pages_per_window".into(), f.max_pages_per_window.into());
    m.insert("max_retry_delay".into(), duration(f.max_retry_delay));
    m.insert("allow_insecure_http".into(), f.allow_insecure_http.into());
    m.into()
}

fn source(s: &super::SourceConfig) -> Value {
    let mut m = Mapping::new();
    m.insert("app_id".into(), s.app_id.clone().into());
    m.insert("environment_id".into(), s.environment_id.clone().into());
    m.insert("name".into(), s.name.clone().into());
    m.insert("service_name".into(), s.service_name.clone().into());
    m.insert("levels".into(), Value::Sequence(s.levels.iter().map(|l| l.clone().into()).collect()));
    if let Some(msg) = &s.message {
        m.insert("message".into(), msg.clone().into());
    }
    m.insert(
        "installation_contexts".into(),
        Value::Sequence(s.installation_contexts.iter().map(|l| l.clone().into()).collect()),
    );
    m.insert("resource_attributes".into(), attributes(&s.resource_attributes));
    m.into()
}

fn attributes(list: &[(String, AttrValue)]) -> Value {
    let mut attrs = Mapping::new();
    for (k, v) in list {
        let value: Value = match v {
            AttrValue::Str(s) => s.clone().into(),
            AttrValue::Bool(b) => (*b).into(),
            AttrValue::Int(i) => (*i).into(),
            AttrValue::Double(d) => (*d).into(),
        };
        attrs.insert(k.clone().into(), value);
    }
    attrs.into()
}

/// The effective rules, presets expanded: the output says what runs.
fn privacy(path: &str, p: &PrivacySpec, origins: &Origins, notes: &mut Vec<String>) -> Value {
    let mut m = Mapping::new();
    let attrs = p.attributes.iter().map(|r| {
        let mut a = Mapping::new();
        a.insert("key".into(), r.key.clone().into());
        a.insert("action".into(), r.action.name().into());
        if let Action::Truncate(n) = r.action {
            a.insert("max_bytes".into(), (n as u64).into());
        }
        Value::Mapping(a)
    });
    m.insert("attributes".into(), Value::Sequence(attrs.collect()));
    let masks = p.mask.iter().map(|x| match x {
        MaskSpec::Named(name) => Value::from(name.clone()),
        MaskSpec::Custom { name, pattern } => {
            let mut c = Mapping::new();
            c.insert("name".into(), name.clone().into());
            c.insert("pattern".into(), pattern.clone().into());
            Value::Mapping(c)
        }
    });
    m.insert("mask".into(), Value::Sequence(masks.collect()));
    m.insert("marker".into(), p.marker.clone().into());
    m.insert("hash_prefix".into(), p.hash_prefix.clone().into());
    if p.hash_key.is_some() {
        // A source that inherits the top level's key prints none of its own.
        let written = origins.hash_keys.get(path);
        if written.is_some() || path == "privacy" {
            let text = origins.secret_text(written).unwrap_or_else(|| {
                notes.push(format!(
                    "{path}.hash_key: written in the file; printed as {REDACTED}: supply it again (e.g. ${{env:PRIVACY_HASH_KEY}}) before using this output"
                ));
                REDACTED.to_string()
            });
            m.insert("hash_key".into(), text.into());
        }
    }
    m.into()
}

fn poll(cfg: &Config) -> Value {
    let p = &cfg.poll;
    let mut m = Mapping::new();
    for (k, d) in [
        ("interval", p.interval),
        ("settle_delay", p.settle_delay),
        ("late_arrival", p.late_arrival),
        ("initial_lookback", p.initial_lookback),
        ("retention_margin", p.retention_margin),
        ("backoff_initial", p.backoff_initial),
        ("backoff_max", p.backoff_max),
        ("config_error_retry", p.config_error_retry),
    ] {
        m.insert(k.into(), duration(d));
    }
    m.insert("max_page_attempts".into(), p.max_page_attempts.into());
    m.into()
}

fn exporter(cfg: &Config, origins: &Origins, notes: &mut Vec<String>) -> Value {
    let e = &cfg.exporter;
    let mut m = Mapping::new();
    m.insert("protocol".into(), protocol(e.protocol).into());
    let key = if e.endpoint_as_is { "logs_endpoint" } else { "endpoint" };
    m.insert(key.into(), e.endpoint.clone().into());
    let headers_from_env = origins.from_env.iter().any(|(path, _)| path == "exporter.headers");
    if !headers_from_env {
        let mut h = Mapping::new();
        for (name, value) in &e.headers {
            h.insert(name.clone().into(), header_text(name, value, origins, notes).into());
        }
        m.insert("headers".into(), h.into());
    }
    let compression = match e.compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    };
    m.insert("compression".into(), compression.into());
    m.insert("timeout".into(), duration(e.timeout));
    m.insert("max_request_bytes".into(), size(e.max_request_bytes as u64));
    let mut tls = Mapping::new();
    for (k, v) in [("ca_file", &e.tls.ca_file), ("cert_file", &e.tls.cert_file), ("key_file", &e.tls.key_file)] {
        if let Some(path) = v {
            tls.insert(k.into(), path.display().to_string().into());
        }
    }
    m.insert("tls".into(), tls.into());
    let r = &e.retry;
    let mut retry = Mapping::new();
    retry.insert("initial_backoff".into(), duration(r.initial_backoff));
    retry.insert("max_backoff".into(), duration(r.max_backoff));
    retry.insert("max_retry_after".into(), duration(r.max_retry_after));
    // 0 means "never give up", the meaning of an absent limit.
    retry.insert("max_elapsed".into(), r.max_elapsed.map_or_else(|| 0.into(), duration));
    m.insert("retry".into(), retry.into());
    m.into()
}

fn header_text(name: &str, _value: &Secret, origins: &Origins, notes: &mut Vec<String>) -> String {
    origins.secret_text(origins.headers.get(name)).unwrap_or_else(|| {
        notes.push(format!(
            "exporter.headers.{name}: written in the file; printed as {REDACTED}: supply it again (e.g. ${{env:VAR}}) before using this output"
        ));
        REDACTED.to_string()
    })
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http/protobuf",
        Protocol::HttpJson => "http/json",
        Protocol::Stdout => "stdout",
    }
}

fn duration(d: Duration) -> Value {
    if d.is_zero() { 0u64.into() } else { humantime::format_duration(d).to_string().into() }
}

/// The largest binary unit that divides the size, else bytes.
fn size(n: u64) -> Value {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n > 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift).into();
        }
    }
    n.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_references() {
        assert_eq!(bare_reference("${env:TOKEN}"), Some(("TOKEN".into(), false)));
        assert_eq!(bare_reference(" ${TOKEN_2} "), Some(("TOKEN_2".into(), false)));
        assert_eq!(bare_reference("${env:T:-x}"), Some(("T".into(), true)));
        assert_eq!(bare_reference("Bearer ${env:T}"), None);
        assert_eq!(bare_reference("${A}${B}"), None);
        assert_eq!(bare_reference("literal"), None);
        assert_eq!(bare_reference("${9X}"), None);
    }

    #[test]
    fn sizes_keep_their_unit() {
        assert_eq!(size(64 << 20), Value::from("64MiB"));
        assert_eq!(size(1 << 30), Value::from("1GiB"));
        assert_eq!(size(3 << 10), Value::from("3KiB"));
        assert_eq!(size(1536), Value::from(1536u64));
        assert_eq!(size(1000), Value::from(1000u64));
        assert_eq!(size(0), Value::from(0u64));
    }
}
