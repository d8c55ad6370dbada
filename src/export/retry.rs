//! Which export failures to retry, after the OTLP specification.
//!
//! HTTP: 429, 502, 503 and 504 are retryable and honour `Retry-After`;
//! so is a 3xx (redirects are not followed: a proxy or load balancer in the
//! way is a fault of the path, not a refusal of the records); every other
//! 4xx/5xx is permanent. gRPC: UNAVAILABLE, CANCELLED,
//! DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE and DATA_LOSS are retryable;
//! RESOURCE_EXHAUSTED only when the server sent RetryInfo; the rest are
//! permanent. Connection errors and timeouts are retryable.

use std::time::Duration;

use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again; after the server's delay when it gave one.
    Retry(Option<Duration>),
    /// Never succeeds as it is: dead-letter the records.
    Permanent,
}

pub use crate::net::{MAX_SERVER_DELAY, parse_retry_after, rate_limit_reset, retry_after_header, server_delay};

pub(crate) fn classify_http(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        300..=399 | 429 | 502 | 503 | 504 => Verdict::Retry(retry_after),
        _ => Verdict::Permanent,
    }
}

pub(crate) fn classify_grpc(code: Code, retry_info: Option<Duration>) -> Verdict {
    match code {
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Verdict::Retry(retry_info),
        Code::ResourceExhausted if retry_info.is_some() => Verdict::Retry(retry_info),
        _ => Verdict::Permanent,
    }
}

