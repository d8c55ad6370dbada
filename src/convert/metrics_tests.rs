//! The metrics conversion against the simulator's answers and hand-written
//! OTLP/JSON of every metric type.

use std::collections::HashSet;

use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use serde_json::json;

use super::*;
use crate::simulator::metrics_data::{MetricsGen, resource_metrics};

fn source(envs: &[&str]) -> MetricsSourceConfig {
    MetricsSourceConfig {
        name: "m".into(),
        app_id: "0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6".into(),
        environments: envs.iter().map(|e| e.to_string()).collect(),
        metrics: Vec::new(),
        service_name: "svc".into(),
        resource_attributes: vec![("team".into(), AttrValue::Str("ops".into()))],
        settle_delay: None,
        credentials: None,
    }
}

/// The simulator's answer for 15 minutes of `envs`, and its number of points.
fn sim_answer(envs: &[&str]) -> (serde_json::Value, usize) {
    let g = MetricsGen { seed: 3, t0_ms: 0, lag_ms: 0, late_permille: 0, step_ms: 60_000 };
    let mut pts = Vec::new();
    for env in envs {
        for m in crate::forge::metrics_client::METRIC_NAMES {
            pts.extend(g.points("app", env, m, 600_000, 1_500_000, i64::MAX / 2));
        }
    }
    (resource_metrics(&g, &pts), pts.len())
}

fn attr<'a>(r: &'a Resource, key: &str) -> Option<&'a AV> {
    r.attributes.iter().find(|a| a.key == key)?.value.as_ref()?.value.as_ref()
}

#[test]
fn every_point_is_kept_with_its_type_and_temporality() {
    let (json, held) = sim_answer(&["e1", "e2"]);
    let answer = parse(&json).unwrap_or_else(|e| panic!("{e}"));
    let n = answer.keys().len();
    assert_eq!(n, held);
    assert!(n > 2 * 15 * 10, "{n}");
    let unique: HashSet<u64> = answer.keys().iter().map(|k| k.fingerprint).collect();
    assert_eq!(unique.len(), n, "identities are distinct");
    let all: Vec<usize> = (0..n).collect();
    let req = answer.request(&source(&["e1", "e2"]), &all);
    assert_eq!(point_count(&req), n as u64);
    assert_eq!(req.resource_metrics.len(), 2, "one resource per environment");
    for (rm, env) in req.resource_metrics.iter().zip(["e1", "e2"]) {
        let r = rm.resource.as_ref().unwrap_or_else(|| panic!("no resource"));
        assert_eq!(attr(r, "forge.environment.id"), Some(&AV::StringValue(env.into())));
        assert_eq!(attr(r, "service.name"), Some(&AV::StringValue("svc".into())));
        assert_eq!(attr(r, "team"), Some(&AV::StringValue("ops".into())));
        let metrics = &rm.scope_metrics[0].metrics;
        let by = |n: &str| metrics.iter().find(|m| m.name == n).and_then(|m| m.data.clone());
        match by("forge_backend_invocation_count") {
            Some(Data::Sum(s)) => {
                assert_eq!(s.aggregation_temporality, 1);
                assert!(matches!(s.data_points[0].value, Some(number_data_point::Value::AsInt(v)) if v > 0));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(by("container_status_restarts_total"), Some(Data::Sum(s)) if s.aggregation_temporality == 2));
        assert!(matches!(by("container_cpu_usage_percentage"), Some(Data::Gauge(_))));
        match by("forge_backend_invocation_latency") {
            Some(Data::Histogram(h)) => {
                let p = &h.data_points[0];
                assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
                assert_eq!(h.aggregation_temporality, 1);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_subset_request_holds_exactly_the_chosen_points() {
    let answer = parse(&sim_answer(&["e1"]).0).unwrap_or_else(|e| panic!("{e}"));
    let pick: Vec<usize> = (0..answer.keys().len()).filter(|i| i % 3 == 0).collect();
    let req = answer.request(&source(&["e1"]), &pick);
    assert_eq!(point_count(&req), pick.len() as u64);
    assert_eq!(point_count(&answer.request(&source(&["e1"]), &[])), 0);
    assert!(answer.request(&source(&["e1"]), &[]).resource_metrics.is_empty());
}

#[test]
fn identity_is_name_attributes_start_and_end() {
    let a = vec![kv("a", AV::StringValue("1".into())), kv("b", AV::IntValue(2))];
    let swapped = vec![a[1].clone(), a[0].clone()];
    let base = point_fingerprint("m", &a, 10, 20);
    assert_eq!(base, point_fingerprint("m", &swapped, 10, 20), "attribute order does not matter");
    assert_ne!(base, point_fingerprint("n", &a, 10, 20));
    assert_ne!(base, point_fingerprint("m", &a[..1], 10, 20));
    assert_ne!(base, point_fingerprint("m", &a, 11, 20));
    assert_ne!(base, point_fingerprint("m", &a, 10, 21));
    let other_value = vec![kv("a", AV::StringValue("1".into())), kv("b", AV::IntValue(3))];
    assert_ne!(base, point_fingerprint("m", &other_value, 10, 20));
}

#[test]
fn every_metric_type_is_accepted() {
    let v = json!([{ "resource": {}, "scopeMetrics": [{ "scope": {}, "metrics": [
        { "name": "exp", "exponentialHistogram": { "aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA",
            "dataPoints": [{ "startTimeUnixNano": "1", "timeUnixNano": "2", "count": "3", "scale": 1,
                "zeroCount": "0", "positive": { "offset": 0, "bucketCounts": ["1", "2"] } }] } },
        { "name": "sum", "summary": { "dataPoints": [{ "timeUnixNano": "5", "count": "2", "sum": 3.5,
            "quantileValues": [{ "quantile": 0.95, "value": 3.0 }] }] } },
        { "name": "g", "gauge": { "dataPoints": [{ "timeUnixNano": "7", "asInt": "-9007199254740993" }] } }
    ] }] }]);
    let answer = parse(&v).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.keys().len(), 3);
    assert_eq!(answer.keys()[2].time_unix_nano, 7);
    let req = answer.request(&source(&["only"]), &[0, 1, 2]);
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    assert!(matches!(&metrics[0].data, Some(Data::ExponentialHistogram(h)) if h.aggregation_temporality == 1));
    assert!(matches!(&metrics[1].data, Some(Data::Summary(s)) if s.data_points[0].quantile_values.len() == 1));
    assert!(matches!(&metrics[2].data, Some(Data::Gauge(g))
        if g.data_points[0].value == Some(number_data_point::Value::AsInt(-9_007_199_254_740_993))));
    let r = req.resource_metrics[0].resource.as_ref().unwrap_or_else(|| panic!("no resource"));
    assert_eq!(attr(r, "forge.environment.id"), Some(&AV::StringValue("only".into())), "the only environment");
    assert!(parse(&json!([{ "scopeMetrics": [{ "metrics": [{ "name": "x", "sum": { "dataPoints": [{ "timeUnixNano": "soon" }] } }] }] }])).is_err());
    assert!(parse(&json!({ "not": "a list" })).is_err());
}
