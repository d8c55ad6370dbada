//! The App metrics API client: one GraphQL query per window (forge-api.md,
//! "The App metrics API"), with errors that arrive inside a 200 classified
//! like HTTP ones so that a failed query is never taken for an empty window.

use std::time::Duration;

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, USER_AGENT};
use serde::Deserialize;
use serde_json::Value;

use super::client::ForgeError;
use crate::config::{ForgeConfig, TokenSource};
use crate::net::{error_chain, server_delay};
use crate::timefmt::format_millis;

/// The metric names the API accepts (its `ForgeMetrics` enum), in the order
/// the documentation lists them. A source without `metrics:` asks for all.
pub const METRIC_NAMES: [&str; 10] = [
    "FORGE_API_REQUEST_COUNT",
    "FORGE_API_REQUEST_LATENCY",
    "FORGE_BACKEND_INVOCATION_COUNT",
    "FORGE_BACKEND_INVOCATION_ERRORS",
    "FORGE_BACKEND_INVOCATION_LATENCY",
    "CONTAINER_CPU_USAGE_PERCENTAGE",
    "CONTAINER_MEMORY_USAGE_PERCENTAGE",
    "CONTAINER_UPTIME_SECONDS",
    "CONTAINER_STATUS_RESTARTS_TOTAL",
    "SERVICE_INSTANCE_COUNT",
];

/// The prefix that turns an app's uuid into the id the API wants.
pub const APP_ARI_PREFIX: &str = "ari:cloud:ecosystem::app/";

/// The header without which the API refuses the query.
pub const EXPERIMENTAL_HEADER: (&str, &str) = ("X-ExperimentalApi", "ForgeMetricsQuery");

/// The longest interval one query may cover.
pub const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The GraphQL document sent with every query.
pub const QUERY: &str = "query Ecosystem($appId: ID!, $query: ForgeMetricsOtlpQueryInput!) { \
ecosystem { forgeMetrics(appId: $appId) { appMetrics(query: $query) { \
... on ForgeMetricsOtlpData { resourceMetrics } \
... on QueryError { message identifier extensions { statusCode errorType } } \
} } } }";

/// The User-Agent Atlassian recommends for metrics exports.
const AGENT: &str = "ForgeMetricsExportServer/1.0.0";

/// One query: an app, its environments, an interval, the metric names.
#[derive(Debug, Clone, Copy)]
pub struct MetricsQuery<'a> {
    /// `ari:cloud:ecosystem::app/<uuid>`.
    pub app_ari: &'a str,
    pub environments: &'a [String],
    pub metrics: &'a [String],
    pub start_ms: i64,
    pub end_ms: i64,
}

impl MetricsQuery<'_> {
    /// The GraphQL request body.
    pub fn body(&self) -> Value {
        serde_json::json!({
            "query": QUERY,
            "variables": {
                "appId": self.app_ari,
                "query": { "filters": {
                    "environments": self.environments,
                    "interval": { "start": format_millis(self.start_ms), "end": format_millis(self.end_ms) },
                    "metrics": self.metrics,
                } },
            },
        })
    }
}

