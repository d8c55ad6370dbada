//! HTTP side of the simulator: the API route and the `/_sim/` introspection
//! and knob routes.

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
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::behaviour::{Behaviour, RateLimitStyle, http_date, patch};
use super::page::{build_page, parse_params};
use super::{Faults, SimState, lock};
use crate::fingerprint::hash_bytes;
use crate::timefmt::{format_millis, system_millis};

pub(super) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v1/app/logs/{app_id}", get(logs))
        .route("/graphql", axum::routing::post(super::metrics::graphql))
        .route("/_sim/metrics/requests", get(super::metrics::requests))
        .route("/_sim/metrics/faults", get(super::metrics::get_faults).put(super::metrics::put_faults))
        .route("/_sim/records", get(records))
        .route("/_sim/requests", get(requests))
        .route("/_sim/faults", get(get_faults).put(put_faults).patch(patch_faults))
        .route("/_sim/behaviour", get(get_behaviour).put(put_behaviour).patch(patch_behaviour))
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
    let behaviour = lock(&st.behaviour).clone();
    let arrived_ms = system_millis(SystemTime::now());
    let api_now_ms = behaviour.api_ms(arrived_ms);
    let query = query.as_deref().unwrap_or("");
    let (mut response, delay) = answer(&st, &behaviour, api_now_ms, &app_id, query, &headers);
    let env = parse_params(query).ok().and_then(|p| p.environment_id).unwrap_or_default();
    st.record_request(arrived_ms, &app_id, &env, response.status().as_u16());
    // Every answer carries the API's own clock.
    if let Ok(v) = HeaderValue::from_str(&http_date(api_now_ms)) {
        response.headers_mut().insert(header::DATE, v);
    }
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

fn answer(
    st: &SimState,
    b: &Behaviour,
    api_now_ms: i64,
    app_id: &str,
    query: &str,
    headers: &HeaderMap,
) -> (Response, Option<Duration>) {
    let call = st.counter.fetch_add(1, Ordering::Relaxed);
    let faults = lock(&st.faults).clone();
    let delay =
        (faults.p_slow > 0.0 && chance(st, call, 1) < faults.p_slow).then(|| Duration::from_millis(faults.slow_ms));
    (answer_now(st, call, &faults, b, api_now_ms, app_id, query, headers), delay)
}

#[allow(clippy::too_many_arguments)]
fn answer_now(
    st: &SimState,
    call: u64,
    faults: &Faults,
    b: &Behaviour,
    api_now_ms: i64,
    app_id: &str,
    query: &str,
    headers: &HeaderMap,
) -> Response {
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
    if let Some(r) = rate_limit(st, b, api_now_ms, app_id) {
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
    let page = match build_page(st, app_id, env, &params, faults, b, api_now_ms) {
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

/// The per-app limit (all environments of an app share it); a 429 in the chosen style.
fn rate_limit(st: &SimState, b: &Behaviour, api_now_ms: i64, app_id: &str) -> Option<Response> {
    let limit = st.config.rate_limit as usize;
    if limit == 0 {
        return None;
    }
    let now = tokio::time::Instant::now();
    let wait = {
        let mut map = lock(&st.rate);
        let limiter = map.entry(app_id.to_string()).or_default();
        limiter.admit(now, limit, st.config.rate_window, b.other_client_calls).err()?
    };
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
    let h = r.headers_mut();
    match b.rate_limit_style {
        RateLimitStyle::RetryAfter => {
            let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        RateLimitStyle::XRatelimit => {
            let reset = api_now_ms.saturating_add(wait.as_millis().min(i64::MAX as u128) as i64);
            h.insert("x-ratelimit-limit", HeaderValue::from(limit as u64));
            h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
            if let Ok(v) = HeaderValue::from_str(&format_millis(reset)) {
                h.insert("x-ratelimit-reset", v);
            }
        }
        RateLimitStyle::None => {}
    }
    Some(r)
}

#[derive(Deserialize)]
struct RecordsQuery {
    before_ms: i64,
    /// Also list each copy's timestamp and the time it became visible.
    #[serde(default)]
    detail: bool,
}

/// One entry per copy the API holds (twins twice); `copies` maps every
/// twinned seq to its number of copies, so an oracle can expect both.
async fn records(State(st): State<Arc<SimState>>, Query(q): Query<RecordsQuery>) -> Response {
    let b = lock(&st.behaviour).clone();
    let before_ns = q.before_ms.saturating_mul(1_000_000);
    let mut seqs = Vec::new();
    let mut detail = Vec::new();
    let mut copies = serde_json::Map::new();
    for s in &st.streams {
        let mut i = 0;
        while !st.generator.past(i, before_ns) {
            let m = st.generator.meta(s, i);
            if m.ts_ns < before_ns {
                let n = b.copies(i);
                if n > 1 {
                    copies.insert(m.seq.to_string(), n.into());
                }
                for c in 0..n {
                    let visible = m.visible_ns + if c > 0 { b.twin_delay_ns(i) } else { 0 };
                    if q.detail {
                        detail.push([m.seq as i64, m.ts_ns / 1_000_000, visible / 1_000_000]);
                    } else {
                        seqs.push(m.seq);
                    }
                }
            }
            i += 1;
        }
    }
    let body = if q.detail {
        serde_json::json!({ "records": detail, "copies": copies })
    } else {
        serde_json::json!({ "seqs": seqs, "copies": copies })
    };
    Json(body).into_response()
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

async fn patch_faults(State(st): State<Arc<SimState>>, Json(v): Json<serde_json::Value>) -> Response {
    let mut live = lock(&st.faults);
    match patch(&*live, v) {
        Ok(f) => {
            *live = f;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn get_behaviour(State(st): State<Arc<SimState>>) -> Response {
    Json(lock(&st.behaviour).clone()).into_response()
}

async fn put_behaviour(State(st): State<Arc<SimState>>, Json(b): Json<Behaviour>) -> Response {
    *lock(&st.behaviour) = b;
    StatusCode::NO_CONTENT.into_response()
}

async fn patch_behaviour(State(st): State<Arc<SimState>>, Json(v): Json<serde_json::Value>) -> Response {
    let mut live = lock(&st.behaviour);
    match patch(&*live, v) {
        Ok(b) => {
            *live = b;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}
