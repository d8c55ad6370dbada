//! HTTP vocabulary shared by the Forge client and the exporters: error
//! chains on one line, and the server-given delays of a rate-limited
//! answer (`Retry-After`, `X-RateLimit-Reset`), always capped so that no
//! header can overflow a clock or park a task for ever.

use std::time::{Duration, SystemTime};

/// The longest delay any header is read as, before a caller's own cap:
/// keeps `Instant + delay` far from overflow whatever the server sends.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(24 * 3600);

/// An error with its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

/// Parses `Retry-After`: seconds, or an HTTP date (relative to `now`).
/// At most [`MAX_SERVER_DELAY`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: a number too large for u64 is still "very long".
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_SERVER_DELAY));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_SERVER_DELAY))
}

/// Parses `X-RateLimit-Reset`: the time the limit resets, as ISO 8601
/// (`2026-12-02T10:00:00Z`, fractions and offsets allowed) or epoch
/// seconds (milliseconds when the number is too large to be seconds).
/// Relative to `now`; at most [`MAX_SERVER_DELAY`].
pub fn parse_rate_limit_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let at = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let n = v.parse::<u64>().unwrap_or(u64::MAX);
        // Epoch seconds stay below 10^11 until the year 5138; larger is milliseconds.
        let ms = if n < 100_000_000_000 { n.saturating_mul(1000) } else { n };
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    } else {
        let ms = crate::timefmt::parse_iso8601_millis(v)?;
        u64::try_from(ms).ok().and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
    };
    let Some(at) = at else { return Some(MAX_SERVER_DELAY) };
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_SERVER_DELAY))
}

/// The `Retry-After` of an HTTP answer, if present and readable.
pub fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    header_str(headers, "retry-after").and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// The delay a rate-limited answer asks for: `Retry-After`, else
/// `X-RateLimit-Reset`; `None` when neither is present and readable.
pub fn rate_limit_delay(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    header_str(headers, "retry-after")
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| header_str(headers, "x-ratelimit-reset").and_then(|v| parse_rate_limit_reset(v, now)))
}

/// The server's clock from the `Date` header, if present and readable.
pub fn server_date(headers: &reqwest::header::HeaderMap) -> Option<SystemTime> {
    header_str(headers, "date").and_then(|v| httpdate::parse_http_date(v.trim()).ok())
}

fn header_str<'h>(headers: &'h reqwest::header::HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_forms_and_caps() {
        let now = at(1_700_000_000);
        let cases: &[(&str, Option<Duration>)] = &[
            ("7", Some(Duration::from_secs(7))),
            (" 0 ", Some(Duration::ZERO)),
            ("18446744073709551615", Some(MAX_SERVER_DELAY)),
            ("99999999999999999999999999", Some(MAX_SERVER_DELAY)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_SERVER_DELAY)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), *want, "{value:?}");
        }
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn rate_limit_reset_forms_and_caps() {
        let now = at(1_700_000_000);
        let cases: &[(&str, Option<Duration>)] = &[
            ("1700000042", Some(Duration::from_secs(42))),
            ("1700000042500", Some(Duration::from_millis(42_500))),
            ("1600000000", Some(Duration::ZERO)),
            ("2023-11-14T22:13:27Z", Some(Duration::from_secs(7))),
            ("2023-11-14T22:13:27.250Z", Some(Duration::from_millis(7_250))),
            ("9999-12-31T23:59:59Z", Some(MAX_SERVER_DELAY)),
            ("18446744073709551615", Some(MAX_SERVER_DELAY)),
            ("tomorrow", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_rate_limit_reset(value, now), *want, "{value:?}");
        }
    }

    #[test]
    fn retry_after_wins_over_reset() {
        let now = at(1_700_000_000);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-ratelimit-reset", reqwest::header::HeaderValue::from_static("1700000042"));
        assert_eq!(rate_limit_delay(&h, now), Some(Duration::from_secs(42)));
        h.insert("retry-after", reqwest::header::HeaderValue::from_static("3"));
        assert_eq!(rate_limit_delay(&h, now), Some(Duration::from_secs(3)));
        assert_eq!(rate_limit_delay(&reqwest::header::HeaderMap::new(), now), None);
    }
}
