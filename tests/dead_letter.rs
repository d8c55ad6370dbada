//! The dead-letter file's round trip: records a backend rejected land in
//! the file, `replay` sends them again to the in-process receiver, the
//! file is rotated, and what fails again stays in a new file; the
//! `dead-letter` commands of the binary do the same.

use std::path::Path;
use std::time::Duration;

use forge_otel_sidecar::config::{Compression, ExporterConfig, Protocol, RetryConfig, TlsConfig};
use forge_otel_sidecar::convert::Batch;
use forge_otel_sidecar::export::deadletter::{self, FILE_NAME};
use forge_otel_sidecar::export::{DeadLetter, Delivered, Exporter, Transport};
use forge_otel_sidecar::metrics::SourceMetrics;
use forge_otel_sidecar::testkit::receiver::{Failure, Receiver};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use tokio_util::sync::CancellationToken;

fn exporter_config(protocol: Protocol, endpoint: String) -> ExporterConfig {
    ExporterConfig {
        protocol,
        endpoint,
        endpoint_as_is: false,
        headers: Vec::new(),
        compression: Compression::None,
        timeout: Duration::from_secs(5),
        max_request_bytes: 4 << 20,
        tls: TlsConfig::default(),
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_millis(50),
            max_elapsed: Some(Duration::from_secs(2)),
        },
    }
}

/// A request of records with `sim.seq` from `seqs`.
fn batch(seqs: std::ops::Range<i64>) -> Batch {
    let log_records = seqs
        .map(|i| LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            body: Some(AnyValue { value: Some(Value::StringValue(format!("record {i}"))) }),
            attributes: vec![KeyValue {
                key: "sim.seq".into(),
                value: Some(AnyValue { value: Some(Value::IntValue(i)) }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records, ..Default::default() }],
            ..Default::default()
        }],
    };
    Batch::from(&req)
}

