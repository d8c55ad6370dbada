//! The behaviour knobs over real HTTP on loopback: each test shows the knob
//! changing the answer against the same query with the knob off.

use std::collections::HashMap;

use super::tests::{AUTH, get, now_ms, page, seq_of, sim, window};
use super::*;
use crate::forge::model::LogRecord;
use crate::timefmt::parse_iso8601_millis;

fn quiet() -> SimConfig {
    SimConfig { late_fraction: 0.0, rate_limit: 0, ..SimConfig::default() }
}

/// Every page of a window, with the status of the first failing call (200 if none).
async fn read_all(h: &SimHandle, q: &[(&'static str, String)]) -> (Vec<LogRecord>, u16) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut q = q.to_vec();
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let c = get(h, "demo-app", &q, AUTH).await;
        if c.status != 200 {
            return (out, c.status);
        }
        let p = page(&c.body);
        out.extend(p.app_logs.iter().cloned());
        match p.next_cursor() {
            Some(n) => cursor = Some(n.to_string()),
            None => return (out, 200),
        }
    }
    panic!("more than 1000 pages");
}

/// Sends a JSON body; the answer's status (0 if the call failed).
async fn send_json(r: reqwest::RequestBuilder, v: serde_json::Value) -> u16 {
    let r = r.header(reqwest::header::CONTENT_TYPE, "application/json").body(v.to_string()).send().await;
    r.map(|r| r.status().as_u16()).unwrap_or(0)
}

async fn get_json<T: serde::de::DeserializeOwned + Default>(url: &str) -> T {
    match tests::client().get(url).send().await {
        Ok(r) => serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default(),
        Err(e) => panic!("{e}"),
    }
}

fn header<'a>(c: &'a tests::Call, name: &str) -> Option<&'a str> {
    c.headers.get(name).and_then(|v| v.to_str().ok())
}

fn ts_ms(r: &LogRecord) -> i64 {
    r.time_unix_nano.as_ref().and_then(|t| t.as_i64()).unwrap_or(0) / 1_000_000
}

async fn statuses(h: &SimHandle, app: &str, env: &str, n: usize) -> Vec<u16> {
    let now = now_ms();
    let mut q = window(now - 120_000, now - 60_000);
    q[0].1 = env.to_string();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(h, app, &q, AUTH).await.status);
    }
    out
}

#[tokio::test]
async fn environments_of_one_app_share_its_budget() {
    let cfg = SimConfig {
        apps: vec![
            ("demo-app".into(), vec!["production".into(), "staging".into()]),
            ("other-app".into(), vec!["production".into()]),
        ],
        rate_limit: 4,
        ..SimConfig::default()
    };
    let h = sim(cfg).await;
    assert_eq!(statuses(&h, "demo-app", "production", 2).await, [200, 200]);
    assert_eq!(statuses(&h, "demo-app", "staging", 3).await, [200, 200, 429]);
    assert_eq!(statuses(&h, "demo-app", "production", 1).await, [429]);
    // Another app has a budget of its own.
    assert_eq!(statuses(&h, "other-app", "production", 4).await, [200; 4]);
    let envs: Vec<String> = h.requests().iter().map(|r| r.environment.clone()).collect();
    assert_eq!(envs.iter().filter(|e| *e == "staging").count(), 3);
    h.stop().await;
}

#[tokio::test]
async fn another_client_spends_part_of_the_budget() {
    let budget = |other| SimConfig {
        rate_limit: 10,
        behaviour: Behaviour { other_client_calls: other, ..Behaviour::default() },
        ..SimConfig::default()
    };
    let ok = |v: Vec<u16>| v.iter().filter(|s| **s == 200).count();
    let h = sim(budget(0)).await;
    assert_eq!(ok(statuses(&h, "demo-app", "production", 12).await), 10);
    h.stop().await;
    // Set at start: 6 of the 10 calls of every window are the other client's.
    let h = sim(budget(6)).await;
    assert_eq!(ok(statuses(&h, "demo-app", "production", 12).await), 4);
    assert!(h.other_client_calls() >= 6);
    h.stop().await;
    // Set at run time.
    let h = sim(budget(0)).await;
    let patch = tests::client().patch(format!("{}/_sim/behaviour", h.base_url()));
    assert_eq!(send_json(patch, serde_json::json!({ "other_client_calls": 6 })).await, 204);
    assert_eq!(ok(statuses(&h, "demo-app", "production", 12).await), 4);
    h.stop().await;
}

