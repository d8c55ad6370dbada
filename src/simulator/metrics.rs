//! The App metrics API's GraphQL endpoint, `POST /graphql`, faithful to
//! forge-api.md: Basic auth (401), the `X-ExperimentalApi` header (an
//! `errors` array without it), the query's shape, `QueryError`s inside a
//! 200 for a window over 15 minutes or older than 14 days and (statusCode
//! 404) for an unknown app or environment, 5 calls per `rate_window` per
//! user across all apps (HTTP 429 with `Retry-After`), and a fault knob for
//! a 200 with a top-level `errors` array. The data is [`metrics_data`]'s.
//!
//! [`metrics_data`]: super::metrics_data

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::limiter::Limiter;
use super::metrics_data::{MetricsGen, SimPoint, resource_metrics};
use super::{SimState, lock};
use crate::forge::metrics_client::{APP_ARI_PREFIX, MAX_WINDOW, METRIC_NAMES};
use crate::timefmt::{parse_iso8601_millis, system_millis};

const RETENTION_MS: i64 = 14 * 86_400_000;
const REQUEST_LOG_CAP: usize = 100_000;

/// The metrics endpoint's settings, beside [`super::SimConfig`].
#[derive(Debug, Clone)]
pub struct MetricsSimConfig {
    /// Calls per user in any `rate_window` (the API's 5 per minute); 0 switches it off.
    pub calls_per_window: u32,
    /// How long after a minute ends its points may still change.
    pub lag: Duration,
    /// Share of a recent minute's points that appear only after `lag`.
    pub late_fraction: f64,
    /// More accounts (email, token) besides the simulator's own.
    pub extra_users: Vec<(String, String)>,
    /// The span of one data point: the API's minute (tests compress it).
    pub step: Duration,
    /// Select a query's points by their start time instead of their end
    /// (the documentation does not say which the API does).
    pub select_by_start: bool,
}

impl Default for MetricsSimConfig {
    fn default() -> Self {
        Self {
            calls_per_window: 5,
            lag: Duration::from_secs(120),
            late_fraction: 0.1,
            extra_users: Vec::new(),
            step: Duration::from_secs(60),
            select_by_start: false,
        }
    }
}

/// Fault knobs of the metrics endpoint (`PUT /_sim/metrics/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsFaults {
    /// Answer the next `n_errors` calls with a 200 carrying only a top-level `errors` array.
    pub n_errors: u32,
    /// Answer the next `n_query_500` calls with a `QueryError` of statusCode 500.
    pub n_query_500: u32,
}

/// One metrics call as the simulator saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsRequest {
    pub at_ms: i64,
    pub email: String,
    pub app: String,
    pub environments: Vec<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// HTTP status, or for an error inside a 200 its statusCode.
    pub status: u16,
    /// Data points answered.
    pub points: usize,
}

/// The endpoint's state inside [`SimState`].
pub(crate) struct MetricsState {
    pub config: MetricsSimConfig,
    pub generator: MetricsGen,
    pub faults: Mutex<MetricsFaults>,
    rate: Mutex<HashMap<String, Limiter>>,
    pub log: Mutex<VecDeque<MetricsRequest>>,
}

impl MetricsState {
    pub fn new(config: MetricsSimConfig, seed: u64, t0_ns: i64) -> Self {
        let step_ms = (config.step.as_millis().min(86_400_000) as i64).max(1);
        let t0_ms = (t0_ns / 1_000_000).div_euclid(step_ms) * step_ms + step_ms;
        let generator = MetricsGen {
            seed: seed ^ 0x006d_6574_7269_6373,
            t0_ms,
            lag_ms: config.lag.as_millis().min(i64::MAX as u128) as i64,
            late_permille: (config.late_fraction.clamp(0.0, 1.0) * 1000.0) as u64,
            step_ms,
        };
        Self {
            config,
            generator,
            faults: Mutex::new(MetricsFaults::default()),
            rate: Mutex::new(HashMap::new()),
            log: Mutex::new(VecDeque::new()),
        }
    }
}

/// Every final data point of every app, environment and metric whose end
/// is before `before_ms` (what a complete delivery must hold).
pub(crate) fn all_points(st: &SimState, before_ms: i64) -> Vec<SimPoint> {
    let g = &st.metrics.generator;
    let mut out = Vec::new();
    for (app, envs) in &st.config.apps {
        for env in envs {
            for m in METRIC_NAMES {
                out.extend(g.points(app, env, m, i64::MIN / 2, before_ms, i64::MAX / 2));
            }
        }
    }
    out
}

