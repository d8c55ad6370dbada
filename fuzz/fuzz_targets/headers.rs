//! Every parser of a server-given delay on arbitrary input: `Retry-After`
//! (seconds or HTTP date; the exporters and the Forge client),
//! `X-RateLimit-Reset` (epoch seconds or ISO 8601) and gRPC RetryInfo.
//! None may panic, and each result is within its cap and can be added to
//! an `Instant` (the sum that panicked on `Retry-After: 2^64-1`).
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use forge_otel_sidecar::export::retry::{
    MAX_SERVER_DELAY, grpc_retry_info, parse_retry_after, rate_limit_reset, server_delay,
};
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let max = Duration::from_secs(600);
    let start = Instant::now();
    let within = |d: Option<Duration>, cap: Duration| {
        if let Some(d) = d {
            assert!(d <= cap, "{d:?} above {cap:?}");
            let _ = start + d;
        }
    };
    within(grpc_retry_info(data), MAX_SERVER_DELAY);
    let Ok(text) = std::str::from_utf8(data) else { return };
    within(parse_retry_after(text, now), MAX_SERVER_DELAY);
    within(parse_retry_after(text, SystemTime::UNIX_EPOCH), MAX_SERVER_DELAY);
    within(rate_limit_reset(text, now, max), max);
    // No cap at all: no overflow inside either.
    let _ = rate_limit_reset(text, SystemTime::UNIX_EPOCH, Duration::MAX);
    if let Ok(value) = HeaderValue::from_str(text) {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", value.clone());
        within(server_delay(&h, now, max), max);
        h.insert("retry-after", value);
        within(server_delay(&h, now, max), max);
    }
});
