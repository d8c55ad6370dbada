use super::*;
use crate::metrics::{LastError, SourceMetrics};
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

const NOW: i64 = 1_800_000_000_000;

fn state() -> (ServerState, Arc<SourceMetrics>) {
    let registry = Arc::new(Registry::default());
    let m = registry.source("prod", "app-1");
    m.tick(NOW);
    let s = ServerState {
        registry,
        stuck_after: Duration::from_secs(60),
        stale_after: Duration::from_secs(120),
        site_silence_after: Duration::from_secs(600),
        settle_delay: Duration::from_secs(60),
        apps: Arc::new(Vec::new()),
        clock: || NOW,
    };
    (s, m)
}

async fn get(s: &ServerState, path: &str) -> (StatusCode, String) {
    let req = Request::builder().uri(path).body(Body::empty()).unwrap_or_default();
    match router(s.clone()).oneshot(req).await {
        Ok(resp) => {
            let code = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap_or_default();
            (code, String::from_utf8_lossy(&body).into_owned())
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn liveness_fails_only_for_a_stuck_loop() {
    let (s, m) = state();
    assert_eq!(get(&s, "/healthz").await.0, StatusCode::OK);
    // Dependency trouble does not fail liveness.
    m.update(|st| {
        st.config_error = true;
        st.api_failing = true;
        st.export_failing = true;
    });
    assert_eq!(get(&s, "/healthz").await.0, StatusCode::OK);
    m.tick(NOW - 61_000);
    let (code, body) = get(&s, "/healthz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("prod"), "{body}");
}

#[tokio::test]
async fn readiness_reports_each_dependency() {
    let (s, m) = state();
    let (code, body) = get(&s, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("no successful poll yet"), "{body}");
    m.update(|st| st.last_poll_ok_ms = Some(NOW - 1000));
    assert_eq!(get(&s, "/readyz").await.0, StatusCode::OK);

    m.update(|st| {
        st.config_error = true;
        st.api_failing = true;
        st.last_api_error = Some(LastError { at_ms: NOW, message: "credentials refused (401)".into() });
    });
    let (code, body) = get(&s, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("configuration error: credentials refused (401)"), "{body}");

    m.update(|st| {
        st.config_error = false;
        st.api_failing = false;
        st.export_failing = true;
        st.last_export_error = Some(LastError { at_ms: NOW, message: "gRPC Unavailable".into() });
    });
    let (code, body) = get(&s, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("export failing: gRPC Unavailable"), "{body}");

    m.update(|st| {
        st.export_failing = false;
        st.last_poll_ok_ms = Some(NOW - 600_000);
    });
    let (code, body) = get(&s, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "a stale poll is not ready");
    assert!(body.contains("last successful poll"), "{body}");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let (s, m) = state();
    SourceMetrics::add(&m.received, 10);
    SourceMetrics::add(&m.sent, 7);
    SourceMetrics::add(&m.duplicates, 3);
    m.api_call("200", NOW, 0.25);
    let (code, body) = get(&s, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.contains("# TYPE forge_sidecar_received_log_records_total counter"));
    assert!(body.contains("forge_sidecar_received_log_records_total{app=\"app-1\",source=\"prod\"} 10"), "{body}");
    assert!(body.contains("forge_sidecar_api_requests_total{app=\"app-1\",source=\"prod\",status=\"200\"} 1"));
    assert!(body.contains("forge_sidecar_ready 0"));
    assert!(!body.contains("{}"), "no empty label sets");
}

#[tokio::test]
async fn status_flags_a_silent_site_and_shows_no_secret() {
    let (s, m) = state();
    for i in 0..100 {
        m.site_seen("ari:cloud:jira::site/busy", NOW - 3_600_000 + i * 30_000);
    }
    for i in 0..10 {
        m.site_seen("ari:cloud:jira::site/quiet", NOW - 3_600_000 + i * 60_000);
    }
    m.update(|st| st.last_api_error = Some(LastError { at_ms: NOW, message: "request refused (400)".into() }));
    SourceMetrics::add(&m.late_pass_skipped_seconds, 120);
    let (code, body) = get(&s, "/status").await;
    assert_eq!(code, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let sites = v["sources"][0]["sites"].as_array().cloned().unwrap_or_default();
    let flag = |name: &str| {
        sites
            .iter()
            .find(|x| x["installation_context"].as_str().is_some_and(|s| s.ends_with(name)))
            .map(|x| x["silent"].clone())
    };
    assert_eq!(flag("busy"), Some(serde_json::Value::Bool(false)));
    assert_eq!(flag("quiet"), Some(serde_json::Value::Bool(true)), "{body}");
    assert_eq!(v["sources"][0]["last_api_error"]["message"], "request refused (400)");
    assert_eq!(v["sources"][0]["late_pass_skipped_seconds"], 120, "the memory cap's consequence is shown");
}

#[tokio::test]
async fn metrics_show_histograms_and_keep_label_values_intact() {
    let (s, m) = state();
    m.api_call("200", NOW, 0.03);
    m.api_call("429", NOW, 7.0);
    let odd = s.registry.source("a \"quoted\" {} source\\", "app-1");
    SourceMetrics::add(&odd.sent, 4);
    let (_, body) = get(&s, "/metrics").await;
    assert!(body.contains("# TYPE forge_sidecar_api_request_duration_seconds histogram"), "{body}");
    let bucket = |le: &str| {
        format!("forge_sidecar_api_request_duration_seconds_bucket{{app=\"app-1\",source=\"prod\",le=\"{le}\"}}")
    };
    assert!(body.contains(&format!("{} 0\n", bucket("0.025"))), "{body}");
    assert!(body.contains(&format!("{} 1\n", bucket("0.05"))), "{body}");
    assert!(body.contains(&format!("{} 2\n", bucket("10"))), "{body}");
    assert!(body.contains(&format!("{} 2\n", bucket("+Inf"))), "{body}");
    assert!(
        body.contains("forge_sidecar_api_request_duration_seconds_sum{app=\"app-1\",source=\"prod\"} 7.03"),
        "{body}"
    );
    assert!(body.contains("forge_sidecar_api_request_duration_seconds_count{app=\"app-1\",source=\"prod\"} 2"));
    // Escaped, and braces in a value left alone.
    assert!(
        body.contains(
            "forge_sidecar_sent_log_records_total{app=\"app-1\",source=\"a \\\"quoted\\\" {} source\\\\\"} 4"
        ),
        "{body}"
    );
}

#[test]
fn the_server_installs_its_readiness_rule_for_the_push() {
    let registry = Arc::new(Registry::default());
    assert_eq!(registry.ready(NOW), None);
    let text = "forge:\n  email: a@example.com\n  api_token: t\nsources:\n  - app_id: demo-app\n    environment_id: production\nexporter:\n  endpoint: http://127.0.0.1:4317\nstate:\n  dir: /tmp/unused\n";
    let cfg = crate::config::Config::from_yaml(text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let _state = ServerState::new(registry.clone(), &cfg);
    let m = registry.source("prod", "app-1");
    assert_eq!(registry.ready(NOW), Some(false), "no poll yet");
    m.update(|st| st.last_poll_ok_ms = Some(NOW - 1000));
    assert_eq!(registry.ready(NOW), Some(true));
}

#[tokio::test]
async fn status_shows_each_metrics_source_with_its_account_budget() {
    let (s, logs) = state();
    logs.update(|st| st.last_poll_ok_ms = Some(NOW - 1000));
    let info = crate::metrics::MetricsSourceInfo {
        environments: vec!["env-a".into(), "env-b".into()],
        account: "metrics-account-0000abcd".into(),
        calls_per_period: 5,
    };
    let m = s.registry.metrics_source("perf", "0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6", info);
    m.tick(NOW);
    m.watermark_ms.store(NOW - 90_000, Ordering::Relaxed);
    m.late_watermark_ms.store(NOW - 600_000, Ordering::Relaxed);
    SourceMetrics::add(&m.sent, 42);
    SourceMetrics::add(&m.received, 45);
    SourceMetrics::add(&m.duplicates, 3);
    m.update(|st| {
        st.config_error = true;
        st.api_failing = true;
        st.last_api_error = Some(LastError { at_ms: NOW - 5000, message: "QueryError 404 for env-b".into() });
    });
    s.registry.set_budget("metrics-account-0000abcd", 0.0, 4.5);
    let (code, body) = get(&s, "/status").await;
    assert_eq!(code, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let logs: Vec<&str> = v["sources"].as_array().into_iter().flatten().filter_map(|x| x["source"].as_str()).collect();
    assert_eq!(logs, vec!["prod"], "a metrics source is listed apart: {body}");
    let ms = &v["metrics_sources"][0];
    assert_eq!(ms["source"], "perf");
    assert_eq!(ms["app"], "0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6");
    assert_eq!(ms["environments"], json!(["env-a", "env-b"]));
    assert_eq!(ms["lag_seconds"], 90.0);
    assert_eq!(ms["watermark"], format_millis(NOW - 90_000));
    assert_eq!(ms["late_watermark"], format_millis(NOW - 600_000));
    assert_eq!(ms["points"]["delivered"], 42);
    assert_eq!(ms["points"]["fetched"], 45);
    assert_eq!(ms["points"]["duplicates_dropped"], 3);
    assert_eq!(ms["last_api_error"]["message"], "QueryError 404 for env-b");
    assert_eq!(ms["config_error"], true);
    assert_eq!(ms["account"]["budget_key"], "metrics-account-0000abcd");
    assert_eq!(ms["account"]["calls_per_period"], 5);
    assert_eq!(ms["account"]["effective_rate_per_minute"], 4.5);
    let not_ready = ms["not_ready"].to_string();
    assert!(not_ready.contains("configuration error: QueryError 404"), "{not_ready}");
    assert_eq!(v["ready"], false, "a metrics source's trouble is readiness trouble");
}

#[tokio::test]
async fn status_shows_each_apps_demand_against_its_budget() {
    // Two sources of one app polled every 10 s, both passes (late_arrival
    // 40 s: the second pass strides 10 s too): 24 calls a minute needed of
    // 12 allowed, so windows grow to 20 s.
    let text = "forge:\n  email: a@example.com\n  api_token: t\n  requests_per_minute: 12\nsources:\n  - app_id: app-1\n    environment_id: production\n    name: prod\n  - app_id: app-1\n    environment_id: staging\n    name: staging\npoll:\n  interval: 10s\n  settle_delay: 5s\n  late_arrival: 40s\nexporter:\n  endpoint: http://127.0.0.1:4317\nstate:\n  dir: /tmp/unused\n";
    let cfg = crate::config::Config::from_yaml(text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let (s, prod) = state();
    let s = ServerState { apps: Arc::new(app_plans(&cfg)), ..s };
    let staging = s.registry.source("staging", "app-1");
    prod.watermark_ms.store(NOW - 35_000, Ordering::Relaxed);
    prod.late_watermark_ms.store(NOW - 620_000, Ordering::Relaxed);
    staging.watermark_ms.store(NOW - 8_000, Ordering::Relaxed);
    staging.late_watermark_ms.store(NOW - 660_000, Ordering::Relaxed);
    s.registry.set_budget("app-1", 24.0, 12.0);
    let (code, body) = get(&s, "/status").await;
    assert_eq!(code, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let app = &v["apps"][0];
    assert_eq!(app["app"], "app-1", "{body}");
    assert_eq!(app["sources"], serde_json::json!(["prod", "staging"]));
    assert_eq!(app["calls_needed_per_minute"], 24.0);
    assert_eq!(app["budget_per_minute"], 12.0);
    assert_eq!(app["effective_rate_per_minute"], 12.0);
    assert_eq!(app["interval_seconds"], 10.0);
    assert_eq!(app["effective_interval_seconds"], 20.0);
    assert_eq!(app["first_pass_lag_seconds"], 30.0, "prod: 35 s old, less the 5 s settle");
    assert_eq!(app["second_pass_lag_seconds"], 620.0, "staging: 660 s old, less the 40 s late_arrival");
    // A 429 from another client halves the rate: the interval stretches again.
    s.registry.set_budget("app-1", 24.0, 6.0);
    let (_, body) = get(&s, "/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(v["apps"][0]["effective_interval_seconds"], 40.0, "{body}");
}
