//! /metrics, /status and the OTLP push of the sidecar's own metrics,
//! during real runs against the simulator.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use common::*;
use forge_otel_sidecar::simulator::{Faults, SimConfig};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

async fn scrape(addr: std::net::SocketAddr, path: &str) -> String {
    forge_otel_sidecar::tls::install_crypto_provider();
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap_or_else(|e| panic!("{e}"));
    r.text().await.unwrap_or_default()
}

/// Sample values by metric name (summed over label sets).
fn parse(text: &str) -> HashMap<String, f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"));
    let mut out = HashMap::new();
    for s in scrape.samples {
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        };
        *out.entry(s.metric).or_insert(0.0) += v;
    }
    out
}

const COUNTERS: [&str; 8] = [
    "forge_sidecar_received_log_records_total",
    "forge_sidecar_sent_log_records_total",
    "forge_sidecar_duplicate_log_records_total",
    "forge_sidecar_dead_lettered_log_records_total",
    "forge_sidecar_rejected_log_records_total",
    "forge_sidecar_api_requests_total",
    "forge_sidecar_pages_total",
    "forge_sidecar_export_duration_seconds_count",
];

fn identity_gap(m: &HashMap<String, f64>) -> f64 {
    let g = |k: &str| m.get(k).copied().unwrap_or(0.0);
    g("forge_sidecar_received_log_records_total")
        - g("forge_sidecar_sent_log_records_total")
        - g("forge_sidecar_rejected_log_records_total")
        - g("forge_sidecar_dead_lettered_log_records_total")
        - g("forge_sidecar_duplicate_log_records_total")
        - g("forge_sidecar_in_flight_log_records")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_stay_monotonic_and_balance() {
    let sim = sim(SimConfig { history: Duration::from_secs(1800), late_fraction: 0.5, ..fast_sim() }).await;
    let rx = receiver().await;
    rx.fail_next([forge_otel_sidecar::testkit::receiver::Failure::Partial { rejected: 2 }]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = start(config(&sidecar_yaml(&sim, &rx, dir.path(), ""))).await;
    let addr = app.server_addr.unwrap_or_else(|| panic!("no server"));
    let mut last: Option<HashMap<String, f64>> = None;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let m = parse(&scrape(addr, "/metrics").await);
        if let Some(prev) = &last {
            for c in COUNTERS {
                assert!(m.get(c).copied().unwrap_or(0.0) >= prev.get(c).copied().unwrap_or(0.0), "{c} went down");
            }
        }
        // A scrape is not atomic: within one page of the identity while pages flow.
        assert!(identity_gap(&m).abs() <= 200.0, "identity off by {}", identity_gap(&m));
        last = Some(m);
    }
    // Quiesce: the API fails from now on, so no page is in flight; then the identity is exact.
    sim.set_faults(Faults { p_503: 1.0, ..Faults::default() });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = parse(&scrape(addr, "/metrics").await);
    assert_eq!(identity_gap(&m), 0.0, "received = sent + rejected + dead-lettered + duplicates + in flight");
    assert!(m["forge_sidecar_received_log_records_total"] > 3000.0);
    assert!(m["forge_sidecar_duplicate_log_records_total"] > 0.0, "the late pass dropped records it had delivered");
    assert_eq!(m["forge_sidecar_rejected_log_records_total"], 2.0);
    assert_eq!(m["forge_sidecar_sent_log_records_total"] as usize, rx.record_count() - 2);
    assert!(m.contains_key("process_resident_memory_bytes"));
    assert!(app.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_flags_a_site_whose_records_stop() {
    let silent_after = forge_otel_sidecar::timefmt::system_millis(SystemTime::now()) - 20 * 60_000;
    let faults = Faults { silent_sites: vec![0], silent_after_ms: silent_after, ..Faults::default() };
    let sim = sim(SimConfig { history: Duration::from_secs(3600), sites: 4, faults, ..fast_sim() }).await;
    let rx = receiver().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = sidecar_yaml(&sim, &rx, dir.path(), "")
        .replace("  listen: 127.0.0.1:0\n", "  listen: 127.0.0.1:0\n  site_silence_after: 2m\n");
    let app = start(config(&text)).await;
    let addr = app.server_addr.unwrap_or_else(|| panic!("no server"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status: serde_json::Value = serde_json::from_str(&scrape(addr, "/status").await).unwrap_or_default();
    let sites = status["sources"][0]["sites"].as_array().cloned().unwrap_or_default();
    assert_eq!(sites.len(), 4, "{status}");
    let silent_site = &sim.generator().sites[0];
    for s in &sites {
        let is_silent_one = s["installation_context"].as_str() == Some(silent_site.as_str());
        assert_eq!(s["silent"].as_bool(), Some(is_silent_one), "{s}");
    }
    assert_eq!(status["sources"][0]["state"], "live", "{status}");
    assert!(app.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_are_pushed_over_otlp() {
    let sim = sim(SimConfig { history: Duration::from_secs(600), ..fast_sim() }).await;
    let rx = receiver().await;
    for (protocol, endpoint) in [("grpc", rx.grpc_endpoint()), ("http/protobuf", rx.http_endpoint())] {
        let before = rx.metric_requests().len();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let text = format!(
            "{}telemetry:\n  otlp:\n    enabled: true\n    protocol: {protocol}\n    endpoint: {endpoint}\n    interval: 500ms\n",
            sidecar_yaml(&sim, &rx, dir.path(), "")
        );
        let app = start(config(&text)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(app.shutdown(Duration::from_secs(10)).await);
        let reqs = rx.metric_requests();
        assert!(reqs.len() > before, "{protocol}: no metrics pushed");
        let last = &reqs[reqs.len() - 1];
        let rm = &last.resource_metrics[0];
        let service = rm
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref()?.value.clone());
        assert_eq!(service, Some(Value::StringValue("forge-otel-sidecar".into())), "{protocol}");
        let names: Vec<String> =
            rm.scope_metrics.iter().flat_map(|s| s.metrics.iter().map(|m| m.name.clone())).collect();
        for want in [
            "forge_sidecar_sent_log_records",
            "forge_sidecar_received_log_records",
            "forge_sidecar_api_requests",
            "forge_sidecar_watermark_lag_seconds",
        ] {
            assert!(names.iter().any(|n| n == want), "{protocol}: {want} missing from {names:?}");
        }
        let sent = rm
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .find(|m| m.name == "forge_sidecar_sent_log_records")
            .and_then(|m| match m.data.as_ref()? {
                opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s) => {
                    s.data_points.first().map(|p| match p.value {
                        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => i,
                        _ => 0,
                    })
                }
                _ => None,
            });
        assert!(sent.unwrap_or(0) > 0, "{protocol}: sent count pushed");
    }
}

/// A Prometheus family name for an OTLP metric, by the catalogue's rule: a
/// monotonic sum (counter) gains `_total`; gauges and histograms keep the name.
fn prometheus_name(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> String {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    match &m.data {
        Some(Data::Sum(s)) if s.is_monotonic => format!("{}_total", m.name),
        _ => m.name.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_otlp_push_carry_the_same_families() {
    use forge_otel_sidecar::metrics::{Registry, SourceMetrics, render_prometheus};
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    let sim = sim(SimConfig { history: Duration::from_secs(60), ..fast_sim() }).await;
    let rx = receiver().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "{}telemetry:\n  otlp:\n    enabled: true\n    protocol: grpc\n    endpoint: {}\n    interval: 1h\n",
        sidecar_yaml(&sim, &rx, dir.path(), ""),
        rx.grpc_endpoint()
    );
    let cfg = config(&text);
    let otlp = cfg.telemetry.otlp.clone().unwrap_or_else(|| panic!("telemetry.otlp"));
    let registry = Arc::new(Registry::default());
    let telemetry = forge_otel_sidecar::telemetry::Telemetry::start(&otlp, &cfg.exporter, registry.clone())
        .unwrap_or_else(|e| panic!("{e}"));

    // A value in every family, so that neither side leaves one out for want of data.
    let now = forge_otel_sidecar::timefmt::system_millis(SystemTime::now());
    let m = registry.source("prod", "app-1");
    registry.set_ready_probe(Box::new(|_, _| true));
    registry.set_clock_skew("app-1", -1.5);
    registry.set_budget("app-1", 12.0, 30.0);
    m.api_call("200", now, 0.2);
    m.export_call(0.03);
    m.export_call(0.04);
    m.observe_arrival_delay(42.0);
    SourceMetrics::add(&m.found_late, 2);
    SourceMetrics::add(&m.sent, 5);
    let prom_text = render_prometheus(&registry, now, true);

    // Shutting down pushes the last values (the interval is too long to have fired).
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.unwrap_or_else(|e| panic!("{e}"));
    let reqs = rx.metric_requests();
    let pushed: Vec<_> = reqs
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|s| &s.metrics)
        .collect();
    assert!(!pushed.is_empty(), "nothing pushed");
    let otlp: BTreeMap<String, String> = pushed.iter().map(|m| (prometheus_name(m), m.description.clone())).collect();

    let scrape = prometheus_parse::Scrape::parse(prom_text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{prom_text}"));
    let prom: BTreeMap<String, String> = scrape.docs.clone().into_iter().collect();
    for s in &scrape.samples {
        let family = s.metric.strip_suffix("_sum").or_else(|| s.metric.strip_suffix("_count")).unwrap_or(&s.metric);
        assert!(prom.contains_key(family) || prom.contains_key(&s.metric), "{} has no HELP", s.metric);
    }

    let prom_names: BTreeSet<_> = prom.keys().collect();
    let otlp_names: BTreeSet<_> = otlp.keys().collect();
    assert_eq!(prom_names, otlp_names, "/metrics and the OTLP push list different families");
    assert!(prom_names.len() >= 30, "{prom_names:?}");
    assert_eq!(prom, otlp, "help texts differ");

    // Durations are histograms on both sides, with the same counts.
    let hist = |name: &str| {
        pushed.iter().rev().find(|m| m.name == name).and_then(|m| match m.data.as_ref()? {
            Data::Histogram(h) => h.data_points.first().map(|p| (p.count, p.explicit_bounds.len())),
            _ => None,
        })
    };
    assert_eq!(hist("forge_sidecar_export_duration_seconds"), Some((2, 13)));
    assert_eq!(hist("forge_sidecar_record_arrival_delay_seconds"), Some((1, 12)));
    assert!(
        prom_text.contains("forge_sidecar_export_duration_seconds_bucket{app=\"app-1\",source=\"prod\",le=\"0.05\"} 2")
    );
    assert!(prom_text.contains("forge_sidecar_api_request_duration_seconds_count{app=\"app-1\",source=\"prod\"} 1"));
}
