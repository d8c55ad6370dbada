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

/// How reading an answer body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// The whole body is in the buffer.
    Complete,
    /// The body is longer than the cap: the buffer holds its first `max` bytes.
    TooLarge,
    /// The connection failed mid-body (the error chain): the buffer holds what came.
    Broken(String),
}

/// Reads `resp`'s body into `body` (cleared first), never more than `max`
/// bytes whatever the server sends or announces: the one capped reader of
/// the Forge clients and the exporters.
pub async fn read_capped(mut resp: reqwest::Response, max: usize, body: &mut Vec<u8>) -> ReadEnd {
    body.clear();
    // Sized up front when the length is known, never past the cap.
    body.reserve(usize::try_from(resp.content_length().unwrap_or(0)).unwrap_or(max).min(max));
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = max.saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(chunk.get(..room).unwrap_or_default());
                    return ReadEnd::TooLarge;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return ReadEnd::Complete,
            Err(e) => return ReadEnd::Broken(error_chain(&e)),
        }
    }
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

/// Parses `X-RateLimit-Reset` into the delay from `now`, at most [`MAX_SERVER_DELAY`].
pub(crate) fn parse_rate_limit_reset(value: &str, now: SystemTime) -> Option<Duration> {
    rate_limit_reset(value, now, MAX_SERVER_DELAY)
}

/// A run of ASCII digits as a number, saturating instead of failing when
/// it is larger than `u64` holds.
fn digits(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse::<u64>().unwrap_or(u64::MAX))
}

/// Parses `X-RateLimit-Reset`, the moment the budget refills, into the
/// delay from `now`, at most `max`. Accepted: epoch seconds (a fraction is
/// rounded up), ISO 8601 / RFC 3339 (`2026-05-01T10:00:00Z`, fractions,
/// `+02:00` offsets), and, since some gateways send the seconds left
/// rather than a moment, any number below 10^9 (before 2001) as seconds.
/// A moment in the past is zero.
pub fn rate_limit_reset(value: &str, now: SystemTime, max: Duration) -> Option<Duration> {
    let v = value.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if let Some(secs) = digits(int).filter(|_| frac.is_empty() || digits(frac).is_some()) {
        let secs = secs.saturating_add(u64::from(!frac.trim_start_matches('0').is_empty()));
        if secs < 1_000_000_000 {
            return Some(Duration::from_secs(secs).min(max));
        }
        let now_secs = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        return Some(Duration::from_secs(secs.saturating_sub(now_secs)).min(max));
    }
    let at_ms = iso8601_millis(v)?;
    let now_ms = crate::timefmt::system_millis(now);
    let left = u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0);
    Some(Duration::from_millis(left).min(max))
}

/// `yyyy-MM-ddTHH:mm:ss[.f…](Z|±HH:MM|±HHMM)` to epoch milliseconds.
fn iso8601_millis(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() < 20 || !v.is_ascii() {
        return None;
    }
    let (head, rest) = v.split_at(19);
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => r.split_at(r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len())),
        None => ("", rest),
    };
    if rest.starts_with('.') && frac.is_empty() {
        return None;
    }
    let offset_ms: i64 = match zone {
        "Z" | "z" => 0,
        z if z.len() == 6 || z.len() == 5 => {
            let sign = match &z[..1] {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (h, m) = if z.len() == 6 {
                (z.get(1..3)?, z.get(4..6).filter(|_| &z[3..4] == ":")?)
            } else {
                (z.get(1..3)?, z.get(3..5)?)
            };
            let (h, m) = (digits(h)?, digits(m)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * i64::try_from(h * 3_600_000 + m * 60_000).ok()?
        }
        _ => return None,
    };
    let milli = format!("{:0<3}", &frac[..frac.len().min(3)]);
    let base = crate::timefmt::parse_millis(&format!("{head}.{milli}Z"))?;
    base.checked_sub(offset_ms)
}

/// The `Retry-After` of an HTTP answer, if present and readable.
pub fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    header_str(headers, "retry-after").and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// The delay a rate-limited answer asks for: `Retry-After`, else
/// `X-RateLimit-Reset`; `None` when neither is present and readable.
pub(crate) fn rate_limit_delay(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    header_str(headers, "retry-after")
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| header_str(headers, "x-ratelimit-reset").and_then(|v| parse_rate_limit_reset(v, now)))
}

/// [`rate_limit_delay`], at most `max`.
pub fn server_delay(headers: &reqwest::header::HeaderMap, now: SystemTime, max: Duration) -> Option<Duration> {
    rate_limit_delay(headers, now).map(|d| d.min(max))
}

/// The server's clock from the `Date` header, if present and readable.
pub(crate) fn server_date(headers: &reqwest::header::HeaderMap) -> Option<SystemTime> {
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
