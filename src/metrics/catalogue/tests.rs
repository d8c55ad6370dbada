use super::*;

#[test]
fn names_are_unique_and_counters_end_in_total() {
    let mut seen = std::collections::HashSet::new();
    for f in FAMILIES {
        assert!(seen.insert(f.name), "{} listed twice", f.name);
        assert!(seen.insert(f.otlp_name()) || f.otlp_name() == f.name, "{} collides", f.otlp_name());
        match f.kind {
            Kind::Counter(_) => assert!(f.name.ends_with("_total"), "{}", f.name),
            _ => assert!(!f.name.ends_with("_total"), "{}", f.name),
        }
        assert!(f.help.ends_with('.'), "{}", f.name);
    }
}

fn rows(registry: &Registry, name: &str) -> Vec<(Vec<String>, Value)> {
    let scrape = Scrape { registry, now_ms: 1_800_000_000_000, ready: Some(true) };
    FAMILIES.iter().find(|f| f.name == name).map(|f| f.samples(&scrape)).unwrap_or_default()
}

#[test]
fn app_gauges_appear_once_set() {
    let r = Registry::default();
    let _m = r.source("prod", "app-1");
    assert!(rows(&r, "forge_sidecar_clock_skew_seconds").is_empty());
    r.set_clock_skew("app-1", -2.5);
    r.set_budget("app-1", 40.0, 25.0);
    assert_eq!(rows(&r, "forge_sidecar_clock_skew_seconds"), vec![(vec!["app-1".to_string()], Value::Float(-2.5))]);
    assert_eq!(
        rows(&r, "forge_sidecar_budget_calls_needed_per_minute"),
        vec![(vec!["app-1".to_string()], Value::Float(40.0))]
    );
    assert_eq!(
        rows(&r, "forge_sidecar_budget_effective_rate_per_minute"),
        vec![(vec!["app-1".to_string()], Value::Float(25.0))]
    );
}

#[test]
fn recording_methods_feed_their_families() {
    let r = Registry::default();
    let m = r.source("prod", "app-1");
    // The exporter's call: one observation of 30 ms.
    m.export_call(0.03);
    m.export_call(2.0);
    m.observe_arrival_delay(90.0);
    SourceMetrics::add(&m.found_late, 3);
    let labels = vec!["app-1".to_string(), "prod".to_string()];
    let hist = |name: &str| match rows(&r, name).pop() {
        Some((l, Value::Histogram(h))) if l == labels => Some(h),
        _ => None,
    };
    let export = hist("forge_sidecar_export_duration_seconds").unwrap_or_else(|| panic!("no export histogram"));
    assert_eq!((export.count, export.sum), (2, 2.03));
    assert_eq!(export.cumulative[DURATION_BUCKETS.iter().position(|b| *b == 0.05).unwrap_or(0)], 1);
    let delay = hist("forge_sidecar_record_arrival_delay_seconds").unwrap_or_else(|| panic!("no delay histogram"));
    assert_eq!((delay.count, delay.sum), (1, 90.0));
    assert_eq!(delay.cumulative[DELAY_BUCKETS.iter().position(|b| *b == 60.0).unwrap_or(0)], 0);
    assert_eq!(delay.cumulative[DELAY_BUCKETS.iter().position(|b| *b == 120.0).unwrap_or(0)], 1);
    assert_eq!(rows(&r, "forge_sidecar_records_found_late_total"), vec![(labels, Value::Int(3))]);
}

#[test]
fn privacy_changes_add_up_by_rule() {
    let r = Registry::default();
    let m = r.source("prod", "app-1");
    let names = ["drop:arguments".to_string(), "mask:email".to_string()];
    m.privacy_changed(&names, &[2, 0]);
    m.privacy_changed(&names, &[1, 4]);
    let row = |rule: &str, n| (vec!["app-1".to_string(), "prod".to_string(), rule.to_string()], Value::Int(n));
    assert_eq!(
        rows(&r, "forge_sidecar_privacy_values_changed_total"),
        vec![row("drop:arguments", 3), row("mask:email", 4)]
    );
}

#[test]
fn metrics_sources_name_their_account() {
    let r = Registry::default();
    let _logs = r.source("prod", "app-1");
    assert!(rows(&r, "forge_sidecar_metrics_source_info").is_empty(), "no row for a log source");
    let info = crate::metrics::MetricsSourceInfo {
        environments: vec!["e".into()],
        account: "metrics-account-1".into(),
        calls_per_period: 5,
    };
    let _m = r.metrics_source("perf", "app-2", info);
    let want = vec!["app-2".to_string(), "perf".to_string(), "metrics-account-1".to_string()];
    assert_eq!(rows(&r, "forge_sidecar_metrics_source_info"), vec![(want, Value::Int(1))]);
}
