//! Delivery over every protocol to the in-process receiver, with the
//! retry, dead-letter and partial-success rules.

use std::sync::atomic::Ordering;
use std::time::Duration;

use forge_otel_sidecar::config::{Compression, ExporterConfig, Protocol, RetryConfig, TlsConfig};
use forge_otel_sidecar::convert::{self, Batch, RequestHead};
use forge_otel_sidecar::export::{DeadLetter, Delivered, Exporter, Transport};
use forge_otel_sidecar::forge::model;
use forge_otel_sidecar::metrics::SourceMetrics;
use forge_otel_sidecar::testkit::receiver::{Failure, Receiver};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio_util::sync::CancellationToken;

fn exporter_config(protocol: Protocol, endpoint: String, compression: Compression) -> ExporterConfig {
    ExporterConfig {
        protocol,
        endpoint,
        endpoint_as_is: false,
        headers: vec![("x-api-key".into(), forge_otel_sidecar::secret::Secret::new("k"))],
        compression,
        timeout: Duration::from_secs(5),
        max_request_bytes: 4 << 20,
        tls: TlsConfig::default(),
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(2),
            max_elapsed: None,
        },
    }
}

fn records(n: u64) -> Vec<opentelemetry_proto::tonic::logs::v1::LogRecord> {
    (0..n)
        .map(|i| {
            let rec = model::LogRecord {
                time_unix_nano: Some(model::NumOrStr::Str((1_700_000_000_000_000_000u64 + i).to_string())),
                severity_number: Some(model::NumOrStr::Int(30)),
                severity_text: Some("INFO".into()),
                body: Some(model::AnyValue::string(format!("record {i} {}", "x".repeat(200)))),
                attributes: vec![model::KeyValue {
                    key: "sim.seq".into(),
                    value: Some(model::AnyValue {
                        int_value: Some(model::NumOrStr::Str(i.to_string())),
                        ..Default::default()
                    }),
                }],
                ..Default::default()
            };
            convert::record(&rec, 1, &mut convert::ConvertStats::default())
        })
        .collect()
}

fn request(n: u64) -> Batch {
    let mut reqs = convert::requests(&Resource::default(), records(n), 64 << 20);
    Batch::from(&reqs.pop().unwrap_or_default())
}

struct Setup {
    exporter: Exporter,
    metrics: SourceMetrics,
    _dir: tempfile::TempDir,
}

fn setup(cfg: &ExporterConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let transport = Transport::new(cfg).unwrap_or_else(|e| panic!("{e}"));
    let dl = DeadLetter::new(dir.path(), 1 << 20);
    Setup {
        exporter: Exporter::new(transport, cfg.retry.clone(), dl),
        metrics: SourceMetrics::new("src", "app"),
        _dir: dir,
    }
}

async fn deliver(s: &Setup, req: &Batch) -> Delivered {
    let r =
        tokio::time::timeout(Duration::from_secs(30), s.exporter.deliver(req, &s.metrics, &CancellationToken::new()))
            .await;
    match r {
        Ok(Ok(d)) => d,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_protocol_and_compression_delivers() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    let mut expected = 0;
    for (protocol, endpoint) in [
        (Protocol::Grpc, rx.grpc_endpoint()),
        (Protocol::HttpProtobuf, rx.http_endpoint()),
        (Protocol::HttpJson, format!("{}/v1/logs", rx.http_endpoint())),
    ] {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let s = setup(&exporter_config(protocol, endpoint.clone(), compression));
            assert_eq!(deliver(&s, &request(10)).await, Delivered::Accepted { records: 10, rejected: 0 });
            expected += 10;
            assert_eq!(rx.record_count(), expected, "{protocol:?} {compression:?}");
        }
    }
    // What arrived is what was sent, field by field.
    let (_, first) = &rx.records()[0];
    assert_eq!(first, &records(1)[0]);
    let (_, json_rec) = &rx.records()[60];
    assert_eq!(json_rec, &records(1)[0], "OTLP/JSON round-trips exactly");
    rx.stop().await;
}

#[tokio::test]
async fn retryable_failures_are_retried_and_arrive_once() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    for (protocol, endpoint) in [(Protocol::HttpProtobuf, rx.http_endpoint()), (Protocol::Grpc, rx.grpc_endpoint())] {
        let before = rx.record_count();
        rx.fail_next([
            Failure::Http { status: 503, retry_after: Some(1) },
            Failure::Http { status: 429, retry_after: None },
            Failure::Grpc { code: tonic::Code::Unavailable, retry_info: None },
            Failure::Grpc { code: tonic::Code::ResourceExhausted, retry_info: Some(Duration::from_millis(50)) },
        ]);
        let s = setup(&exporter_config(protocol, endpoint, Compression::None));
        assert_eq!(deliver(&s, &request(5)).await, Delivered::Accepted { records: 5, rejected: 0 });
        assert_eq!(rx.record_count() - before, 5, "{protocol:?}: arrives once");
        assert_eq!(s.metrics.export_retries.load(Ordering::Relaxed), 4);
        assert_eq!(s.metrics.sent.load(Ordering::Relaxed), 5);
    }
    rx.stop().await;
}

