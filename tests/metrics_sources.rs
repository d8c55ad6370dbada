//! App metrics sources through the real binary (and a rotel collector when
//! one is installed, else straight to the receiver): every data point the
//! simulator holds arrives exactly once, a kill -9 included; the budget of
//! 5 calls per period holds for one account across two apps; a QueryError
//! for an unknown environment is a configuration error on /readyz; a 200
//! carrying `errors` is retried.

mod common;
mod harness;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use forge_otel_sidecar::simulator::{MetricsFaults, MetricsSimConfig, SimConfig};
use harness::*;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value as AV};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};

const APP_A: &str = "0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6";
/// The log source every harness config carries.
const LOG_SOURCE: &str = "sources:\n  - app_id: demo-app\n    environment_id: production\n    name: prod\n";
const APP_B: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

/// (metric name, environment, series value, end ms).
type Key = (String, String, String, i64);

fn sim(history: Duration) -> SimConfig {
    SimConfig {
        apps: vec![
            ("demo-app".into(), vec!["production".into()]),
            (APP_A.into(), vec!["env-a".into(), "env-b".into()]),
            (APP_B.into(), vec!["env-c".into()]),
        ],
        history,
        records_per_second: 0.2,
        rate_window: Duration::from_secs(3),
        late_fraction: 0.0,
        ..SimConfig::default()
    }
}

/// Re-aggregation shorter than the settle delay: every first read sees final values.
fn msim() -> MetricsSimConfig {
    MetricsSimConfig { lag: Duration::from_millis(300), late_fraction: 0.3, ..MetricsSimConfig::default() }
}

async fn world(history: Duration) -> Option<World> {
    World::with_metrics(sim(history), msim(), rotel_path().is_some()).await
}

fn sources(list: &[(&str, &str, &[&str])]) -> String {
    let mut out = String::from("metrics_sources:\n");
    for (name, app, envs) in list {
        out.push_str(&format!("  - name: {name}\n    app_id: {app}\n    environments: [{}]\n", envs.join(", ")));
    }
    out
}

fn config(w: &World, list: &[(&str, &str, &[&str])]) -> String {
    w.config("api_token: ${env:FORGE_API_TOKEN}", "", "", &sources(list))
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        AV::StringValue(s) => Some(s.clone()),
        _ => None,
    })
}

fn series(attrs: &[KeyValue]) -> String {
    ["functionKey", "url", "errorType"].iter().find_map(|k| attr(attrs, k)).unwrap_or_default()
}

/// Every data point the receiver holds: key → (copies, last value).
fn received(w: &World, app: &str) -> HashMap<Key, (u32, f64)> {
    let mut out: HashMap<Key, (u32, f64)> = HashMap::new();
    for req in w.rx.metric_requests() {
        for rm in &req.resource_metrics {
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let points: Vec<(&[KeyValue], u64, f64)> = match &m.data {
                    Some(Data::Sum(s)) => {
                        s.data_points.iter().map(|p| (&p.attributes[..], p.time_unix_nano, number(&p.value))).collect()
                    }
                    Some(Data::Gauge(g)) => {
                        g.data_points.iter().map(|p| (&p.attributes[..], p.time_unix_nano, number(&p.value))).collect()
                    }
                    Some(Data::Histogram(h)) => {
                        h.data_points.iter().map(|p| (&p.attributes[..], p.time_unix_nano, p.count as f64)).collect()
                    }
                    _ => Vec::new(),
                };
                for (attrs, t, v) in points {
                    if attr(attrs, "appId").as_deref() != Some(app) {
                        continue;
                    }
                    let env = attr(attrs, "environmentId").unwrap_or_default();
                    let key = (m.name.clone(), env, series(attrs), (t / 1_000_000) as i64);
                    let e = out.entry(key).or_insert((0, 0.0));
                    e.0 += 1;
                    e.1 = v;
                }
            }
        }
    }
    out
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        Some(number_data_point::Value::AsDouble(d)) => *d,
        None => f64::NAN,
    }
}

