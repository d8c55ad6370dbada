//! Hostile or odd input from the network and the config.
//!
//! The collector: only an OTLP answer acknowledges. Redirects are not
//! followed, a 2xx with an HTML body is retried, and an answer larger than
//! the cap is not read to its end. The config: no endpoint carries a
//! password (and none is ever echoed), plain http to the Forge API only on
//! loopback, ids that cannot leave their path segment.

use std::sync::atomic::Ordering;
use std::time::Duration;

use forge_otel_sidecar::config::{Compression, ExporterConfig, Protocol, RetryConfig, TlsConfig};
use forge_otel_sidecar::convert::{self, Batch};
use forge_otel_sidecar::export::{DeadLetter, Delivered, Exporter, Transport};
use forge_otel_sidecar::forge::model;
use forge_otel_sidecar::metrics::SourceMetrics;
use forge_otel_sidecar::testkit::receiver::{Failure, Receiver};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio_util::sync::CancellationToken;

fn exporter_config(protocol: Protocol, endpoint: String) -> ExporterConfig {
    ExporterConfig {
        protocol,
        endpoint,
        headers: Vec::new(),
        compression: Compression::None,
        timeout: Duration::from_secs(5),
        max_request_bytes: 4 << 20,
        tls: TlsConfig::default(),
        endpoint_as_is: false,
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(1),
            max_elapsed: None,
        },
    }
}

fn batch(n: u64) -> Batch {
    let records = (0..n)
        .map(|i| {
            let rec = model::LogRecord {
                time_unix_nano: Some(model::NumOrStr::Str((1_700_000_000_000_000_000u64 + i).to_string())),
                body: Some(model::AnyValue::string(format!("record {i}"))),
                ..Default::default()
            };
            convert::record(&rec, 1, &mut convert::ConvertStats::default())
        })
        .collect();
    let mut reqs = convert::requests(&Resource::default(), records, 64 << 20);
    Batch::from(&reqs.pop().unwrap_or_default())
}

struct Setup {
    exporter: Exporter,
    metrics: SourceMetrics,
    dir: tempfile::TempDir,
}

fn setup(cfg: &ExporterConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let transport = Transport::new(cfg).unwrap_or_else(|e| panic!("{e}"));
    let dl = DeadLetter::new(dir.path(), 1 << 20);
    Setup { exporter: Exporter::new(transport, cfg.retry.clone(), dl), metrics: SourceMetrics::new("src", "app"), dir }
}

async fn deliver(s: &Setup, b: &Batch) -> Delivered {
    let r = tokio::time::timeout(Duration::from_secs(30), s.exporter.deliver(b, &s.metrics, &CancellationToken::new()))
        .await;
    match r {
        Ok(Ok(d)) => d,
        other => panic!("{other:?}"),
    }
}

fn last_error(s: &Setup) -> String {
    s.metrics.status().last_export_error.map(|e| e.message).unwrap_or_default()
}

#[tokio::test]
async fn redirects_are_retried_never_followed() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    for protocol in [Protocol::HttpProtobuf, Protocol::HttpJson] {
        let before = rx.record_count();
        rx.fail_next([Failure::Redirect, Failure::Redirect, Failure::Redirect]);
        let s = setup(&exporter_config(protocol, rx.http_endpoint()));
        assert_eq!(deliver(&s, &batch(5)).await, Delivered::Accepted { records: 5, rejected: 0 });
        assert_eq!(rx.record_count() - before, 5, "{protocol:?}: arrives once, after the redirects");
        assert_eq!(s.metrics.export_retries.load(Ordering::Relaxed), 3, "{protocol:?}");
        let err = last_error(&s);
        assert!(err.contains("302") && err.contains("/landing"), "{err}");
        assert!(!s.dir.path().join("dead-letter.jsonl").exists());
    }
    assert_eq!(rx.landing_hits(), 0, "the redirect was followed");
    rx.stop().await;
}

#[tokio::test]
async fn html_2xx_is_retried_not_acknowledged() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    for protocol in [Protocol::HttpProtobuf, Protocol::HttpJson, Protocol::Grpc] {
        let endpoint = if protocol == Protocol::Grpc { rx.grpc_endpoint() } else { rx.http_endpoint() };
        let before = rx.record_count();
        rx.fail_next([Failure::Html, Failure::Html]);
        let s = setup(&exporter_config(protocol, endpoint));
        assert_eq!(deliver(&s, &batch(4)).await, Delivered::Accepted { records: 4, rejected: 0 });
        assert_eq!(rx.record_count() - before, 4, "{protocol:?}");
        assert_eq!(s.metrics.export_retries.load(Ordering::Relaxed), 2, "{protocol:?}");
        assert_eq!(s.metrics.sent.load(Ordering::Relaxed), 4);
        if protocol != Protocol::Grpc {
            let err = last_error(&s);
            assert!(err.contains("not an OTLP answer") && err.contains("text/html"), "{err}");
        }
    }
    rx.stop().await;
}

