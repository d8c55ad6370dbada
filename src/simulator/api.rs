//! HTTP side of the simulator: the API route and the `/_sim/` introspection routes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

use super::{Faults, SimState, lock};
use crate::config::{API_RETENTION, MAX_SITES_PER_QUERY, MAX_WINDOW};
use crate::fingerprint::hash_bytes;
use crate::simulator::data::Generator;
use crate::timefmt::{parse_millis, system_millis};

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

pub(super) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v1/app/logs/{app_id}", get(logs))
        .route("/_sim/records", get(records))
        .route("/_sim/requests", get(requests))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "code": status.as_u16(), "message": message.into() });
    (status, Json(body)).into_response()
}

async fn logs(
    State(st): State<Arc<SimState>>,
    Path(app_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (response, delay) = answer(&st, &app_id, query.as_deref().unwrap_or(""), &headers);
    st.record_request(&app_id, response.status().as_u16());
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    response
}

/// A uniform number in [0, 1) for this call and this kind of fault.
fn chance(st: &SimState, call: u64, kind: u64) -> f64 {
    let mut buf = [0u8; 24];
    buf[..8].copy_from_slice(&st.config.seed.to_le_bytes());
    buf[8..16].copy_from_slice(&call.to_le_bytes());
    buf[16..].copy_from_slice(&kind.to_le_bytes());
    (hash_bytes(&buf) >> 11) as f64 / (1u64 << 53) as f64
}

struct Params {
    environment_id: Option<String>,
    start: Option<String>,
    end: Option<String>,
    levels: Vec<String>,
    message: Option<String>,
    sites: Vec<String>,
    cursor: Option<String>,
}

fn parse_params(query: &str) -> Result<Params, String> {
    let mut p = Params {
        environment_id: None,
        start: None,
        end: None,
        levels: Vec::new(),
        message: None,
        sites: Vec::new(),
        cursor: None,
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "environmentId" => p.environment_id = Some(v),
            "startDate" => p.start = Some(v),
            "endDate" => p.end = Some(v),
            "level" => p.levels.push(v),
            "message" => p.message = Some(v),
            "installationContext" => p.sites.push(v),
            "cursor" => p.cursor = Some(v),
            other => return Err(format!("unknown query parameter `{other}`")),
        }
    }
    Ok(p)
}

fn answer(st: &SimState, app_id: &str, query: &str, headers: &HeaderMap) -> (Response, Option<Duration>) {
    let call = st.counter.fetch_add(1, Ordering::Relaxed);
    let faults = lock(&st.faults).clone();
    let delay =
        (faults.p_slow > 0.0 && chance(st, call, 1) < faults.p_slow).then(|| Duration::from_millis(faults.slow_ms));
    (answer_now(st, call, &faults, app_id, query, headers), delay)
}

fn answer_now(st: &SimState, call: u64, faults: &Faults, app_id: &str, query: &str, headers: &HeaderMap) -> Response {
    let expected = format!("Basic {}", STANDARD.encode(format!("{}:{}", st.config.email, st.config.token)));
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized: bad or missing credentials");
    }
    let params = match parse_params(query) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(envs) = st.config.apps.iter().find(|(a, _)| a == app_id).map(|(_, e)| e) else {
        return error(StatusCode::NOT_FOUND, format!("app {app_id} not found"));
    };
    let Some(env) = params.environment_id.as_deref() else {
        return error(StatusCode::BAD_REQUEST, "environmentId is required");
    };
    if !envs.iter().any(|e| e == env) {
        return error(StatusCode::NOT_FOUND, format!("environment {env} not found"));
    }
    if let Some(r) = rate_limit(st, app_id) {
        return r;
    }
    if faults.n_429 > 0 {
        let mut live = lock(&st.faults);
        if live.n_429 > 0 {
            live.n_429 -= 1;
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(faults.retry_after_secs));
            return r;
        }
    }
    if faults.n_400 > 0 {
        let mut live = lock(&st.faults);
        if live.n_400 > 0 {
            live.n_400 -= 1;
            return error(StatusCode::BAD_REQUEST, "startDate is out of range");
        }
    }
    if chance(st, call, 2) < faults.p_429_no_retry_after {
        return error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
    }
    if chance(st, call, 3) < faults.p_500 {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
    }
    if chance(st, call, 4) < faults.p_503 {
        return error(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
    }
    let page = match build_page(st, app_id, env, &params, faults) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if chance(st, call, 5) < faults.p_malformed || page.broken {
        return json_body("{\"appLogs\": [{\"timeUnixNano\": ,]".to_string());
    }
    if chance(st, call, 6) < faults.p_truncated {
        let cut = page.body.len() / 2;
        let cut = (0..=cut).rev().find(|i| page.body.is_char_boundary(*i)).unwrap_or(0);
        return json_body(page.body[..cut].to_string());
    }
    if chance(st, call, 7) < faults.p_html {
        return ([(header::CONTENT_TYPE, "text/html")], "<html><body>Down for maintenance</body></html>")
            .into_response();
    }
    json_body(page.body)
}

