//! Delivery of OTLP requests with acknowledgement.
//!
//! Reads `ExportLogsServiceRequest`s built by [`crate::convert`] and sends
//! them over gRPC, HTTP (protobuf or JSON) or to stdout. [`Exporter::deliver`]
//! returns only once the backend has answered for good: accepted (perhaps
//! with a partial-success count), or rejected for good and written to the
//! dead-letter file. Retryable failures are retried with backoff, honouring
//! the server's delay, without end by default: the caller's checkpoint
//! holds meanwhile, and the Forge API keeps the records for 14 days.
//! [`metrics`] delivers the App metrics sources' OTLP metrics by the same rules.

pub mod deadletter;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod retry;
pub mod stdout;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{ExporterConfig, Protocol, RetryConfig};
use crate::convert::Batch;
use crate::metrics::{LastError, SourceMetrics};
use crate::timefmt::system_millis;
pub use deadletter::{DeadLetter, DeadLetterError};
use retry::Verdict;

/// A transport could not be set up from the config.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// One failed attempt.
#[derive(Debug, Clone)]
pub struct SendError {
    pub verdict: Verdict,
    pub message: String,
}

/// A destination that answers synchronously (the demo's console printer).
pub trait Sink: Send + Sync {
    fn send(&self, req: &ExportLogsServiceRequest) -> Result<(u64, String), SendError>;
}

pub enum Transport {
    Grpc(Box<grpc::GrpcTransport>),
    Http(http::HttpTransport),
    Stdout,
    Sink(Arc<dyn Sink>),
    /// Sends to the first, then hands the same request to the second.
    Tee(Box<Transport>, Arc<dyn Sink>),
}

impl Transport {
    pub fn new(cfg: &ExporterConfig) -> Result<Self, SetupError> {
        Ok(match cfg.protocol {
            Protocol::Grpc => Transport::Grpc(Box::new(grpc::GrpcTransport::new(cfg)?)),
            Protocol::HttpProtobuf | Protocol::HttpJson => Transport::Http(http::HttpTransport::new(cfg)?),
            Protocol::Stdout => Transport::Stdout,
        })
    }

    /// One attempt: `Ok((rejected, message))` when the backend accepted.
    pub async fn send(&self, batch: &Batch) -> Result<(u64, String), SendError> {
        match self {
            Transport::Grpc(t) => t.send(batch).await,
            Transport::Http(t) => t.send(batch).await,
            Transport::Stdout => stdout::send(&decode(batch)?),
            Transport::Sink(s) => s.send(&decode(batch)?),
            Transport::Tee(first, second) => {
                let answer = Box::pin(first.send(batch)).await?;
                let _ = second.send(&decode(batch)?);
                Ok(answer)
            }
        }
    }
}

/// The request as a message, for the exporters that do not send protobuf.
pub(crate) fn decode(batch: &Batch) -> Result<ExportLogsServiceRequest, SendError> {
    batch
        .request()
        .map_err(|e| SendError { verdict: Verdict::Permanent, message: format!("cannot decode the request: {e}") })
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted; `rejected` of them refused by a partial success.
    Accepted { records: u64, rejected: u64 },
    /// Rejected for good and written to the dead-letter file.
    DeadLettered { records: u64, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("delivery cancelled by shutdown")]
    Cancelled,
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
}

pub struct Exporter {
    transport: Transport,
    retry: RetryConfig,
    dead_letter: DeadLetter,
}

impl Exporter {
    pub fn new(transport: Transport, retry: RetryConfig, dead_letter: DeadLetter) -> Self {
        Self { transport, retry, dead_letter }
    }

    pub fn dead_letter_path(&self) -> &std::path::Path {
        self.dead_letter.path()
    }

    /// Sends `batch` until the backend answers for good. Cancellation only
    /// interrupts the waits between attempts, never a request in flight.
    pub async fn deliver(
        &self,
        batch: &Batch,
        metrics: &SourceMetrics,
        cancel: &CancellationToken,
    ) -> Result<Delivered, DeliverError> {
        let records = batch.records();
        let started = Instant::now();
        let mut backoff = Backoff::new(self.retry.initial_backoff, self.retry.max_backoff);
        loop {
            let t = Instant::now();
            let result = self.transport.send(batch).await;
            metrics.export_call(t.elapsed().as_secs_f64());
            let now_ms = system_millis(SystemTime::now());
            let err = match result {
                Ok((rejected, message)) => {
                    // The collector's figure, capped: it cannot refuse more than was sent.
                    let rejected = rejected.min(records);
                    if rejected > 0 {
                        tracing::warn!(source = %metrics.source, rejected, message = %message, "collector accepted the request partially");
                        SourceMetrics::add(&metrics.rejected, rejected);
                    }
                    SourceMetrics::add(&metrics.sent, records.saturating_sub(rejected));
                    metrics.update(|s| {
                        s.last_export_ok_ms = Some(now_ms);
                        s.export_failing = false;
                    });
                    return Ok(Delivered::Accepted { records, rejected });
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
                SourceMetrics::add(&metrics.send_failed, records);
                let reason = if give_up {
                    format!("gave up after {:?}: {}", started.elapsed(), err.message)
                } else {
                    err.message
                };
                tracing::error!(source = %metrics.source, records, reason = %reason, file = %self.dead_letter.path().display(), "collector rejected records for good; writing them to the dead-letter file");
                self.dead_letter.write(&metrics.source, &reason, now_ms, batch)?;
                SourceMetrics::add(&metrics.dead_lettered, records);
                return Ok(Delivered::DeadLettered { records, reason });
            };
            metrics.export_retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(source = %metrics.source, error = %err.message, retry_in = ?delay, "export failed; retrying");
            if !crate::wait::wait(delay, cancel, &|| metrics.tick(system_millis(SystemTime::now()))).await {
                return Err(DeliverError::Cancelled);
            }
        }
    }
}
