//! Raw config → runtime config. Every error names its key path; all errors
//! of a file are reported together.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::privacy;
use super::raw::{self, Lenient, Scalar};
use super::trust;
use super::validate_exporter::{exporter, metrics_exporter, telemetry};
use super::*;
use crate::privacy::PrivacySpec;

/// Endpoints never carry passwords: they would be printed and logged.
pub(super) const CREDENTIALS_IN_ENDPOINT: &str = "must not carry credentials (user:password@); put them in exporter.headers (e.g. Authorization), which are redacted";

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

pub(super) struct Errors(pub(super) Vec<String>);

impl Errors {
    pub(super) fn push(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{path}: {msg}"));
    }

    pub(super) fn duration(&mut self, path: &str, value: &Option<Scalar>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(text) => parse_duration(&text.text()).unwrap_or_else(|e| {
                self.push(path, e);
                default
            }),
        }
    }

    pub(super) fn size(&mut self, path: &str, value: &Option<Scalar>, default: u64) -> u64 {
        let text = match value {
            None => return default,
            Some(s) => s.text(),
        };
        parse_size(&text).unwrap_or_else(|e| {
            self.push(path, e);
            default
        })
    }

    pub(super) fn number<T: FromStr + Clone>(&mut self, path: &str, value: &Option<Lenient<T>>, default: T) -> T {
        match value {
            None => default,
            Some(v) => v.get().unwrap_or_else(|e| {
                self.push(path, e);
                default
            }),
        }
    }
}

/// `1m`, `30s`, `1h 30m`, `250ms`, or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration `{t}` ({e}); use forms like 30s, 1m, 1h"))?;
    if d > MAX_DURATION {
        return Err(format!("`{t}` is longer than any setting takes (at most 366d)"));
    }
    Ok(d)
}

/// The longest duration any setting takes: every later sum or product of
/// durations (deadlines, health limits) stays far from overflow.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// `4MiB`, `512KiB`, `10MB`, `1048576`.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size `{t}`; use forms like 4MiB, 512KiB, 1048576"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "ki" => 1 << 10,
        "mib" | "mi" => 1 << 20,
        "gib" | "gi" => 1 << 30,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        _ => return Err(format!("invalid size unit in `{t}`; use B, KiB, MiB, GiB, KB, MB or GB")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size `{t}` is too large"))
}

/// `ari:cloud:<product>::site/<id>`.
pub(crate) fn is_site_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("ari:cloud:") else { return false };
    let Some((product, site)) = rest.split_once("::site/") else { return false };
    !product.is_empty()
        && product.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !site.is_empty()
        && site.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

pub fn validate(raw: raw::RawConfig, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let mut errs = Errors(Vec::new());
    let forge = forge(raw.forge, &mut errs);
    let mut privacy_errs = Vec::new();
    let global = match &raw.privacy {
        Some(p) => privacy::spec("privacy", p, &privacy::base(), &mut privacy_errs),
        None => privacy::base(),
    };
    // Compiled for its errors only: each source compiles the spec it uses.
    let _ = privacy::compile("privacy", global.clone(), &mut privacy_errs);
    errs.0.append(&mut privacy_errs);
    let has_metrics = raw.metrics_sources.as_ref().is_some_and(|m| !m.is_empty());
    let sources = sources(raw.sources, &global, has_metrics, &mut errs);
    let log_names: HashSet<String> = sources.iter().map(|s| s.name.clone()).collect();
    let mut attr_errs = Errors(Vec::new());
    let metrics_sources = super::metrics_sources::validate(
        raw.metrics_sources.unwrap_or_default(),
        raw.poll.settle_delay.is_some(),
        &log_names,
        &mut |p, a| attributes(p, a, &mut attr_errs),
        &mut errs.0,
    );
    errs.0.extend(attr_errs.0);
    let poll = poll(&raw.poll, &mut errs);
    let metrics_exporter = (!metrics_sources.is_empty()).then(|| metrics_exporter(&raw.exporter, env, &mut errs));
    let exporter = exporter(raw.exporter, env, &mut errs, otel_env::Signal::Logs);

    let state = StateConfig {
        dir: PathBuf::from(raw.state.dir.unwrap_or_else(|| "./state".into())),
        dead_letter_max_bytes: errs.size("state.dead_letter_max_size", &raw.state.dead_letter_max_size, 100 << 20),
    };
    let enabled = errs.number("server.enabled", &raw.server.enabled, true);
    let listen_text = raw.server.listen.unwrap_or_else(|| "127.0.0.1:9464".into());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errs.push("server.listen", format!("`{listen_text}` is not an address like 127.0.0.1:9464"));
            None
        }
    };
    let site_silence_after =
        errs.duration("server.site_silence_after", &raw.server.site_silence_after, Duration::from_secs(3600));
    let server = ServerConfig { listen: if enabled { listen } else { None }, site_silence_after };

    let format = match raw.log.format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            errs.push("log.format", format!("`{other}` is not one of text, json"));
            LogFormat::Text
        }
    };
    let level = raw.log.level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        errs.push("log.level", format!("`{level}` is not a level or filter (error, warn, info, debug, trace)"));
    }
    let log = LogConfig { format, level };
    let telemetry = telemetry(&raw.telemetry, &exporter, &mut errs);

    if !errs.0.is_empty() {
        return Err(ConfigError::Invalid(errs.0));
    }
    Ok(Config {
        forge,
        sources,
        metrics_sources,
        poll,
        exporter,
        metrics_exporter,
        state,
        server,
        log,
        telemetry,
        privacy: global,
    })
}

