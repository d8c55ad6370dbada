//! TEST-PLAN scenarios on the API side (R*, T*, S1, H1, H2): the built
//! binary against the simulator, delivering through a real collector.
//! Each prints a `RELIABILITY|...` row for scripts/reliability.sh.

mod common;
mod harness;

use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use forge_otel_sidecar::simulator::{Faults, SimConfig};
use harness::*;

fn sim(history_s: u64) -> SimConfig {
    SimConfig { history: Duration::from_secs(history_s), ..common::fast_sim() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_429_with_retry_after_is_honoured() {
    let Some(w) = World::new(
        SimConfig { faults: Faults { n_429: 5, retry_after_secs: 2, ..Faults::default() }, ..sim(1800) },
        true,
    )
    .await
    else {
        return;
    };
    let mut s = w.start(&w.default_config(), &[]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    let log = w.sim.requests();
    // Every call after a 429 waits at least its Retry-After (2 s; whole seconds in the log's ms clock).
    let gaps: Vec<i64> = log.windows(2).filter(|p| p[0].status == 429).map(|p| p[1].at_ms - p[0].at_ms).collect();
    let min_gap = gaps.iter().copied().min().unwrap_or(0);
    let pass = t.lost == 0 && t.dups == 0 && gaps.len() == 5 && min_gap >= 1990;
    Row {
        pass,
        note: format!("shortest wait after a 429: {min_gap} ms"),
        ..w.row("R1", "429 with Retry-After (5 × 2 s)", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_429_without_retry_after_backs_off() {
    let Some(w) =
        World::new(SimConfig { faults: Faults { p_429_no_retry_after: 0.3, ..Faults::default() }, ..sim(1800) }, true)
            .await
    else {
        return;
    };
    let mut s = w.start(&w.default_config(), &[]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    let log = w.sim.requests();
    let gaps: Vec<i64> = log.windows(2).filter(|p| p[0].status == 429).map(|p| p[1].at_ms - p[0].at_ms).collect();
    let min_gap = gaps.iter().copied().min().unwrap_or(0);
    let pass = t.lost == 0 && t.dups == 0 && !gaps.is_empty() && min_gap >= 25;
    Row {
        pass,
        note: format!(
            "backoff after a 429: {min_gap}..{} ms (50 ms base, jitter, 500 ms cap)",
            gaps.iter().max().unwrap_or(&0)
        ),
        ..w.row("R2", "429 without Retry-After on 30 % of calls", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_t1_fourteen_day_backfill_paced_after_fifteen_days_off() {
    // 14 days of history at one record per 100 s; the budget compressed to 30 calls per 3 s.
    let cfg = SimConfig {
        history: Duration::from_secs(14 * 86_400),
        records_per_second: 0.01,
        page_size: 1000,
        ..common::fast_sim()
    };
    let Some(w) = World::new(cfg, true).await else { return };
    // The sidecar was last running 15 days ago: its checkpoint says so.
    let now = forge_otel_sidecar::timefmt::system_millis(SystemTime::now());
    let config = w.default_config();
    let parsed = forge_otel_sidecar::config::Config::from_yaml(&config, &|n| {
        (n == "FORGE_API_TOKEN").then(|| TOKEN.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let src = &parsed.sources[0];
    let store = forge_otel_sidecar::checkpoint::Store::new(&w.state_dir());
    let old = forge_otel_sidecar::checkpoint::Checkpoint::fresh(&src.name, &src.query_key(), now - 15 * 86_400_000);
    store.save(&old).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut s = w.start(&config, &[]);
    // Records in the first 10 minutes (the retention margin) plus a minute of slack are out of reach by design.
    let floor = now - 14 * 86_400_000 + 11 * 60_000;
    let expected = common::seqs_between(&w.sim, floor, common::settled_cutoff());
    let t = common::wait_for(&w.rx, expected, Duration::from_secs(120)).await;
    let took = started.elapsed();
    let done_ms = forge_otel_sidecar::timefmt::system_millis(SystemTime::now());
    let calls = w.sim.requests().iter().filter(|r| r.at_ms <= done_ms).count();
    let minimum = (14 * 24) as f64 - 1.0; // one call per hour window, at least
    let gap = s.metric("forge_sidecar_gap_seconds_total").await;
    let n400 = w.count_status(400);
    let max = w.max_calls();
    let pass3 = t.lost == 0 && t.dups == 0 && max <= 30 && w.count_status(429) == 0;
    Row {
        id: "R3",
        scenario: "backfill 14 days under the budget (30 per 3 s)",
        lost: Some(t.lost),
        dups: Some(t.dups),
        max_calls: Some(max),
        n429: Some(w.count_status(429)),
        recovery: Some(took),
        pass: pass3,
        note: format!(
            "{calls} calls for ≥ {minimum:.0} windows; {:.1} calls/s against 10/s allowed",
            calls as f64 / took.as_secs_f64()
        ),
    }
    .check();
    let pass1 = n400 == 0 && gap >= 86_400.0 && t.lost == 0;
    Row {
        id: "T1",
        scenario: "sidecar off for 15 days",
        lost: Some(t.lost),
        dups: Some(t.dups),
        max_calls: Some(max),
        n429: Some(w.count_status(429)),
        pass: pass1,
        note: format!("{n400} × 400; gap reported {gap:.0} s (≥ 1 day)"),
        ..Row::default()
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_h2_server_errors_and_timeouts_with_metrics_under_faults() {
    let faults =
        Faults { p_500: 0.07, p_503: 0.07, p_slow: 0.06, slow_ms: 2500, p_truncated: 0.03, ..Faults::default() };
    let Some(w) = World::new(SimConfig { faults, ..sim(1800) }, true).await else { return };
    let mut s = w.start(&w.default_config(), &[]);
    // H2: /metrics parses and counters never go down while faults fly.
    let mut last_received = 0.0;
    let mut monotonic = true;
    let mut parse_errors = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, text) = s.get("/metrics").await;
        if prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).is_err() {
            parse_errors += 1;
        }
        let r = s.metric("forge_sidecar_received_log_records_total").await;
        monotonic &= r >= last_received;
        last_received = r;
    }
    let t = w.wait_all(Duration::from_secs(60)).await;
    let errors = w.sim.requests().iter().filter(|r| r.status >= 500).count();
    let total = w.sim.requests().len();
    Row {
        pass: t.lost == 0 && t.dups == 0 && errors > 0,
        note: format!("{errors} × 5xx of {total} calls; connection resets not simulated"),
        ..w.row("R5", "500/503, 2.5 s stalls past the 2 s timeout, truncated bodies on 23 % of calls", &t)
    }
    .check();
    // Quiesce and check the identity exactly.
    w.sim.set_faults(Faults { p_503: 1.0, ..Faults::default() });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = |n: &'static str| s.metric(n);
    let gap = m("forge_sidecar_received_log_records_total").await
        - m("forge_sidecar_sent_log_records_total").await
        - m("forge_sidecar_rejected_log_records_total").await
        - m("forge_sidecar_dead_lettered_log_records_total").await
        - m("forge_sidecar_duplicate_log_records_total").await
        - m("forge_sidecar_in_flight_log_records").await;
    Row { id: "H2", scenario: "/metrics under faults", pass: parse_errors == 0 && monotonic && gap == 0.0, note: format!("{parse_errors} parse errors; counters monotonic: {monotonic}; received − (sent + rejected + dead-lettered + duplicates + in flight) = {gap}"), ..Row::default() }.check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_s1_h1_wrong_token_fixed_in_the_file_without_restart() {
    let Some(w) = World::new(sim(1800), true).await else { return };
    let token_file = w.dir.path().join("token");
    std::fs::write(&token_file, "wrong-token\n").unwrap_or_default();
    let config = w.config(&format!("api_token_file: {}", token_file.display()), "", "", "log:\n  level: trace\n");
    let mut s = w.start(&config, &[("RUST_LOG", "trace")]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (live, _) = s.get("/healthz").await;
    let (ready, reason) = s.get("/readyz").await;
    let (_, status) = s.get("/status").await;
    let calls_401 = w.count_status(401);
    let running = s.proc.is_running();
    // The token is fixed in the file; no restart.
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap_or_default();
    let fixed = Instant::now();
    let t = w.wait_all(Duration::from_secs(60)).await;
    let recovery = fixed.elapsed();
    let (ready_after, _) = s.get("/readyz").await;
    let pass = t.lost == 0
        && t.dups == 0
        && live == 200
        && ready == 503
        && reason.contains("credentials refused")
        && running
        && calls_401 <= 6;
    Row { recovery: Some(recovery), pass, note: format!("{calls_401} × 401 in 4 s (retry every 1 s); liveness {live}, readiness {ready} then {ready_after}; no restart"), ..w.row("R6", "wrong token, fixed later in the token file", &t) }.check();
    Row { id: "H1", scenario: "health under a bad token", pass: live == 200 && ready == 503 && ready_after == 200, note: format!("/healthz {live}, /readyz {ready} → {ready_after} after the fix; a stuck loop (liveness 503) is covered by the router tests"), ..Row::default() }.check();

    // S1: the token and base64(email:token) appear nowhere: trace logs, endpoints, state files.
    let (_, metrics) = s.get("/metrics").await;
    let (_, status_after) = s.get("/status").await;
    s.proc.terminate(Duration::from_secs(10));
    let mut haystack = vec![s.proc.text(), status, status_after, metrics, reason, config.clone()];
    for entry in std::fs::read_dir(w.state_dir()).into_iter().flatten().flatten() {
        haystack.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"));
    let hits: usize = haystack.iter().map(|h| h.matches(TOKEN).count() + h.matches(&basic).count()).sum();
    let lines: usize = haystack.iter().map(|h| h.lines().count()).sum();
    Row {
        id: "S1",
        scenario: "secrets never printed (trace level, 401s, endpoints, state files)",
        pass: hits == 0 && lines > 100,
        note: format!("{hits} hits in {lines} lines"),
        ..Row::default()
    }
    .check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r7_unknown_app_and_bad_windows() {
    let Some(w) = World::new(sim(1500), true).await else { return };
    let config = w.default_config().replace("app_id: demo-app", "app_id: no-such-app");
    // History shorter than the lookback: the second run (started later) still reaches all of it.
    w.sim.set_faults(Faults::default());
    let mut s = w.start(&config, &[]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let n404 = w.count_status(404);
    let (ready, reason) = s.get("/readyz").await;
    let (live, _) = s.get("/healthz").await;
    s.proc.terminate(Duration::from_secs(10));
    let pass404 = n404 <= 6 && ready == 503 && reason.contains("not found") && live == 200;
    // 400 answers for a window: re-planned with backoff, nothing lost.
    w.sim.set_faults(Faults { n_400: 3, ..Faults::default() });
    let mut s = w.start(&w.default_config(), &[]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    let n400 = w.count_status(400);
    Row {
        pass: pass404 && t.lost == 0 && t.dups == 0 && n400 == 3,
        note: format!(
            "{n404} × 404 in 4 s (retry every 1 s), readiness {ready}, liveness {live}; {n400} × 400 re-planned"
        ),
        ..w.row("R7", "unknown app (404); 400 for a window", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_broken_pages_and_cursor_loops() {
    let faults = Faults { p_malformed: 0.1, p_truncated: 0.05, p_html: 0.05, cursor_loop: true, ..Faults::default() };
    let Some(w) = World::new(SimConfig { faults, ..sim(1800) }, true).await else { return };
    let mut s = w.start(&w.default_config(), &[]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let loops = s.metric("forge_sidecar_cursor_loops_total").await;
    let alive = s.proc.is_running();
    w.sim.set_faults(Faults::default());
    let cleared = Instant::now();
    let t = w.wait_all(Duration::from_secs(60)).await;
    let pass = t.lost == 0 && t.dups == 0 && loops >= 1.0 && alive;
    Row { recovery: Some(cleared.elapsed()), pass, note: format!("{loops} cursor loops cut; a looping window is read again from its first page after a pause (3 times), then left to the second pass; absent, null and empty end cursors occur in every run"), ..w.row("R8", "malformed, truncated, HTML 200 pages; a cursor repeated forever", &t) }.check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r9_one_page_always_broken() {
    let x = forge_otel_sidecar::timefmt::system_millis(SystemTime::now()) - 15 * 60_000;
    let Some(w) =
        World::new(SimConfig { faults: Faults { broken_at_ms: Some(x), ..Faults::default() }, ..sim(1800) }, true)
            .await
    else {
        return;
    };
    let mut s = w.start(&w.config("api_token: ${env:FORGE_API_TOKEN}", "  max_page_attempts: 3", "", ""), &[]);
    let t = w.wait_all(Duration::from_secs(90)).await;
    let abandoned = s.metric("forge_sidecar_abandoned_pages_total").await;
    let gap = s.metric("forge_sidecar_gap_seconds_total").await;
    // Which records are missing: all within a second of the broken spot.
    let got: std::collections::HashSet<u64> = w.rx.seqs().into_iter().collect();
    let g = w.sim.generator();
    let st = &w.sim.streams()[0];
    let missing: Vec<i64> = w
        .sim
        .seqs_before(common::settled_cutoff())
        .into_iter()
        .filter(|q| !got.contains(q))
        .map(|q| g.meta(st, q & ((1 << 40) - 1)).ts_ns / 1_000_000 - x)
        .collect();
    let near = missing.iter().all(|d| d.abs() <= 1000);
    let pass = near && abandoned >= 1.0 && gap >= 1.0 && t.dups == 0 && missing.len() <= 4;
    Row { id: "R9", scenario: "one page always broken", lost: Some(t.lost), dups: Some(t.dups), max_calls: Some(w.max_calls()), n429: Some(w.count_status(429)), pass, note: format!("window halved down to 1 s around the bad spot; {} records missing (within ±1 s of it), {abandoned} pages abandoned, gap {gap} s counted", missing.len()), ..Row::default() }.check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t2_t3_late_and_edge_records() {
    for inclusive in [false, true] {
        let cfg = SimConfig {
            late_fraction: 0.5,
            max_late: Duration::from_secs(3),
            edge_fraction: 0.5,
            inclusive_end: inclusive,
            ..sim(1800)
        };
        let Some(w) = World::new(cfg, true).await else { return };
        let mut s = w.start(&w.default_config(), &[]);
        tokio::time::sleep(Duration::from_secs(8)).await;
        let t = w.wait_all(Duration::from_secs(60)).await;
        let dropped = s.metric("forge_sidecar_duplicate_log_records_total").await;
        let pass = t.lost == 0 && t.dups == 0;
        if inclusive {
            Row {
                pass,
                note: "50 % of records on minute edges; both modes".into(),
                ..w.row("T3", "records on window edges, endDate inclusive and exclusive", &t)
            }
            .check();
        } else {
            Row {
                pass,
                note: format!("50 % of records late; second pass dropped {dropped} already delivered"),
                ..w.row("T2", "records visible up to 3 s late (late_arrival 4 s; 10 min in production)", &t)
            }
            .check();
        }
        s.proc.terminate(Duration::from_secs(10));
    }
}

/// R18: 64-bit (16 hex) B3 trace ids arrive left-padded to 16 bytes; ids of
/// odd lengths are dropped from the record (which is still delivered) and
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_short_and_odd_trace_ids() {
    let behaviour = forge_otel_sidecar::simulator::behaviour::Behaviour {
        short_trace_ids_every: 7,
        odd_ids_every: 11,
        ..Default::default()
    };
    let Some(w) = World::new(SimConfig { behaviour, ..sim(1200) }, true).await else { return };
    let mut s = w.start(&w.default_config(), &[]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    let records = w.rx.records();
    let padded = records.iter().filter(|(_, r)| r.trace_id.len() == 16 && r.trace_id[..8] == [0; 8]).count();
    let dropped = records.iter().filter(|(_, r)| r.trace_id.is_empty() || r.span_id.is_empty()).count();
    let shapes_ok = records.iter().all(|(_, r)| matches!(r.trace_id.len(), 0 | 16) && matches!(r.span_id.len(), 0 | 8));
    let counted = s.metric("forge_sidecar_invalid_id_log_records_total").await;
    let n = records.len().max(1);
    // One record in 11 carries an odd id; some records carry no ids at all.
    let odd = n as f64 / 11.0;
    let pass = t.lost == 0
        && t.dups == 0
        && shapes_ok
        && padded * 10 >= n
        && counted >= 0.9 * odd
        && dropped as f64 >= counted;
    Row {
        pass,
        note: format!(
            "{n} records (1 in 7 with a 16-hex trace id, 1 in 11 with an odd id): {padded} padded to 32 hex, {counted} odd ids dropped and counted, all delivered; every id 16 or 8 bytes or absent: {shapes_ok}"
        ),
        ..w.row("R18", "16-hex (64-bit) trace ids; ids of odd lengths", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

/// R19: `Retry-After` values past any sane wait (18446744073709551615
/// seconds, then a date in the year 9999): no overflow and no panic, the
/// wait is the cap (`forge.max_retry_delay`, 2 s here), nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_huge_retry_after_waits_the_cap() {
    let faults = Faults { n_429: 2, retry_after_secs: u64::MAX, ..Faults::default() };
    let Some(w) = World::new(SimConfig { faults, ..sim(1800) }, true).await else { return };
    let config = w.default_config().replace("  rate_period: 3s\n", "  rate_period: 3s\n  max_retry_delay: 2s\n");
    assert!(config.contains("max_retry_delay: 2s"));
    let mut s = w.start(&config, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.sim.requests().iter().filter(|r| r.status == 200).count() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.sim.set_faults(Faults {
        n_429: 2,
        retry_after_text: Some("Fri, 31 Dec 9999 23:59:59 GMT".into()),
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = w.wait_all(Duration::from_secs(60)).await;
    let log = w.sim.requests();
    let gaps: Vec<i64> = log.windows(2).filter(|p| p[0].status == 429).map(|p| p[1].at_ms - p[0].at_ms).collect();
    let running = s.proc.is_running();
    let pass = running && t.lost == 0 && t.dups == 0 && gaps.len() == 4 && gaps.iter().all(|g| *g >= 1990);
    Row {
        pass,
        note: format!(
            "waits after Retry-After u64::MAX (×2) and a year-9999 date (×2): {gaps:?} ms (cap 2 s); running: {running}"
        ),
        ..w.row("R19", "Retry-After: 18446744073709551615 and a date in the year 9999", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}
