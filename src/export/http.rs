//! OTLP/HTTP (protobuf or JSON) with reqwest, POSTing to `{endpoint}/v1/logs`
//! (or to a signal-specific endpoint as given).

use std::io::Write;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::retry::{Verdict, classify_http, retry_after_header};
use super::{SendError, SetupError};
use crate::config::{Compression, ExporterConfig, Protocol};
use crate::convert::Batch;

pub struct HttpTransport {
    client: reqwest::Client,
    url: String,
    json: bool,
    compression: Compression,
}

/// `{endpoint}/v1/logs` unless the endpoint already ends with it.
pub fn logs_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/logs") { base.to_string() } else { format!("{base}/v1/logs") }
}

impl HttpTransport {
    pub fn new(cfg: &ExporterConfig) -> Result<Self, SetupError> {
        crate::tls::install_crypto_provider();
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| SetupError(format!("exporter.headers.{k}: not a valid header name")))?;
            let mut value = HeaderValue::from_str(v.expose())
                .map_err(|_| SetupError(format!("exporter.headers.{k}: value is not a valid header value")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder().timeout(cfg.timeout).default_headers(headers);
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
        let client = builder.build().map_err(|e| SetupError(format!("exporter: {e}")))?;
        Ok(Self {
            client,
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
        let io = |e: std::io::Error| SendError { verdict: Verdict::Permanent, message: format!("compression: {e}") };
        Ok(match self.compression {
            Compression::None => raw,
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&raw).map_err(io)?;
                Bytes::from(enc.finish().map_err(io)?)
            }
            Compression::Zstd => Bytes::from(zstd::bulk::compress(&raw, 3).map_err(io)?),
        })
    }

    pub async fn send(&self, batch: &Batch) -> Result<(u64, String), SendError> {
        let body = self.encode(batch)?;
        let mut r = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, if self.json { "application/json" } else { "application/x-protobuf" });
        match self.compression {
            Compression::None => {}
            Compression::Gzip => r = r.header(CONTENT_ENCODING, "gzip"),
            Compression::Zstd => r = r.header(CONTENT_ENCODING, "zstd"),
        }
        let resp = r.body(body).send().await.map_err(|e| SendError {
            verdict: Verdict::Retry(None),
            message: format!("cannot reach {}: {}", self.url, error_chain(&e)),
        })?;
        let status = resp.status().as_u16();
        let retry_after = retry_after_header(resp.headers());
        let bytes = resp.bytes().await.unwrap_or_default();
        if (200..300).contains(&status) {
            let answer = if bytes.is_empty() {
                ExportLogsServiceResponse::default()
            } else if self.json {
                serde_json::from_slice(&bytes).unwrap_or_default()
            } else {
                ExportLogsServiceResponse::decode(bytes.as_ref()).unwrap_or_default()
            };
            let partial = answer.partial_success.unwrap_or_default();
            return Ok((u64::try_from(partial.rejected_log_records).unwrap_or(0), partial.error_message));
        }
        let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
        Err(SendError {
            verdict: classify_http(status, retry_after),
            message: format!("HTTP {status} from {}: {text}", self.url),
        })
    }
}

pub use crate::net::error_chain;

#[cfg(test)]
mod tests {
    #[test]
    fn logs_url_appends_once() {
        assert_eq!(super::logs_url("http://c:4318"), "http://c:4318/v1/logs");
        assert_eq!(super::logs_url("http://c:4318/"), "http://c:4318/v1/logs");
        assert_eq!(super::logs_url("http://c:4318/v1/logs"), "http://c:4318/v1/logs");
        assert_eq!(super::logs_url("https://x/otlp"), "https://x/otlp/v1/logs");
    }
}
