//! OTLP/gRPC with tonic's generated `LogsServiceClient`.
//!
//! The channel connects lazily, so start-up does not fail while the
//! collector is down; each call carries the configured headers as
//! metadata and waits for the server's answer.
//!
//! tonic checks neither the HTTP status of a 200 nor the content type, and
//! turns an answer that is not gRPC at all (a proxy's redirect, an HTML
//! page, a body that is no gRPC frame) into a status of its own making:
//! [`verdict`] retries those, since the path to the collector misbehaves
//! rather than the collector refusing the records. None is ever a success.

use std::time::Duration;

use bytes::{BufMut, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::retry::{Verdict, classify_grpc, grpc_retry_info};
use super::{SendError, SetupError};
use crate::config::{Compression, ExporterConfig};
use crate::convert::Batch;

/// Starts the status message of an answer that was no `ExportLogsServiceResponse`.
const NOT_OTLP: &str = "answer is not an OTLP response";

/// Largest answer message read (the answer is a few bytes).
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The OTLP logs Export method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// Sends a request already encoded as protobuf bytes: the generated client
/// would need an owned copy of the whole request for every attempt.
#[derive(Debug, Clone, Copy, Default)]
struct PreEncoded;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = ExportLogsServiceResponse;
    type Encoder = PreEncoded;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportLogsServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        ExportLogsServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("{NOT_OTLP}: {e}")))
    }
}

pub struct GrpcTransport {
    client: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
    timeout: Duration,
}

/// The lazily connecting channel to the collector (shared with the metrics transport).
pub(super) fn channel(cfg: &ExporterConfig) -> Result<Channel, SetupError> {
    crate::tls::install_crypto_provider();
    let bad = |e: &dyn std::fmt::Display| SetupError(format!("exporter.endpoint: {e}"));
    let mut endpoint = Endpoint::from_shared(cfg.endpoint.clone())
        .map_err(|e| bad(&e))?
        .connect_timeout(cfg.timeout)
        .timeout(cfg.timeout)
        .tcp_nodelay(true);
    if cfg.endpoint.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &cfg.tls.ca_file {
            let pem = std::fs::read(ca).map_err(|e| SetupError(format!("exporter.tls.ca_file: {e}")))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&cfg.tls.cert_file, &cfg.tls.key_file) {
            let cert = std::fs::read(cert).map_err(|e| SetupError(format!("exporter.tls.cert_file: {e}")))?;
            let key = std::fs::read(key).map_err(|e| SetupError(format!("exporter.tls.key_file: {e}")))?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| SetupError(format!("exporter.tls: {e}")))?;
    }
    Ok(endpoint.connect_lazy())
}

/// The configured headers as gRPC metadata (shared with the metrics transport).
pub(super) fn metadata(cfg: &ExporterConfig) -> Result<MetadataMap, SetupError> {
    let mut metadata = MetadataMap::new();
    for (k, v) in &cfg.headers {
        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| SetupError(format!("exporter.headers.{k}: not a valid gRPC metadata key")))?;
        let value = MetadataValue::try_from(v.expose())
            .map_err(|_| SetupError(format!("exporter.headers.{k}: value is not valid metadata")))?;
        metadata.insert(key, value);
    }
    Ok(metadata)
}

impl GrpcTransport {
    pub fn new(cfg: &ExporterConfig) -> Result<Self, SetupError> {
        let channel = channel(cfg)?;
        let mut client = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_ANSWER_BYTES);
        client = match cfg.compression {
            Compression::None => client,
            Compression::Gzip => client.send_compressed(CompressionEncoding::Gzip),
            Compression::Zstd => client.send_compressed(CompressionEncoding::Zstd),
        };
        Ok(Self { client, metadata: metadata(cfg)?, timeout: cfg.timeout })
    }

    /// Sends one request; `Ok(rejected)` when the server accepted it.
    pub async fn send(&self, batch: &Batch) -> Result<(u64, String), SendError> {
        let mut request = tonic::Request::new(batch.bytes().clone());
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        let mut client = self.client.clone();
        let answer = match client.ready().await {
            Ok(()) => client.unary(request, PathAndQuery::from_static(EXPORT_PATH), PreEncoded).await,
            Err(e) => Err(tonic::Status::unavailable(format!("collector unreachable: {e}"))),
        };
        match answer {
            Ok(resp) => {
                let partial = resp.into_inner().partial_success.unwrap_or_default();
                Ok((u64::try_from(partial.rejected_log_records).unwrap_or(0), partial.error_message))
            }
            Err(status) => {
                let verdict = verdict(&status);
                let mut message = format!("gRPC {:?}: {}", status.code(), status.message());
                if matches!(verdict, Verdict::Retry(_)) && status.message().is_empty() {
                    message = format!("gRPC {:?} (collector unreachable or busy)", status.code());
                }
                Err(SendError { verdict, message })
            }
        }
    }
}

/// What a failed call means. Statuses the server sent go by the OTLP
/// table; those tonic made up for an answer that was not gRPC are retried
/// (a 3xx, an HTML 200, a missing or undecodable message), and HTTP
/// statuses tonic mapped keep its mapping (429/502/503/504 retryable).
pub(crate) fn verdict(status: &tonic::Status) -> Verdict {
    let message = status.message();
    if let Some(code) = message.strip_prefix("grpc-status header missing, mapped from HTTP status code ")
        && code.trim().parse::<u16>().is_ok_and(|c| (300..400).contains(&c))
    {
        return Verdict::Retry(None);
    }
    let made_up = [
        "protocol error:",
        "Missing response message",
        "Unexpected EOF decoding stream",
        "Error decompressing",
        NOT_OTLP,
    ];
    if status.code() == tonic::Code::Internal && made_up.iter().any(|p| message.starts_with(p)) {
        return Verdict::Retry(None);
    }
    classify_grpc(status.code(), grpc_retry_info(status.details()))
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::{Verdict, verdict};

    #[test]
    fn answers_that_are_not_grpc_are_retried() {
        let cases = [
            (Status::new(Code::Unknown, "grpc-status header missing, mapped from HTTP status code 302"), true),
            (Status::new(Code::Unknown, "grpc-status header missing, mapped from HTTP status code 307"), true),
            (Status::new(Code::Unknown, "grpc-status header missing, mapped from HTTP status code 500"), false),
            (Status::new(Code::Unavailable, "grpc-status header missing, mapped from HTTP status code 503"), true),
            (Status::new(Code::Unimplemented, "grpc-status header missing, mapped from HTTP status code 404"), false),
            (
                Status::internal(
                    "protocol error: received message with invalid compression flag: 60 (valid flags are 0 and 1) while receiving response with status: 200 OK",
                ),
                true,
            ),
            (Status::internal("Missing response message."), true),
            (Status::internal("Unexpected EOF decoding stream."), true),
            (Status::internal("answer is not an OTLP response: buffer underflow"), true),
            // From the collector itself: the OTLP table decides.
            (Status::internal("something broke"), false),
            (Status::invalid_argument("bad record"), false),
            (Status::unavailable(""), true),
        ];
        for (status, retried) in cases {
            assert_eq!(matches!(verdict(&status), Verdict::Retry(_)), retried, "{status:?}");
        }
    }
}