/// A server whose every answer is 200 with `body` of content type `ct`.
async fn fixed_answer(ct: &'static str, body: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let app = axum::Router::new().route(
        "/v1/logs",
        axum::routing::post(move || {
            let body = body.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, ct)], body) }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn an_answer_over_the_cap_is_not_an_acknowledgement() {
    // 5 MiB of a valid protobuf field (unknown field 15, bytes) would decode.
    let mut body = vec![0x7a];
    let len = 5usize << 20;
    let mut n = len;
    while n >= 0x80 {
        body.push((n as u8) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    body.resize(body.len() + len, b'x');
    let (endpoint, task) = fixed_answer("application/x-protobuf", body).await;
    let s = setup(&exporter_config(Protocol::HttpProtobuf, endpoint));
    let cancel = CancellationToken::new();
    let one = batch(1);
    let run = s.exporter.deliver(&one, &s.metrics, &cancel);
    tokio::pin!(run);
    // Bounded: stop after the third attempt has failed.
    for _ in 0..400 {
        tokio::select! {
            r = &mut run => panic!("delivered to an endpoint that never acknowledges: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(25)) => {}
        }
        if s.metrics.export_retries.load(Ordering::Relaxed) >= 3 {
            break;
        }
    }
    cancel.cancel();
    let _ = run.await;
    assert!(s.metrics.export_retries.load(Ordering::Relaxed) >= 3);
    assert_eq!(s.metrics.sent.load(Ordering::Relaxed), 0);
    let err = last_error(&s);
    assert!(err.contains("over 4194304 bytes"), "{err}");
    task.abort();
}

const PASSWORD: &str = "Pa55-w0rd-QX7";

fn config_text(base_url: &str, app_id: &str, exporter_endpoint: &str, extra: &str) -> String {
    format!(
        "forge:\n  base_url: {base_url}\n  email: a@b.c\n  api_token: tok\n{extra}\
         sources:\n  - app_id: \"{app_id}\"\n    environment_id: production\n\
         exporter:\n  protocol: http/protobuf\n  endpoint: \"{exporter_endpoint}\"\n"
    )
}

/// `check-config` on `text` with `env` only: (exit code, stdout, stderr).
fn check_config(text: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_forge-otel-sidecar"))
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn endpoint_passwords_are_refused_and_never_echoed() {
    let ok_base = "https://api.atlassian.com";
    let ok_endpoint = "http://127.0.0.1:4318";
    let with_pw = format!("https://user:{PASSWORD}@collector.example:4318");
    // (config text, environment, key path the error must name)
    type Case<'a> = (String, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (config_text(ok_base, "demo-app", &with_pw, ""), vec![], "exporter.endpoint"),
        (config_text(ok_base, "demo-app", &format!("user:{PASSWORD}@collector:4318"), ""), vec![], "exporter.endpoint"),
        (
            config_text(&format!("https://me:{PASSWORD}@api.atlassian.com"), "demo-app", ok_endpoint, ""),
            vec![],
            "forge.base_url",
        ),
        (
            config_text(ok_base, "demo-app", ok_endpoint, "")
                + &format!("telemetry:\n  otlp:\n    enabled: true\n    endpoint: {with_pw}\n"),
            vec![],
            "telemetry.otlp.endpoint",
        ),
        (
            config_text(ok_base, "demo-app", ok_endpoint, "").replace(&format!("  endpoint: \"{ok_endpoint}\"\n"), ""),
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", with_pw.clone())],
            "exporter.endpoint",
        ),
    ];
    for (text, env, key) in cases {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, stdout, stderr) = check_config(&text, &env);
        assert_eq!(code, 2, "{key}: {stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD), "{key} echoed the password: {stderr}");
    }
}

#[test]
fn plain_http_to_the_forge_api_only_on_loopback_or_when_allowed() {
    let endpoint = "http://127.0.0.1:4318";
    for base in ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "https://forge.example"] {
        let (code, _, stderr) = check_config(&config_text(base, "demo-app", endpoint, ""), &[]);
        assert_eq!(code, 0, "{base}: {stderr}");
    }
    let remote = "http://forge-simulator:8080";
    let (code, _, stderr) = check_config(&config_text(remote, "demo-app", endpoint, ""), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("forge.base_url") && stderr.contains("allow_insecure_http"), "{stderr}");
    let allowed = config_text(remote, "demo-app", endpoint, "  allow_insecure_http: true\n");
    let (code, stdout, stderr) = check_config(&allowed, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("allow_insecure_http: true"), "{stdout}");
}

#[test]
fn ids_that_could_leave_their_path_segment_are_refused() {
    let endpoint = "http://127.0.0.1:4318";
    for app_id in ["evil.example:443", "a/b", "..", "../../v2/x", "a?b", "a#b", "a%2e%2e"] {
        let (code, _, stderr) = check_config(&config_text("https://api.atlassian.com", app_id, endpoint, ""), &[]);
        assert_eq!(code, 2, "{app_id}: {stderr}");
        assert!(stderr.contains("sources[0].app_id"), "{app_id}: {stderr}");
    }
    let text = config_text("https://api.atlassian.com", "demo-app", endpoint, "")
        .replace("environment_id: production", "environment_id: \"prod/../x\"");
    let (code, _, stderr) = check_config(&text, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sources[0].environment_id"), "{stderr}");
    let uuid = "0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6";
    let (code, _, stderr) = check_config(&config_text("https://api.atlassian.com", uuid, endpoint, ""), &[]);
    assert_eq!(code, 0, "{stderr}");
}

#[cfg(unix)]
#[test]
fn state_files_are_owner_only() {
    use forge_otel_sidecar::checkpoint::{Checkpoint, DirLock, Store};
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // The sidecar creates the directory (and a missing parent) itself.
    let dir = root.path().join("new").join("state");
    let _lock = DirLock::acquire(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&root.path().join("new")), 0o700);
    assert_eq!(mode(&dir.join("sidecar.lock")), 0o600);
    let store = Store::new(&dir);
    store.save(&Checkpoint::fresh("prod", "q", 1_000)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode(&store.path("prod")), 0o600);
    let dl = DeadLetter::new(&dir, 1 << 20);
    dl.write("prod", "HTTP 400", 0, &batch(2)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode(dl.path()), 0o600);
    // A file left world-readable by an earlier version is narrowed on the next write.
    std::fs::set_permissions(dl.path(), std::fs::Permissions::from_mode(0o644)).unwrap_or_else(|e| panic!("{e}"));
    dl.write("prod", "HTTP 400", 0, &batch(1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode(dl.path()), 0o600);
    // A directory the operator made keeps its mode.
    let theirs = root.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o750)).unwrap_or_else(|e| panic!("{e}"));
    Store::new(&theirs).save(&Checkpoint::fresh("prod", "q", 1_000)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode(&theirs), 0o750);
    assert_eq!(mode(&Store::new(&theirs).path("prod")), 0o600);
}

#[tokio::test]
async fn the_forge_client_follows_no_redirect() {
    use forge_otel_sidecar::config::Config;
    use forge_otel_sidecar::forge::client::{ForgeClient, ForgeError, Query};
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    // Where the redirect points: it must never see a request (nor the token).
    let elsewhere_hits = Arc::new(AtomicU64::new(0));
    let hits = elsewhere_hits.clone();
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let target = format!("http://{}/v1/app/logs/x", elsewhere.local_addr().unwrap_or_else(|e| panic!("{e}")));
    let app = axum::Router::new().fallback(move || {
        hits.fetch_add(1, Ordering::Relaxed);
        async { r#"{"appLogs":[]}"# }
    });
    let t1 = tokio::spawn(async move {
        let _ = axum::serve(elsewhere, app).await;
    });
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{}", api.local_addr().unwrap_or_else(|e| panic!("{e}")));
    let redirect = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, target)]) }
    });
    let t2 = tokio::spawn(async move {
        let _ = axum::serve(api, redirect).await;
    });
    let text = config_text(&base, "demo-app", "http://127.0.0.1:4318", "");
    let cfg = Config::from_yaml(&text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let client = ForgeClient::new(&cfg.forge).unwrap_or_else(|e| panic!("{e}"));
    let q = Query {
        app_id: "demo-app",
        environment_id: "production",
        start_ms: 1_700_000_000_000,
        end_ms: 1_700_000_060_000,
        levels: &[],
        message: None,
        sites: &[],
        cursor: None,
    };
    let got = client.fetch(&q, &mut Vec::new()).await;
    match got {
        Err(ForgeError::Server { status: 302, message }) => {
            assert!(message.contains("redirect") && message.contains("not followed"), "{message}")
        }
        other => panic!("expected a server-side failure, got {other:?}"),
    }
    assert_eq!(elsewhere_hits.load(Ordering::Relaxed), 0, "the redirect was followed");
    t1.abort();
    t2.abort();
}

#[tokio::test]
async fn a_partial_success_never_counts_more_than_was_sent() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    for (protocol, endpoint) in [(Protocol::HttpProtobuf, rx.http_endpoint()), (Protocol::Grpc, rx.grpc_endpoint())] {
        rx.fail_next([Failure::Partial { rejected: i64::MAX }]);
        let s = setup(&exporter_config(protocol, endpoint));
        assert_eq!(deliver(&s, &batch(3)).await, Delivered::Accepted { records: 3, rejected: 3 }, "{protocol:?}");
        assert_eq!(s.metrics.rejected.load(Ordering::Relaxed), 3);
        assert_eq!(s.metrics.sent.load(Ordering::Relaxed), 0);
    }
    rx.stop().await;
}
