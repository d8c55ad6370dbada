//! OTLP/HTTP (protobuf or JSON) with reqwest, POSTing to `{endpoint}/v1/logs`
//! (or to a signal-specific endpoint as given).
//!
//! Only an OTLP answer acknowledges: redirects are never followed (reqwest
//! would turn the POST into a GET of a page that answers 200), and a 2xx
//! counts only with an empty body or an `ExportLogsServiceResponse` of the
//! expected content type. Anything else is a retryable failure, so the
//! checkpoint holds. The answer body is read up to [`MAX_ANSWER_BYTES`].

use std::io::Write;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};

use super::retry::{Verdict, classify_http, retry_after_header};
use super::{SendError, SetupError};
use crate::config::{Compression, ExporterConfig, Protocol};
use crate::convert::Batch;

/// Largest collector answer read; an OTLP response is a few bytes, and a
/// hostile or broken endpoint must not make the sidecar buffer without end.
pub(crate) const MAX_ANSWER_BYTES: usize = 4 << 20;

pub struct HttpTransport {
    client: reqwest::Client,
    url: String,
    json: bool,
    compression: Compression,
}

/// `{endpoint}/v1/logs` unless the endpoint already ends with it.
pub(crate) fn logs_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/logs") { base.to_string() } else { format!("{base}/v1/logs") }
}

/// The HTTP client with the configured headers and TLS, never following
/// redirects (shared with the metrics transport).
pub(super) fn client(cfg: &ExporterConfig) -> Result<reqwest::Client, SetupError> {
    crate::tls::install_crypto_provider();
    let mut headers = HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| SetupError("exporter.headers: a name is not a valid header name".to_string()))?;
        let mut value = HeaderValue::from_str(v.expose())
            .map_err(|_| SetupError(format!("exporter.headers.{k}: value is not a valid header value")))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let mut builder = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = &cfg.tls.ca_file {
        let pem = std::fs::read(ca).map_err(|e| SetupError(format!("exporter.tls.ca_file: {e}")))?;
        let cert =
            reqwest::Certificate::from_pem(&pem).map_err(|e| SetupError(format!("exporter.tls.ca_file: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    if let (Some(cert), Some(key)) = (&cfg.tls.cert_file, &cfg.tls.key_file) {
        let mut pem = std::fs::read(cert).map_err(|e| SetupError(format!("exporter.tls.cert_file: {e}")))?;
        pem.extend(std::fs::read(key).map_err(|e| SetupError(format!("exporter.tls.key_file: {e}")))?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| SetupError(format!("exporter.tls: {e}")))?;
        builder = builder.identity(id);
    }
    builder.build().map_err(|e| SetupError(format!("exporter: {e}")))
}

/// The body compressed as configured.
pub(super) fn compress(raw: Bytes, compression: Compression) -> Result<Bytes, SendError> {
    let io = |e: std::io::Error| SendError { verdict: Verdict::Permanent, message: format!("compression: {e}") };
    Ok(match compression {
        Compression::None => raw,
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&raw).map_err(io)?;
            Bytes::from(enc.finish().map_err(io)?)
        }
        Compression::Zstd => Bytes::from(zstd::bulk::compress(&raw, 3).map_err(io)?),
    })
}

impl HttpTransport {
    pub fn new(cfg: &ExporterConfig) -> Result<Self, SetupError> {
        Ok(Self {
            client: client(cfg)?,
            url: cfg.http_logs_url(),
            json: cfg.protocol == Protocol::HttpJson,
            compression: cfg.compression,
        })
    }

    fn encode(&self, batch: &Batch) -> Result<Bytes, SendError> {
        let raw = if self.json {
            let req = super::decode(batch)?;
            Bytes::from(
                serde_json::to_vec(&req)
                    .map_err(|e| SendError { verdict: Verdict::Permanent, message: e.to_string() })?,
            )
        } else {
            batch.bytes().clone()
        };
        Ok(raw)
    }

    pub async fn send(&self, batch: &Batch) -> Result<(u64, String), SendError> {
        let target = Target { client: &self.client, url: &self.url, json: self.json, compression: self.compression };
        let body = self.encode(batch)?;
        let answer: ExportLogsServiceResponse = post(&target, body).await?;
        let partial = answer.partial_success.unwrap_or_default();
        Ok((u64::try_from(partial.rejected_log_records).unwrap_or(0), partial.error_message))
    }
}

/// Where and how one signal posts.
pub(super) struct Target<'a> {
    pub client: &'a reqwest::Client,
    pub url: &'a str,
    pub json: bool,
    pub compression: Compression,
}

