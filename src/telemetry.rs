//! The sidecar's own metrics, pushed over OTLP with the OpenTelemetry SDK.
//!
//! The same counters `/metrics` shows, read from the [`Registry`] by
//! observable instruments and exported every `telemetry.otlp.interval`.
//! The SDK's trade-offs (a periodic reader, no per-batch acknowledgement)
//! are fine here; the log data path never goes through it (DESIGN.md 2).
//! The resource honours `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
//! and defaults `service.name` to `forge-otel-sidecar`; it is separate
//! from the Forge records' resources, which come from the config only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;

use crate::config::{EnvLookup, ExporterConfig, Protocol, TelemetryOtlp};
use crate::export::SetupError;
use crate::metrics::{Registry, SourceMetrics, lock};

pub struct Telemetry {
    provider: SdkMeterProvider,
}

fn attrs(m: &SourceMetrics) -> [KeyValue; 2] {
    [KeyValue::new("app", m.app.clone()), KeyValue::new("source", m.source.clone())]
}

/// The resource of the sidecar's own telemetry.
pub fn resource(env: EnvLookup<'_>) -> Resource {
    let named_by_env = env("OTEL_SERVICE_NAME").is_some_and(|v| !v.is_empty())
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| v.contains("service.name="));
    let mut builder = Resource::builder();
    if !named_by_env {
        builder = builder.with_service_name(env!("CARGO_PKG_NAME"));
    }
    builder.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))).build()
}

impl Telemetry {
    /// Starts pushing; must run inside the tokio runtime.
    pub fn start(cfg: &TelemetryOtlp, exporter: &ExporterConfig, registry: Arc<Registry>) -> Result<Self, SetupError> {
        crate::tls::install_crypto_provider();
        // The exporter's headers (API keys) go only to the exporter's own endpoint.
        let headers: HashMap<String, String> = if cfg.endpoint == exporter.endpoint {
            exporter.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect()
        } else {
            HashMap::new()
        };
        let bad = |e: &dyn std::fmt::Display| SetupError(format!("telemetry.otlp: {e}"));
        let metric_exporter = match cfg.protocol {
            Protocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in &headers {
                    if let (Ok(k), Ok(v)) = (
                        tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                        tonic::metadata::MetadataValue::try_from(v.as_str()),
                    ) {
                        metadata.insert(k, v);
                    }
                }
                opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(cfg.endpoint.clone())
                    .with_timeout(exporter.timeout)
                    .with_metadata(metadata)
                    .build()
                    .map_err(|e| bad(&e))?
            }
            _ => opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(format!(
                    "{}/v1/metrics",
                    cfg.endpoint.trim_end_matches('/').trim_end_matches("/v1/logs")
                ))
                .with_timeout(exporter.timeout)
                .with_headers(headers)
                .build()
                .map_err(|e| bad(&e))?,
        };
        let reader = PeriodicReader::builder(metric_exporter, opentelemetry_sdk::runtime::Tokio)
            .with_interval(cfg.interval)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource(&crate::config::process_env))
            .build();
        register(&provider, registry);
        Ok(Self { provider })
    }

    /// Pushes what is pending and stops.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "telemetry shutdown");
        }
    }
}

type Read = fn(&SourceMetrics) -> u64;

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn register(provider: &SdkMeterProvider, registry: Arc<Registry>) {
    let meter = provider.meter(env!("CARGO_PKG_NAME"));
    let counters: [(&'static str, &'static str, Read); 12] = [
        ("forge_sidecar_received_log_records", "Records fetched inside their window.", |m| load(&m.received)),
        ("forge_sidecar_sent_log_records", "Records accepted by the backend.", |m| load(&m.sent)),
        ("forge_sidecar_rejected_log_records", "Records refused in a partial success.", |m| load(&m.rejected)),
        ("forge_sidecar_send_failed_log_records", "Records whose export failed for good.", |m| load(&m.send_failed)),
        ("forge_sidecar_dead_lettered_log_records", "Records written to the dead-letter file.", |m| {
            load(&m.dead_lettered)
        }),
        ("forge_sidecar_duplicate_log_records", "Records dropped as already delivered.", |m| load(&m.duplicates)),
        ("forge_sidecar_rate_limited", "429 answers from the Forge API.", |m| load(&m.rate_limited)),
        ("forge_sidecar_pages", "Pages fetched and processed.", |m| load(&m.pages)),
        ("forge_sidecar_gap_seconds", "Seconds of history that could not be read.", |m| load(&m.gap_seconds)),
        ("forge_sidecar_export_retries", "Export attempts retried.", |m| load(&m.export_retries)),
        ("forge_sidecar_abandoned_pages", "Pages given up after repeated failures.", |m| load(&m.gave_up_pages)),
        ("forge_sidecar_cursor_loops", "Cursor loops detected and cut.", |m| load(&m.cursor_loops)),
    ];
    for (name, help, read) in counters {
        let r = registry.clone();
        meter
            .u64_observable_counter(name)
            .with_description(help)
            .with_callback(move |o| {
                for m in r.sources() {
                    o.observe(read(&m), &attrs(&m));
                }
            })
            .build();
    }
    let r = registry.clone();
    meter
        .u64_observable_counter("forge_sidecar_api_requests")
        .with_description("Forge API calls by answer.")
        .with_callback(move |o| {
            for m in r.sources() {
                for (status, n) in lock(&m.api_requests).iter() {
                    let [a, s] = attrs(&m);
                    o.observe(*n, &[a, s, KeyValue::new("status", status.clone())]);
                }
            }
        })
        .build();
    let r = registry.clone();
    meter
        .f64_observable_gauge("forge_sidecar_watermark_lag_seconds")
        .with_description("Now minus the first-pass watermark.")
        .with_unit("s")
        .with_callback(move |o| {
            let now = crate::timefmt::system_millis(std::time::SystemTime::now());
            for m in r.sources() {
                let w = m.watermark_ms.load(Ordering::Relaxed);
                if w > 0 {
                    o.observe((now - w) as f64 / 1000.0, &attrs(&m));
                }
            }
        })
        .build();
    meter
        .u64_observable_gauge("forge_sidecar_in_flight_log_records")
        .with_description("Records awaiting the backend's answer.")
        .with_callback(move |o| {
            for m in registry.sources() {
                o.observe(load(&m.in_flight), &attrs(&m));
            }
        })
        .build();
}
