use std::path::Path;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

const MINIMAL: &str = r#"
forge:
  email: bot@example.com
  api_token: tok-123
sources:
  - app_id: app-1
    environment_id: env-1
"#;

fn invalid_messages(err: ConfigError) -> Vec<String> {
    match err {
        ConfigError::Invalid(v) => v,
        other => vec![other.to_string()],
    }
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
    let env = |n: &str| (n == "FORGE_API_TOKEN").then(|| "example-token".to_string());
    let cfg = Config::load(&path, &env).map_err(|e| e.to_string());
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => panic!("example.yaml: {e}"),
    };
    assert_eq!(cfg.forge.requests_per_minute, 30);
    assert_eq!(cfg.poll.late_arrival, Duration::from_secs(600));
    assert_eq!(cfg.exporter.max_request_bytes, 4 << 20);
    assert!(!cfg.sources.is_empty());
}

#[test]
fn defaults_fill_a_minimal_file() {
    let cfg = Config::from_yaml(MINIMAL, &no_env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.forge.base_url, "https://api.atlassian.com");
    assert_eq!(cfg.sources[0].name, "env-1");
    assert_eq!(cfg.sources[0].service_name, "forge-app");
    assert_eq!(cfg.poll.interval, Duration::from_secs(30));
    assert_eq!(cfg.poll.settle_delay, Duration::from_secs(5));
    assert_eq!(cfg.poll.late_arrival, Duration::from_secs(600));
    assert_eq!(cfg.exporter.protocol, Protocol::Grpc);
    assert_eq!(cfg.exporter.endpoint, "http://localhost:4317");
    assert_eq!(cfg.server.listen, "127.0.0.1:9464".parse().ok());
}

#[test]
fn unknown_key_names_its_path() {
    let text = format!("{MINIMAL}poll:\n  intervall: 1m\n");
    let err = Config::from_yaml(&text, &no_env).err().map(invalid_messages).unwrap_or_default();
    assert_eq!(err.len(), 1);
    assert!(err[0].starts_with("poll.intervall: unknown field"), "{err:?}");

    let text = MINIMAL.replace("environment_id: env-1", "environment_id: env-1\n    colour: red");
    let err = Config::from_yaml(&text, &no_env).err().map(invalid_messages).unwrap_or_default();
    assert!(err[0].starts_with("sources[0].colour: unknown field"), "{err:?}");
}

#[test]
fn validation_errors_name_key_paths() {
    let text = r#"
forge:
  email: bot@example.com
  api_token: t
sources:
  - app_id: a
    environment_id: e
    levels: [INFO, LOUD]
    installation_contexts: ["ari:cloud:jira::site/1", "site-2"]
poll:
  initial_lookback: 15d
  interval: soon
exporter:
  compression: brotli
"#;
    let errs = Config::from_yaml(text, &no_env).err().map(invalid_messages).unwrap_or_default();
    let joined = errs.join("\n");
    for want in [
        "sources[0].levels[1]: `LOUD` is not one of",
        "sources[0].installation_contexts[1]: not a site id",
        "poll.initial_lookback: at most 14d",
        "poll.interval: invalid duration",
        "exporter.compression: `brotli`",
    ] {
        assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
    }
}

#[test]
fn env_expansion_and_missing_variables() {
    let text = r#"
forge:
  email: ${env:FORGE_EMAIL}
  api_token: ${env:FORGE_API_TOKEN}
  requests_per_minute: ${RPM:-20}
sources:
  - app_id: ${APP_ID}
    environment_id: ${ENV_ID}
"#;
    let env = |n: &str| match n {
        "FORGE_EMAIL" => Some("bot@example.com".to_string()),
        "FORGE_API_TOKEN" => Some("secret-value".to_string()),
        "APP_ID" => Some("app".to_string()),
        "ENV_ID" => Some("env".to_string()),
        _ => None,
    };
    let cfg = Config::from_yaml(text, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.forge.email, "bot@example.com");
    assert_eq!(cfg.forge.requests_per_minute, 20);
    assert_eq!(cfg.sources[0].app_id, "app");
    match &cfg.forge.token {
        TokenSource::Inline(s) => assert_eq!(s.expose(), "secret-value"),
        other => panic!("{other:?}"),
    }

    let err = Config::from_yaml(text, &no_env).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(err, "missing environment variables: APP_ID, ENV_ID, FORGE_API_TOKEN, FORGE_EMAIL");
}

