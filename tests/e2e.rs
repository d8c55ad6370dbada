//! The built binary delivering through a real OpenTelemetry collector
//! (rotel) over gRPC and over HTTP.

mod common;
mod harness;

use std::time::Duration;

use common::*;
use harness::*;

fn config(sim_url: &str, protocol: &str, endpoint: &str, state: &std::path::Path, port: u16) -> String {
    SidecarYaml {
        base_url: sim_url.to_string(),
        email: "demo@example.com",
        token_line: "api_token: ${env:FORGE_API_TOKEN}",
        request_timeout: "30s",
        initial_lookback: "31m",
        source_extra: "    service_name: checkout-app\n    resource_attributes: {deployment.environment.name: e2e}",
        poll_extra: "",
        protocol,
        endpoint: endpoint.to_string(),
        exporter_extra: "  compression: gzip",
        state,
        listen: format!("127.0.0.1:{port}"),
        extra: "log: {format: json}",
    }
    .render()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_through_a_real_collector_over_grpc_and_http() {
    let Some(rotel) = require_rotel() else { return };
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        let sim = sim(SimulatorConfig::e2e()).await;
        let rx = receiver().await;
        let collector = Collector::start(&rotel, Some(&rx));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let endpoint = if protocol == "grpc" { collector.grpc_endpoint() } else { collector.http_endpoint() };
        let port = free_port();
        let mut sidecar = Sidecar::start(
            dir.path(),
            &config(&sim.base_url(), protocol, &endpoint, dir.path(), port),
            port,
            &[("FORGE_API_TOKEN", "demo-token")],
        );
        tokio::time::sleep(Duration::from_secs(6)).await;
        let t = wait_for_all(&sim, &rx, settled_cutoff(), Duration::from_secs(30)).await;
        println!("{protocol} via rotel: {t:?}");
        assert_eq!((t.lost, t.dups), (0, 0), "{protocol}: {t:?}\n{}", sidecar.proc.text());
        assert!(t.expected > 3000);

        // What the collector itself printed.
        let out = collector.proc.text();
        for want in [
            "service.name: Str(checkout-app)",
            "forge.app.id: Str(demo-app)",
            "forge.environment.id: Str(production)",
            "deployment.environment.name: Str(e2e)",
            "SeverityNumber: SEVERITY_NUMBER_INFO(9)",
            "SeverityNumber: SEVERITY_NUMBER_ERROR(17)",
            "forge.severity_number: Int(30)",
            "Body: Str(seq=",
            "installationContext: Str(ari:cloud:",
        ] {
            assert!(out.contains(want), "{protocol}: collector output lacks {want:?}");
        }
        // The sidecar's own OTEL_* resource never reaches the records.
        assert!(
            !out.contains("leak.check") && !out.contains("sidecar-self"),
            "{protocol}: OTEL_RESOURCE_ATTRIBUTES leaked into records"
        );
        // Trace ids as the API gave them: pick one record and find its id in the collector's output.
        let records = rx.records();
        let traced = records
            .iter()
            .map(|(_, r)| r)
            .find(|r| !r.trace_id.is_empty())
            .map(|r| r.trace_id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let traced = traced.unwrap_or_else(|| panic!("no traced record"));
        assert!(
            out.contains(&format!("Trace ID       : {traced}")),
            "{protocol}: trace id {traced} not in collector output"
        );
        // Bodies with quotes, backslashes, non-ASCII and newlines arrive intact.
        let bodies: Vec<String> = records
            .iter()
            .filter_map(|(_, r)| match r.body.as_ref()?.value.as_ref()? {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        for want in [
            "\"https://example.com/api\"",
            "C:\\forge\\tmp",
            "Überprüfung abgeschlossen ✓ 完了",
            "stack trace:\n  at handler",
        ] {
            assert!(bodies.iter().any(|b| b.contains(want)), "{protocol}: no body contains {want:?}");
        }
        let healthcheck = |port: u16| {
            std::process::Command::new(sidecar_bin())
                .args(["healthcheck", "--addr", &format!("0.0.0.0:{port}")])
                .output()
                .map(|o| o.status.code())
        };
        assert_eq!(healthcheck(port).ok().flatten(), Some(0), "healthcheck on a healthy sidecar");
        let code = sidecar.proc.terminate(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{protocol}: SIGTERM exits 0\n{}", sidecar.proc.text());
        assert_eq!(healthcheck(port).ok().flatten(), Some(1), "healthcheck on a stopped sidecar");
        assert!(!sidecar.proc.text().contains("demo-token"), "the token never appears in output");
        sim.stop().await;
        rx.stop().await;
    }
}

struct SimulatorConfig;

impl SimulatorConfig {
    fn e2e() -> forge_otel_sidecar::simulator::SimConfig {
        forge_otel_sidecar::simulator::SimConfig { history: Duration::from_secs(1800), ..fast_sim() }
    }
}
