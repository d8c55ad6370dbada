//! TEST-PLAN scenarios on the delivery side (E*): a collector that is
//! down, slow to accept, refusing, partially accepting, or smaller than a
//! page, or refusing part of a page with the dead-letter file full. E1 and
//! E5 use the real collector; E2 to E4 and E6 to E8 script the answers of
//! the in-process receiver (rotel cannot be told to fail).

mod common;
mod harness;

use std::time::{Duration, Instant};

use forge_otel_sidecar::simulator::SimConfig;
use forge_otel_sidecar::testkit::receiver::Failure;
use harness::*;

fn sim(history_s: u64) -> SimConfig {
    SimConfig { history: Duration::from_secs(history_s), ..common::fast_sim() }
}

fn watermark(w: &World) -> i64 {
    let cp: serde_json::Value = std::fs::read(forge_otel_sidecar::checkpoint::Store::new(&w.state_dir()).path("prod"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    cp["watermark_ms"].as_i64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_collector_down() {
    let Some(mut w) = World::new(sim(1500), true).await else { return };
    let mut s = w.start(&w.default_config(), &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (grpc, http) = match &w.collector {
        Some(c) => (c.grpc_port, c.http_port),
        None => return,
    };
    // The collector goes away (stopped, so it flushes what it acknowledged: a
    // collector killed outright loses its own unexported batch, which no
    // sender can see).
    if let Some(mut c) = w.collector.take() {
        c.proc.terminate(Duration::from_secs(10));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frozen = watermark(&w);
    let calls_before = w.sim.requests().len();
    let (ready_down, _) = s.get("/readyz").await;
    let (live_down, _) = s.get("/healthz").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = watermark(&w);
    let calls_during = w.sim.requests().len() - calls_before;
    // It comes back on the same address.
    let rotel = w.rotel.clone().unwrap_or_default();
    w.collector = Some(Collector::start_on(&rotel, Some(&w.rx), grpc, http));
    let back = Instant::now();
    let t = w.wait_all(Duration::from_secs(60)).await;
    // The request in flight when the collector died may have been forwarded but
    // not acknowledged: it is sent again (at least once), at most one page.
    let pass =
        t.lost == 0 && t.dups <= 200 && frozen == still && calls_during <= 2 && ready_down == 503 && live_down == 200;
    Row { recovery: Some(back.elapsed()), pass, note: format!("checkpoint frozen while down: {}; {calls_during} API calls while down; readiness {ready_down}, liveness {live_down}", frozen == still), ..w.row("E1", "collector down 8 s (10 min in the plan)", &t) }.check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_collector_asks_to_wait() {
    let Some(w) = World::new(sim(600), false).await else { return };
    // HTTP: 503 with Retry-After: 1, then 429 with Retry-After: 1.
    w.rx.fail_next([
        Failure::Http { status: 503, retry_after: Some(1) },
        Failure::Http { status: 429, retry_after: Some(1) },
    ]);
    let http = w.config("api_token: ${env:FORGE_API_TOKEN}", "", "", "").replace(
        &format!("  protocol: grpc\n  endpoint: {}", w.rx.grpc_endpoint()),
        &format!("  protocol: http/protobuf\n  endpoint: {}", w.rx.http_endpoint()),
    );
    let mut s = w.start(&http, &[]);
    let t1 = w.wait_all(Duration::from_secs(60)).await;
    let times = w.rx.request_times();
    let http_gaps: Vec<u128> = times.windows(2).take(2).map(|p| (p[1] - p[0]).as_millis()).collect();
    s.proc.terminate(Duration::from_secs(10));
    // gRPC: UNAVAILABLE, then RESOURCE_EXHAUSTED with RetryInfo of 1 s.
    let before = w.rx.request_times().len();
    w.rx.fail_next([
        Failure::Grpc { code: tonic::Code::Unavailable, retry_info: Some(Duration::from_secs(1)) },
        Failure::Grpc { code: tonic::Code::ResourceExhausted, retry_info: Some(Duration::from_secs(1)) },
    ]);
    w.sim.set_faults(Default::default());
    let mut s = w.start(&w.default_config(), &[]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let t2 = w.wait_all(Duration::from_secs(60)).await;
    let times = w.rx.request_times();
    let grpc_gaps: Vec<u128> = times[before..].windows(2).take(2).map(|p| (p[1] - p[0]).as_millis()).collect();
    let waited = http_gaps.iter().chain(&grpc_gaps).all(|g| *g >= 990);
    let pass = t1.lost == 0 && t2.lost == 0 && t2.dups == 0 && waited && http_gaps.len() == 2 && grpc_gaps.len() == 2;
    Row {
        id: "E2",
        scenario: "collector: 503 + Retry-After, 429, UNAVAILABLE and RESOURCE_EXHAUSTED with RetryInfo",
        lost: Some(t2.lost),
        dups: Some(t2.dups),
        max_calls: Some(w.max_calls()),
        n429: Some(w.count_status(429)),
        pass,
        note: format!("waits after each answer: HTTP {http_gaps:?} ms, gRPC {grpc_gaps:?} ms (server asked 1000)"),
        ..Row::default()
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_e4_permanent_rejections_and_partial_success() {
    let Some(w) = World::new(sim(600), false).await else { return };
    w.rx.fail_next([
        Failure::Http { status: 400, retry_after: None },
        Failure::Http { status: 413, retry_after: None },
        Failure::Http { status: 500, retry_after: None },
        Failure::Partial { rejected: 7 },
    ]);
    let http = w.config("api_token: ${env:FORGE_API_TOKEN}", "", "", "").replace(
        &format!("  protocol: grpc\n  endpoint: {}", w.rx.grpc_endpoint()),
        &format!("  protocol: http/protobuf\n  endpoint: {}", w.rx.http_endpoint()),
    );
    let mut s = w.start(&http, &[]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let expected = w.sim.seqs_before(common::settled_cutoff());
    let t = common::wait_for(&w.rx, expected.clone(), Duration::from_secs(5)).await;
    let dead = s.metric("forge_sidecar_dead_lettered_log_records_total").await as usize;
    let rejected = s.metric("forge_sidecar_rejected_log_records_total").await as usize;
    let requests = w.rx.requests();
    // Every missing record is in the dead-letter file, and nothing else is.
    let text = std::fs::read_to_string(w.state_dir().join("dead-letter.jsonl")).unwrap_or_default();
    let mut lettered = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let req: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest =
            serde_json::from_value(v["request"].clone()).unwrap_or_default();
        for rl in &req.resource_logs {
            for sl in &rl.scope_logs {
                lettered.extend(sl.log_records.iter().filter_map(forge_otel_sidecar::testkit::receiver::seq_of));
            }
        }
    }
    let got: std::collections::HashSet<u64> = w.rx.seqs().into_iter().collect();
    let missing: std::collections::HashSet<u64> = expected.iter().copied().filter(|q| !got.contains(q)).collect();
    let lettered_set: std::collections::HashSet<u64> = lettered.iter().copied().collect();
    let pass3 = dead == t.lost && dead > 0 && missing == lettered_set && text.lines().count() == 3;
    Row {
        pass: pass3,
        note: format!(
            "dead-lettered {dead} == missing {}; 3 requests, no retries ({requests} requests in all)",
            t.lost
        ),
        ..w.row("E3", "collector answers 400, 413, 500 (permanent)", &t)
    }
    .check();
    let pass4 = rejected == 7;
    Row {
        id: "E4",
        scenario: "partial success (7 rejected)",
        lost: Some(t.lost - dead),
        dups: Some(t.dups),
        pass: pass4,
        note: format!("forge_sidecar_rejected_log_records_total = {rejected}; not retried"),
        ..Row::default()
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e5_requests_split_below_the_collector_limit() {
    // 20 KB records, 500 per page: 10 MB pages against rotel's 4 MiB gRPC limit.
    let cfg = SimConfig { pad_bytes: 20_000, page_size: 500, records_per_second: 2.0, ..sim(600) };
    let Some(w) = World::new(cfg, true).await else { return };
    let mut s = w.start(&w.config("api_token: ${env:FORGE_API_TOKEN}", "", "  max_request_bytes: 4MiB", ""), &[]);
    let t = w.wait_all(Duration::from_secs(90)).await;
    let dead = s.metric("forge_sidecar_dead_lettered_log_records_total").await;
    let pass = t.lost == 0 && t.dups == 0 && dead == 0.0;
    Row {
        pass,
        note: format!("{} records of 20 KB through rotel; requests split below 4 MiB", t.received),
        ..w.row("E5", "10 MB pages, collector limit 4 MiB", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e6_e7_redirects_and_html_answers_acknowledge_nothing() {
    let Some(w) = World::new(sim(600), false).await else { return };
    let http = w.config("api_token: ${env:FORGE_API_TOKEN}", "", "", "").replace(
        &format!("  protocol: grpc\n  endpoint: {}", w.rx.grpc_endpoint()),
        &format!("  protocol: http/protobuf\n  endpoint: {}", w.rx.http_endpoint()),
    );
    // E6: a load balancer redirects every request to a page answering 200
    // for the first 3 s (30 s in the field), then lets them through.
    w.rx.fail_for(Duration::from_secs(3), Failure::Redirect);
    let mut s = w.start(&http, &[]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    let refused = w.rx.requests() as usize;
    let landed = w.rx.landing_hits();
    let retries = s.metric("forge_sidecar_export_retries_total").await;
    let dead = s.metric("forge_sidecar_dead_lettered_log_records_total").await;
    let pass = t.lost == 0 && t.dups == 0 && landed == 0 && retries >= 1.0 && dead == 0.0;
    Row {
        pass,
        note: format!(
            "{} records; {refused} requests, {retries} retried while redirected; {landed} followed to the 200 page",
            t.received
        ),
        ..w.row("E6", "collector endpoint redirects (302 to a 200 page) for its first 3 s", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
    // E7: the next answers are 200 with an HTML page.
    let before = w.rx.requests();
    w.rx.fail_next([Failure::Html, Failure::Html, Failure::Html]);
    let mut s = w.start(&http, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = w.wait_all(Duration::from_secs(60)).await;
    let retries = s.metric("forge_sidecar_export_retries_total").await;
    let pass = t.lost == 0 && retries >= 3.0 && w.rx.requests() - before >= 4;
    Row {
        pass,
        note: format!("{} records; {retries} retries after HTML answers", t.received),
        ..w.row("E7", "collector answers 200 with an HTML body (3 times)", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e8_a_page_half_delivered_then_stuck_is_not_sent_twice() {
    // Requests of at most 1 KiB: every page takes many. The collector takes
    // the first and refuses the second for good; the dead-letter file is
    // full, so the page cannot be completed and is fetched again later
    // (poll.config_error_retry) with the same cursor.
    let Some(w) = World::new(sim(600), false).await else { return };
    w.rx.fail_next([Failure::Partial { rejected: 0 }, Failure::Http { status: 400, retry_after: None }]);
    let state = w.state_dir();
    let config = w.config("api_token: ${env:FORGE_API_TOKEN}", "", "  max_request_bytes: 1KiB", "").replace(
        &format!("state:\n  dir: {}\n", state.display()),
        &format!("state:\n  dir: {}\n  dead_letter_max_size: 1000\n", state.display()),
    );
    assert!(config.contains("dead_letter_max_size: 1000"), "{config}");
    let mut s = w.start(&config, &[]);
    let t = w.wait_all(Duration::from_secs(90)).await;
    let log = s.proc.text();
    let stuck = log.matches("cannot move past this page").count();
    let full = log.contains("is full");
    let accepted = w.rx.request_sizes().len();
    let dead = s.metric("forge_sidecar_dead_lettered_log_records_total").await;
    let lettered = std::fs::metadata(state.join("dead-letter.jsonl")).map(|m| m.len()).unwrap_or(0);
    let pass = t.lost == 0 && t.dups == 0 && stuck >= 1 && full && dead == 0.0 && lettered == 0 && accepted >= 3;
    Row {
        pass,
        note: format!(
            "{} records in {accepted} accepted requests of ≤ 1 KiB; the page's 2nd request refused (400) with the \
             dead-letter file full: stuck {stuck}×, page fetched again, its accepted 1st request not resent",
            t.received
        ),
        ..w.row("E8", "a page's 2nd request refused for good, dead-letter file full", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}