fn forge(raw: Option<raw::RawForge>, errs: &mut Errors) -> ForgeConfig {
    let raw = raw.unwrap_or_else(|| {
        errs.push("forge", "required (email and api_token or api_token_file)");
        Default::default()
    });
    let base_url = raw.base_url.unwrap_or_else(|| "https://api.atlassian.com".into()).trim_end_matches('/').to_string();
    let allow_insecure_http = errs.number("forge.allow_insecure_http", &raw.allow_insecure_http, false);
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        errs.push("forge.base_url", "must start with http:// or https://");
    } else if trust::has_userinfo(&base_url) {
        errs.push("forge.base_url", "must not carry credentials (user:password@); use forge.email and forge.api_token");
    } else if base_url.starts_with("http://") && !allow_insecure_http && !trust::is_loopback(&base_url) {
        errs.push(
            "forge.base_url",
            "plain http:// only to a loopback host (127.0.0.0/8, ::1, localhost), since the API token goes with \
             every call: use https://, or set forge.allow_insecure_http: true on a network you trust",
        );
    }
    let email = raw.email.unwrap_or_default().trim().to_string();
    if email.is_empty() {
        errs.push("forge.email", "required (the account that owns the API token)");
    }
    let token = match (raw.api_token, raw.api_token_file) {
        (Some(_), Some(_)) => {
            errs.push("forge.api_token", "set either api_token or api_token_file, not both");
            TokenSource::Inline(Secret::default())
        }
        (Some(t), None) if t.trim().is_empty() => {
            errs.push("forge.api_token", "is empty (is its environment variable set?)");
            TokenSource::Inline(Secret::default())
        }
        (Some(t), None) => TokenSource::Inline(Secret::new(t.trim())),
        (None, Some(path)) => {
            let source = TokenSource::File(PathBuf::from(path));
            if let Err(e) = source.read() {
                errs.push("forge.api_token_file", e);
            }
            source
        }
        (None, None) => {
            errs.push("forge.api_token", "required (or api_token_file)");
            TokenSource::Inline(Secret::default())
        }
    };
    let request_timeout = errs.duration("forge.request_timeout", &raw.request_timeout, Duration::from_secs(30));
    if request_timeout.is_zero() {
        errs.push("forge.request_timeout", "must be more than 0");
    }
    let requests_per_minute = errs.number("forge.requests_per_minute", &raw.requests_per_minute, 30);
    if !(1..=10_000).contains(&requests_per_minute) {
        errs.push("forge.requests_per_minute", "must be between 1 and 10000");
    }
    let rate_period = errs.duration("forge.rate_period", &raw.rate_period, Duration::from_secs(60));
    if rate_period.is_zero() {
        errs.push("forge.rate_period", "must be more than 0");
    }
    let max_response_bytes = errs.size("forge.max_response_size", &raw.max_response_size, 64 << 20);
    let max_pages_per_window = errs.number("forge.max_pages_per_window", &raw.max_pages_per_window, 10_000);
    if max_pages_per_window == 0 {
        errs.push("forge.max_pages_per_window", "must be at least 1");
    }
    let max_retry_delay = errs.duration("forge.max_retry_delay", &raw.max_retry_delay, Duration::from_secs(300));
    if max_retry_delay.is_zero() || max_retry_delay > Duration::from_secs(24 * 3600) {
        errs.push("forge.max_retry_delay", "must be more than 0 and at most 1d");
    }
    ForgeConfig {
        base_url,
        allow_insecure_http,
        email,
        token,
        request_timeout,
        requests_per_minute,
        rate_period,
        max_response_bytes,
        max_pages_per_window,
        max_retry_delay,
    }
}

