//! The App logs API client: one call, one page.
//!
//! Credentials go in an `Authorization: Basic` header, never in the URL.
//! A token file is read for every call, so a rotated token is used at once
//! without a restart. Answers are capped in size, decoded tolerantly, and
//! turned into [`ForgeError`]s that say what to do next.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};

use crate::config::{ForgeConfig, TokenSource};
use crate::net::{error_chain, rate_limit_delay, server_date};
use crate::timefmt::format_millis;

/// One page request.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub app_id: &'a str,
    pub environment_id: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub levels: &'a [String],
    pub message: Option<&'a str>,
    pub sites: &'a [String],
    pub cursor: Option<&'a str>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ForgeError {
    #[error("rate limited (429){}", .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("credentials refused ({status}): check forge.email and the API token: {message}")]
    Auth { status: u16, message: String },
    #[error("app or environment not found (404): check app_id and environment_id: {message}")]
    NotFound { message: String },
    #[error("request refused (400): {message}")]
    BadRequest { message: String },
    #[error("server error ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("cannot reach the API: {0}")]
    Transport(String),
    #[error("answer larger than forge.max_response_size ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("malformed page: {0}")]
    Malformed(String),
    #[error("{0}")]
    Token(String),
}

impl ForgeError {
    /// A short label for metrics.
    pub(crate) fn status_class(&self) -> &'static str {
        match self {
            ForgeError::RateLimited { .. } => "429",
            ForgeError::Auth { status: 403, .. } => "403",
            ForgeError::Auth { .. } | ForgeError::Token(_) => "401",
            ForgeError::NotFound { .. } => "404",
            ForgeError::BadRequest { .. } => "400",
            ForgeError::Server { .. } => "5xx",
            ForgeError::Transport(_) => "error",
            ForgeError::TooLarge { .. } | ForgeError::Malformed(_) => "malformed",
        }
    }
}

pub struct ForgeClient {
    http: reqwest::Client,
    /// `forge.base_url`, parsed once (or why it cannot be).
    base_url: Result<reqwest::Url, String>,
    email: String,
    token: TokenSource,
    max_bytes: u64,
    clock: ApiClock,
}

/// The last seen offset of the API's clock from the host's.
#[derive(Debug, Default)]
struct ApiClock {
    offset_ms: AtomicI64,
    seen: AtomicBool,
}

impl ApiClock {
    fn observe(&self, server: std::time::SystemTime, host: std::time::SystemTime) {
        let offset = crate::timefmt::system_millis(server) - crate::timefmt::system_millis(host);
        // A Date header is whole seconds: a server exactly in step reads up
        // to 1 s behind. Offsets within that are noise, not skew.
        let offset = if (-1000..=0).contains(&offset) { 0 } else { offset };
        self.offset_ms.store(offset, Ordering::Relaxed);
        self.seen.store(true, Ordering::Relaxed);
    }

    fn offset_ms(&self) -> Option<i64> {
        self.seen.load(Ordering::Relaxed).then(|| self.offset_ms.load(Ordering::Relaxed))
    }
}

impl ForgeClient {
    pub fn new(cfg: &ForgeConfig) -> Result<Self, ForgeError> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the credentials to wherever it points; a
            // 3xx is reported as a server-side failure instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ForgeError::Transport(error_chain(&e)))?;
        Ok(Self {
            http,
            base_url: reqwest::Url::parse(&cfg.base_url).map_err(|e| e.to_string()),
            email: cfg.email.clone(),
            token: cfg.token.clone(),
            max_bytes: cfg.max_response_bytes,
            clock: ApiClock::default(),
        })
    }

    fn url(&self, q: &Query<'_>) -> Result<reqwest::Url, ForgeError> {
        let base = self.base_url.as_ref().map_err(|e| bad_base(e.clone()))?;
        let mut url = logs_url_at(base.clone(), q.app_id)?;
        {
            let mut p = url.query_pairs_mut();
            p.append_pair("environmentId", q.environment_id);
            p.append_pair("startDate", &format_millis(q.start_ms));
            p.append_pair("endDate", &format_millis(q.end_ms));
            for l in q.levels {
                p.append_pair("level", l);
            }
            if let Some(m) = q.message {
                p.append_pair("message", m);
            }
            for s in q.sites {
                p.append_pair("installationContext", s);
            }
            if let Some(c) = q.cursor {
                p.append_pair("cursor", c);
            }
        }
        Ok(url)
    }

    /// Fetches one page into `body` (cleared first, reused across pages);
    /// [`crate::convert`] decodes it. Every answer's `Date` header updates
    /// [`ForgeClient::api_clock_offset_ms`].
    pub async fn fetch(&self, q: &Query<'_>, body: &mut Vec<u8>) -> Result<(), ForgeError> {
        let token = self.token.read().map_err(|e| ForgeError::Token(e.to_string()))?;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.email, token.expose()));
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| ForgeError::Token("the API token contains characters not allowed in a header".into()))?;
        auth.set_sensitive(true);
        let resp = self
            .http
            .get(self.url(q)?)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| ForgeError::Transport(error_chain(&e)))?;
        let status = resp.status().as_u16();
        if let Some(date) = server_date(resp.headers()) {
            self.clock.observe(date, std::time::SystemTime::now());
        }
        let retry_after = rate_limit_delay(resp.headers(), std::time::SystemTime::now());
        let location = resp.headers().get(LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let content_type =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if resp.content_length().is_some_and(|n| n > self.max_bytes) {
            return Err(ForgeError::TooLarge { limit: self.max_bytes });
        }
        read_answer(resp, self.max_bytes, body).await?;
        if status != 200 {
            let mut message = error_message(body);
            if let Some(to) = location.filter(|_| (300..400).contains(&status)) {
                let to: String = to.rsplit('@').next().unwrap_or("").chars().take(200).collect();
                message = format!("redirect to {to} not followed (check forge.base_url)");
            }
            return Err(match status {
                429 => ForgeError::RateLimited { retry_after },
                401 | 403 => ForgeError::Auth { status, message },
                404 => ForgeError::NotFound { message },
                400 => ForgeError::BadRequest { message },
                _ => ForgeError::Server { status, message },
            });
        }
        if !content_type.is_empty() && !content_type.contains("json") {
            return Err(ForgeError::Malformed(format!("expected JSON, got {content_type}")));
        }
        Ok(())
    }

    /// The API's clock minus the host's, in milliseconds, from the last
    /// answer's `Date` header (whole seconds, so it reads up to a second
    /// early: the safe side for planning). `None` before the first answer.
    pub(crate) fn api_clock_offset_ms(&self) -> Option<i64> {
        self.clock.offset_ms()
    }
}

