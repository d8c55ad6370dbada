//! Deterministic App metrics data: one data point per (app, environment,
//! metric, series, minute), computed from the seed on demand so memory does
//! not grow with the history, in the shapes of Atlassian's sample: DELTA
//! sums with `unit: "s"` for counts, gauges for container figures, a
//! cumulative `container_status_restarts_total`, and (the shape the sample
//! does not show) DELTA histograms for the latency metrics.
//!
//! Late re-aggregation: until `lag` after a minute ends, some of its points
//! are missing and the others carry a preliminary value; after that every
//! point has its final value and never changes again.

use serde_json::{Value, json};

use crate::fingerprint::hash_bytes;

/// Latency histogram bounds (ms).
pub const LATENCY_BOUNDS: [f64; 6] = [50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0];

/// The shape a metric is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    DeltaSum,
    CumulativeSum,
    GaugeInt,
    GaugeDouble,
    Histogram,
}

/// A series attribute: key and value.
pub type Series = (&'static str, &'static str);

/// How a metric enum value is served: OTLP name, shape, unit and the
/// attribute values that tell its series apart.
pub fn describe(metric: &str) -> Option<(&'static str, Shape, &'static str, &'static [Series])> {
    const FUNCTIONS: &[(&str, &str)] = &[("functionKey", "resolver"), ("functionKey", "scheduled-trigger")];
    const URLS: &[(&str, &str)] = &[("url", "/rest/api/3/issue"), ("url", "/wiki/api/v2/pages")];
    const ERRORS: &[(&str, &str)] = &[("errorType", "TIMEOUT"), ("errorType", "UNHANDLED_EXCEPTION")];
    const ONE: &[(&str, &str)] = &[("functionKey", "container")];
    Some(match metric {
        "FORGE_API_REQUEST_COUNT" => ("forge_api_request_count", Shape::DeltaSum, "s", URLS),
        "FORGE_API_REQUEST_LATENCY" => ("forge_api_request_latency", Shape::Histogram, "ms", URLS),
        "FORGE_BACKEND_INVOCATION_COUNT" => ("forge_backend_invocation_count", Shape::DeltaSum, "s", FUNCTIONS),
        "FORGE_BACKEND_INVOCATION_ERRORS" => ("forge_backend_invocation_errors", Shape::DeltaSum, "s", ERRORS),
        "FORGE_BACKEND_INVOCATION_LATENCY" => ("forge_backend_invocation_latency", Shape::Histogram, "ms", FUNCTIONS),
        "CONTAINER_CPU_USAGE_PERCENTAGE" => ("container_cpu_usage_percentage", Shape::GaugeDouble, "%", ONE),
        "CONTAINER_MEMORY_USAGE_PERCENTAGE" => ("container_memory_usage_percentage", Shape::GaugeDouble, "%", ONE),
        "CONTAINER_UPTIME_SECONDS" => ("container_uptime_seconds", Shape::GaugeInt, "s", ONE),
        "CONTAINER_STATUS_RESTARTS_TOTAL" => ("container_status_restarts_total", Shape::CumulativeSum, "s", ONE),
        "SERVICE_INSTANCE_COUNT" => ("service_instance_count", Shape::GaugeInt, "s", ONE),
        _ => return None,
    })
}

/// The generator's fixed inputs.
#[derive(Debug, Clone)]
pub struct MetricsGen {
    pub seed: u64,
    /// The first minute with data (ms, minute-aligned).
    pub t0_ms: i64,
    /// How long after a minute ends its points may still change.
    pub lag_ms: i64,
    /// Share (‰) of points that appear only once the lag has passed.
    pub late_permille: u64,
    /// The span of one point: a minute, as the API aggregates (tests compress it).
    pub step_ms: i64,
}

/// One data point with everything an oracle needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPoint {
    /// The OTLP metric name.
    pub name: &'static str,
    pub app: String,
    pub environment: String,
    /// The series attribute (`functionKey`, `url` or `errorType`) and its value.
    pub series: (&'static str, &'static str),
    pub start_ms: i64,
    pub end_ms: i64,
    /// The sum's or gauge's value, or a histogram's count.
    pub value: f64,
    pub shape: Shape,
}

impl MetricsGen {
    fn h(&self, parts: &[&[u8]]) -> u64 {
        let mut buf = self.seed.to_le_bytes().to_vec();
        for p in parts {
            buf.extend_from_slice(p);
            buf.push(0xff);
        }
        hash_bytes(&buf)
    }

    /// The points of one (app, environment, metric) whose end lies in
    /// `[from_ms, to_ms)`, as the API answers at `now_ms`.
    pub fn points(&self, app: &str, env: &str, metric: &str, from_ms: i64, to_ms: i64, now_ms: i64) -> Vec<SimPoint> {
        let Some((name, shape, _, series)) = describe(metric) else { return Vec::new() };
        let mut out = Vec::new();
        let to_ms = to_ms.min(now_ms + 1);
        // Minute m's point ends at m + 1 minute.
        let step = self.step_ms.max(1);
        let first_end = (from_ms.max(self.t0_ms + step) + step - 1).div_euclid(step) * step;
        let mut end = first_end;
        while end < to_ms {
            let start_min = end - step;
            let preliminary = now_ms < end + self.lag_ms;
            for (k, s) in series.iter().enumerate() {
                let h = self.h(&[app.as_bytes(), env.as_bytes(), metric.as_bytes(), &[k as u8], &end.to_le_bytes()]);
                if preliminary && h % 1000 < self.late_permille {
                    continue;
                }
                let Some(mut value) = self.final_value(shape, h, app, env, end) else { continue };
                if preliminary && matches!(shape, Shape::DeltaSum | Shape::Histogram) {
                    value = (value - (value / 3.0).floor()).max(1.0);
                } else if preliminary && shape == Shape::GaugeDouble {
                    value = (value * 0.9 * 100.0).round() / 100.0;
                }
                let start_ms = if shape == Shape::CumulativeSum { self.t0_ms } else { start_min };
                out.push(SimPoint {
                    name,
                    app: app.to_string(),
                    environment: env.to_string(),
                    series: *s,
                    start_ms,
                    end_ms: end,
                    value,
                    shape,
                });
            }
            end += step;
        }
        out
    }

