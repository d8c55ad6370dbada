//! Delivery of App metrics: OTLP metrics over the same exporter settings
//! as the logs (gRPC `MetricsService/Export`, HTTP `/v1/metrics`), with
//! the same rules: only an OTLP answer acknowledges, retryable failures
//! are retried with backoff (the checkpoint holds meanwhile), and a
//! request refused for good goes to a dead-letter file of its own
//! (`metrics-dead-letter.jsonl`: the logs replay tool reads logs only).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, LOCATION};
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use super::http::{MAX_ANSWER_BYTES, compress, read_capped, redact_url, snippet};
use super::retry::{Verdict, classify_http, retry_after_header};
use super::{DeadLetterError, DeliverError, Delivered, SendError, SetupError};
use crate::backoff::Backoff;
use crate::config::{Compression, ExporterConfig, Protocol, RetryConfig};
use crate::metrics::{LastError, SourceMetrics};
use crate::timefmt::system_millis;

/// The dead-letter file of metrics requests, in the state directory.
pub const DEAD_LETTER_FILE: &str = "metrics-dead-letter.jsonl";

/// `{endpoint}/v1/metrics`: the logs endpoint's base with the metrics path.
pub fn metrics_url(cfg: &ExporterConfig) -> String {
    let base = cfg.base_endpoint();
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/v1/logs").unwrap_or(base);
    if base.ends_with("/v1/metrics") { base.to_string() } else { format!("{base}/v1/metrics") }
}

pub enum MetricsTransport {
    Grpc { client: Box<MetricsServiceClient<Channel>>, metadata: MetadataMap, timeout: std::time::Duration },
    Http { client: reqwest::Client, url: String, json: bool, compression: Compression },
    Stdout,
}

