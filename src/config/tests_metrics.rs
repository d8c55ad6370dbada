//! `metrics_sources:`: defaults, validation with key paths, secrets, and
//! the printed config loading back.

use super::*;

const APP: &str = "0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6";

fn base(list: &str) -> String {
    format!("forge:\n  email: bot@example.com\n  api_token: tok-123\nmetrics_sources:\n{list}")
}

fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
}

fn errors(text: &str) -> Vec<String> {
    match Config::from_yaml(text, &env(&[])) {
        Err(ConfigError::Invalid(v)) => v,
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn defaults_inherit_the_forge_account_and_ask_for_every_metric() {
    let text = base(&format!("  - app_id: {APP}\n    environments: [prod]\n"));
    let cfg = Config::from_yaml(&text, &env(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.sources.is_empty(), "a metrics source alone is enough");
    let m = &cfg.metrics_sources[0];
    assert_eq!(m.metrics.len(), 10);
    assert_eq!(m.name, APP);
    assert_eq!(m.app_ari(), format!("ari:cloud:ecosystem::app/{APP}"));
    assert_eq!(m.email(&cfg.forge), "bot@example.com");
    assert_eq!(m.token(&cfg.forge).read().map(|s| s.expose().to_string()).ok().as_deref(), Some("tok-123"));
    assert_eq!(m.checkpoint_name(), format!("metrics:{APP}"));
}

#[test]
fn own_account_and_ari_app_ids_are_accepted() {
    let text = base(&format!(
        "  - app_id: ari:cloud:ecosystem::app/{}\n    name: m\n    environments: [a, b]\n    metrics: [service_instance_count]\n    email: owner@example.com\n    api_token: ${{env:OWNER}}\n",
        APP.to_uppercase()
    ));
    let cfg = Config::from_yaml(&text, &env(&[("OWNER", "own-SECRET")])).unwrap_or_else(|e| panic!("{e}"));
    let m = &cfg.metrics_sources[0];
    assert_eq!(m.app_id, APP);
    assert_eq!(m.metrics, vec!["SERVICE_INSTANCE_COUNT".to_string()]);
    assert_eq!(m.email(&cfg.forge), "owner@example.com");
    assert!(!format!("{cfg:?}").contains("own-SECRET"), "secrets are never printed");
}

#[test]
fn mistakes_are_named_by_key_path() {
    let text = base(
        "  - app_id: not-a-uuid\n    environments: []\n    metrics: [FORGE_NOPE]\n    email: x@example.com\n  - app_id: 0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6\n    environments: [p]\n    api_token: t\n    levels: [INFO]\n",
    );
    let errs = Config::from_yaml(&text, &env(&[])).map_err(|e| e.to_string()).err().unwrap_or_default();
    assert!(errs.contains("metrics_sources[1].levels: unknown field"), "{errs}");
    let text = base(
        "  - app_id: not-a-uuid\n    environments: []\n    metrics: [FORGE_NOPE]\n    email: x@example.com\n  - app_id: 0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6\n    environments: [p]\n    api_token: t\n",
    );
    let errs = errors(&text);
    for want in [
        "metrics_sources[0].app_id: `not-a-uuid` is not an app uuid",
        "metrics_sources[0].environments: required",
        "metrics_sources[0].metrics[0]: `FORGE_NOPE` is not one of",
        "metrics_sources[0].api_token: required with email",
        "metrics_sources[1].email: required with api_token",
    ] {
        assert!(errs.iter().any(|e| e.starts_with(want)), "{want:?} not in {errs:#?}");
    }
    let twice = base(&format!("  - app_id: {APP}\n    environments: [p]\n  - app_id: {APP}\n    environments: [p]\n"));
    let errs = errors(&twice);
    assert!(errs.iter().any(|e| e.contains("metrics_sources[1].name")), "{errs:?}");
    let none = "forge:\n  email: a@b.c\n  api_token: t\nmetrics_sources: []\n";
    assert!(errors(none).iter().any(|e| e.starts_with("sources: at least one source")));
}

#[test]
fn printed_metrics_sources_load_back_without_secrets() {
    let text = format!(
        "{}    name: own\n    settle_delay: 3m\n    email: owner@example.com\n    api_token: ${{env:OWNER}}\n  - app_id: {APP}\n    name: literal\n    environments: [q]\n    email: o2@example.com\n    api_token: lit-SECRET\n    resource_attributes:\n      team: ops\n",
        base(&format!("  - app_id: {APP}\n    environments: [p, q]\n    metrics: [FORGE_API_REQUEST_COUNT]\n"))
    );
    let text = text.replace("tok-123", "${env:FT}");
    let e = env(&[("OWNER", "own-SECRET"), ("FT", "ft-SECRET")]);
    let (cfg, origins) = Config::from_yaml_traced(&text, &e).unwrap_or_else(|e| panic!("{e}"));
    let printed = print::render(&cfg, &origins);
    assert!(!printed.contains("SECRET"), "{printed}");
    assert!(printed.contains("api_token: ${env:OWNER}"), "{printed}");
    assert_eq!(cfg.metrics_sources[0].settle_delay, Some(std::time::Duration::from_secs(180)));
    // Neither the source nor poll sets it: a minute, not the logs' seconds.
    assert_eq!(cfg.metrics_sources[1].settle_delay, Some(super::metrics_sources::DEFAULT_SETTLE_DELAY));
    let with_poll = format!("{text}poll:\n  settle_delay: 20s\n");
    let cfg2 = Config::from_yaml(&with_poll, &e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg2.metrics_sources[1].settle_delay, None, "poll.settle_delay is every source's default then");
    assert!(printed.contains("metrics_sources[1].api_token: written in the file"), "{printed}");
    let again = Config::from_yaml(&printed.replace("'[REDACTED]'", "lit-SECRET"), &e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg, again, "{printed}");
}

/// The logs and metrics exporters of a config with one metrics source,
/// `exporter_yaml` (may be empty) and these variables.
fn exporters(exporter_yaml: &str, vars: &'static [(&'static str, &'static str)]) -> (ExporterConfig, ExporterConfig) {
    let text = format!("{}{exporter_yaml}", base(&format!("  - app_id: {APP}\n    environments: [prod]\n")));
    let cfg = Config::from_yaml(&text, &env(vars)).unwrap_or_else(|e| panic!("{e}"));
    let metrics = cfg.metrics_exporter.clone().unwrap_or_else(|| panic!("no metrics exporter"));
    (cfg.exporter, metrics)
}

/// `OTEL_EXPORTER_OTLP_{LOGS,METRICS,}_<key>` all set, each to its own value.
macro_rules! three {
    ($key:literal, $logs:expr, $metrics:expr, $generic:expr) => {
        &[
            (concat!("OTEL_EXPORTER_OTLP_LOGS_", $key), $logs),
            (concat!("OTEL_EXPORTER_OTLP_METRICS_", $key), $metrics),
            (concat!("OTEL_EXPORTER_OTLP_", $key), $generic),
        ]
    };
}

#[test]
fn no_metrics_sources_no_metrics_exporter() {
    let text = "forge:\n  email: bot@example.com\n  api_token: t\nsources:\n  - app_id: a\n    environment_id: e\n";
    let cfg = Config::from_yaml(text, &env(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.metrics_exporter.is_none());
}

#[test]
fn metrics_endpoint_is_used_as_given_and_the_generic_one_as_a_base() {
    const HTTP: (&str, &str) = ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    let (logs, metrics) = exporters(
        "",
        &[
            HTTP,
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:4318/in/logs"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4318/in/metrics"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://g:4318"),
        ],
    );
    assert_eq!(logs.http_logs_url(), "http://l:4318/in/logs");
    assert_eq!(crate::export::metrics::metrics_url(&metrics), "http://m:4318/in/metrics");
    let (_, metrics) = exporters("", &[HTTP, ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://g:4318")]);
    assert_eq!(crate::export::metrics::metrics_url(&metrics), "http://g:4318/v1/metrics");
    // The logs variable is not the metrics one.
    let (_, metrics) = exporters("", &[HTTP, ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:4318/v1/logs")]);
    assert_eq!(crate::export::metrics::metrics_url(&metrics), "http://localhost:4318/v1/metrics");
    // The file wins, its logs URL giving the base.
    let file = "exporter:\n  protocol: http/protobuf\n  logs_endpoint: https://f/otlp/v1/logs\n";
    let (_, metrics) = exporters(file, &[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4318/x")]);
    assert_eq!(crate::export::metrics::metrics_url(&metrics), "https://f/otlp/v1/metrics");
}

#[test]
fn metrics_protocol() {
    let (logs, metrics) = exporters("", three!("PROTOCOL", "http/json", "http/protobuf", "grpc"));
    assert_eq!((logs.protocol, metrics.protocol), (Protocol::HttpJson, Protocol::HttpProtobuf));
    let (logs, metrics) = exporters("", &[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")]);
    assert_eq!((logs.protocol, metrics.protocol), (Protocol::Grpc, Protocol::HttpJson));
    let (_, metrics) = exporters("exporter:\n  protocol: grpc\n", three!("PROTOCOL", "http/json", "http/json", "x"));
    assert_eq!(metrics.protocol, Protocol::Grpc, "the file wins");
    let text = base(&format!("  - app_id: {APP}\n    environments: [prod]\n"));
    let bad = env(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "carrier-pigeon")]);
    let err = Config::from_yaml(&text, &bad).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"), "{err}");
}

#[test]
fn metrics_headers_are_secrets() {
    let (logs, metrics) = exporters("", three!("HEADERS", "x-logs=l-secret", "x-metrics=m%3Dsecret", "x-all=g"));
    let names = |e: &ExporterConfig| e.headers.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!((names(&logs), names(&metrics)), (vec!["x-logs".to_string()], vec!["x-metrics".to_string()]));
    assert_eq!(metrics.headers[0].1.expose(), "m=secret");
    assert!(!format!("{metrics:?}").contains("m=secret"), "a header value is never printed");
    let (_, metrics) = exporters("", &[("OTEL_EXPORTER_OTLP_HEADERS", "x-all=g")]);
    assert_eq!(names(&metrics), vec!["x-all".to_string()]);
    let text = base(&format!("  - app_id: {APP}\n    environments: [prod]\n"));
    let bad = env(&[("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "hunter2")]);
    let err = Config::from_yaml(&text, &bad).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("OTEL_EXPORTER_OTLP_METRICS_HEADERS") && !err.contains("hunter2"), "{err}");
    // Written HTTP-style, the credential lands in the name: never echoed.
    const HTTP_STYLE: &str = "Authorization: Basic dXNlcjpwYXNz==";
    for (var, bad) in [
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", env(&[("OTEL_EXPORTER_OTLP_METRICS_HEADERS", HTTP_STYLE)])),
        ("OTEL_EXPORTER_OTLP_HEADERS", env(&[("OTEL_EXPORTER_OTLP_HEADERS", HTTP_STYLE)])),
    ] {
        let err = Config::from_yaml(&text, &bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("not a valid header name") && !err.contains("dXNlcjpwYXNz"), "{var}: {err}");
    }
}

#[test]
fn metrics_timeout() {
    let (logs, metrics) = exporters("", three!("TIMEOUT", "1000", "2500", "7000"));
    assert_eq!((logs.timeout, metrics.timeout), (Duration::from_secs(1), Duration::from_millis(2500)));
    let (_, metrics) = exporters("", &[("OTEL_EXPORTER_OTLP_TIMEOUT", "7000")]);
    assert_eq!(metrics.timeout, Duration::from_secs(7));
    // Capped like every duration of the config.
    let text = base(&format!("  - app_id: {APP}\n    environments: [prod]\n"));
    let huge = env(&[("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "18446744073709551615")]);
    let err = Config::from_yaml(&text, &huge).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT") && err.contains("at most 366 days"), "{err}");
}

#[test]
fn metrics_compression() {
    let (logs, metrics) = exporters("", three!("COMPRESSION", "zstd", "gzip", "none"));
    assert_eq!((logs.compression, metrics.compression), (Compression::Zstd, Compression::Gzip));
    let (_, metrics) = exporters("exporter:\n  compression: none\n", three!("COMPRESSION", "zstd", "gzip", "gzip"));
    assert_eq!(metrics.compression, Compression::None, "the file wins");
}

#[test]
fn metrics_certificate() {
    let (logs, metrics) = exporters("", three!("CERTIFICATE", "/l/ca.pem", "/m/ca.pem", "/g/ca.pem"));
    assert_eq!(logs.tls.ca_file, Some(PathBuf::from("/l/ca.pem")));
    assert_eq!(metrics.tls.ca_file, Some(PathBuf::from("/m/ca.pem")));
}

#[test]
fn metrics_client_certificate_and_key() {
    let vars: &[(&str, &str)] = &[
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", "/m/client.pem"),
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "/m/client-key.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/g/client.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/g/client-key.pem"),
    ];
    let (logs, metrics) = exporters("", vars);
    assert_eq!(metrics.tls.cert_file, Some(PathBuf::from("/m/client.pem")));
    assert_eq!(metrics.tls.key_file, Some(PathBuf::from("/m/client-key.pem")));
    assert_eq!(logs.tls.cert_file, Some(PathBuf::from("/g/client.pem")));
    assert_eq!(logs.tls.key_file, Some(PathBuf::from("/g/client-key.pem")));
    let logs_only: &[(&str, &str)] = &[
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", "/l/c.pem"),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/l/k.pem"),
    ];
    let (logs, metrics) = exporters("", logs_only);
    assert_eq!(logs.tls.key_file, Some(PathBuf::from("/l/k.pem")));
    assert_eq!((metrics.tls.cert_file, metrics.tls.key_file), (None, None), "a logs variable is not the metrics one");
}

#[test]
fn metrics_insecure() {
    let vars: &[(&str, &str)] = &[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "true"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
    ];
    let (logs, metrics) = exporters("", vars);
    assert_eq!(
        (logs.endpoint.as_str(), metrics.endpoint.as_str()),
        ("https://collector:4317", "http://collector:4317")
    );
}

#[test]
fn check_config_says_where_metrics_go_and_which_variables_said_so() {
    let text = base(&format!("  - app_id: {APP}\n    environments: [prod]\n"));
    let vars = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://all:4317"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics.example:4318/in/metrics"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
    ]);
    let (cfg, origins) = Config::from_yaml_traced(&text, &vars).unwrap_or_else(|e| panic!("{e}"));
    let printed = print::render(&cfg, &origins);
    for want in [
        "# metrics_sources export to http://metrics.example:4318/in/metrics over http/protobuf",
        "# metrics exporter exporter.endpoint: from OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "# metrics exporter exporter.protocol: from OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "# exporter.endpoint: from OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        assert!(printed.contains(want), "{want:?} not in:\n{printed}");
    }
    // Without metrics sources nothing is said of a metrics exporter.
    let logs_only =
        "forge:\n  email: bot@example.com\n  api_token: tok-123\nsources:\n  - app_id: a\n    environment_id: prod\n";
    let (cfg, origins) = Config::from_yaml_traced(logs_only, &vars).unwrap_or_else(|e| panic!("{e}"));
    assert!(!print::render(&cfg, &origins).contains("metrics"), "{}", print::render(&cfg, &origins));
}