fn json_body(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn rate_limit(st: &SimState, app_id: &str) -> Option<Response> {
    let limit = st.config.rate_limit as usize;
    if limit == 0 {
        return None;
    }
    let window = st.config.rate_window;
    let now = tokio::time::Instant::now();
    let mut map = lock(&st.rate);
    let calls = map.entry(app_id.to_string()).or_default();
    while calls.front().is_some_and(|t| now.duration_since(*t) >= window) {
        calls.pop_front();
    }
    if calls.len() >= limit {
        let oldest = calls.front().copied().unwrap_or(now);
        let wait = (oldest + window).duration_since(now);
        let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Some(r);
    }
    calls.push_back(now);
    None
}

struct BuiltPage {
    body: String,
    broken: bool,
}

fn build_page(st: &SimState, app_id: &str, env: &str, p: &Params, faults: &Faults) -> Result<BuiltPage, String> {
    let start_text = p.start.as_deref().ok_or("startDate is required")?;
    let end_text = p.end.as_deref().ok_or("endDate is required")?;
    let start =
        parse_millis(start_text).ok_or_else(|| format!("startDate `{start_text}` is not yyyy-MM-ddTHH:mm:ss.SSSZ"))?;
    let end = parse_millis(end_text).ok_or_else(|| format!("endDate `{end_text}` is not yyyy-MM-ddTHH:mm:ss.SSSZ"))?;
    let now_ms = system_millis(SystemTime::now());
    if end < start {
        return Err("endDate is before startDate".into());
    }
    if end - start > MAX_WINDOW.as_millis() as i64 {
        return Err("the window between startDate and endDate is over 1 hour".into());
    }
    if start < now_ms - API_RETENTION.as_millis() as i64 {
        return Err("startDate is older than 14 days".into());
    }
    for level in &p.levels {
        if !LEVELS.contains(&level.as_str()) {
            return Err(format!("level `{level}` is not one of {}", LEVELS.join(", ")));
        }
    }
    if p.sites.len() > MAX_SITES_PER_QUERY {
        return Err(format!("at most {MAX_SITES_PER_QUERY} installationContext values"));
    }
    let mut levels = p.levels.clone();
    levels.sort();
    let mut sites = p.sites.clone();
    sites.sort();
    let qhash = hash_bytes(
        format!(
            "{app_id}|{env}|{start}|{end}|{}|{}|{}",
            levels.join(","),
            p.message.as_deref().unwrap_or(""),
            sites.join(",")
        )
        .as_bytes(),
    );
    let mut index = None;
    if let Some(c) = &p.cursor {
        index = Some(decode_cursor(c, qhash).ok_or("invalid cursor")?);
    }
    let stream =
        st.streams.iter().find(|s| s.app_id == app_id && s.environment_id == env).ok_or("unknown environment")?;
    let g = &st.generator;
    let (start_ns, end_ns) = (start * 1_000_000, end * 1_000_000);
    let now_ns = now_ms * 1_000_000;
    let mut i = index.unwrap_or_else(|| g.first_index_at(start_ns));
    let mut records = Vec::new();
    let mut next = None;
    while !g.past(i, end_ns) {
        let m = g.meta(stream, i);
        i += 1;
        let in_window = m.ts_ns >= start_ns && (m.ts_ns < end_ns || (st.config.inclusive_end && m.ts_ns == end_ns));
        if !in_window || m.visible_ns > now_ns {
            continue;
        }
        if !p.levels.is_empty() && !p.levels.iter().any(|l| l == Generator::level_name(m.level)) {
            continue;
        }
        if !p.sites.is_empty() && !g.site_of(&m).is_some_and(|s| p.sites.iter().any(|x| x == s)) {
            continue;
        }
        if m.ts_ns >= faults.silent_after_ms * 1_000_000 && faults.silent_sites.contains(&m.site) {
            continue;
        }
        let record = g.record(stream, &m);
        if let Some(text) = &p.message {
            let body = record.body.as_ref().and_then(|b| b.string_value.as_deref()).unwrap_or("");
            if !body.contains(text.as_str()) {
                continue;
            }
        }
        records.push(record);
        if records.len() >= st.config.page_size.max(1) {
            if !g.past(i, end_ns) {
                next = Some(encode_cursor(qhash, i));
            }
            break;
        }
    }
    if faults.cursor_loop {
        next = Some(p.cursor.clone().unwrap_or_else(|| encode_cursor(qhash, i)));
    }
    // The API's end of pages may be an absent, null or empty cursor: show all three.
    let cursor = match next {
        Some(c) => format!(",\"cursor\":{}", serde_json::Value::String(c)),
        None => ["", ",\"cursor\":null", ",\"cursor\":\"\""][(qhash % 3) as usize].to_string(),
    };
    let records = serde_json::to_string(&records).map_err(|e| e.to_string())?;
    let body = format!("{{\"appLogs\":{records}{cursor}}}");
    let broken = faults.broken_at_ms.is_some_and(|x| start <= x && x < end) && p.cursor.is_none();
    Ok(BuiltPage { body, broken })
}

fn encode_cursor(qhash: u64, index: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{qhash:016x}:{index}"))
}

fn decode_cursor(cursor: &str, qhash: u64) -> Option<u64> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (h, i) = text.split_once(':')?;
    (u64::from_str_radix(h, 16).ok()? == qhash).then_some(())?;
    i.parse().ok()
}

