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
}