#[test]
fn secrets_never_print() {
    let text = r#"
forge:
  email: bot@example.com
  api_token: tok-SECRET-1
sources:
  - app_id: a
    environment_id: e
exporter:
  headers: {DD-API-KEY: dd-SECRET-2}
"#;
    let cfg = Config::from_yaml(text, &no_env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    let outputs = [format!("{cfg:?}"), format!("{cfg:#?}"), cfg.to_redacted_yaml()];
    for out in &outputs {
        assert!(!out.contains("SECRET"), "{out}");
    }
    assert!(outputs[2].contains("[REDACTED]"));
    assert!(outputs[2].contains("DD-API-KEY"));
}

#[test]
fn token_and_token_file_together_fail() {
    let text = MINIMAL.replace("api_token: tok-123", "api_token: tok-123\n  api_token_file: /run/secrets/t");
    let errs = Config::from_yaml(&text, &no_env).err().map(invalid_messages).unwrap_or_default();
    assert!(errs.iter().any(|e| e.contains("forge.api_token: set either")), "{errs:?}");
    assert!(!errs.join("").contains("tok-123"));
}

#[test]
fn token_file_is_trimmed_and_errors_hide_content() {
    let dir = tempfile::tempdir().map_err(|e| e.to_string());
    let Ok(dir) = dir else { panic!("{dir:?}") };
    let file = dir.path().join("token");
    let _ = std::fs::write(&file, "file-token-xyz\n");
    let text = MINIMAL.replace("api_token: tok-123", &format!("api_token_file: {}", file.display()));
    let cfg = Config::from_yaml(&text, &no_env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.forge.token.read().map(|s| s.expose().to_string()).ok().as_deref(), Some("file-token-xyz"));
    assert!(!cfg.to_redacted_yaml().contains("file-token-xyz"));

    let missing = MINIMAL.replace("api_token: tok-123", "api_token_file: /nonexistent/token");
    let errs = Config::from_yaml(&missing, &no_env).err().map(invalid_messages).unwrap_or_default();
    assert!(errs.iter().any(|e| e.starts_with("forge.api_token_file: cannot read token file")), "{errs:?}");
}

#[test]
fn otel_variables_fill_absent_exporter_keys_and_lose_to_the_file() {
    let env = |n: &str| match n {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".to_string()),
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL" => Some("http/json".to_string()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("DD-API-KEY=k%3D1".to_string()),
        "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("gzip".to_string()),
        "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("2500".to_string()),
        _ => None,
    };
    let cfg = Config::from_yaml(MINIMAL, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.exporter.protocol, Protocol::HttpJson);
    assert_eq!(cfg.exporter.endpoint, "http://collector:4318");
    assert_eq!(cfg.exporter.compression, Compression::Gzip);
    assert_eq!(cfg.exporter.timeout, Duration::from_millis(2500));
    assert_eq!(cfg.exporter.headers.len(), 1);
    assert_eq!(cfg.exporter.headers[0].1.expose(), "k=1");

    let text = format!(
        "{MINIMAL}exporter:\n  protocol: grpc\n  endpoint: http://file:4317\n  timeout: 3s\n  compression: none\n  headers: {{}}\n"
    );
    let cfg = Config::from_yaml(&text, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.exporter.protocol, Protocol::Grpc);
    assert_eq!(cfg.exporter.endpoint, "http://file:4317");
    assert_eq!(cfg.exporter.timeout, Duration::from_secs(3));
    assert_eq!(cfg.exporter.compression, Compression::None);
    assert!(cfg.exporter.headers.is_empty());

    let bad = |n: &str| (n == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "carrier-pigeon".to_string());
    let errs = Config::from_yaml(MINIMAL, &bad).err().map(invalid_messages).unwrap_or_default();
    assert!(errs[0].starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: `carrier-pigeon`"), "{errs:?}");
}

#[test]
fn sizes_and_durations() {
    assert_eq!(validate::parse_size("4MiB"), Ok(4 << 20));
    assert_eq!(validate::parse_size("512 KiB"), Ok(512 << 10));
    assert_eq!(validate::parse_size("10MB"), Ok(10_000_000));
    assert_eq!(validate::parse_size("1048576"), Ok(1 << 20));
    assert!(validate::parse_size("4 parsecs").is_err());
    assert_eq!(validate::parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(validate::parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    assert!(validate::parse_duration("soon").is_err());
    assert!(validate::parse_duration("366d").is_ok());
    assert!(validate::parse_duration("367d").is_err(), "capped: later sums of durations cannot overflow");
    assert!(validate::parse_duration("500000000000y").is_err());
}

#[test]
fn site_groups_split_at_fifty() {
    let sites: Vec<String> = (0..120).map(|i| format!("ari:cloud:jira::site/{i}")).collect();
    let text = format!(
        "{MINIMAL}    installation_contexts: [{}]\n",
        sites.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
    );
    let cfg = Config::from_yaml(&text, &no_env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    let groups = cfg.sources[0].site_groups();
    assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![50, 50, 20]);
}

#[test]
fn duplicate_sources_are_refused() {
    let text = format!("{MINIMAL}  - app_id: app-1\n    environment_id: env-1\n    name: again\n");
    let errs = Config::from_yaml(&text, &no_env).err().map(invalid_messages).unwrap_or_default();
    assert!(errs.iter().any(|e| e.starts_with("sources[1]: asks for the same logs")), "{errs:?}");
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |n: &str| map.get(n).cloned()
}

#[test]
fn signal_specific_endpoint_is_used_as_given() {
    let env = vars(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://intake.example/custom/logs"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
    ]);
    let cfg = Config::from_yaml(MINIMAL, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.exporter.http_logs_url(), "https://intake.example/custom/logs");
    assert_eq!(cfg.exporter.base_endpoint(), "https://intake.example/custom/logs");

    let env = vars(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]);
    let cfg = Config::from_yaml(MINIMAL, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.exporter.http_logs_url(), "http://c:4318/v1/logs");

    // The file's endpoint keeps its meaning: a base URL.
    let text = format!("{MINIMAL}exporter:\n  protocol: http/protobuf\n  endpoint: https://x/otlp\n");
    let cfg = Config::from_yaml(&text, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.exporter.http_logs_url(), "https://x/otlp/v1/logs");
    // ... and exporter.logs_endpoint is the signal-specific key.
    let text = format!("{MINIMAL}exporter:\n  protocol: http/protobuf\n  logs_endpoint: https://x/in/v1/logs\n");
    let cfg = Config::from_yaml(&text, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.exporter.http_logs_url(), "https://x/in/v1/logs");
    assert_eq!(cfg.exporter.base_endpoint(), "https://x/in");
}

#[test]
fn certificate_and_insecure_variables_are_honoured() {
    let env = vars(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", "/etc/client.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client-key.pem"),
    ]);
    let cfg = Config::from_yaml(MINIMAL, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.exporter.endpoint, "http://collector:4317");
    assert_eq!(cfg.exporter.tls.ca_file, Some(PathBuf::from("/etc/ca.pem")));
    assert_eq!(cfg.exporter.tls.cert_file, Some(PathBuf::from("/etc/client.pem")));
    assert_eq!(cfg.exporter.tls.key_file, Some(PathBuf::from("/etc/client-key.pem")));

    // The file wins, key by key.
    let text = format!("{MINIMAL}exporter:\n  tls:\n    ca_file: /file/ca.pem\n");
    let cfg = Config::from_yaml(&text, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    assert_eq!(cfg.exporter.tls.ca_file, Some(PathBuf::from("/file/ca.pem")));
    assert_eq!(cfg.exporter.tls.key_file, Some(PathBuf::from("/etc/client-key.pem")));

    // Secure unless told otherwise; a half client identity is refused.
    let env = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"), ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")]);
    let errs = Config::from_yaml(MINIMAL, &env).err().map(invalid_messages).unwrap_or_default();
    assert!(errs.iter().any(|e| e.starts_with("exporter.tls: cert_file and key_file go together")), "{errs:?}");
    let env = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]);
    let cfg = Config::from_yaml(MINIMAL, &env).map_err(|e| e.to_string());
    assert_eq!(cfg.map(|c| c.exporter.endpoint), Ok("https://collector:4317".to_string()));
}

