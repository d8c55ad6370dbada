//! An in-process OTLP receiver: a tonic gRPC server and an axum
//! `/v1/logs` route (protobuf or JSON, gzip or zstd) that record every
//! accepted record and can be told to fail: with an HTTP status or gRPC
//! code, a partial success, a redirect to a page that answers 200 HTML (a
//! load balancer in the way), or a 200 whose body is an HTML page.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;

mod handlers;

use super::tls::{ReceiverTls, TlsListener};
use crate::export::retry::grpc_retry_details;
use crate::metrics::lock;
use handlers::{GrpcSvc, http_logs, http_metrics, landing};

/// A way to answer one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// HTTP status (gRPC requests get the matching code) and optional Retry-After seconds.
    Http { status: u16, retry_after: Option<u64> },
    /// gRPC code with optional RetryInfo (HTTP requests get 503).
    Grpc { code: tonic::Code, retry_info: Option<Duration> },
    /// Accept, but report this many records rejected.
    Partial { rejected: i64 },
    /// HTTP: 302 to [`LANDING`] on the same server, which answers any
    /// method with 200 and an HTML page. gRPC: UNAVAILABLE.
    Redirect,
    /// HTTP: 200 with an HTML page as the body. gRPC: UNAVAILABLE.
    Html,
}

/// Where [`Failure::Redirect`] sends the client.
pub(crate) const LANDING: &str = "/landing";
const LANDING_PAGE: &str = "<!doctype html><html><body><h1>Welcome</h1></body></html>";

#[derive(Default)]
struct State {
    records: Mutex<Vec<(Resource, LogRecord)>>,
    requests: AtomicU64,
    request_sizes: Mutex<Vec<usize>>,
    script: Mutex<VecDeque<Failure>>,
    always: Mutex<Option<Failure>>,
    until: Mutex<Option<(std::time::Instant, Failure)>>,
    landing_hits: AtomicU64,
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    request_times: Mutex<Vec<std::time::Instant>>,
}

impl State {
    fn next_failure(&self) -> Option<Failure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        lock(&self.request_times).push(std::time::Instant::now());
        let timed = || {
            let until = lock(&self.until);
            until.as_ref().filter(|(end, _)| std::time::Instant::now() < *end).map(|(_, f)| f.clone())
        };
        lock(&self.script).pop_front().or_else(timed).or_else(|| lock(&self.always).clone())
    }

    fn accept(&self, req: ExportLogsServiceRequest, size: usize, rejected: i64) -> ExportLogsServiceResponse {
        lock(&self.request_sizes).push(size);
        let mut records = lock(&self.records);
        for rl in req.resource_logs {
            let resource = rl.resource.unwrap_or_default();
            for sl in rl.scope_logs {
                for r in sl.log_records {
                    records.push((resource.clone(), r));
                }
            }
        }
        let partial_success = (rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message: "some records were rejected".into(),
        });
        ExportLogsServiceResponse { partial_success }
    }
}

/// A running receiver.
pub struct Receiver {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// `http`, or `https` when started with TLS.
    scheme: &'static str,
    state: Arc<State>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The `sim.seq` attribute of a record (the simulator's sequence number).
pub fn seq_of(r: &LogRecord) -> Option<u64> {
    r.attributes.iter().find(|kv| kv.key == "sim.seq").and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        Value::IntValue(i) => u64::try_from(*i).ok(),
        Value::StringValue(s) => s.parse().ok(),
        _ => None,
    })
}