/// A metrics account's client: its own credentials, `forge`'s address and limits.
pub struct MetricsClient {
    http: reqwest::Client,
    url: String,
    email: String,
    token: TokenSource,
    max_bytes: u64,
    max_retry_delay: Duration,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    errors: Option<Vec<GqlError>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GqlError {
    message: String,
    extensions: Extensions,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Extensions {
    status_code: Option<u16>,
    error_type: Option<String>,
}

impl MetricsClient {
    pub fn new(forge: &ForgeConfig, email: &str, token: &TokenSource) -> Result<Self, ForgeError> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(forge.request_timeout)
            .connect_timeout(forge.request_timeout.min(Duration::from_secs(10)))
            // A redirect would carry the credentials to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ForgeError::Transport(error_chain(&e)))?;
        Ok(Self {
            http,
            url: format!("{}/graphql", forge.base_url.trim_end_matches('/')),
            email: email.to_string(),
            token: token.clone(),
            max_bytes: forge.max_response_bytes,
            max_retry_delay: forge.max_retry_delay,
        })
    }

    /// Runs one query: `resourceMetrics` (OTLP/JSON) on success. A
    /// `QueryError` or a top-level `errors` array inside a 200 is an error
    /// classified by its statusCode, never an empty answer.
    pub async fn query(&self, q: &MetricsQuery<'_>) -> Result<Value, ForgeError> {
        let token = self.token.read().map_err(|e| ForgeError::Token(e.to_string()))?;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.email, token.expose()));
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| ForgeError::Token("the API token contains characters not allowed in a header".into()))?;
        auth.set_sensitive(true);
        let body = serde_json::to_vec(&q.body()).map_err(|e| ForgeError::Malformed(e.to_string()))?;
        let resp = self
            .http
            .post(&self.url)
            .header(AUTHORIZATION, auth)
            .header(EXPERIMENTAL_HEADER.0, EXPERIMENTAL_HEADER.1)
            .header(USER_AGENT, AGENT)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| ForgeError::Transport(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let retry_after = server_delay(resp.headers(), std::time::SystemTime::now(), self.max_retry_delay);
        let location = resp.headers().get(LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let bytes = self.read_capped(resp).await?;
        if status != 200 {
            let mut message = match serde_json::from_slice::<Envelope>(&bytes) {
                Ok(Envelope { errors: Some(e), .. }) if !e.is_empty() => clip(&e[0].message),
                _ => clip(&String::from_utf8_lossy(&bytes)),
            };
            if let Some(to) = location.filter(|_| (300..400).contains(&status)) {
                let to: String = to.rsplit('@').next().unwrap_or("").chars().take(200).collect();
                message = format!("redirect to {to} not followed (check forge.base_url)");
            }
            return Err(classify(status, message, retry_after));
        }
        parse_answer(&bytes, retry_after)
    }

    async fn read_capped(&self, resp: reqwest::Response) -> Result<Vec<u8>, ForgeError> {
        if resp.content_length().is_some_and(|n| n > self.max_bytes) {
            return Err(ForgeError::TooLarge { limit: self.max_bytes });
        }
        let mut body = Vec::new();
        super::client::read_answer(resp, self.max_bytes, &mut body).await?;
        Ok(body)
    }
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

/// An HTTP status (or a statusCode inside a 200) as the logs client classifies it.
fn classify(status: u16, message: String, retry_after: Option<Duration>) -> ForgeError {
    match status {
        429 => ForgeError::RateLimited { retry_after },
        401 | 403 => ForgeError::Auth { status, message },
        404 => ForgeError::NotFound { message },
        400 | 422 => ForgeError::BadRequest { message },
        _ => ForgeError::Server { status, message },
    }
}

/// The status an error inside a 200 stands for: its statusCode, else its
/// errorType; unknown ones are server errors, retried rather than skipped.
fn status_of(ext: &Extensions) -> u16 {
    if let Some(s) = ext.status_code.filter(|s| (100..600).contains(s)) {
        return s;
    }
    match ext.error_type.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("UNAUTHENTICATED" | "UNAUTHORIZED") => 401,
        Some("FORBIDDEN") => 403,
        Some("NOT_FOUND") => 404,
        Some("RATE_LIMITED" | "TOO_MANY_REQUESTS") => 429,
        Some("BAD_REQUEST" | "VALIDATION_ERROR" | "VALIDATIONERROR") => 400,
        _ => 500,
    }
}

