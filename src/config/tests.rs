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
    assert_eq!(cfg.poll.interval, Duration::from_secs(60));
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