#[derive(Deserialize)]
struct RecordsQuery {
    before_ms: i64,
    /// Also list each record's timestamp and the time it became visible.
    #[serde(default)]
    detail: bool,
}

async fn records(State(st): State<Arc<SimState>>, Query(q): Query<RecordsQuery>) -> Response {
    if !q.detail {
        return Json(serde_json::json!({ "seqs": st.seqs_before(q.before_ms) })).into_response();
    }
    let mut out = Vec::new();
    for s in &st.streams {
        let mut i = 0;
        while !st.generator.past(i, q.before_ms * 1_000_000) {
            let m = st.generator.meta(s, i);
            if m.ts_ns < q.before_ms * 1_000_000 {
                out.push([m.seq as i64, m.ts_ns / 1_000_000, m.visible_ns / 1_000_000]);
            }
            i += 1;
        }
    }
    Json(serde_json::json!({ "records": out })).into_response()
}

async fn requests(State(st): State<Arc<SimState>>) -> Response {
    let log: Vec<_> = lock(&st.log).iter().cloned().collect();
    Json(log).into_response()
}

async fn get_faults(State(st): State<Arc<SimState>>) -> Response {
    Json(lock(&st.faults).clone()).into_response()
}

async fn put_faults(State(st): State<Arc<SimState>>, Json(f): Json<Faults>) -> Response {
    *lock(&st.faults) = f;
    StatusCode::NO_CONTENT.into_response()
}