/// A 200's body: `resourceMetrics`, or the error it carries.
fn parse_answer(bytes: &[u8], retry_after: Option<Duration>) -> Result<Value, ForgeError> {
    let env: Envelope =
        serde_json::from_slice(bytes).map_err(|e| ForgeError::Malformed(format!("not a GraphQL answer: {e}")))?;
    if let Some(first) = env.errors.as_ref().and_then(|e| e.first()) {
        let status = status_of(&first.extensions);
        return Err(classify(status, format!("GraphQL error: {}", clip(&first.message)), retry_after));
    }
    let app_metrics = env
        .data
        .as_ref()
        .and_then(|d| d.pointer("/ecosystem/forgeMetrics/appMetrics"))
        .filter(|v| !v.is_null())
        .ok_or_else(|| ForgeError::Malformed("the answer holds no appMetrics".into()))?;
    if let Some(rm) = app_metrics.get("resourceMetrics") {
        return match rm {
            Value::Array(_) => Ok(rm.clone()),
            // Tolerated: the whole export request instead of its list.
            Value::Object(o) if o.get("resourceMetrics").is_some_and(Value::is_array) => {
                Ok(o.get("resourceMetrics").cloned().unwrap_or(Value::Null))
            }
            Value::Null => Ok(Value::Array(Vec::new())),
            _ => Err(ForgeError::Malformed("resourceMetrics is not a list".into())),
        };
    }
    let qe: GqlError = serde_json::from_value(app_metrics.clone()).unwrap_or_default();
    if qe.message.is_empty() && qe.extensions.status_code.is_none() {
        return Err(ForgeError::Malformed("appMetrics is neither data nor a QueryError".into()));
    }
    let status = status_of(&qe.extensions);
    let kind = qe.extensions.error_type.as_deref().unwrap_or("QueryError");
    Err(classify(status, format!("{kind}: {}", clip(&qe.message)), retry_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Value, ForgeError> {
        parse_answer(v.to_string().as_bytes(), None)
    }

    fn am(inner: Value) -> Value {
        serde_json::json!({ "data": { "ecosystem": { "forgeMetrics": { "appMetrics": inner } } } })
    }

    #[test]
    fn errors_inside_a_200_are_never_an_empty_window() {
        let qe = |code: u16| {
            am(serde_json::json!({ "message": "m", "identifier": "i",
            "extensions": { "statusCode": code, "errorType": "X" } }))
        };
        assert!(matches!(parse(qe(404)), Err(ForgeError::NotFound { .. })));
        assert!(matches!(parse(qe(401)), Err(ForgeError::Auth { status: 401, .. })));
        assert!(matches!(parse(qe(429)), Err(ForgeError::RateLimited { .. })));
        assert!(matches!(parse(qe(400)), Err(ForgeError::BadRequest { .. })));
        assert!(matches!(parse(qe(503)), Err(ForgeError::Server { status: 503, .. })));
        let top = serde_json::json!({ "data": null, "errors": [{ "message": "boom",
            "extensions": { "errorType": "INTERNAL_SERVER_ERROR" } }] });
        assert!(matches!(parse(top), Err(ForgeError::Server { status: 500, .. })));
        let typed =
            serde_json::json!({ "errors": [{ "message": "no", "extensions": { "errorType": "UNAUTHENTICATED" } }] });
        assert!(matches!(parse(typed), Err(ForgeError::Auth { .. })));
        // Errors beside data still fail the window: part of it may be missing.
        let both = serde_json::json!({ "data": am(serde_json::json!({ "resourceMetrics": [] }))["data"],
            "errors": [{ "message": "partial" }] });
        assert!(matches!(parse(both), Err(ForgeError::Server { .. })));
        assert!(matches!(parse(am(Value::Null)), Err(ForgeError::Malformed(_))));
        assert!(matches!(parse(serde_json::json!({ "data": {} })), Err(ForgeError::Malformed(_))));
        assert!(matches!(parse_answer(b"<html>", None), Err(ForgeError::Malformed(_))));
    }

    #[test]
    fn data_is_the_resource_metrics_list() {
        let ok = parse(am(serde_json::json!({ "resourceMetrics": [{ "resource": {} }] })));
        assert_eq!(ok.ok().and_then(|v| v.as_array().map(Vec::len)), Some(1));
        let wrapped = parse(am(serde_json::json!({ "resourceMetrics": { "resourceMetrics": [{}, {}] } })));
        assert_eq!(wrapped.ok().and_then(|v| v.as_array().map(Vec::len)), Some(2));
    }

    #[test]
    fn the_body_carries_the_ari_interval_and_names() {
        let envs = vec!["e1".to_string(), "e2".to_string()];
        let metrics = vec!["SERVICE_INSTANCE_COUNT".to_string()];
        let q = MetricsQuery {
            app_ari: "ari:cloud:ecosystem::app/x",
            environments: &envs,
            metrics: &metrics,
            start_ms: 0,
            end_ms: 900_000,
        };
        let b = q.body();
        assert_eq!(b["variables"]["appId"], "ari:cloud:ecosystem::app/x");
        let f = &b["variables"]["query"]["filters"];
        assert_eq!(f["environments"], serde_json::json!(["e1", "e2"]));
        assert_eq!(f["interval"]["end"], "1970-01-01T00:15:00.000Z");
        assert_eq!(f["metrics"][0], "SERVICE_INSTANCE_COUNT");
        assert!(b["query"].as_str().is_some_and(|s| s.contains("... on QueryError")));
    }
}