#[test]
fn protocol_and_port_disagreeing_is_warned() {
    let env = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]);
    let cfg = Config::from_yaml(MINIMAL, &env).map_err(|e| e.to_string());
    let Ok(cfg) = cfg else { panic!("{cfg:?}") };
    let warnings = cfg.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("exporter.endpoint: port 4318 is the OTLP/HTTP port"), "{warnings:?}");
    assert!(cfg.to_redacted_yaml().contains("# warning: exporter.endpoint: port 4318"));

    let cfg = Config::from_yaml(MINIMAL, &no_env).map_err(|e| e.to_string());
    assert_eq!(cfg.map(|c| c.warnings()), Ok(Vec::new()));

    let text = format!("{MINIMAL}exporter:\n  tls: {{ca_file: /ca.pem}}\n");
    let cfg = Config::from_yaml(&text, &no_env).map_err(|e| e.to_string());
    let warnings = cfg.map(|c| c.warnings()).unwrap_or_default();
    assert!(warnings.iter().any(|w| w.starts_with("exporter.tls: set, but the endpoint is plaintext")), "{warnings:?}");
}

/// Every key away from its default, secrets by reference.
const FULL: &str = r#"
forge:
  base_url: http://127.0.0.1:8080/
  email: bot@example.com
  api_token: ${env:FORGE_API_TOKEN}
  request_timeout: 7s
  requests_per_minute: 12
  rate_period: 3s
  max_response_size: 3MiB
  max_pages_per_window: 77
