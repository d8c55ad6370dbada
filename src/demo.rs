//! `demo`: the simulator, the sidecar and a readable console, in one
//! process, with no network and no Atlassian account.
//!
//! The simulator serves a stretch of history plus live records (some
//! late); the sidecar polls it with short intervals under the real 30
//! calls per minute budget and delivers to the console, and also to an
//! OTLP endpoint when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Beside the
//! logs, an App metrics source (5 calls per minute) prints a line per
//! minute of data: invocations, errors, p95 latency ([`metrics`]).

mod metrics;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use crate::app::{App, Options};
use crate::config::{self, Config};
use crate::export::metrics::{MetricsSink, MetricsTransport};
use crate::export::{SendError, Sink, Transport};
use crate::simulator::{self, SimConfig};
use crate::timefmt::format_millis;

/// The demo's App metrics source's app (the API wants a uuid).
pub(crate) const DEMO_METRICS_APP: &str = "0d3e5f7a-1b2c-4d4e-8f6a-7b8c9d0e1f2a";

pub struct DemoOptions {
    pub duration: Option<Duration>,
    pub history: Duration,
    pub records_per_second: f64,
}

/// Prints each record on one line: time, level, site, function, message.
pub(crate) struct Console {
    color: bool,
}

impl Console {
    pub fn new() -> Self {
        Self { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
    }

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a str> {
        r.attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
    }

    pub fn line(&self, r: &LogRecord) -> String {
        let time = format_millis((r.time_unix_nano / 1_000_000) as i64);
        let level = if r.severity_text.is_empty() { "-" } else { r.severity_text.as_str() };
        let colour = match r.severity_number {
            0..=4 => "90",
            5..=8 => "36",
            9..=12 => "32",
            13..=16 => "33",
            _ => "31",
        };
        let site = Self::attr(r, "installationContext")
            .and_then(|s| s.rsplit('/').next())
            .map(|id| id.chars().take(8).collect::<String>())
            .unwrap_or_else(|| "-".into());
        let function = Self::attr(r, "functionKey").unwrap_or("-");
        let body = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let first = body.lines().next().unwrap_or("");
        let more = if body.contains('\n') { " …" } else { "" };
        let level = format!("{level:<5}");
        let level = if self.color { format!("\x1b[{colour}m{level}\x1b[0m") } else { level };
        format!("{} {level} site {site:<8} {function:<18} {first}{more}", &time[11..23])
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for Console {
    fn send(&self, req: &ExportLogsServiceRequest) -> Result<(u64, String), SendError> {
        let mut out = String::new();
        for rl in &req.resource_logs {
            for sl in &rl.scope_logs {
                for r in &sl.log_records {
                    out.push_str(&self.line(r));
                    out.push('\n');
                }
            }
        }
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        let _ = lock.write_all(out.as_bytes());
        let _ = lock.flush();
        Ok((0, String::new()))
    }
}

/// The sidecar config the demo runs with, pointed at the simulator.
pub(crate) fn demo_config(
    base_url: &str,
    state_dir: &std::path::Path,
    history: Duration,
    env: config::EnvLookup<'_>,
) -> Result<Config, config::ConfigError> {
    let otlp = env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT").is_some();
    let text = format!(
        r#"
forge:
  base_url: {base_url}
  email: demo@example.com
  api_token: demo-token
sources:
  - app_id: demo-app
    environment_id: production
    name: demo
    service_name: forge-demo-app
metrics_sources:
  - name: demo-metrics
    app_id: {metrics_app}
    environments: [production]
    metrics: [{metrics}]
    service_name: forge-demo-app
poll:
  interval: 2s
  settle_delay: 2s
  late_arrival: 30s
  initial_lookback: {lookback}
  backoff_initial: 200ms
  backoff_max: 5s
exporter:
  protocol: {protocol}
state:
  dir: {state}
server:
  listen: 127.0.0.1:0
log:
  level: warn
"#,
        lookback = humantime::format_duration(history),
        metrics_app = DEMO_METRICS_APP,
        metrics = metrics::DEMO_METRICS.join(", "),
        protocol = if otlp { "${OTEL_EXPORTER_OTLP_PROTOCOL:-grpc}" } else { "stdout" },
        state = state_dir.display(),
    );
    Config::from_yaml(&text, env)
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let sim_cfg = SimConfig {
        history: opts.history + Duration::from_secs(60),
        records_per_second: opts.records_per_second,
        page_size: 1000,
        max_late: Duration::from_secs(20),
        apps: vec![
            ("demo-app".into(), vec!["production".into()]),
            (DEMO_METRICS_APP.into(), vec!["production".into()]),
        ],
        ..SimConfig::default()
    };
    let sim = simulator::start(sim_cfg, ([127, 0, 0, 1], 0).into()).await?;
    let state = std::env::temp_dir().join(format!("forge-otel-sidecar-demo-{}", std::process::id()));
    let cfg = demo_config(&sim.base_url(), &state, opts.history, &config::process_env)?;
    let console: Arc<dyn Sink> = Arc::new(Console::new());
    let transport = match cfg.exporter.protocol {
        config::Protocol::Stdout => Transport::Sink(console),
        _ => {
            eprintln!("also delivering to {} ({:?})", cfg.exporter.endpoint, cfg.exporter.protocol);
            Transport::Tee(Box::new(Transport::new(&cfg.exporter)?), console)
        }
    };
    let metrics_console: Arc<dyn MetricsSink> = Arc::new(metrics::MetricsConsole::new(Box::new(std::io::stdout())));
    let metrics_transport = match cfg.metrics_exporter.as_ref().filter(|e| e.protocol != config::Protocol::Stdout) {
        None => MetricsTransport::Sink(metrics_console),
        Some(e) => MetricsTransport::Tee(Box::new(MetricsTransport::new(e)?), metrics_console),
    };
    let budget = cfg.forge.requests_per_minute;
    let options = Options { transport: Some(transport), metrics_transport: Some(metrics_transport), clock: None };
    let app = App::start(cfg, options).await?;
    eprintln!(
        "forge-otel-sidecar demo: Forge API simulator at {} · status at http://{}/status · Ctrl-C to stop",
        sim.base_url(),
        app.server_addr.map(|a| a.to_string()).unwrap_or_default()
    );
    let registry = app.registry.clone();
    let summary = async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = crate::timefmt::system_millis(std::time::SystemTime::now());
            for m in registry.sources() {
                let lag = (now - m.watermark_ms.load(Ordering::Relaxed)) as f64 / 1000.0;
                let (what, budget) = match m.metrics_source.get() {
                    Some(info) => ("metrics points", info.calls_per_period),
                    None => ("records", budget),
                };
                eprintln!(
                    "── {} {:?} · {what} delivered {} · duplicates dropped {} · API calls last minute {}/{} · lag {:.0}s",
                    m.source,
                    m.status().state,
                    m.sent.load(Ordering::Relaxed),
                    m.duplicates.load(Ordering::Relaxed),
                    m.calls_last_minute(now),
                    budget,
                    lag,
                );
            }
        }
    };
    let stop = async {
        match opts.duration {
            Some(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = crate::shutdown_signal() => {}
                }
            }
            None => crate::shutdown_signal().await,
        }
    };
    tokio::select! {
        () = stop => {}
        () = summary => {}
    }
    app.shutdown(Duration::from_secs(10)).await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