#[tokio::test]
async fn connection_refused_is_retried_until_the_collector_comes_up() {
    // Find a free port, leave it closed, start delivering, then open it.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = probe.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(probe);
    for protocol in [Protocol::Grpc, Protocol::HttpJson] {
        let endpoint = format!("http://{addr}");
        let s = setup(&exporter_config(protocol, endpoint, Compression::Gzip));
        let req = request(3);
        let cancel = CancellationToken::new();
        let delivery = s.exporter.deliver(&req, &s.metrics, &cancel);
        let opener = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (g, h) = if protocol == Protocol::Grpc {
                (addr, None)
            } else {
                ("127.0.0.1:0".parse().unwrap_or(addr), Some(addr))
            };
            Receiver::start_on(g, h).await.unwrap_or_else(|e| panic!("{e}"))
        };
        let (result, rx) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(delivery, opener) })
            .await
            .unwrap_or_else(|_| panic!("{protocol:?}: no delivery after the collector came up"));
        assert!(matches!(result, Ok(Delivered::Accepted { records: 3, rejected: 0 })), "{result:?}");
        assert_eq!(rx.record_count(), 3);
        assert!(s.metrics.export_retries.load(Ordering::Relaxed) >= 1);
        assert!(s.metrics.status().last_export_error.is_some());
        rx.stop().await;
    }
}

#[tokio::test]
async fn permanent_rejection_is_dead_lettered_and_counted() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    for (protocol, endpoint, failure) in [
        (Protocol::HttpProtobuf, rx.http_endpoint(), Failure::Http { status: 400, retry_after: None }),
        (Protocol::HttpJson, rx.http_endpoint(), Failure::Http { status: 413, retry_after: None }),
        (Protocol::HttpProtobuf, rx.http_endpoint(), Failure::Http { status: 500, retry_after: Some(1) }),
        (Protocol::Grpc, rx.grpc_endpoint(), Failure::Grpc { code: tonic::Code::InvalidArgument, retry_info: None }),
        (Protocol::Grpc, rx.grpc_endpoint(), Failure::Grpc { code: tonic::Code::ResourceExhausted, retry_info: None }),
    ] {
        rx.fail_next([failure.clone()]);
        let s = setup(&exporter_config(protocol, endpoint, Compression::None));
        let before = rx.requests();
        let d = deliver(&s, &request(7)).await;
        assert!(matches!(d, Delivered::DeadLettered { records: 7, .. }), "{failure:?}: {d:?}");
        assert_eq!(rx.requests() - before, 1, "{failure:?}: not retried");
        assert_eq!(s.metrics.dead_lettered.load(Ordering::Relaxed), 7);
        let text = std::fs::read_to_string(s.exporter.dead_letter_path()).unwrap_or_default();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_default();
        assert_eq!(line["records"], 7);
        assert_eq!(line["source"], "src");
        let back: ExportLogsServiceRequest = serde_json::from_value(line["request"].clone()).unwrap_or_default();
        assert_eq!(back, request(7).request().unwrap_or_default(), "the dead letter holds the whole request");
    }
    rx.stop().await;
}

#[tokio::test]
async fn a_full_dead_letter_file_refuses_instead_of_dropping() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    rx.fail_always(Some(Failure::Http { status: 400, retry_after: None }));
    let cfg = exporter_config(Protocol::HttpProtobuf, rx.http_endpoint(), Compression::None);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let transport = Transport::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let exporter = Exporter::new(transport, cfg.retry.clone(), DeadLetter::new(dir.path(), 2048));
    let m = SourceMetrics::new("src", "app");
    let r = exporter.deliver(&request(50), &m, &CancellationToken::new()).await;
    assert!(matches!(r, Err(forge_otel_sidecar::export::DeliverError::DeadLetter(_))), "{r:?}");
    assert_eq!(m.dead_lettered.load(Ordering::Relaxed), 0);
    rx.stop().await;
}

#[tokio::test]
async fn partial_success_is_counted_not_retried() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    for (protocol, endpoint) in [
        (Protocol::Grpc, rx.grpc_endpoint()),
        (Protocol::HttpJson, rx.http_endpoint()),
        (Protocol::HttpProtobuf, rx.http_endpoint()),
    ] {
        rx.fail_next([Failure::Partial { rejected: 3 }]);
        let s = setup(&exporter_config(protocol, endpoint, Compression::None));
        let before = rx.requests();
        assert_eq!(deliver(&s, &request(10)).await, Delivered::Accepted { records: 10, rejected: 3 });
        assert_eq!(rx.requests() - before, 1);
        assert_eq!(s.metrics.rejected.load(Ordering::Relaxed), 3);
        assert_eq!(s.metrics.sent.load(Ordering::Relaxed), 7);
    }
    rx.stop().await;
}

#[tokio::test]
async fn oversized_batches_are_split_below_the_limit() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    let max = 16 * 1024;
    let encoded: Vec<Vec<u8>> = records(500).iter().map(Message::encode_to_vec).collect();
    let head = RequestHead::new(&Resource::default());
    let reqs: Vec<_> = convert::batches(&head, encoded.iter().map(Vec::as_slice), max).collect();
    assert!(reqs.len() > 5);
    let s = setup(&exporter_config(Protocol::Grpc, rx.grpc_endpoint(), Compression::None));
    for r in &reqs {
        deliver(&s, r).await;
    }
    assert_eq!(rx.record_count(), 500);
    assert!(rx.request_sizes().iter().all(|n| *n <= max), "{:?}", rx.request_sizes());
    rx.stop().await;
}

#[tokio::test]
async fn cancellation_interrupts_retries_not_requests() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    rx.fail_always(Some(Failure::Http { status: 503, retry_after: None }));
    let s = setup(&exporter_config(Protocol::HttpProtobuf, rx.http_endpoint(), Compression::None));
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c2.cancel();
    });
    let r = tokio::time::timeout(Duration::from_secs(10), s.exporter.deliver(&request(2), &s.metrics, &cancel)).await;
    assert!(matches!(r, Ok(Err(forge_otel_sidecar::export::DeliverError::Cancelled))), "{r:?}");
    assert_eq!(s.metrics.dead_lettered.load(Ordering::Relaxed), 0);
    rx.stop().await;
}