sources:
  - app_id: app-1
    environment_id: env-1
    name: prod
    service_name: svc
    levels: [warn, ERROR]
    message: timeout
    installation_contexts: ["ari:cloud:jira::site/1"]
    resource_attributes:
      deployment.environment.name: production
      answer: 42
      ratio: 0.5
      canary: true
      quoted: "123"
  - app_id: app-2
    environment_id: env-2
poll:
  interval: 90s
  settle_delay: 5s
  late_arrival: 0
  initial_lookback: 2d
  retention_margin: 1h
  backoff_initial: 250ms
  backoff_max: 1m 30s
  config_error_retry: 7m
  max_page_attempts: 0
exporter:
  protocol: http/json
  logs_endpoint: https://intake.example/custom/logs
  headers:
    DD-API-KEY: ${DD_API_KEY}
    x-team: ${env:TEAM:-core}
  compression: zstd
  timeout: 2500ms
  max_request_bytes: 1000000
  tls:
    ca_file: /etc/ca.pem
    cert_file: /etc/c.pem
    key_file: /etc/k.pem
  retry:
    initial_backoff: 10ms
    max_backoff: 1s
    max_retry_after: 9s
    max_elapsed: 1h
state:
  dir: /var/lib/x
  dead_letter_max_size: 1000
server:
  listen: 0.0.0.0:9999
  enabled: false
  site_silence_after: 2h
log:
  format: json
  level: forge_otel_sidecar=debug
telemetry:
  otlp:
    enabled: true
    protocol: grpc
    endpoint: http://metrics:4317
    interval: 15s
"#;

/// check-config's output with the same environment: same effective config.
fn assert_round_trip(text: &str, env: &dyn Fn(&str) -> Option<String>, secrets: &[&str]) -> String {
    let loaded = Config::from_yaml_traced(text, env).map_err(|e| e.to_string());
    let Ok((cfg, origins)) = loaded else { panic!("{loaded:?}\n{text}") };
    let printed = print::render(&cfg, &origins);
    for s in secrets {
        assert!(!printed.contains(s), "secret {s} printed:\n{printed}");
    }
    let again = Config::from_yaml(&printed, env).map_err(|e| e.to_string());
    let Ok(again) = again else { panic!("{again:?}\n{printed}") };
    assert_eq!(cfg, again, "printed:\n{printed}");
    printed
}