    /// The value once re-aggregation is over; `None` for a minute without data.
    fn final_value(&self, shape: Shape, h: u64, app: &str, env: &str, end: i64) -> Option<f64> {
        let v = (h >> 16) % 40;
        Some(match shape {
            // About one minute in twenty has no calls, so no point.
            Shape::DeltaSum | Shape::Histogram if v < 2 => return None,
            Shape::DeltaSum | Shape::Histogram => v as f64,
            Shape::GaugeDouble => ((h >> 20) % 10_000) as f64 / 100.0,
            Shape::GaugeInt => 1.0 + ((h >> 20) % 5) as f64,
            Shape::CumulativeSum => {
                let base = self.h(&[app.as_bytes(), env.as_bytes()]) % 3;
                (base + ((end - self.t0_ms) / self.step_ms.max(1) / 240).max(0) as u64) as f64
            }
        })
    }

    /// Histogram bucket counts for a count, deterministic per point.
    fn buckets(count: u64, h: u64) -> Vec<u64> {
        let mut b = vec![0u64; LATENCY_BOUNDS.len() + 1];
        let mut x = h;
        for _ in 0..count {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // Mostly the middle buckets, as latencies are.
            let i = ((x >> 33) % 10) as usize;
            b[[0, 1, 1, 2, 2, 2, 3, 3, 4, 6][i]] += 1;
        }
        b
    }
}

fn attributes(app: &str, env: &str, series: (&str, &str), site: u64) -> Value {
    let kv = |k: &str, v: &str| json!({ "key": k, "value": { "stringValue": v } });
    json!([
        kv("appId", app),
        kv("environmentId", env),
        kv("contextAri", &format!("ari:cloud:jira::site/{site:08x}")),
        kv("appVersion", "3.1.0"),
        kv(series.0, series.1),
    ])
}

/// The OTLP/JSON data point of `p` (int64 fields as decimal strings).
fn data_point(g: &MetricsGen, p: &SimPoint) -> Value {
    let site = g.h(&[p.app.as_bytes()]) % 0xffff_ffff;
    let mut dp = json!({
        "attributes": attributes(&p.app, &p.environment, p.series, site),
        "startTimeUnixNano": (p.start_ms * 1_000_000).to_string(),
        "timeUnixNano": (p.end_ms * 1_000_000).to_string(),
    });
    let Some(o) = dp.as_object_mut() else { return dp };
    match p.shape {
        Shape::DeltaSum | Shape::CumulativeSum | Shape::GaugeInt => {
            o.insert("asInt".into(), Value::String((p.value as i64).to_string()));
        }
        Shape::GaugeDouble => {
            o.insert("asDouble".into(), json!(p.value));
        }
        Shape::Histogram => {
            let count = p.value as u64;
            let h = g.h(&[p.app.as_bytes(), p.environment.as_bytes(), p.name.as_bytes(), &p.end_ms.to_le_bytes()]);
            let buckets = MetricsGen::buckets(count, h);
            let mids = [25.0, 75.0, 175.0, 375.0, 750.0, 1750.0, 4000.0];
            let sum: f64 = buckets.iter().zip(mids).map(|(n, m)| *n as f64 * m).sum();
            o.insert("count".into(), Value::String(count.to_string()));
            o.insert("sum".into(), json!(sum));
            o.insert("bucketCounts".into(), json!(buckets.iter().map(u64::to_string).collect::<Vec<_>>()));
            o.insert("explicitBounds".into(), json!(LATENCY_BOUNDS));
        }
    }
    dp
}

/// `resourceMetrics` for these points: one resource, left empty as the API
/// does, one scope, one metric per name holding every environment's points.
pub fn resource_metrics(g: &MetricsGen, points: &[SimPoint]) -> Value {
    let mut metrics: Vec<Value> = Vec::new();
    let mut names: Vec<&str> = points.iter().map(|p| p.name).collect();
    names.dedup();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let of: Vec<&SimPoint> = points.iter().filter(|p| p.name == name).collect();
        let Some(first) = of.first() else { continue };
        let unit = match first.shape {
            Shape::Histogram => "ms",
            Shape::GaugeDouble => "%",
            _ => "s",
        };
        let dps: Vec<Value> = of.iter().map(|p| data_point(g, p)).collect();
        let body = match first.shape {
            Shape::DeltaSum => {
                json!({ "sum": { "dataPoints": dps, "aggregationTemporality": 1, "isMonotonic": true } })
            }
            Shape::CumulativeSum => {
                json!({ "sum": { "dataPoints": dps, "aggregationTemporality": 2, "isMonotonic": true } })
            }
            Shape::GaugeInt | Shape::GaugeDouble => json!({ "gauge": { "dataPoints": dps } }),
            Shape::Histogram => json!({ "histogram": { "dataPoints": dps, "aggregationTemporality": 1 } }),
        };
        let mut m = json!({ "name": name, "description": "", "unit": unit });
        if let (Some(o), Value::Object(b)) = (m.as_object_mut(), body) {
            o.extend(b);
        }
        metrics.push(m);
    }
    json!([{ "resource": {}, "scopeMetrics": [{ "scope": { "name": "forge-metrics" }, "metrics": metrics }] }])
}
