//! The simulator against its documented rules, over real HTTP on loopback.

use super::*;
use crate::timefmt::format_millis;

pub(super) async fn sim(config: SimConfig) -> SimHandle {
    match start(config, "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!())).await {
        Ok(h) => h,
        Err(e) => panic!("simulator did not start: {e}"),
    }
}

pub(super) fn client() -> reqwest::Client {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default()
}

pub(super) struct Call {
    pub status: u16,
    pub retry_after: Option<String>,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

pub(super) async fn get(h: &SimHandle, app: &str, query: &[(&str, String)], auth: (&str, &str)) -> Call {
    let url = format!("{}/v1/app/logs/{app}", h.base_url());
    let r = client().get(url).query(query).basic_auth(auth.0, Some(auth.1)).send().await;
    let r = match r {
        Ok(r) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = r.status().as_u16();
    let header = |n| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let retry_after = header(reqwest::header::RETRY_AFTER);
    let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
    let headers = r.headers().clone();
    Call { status, retry_after, content_type, headers, body: r.text().await.unwrap_or_default() }
}

pub(super) const AUTH: (&str, &str) = ("demo@example.com", "demo-token");

pub(super) fn window(start_ms: i64, end_ms: i64) -> Vec<(&'static str, String)> {
    vec![
        ("environmentId", "production".to_string()),
        ("startDate", format_millis(start_ms)),
        ("endDate", format_millis(end_ms)),
    ]
}

pub(super) fn now_ms() -> i64 {
    system_millis(SystemTime::now())
}

pub(super) fn page(body: &str) -> crate::forge::model::Page {
    match serde_json::from_str(body) {
        Ok(p) => p,
        Err(e) => panic!("not a page ({e}): {body:.200}"),
    }
}

pub(super) fn seq_of(r: &crate::forge::model::LogRecord) -> u64 {
    r.attributes
        .iter()
        .find(|kv| kv.key == "sim.seq")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.int_value.as_ref())
        .and_then(|n| n.as_u64())
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn status_codes_follow_the_documented_rules() {
    let h = sim(SimConfig::default()).await;
    let now = now_ms();
    let ok = window(now - 600_000, now - 60_000);
    assert_eq!(get(&h, "demo-app", &ok, AUTH).await.status, 200);
    assert_eq!(get(&h, "demo-app", &ok, ("demo@example.com", "wrong")).await.status, 401);
    assert_eq!(get(&h, "other-app", &ok, AUTH).await.status, 404);
    let mut env = ok.clone();
    env[0].1 = "staging".into();
    assert_eq!(get(&h, "demo-app", &env, AUTH).await.status, 404);
    assert_eq!(get(&h, "demo-app", &ok[1..], AUTH).await.status, 400, "missing environmentId");

    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            {
                let mut q = ok.clone();
                q[1].1 = "2024-02-13T10:50:44Z".into();
                q
            },
            "is not yyyy-MM-dd",
        ),
        (window(now - 60_000, now - 120_000), "before startDate"),
        (window(now - 3_600_001 - 60_000, now - 60_000), "over 1 hour"),
        (window(now - 15 * 86_400_000, now - 15 * 86_400_000 + 60_000), "older than 14 days"),
        (
            {
                let mut q = ok.clone();
                q.push(("level", "LOUD".into()));
                q
            },
            "level `LOUD`",
        ),
        (
            {
                let mut q = ok.clone();
                for i in 0..51 {
                    q.push(("installationContext", format!("ari:cloud:jira::site/{i}")));
                }
                q
            },
            "at most 50",
        ),
        (
            {
                let mut q = ok.clone();
                q.push(("cursor", "garbage!".into()));
                q
            },
            "invalid cursor",
        ),
    ];
    for (q, want) in cases {
        let c = get(&h, "demo-app", &q, AUTH).await;
        assert_eq!(c.status, 400, "{want}: {}", c.body);
        assert!(c.body.contains(want), "{want}: {}", c.body);
        assert!(c.content_type.starts_with("application/json"));
    }
    // An hour exactly is allowed.
    assert_eq!(get(&h, "demo-app", &window(now - 3_660_000, now - 60_000), AUTH).await.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn pagination_reaches_every_record_once_and_cursors_are_bound() {
    let cfg =
        SimConfig { page_size: 50, late_fraction: 0.0, records_per_second: 1.0, rate_limit: 0, ..SimConfig::default() };
    let h = sim(cfg).await;
    let end = now_ms() - 60_000;
    let start = end - 3_600_000;
    let expected: Vec<u64> = h
        .seqs_before(SystemTime::UNIX_EPOCH + Duration::from_millis(end as u64))
        .into_iter()
        .filter(|s| {
            let m = h.generator().meta(&h.streams()[0], *s & ((1 << 40) - 1));
            m.ts_ns >= start * 1_000_000
        })
        .collect();
    assert!(expected.len() > 3000, "{}", expected.len());
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = window(start, end);
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let c = get(&h, "demo-app", &q, AUTH).await;
        assert_eq!(c.status, 200, "{}", c.body);
        let p = page(&c.body);
        got.extend(p.app_logs.iter().map(seq_of));
        pages += 1;
        match p.next_cursor() {
            Some(next) => {
                if pages == 1 {
                    // The same cursor with another query is refused.
                    let mut other = window(start, end - 1000);
                    other.push(("cursor", next.to_string()));
                    assert_eq!(get(&h, "demo-app", &other, AUTH).await.status, 400);
                }
                cursor = Some(next.to_string());
            }
            None => break,
        }
        assert!(pages < 1000);
    }
    assert!(pages > 60, "{pages}");
    assert_eq!(got, expected, "every record once, in order");
    h.stop().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let cfg = SimConfig { rate_limit: 3, rate_window: Duration::from_secs(2), ..SimConfig::default() };
    let h = sim(cfg).await;
    let now = now_ms();
    let q = window(now - 120_000, now - 60_000);
    for _ in 0..3 {
        assert_eq!(get(&h, "demo-app", &q, AUTH).await.status, 200);
    }
    let c = get(&h, "demo-app", &q, AUTH).await;
    assert_eq!(c.status, 429);
    let secs: u64 = c.retry_after.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!((1..=2).contains(&secs), "{:?}", c.retry_after);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    assert_eq!(get(&h, "demo-app", &q, AUTH).await.status, 200);
    let log = h.requests();
    assert_eq!(log.iter().filter(|r| r.status == 429).count(), 1);
    assert_eq!(max_calls_in_window(&log, "demo-app", Duration::from_secs(60)), 5);
    h.stop().await;
}

#[tokio::test]
async fn late_records_appear_only_after_their_delay() {
    let cfg = SimConfig { late_fraction: 1.0, max_late: Duration::from_secs(3600), ..SimConfig::default() };
    let h = sim(cfg).await;
    let end = now_ms();
    let start = end - 1_800_000;
    let c = get(&h, "demo-app", &window(start, end), AUTH).await;
    let p = page(&c.body);
    let now_ns = now_ms() * 1_000_000;
    let st = &h.streams()[0];
    let mut hidden = 0;
    let mut i = h.generator().first_index_at(start * 1_000_000);
    while !h.generator().past(i, end * 1_000_000) {
        let m = h.generator().meta(st, i);
        if m.ts_ns >= start * 1_000_000 && m.ts_ns < end * 1_000_000 && m.visible_ns > now_ns {
            hidden += 1;
            assert!(!p.app_logs.iter().any(|r| seq_of(r) == m.seq), "record {} shown early", m.seq);
        }
        i += 1;
    }
    assert!(hidden > 0);
    h.stop().await;
}

#[tokio::test]
async fn edge_records_follow_the_end_date_mode() {
    for inclusive in [false, true] {
        let cfg = SimConfig {
            edge_fraction: 1.0,
            late_fraction: 0.0,
            inclusive_end: inclusive,
            page_size: 1000,
            ..SimConfig::default()
        };
        let h = sim(cfg).await;
        let end = (now_ms() - 600_000) / 60_000 * 60_000;
        let c = get(&h, "demo-app", &window(end - 60_000, end), AUTH).await;
        let p = page(&c.body);
        let at_end = p
            .app_logs
            .iter()
            .filter(|r| r.time_unix_nano.as_ref().and_then(|t| t.as_i64()) == Some(end * 1_000_000))
            .count();
        let at_start = p
            .app_logs
            .iter()
            .filter(|r| r.time_unix_nano.as_ref().and_then(|t| t.as_i64()) == Some((end - 60_000) * 1_000_000))
            .count();
        assert_eq!(at_start, 1, "a record sits on the start edge");
        assert_eq!(at_end, usize::from(inclusive), "inclusive={inclusive}");
        h.stop().await;
    }
}

#[tokio::test]
async fn fault_knobs() {
    let h = sim(SimConfig::default()).await;
    let now = now_ms();
    let q = window(now - 3_000_000, now - 60_000);
    let set = |f: Faults| h.set_faults(f);

    set(Faults { p_500: 1.0, ..Faults::default() });
    assert_eq!(get(&h, "demo-app", &q, AUTH).await.status, 500);
    set(Faults { p_503: 1.0, ..Faults::default() });
    assert_eq!(get(&h, "demo-app", &q, AUTH).await.status, 503);
    set(Faults { p_429_no_retry_after: 1.0, ..Faults::default() });
    let c = get(&h, "demo-app", &q, AUTH).await;
    assert_eq!((c.status, c.retry_after), (429, None));
    set(Faults { n_429: 2, retry_after_secs: 7, ..Faults::default() });
    for _ in 0..2 {
        let c = get(&h, "demo-app", &q, AUTH).await;
        assert_eq!((c.status, c.retry_after.as_deref()), (429, Some("7")));
    }
    assert_eq!(get(&h, "demo-app", &q, AUTH).await.status, 200);
    for f in [
        Faults { p_malformed: 1.0, ..Faults::default() },
        Faults { p_truncated: 1.0, ..Faults::default() },
        Faults { p_html: 1.0, ..Faults::default() },
        Faults { broken_at_ms: Some(now - 2_000_000), ..Faults::default() },
    ] {
        set(f.clone());
        let c = get(&h, "demo-app", &q, AUTH).await;
        assert_eq!(c.status, 200);
        assert!(serde_json::from_str::<crate::forge::model::Page>(&c.body).is_err(), "{f:?} gave a valid page");
    }
    set(Faults { cursor_loop: true, ..Faults::default() });
    let first = page(&get(&h, "demo-app", &q, AUTH).await.body).cursor.unwrap_or_default();
    let mut q2 = q.clone();
    q2.push(("cursor", first.clone()));
    assert_eq!(page(&get(&h, "demo-app", &q2, AUTH).await.body).cursor, Some(first));

    set(Faults { p_slow: 1.0, slow_ms: 3000, ..Faults::default() });
    let url = format!("{}/v1/app/logs/demo-app", h.base_url());
    let r =
        client().get(url).query(&q).basic_auth(AUTH.0, Some(AUTH.1)).timeout(Duration::from_millis(300)).send().await;
    assert!(r.is_err_and(|e| e.is_timeout()), "a slow answer outlasts the client's timeout");
    h.stop().await;
}

#[tokio::test]
async fn fourteen_days_of_history_cost_no_memory_up_front() {
    let cfg = SimConfig { history: Duration::from_secs(14 * 86_400), records_per_second: 1.0, ..SimConfig::default() };
    let h = sim(cfg).await;
    let now = now_ms();
    let old = now - 14 * 86_400_000 + 3_600_000;
    let c = get(&h, "demo-app", &window(old, old + 3_600_000), AUTH).await;
    assert_eq!(c.status, 200);
    assert_eq!(page(&c.body).app_logs.len(), 100);
    h.stop().await;
}