#[test]
fn check_config_output_loads_back_as_the_same_config() {
    let env = vars(&[("FORGE_API_TOKEN", "tok-SECRET-1"), ("DD_API_KEY", "dd-SECRET-2"), ("TEAM", "ops")]);
    let printed = assert_round_trip(FULL, &env, &["SECRET"]);
    for want in [
        "api_token: ${env:FORGE_API_TOKEN}",
        "DD-API-KEY: ${env:DD_API_KEY}",
        "x-team: ${env:TEAM}",
        "max_response_size: 3MiB",
        "logs_endpoint: https://intake.example/custom/logs",
        "enabled: false",
        "answer: 42",
    ] {
        assert!(printed.contains(want), "{want:?} not in:\n{printed}");
    }
    // A default that may be a secret is not printed when the variable is unset.
    let no_team = vars(&[("FORGE_API_TOKEN", "tok-SECRET-1"), ("DD_API_KEY", "dd-SECRET-2")]);
    let loaded = Config::from_yaml_traced(FULL, &no_team).map_err(|e| e.to_string());
    let Ok((cfg, origins)) = loaded else { panic!("{loaded:?}") };
    assert!(print::render(&cfg, &origins).contains("x-team: '[REDACTED]'"));

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
    let example = std::fs::read_to_string(path).unwrap_or_default();
    assert_round_trip(&example, &vars(&[("FORGE_API_TOKEN", "example-SECRET")]), &["SECRET"]);
    let by_reference = MINIMAL.replace("tok-123", "${env:FORGE_API_TOKEN}");
    assert_round_trip(&by_reference, &vars(&[("FORGE_API_TOKEN", "SECRET")]), &["SECRET"]);

    let dir = tempfile::tempdir().map_err(|e| e.to_string());
    let Ok(dir) = dir else { panic!("{dir:?}") };
    let file = dir.path().join("token");
    let _ = std::fs::write(&file, "file-SECRET\n");
    let text = MINIMAL.replace("api_token: tok-123", &format!("api_token_file: {}", file.display()));
    let printed = assert_round_trip(&text, &no_env, &["SECRET"]);
    assert!(printed.contains(&format!("api_token_file: {}", file.display())));
}

#[test]
fn exporter_keys_from_variables_print_back() {
    let env = vars(&[
        ("FORGE_API_TOKEN", "tok-SECRET-1"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://intake.example/custom/logs"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "dd-api-key=dd-SECRET-2"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
    ]);
    let text = MINIMAL.replace("tok-123", "${env:FORGE_API_TOKEN}");
    let printed = assert_round_trip(&text, &env, &["SECRET"]);
    for want in [
        "# exporter.endpoint: from OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "# exporter.headers: from OTEL_EXPORTER_OTLP_HEADERS",
        "logs_endpoint: https://intake.example/custom/logs",
        "ca_file: /etc/ca.pem",
    ] {
        assert!(printed.contains(want), "{want:?} not in:\n{printed}");
    }
    let generic = vars(&[
        ("FORGE_API_TOKEN", "tok-SECRET-1"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    let printed = assert_round_trip(&text, &generic, &["SECRET"]);
    assert!(printed.contains("endpoint: http://collector:4317"), "{printed}");
}

#[test]
fn literal_secrets_print_redacted_and_still_load() {
    let text = format!("{MINIMAL}exporter:\n  headers: {{x-key: lit-SECRET}}\n");
    let loaded = Config::from_yaml_traced(&text, &no_env).map_err(|e| e.to_string());
    let Ok((cfg, origins)) = loaded else { panic!("{loaded:?}") };
    let printed = print::render(&cfg, &origins);
    assert!(!printed.contains("tok-123") && !printed.contains("SECRET"), "{printed}");
    assert!(printed.contains("# forge.api_token: written in the file; printed as [REDACTED]"), "{printed}");
    assert!(printed.contains("# exporter.headers.x-key: written in the file"), "{printed}");
    let again = Config::from_yaml(&printed, &no_env).map_err(|e| e.to_string());
    let Ok(again) = again else { panic!("{again:?}") };
    assert_eq!(again.exporter.headers[0].1.expose(), "[REDACTED]");
    assert_eq!(again.poll, cfg.poll);
}