impl Receiver {
    /// Starts both servers on loopback ports chosen by the system.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))), None).await
    }

    /// Starts on given addresses (port 0 for any); `http` defaults to any port.
    pub async fn start_on(grpc: SocketAddr, http: Option<SocketAddr>) -> std::io::Result<Self> {
        Self::start_with(grpc, http, None).await
    }

    /// Starts both servers on loopback with TLS (and mutual TLS when the
    /// options name a client CA).
    pub async fn start_tls(tls: &ReceiverTls) -> std::io::Result<Self> {
        Self::start_with(SocketAddr::from(([127, 0, 0, 1], 0)), None, Some(tls)).await
    }

    async fn start_with(
        grpc: SocketAddr,
        http: Option<SocketAddr>,
        tls: Option<&ReceiverTls>,
    ) -> std::io::Result<Self> {
        let grpc_tls = tls.map(ReceiverTls::grpc);
        let http_tls = tls.map(ReceiverTls::http).transpose()?;
        let state = Arc::new(State::default());
        let shutdown = CancellationToken::new();
        let grpc_listener = tokio::net::TcpListener::bind(grpc).await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_listener =
            tokio::net::TcpListener::bind(http.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
        let http_addr = http_listener.local_addr()?;

        let svc = LogsServiceServer::new(GrpcSvc(state.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(64 << 20);
        let metrics_svc = MetricsServiceServer::new(GrpcSvc(state.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(64 << 20);
        let token = shutdown.clone();
        let grpc_task = tokio::spawn(async move {
            let incoming = tokio_stream_from(grpc_listener);
            let mut builder = tonic::transport::Server::builder();
            if let Some(cfg) = grpc_tls {
                builder = match builder.tls_config(cfg) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "test receiver: bad TLS config");
                        return;
                    }
                };
            }
            let _ = builder
                .add_service(svc)
                .add_service(metrics_svc)
                .serve_with_incoming_shutdown(incoming, async move { token.cancelled().await })
                .await;
        });
        let st = state.clone();
        let st2 = state.clone();
        let st3 = state.clone();
        let router = axum::Router::new()
            .route("/v1/logs", axum::routing::post(move |h: HeaderMap, b: Bytes| http_logs(st.clone(), h, b)))
            .route("/v1/metrics", axum::routing::post(move |h: HeaderMap, b: Bytes| http_metrics(st2.clone(), h, b)))
            .route(LANDING, axum::routing::any(move || landing(st3.clone())))
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
        let token = shutdown.clone();
        let http_task = tokio::spawn(async move {
            let stop = async move { token.cancelled().await };
            let _ = match http_tls {
                None => axum::serve(http_listener, router).with_graceful_shutdown(stop).await,
                Some(acceptor) => {
                    let listener = TlsListener { tcp: http_listener, acceptor };
                    axum::serve(listener, router).with_graceful_shutdown(stop).await
                }
            };
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Self { grpc_addr, http_addr, scheme, state, shutdown, tasks: vec![grpc_task, http_task] })
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.grpc_addr)
    }

    pub fn http_endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.http_addr)
    }

    /// Answers the next requests with these failures, in order.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = Failure>) {
        lock(&self.state.script).extend(failures);
    }

    /// Answers every request with this failure for `span` from now (after
    /// the scripted ones): an endpoint that misbehaves for a while.
    pub fn fail_for(&self, span: Duration, failure: Failure) {
        *lock(&self.state.until) = Some((std::time::Instant::now() + span, failure));
    }

    /// Requests that reached the redirect's landing page.
    pub fn landing_hits(&self) -> u64 {
        self.state.landing_hits.load(Ordering::Relaxed)
    }

    /// Answers every request with this failure (after the scripted ones); `None` to heal.
    pub fn fail_always(&self, failure: Option<Failure>) {
        *lock(&self.state.always) = failure;
    }

    pub fn records(&self) -> Vec<(Resource, LogRecord)> {
        lock(&self.state.records).clone()
    }

    pub fn record_count(&self) -> usize {
        lock(&self.state.records).len()
    }

    /// Sequence numbers of the accepted records, in arrival order.
    pub fn seqs(&self) -> Vec<u64> {
        lock(&self.state.records).iter().filter_map(|(_, r)| seq_of(r)).collect()
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// When each log request arrived (accepted or failed).
    pub fn request_times(&self) -> Vec<std::time::Instant> {
        lock(&self.state.request_times).clone()
    }

    /// Encoded sizes of the accepted requests.
    pub fn request_sizes(&self) -> Vec<usize> {
        lock(&self.state.request_sizes).clone()
    }

    /// Metric export requests received (the sidecar's own telemetry).
    pub fn metric_requests(&self) -> Vec<ExportMetricsServiceRequest> {
        lock(&self.state.metrics).clone()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures_core::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| s);
        Some((next, l))
    })
}