#[tokio::test]
async fn rate_limit_answer_styles() {
    let h = sim(SimConfig { rate_limit: 2, ..SimConfig::default() }).await;
    assert_eq!(statuses(&h, "demo-app", "production", 2).await, [200, 200]);
    let now = now_ms();
    let q = window(now - 120_000, now - 60_000);
    let c = get(&h, "demo-app", &q, AUTH).await;
    assert_eq!((c.status, header(&c, "x-ratelimit-reset")), (429, None));
    assert!(c.retry_after.is_some(), "retry_after is the default style");

    h.set_behaviour(Behaviour { rate_limit_style: RateLimitStyle::XRatelimit, ..Behaviour::default() });
    let c = get(&h, "demo-app", &q, AUTH).await;
    assert_eq!(c.status, 429);
    assert_eq!(c.retry_after, None);
    assert_eq!(header(&c, "x-ratelimit-limit"), Some("2"));
    assert_eq!(header(&c, "x-ratelimit-remaining"), Some("0"));
    let reset = header(&c, "x-ratelimit-reset").and_then(parse_iso8601_millis).unwrap_or(0);
    let date = header(&c, "date").and_then(|d| httpdate::parse_http_date(d).ok()).map(system_millis).unwrap_or(0);
    // The first call's slot frees one window after it was made.
    assert!(reset > date && reset <= date + 61_000, "reset {reset}, date {date}");

    h.set_behaviour(Behaviour { rate_limit_style: RateLimitStyle::None, ..Behaviour::default() });
    let c = get(&h, "demo-app", &q, AUTH).await;
    assert_eq!(c.status, 429);
    assert_eq!((c.retry_after.as_deref(), header(&c, "x-ratelimit-reset")), (None, None));
    h.stop().await;
}

#[tokio::test]
async fn clock_offset_moves_the_apis_now() {
    let h = sim(SimConfig { page_size: 5000, ..quiet() }).await;
    let now = now_ms();
    let q = window(now - 600_000, now - 30_000);
    let (records, _) = read_all(&h, &q).await;
    assert!(records.iter().any(|r| ts_ms(r) > now - 100_000), "the host's clock shows the recent records");

    h.set_behaviour(Behaviour { clock_offset_ms: -120_000, ..Behaviour::default() });
    let (records, _) = read_all(&h, &q).await;
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| ts_ms(r) <= now_ms() - 120_000), "nothing the API's clock has not reached");
    let c = get(&h, "demo-app", &q, AUTH).await;
    let date = header(&c, "date").and_then(|d| httpdate::parse_http_date(d).ok()).map(system_millis).unwrap_or(0);
    assert!((date - (now_ms() - 120_000)).abs() < 5_000, "Date is the API's clock: {date}");
    let c = get(&h, "demo-app", &q, ("demo@example.com", "wrong")).await;
    assert!(header(&c, "date").is_some(), "every answer carries Date");

    // endDate after the API's now: refused only when the knob says so.
    assert_eq!(get(&h, "demo-app", &q, AUTH).await.status, 200);
    h.set_behaviour(Behaviour { clock_offset_ms: -120_000, refuse_future_end: true, ..Behaviour::default() });
    let c = get(&h, "demo-app", &q, AUTH).await;
    assert_eq!(c.status, 400);
    assert!(c.body.contains("endDate is in the future"), "{}", c.body);

    // An API a day ahead finds an old start older than 14 days.
    let old = now_ms() - 14 * 86_400_000 + 3_600_000;
    assert_eq!(get(&h, "demo-app", &window(old, old + 60_000), AUTH).await.status, 200);
    h.set_behaviour(Behaviour { clock_offset_ms: 86_400_000, ..Behaviour::default() });
    let c = get(&h, "demo-app", &window(old, old + 60_000), AUTH).await;
    assert!(c.status == 400 && c.body.contains("older than 14 days"), "{}", c.body);
    h.stop().await;
}

#[tokio::test]
async fn either_window_edge_can_move() {
    let h = sim(SimConfig { edge_fraction: 1.0, page_size: 1000, ..quiet() }).await;
    let end = (now_ms() - 600_000) / 60_000 * 60_000;
    let start = end - 60_000;
    for (start_exclusive, end_inclusive) in [(false, false), (true, false), (false, true), (true, true)] {
        h.set_behaviour(Behaviour { start_exclusive, end_inclusive, ..Behaviour::default() });
        let (records, _) = read_all(&h, &window(start, end)).await;
        let at = |ms| records.iter().filter(|r| ts_ms(r) == ms).count();
        assert_eq!(at(start), usize::from(!start_exclusive), "start_exclusive={start_exclusive}");
        assert_eq!(at(end), usize::from(end_inclusive), "end_inclusive={end_inclusive}");
    }
    h.stop().await;
}

