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
mod deliver;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod retry;
pub mod stdout;

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use tokio_util::sync::CancellationToken;

use crate::config::{ExporterConfig, Protocol, RetryConfig};
use crate::convert::Batch;
use crate::metrics::SourceMetrics;
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

    /// Sends `batch` until the backend answers for good ([`deliver::deliver`]).
    pub async fn deliver(
        &self,
        batch: &Batch,
        metrics: &SourceMetrics,
        cancel: &CancellationToken,
    ) -> Result<Delivered, DeliverError> {
        let parcel =
            deliver::Parcel { count: batch.records(), what: "records", dead_letter_path: self.dead_letter.path() };
        deliver::deliver(
            &self.retry,
            parcel,
            metrics,
            cancel,
            || self.transport.send(batch),
            |reason, now_ms| self.dead_letter.write(&metrics.source, reason, now_ms, batch),
        )
        .await
    }
}
