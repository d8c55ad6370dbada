//! The App metrics endpoint against forge-api.md, over real HTTP on loopback.

use serde_json::{Value, json};

use super::tests::{AUTH, client, now_ms};
use super::*;
use crate::forge::metrics_client::{APP_ARI_PREFIX, EXPERIMENTAL_HEADER, QUERY};
use crate::timefmt::format_millis;

async fn msim(cfg: SimConfig, m: MetricsSimConfig) -> SimHandle {
    match start_with_metrics(cfg, m, "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!())).await {
        Ok(h) => h,
        Err(e) => panic!("simulator did not start: {e}"),
    }
}

fn body(app: &str, envs: &[&str], start: i64, end: i64, metrics: &[&str]) -> Value {
    json!({ "query": QUERY, "variables": { "appId": format!("{APP_ARI_PREFIX}{app}"),
        "query": { "filters": { "environments": envs,
            "interval": { "start": format_millis(start), "end": format_millis(end) }, "metrics": metrics } } } })
}

async fn post(h: &SimHandle, body: &Value, auth: (&str, &str), experimental: bool) -> (u16, Value) {
    let mut rq =
        client().post(format!("{}/graphql", h.base_url())).basic_auth(auth.0, Some(auth.1)).body(body.to_string());
    if experimental {
        rq = rq.header(EXPERIMENTAL_HEADER.0, EXPERIMENTAL_HEADER.1);
    }
    let r = rq.send().await.unwrap_or_else(|e| panic!("request failed: {e}"));
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null))
}

fn app_metrics(v: &Value) -> &Value {
    &v["data"]["ecosystem"]["forgeMetrics"]["appMetrics"]
}

fn no_limit() -> MetricsSimConfig {
    MetricsSimConfig { calls_per_window: 0, ..MetricsSimConfig::default() }
}