fn sources(
    raw: Option<Vec<raw::RawSource>>,
    global: &PrivacySpec,
    has_metrics: bool,
    errs: &mut Errors,
) -> Vec<SourceConfig> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() && !has_metrics {
        errs.push("sources", "at least one source is required (or a metrics source)");
    }
    let mut out: Vec<SourceConfig> = Vec::new();
    let mut names = HashSet::new();
    let mut queries = HashSet::new();
    for (i, s) in raw.into_iter().enumerate() {
        let p = format!("sources[{i}]");
        let app_id = s.app_id.unwrap_or_default().trim().to_string();
        if app_id.is_empty() {
            errs.push(format!("{p}.app_id"), "required");
        } else if let Some(why) = trust::id_problem(&app_id) {
            errs.push(format!("{p}.app_id"), format!("not an app id: {why}"));
        }
        let environment_id = s.environment_id.unwrap_or_default().trim().to_string();
        if environment_id.is_empty() {
            errs.push(format!("{p}.environment_id"), "required");
        } else if let Some(why) = trust::id_problem(&environment_id) {
            errs.push(format!("{p}.environment_id"), format!("not an environment id: {why}"));
        }
        let name = s.name.unwrap_or_else(|| environment_id.clone());
        if !names.insert(name.clone()) {
            errs.push(format!("{p}.name"), format!("`{name}` is used by another source"));
        }
        let mut levels = Vec::new();
        for (j, level) in s.levels.unwrap_or_default().iter().enumerate() {
            let up = level.trim().to_ascii_uppercase();
            if LEVELS.contains(&up.as_str()) {
                levels.push(up);
            } else {
                errs.push(format!("{p}.levels[{j}]"), format!("`{level}` is not one of {}", LEVELS.join(", ")));
            }
        }
        let mut installation_contexts = Vec::new();
        for (j, site) in s.installation_contexts.unwrap_or_default().into_iter().enumerate() {
            if is_site_id(site.trim()) {
                installation_contexts.push(site.trim().to_string());
            } else {
                errs.push(format!("{p}.installation_contexts[{j}]"), "not a site id (ari:cloud:<product>::site/<id>)");
            }
        }
        let resource_attributes = attributes(&p, s.resource_attributes.unwrap_or_default(), errs);
        let message = s.message.filter(|m| !m.is_empty());
        let privacy = match &s.privacy {
            Some(raw) => {
                let path = format!("{p}.privacy");
                let spec = privacy::spec(&path, raw, global, &mut errs.0);
                privacy::compile(&path, spec, &mut errs.0)
            }
            // Errors of the top level's rules are reported once, above.
            None => privacy::compile("privacy", global.clone(), &mut Vec::new()),
        };
        let source = SourceConfig {
            app_id,
            environment_id,
            name,
            service_name: s.service_name.unwrap_or_else(|| "forge-app".into()),
            levels,
            message,
            installation_contexts,
            resource_attributes,
            privacy,
        };
        if !queries.insert(source.query_key()) {
            errs.push(&p, "asks for the same logs as another source (same app, environment and filters)");
        }
        out.push(source);
    }
    out
}

fn attributes(p: &str, raw: BTreeMap<String, yaml_serde::Value>, errs: &mut Errors) -> Vec<(String, AttrValue)> {
    let mut out = Vec::new();
    for (k, v) in raw {
        let value = match v {
            yaml_serde::Value::String(s) => AttrValue::Str(s),
            yaml_serde::Value::Bool(b) => AttrValue::Bool(b),
            yaml_serde::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => AttrValue::Int(i),
                (None, Some(f)) => AttrValue::Double(f),
                _ => AttrValue::Str(n.to_string()),
            },
            _ => {
                errs.push(format!("{p}.resource_attributes.{k}"), "must be a string, number or boolean");
                continue;
            }
        };
        out.push((k, value));
    }
    out
}

fn poll(raw: &raw::RawPoll, errs: &mut Errors) -> PollConfig {
    let interval = errs.duration("poll.interval", &raw.interval, super::DEFAULT_INTERVAL);
    if interval.is_zero() {
        errs.push("poll.interval", "must be more than 0");
    }
    let initial_lookback = errs.duration("poll.initial_lookback", &raw.initial_lookback, Duration::from_secs(3600));
    if initial_lookback > API_RETENTION {
        errs.push("poll.initial_lookback", "at most 14d (the API keeps 14 days)");
    }
    let retention_margin = errs.duration("poll.retention_margin", &raw.retention_margin, Duration::from_secs(600));
    if retention_margin >= Duration::from_secs(24 * 3600) {
        errs.push("poll.retention_margin", "must be less than 1d");
    }
    let backoff_initial = errs.duration("poll.backoff_initial", &raw.backoff_initial, Duration::from_secs(1));
    let backoff_max = errs.duration("poll.backoff_max", &raw.backoff_max, Duration::from_secs(300));
    if backoff_max < backoff_initial {
        errs.push("poll.backoff_max", "must be at least poll.backoff_initial");
    }
    PollConfig {
        interval,
        settle_delay: errs.duration("poll.settle_delay", &raw.settle_delay, super::DEFAULT_SETTLE_DELAY),
        late_arrival: errs.duration("poll.late_arrival", &raw.late_arrival, Duration::from_secs(600)),
        initial_lookback,
        retention_margin,
        backoff_initial,
        backoff_max,
        config_error_retry: errs.duration("poll.config_error_retry", &raw.config_error_retry, Duration::from_secs(300)),
        max_page_attempts: errs.number("poll.max_page_attempts", &raw.max_page_attempts, 10),
    }
}