fn counts(records: &[LogRecord]) -> HashMap<u64, usize> {
    let mut m = HashMap::new();
    for r in records {
        *m.entry(seq_of(r)).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn identical_twins_and_late_copies() {
    let h = sim(SimConfig { page_size: 37, ..quiet() }).await;
    let end = now_ms() - 1_000;
    let q = window(end - 120_000, end);
    let (plain, _) = read_all(&h, &q).await;
    assert!(counts(&plain).values().all(|n| *n == 1));

    let late_ms = 3_600_000;
    h.set_behaviour(Behaviour { twin_every: 5, twin_late_ms: late_ms, ..Behaviour::default() });
    let (twinned, _) = read_all(&h, &q).await;
    let c = counts(&twinned);
    let (mut on_time, mut late) = (0, 0);
    for r in &plain {
        let seq = seq_of(r);
        let index = seq & INDEX_MASK;
        let b = h.behaviour();
        let want = if b.copies(index) == 2 && b.twin_delay_ns(index) == 0 { 2 } else { 1 };
        assert_eq!(c.get(&seq), Some(&want), "seq {seq}");
        assert_eq!(h.copies_of(seq), b.copies(index) as usize);
        if b.copies(index) == 2 {
            if want == 2 { on_time += 1 } else { late += 1 }
        }
    }
    assert!(on_time > 10 && late > 10 && (on_time as i64 - late as i64).abs() <= 1, "{on_time} {late}");
    // Copies are identical, to the nanosecond and the sequence number.
    for r in &twinned {
        assert_eq!(twinned.iter().filter(|x| *x == r).count(), c[&seq_of(r)]);
    }
    // The oracle's view: one entry per copy, and a count per twinned seq.
    let before = SystemTime::UNIX_EPOCH + Duration::from_millis(end as u64);
    let all = h.seqs_before(before);
    let twins = all.len() - {
        let mut u = all.clone();
        u.dedup();
        u.len()
    };
    assert!(twins > 0 && twins * 5 >= all.len() / 2 - 5, "{twins} of {}", all.len());
    let url = format!("{}/_sim/records?before_ms={end}", h.base_url());
    let body: serde_json::Value = get_json(&url).await;
    assert_eq!(body["seqs"].as_array().map(Vec::len), Some(all.len()));
    assert_eq!(body["copies"].as_object().map(|m| m.len()), Some(twins));
    h.stop().await;
}

async fn order(h: &SimHandle, q: &[(&'static str, String)]) -> Vec<u64> {
    read_all(h, q).await.0.iter().map(seq_of).collect()
}

#[tokio::test]
async fn shuffled_pages() {
    let h = sim(SimConfig { page_size: 50, ..quiet() }).await;
    let end = now_ms() - 60_000;
    let q = window(end - 600_000, end);
    let sorted = order(&h, &q).await;
    assert!(sorted.len() > 1000 && sorted.is_sorted());

    h.set_behaviour(Behaviour { shuffle: true, ..Behaviour::default() });
    let shuffled = order(&h, &q).await;
    assert_ne!(shuffled, sorted);
    assert_eq!(order(&h, &q).await, shuffled, "deterministic");
    let mut same = shuffled.clone();
    same.sort();
    assert_eq!(same, sorted, "every record once");
    // Across pages too: the first page holds records from the window's last part.
    assert!(shuffled[..50].iter().any(|s| *s > sorted[sorted.len() * 9 / 10]));
    h.stop().await;
}

#[tokio::test]
async fn cursors_expire() {
    let h = sim(SimConfig { page_size: 10, ..quiet() }).await;
    let end = now_ms() - 60_000;
    let q = window(end - 600_000, end);
    let first = page(&get(&h, "demo-app", &q, AUTH).await.body).cursor.unwrap_or_default();
    let mut next = q.clone();
    next.push(("cursor", first));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&h, "demo-app", &next, AUTH).await.status, 200, "no expiry by default");
    h.set_behaviour(Behaviour { cursor_ttl_ms: 3_600_000, ..Behaviour::default() });
    assert_eq!(get(&h, "demo-app", &next, AUTH).await.status, 200, "still young");
    h.set_behaviour(Behaviour { cursor_ttl_ms: 10, ..Behaviour::default() });
    let c = get(&h, "demo-app", &next, AUTH).await;
    assert_eq!(c.status, 400);
    assert!(c.body.contains("cursor expired"), "{}", c.body);
    h.stop().await;
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn short_and_odd_trace_ids() {
    let h = sim(SimConfig { page_size: 1000, ..quiet() }).await;
    let end = now_ms() - 60_000;
    let q = window(end - 300_000, end);
    let (plain, _) = read_all(&h, &q).await;
    assert!(plain.iter().all(|r| r.trace_id.as_ref().is_none_or(|t| t.len() == 32)));

    let b = Behaviour { short_trace_ids_every: 4, odd_ids_every: 7, ..Behaviour::default() };
    h.set_behaviour(b.clone());
    let (shaped, _) = read_all(&h, &q).await;
    assert_eq!(shaped.len(), plain.len());
    let mut seen = HashMap::new();
    for (r, p) in shaped.iter().zip(&plain) {
        let shape = b.id_shape(seq_of(r) & INDEX_MASK);
        let (t, s) = (r.trace_id.as_deref().unwrap_or(""), r.span_id.as_deref().unwrap_or(""));
        let want = match shape {
            behaviour::IdShape::Normal => {
                (p.trace_id.as_deref().unwrap_or("").len(), p.span_id.as_deref().unwrap_or("").len())
            }
            behaviour::IdShape::Short => (16, 16),
            behaviour::IdShape::Odd20 => (20, 16),
            behaviour::IdShape::Odd31 => (31, 16),
            behaviour::IdShape::OddSpan => (32, 10),
        };
        assert_eq!((t.len(), s.len()), want, "{shape:?}");
        assert!(is_hex(t) && is_hex(s));
        // Otherwise the same record.
        let strip = |x: &LogRecord| LogRecord { trace_id: None, span_id: None, ..x.clone() };
        assert_eq!(strip(r), strip(p));
        *seen.entry(format!("{shape:?}")).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    h.stop().await;
}

#[tokio::test]
async fn behaviour_from_start_and_the_endpoint() {
    let start = Behaviour { twin_every: 3, shuffle: true, ..Behaviour::default() };
    let h = sim(SimConfig { behaviour: start.clone(), inclusive_end: true, ..SimConfig::default() }).await;
    let url = format!("{}/_sim/behaviour", h.base_url());
    let c = tests::client();
    let get_b = || get_json::<Behaviour>(&url);
    assert_eq!(get_b().await, Behaviour { end_inclusive: true, ..start.clone() });
    assert_eq!(send_json(c.patch(&url), serde_json::json!({"cursor_ttl_ms": 5})).await, 204);
    assert_eq!(get_b().await, Behaviour { end_inclusive: true, cursor_ttl_ms: 5, ..start.clone() });
    assert_eq!(send_json(c.patch(&url), serde_json::json!({"no_such_knob": 1})).await, 422);
    assert_eq!(send_json(c.put(&url), serde_json::json!({"rate_limit_style": "none"})).await, 204);
    assert_eq!(get_b().await, Behaviour { rate_limit_style: RateLimitStyle::None, ..Behaviour::default() });
    h.stop().await;
}

#[test]
fn command_line_flags() {
    use clap::{Args, FromArgMatches};
    let cmd = Behaviour::augment_args(clap::Command::new("simulate"));
    let args = [
        "simulate",
        "--other-client-calls",
        "18",
        "--rate-limit-style",
        "x_ratelimit",
        "--clock-offset-ms",
        "-120000",
        "--refuse-future-end",
        "--start-exclusive",
        "--inclusive-end",
        "--twin-every",
        "5",
        "--twin-late-ms",
        "30000",
        "--shuffle",
        "--cursor-ttl-ms",
        "60000",
        "--short-trace-ids-every",
        "4",
        "--odd-ids-every",
        "7",
        "--privacy-samples",
    ];
    let m = match cmd.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let b = match Behaviour::from_arg_matches(&m) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let want = Behaviour {
        other_client_calls: 18,
        rate_limit_style: RateLimitStyle::XRatelimit,
        clock_offset_ms: -120_000,
        refuse_future_end: true,
        start_exclusive: true,
        end_inclusive: true,
        twin_every: 5,
        twin_late_ms: 30_000,
        shuffle: true,
        cursor_ttl_ms: 60_000,
        short_trace_ids_every: 4,
        odd_ids_every: 7,
        privacy_samples: true,
    };
    assert_eq!(b, want);
}
