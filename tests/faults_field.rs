//! TEST-PLAN scenarios from the field (R12, R13, R16, R17, R20, T5): the built
//! binary against the simulator's worst behaviours, delivering through a
//! real collector. Time is compressed through the config: the budget is
//! 30 calls per 3 s. Each prints a `RELIABILITY|...` row.

mod common;
mod harness;

use std::time::Duration;

use forge_otel_sidecar::simulator::SimConfig;
use forge_otel_sidecar::simulator::behaviour::{Behaviour, RateLimitStyle};
use harness::*;

fn sim(history_s: u64, behaviour: Behaviour) -> SimConfig {
    SimConfig { history: Duration::from_secs(history_s), behaviour, ..common::fast_sim() }
}

/// R12: an interval at the budget's pace (one call per 100 ms) with late
/// records: neither pass starves, so every late record is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_interval_at_the_budgets_pace_starves_no_pass() {
    let cfg = SimConfig { late_fraction: 0.3, max_late: Duration::from_secs(3), ..sim(600, Behaviour::default()) };
    let Some(w) = World::new(cfg, true).await else { return };
    let config = w
        .config(
            "api_token: ${env:FORGE_API_TOKEN}",
            "  interval: 100ms\n  settle_delay: 300ms\n  late_arrival: 4s\n  initial_lookback: 11m",
            "",
            "",
        )
        .replace("  interval: 500ms\n  settle_delay: 500ms\n  late_arrival: 4s\n  initial_lookback: 31m\n", "");
    let mut s = w.start(&config, &[]);
    // 30 s live: 10 minutes at the budget's compression (30 calls per 3 s, not per minute).
    tokio::time::sleep(Duration::from_secs(30)).await;
    let t = w.wait_all(Duration::from_secs(60)).await;
    let late = s.metric("forge_sidecar_records_found_late_total").await;
    Row {
        pass: t.lost == 0 && t.dups == 0 && w.max_calls() <= 30 && w.count_status(429) == 0,
        note: format!("interval 100 ms = the budget's pace; 30 s live (10 min compressed); {late} records found by the second pass"),
        ..w.row("R12", "interval at the budget's pace, 30 % of records up to 3 s late", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

/// R13: another client spends 60 % of the app's limit; its 429s carry only
/// `X-RateLimit-*` headers. Our rate adapts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_another_client_on_the_same_budget() {
    let b = Behaviour { other_client_calls: 18, rate_limit_style: RateLimitStyle::XRatelimit, ..Behaviour::default() };
    let Some(w) = World::new(sim(1800, b), true).await else { return };
    let mut s = w.start(&w.default_config(), &[]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let t = w.wait_all(Duration::from_secs(90)).await;
    let ours = w.sim.requests().len();
    let n429 = w.count_status(429);
    let share = n429 as f64 / ours.max(1) as f64;
    Row {
        pass: t.lost == 0 && t.dups == 0 && share < 0.10,
        note: format!("{n429} × 429 in {ours} calls ({:.1} %)", share * 100.0),
        ..w.row("R13", "another client spends 60 % of the limit; 429 with X-RateLimit-* only", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

/// R16: identical twins (same content, same nanosecond), half of the copies
/// late, every page shuffled: counts, not sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_twins_and_unsorted_pages() {
    let b = Behaviour { twin_every: 5, twin_late_ms: 2_000, shuffle: true, ..Behaviour::default() };
    // 15 s of live records after a short backfill: the first read sees a
    // record, the second read finds its twin and recognises both by their
    // bytes (the twin is decoded then, and goes out).
    let cfg = SimConfig { page_size: 50, records_per_second: 10.0, ..sim(300, b) };
    let Some(w) = World::new(cfg, true).await else { return };
    let mut s = w.start(&w.default_config(), &[]);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let t = w.wait_all(Duration::from_secs(60)).await;
    let recognised = s.metric("forge_sidecar_recognised_log_records_total").await;
    Row {
        pass: t.lost == 0 && t.dups == 0 && recognised > 0.0,
        note: format!(
            "1 record in 5 twinned, half of the twins 2 s late; pages of 50 shuffled; {recognised} records recognised by their bytes in the second pass"
        ),
        ..w.row("R16", "identical twins, unsorted pages", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

/// R17: the API's start exclusive and end inclusive, with half of the
/// records on minute edges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_either_window_end_exclusive() {
    for (start_exclusive, end_inclusive) in [(true, true), (true, false)] {
        let b = Behaviour { start_exclusive, end_inclusive, ..Behaviour::default() };
        let cfg = SimConfig { edge_fraction: 0.5, ..sim(1800, b) };
        let Some(w) = World::new(cfg, true).await else { return };
        let mut s = w.start(&w.default_config(), &[]);
        tokio::time::sleep(Duration::from_secs(8)).await;
        let t = w.wait_all(Duration::from_secs(60)).await;
        Row {
            pass: t.lost == 0 && t.dups == 0,
            note: format!("start exclusive {start_exclusive}, end inclusive {end_inclusive}; 50 % on edges"),
            ..w.row("R17", "either window end exclusive", &t)
        }
        .check();
        s.proc.terminate(Duration::from_secs(10));
    }
}

/// R20: three sources of one app (three environments sharing its budget),
/// each polling every budget tick, records up to `late_arrival -
/// settle_delay` late: demand is six times the budget, so windows grow,
/// and the deadline order must still starve no source and no pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_three_sources_of_one_app_each_polling_every_tick() {
    let envs: Vec<String> = ["production", "staging", "development"].iter().map(|e| e.to_string()).collect();
    let cfg = SimConfig {
        apps: vec![("demo-app".into(), envs)],
        late_fraction: 0.3,
        max_late: Duration::from_millis(3_700),
        ..sim(600, Behaviour::default())
    };
    let Some(w) = World::new(cfg, true).await else { return };
    let more = "  - app_id: demo-app\n    environment_id: staging\n    name: staging\n  - app_id: demo-app\n    environment_id: development\n    name: development\n";
    // Lookback 11 min: the whole history (10 min), however long the sidecar takes to start.
    let config = w
        .config_with_sources(
            "api_token: ${env:FORGE_API_TOKEN}",
            more,
            "  interval: 100ms\n  settle_delay: 300ms\n  late_arrival: 4s\n  initial_lookback: 11m",
            "",
            "",
        )
        .replace("  interval: 500ms\n  settle_delay: 500ms\n  late_arrival: 4s\n  initial_lookback: 31m\n", "");
    let started = std::time::Instant::now();
    let mut s = w.start(&config, &[]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let t = w.wait_all(Duration::from_secs(60)).await;
    let late = s.metric("forge_sidecar_records_found_late_total").await;
    let (_, status) = s.get("/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
    let needed = status["apps"][0]["calls_needed_per_minute"].as_f64().unwrap_or(0.0);
    let stretched = status["apps"][0]["effective_interval_seconds"].as_f64().unwrap_or(0.0);
    // Every source's second pass has read past the moment the sidecar started
    // (its target is now - late_arrival): it was not starved.
    let second_lag = status["apps"][0]["second_pass_lag_seconds"].as_f64().unwrap_or(f64::MAX);
    let second_past_start = second_lag < started.elapsed().as_secs_f64() - 4.0;
    let first_lag = status["apps"][0]["first_pass_lag_seconds"].as_f64().unwrap_or(0.0);
    let sources = ["production", "staging", "development"]
        .iter()
        .filter(|e| w.sim.requests().iter().any(|r| r.environment == **e && r.status == 200))
        .count();
    let max = w.max_calls();
    Row {
        pass: t.lost == 0
            && t.dups == 0
            && max <= 30
            && w.count_status(429) == 0
            && sources == 3
            && second_past_start
            && needed > 600.0
            && stretched > 0.1,
        note: format!(
            "3 environments of one app, interval 100 ms each; /status: {needed} calls/min needed of 600, interval stretched to {stretched:.2} s, passes {first_lag:.1} s and {second_lag:.1} s behind; {late} records found by the second pass"
        ),
        ..w.row("R20", "three sources of one app, each polling every budget tick, records up to 3.7 s late", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

/// T5: the host clock 2 minutes ahead of the API's, and an API that
/// refuses a future endDate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t5_host_clock_ahead_of_the_api() {
    let b = Behaviour { clock_offset_ms: -120_000, refuse_future_end: true, ..Behaviour::default() };
    let Some(w) = World::new(sim(1800, b), true).await else { return };
    let mut s = w.start(&w.default_config(), &[]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let t = w.wait_all(Duration::from_secs(60)).await;
    let skew = s.metric("forge_sidecar_clock_skew_seconds").await;
    Row {
        pass: t.lost == 0 && t.dups == 0 && skew <= -100.0,
        note: format!("API 120 s behind; skew shown {skew} s; {} × 400", w.count_status(400)),
        ..w.row("T5", "host clock 2 min ahead of the API's Date", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}