/// `google.rpc.Status` and `google.rpc.RetryInfo`, for the delay a gRPC
/// server asks for in the status details.
mod rpc {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Status {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, repeated, tag = "3")]
        pub details: Vec<Any>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RetryInfo {
        #[prost(message, optional, tag = "1")]
        pub retry_delay: Option<ProtoDuration>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ProtoDuration {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The RetryInfo delay in a gRPC status's details, if any.
pub fn grpc_retry_info(details: &[u8]) -> Option<Duration> {
    use prost::Message;
    let status = rpc::Status::decode(details).ok()?;
    let any = status.details.iter().find(|a| a.type_url == RETRY_INFO_TYPE)?;
    let d = rpc::RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(u64::try_from(d.seconds).ok()?, nanos).min(MAX_SERVER_DELAY))
}

/// Status details carrying RetryInfo, for test servers.
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn grpc_retry_details(code: Code, delay: Duration) -> Vec<u8> {
    use prost::Message;
    let info = rpc::RetryInfo {
        retry_delay: Some(rpc::ProtoDuration { seconds: delay.as_secs() as i64, nanos: delay.subsec_nanos() as i32 }),
    };
    rpc::Status {
        code: code as i32,
        message: String::new(),
        details: vec![rpc::Any { type_url: RETRY_INFO_TYPE.into(), value: info.encode_to_vec() }],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn http_table() {
        let d = Some(Duration::from_secs(3));
        let cases = [
            (429, d, Verdict::Retry(d)),
            (502, None, Verdict::Retry(None)),
            (503, d, Verdict::Retry(d)),
            (504, None, Verdict::Retry(None)),
            (400, None, Verdict::Permanent),
            (401, None, Verdict::Permanent),
            (403, None, Verdict::Permanent),
            (404, None, Verdict::Permanent),
            (413, None, Verdict::Permanent),
            (500, d, Verdict::Permanent),
            (301, None, Verdict::Retry(None)),
            (302, None, Verdict::Retry(None)),
            (307, d, Verdict::Retry(d)),
            (308, None, Verdict::Retry(None)),
        ];
        for (status, ra, want) in cases {
            assert_eq!(classify_http(status, ra), want, "{status}");
        }
    }

    #[test]
    fn grpc_table() {
        let d = Some(Duration::from_secs(2));
        let cases = [
            (Code::Unavailable, None, Verdict::Retry(None)),
            (Code::Unavailable, d, Verdict::Retry(d)),
            (Code::Cancelled, None, Verdict::Retry(None)),
            (Code::DeadlineExceeded, None, Verdict::Retry(None)),
            (Code::Aborted, None, Verdict::Retry(None)),
            (Code::OutOfRange, None, Verdict::Retry(None)),
            (Code::DataLoss, None, Verdict::Retry(None)),
            (Code::ResourceExhausted, None, Verdict::Permanent),
            (Code::ResourceExhausted, d, Verdict::Retry(d)),
            (Code::InvalidArgument, None, Verdict::Permanent),
            (Code::Unauthenticated, None, Verdict::Permanent),
            (Code::PermissionDenied, None, Verdict::Permanent),
            (Code::Internal, None, Verdict::Permanent),
            (Code::Unimplemented, None, Verdict::Permanent),
        ];
        for (code, info, want) in cases {
            assert_eq!(classify_grpc(code, info), want, "{code:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("18446744073709551615", now), Some(MAX_SERVER_DELAY));
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(MAX_SERVER_DELAY));
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX_SERVER_DELAY));
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        // The exporter adds the delay to an Instant: the cap keeps that sum valid.
        let _ = std::time::Instant::now() + parse_retry_after("18446744073709551615", now).unwrap_or_default();
    }

    #[test]
    fn rate_limit_reset_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let max = Duration::from_secs(600);
        let s = Duration::from_secs;
        let cases: [(&str, Option<Duration>); 22] = [
            ("1700000030", Some(s(30))),
            ("1700000030.2", Some(s(31))),
            ("1700000030.000", Some(s(30))),
            (" 1700000030 ", Some(s(30))),
            ("1699999990", Some(Duration::ZERO)),
            ("1800000000", Some(max)),
            ("18446744073709551615", Some(max)),
            ("184467440737095516150000", Some(max)),
            ("45", Some(s(45))),
            ("0", Some(Duration::ZERO)),
            ("2023-11-14T22:13:50Z", Some(s(30))),
            ("2023-11-14T22:13:50.500Z", Some(Duration::from_millis(30_500))),
            ("2023-11-14T22:13:50.123456789Z", Some(Duration::from_millis(30_123))),
            ("2023-11-15T00:13:50+02:00", Some(s(30))),
            ("2023-11-14T21:13:50-0100", Some(s(30))),
            ("2023-11-14T22:13:00Z", Some(Duration::ZERO)),
            ("9999-12-31T23:59:59Z", Some(max)),
            ("2023-11-14T22:13:50", None),
            ("2023-11-14T22:13:50.Z", None),
            ("2023-13-14T22:13:50Z", None),
            ("2023-11-14T22:13:50+25:00", None),
            ("soon", None),
        ];
        for (text, want) in cases {
            assert_eq!(rate_limit_reset(text, now, max), want, "{text}");
        }
    }

    #[test]
    fn server_delay_prefers_retry_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let max = Duration::from_secs(600);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-ratelimit-reset", reqwest::header::HeaderValue::from_static("1700000050"));
        assert_eq!(server_delay(&h, now, max), Some(Duration::from_secs(50)));
        h.insert("retry-after", reqwest::header::HeaderValue::from_static("7"));
        assert_eq!(server_delay(&h, now, max), Some(Duration::from_secs(7)));
        h.insert("retry-after", reqwest::header::HeaderValue::from_static("18446744073709551615"));
        assert_eq!(server_delay(&h, now, max), Some(max));
        assert_eq!(server_delay(&reqwest::header::HeaderMap::new(), now, max), None);
    }

    #[test]
    fn retry_info_round_trip() {
        let bytes = grpc_retry_details(Code::ResourceExhausted, Duration::from_millis(1500));
        assert_eq!(grpc_retry_info(&bytes), Some(Duration::from_millis(1500)));
        assert_eq!(grpc_retry_info(b"garbage"), None);
        assert_eq!(grpc_retry_info(&[]), None);
        let huge = grpc_retry_details(Code::ResourceExhausted, Duration::from_secs(i64::MAX as u64));
        assert_eq!(grpc_retry_info(&huge), Some(MAX_SERVER_DELAY));
    }
}