/// The simulator's final points of `app` ending before `before`.
fn expected(w: &World, app: &str, before: SystemTime) -> HashMap<Key, f64> {
    w.sim
        .metric_points(before)
        .into_iter()
        .filter(|p| p.app == app)
        .map(|p| ((p.name.to_string(), p.environment.clone(), p.series.1.to_string(), p.end_ms), p.value))
        .collect()
}

/// Waits until every expected point arrived (or `limit`); then counts
/// the points missing, the copies beyond the first, and the points whose
/// value is not the final one.
async fn exactly_once(w: &World, app: &str, before: SystemTime, limit: Duration) -> Tally {
    let want = expected(w, app, before);
    assert!(want.len() > 100, "{}", want.len());
    let deadline = Instant::now() + limit;
    while want.keys().any(|k| !received(w, app).contains_key(k)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = received(w, app);
    let mut t = Tally { expected: want.len(), ..Tally::default() };
    for (k, v) in &want {
        match got.get(k) {
            None => t.lost += 1,
            Some((copies, value)) => {
                t.dups += (*copies as usize).saturating_sub(1);
                t.wrong += usize::from(value != v);
            }
        }
    }
    t
}

/// Points missing, extra copies, values not final.
#[derive(Debug, Default)]
struct Tally {
    expected: usize,
    lost: usize,
    dups: usize,
    wrong: usize,
}

impl Tally {
    fn ok(&self) -> bool {
        self.lost == 0 && self.dups == 0 && self.wrong == 0
    }
}

/// The most metrics API calls in any 3 s (the compressed period; budget 5), and the 429s.
fn calls(w: &World) -> (usize, usize) {
    let log = w.sim.metrics_requests();
    let times: Vec<i64> = log.iter().map(|r| r.at_ms).collect();
    let most = times.iter().map(|t| times.iter().filter(|u| **u >= *t && **u < t + 3000).count()).max();
    (most.unwrap_or(0), log.iter().filter(|r| r.status == 429).count())
}

/// A docs/RELIABILITY.md row of an App metrics case.
fn row(w: &World, id: &'static str, scenario: &'static str, t: &Tally, pass: bool, note: String) -> Row {
    let (max_calls, n429) = calls(w);
    let wrong = if t.wrong > 0 { format!(" ({} without their final value)", t.wrong) } else { String::new() };
    let note = format!("{} points{wrong}; {note}", t.expected);
    Row {
        id,
        scenario,
        lost: Some(t.lost),
        dups: Some(t.dups),
        max_calls: Some(max_calls),
        n429: Some(n429),
        pass,
        note,
        ..Row::default()
    }
}

/// The process dies (abort, as kill -9) after a window's points were
/// acknowledged and recorded but before its checkpoint moved: the next
/// process reads that window again and delivers none of it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_point_once_across_a_crash_before_the_checkpoint() {
    let Some(w) = world(Duration::from_secs(25 * 60)).await else { return };
    // Metrics sources only, so the crash point counts their commits alone.
    let cfg = config(&w, &[("a", APP_A, &["env-a", "env-b"])]).replace(LOG_SOURCE, "");
    let mut first = w.start(&cfg, &[("FORGE_SIDECAR_FAULT_ABORT_BEFORE_COMMIT", "2")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.proc.is_running() {
        assert!(Instant::now() < deadline, "no crash:\n{}", first.proc.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(first.proc.text().contains("aborting before checkpoint write 2"), "{}", first.proc.text());
    let before_restart = received(&w, APP_A).len();
    assert!(before_restart > 0);
    let before = SystemTime::now() - Duration::from_secs(2);
    let second = w.start(&cfg, &[]);
    let t = exactly_once(&w, APP_A, before, Duration::from_secs(60)).await;
    // The window being committed was read again by the second process, once.
    let mut windows: HashMap<(i64, i64), u32> = HashMap::new();
    for r in w.sim.metrics_requests().iter().filter(|r| r.app == APP_A && r.status == 200) {
        *windows.entry((r.start_ms, r.end_ms)).or_default() += 1;
    }
    let repeated = windows.values().filter(|n| **n > 1).count();
    let note = format!("{before_restart} points before the crash; {repeated} windows read again");
    row(
        &w,
        "M2",
        "kill -9 after delivery, before the checkpoint write: no point twice",
        &t,
        t.ok() && repeated <= 2,
        note,
    )
    .check();
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_keeps_to_five_calls_per_period_across_two_apps() {
    let Some(w) = world(Duration::from_secs(25 * 60)).await else { return };
    let cfg = config(&w, &[("a", APP_A, &["env-a", "env-b"]), ("b", APP_B, &["env-c"])]);
    let sidecar = w.start(&cfg, &[]);
    let before = SystemTime::now() - Duration::from_secs(2);
    let a = exactly_once(&w, APP_A, before, Duration::from_secs(90)).await;
    let b = exactly_once(&w, APP_B, before, Duration::from_secs(30)).await;
    let log = w.sim.metrics_requests();
    let apps: std::collections::HashSet<&str> = log.iter().map(|r| r.app.as_str()).collect();
    // The same figure the simulator enforces: at most 5 in any 3 s, whatever the app.
    let (most, n429) = calls(&w);
    // Windows of at most 15 minutes: the API refused none.
    let windows_ok = log.iter().all(|r| r.status == 200 && r.end_ms - r.start_ms <= 15 * 60_000);
    let t = Tally {
        expected: a.expected + b.expected,
        lost: a.lost + b.lost,
        dups: a.dups + b.dups,
        wrong: a.wrong + b.wrong,
    };
    let pass = t.ok() && apps.contains(APP_A) && apps.contains(APP_B) && most <= 5 && n429 == 0 && windows_ok;
    let note = format!("{} calls, at most {most} in 3 s (budget 5); every window ≤ 15 min: {windows_ok}", log.len());
    row(&w, "M3", "one account, two apps: 5 calls per period shared", &t, pass, note).check();
    drop(sidecar);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_environment_is_a_configuration_error_on_readyz() {
    let Some(w) = world(Duration::from_secs(10 * 60)).await else { return };
    let cfg = config(&w, &[("bad", APP_A, &["no-such-env"])]);
    let sidecar = w.start(&cfg, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let started = Instant::now();
    let (mut code, mut body) = sidecar.get("/readyz").await;
    while !(code == 503 && body.contains(r#""source":"bad""#) && body.contains("configuration error"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        (code, body) = sidecar.get("/readyz").await;
    }
    let shown = code == 503 && body.contains(r#""source":"bad""#) && body.contains("configuration error");
    let statuses: Vec<u16> = w.sim.metrics_requests().iter().map(|r| r.status).collect();
    let delivered = received(&w, APP_A).len();
    let pass = shown && statuses.contains(&404) && delivered == 0;
    let note = format!(
        "/readyz {code}, configuration error shown: {shown}; points delivered: {delivered} (never an empty window)"
    );
    let t = Tally::default();
    Row { recovery: Some(started.elapsed()), ..row(&w, "M4", "QueryError for an unknown environment", &t, pass, note) }
        .check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_with_errors_is_retried() {
    let Some(w) = world(Duration::from_secs(20 * 60)).await else { return };
    w.sim.set_metrics_faults(MetricsFaults { n_errors: 3, n_query_500: 2 });
    let cfg = config(&w, &[("a", APP_A, &["env-a"])]);
    let sidecar = w.start(&cfg, &[]);
    let before = SystemTime::now() - Duration::from_secs(2);
    let want: HashMap<Key, f64> =
        expected(&w, APP_A, before).into_iter().filter(|((_, env, _, _), _)| env == "env-a").collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while want.keys().any(|k| !received(&w, APP_A).contains_key(k)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = received(&w, APP_A);
    let mut t = Tally { expected: want.len(), ..Tally::default() };
    for (k, v) in &want {
        match got.get(k) {
            None => t.lost += 1,
            Some((n, value)) => {
                t.dups += (*n as usize).saturating_sub(1);
                t.wrong += usize::from(value != v);
            }
        }
    }
    let errors = w.sim.metrics_requests().iter().filter(|r| r.status == 500).count();
    let note = format!("{errors} faulty answers seen and retried (5 served)");
    let pass = t.ok() && errors == 5;
    row(&w, "M5", "200 carrying `errors` (3) and QueryError 500 (2), retried", &t, pass, note).check();
    drop(sidecar);
}

/// Points the API adds after the first read (re-aggregation slower than
/// the settle delay) are caught by the late second read, and the points
/// read twice go out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_late_read_catches_late_points_and_repeats_none() {
    // Points every 2 s, complete 3 s after their end: a live first read
    // (settle 500 ms) misses some; the late read (4 s) finds them.
    let late = MetricsSimConfig {
        lag: Duration::from_secs(3),
        late_fraction: 0.5,
        step: Duration::from_secs(2),
        ..MetricsSimConfig::default()
    };
    let Some(w) = World::with_metrics(sim(Duration::from_secs(10 * 60)), late, rotel_path().is_some()).await else {
        return;
    };
    let cfg = config(&w, &[("a", APP_A, &["env-a"])]);
    let sidecar = w.start(&cfg, &[]);
    // Let live windows be read while their newest points are still missing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = SystemTime::now() - Duration::from_secs(1);
    let want: Vec<Key> = expected(&w, APP_A, before).into_keys().filter(|k| k.1 == "env-a").collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = received(&w, APP_A);
        if want.iter().all(|k| got.contains_key(k)) {
            assert!(got.values().all(|(n, _)| *n == 1), "a point went out twice");
            break;
        }
        assert!(Instant::now() < deadline, "late points not caught:\n{}", sidecar.proc.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Some reads saw fewer points than their window holds in the end.
    let fin = w.sim.metric_points(SystemTime::now());
    let short = w.sim.metrics_requests().iter().filter(|r| r.status == 200).any(|r| {
        let all = fin
            .iter()
            .filter(|p| p.app == APP_A && p.environment == "env-a" && p.end_ms >= r.start_ms && p.end_ms < r.end_ms);
        r.points < all.count()
    });
    let shown: Vec<String> = w
        .sim
        .metrics_requests()
        .iter()
        .map(|r| {
            let all = fin.iter().filter(|p| {
                p.app == APP_A && p.environment == "env-a" && p.end_ms >= r.start_ms && p.end_ms < r.end_ms
            });
            format!("{} {}..{} {} {}", r.at_ms, r.start_ms, r.end_ms, r.points, all.count())
        })
        .collect();
    assert!(short, "no read missed a late point, so the late read was not tested: {shown:#?}");
    let got = received(&w, APP_A);
    let t = Tally {
        expected: want.len(),
        lost: want.iter().filter(|k| !got.contains_key(*k)).count(),
        dups: got.values().map(|(n, _)| (*n as usize).saturating_sub(1)).sum(),
        wrong: 0,
    };
    let note = "points final 3 s after their end, settle 500 ms: some first reads missed them".to_string();
    row(&w, "M6", "late points caught by the second read, none twice", &t, t.ok() && short, note).check();
}

/// OTLP/HTTP: the same points, posted to `/v1/metrics` beside the logs
/// URL; and an API that selects points by their start, not their end,
/// loses none between two windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_go_over_otlp_http_too() {
    let m = MetricsSimConfig { select_by_start: true, ..msim() };
    // Longer than one window, so a window boundary falls inside the history.
    let Some(w) = World::with_metrics(sim(Duration::from_secs(25 * 60)), m, false).await else { return };
    let grpc = format!("protocol: grpc\n  endpoint: {}", w.endpoint());
    let http = format!("protocol: http/protobuf\n  endpoint: {}", w.rx.http_endpoint());
    let cfg = config(&w, &[("a", APP_A, &["env-a", "env-b"])]).replace(&grpc, &http);
    assert!(cfg.contains("http/protobuf"));
    let sidecar = w.start(&cfg, &[]);
    let before = SystemTime::now() - Duration::from_secs(2);
    let t = exactly_once(&w, APP_A, before, Duration::from_secs(60)).await;
    let scenario = "every point exactly once with its final value (OTLP/HTTP; API selecting by start)";
    row(&w, "M1", scenario, &t, t.ok(), "two environments, 25 min of history".into()).check();
    drop(sidecar);
}
