//! OTLP over TLS to the in-process receiver, with certificates made here:
//! the server verified through `exporter.tls.ca_file` and through
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`, mutual TLS with a client certificate,
//! and a server signed by another CA refused with an error that says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use forge_otel_sidecar::config::{Config, Protocol};
use forge_otel_sidecar::convert::Batch;
use forge_otel_sidecar::export::Transport;
use forge_otel_sidecar::testkit::receiver::Receiver;
use forge_otel_sidecar::testkit::tls::ReceiverTls;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn ok<T>(e: rcgen::Error) -> T {
    panic!("{e}")
}

fn pki(name: &str) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(ok);
    ca.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap_or_else(ok)).unwrap_or_else(ok);
    let leaf = |sans: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap_or_else(ok);
        let mut params = CertificateParams::new(sans).unwrap_or_else(ok);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).unwrap_or_else(ok);
        (cert.pem(), key.serialize_pem())
    };
    let server = leaf(vec!["127.0.0.1".into(), "localhost".into()], ExtendedKeyUsagePurpose::ServerAuth);
    let client = leaf(vec!["forge-otel-sidecar".into()], ExtendedKeyUsagePurpose::ClientAuth);
    Pki { ca_pem: ca.pem(), server, client }
}

/// Writes the PEM files a config names.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn batch(n: i64) -> Batch {
    let log_records = (0..n)
        .map(|i| LogRecord {
            body: Some(AnyValue { value: Some(Value::StringValue(format!("over TLS {i}"))) }),
            ..Default::default()
        })
        .collect();
    Batch::from(&ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records, ..Default::default() }],
            ..Default::default()
        }],
    })
}

/// The config as an operator writes it, `exporter_extra` under `exporter:`.
fn config(endpoint: &str, protocol: &str, exporter_extra: &str, env: &dyn Fn(&str) -> Option<String>) -> Config {
    let text = format!(
        "forge: {{email: a@b.c, api_token: t}}\nsources: [{{app_id: a, environment_id: e}}]\n\
         exporter:\n  protocol: {protocol}\n  endpoint: {endpoint}\n  timeout: 5s\n{exporter_extra}"
    );
    Config::from_yaml(&text, env).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// One attempt, no retries: `Ok` when the receiver accepted.
async fn send_once(cfg: &Config) -> Result<(), String> {
    let transport = Transport::new(&cfg.exporter).map_err(|e| e.to_string())?;
    let sent = tokio::time::timeout(Duration::from_secs(20), transport.send(&batch(3))).await;
    match sent {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.message),
        Err(_) => Err("no answer within 20s".into()),
    }
}

fn endpoints(rx: &Receiver) -> [(&'static str, String); 2] {
    [("grpc", rx.grpc_endpoint()), ("http/protobuf", rx.http_endpoint())]
}

#[tokio::test]
async fn server_verified_by_ca_file_and_by_the_certificate_variable() {
    let pki = pki("ours");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = write(dir.path(), "ca.pem", &pki.ca_pem);
    let tls = ReceiverTls { cert_pem: pki.server.0.clone(), key_pem: pki.server.1.clone(), client_ca_pem: None };
    let rx = Receiver::start_tls(&tls).await.unwrap_or_else(|e| panic!("{e}"));
    let no_env = |_: &str| None;
    let ca_text = ca.display().to_string();
    let by_variable = move |n: &str| (n == "OTEL_EXPORTER_OTLP_CERTIFICATE").then(|| ca_text.clone());
    let mut expected = 0;
    for (protocol, endpoint) in endpoints(&rx) {
        assert!(endpoint.starts_with("https://"));
        let cfg = config(&endpoint, protocol, &format!("  tls:\n    ca_file: {}\n", ca.display()), &no_env);
        assert_eq!(send_once(&cfg).await, Ok(()), "{protocol} with exporter.tls.ca_file");
        let cfg = config(&endpoint, protocol, "", &by_variable);
        assert_eq!(cfg.exporter.tls.ca_file.as_deref(), Some(ca.as_path()));
        assert_eq!(send_once(&cfg).await, Ok(()), "{protocol} with OTEL_EXPORTER_OTLP_CERTIFICATE");
        expected += 6;
        assert_eq!(rx.record_count(), expected);
    }
    assert!(matches!(
        config(&rx.http_endpoint(), "http/protobuf", "", &no_env).exporter.protocol,
        Protocol::HttpProtobuf
    ));
    rx.stop().await;
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = pki("ours");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = write(dir.path(), "ca.pem", &pki.ca_pem);
    let cert = write(dir.path(), "client.pem", &pki.client.0);
    let key = write(dir.path(), "client-key.pem", &pki.client.1);
    let tls = ReceiverTls {
        cert_pem: pki.server.0.clone(),
        key_pem: pki.server.1.clone(),
        client_ca_pem: Some(pki.ca_pem.clone()),
    };
    let rx = Receiver::start_tls(&tls).await.unwrap_or_else(|e| panic!("{e}"));
    let no_env = |_: &str| None;
    for (protocol, endpoint) in endpoints(&rx) {
        let before = rx.record_count();
        let anonymous = config(&endpoint, protocol, &format!("  tls:\n    ca_file: {}\n", ca.display()), &no_env);
        assert!(send_once(&anonymous).await.is_err(), "{protocol}: a client without a certificate got in");
        assert_eq!(rx.record_count(), before);
        // The client identity from the variables, the CA from the file.
        let (cert_text, key_text) = (cert.display().to_string(), key.display().to_string());
        let env = move |n: &str| match n {
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" => Some(cert_text.clone()),
            "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY" => Some(key_text.clone()),
            _ => None,
        };
        let with_identity = config(&endpoint, protocol, &format!("  tls:\n    ca_file: {}\n", ca.display()), &env);
        assert_eq!(send_once(&with_identity).await, Ok(()), "{protocol} with a client certificate");
        assert_eq!(rx.record_count(), before + 3);
        let in_file = format!(
            "  tls:\n    ca_file: {}\n    cert_file: {}\n    key_file: {}\n",
            ca.display(),
            cert.display(),
            key.display()
        );
        assert_eq!(send_once(&config(&endpoint, protocol, &in_file, &no_env)).await, Ok(()), "{protocol}");
    }
    rx.stop().await;
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused_with_a_clear_error() {
    let ours = pki("ours");
    let theirs = pki("theirs");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = write(dir.path(), "ca.pem", &ours.ca_pem);
    let tls = ReceiverTls { cert_pem: theirs.server.0.clone(), key_pem: theirs.server.1.clone(), client_ca_pem: None };
    let rx = Receiver::start_tls(&tls).await.unwrap_or_else(|e| panic!("{e}"));
    for (protocol, endpoint) in endpoints(&rx) {
        let cfg = config(&endpoint, protocol, &format!("  tls:\n    ca_file: {}\n", ca.display()), &|_| None);
        let err = send_once(&cfg).await.err().unwrap_or_default();
        assert!(err.to_ascii_lowercase().contains("certificate"), "{protocol}: {err}");
        assert!(err.contains("UnknownIssuer"), "{protocol}: {err}");
    }
    assert_eq!(rx.record_count(), 0);
    rx.stop().await;
}