#[tokio::test]
async fn answers_otlp_json_in_the_documented_shapes() {
    let h = msim(SimConfig::default(), no_limit()).await;
    let now = now_ms();
    let (start, end) = (now - 3_600_000, now - 3_600_000 + 900_000);
    let (status, v) = post(&h, &body("demo-app", &["production"], start, end, &[]), AUTH, true).await;
    assert_eq!(status, 200, "{v}");
    let rm = &app_metrics(&v)["resourceMetrics"];
    assert_eq!(rm[0]["resource"], json!({}), "the API leaves the resource empty");
    let metrics = rm[0]["scopeMetrics"][0]["metrics"].as_array().cloned().unwrap_or_default();
    assert_eq!(metrics.len(), 10, "{metrics:?}");
    let by = |n: &str| metrics.iter().find(|m| m["name"] == n).cloned().unwrap_or(Value::Null);
    let count = by("forge_backend_invocation_count");
    assert_eq!(count["unit"], "s");
    assert_eq!(count["sum"]["aggregationTemporality"], 1);
    assert!(count["sum"]["dataPoints"][0]["asInt"].is_string(), "int64 as a string");
    assert_eq!(by("container_status_restarts_total")["sum"]["aggregationTemporality"], 2);
    assert!(by("container_cpu_usage_percentage")["gauge"]["dataPoints"][0]["asDouble"].is_number());
    let hist = &by("forge_backend_invocation_latency")["histogram"]["dataPoints"][0];
    let buckets: u64 =
        hist["bucketCounts"].as_array().map_or(0, |b| b.iter().filter_map(|x| x.as_str()?.parse::<u64>().ok()).sum());
    assert_eq!(Some(buckets), hist["count"].as_str().and_then(|c| c.parse().ok()));
    // Every point ends inside the window, and the oracle holds the same count.
    let n: usize = metrics
        .iter()
        .map(|m| {
            ["sum", "gauge", "histogram"]
                .iter()
                .map(|k| m[k]["dataPoints"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
        })
        .sum();
    let oracle = h
        .metric_points(SystemTime::UNIX_EPOCH + Duration::from_millis(end as u64))
        .into_iter()
        .filter(|p| p.end_ms >= start)
        .count();
    assert_eq!(n, oracle);
    assert!(n > 100, "{n}");
    h.stop().await;
}

#[tokio::test]
async fn header_auth_and_limits_are_enforced() {
    let h = msim(SimConfig::default(), no_limit()).await;
    let now = now_ms();
    let good = body("demo-app", &["production"], now - 600_000, now - 300_000, &["FORGE_BACKEND_INVOCATION_COUNT"]);
    let (s, v) = post(&h, &good, AUTH, false).await;
    assert_eq!(s, 200);
    assert!(v["errors"][0]["message"].as_str().is_some_and(|m| m.contains("X-ExperimentalApi")), "{v}");
    assert_eq!(post(&h, &good, ("demo@example.com", "wrong"), true).await.0, 401);
    let long = body("demo-app", &["production"], now - 1_000_000, now - 99_000, &[]);
    let (s, v) = post(&h, &long, AUTH, true).await;
    assert_eq!((s, &app_metrics(&v)["extensions"]["statusCode"]), (200, &json!(400)), "{v}");
    let old = body("demo-app", &["production"], now - 15 * 86_400_000, now - 15 * 86_400_000 + 60_000, &[]);
    assert_eq!(app_metrics(&post(&h, &old, AUTH, true).await.1)["extensions"]["statusCode"], 400);
    let env = body("demo-app", &["staging"], now - 600_000, now - 300_000, &[]);
    let (s, v) = post(&h, &env, AUTH, true).await;
    assert_eq!((s, &app_metrics(&v)["extensions"]["statusCode"]), (200, &json!(404)), "{v}");
    let bad_metric = body("demo-app", &["production"], now - 600_000, now - 300_000, &["NOPE"]);
    assert!(post(&h, &bad_metric, AUTH, true).await.1["errors"].is_array());
    let mut shape = good.clone();
    shape["query"] = json!("query { ecosystem { forgeMetrics { nothing } } }");
    assert!(post(&h, &shape, AUTH, true).await.1["errors"].is_array());
    h.set_metrics_faults(MetricsFaults { n_errors: 1, n_query_500: 0 });
    let (s, v) = post(&h, &good, AUTH, true).await;
    assert_eq!((s, &v["errors"][0]["extensions"]["statusCode"]), (200, &json!(500)));
    assert!(app_metrics(&post(&h, &good, AUTH, true).await.1)["resourceMetrics"].is_array());
    h.stop().await;
}

#[tokio::test]
async fn five_calls_per_window_per_user_across_apps() {
    let cfg = SimConfig {
        apps: vec![("app-a".into(), vec!["prod".into()]), ("app-b".into(), vec!["prod".into()])],
        rate_window: Duration::from_secs(2),
        ..SimConfig::default()
    };
    let m = MetricsSimConfig { extra_users: vec![("other@example.com".into(), "t2".into())], ..Default::default() };
    let h = msim(cfg, m).await;
    let now = now_ms();
    let q = |app| body(app, &["prod"], now - 600_000, now - 300_000, &["SERVICE_INSTANCE_COUNT"]);
    for k in 0..5 {
        assert_eq!(post(&h, &q(if k % 2 == 0 { "app-a" } else { "app-b" }), AUTH, true).await.0, 200);
    }
    let r = client()
        .post(format!("{}/graphql", h.base_url()))
        .basic_auth(AUTH.0, Some(AUTH.1))
        .header(EXPERIMENTAL_HEADER.0, EXPERIMENTAL_HEADER.1)
        .body(q("app-b").to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 429, "the sixth call of the account, on another app");
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(post(&h, &q("app-a"), ("other@example.com", "t2"), true).await.0, 200, "another account");
    assert_eq!(h.metrics_requests().iter().filter(|r| r.status == 429).count(), 1);
    h.stop().await;
}

#[test]
fn recent_points_are_re_aggregated_once_within_the_lag() {
    let g = metrics_data::MetricsGen { seed: 7, t0_ms: 0, lag_ms: 120_000, late_permille: 300, step_ms: 60_000 };
    let m = "FORGE_BACKEND_INVOCATION_COUNT";
    let end = 100 * 60_000;
    // The points of the minute ending at `end`, asked at several times.
    let at = |now| g.points("a", "e", m, end, end + 1, now);
    let (early, later, settled, forever) = (at(end + 1), at(end + 60_000), at(end + 120_000), at(end + 86_400_000));
    assert_eq!(early, later, "one change only, at the lag");
    assert_eq!(settled, forever);
    assert_ne!(early, settled);
    let sum = |v: &[SimPoint]| v.iter().map(|p| p.value).sum::<f64>();
    assert!(sum(&early) < sum(&settled));
    // Over many minutes: some points appear late, none disappear.
    let (from, to) = (0, 2000 * 60_000);
    let g = metrics_data::MetricsGen { lag_ms: to, ..g };
    let prelim = g.points("a", "e", m, from, to, to - 1);
    let fin = g.points("a", "e", m, from, to, i64::MAX / 2);
    assert!(prelim.len() < fin.len());
}

#[test]
fn restarts_are_cumulative_and_never_decrease() {
    let g = metrics_data::MetricsGen { seed: 7, t0_ms: 0, lag_ms: 0, late_permille: 0, step_ms: 60_000 };
    let pts = g.points("a", "e", "CONTAINER_STATUS_RESTARTS_TOTAL", 0, 1000 * 60_000, i64::MAX / 2);
    assert!(pts.iter().all(|p| p.start_ms == 0));
    assert!(pts.windows(2).all(|w| w[0].value <= w[1].value && w[0].end_ms < w[1].end_ms));
    assert!(pts.last().map_or(0.0, |p| p.value) > pts[0].value);
}