fn exporter(cfg: &ExporterConfig, state: &Path) -> Exporter {
    let transport = Transport::new(cfg).unwrap_or_else(|e| panic!("{e}"));
    Exporter::new(transport, cfg.retry.clone(), DeadLetter::new(state, 1 << 20))
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn replayed_files(state: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> =
        std::fs::read_dir(state).map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
    out.retain(|p| p.to_string_lossy().contains(".replayed-"));
    out.sort();
    out
}

/// Rejected records are written to the file by the exporter itself.
async fn dead_letter_three(rx: &Receiver, ex: &Exporter) {
    rx.fail_always(Some(Failure::Http { status: 400, retry_after: None }));
    let metrics = SourceMetrics::new("prod", "app");
    for k in 0..3 {
        let got = ex.deliver(&batch(k * 10..k * 10 + 10), &metrics, &CancellationToken::new()).await;
        assert!(matches!(got, Ok(Delivered::DeadLettered { records: 10, .. })), "{got:?}");
    }
    rx.fail_always(None);
}

#[tokio::test]
async fn replay_redelivers_rotates_and_keeps_what_fails_again() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
        let endpoint = if protocol == Protocol::Grpc { rx.grpc_endpoint() } else { rx.http_endpoint() };
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = exporter_config(protocol, endpoint);
        let ex = exporter(&cfg, state.path());
        dead_letter_three(&rx, &ex).await;
        let live = state.path().join(FILE_NAME);
        // A line that is not an entry is kept, never dropped.
        let mut text = std::fs::read_to_string(&live).unwrap_or_default();
        text.push_str("{truncated\n");
        std::fs::write(&live, &text).unwrap_or_else(|e| panic!("{e}"));
        let summary = deadletter::summarize(state.path(), false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((summary.entries, summary.records, summary.unreadable), (3, 30, 1));
        assert_eq!(rx.record_count(), 0);

        // The first request is rejected again; the other two go through.
        rx.fail_next([Failure::Http { status: 400, retry_after: None }]);
        let report = deadletter::replay(state.path(), &ex, 1_000, &CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((report.entries, report.delivered, report.dead_lettered, report.kept_lines), (3, 20, 10, 1));
        assert!(!report.complete());
        let mut seqs = rx.seqs();
        seqs.sort_unstable();
        assert_eq!(seqs, (10..30).collect::<Vec<u64>>(), "{protocol:?}");
        // The replayed file is kept whole; the new file holds what failed again and the unreadable line.
        let rotated = replayed_files(state.path());
        assert_eq!(rotated.len(), 1);
        assert_eq!(lines(&rotated[0]), text.lines().map(str::to_string).collect::<Vec<_>>());
        let now = deadletter::summarize(state.path(), false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((now.entries, now.records, now.unreadable), (1, 10, 1));

        // Once the backend takes them, every record has arrived exactly once.
        let report = deadletter::replay(state.path(), &ex, 2_000, &CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((report.delivered, report.dead_lettered, report.kept_lines), (10, 0, 1));
        let mut seqs = rx.seqs();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..30).collect::<Vec<u64>>());
        assert_eq!(replayed_files(state.path()).len(), 2);
        assert_eq!(lines(&live), ["{truncated"]);
        rx.stop().await;
    }
}

#[tokio::test]
async fn replay_stops_when_the_backend_is_unreachable() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ex = exporter(&exporter_config(Protocol::HttpProtobuf, rx.http_endpoint()), state.path());
    dead_letter_three(&rx, &ex).await;
    // 503 is retryable: the first request gives up after max_elapsed, the rest are not tried.
    rx.fail_always(Some(Failure::Http { status: 503, retry_after: None }));
    let mut cfg = exporter_config(Protocol::HttpProtobuf, rx.http_endpoint());
    cfg.retry.max_elapsed = Some(Duration::from_millis(200));
    let ex = exporter(&cfg, state.path());
    let report =
        deadletter::replay(state.path(), &ex, 1_000, &CancellationToken::new()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.entries, report.dead_lettered, report.kept_lines), (1, 10, 2), "{report}");
    assert!(report.stopped.as_deref().is_some_and(|s| s.starts_with("gave up after")), "{report}");
    let now = deadletter::summarize(state.path(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((now.entries, now.records), (3, 30), "nothing lost");
    rx.stop().await;
}

fn run(args: &[&str], config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_forge-otel-sidecar"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("FORGE_OTEL_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_commands_show_and_replay() {
    let rx = Receiver::start().await.unwrap_or_else(|e| panic!("{e}"));
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dl = DeadLetter::new(state.path(), 1 << 20);
    for k in 0..2 {
        dl.write("prod", "HTTP 400 from collector: bad", 1_000 + k, &batch(k * 5..k * 5 + 5))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let config = state.path().join("config.yaml");
    let text = format!(
        "forge: {{email: a@b.c, api_token: t}}\nsources: [{{app_id: a, environment_id: e}}]\n\
         exporter: {{protocol: http/protobuf, endpoint: '{}'}}\nstate: {{dir: '{}'}}\nserver: {{enabled: false}}\n",
        rx.http_endpoint(),
        state.path().display()
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));

    let c = config.clone();
    let show = tokio::task::spawn_blocking(move || run(&["dead-letter", "show", "--entries"], &c))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = String::from_utf8_lossy(&show.stdout);
    assert_eq!(show.status.code(), Some(0), "{out}");
    assert!(out.contains("entries: 2, records: 10"), "{out}");
    assert!(out.contains("10 records in 2 entries: HTTP 400 from collector: bad"), "{out}");
    assert!(out.contains("oldest: 1970-01-01T00:00:01.000Z"), "{out}");

    let c = config.clone();
    let replay = tokio::task::spawn_blocking(move || run(&["dead-letter", "replay"], &c))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&replay.stderr));
    assert!(out.contains("10 records delivered"), "{out}");
    let mut seqs = rx.seqs();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..10).collect::<Vec<u64>>());
    assert!(!state.path().join(FILE_NAME).exists());
    assert_eq!(replayed_files(state.path()).len(), 1);

    let c = state.path().join("missing.yaml");
    let bad = tokio::task::spawn_blocking(move || run(&["dead-letter", "replay"], &c))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.status.code(), Some(2));
    rx.stop().await;
}
