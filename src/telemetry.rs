//! The sidecar's own metrics, pushed over OTLP with the OpenTelemetry SDK.
//!
//! Every family of the metrics catalogue (`metrics::catalogue`), the same
//! `/metrics` shows: counters and gauges are read from the [`Registry`] by
//! observable instruments, histograms are recorded as they are observed;
//! all are exported every `telemetry.otlp.interval`. OTLP names are the
//! Prometheus ones with a counter's `_total` dropped.
//! The SDK's trade-offs (a periodic reader, no per-batch acknowledgement)
//! are fine here; the log data path never goes through it (DESIGN.md 2).
//! The resource honours `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
//! and defaults `service.name` to `forge-otel-sidecar`; it is separate
//! from the Forge records' resources, which come from the config only.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, MeterProvider};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;

use crate::config::{EnvLookup, ExporterConfig, Protocol, TelemetryOtlp};
use crate::export::SetupError;
use crate::metrics::catalogue::{FAMILIES, Family, Kind, Num, Scrape, Value};
use crate::metrics::{HistogramSink, Recorder, Registry};

pub struct Telemetry {
    provider: SdkMeterProvider,
}

/// The resource of the sidecar's own telemetry.
pub(crate) fn resource(env: EnvLookup<'_>) -> Resource {
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

/// Forwards histogram observations to the SDK's histograms (the SDK has
/// no pull-style histogram to read the registry's buckets at push time).
struct Histograms(HashMap<&'static str, (&'static [&'static str], Histogram<f64>)>);

impl std::fmt::Debug for Histograms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl HistogramSink for Histograms {
    fn bind(&self, family: &'static str, labels: &[&str]) -> Option<Recorder> {
        let (names, h) = self.0.get(family)?;
        let (h, attrs) = (h.clone(), attributes(names, labels));
        Some(Box::new(move |value| h.record(value, &attrs)))
    }
}

fn attributes(names: &[&'static str], values: &[&str]) -> Vec<KeyValue> {
    names.iter().zip(values).map(|(k, v)| KeyValue::new(*k, v.to_string())).collect()
}

/// Reads `family` as the push sees it now.
fn observe(registry: &Registry, family: &Family, mut out: impl FnMut(&[KeyValue], &Value)) {
    let now_ms = crate::timefmt::system_millis(std::time::SystemTime::now());
    let scrape = Scrape { registry, now_ms, ready: registry.ready(now_ms) };
    (family.read)(&scrape, &mut |labels, v| out(&attributes(family.labels, labels), &v));
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::Float(x) => Some(x.max(0.0) as u64),
        Value::Histogram(_) => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        Value::Histogram(_) => None,
    }
}

/// One instrument per catalogue family, under its OTLP name.
fn register(provider: &SdkMeterProvider, registry: Arc<Registry>) {
    let meter = provider.meter(env!("CARGO_PKG_NAME"));
    let mut histograms = HashMap::new();
    for family in FAMILIES {
        let name = family.otlp_name();
        let r = registry.clone();
        let unit = family.unit.unwrap_or("");
        match family.kind {
            Kind::Counter(Num::Int) => {
                meter
                    .u64_observable_counter(name)
                    .with_description(family.help)
                    .with_unit(unit)
                    .with_callback(move |o| {
                        observe(&r, family, |a, v| as_u64(v).into_iter().for_each(|n| o.observe(n, a)))
                    })
                    .build();
            }
            Kind::Counter(Num::Float) => {
                meter
                    .f64_observable_counter(name)
                    .with_description(family.help)
                    .with_unit(unit)
                    .with_callback(move |o| {
                        observe(&r, family, |a, v| as_f64(v).into_iter().for_each(|x| o.observe(x, a)))
                    })
                    .build();
            }
            Kind::Gauge(Num::Int) => {
                meter
                    .u64_observable_gauge(name)
                    .with_description(family.help)
                    .with_unit(unit)
                    .with_callback(move |o| {
                        observe(&r, family, |a, v| as_u64(v).into_iter().for_each(|n| o.observe(n, a)))
                    })
                    .build();
            }
            Kind::Gauge(Num::Float) => {
                meter
                    .f64_observable_gauge(name)
                    .with_description(family.help)
                    .with_unit(unit)
                    .with_callback(move |o| {
                        observe(&r, family, |a, v| as_f64(v).into_iter().for_each(|x| o.observe(x, a)))
                    })
                    .build();
            }
            Kind::Histogram(bounds) => {
                let h = meter
                    .f64_histogram(name)
                    .with_description(family.help)
                    .with_unit(unit)
                    .with_boundaries(bounds.to_vec())
                    .build();
                histograms.insert(family.name, (family.labels, h));
            }
        }
    }
    if !registry.set_histogram_sink(Arc::new(Histograms(histograms))) {
        tracing::warn!("the sidecar's histograms are already pushed elsewhere; this push carries none");
    }
}