fn gql_errors(message: &str, status: u16, error_type: &str) -> Value {
    json!({ "data": null, "errors": [{ "message": message,
        "extensions": { "statusCode": status, "errorType": error_type, "classification": error_type } }] })
}

fn query_error(message: &str, status: u16, error_type: &str) -> Value {
    json!({ "data": { "ecosystem": { "forgeMetrics": { "appMetrics": {
        "message": message, "identifier": format!("{error_type}-{status}"),
        "extensions": { "statusCode": status, "errorType": error_type } } } } } })
}

/// What one call was about, for the request log.
#[derive(Default)]
struct Call {
    email: String,
    app: String,
    environments: Vec<String>,
    start_ms: i64,
    end_ms: i64,
    status: u16,
    points: usize,
}

pub(super) async fn graphql(State(st): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    // The call's arrival, as the rate limit counts it (an answer can take a while to compute).
    let at_ms = system_millis(SystemTime::now());
    let mut call = Call::default();
    let response = answer(&st, &headers, &body, &mut call);
    let mut log = lock(&st.metrics.log);
    if log.len() >= REQUEST_LOG_CAP {
        log.pop_front();
    }
    log.push_back(MetricsRequest {
        at_ms,
        email: call.email,
        app: call.app,
        environments: call.environments,
        start_ms: call.start_ms,
        end_ms: call.end_ms,
        status: call.status,
        points: call.points,
    });
    response
}

fn ok(call: &mut Call, status: u16, body: Value) -> Response {
    call.status = status;
    (StatusCode::OK, Json(body)).into_response()
}

fn http(call: &mut Call, status: StatusCode, body: Value) -> Response {
    call.status = status.as_u16();
    (status, Json(body)).into_response()
}

/// The authenticated account's email, if the Basic credentials match one.
fn authenticate(st: &SimState, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (email, token) = text.split_once(':')?;
    let own = (st.config.email.as_str(), st.config.token.as_str());
    let known = std::iter::once(own)
        .chain(st.metrics.config.extra_users.iter().map(|(e, t)| (e.as_str(), t.as_str())))
        .any(|(e, t)| e == email && t == token);
    known.then(|| email.to_string())
}

