//! Delivery of App metrics: OTLP metrics over the same exporter settings
//! as the logs (gRPC `MetricsService/Export`, HTTP `/v1/metrics`), with
//! the same rules: only an OTLP answer acknowledges, retryable failures
//! are retried with backoff (the checkpoint holds meanwhile), and a
//! request refused for good goes to a dead-letter file of its own
//! (`metrics-dead-letter.jsonl`: the logs replay tool reads logs only).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use super::http::{MAX_ANSWER_BYTES, Target, post};
use super::retry::Verdict;
use super::{DeadLetterError, DeliverError, Delivered, SendError, SetupError};
use crate::config::{Compression, ExporterConfig, Protocol, RetryConfig};
use crate::metrics::SourceMetrics;

/// The dead-letter file of metrics requests, in the state directory.
pub const DEAD_LETTER_FILE: &str = "metrics-dead-letter.jsonl";

/// Where OTLP/HTTP posts metrics: a signal-specific endpoint
/// (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) as given, else the base URL
/// with `/v1/metrics`.
pub fn metrics_url(cfg: &ExporterConfig) -> String {
    if cfg.endpoint_as_is {
        return cfg.endpoint.clone();
    }
    let base = cfg.endpoint.trim_end_matches('/');
    let base = base.strip_suffix("/v1/logs").unwrap_or(base);
    if base.ends_with("/v1/metrics") { base.to_string() } else { format!("{base}/v1/metrics") }
}

pub enum MetricsTransport {
    Grpc {
        client: Box<MetricsServiceClient<Channel>>,
        metadata: MetadataMap,
        timeout: std::time::Duration,
    },
    Http {
        client: reqwest::Client,
        url: String,
        json: bool,
        compression: Compression,
    },
    Stdout,
    /// A destination that answers synchronously (the demo's console).
    Sink(Arc<dyn MetricsSink>),
    /// Sends to the first, then hands the same request to the second.
    Tee(Box<MetricsTransport>, Arc<dyn MetricsSink>),
}

/// [`super::Sink`] for metrics requests.
pub trait MetricsSink: Send + Sync {
    fn send(&self, req: &ExportMetricsServiceRequest) -> Result<(u64, String), SendError>;
}

impl MetricsTransport {
    /// The transport of the metrics exporter `cfg` (`Config::metrics_exporter`).
    pub fn new(cfg: &ExporterConfig) -> Result<Self, SetupError> {
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
                url: metrics_url(cfg),
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
            MetricsTransport::Sink(s) => s.send(req),
            MetricsTransport::Tee(first, second) => {
                let answer = Box::pin(first.send(req)).await?;
                let _ = second.send(req);
                Ok(answer)
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
    let target = Target { client, url, json, compression };
    post::<ExportMetricsServiceResponse>(&target, raw).await.map(partial)
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
    /// to the dead-letter file ([`super::deliver::deliver`]).
    pub async fn deliver(
        &self,
        req: &ExportMetricsServiceRequest,
        points: u64,
        metrics: &SourceMetrics,
        cancel: &CancellationToken,
    ) -> Result<Delivered, DeliverError> {
        let parcel = super::deliver::Parcel { count: points, what: "points", dead_letter_path: &self.dead_letter };
        super::deliver::deliver(
            &self.retry,
            parcel,
            metrics,
            cancel,
            || self.transport.send(req),
            |reason, now_ms| self.write_dead_letter(&metrics.source, reason, now_ms, points, req),
        )
        .await
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
    use crate::export::http::otlp_answer;

    #[test]
    fn only_otlp_answers_acknowledge() {
        let ok = ExportMetricsServiceResponse::default().encode_to_vec();
        type R = ExportMetricsServiceResponse;
        assert!(otlp_answer::<R>(Some("application/x-protobuf"), &ok, false).is_ok());
        assert!(otlp_answer::<R>(None, b"", false).is_ok());
        assert!(otlp_answer::<R>(Some("text/html"), b"<html>", false).is_err());
        assert!(otlp_answer::<R>(Some("application/json"), b"{}", true).is_ok());
        let bad = otlp_answer::<R>(Some("application/json"), b"[", true);
        assert!(bad.is_err_and(|e| e.contains("ExportMetricsServiceResponse")));
    }
}