/// An answer's body, at most `max` bytes ([`crate::net::read_capped`]).
pub(super) async fn read_answer(resp: reqwest::Response, max: u64, body: &mut Vec<u8>) -> Result<(), ForgeError> {
    let cap = usize::try_from(max).unwrap_or(usize::MAX);
    match crate::net::read_capped(resp, cap, body).await {
        crate::net::ReadEnd::Complete => Ok(()),
        crate::net::ReadEnd::TooLarge => Err(ForgeError::TooLarge { limit: max }),
        crate::net::ReadEnd::Broken(e) => Err(ForgeError::Transport(format!("reading the answer: {e}"))),
    }
}

/// [`logs_url_at`] of an unparsed base (tests).
#[cfg(test)]
fn logs_url(base_url: &str, app_id: &str) -> Result<reqwest::Url, ForgeError> {
    logs_url_at(reqwest::Url::parse(base_url).map_err(|e| bad_base(e.to_string()))?, app_id)
}

fn bad_base(e: String) -> ForgeError {
    ForgeError::Transport(format!("bad forge.base_url: {e}"))
}

/// `{base}/v1/app/logs/{app_id}` under the parsed `forge.base_url`, the
/// app id percent-encoded as one path segment whatever it holds:
/// `Url::join` would read `host:port/` or `..` in it as a new address.
/// Config validation refuses such ids already.
fn logs_url_at(mut url: reqwest::Url, app_id: &str) -> Result<reqwest::Url, ForgeError> {
    // A URL has no way to hold these as a segment: they mean "here" and "up".
    if matches!(app_id, "" | "." | "..") {
        return Err(ForgeError::NotFound { message: format!("`{app_id}` is not an app id") });
    }
    url.path_segments_mut()
        .map_err(|()| bad_base("cannot carry a path".into()))?
        .pop_if_empty()
        .extend(["v1", "app", "logs", app_id]);
    Ok(url)
}

/// The `message` of a JSON error body, else the start of the body.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        message: Option<String>,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(E { message: Some(m) }) => m,
        _ => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::logs_url;

    #[test]
    fn the_app_id_stays_one_path_segment() {
        let url = |base: &str, id: &str| logs_url(base, id).map(|u| u.to_string()).unwrap_or_default();
        let api = "https://api.atlassian.com";
        assert_eq!(url(api, "0f7c6a1e-2b3c"), "https://api.atlassian.com/v1/app/logs/0f7c6a1e-2b3c");
        assert_eq!(url("https://proxy.example/forge/", "a"), "https://proxy.example/forge/v1/app/logs/a");
        for (id, want) in [
            ("evil.example:443", "https://api.atlassian.com/v1/app/logs/evil.example:443"),
            ("//evil.example/x", "https://api.atlassian.com/v1/app/logs/%2F%2Fevil.example%2Fx"),
            ("a?b#c", "https://api.atlassian.com/v1/app/logs/a%3Fb%23c"),
            ("%2e%2e", "https://api.atlassian.com/v1/app/logs/%252e%252e"),
            ("u:p@evil", "https://api.atlassian.com/v1/app/logs/u:p@evil"),
        ] {
            let got = logs_url(api, id).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.as_str(), want);
            assert_eq!(got.host_str(), Some("api.atlassian.com"), "{id}");
            assert_eq!(got.path_segments().map(Iterator::count), Some(4), "{id}: {got}");
            assert!(got.query().is_none() && got.fragment().is_none(), "{id}");
        }
        for id in ["", ".", ".."] {
            assert!(logs_url(api, id).is_err(), "{id}");
        }
        assert!(logs_url("mailto:x@y", "a").is_err());
    }
}