impl MetricsTransport {
    /// `url` overrides the HTTP metrics URL (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`).
    pub fn new(cfg: &ExporterConfig, url: Option<String>) -> Result<Self, SetupError> {
        Ok(match cfg.protocol {
            Protocol::Grpc => {
                let mut client =
                    MetricsServiceClient::new(super::grpc::channel(cfg)?).max_decoding_message_size(MAX_ANSWER_BYTES);
                client = match cfg.compression {
                    Compression::None => client,
                    Compression::Gzip => client.send_compressed(CompressionEncoding::Gzip),
                    Compression::Zstd => client.send_compressed(CompressionEncoding::Zstd),
                };
                MetricsTransport::Grpc {
                    client: Box::new(client),
                    metadata: super::grpc::metadata(cfg)?,
                    timeout: cfg.timeout,
                }
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => MetricsTransport::Http {
                client: super::http::client(cfg)?,
                url: url.unwrap_or_else(|| metrics_url(cfg)),
                json: cfg.protocol == Protocol::HttpJson,
                compression: cfg.compression,
            },
            Protocol::Stdout => MetricsTransport::Stdout,
        })
    }

    /// One attempt: `Ok((rejected, message))` when the backend accepted.
    pub async fn send(&self, req: &ExportMetricsServiceRequest) -> Result<(u64, String), SendError> {
        match self {
            MetricsTransport::Grpc { client, metadata, timeout } => {
                let mut request = tonic::Request::new(req.clone());
                *request.metadata_mut() = metadata.clone();
                request.set_timeout(*timeout);
                match (**client).clone().export(request).await {
                    Ok(resp) => Ok(partial(resp.into_inner())),
                    Err(status) => Err(SendError {
                        verdict: super::grpc::verdict(&status),
                        message: format!("gRPC {:?}: {}", status.code(), status.message()),
                    }),
                }
            }
            MetricsTransport::Http { client, url, json, compression } => {
                send_http(client, url, *json, *compression, req).await
            }
            MetricsTransport::Stdout => {
                let line = serde_json::to_string(req)
                    .map_err(|e| SendError { verdict: Verdict::Permanent, message: e.to_string() })?;
                println!("{line}");
                Ok((0, String::new()))
            }
        }
    }
}

fn partial(answer: ExportMetricsServiceResponse) -> (u64, String) {
    let p = answer.partial_success.unwrap_or_default();
    (u64::try_from(p.rejected_data_points).unwrap_or(0), p.error_message)
}

async fn send_http(
    client: &reqwest::Client,
    url: &str,
    json: bool,
    compression: Compression,
    req: &ExportMetricsServiceRequest,
) -> Result<(u64, String), SendError> {
    let raw = if json {
        Bytes::from(
            serde_json::to_vec(req).map_err(|e| SendError { verdict: Verdict::Permanent, message: e.to_string() })?,
        )
    } else {
        Bytes::from(req.encode_to_vec())
    };
    let mut r = client.post(url).header(CONTENT_TYPE, if json { "application/json" } else { "application/x-protobuf" });
    match compression {
        Compression::None => {}
        Compression::Gzip => r = r.header(CONTENT_ENCODING, "gzip"),
        Compression::Zstd => r = r.header(CONTENT_ENCODING, "zstd"),
    }
    let resp = r.body(compress(raw, compression)?).send().await.map_err(|e| SendError {
        verdict: Verdict::Retry(None),
        message: format!("cannot reach {url}: {}", crate::net::error_chain(&e)),
    })?;
    let status = resp.status().as_u16();
    let retry_after = retry_after_header(resp.headers());
    let header = |name| {
        resp.headers().get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok()).map(str::to_string)
    };
    let (content_type, location) = (header(CONTENT_TYPE), header(LOCATION));
    let (bytes, complete) = read_capped(resp, MAX_ANSWER_BYTES).await;
    let retry = |message: String| SendError { verdict: Verdict::Retry(None), message };
    if (200..300).contains(&status) {
        if !complete {
            return Err(retry(format!("HTTP {status} from {url} with an answer too large or cut short")));
        }
        return otlp_answer(content_type.as_deref(), &bytes, json).map(partial).map_err(|why| {
            retry(format!("HTTP {status} from {url} is not an OTLP answer ({why}): {}", snippet(&bytes)))
        });
    }
    let message = if (300..400).contains(&status) {
        let to = location.as_deref().map(redact_url).unwrap_or_else(|| "nowhere".into());
        format!("HTTP {status} from {url} redirects to {to}; redirects are not followed")
    } else {
        format!("HTTP {status} from {url}: {}", snippet(&bytes))
    };
    Err(SendError { verdict: classify_http(status, retry_after), message })
}

/// The acknowledgement in a 2xx answer: an empty body, or an
/// `ExportMetricsServiceResponse` in the request's content type.
pub fn otlp_answer(
    content_type: Option<&str>,
    body: &[u8],
    json: bool,
) -> Result<ExportMetricsServiceResponse, String> {
    if body.is_empty() {
        return Ok(ExportMetricsServiceResponse::default());
    }
    let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let want = if json { "application/json" } else { "application/x-protobuf" };
    if media != want {
        return Err(format!("content type {}, expected {want}", if media.is_empty() { "none" } else { &media }));
    }
    if json {
        serde_json::from_slice(body).map_err(|e| format!("not an ExportMetricsServiceResponse: {e}"))
    } else {
        ExportMetricsServiceResponse::decode(body).map_err(|e| format!("not an ExportMetricsServiceResponse: {e}"))
    }
}

/// Sends metrics requests until the backend answers for good.
pub struct MetricsExporter {
    transport: MetricsTransport,
    retry: RetryConfig,
    dead_letter: PathBuf,
    dead_letter_cap: u64,
    guard: Mutex<()>,
}

impl MetricsExporter {
    pub fn new(transport: MetricsTransport, retry: RetryConfig, state_dir: &Path, dead_letter_cap: u64) -> Self {
        Self { transport, retry, dead_letter: state_dir.join(DEAD_LETTER_FILE), dead_letter_cap, guard: Mutex::new(()) }
    }