#[derive(Deserialize)]
struct Request {
    query: String,
    variables: Variables,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Variables {
    app_id: String,
    query: QueryInput,
}

#[derive(Deserialize)]
struct QueryInput {
    filters: Filters,
}

#[derive(Deserialize)]
struct Filters {
    environments: Vec<String>,
    interval: Interval,
    #[serde(default)]
    metrics: Vec<String>,
}

#[derive(Deserialize)]
struct Interval {
    start: String,
    end: String,
}

fn answer(st: &SimState, headers: &HeaderMap, body: &[u8], call: &mut Call) -> Response {
    let Some(email) = authenticate(st, headers) else {
        return http(call, StatusCode::UNAUTHORIZED, gql_errors("Unauthorized", 401, "UNAUTHENTICATED"));
    };
    call.email = email.clone();
    let experimental = headers.get("x-experimentalapi").and_then(|v| v.to_str().ok());
    if !experimental.is_some_and(|v| v.split(',').any(|p| p.trim() == "ForgeMetricsQuery")) {
        let msg = "ecosystem.forgeMetrics is an experimental API: send the header X-ExperimentalApi: ForgeMetricsQuery";
        return ok(call, 400, gql_errors(msg, 400, "BAD_REQUEST"));
    }
    let req: Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return http(call, StatusCode::BAD_REQUEST, gql_errors(&format!("bad request: {e}"), 400, "BAD_REQUEST"));
        }
    };
    let shape_ok = ["ecosystem", "forgeMetrics", "appMetrics", "ForgeMetricsOtlpData", "resourceMetrics"]
        .iter()
        .all(|w| req.query.contains(w));
    if !shape_ok {
        return ok(call, 400, gql_errors("query does not match the schema", 400, "ValidationError"));
    }
    let f = &req.variables.query.filters;
    if let Some(bad) = f.metrics.iter().find(|m| !METRIC_NAMES.contains(&m.as_str())) {
        return ok(call, 400, gql_errors(&format!("invalid value for ForgeMetrics: {bad}"), 400, "ValidationError"));
    }
    // The limit counts every accepted call of the account, across its apps.
    if let Some(r) = rate_limit(st, &email, call) {
        return r;
    }
    {
        let mut faults = lock(&st.metrics.faults);
        if faults.n_errors > 0 {
            faults.n_errors -= 1;
            return ok(call, 500, gql_errors("Internal server error", 500, "INTERNAL_SERVER_ERROR"));
        }
        if faults.n_query_500 > 0 {
            faults.n_query_500 -= 1;
            return ok(call, 500, query_error("Internal server error", 500, "INTERNAL_SERVER_ERROR"));
        }
    }
    let app = req.variables.app_id.strip_prefix(APP_ARI_PREFIX).unwrap_or("").to_string();
    call.app = app.clone();
    call.environments = f.environments.clone();
    let Some(envs) = st.config.apps.iter().find(|(a, _)| *a == app).map(|(_, e)| e) else {
        return ok(call, 404, query_error(&format!("app {} not found", req.variables.app_id), 404, "NOT_FOUND"));
    };
    if f.environments.is_empty() {
        return ok(call, 400, query_error("at least one environment is required", 400, "BAD_REQUEST"));
    }
    if let Some(bad) = f.environments.iter().find(|e| !envs.contains(e)) {
        return ok(call, 404, query_error(&format!("environment {bad} not found"), 404, "NOT_FOUND"));
    }
    let (Some(start), Some(end)) = (parse_iso8601_millis(&f.interval.start), parse_iso8601_millis(&f.interval.end))
    else {
        return ok(call, 400, query_error("interval start and end must be ISO 8601 times", 400, "BAD_REQUEST"));
    };
    (call.start_ms, call.end_ms) = (start, end);
    let now = system_millis(SystemTime::now());
    if end <= start {
        return ok(call, 400, query_error("interval end must be after its start", 400, "BAD_REQUEST"));
    }
    if end - start > MAX_WINDOW.as_millis() as i64 {
        return ok(call, 400, query_error("interval must not exceed 15 minutes", 400, "BAD_REQUEST"));
    }
    if start < now - RETENTION_MS {
        return ok(call, 400, query_error("interval must be within the last 14 days", 400, "BAD_REQUEST"));
    }
    let all: Vec<&str> =
        if f.metrics.is_empty() { METRIC_NAMES.to_vec() } else { f.metrics.iter().map(String::as_str).collect() };
    let g = &st.metrics.generator;
    // Points are one step long: starting in [start, end) is ending in [start + step, end + step).
    let shift = if st.metrics.config.select_by_start { g.step_ms } else { 0 };
    let mut points = Vec::new();
    for env in &f.environments {
        for m in &all {
            points.extend(g.points(&app, env, m, start + shift, end + shift, now));
        }
    }
    call.points = points.len();
    let data = json!({ "data": { "ecosystem": { "forgeMetrics": { "appMetrics": {
        "resourceMetrics": resource_metrics(g, &points) } } } } });
    ok(call, 200, data)
}

fn rate_limit(st: &SimState, email: &str, call: &mut Call) -> Option<Response> {
    let limit = st.metrics.config.calls_per_window as usize;
    if limit == 0 {
        return None;
    }
    let wait = {
        let mut map = lock(&st.metrics.rate);
        let limiter = map.entry(email.to_string()).or_default();
        limiter.admit(tokio::time::Instant::now(), limit, st.config.rate_window, 0).err()?
    };
    let mut r = http(call, StatusCode::TOO_MANY_REQUESTS, gql_errors("rate limit exceeded", 429, "RATE_LIMITED"));
    let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Some(r)
}

pub(super) async fn requests(State(st): State<Arc<SimState>>) -> Response {
    let log: Vec<_> = lock(&st.metrics.log).iter().cloned().collect();
    Json(log).into_response()
}

pub(super) async fn get_faults(State(st): State<Arc<SimState>>) -> Response {
    Json(lock(&st.metrics.faults).clone()).into_response()
}

pub(super) async fn put_faults(State(st): State<Arc<SimState>>, Json(f): Json<MetricsFaults>) -> Response {
    *lock(&st.metrics.faults) = f;
    StatusCode::NO_CONTENT.into_response()
}