/// Posts an encoded request (compressed here) and reads the OTLP answer
/// `R` (`Export{Logs,Metrics}ServiceResponse`) of a 2xx; anything else is
/// a failure classified for retry.
pub(super) async fn post<R>(t: &Target<'_>, raw: Bytes) -> Result<R, SendError>
where
    R: Message + Default + serde::de::DeserializeOwned,
{
    let body = compress(raw, t.compression)?;
    let url = t.url;
    let mut r =
        t.client.post(url).header(CONTENT_TYPE, if t.json { "application/json" } else { "application/x-protobuf" });
    match t.compression {
        Compression::None => {}
        Compression::Gzip => r = r.header(CONTENT_ENCODING, "gzip"),
        Compression::Zstd => r = r.header(CONTENT_ENCODING, "zstd"),
    }
    let resp = r.body(body).send().await.map_err(|e| SendError {
        verdict: Verdict::Retry(None),
        message: format!("cannot reach {url}: {}", error_chain(&e)),
    })?;
    let status = resp.status().as_u16();
    let retry_after = retry_after_header(resp.headers());
    let header = |name| resp.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_string);
    let (content_type, location) = (header(CONTENT_TYPE), header(LOCATION));
    let (bytes, complete) = read_capped(resp, MAX_ANSWER_BYTES).await;
    let retry = |message: String| SendError { verdict: Verdict::Retry(None), message };
    if (200..300).contains(&status) {
        if !complete {
            return Err(retry(format!(
                "HTTP {status} from {url} with an answer over {MAX_ANSWER_BYTES} bytes or cut short; not an OTLP answer"
            )));
        }
        return otlp_answer(content_type.as_deref(), &bytes, t.json).map_err(|why| {
            retry(format!("HTTP {status} from {url} is not an OTLP answer ({why}): {}", snippet(&bytes)))
        });
    }
    let message = if (300..400).contains(&status) {
        let to = location.as_deref().map(redact_url).unwrap_or_else(|| "nowhere".into());
        format!(
            "HTTP {status} from {url} redirects to {to}; redirects are not followed: set exporter.endpoint to the collector itself"
        )
    } else {
        format!("HTTP {status} from {url}: {}", snippet(&bytes))
    };
    Err(SendError { verdict: classify_http(status, retry_after), message })
}

pub use crate::net::error_chain;

/// Reads an answer body up to `max` bytes: the bytes, and whether that was
/// all of it (false when over `max` or broken off).
pub(super) async fn read_capped(resp: reqwest::Response, max: usize) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    let end = crate::net::read_capped(resp, max, &mut body).await;
    (body, end == crate::net::ReadEnd::Complete)
}

/// The acknowledgement in a 2xx answer, or why it is none: an empty body
/// (the specification allows it), else an `ExportLogsServiceResponse` in
/// the content type of the request.
pub(crate) fn otlp_answer<R>(content_type: Option<&str>, body: &[u8], json: bool) -> Result<R, String>
where
    R: Message + Default + serde::de::DeserializeOwned,
{
    if body.is_empty() {
        return Ok(R::default());
    }
    let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let want = if json { "application/json" } else { "application/x-protobuf" };
    if media != want {
        let got = if media.is_empty() { "none" } else { media.as_str() };
        return Err(format!("content type {got}, expected {want}"));
    }
    let name = std::any::type_name::<R>().rsplit("::").next().unwrap_or("OTLP answer");
    if json {
        serde_json::from_slice(body).map_err(|e| format!("not an {name}: {e}"))
    } else {
        R::decode(body).map_err(|e| format!("not an {name}: {e}"))
    }
}

/// The start of an answer body for an error message.
pub(super) fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(200).collect()
}

/// A URL from an answer (a redirect's target) without any credentials in it.
pub(super) fn redact_url(text: &str) -> String {
    match reqwest::Url::parse(text) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Ok(url) => url.to_string(),
        // Relative or unreadable: shown without anything before an `@`.
        Err(_) => snippet(text.rsplit('@').next().unwrap_or("").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_url_appends_once() {
        assert_eq!(super::logs_url("http://c:4318"), "http://c:4318/v1/logs");
        assert_eq!(super::logs_url("http://c:4318/"), "http://c:4318/v1/logs");
        assert_eq!(super::logs_url("http://c:4318/v1/logs"), "http://c:4318/v1/logs");
        assert_eq!(super::logs_url("https://x/otlp"), "https://x/otlp/v1/logs");
    }

    #[test]
    fn only_otlp_answers_acknowledge() {
        use super::otlp_answer;
        use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse};
        use prost::Message;
        let partial = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess { rejected_log_records: 3, error_message: "x".into() }),
        };
        let proto = partial.encode_to_vec();
        let json = serde_json::to_vec(&partial).unwrap_or_default();
        let pb = Some("application/x-protobuf");
        let js = Some("application/json; charset=utf-8");
        assert_eq!(otlp_answer(pb, &proto, false), Ok(partial.clone()));
        assert_eq!(otlp_answer(Some("Application/X-Protobuf"), &proto, false), Ok(partial.clone()));
        assert_eq!(otlp_answer(js, &json, true), Ok(partial.clone()));
        assert_eq!(otlp_answer(js, b"{}", true), Ok(ExportLogsServiceResponse::default()));
        // The specification allows an empty body, whatever the type says.
        assert_eq!(otlp_answer(Some("text/html"), b"", false), Ok(ExportLogsServiceResponse::default()));
        assert_eq!(otlp_answer(None, b"", true), Ok(ExportLogsServiceResponse::default()));
        let html = b"<!doctype html><html><body>Welcome</body></html>";
        for (ct, body, json) in [
            (Some("text/html"), &html[..], false),
            (Some("text/html"), &html[..], true),
            (None, &proto[..], false),
            (js, &proto[..], false),
            (pb, &json[..], true),
            (js, &html[..], true),
            (pb, &html[..], false),
            (js, b"[1,2]", true),
        ] {
            assert!(otlp_answer::<ExportLogsServiceResponse>(ct, body, json).is_err(), "{ct:?} {json}");
        }
    }

    #[test]
    fn redirect_targets_lose_credentials() {
        assert_eq!(super::redact_url("https://u:hunter2@lb.example/x"), "https://lb.example/x");
        assert_eq!(super::redact_url("https://lb.example/x"), "https://lb.example/x");
        assert_eq!(super::redact_url("/login"), "/login");
        assert!(!super::redact_url("//u:hunter2@lb/x").contains("hunter2"));
    }
}