    /// Sends `req` (`points` data points) until it is accepted or written
    /// to the dead-letter file. Cancellation interrupts only the waits.
    pub async fn deliver(
        &self,
        req: &ExportMetricsServiceRequest,
        points: u64,
        metrics: &SourceMetrics,
        cancel: &CancellationToken,
    ) -> Result<Delivered, DeliverError> {
        let started = Instant::now();
        let mut backoff = Backoff::new(self.retry.initial_backoff, self.retry.max_backoff);
        loop {
            let t = Instant::now();
            let result = self.transport.send(req).await;
            metrics.export_call(t.elapsed().as_secs_f64());
            let now_ms = system_millis(SystemTime::now());
            let err = match result {
                Ok((rejected, message)) => {
                    let rejected = rejected.min(points);
                    if rejected > 0 {
                        tracing::warn!(source = %metrics.source, rejected, message = %message, "collector accepted the metrics partially");
                        SourceMetrics::add(&metrics.rejected, rejected);
                    }
                    SourceMetrics::add(&metrics.sent, points.saturating_sub(rejected));
                    metrics.update(|s| {
                        s.last_export_ok_ms = Some(now_ms);
                        s.export_failing = false;
                    });
                    return Ok(Delivered::Accepted { records: points, rejected });
                }
                Err(e) => e,
            };
            metrics.update(|s| {
                s.export_failing = true;
                s.last_export_error = Some(LastError { at_ms: now_ms, message: err.message.clone() });
            });
            let give_up = self.retry.max_elapsed.is_some_and(|max| started.elapsed() >= max);
            let delay = match err.verdict {
                Verdict::Retry(_) if give_up => None,
                Verdict::Retry(Some(server)) => Some(server.min(self.retry.max_retry_after)),
                Verdict::Retry(None) => Some(backoff.next_delay()),
                Verdict::Permanent => None,
            };
            let Some(delay) = delay else {
                SourceMetrics::add(&metrics.send_failed, points);
                tracing::error!(source = %metrics.source, points, reason = %err.message, file = %self.dead_letter.display(), "collector rejected metrics for good; writing them to the dead-letter file");
                self.write_dead_letter(&metrics.source, &err.message, now_ms, points, req)?;
                SourceMetrics::add(&metrics.dead_lettered, points);
                return Ok(Delivered::DeadLettered { records: points, reason: err.message });
            };
            metrics.export_retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(source = %metrics.source, error = %err.message, retry_in = ?delay, "metrics export failed; retrying");
            let until = Instant::now() + delay;
            while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                metrics.tick(now_ms);
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(DeliverError::Cancelled),
                    () = tokio::time::sleep(left.min(std::time::Duration::from_secs(5))) => {}
                }
            }
        }
    }

    /// Appends one refused request as a JSON line, synced; refuses past the cap.
    fn write_dead_letter(
        &self,
        source: &str,
        reason: &str,
        now_ms: i64,
        points: u64,
        req: &ExportMetricsServiceRequest,
    ) -> Result<(), DeadLetterError> {
        let line = serde_json::json!({
            "time": crate::timefmt::format_millis(now_ms),
            "source": source,
            "reason": reason,
            "points": points,
            "request": serde_json::to_value(req)?,
        });
        let mut text = serde_json::to_string(&line)?;
        text.push('\n');
        let _g = self.guard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let io = |source| DeadLetterError::Io { path: self.dead_letter.clone(), source };
        let size = std::fs::metadata(&self.dead_letter).map(|m| m.len()).unwrap_or(0);
        if size + text.len() as u64 > self.dead_letter_cap {
            return Err(DeadLetterError::Full { path: self.dead_letter.clone(), size, cap: self.dead_letter_cap });
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.dead_letter).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_otlp_answers_acknowledge() {
        let ok = ExportMetricsServiceResponse::default().encode_to_vec();
        assert!(otlp_answer(Some("application/x-protobuf"), &ok, false).is_ok());
        assert!(otlp_answer(None, b"", false).is_ok());
        assert!(otlp_answer(Some("text/html"), b"<html>", false).is_err());
        assert!(otlp_answer(Some("application/json"), b"{}", true).is_ok());
        assert!(otlp_answer(Some("application/json"), b"[", true).is_err());
    }
}
