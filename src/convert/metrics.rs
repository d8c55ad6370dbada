//! App metrics: the API's `resourceMetrics` (OTLP/JSON, int64 fields as
//! decimal strings) → an OTLP protobuf `ExportMetricsServiceRequest`.
//!
//! The API leaves the resource empty and answers for several environments
//! at once, so points are regrouped into one resource per environment (the
//! data point's `environmentId`), filled with `service.name`,
//! `forge.app.id`, `forge.environment.id` and the configured attributes.
//! Temporality and every metric type (sum, gauge, histogram, exponential
//! histogram, summary) are kept as sent: the latency metrics' shape is not
//! documented. A data point's identity is (metric name, attributes, start
//! time, end time), hashed, so a window read again delivers only what it
//! has not delivered: a repeated delta point would double a count.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AV};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics, metric::Data};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::batch::{kv, scope};
use crate::config::{AttrValue, MetricsSourceConfig};
use crate::fingerprint::hash_bytes;

/// The data point attribute naming its environment.
const ENV_ATTR: &str = "environmentId";

/// One data point as the dedup filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointKey {
    /// `timeUnixNano`, the end of the point's interval (0 if absent).
    pub time_unix_nano: u64,
    /// The hash of (metric name, attributes, start, end).
    pub fingerprint: u64,
}

/// A parsed answer: its metrics in the API's order, each data point keyed.
#[derive(Debug, Clone, Default)]
pub struct MetricsAnswer {
    metrics: Vec<Metric>,
    keys: Vec<PointKey>,
}

/// `resourceMetrics` was not OTLP/JSON metrics.
#[derive(Debug, Clone, thiserror::Error)]
#[error("resourceMetrics is not OTLP/JSON metrics: {0}")]
pub struct MetricsWireError(pub String);

/// The data points of a metric, whatever its type: (attributes, start, end) each.
fn point_times(m: &Metric) -> Vec<(&[KeyValue], u64, u64)> {
    match &m.data {
        Some(Data::Gauge(g)) => {
            g.data_points.iter().map(|p| (&p.attributes[..], p.start_time_unix_nano, p.time_unix_nano)).collect()
        }
        Some(Data::Sum(s)) => {
            s.data_points.iter().map(|p| (&p.attributes[..], p.start_time_unix_nano, p.time_unix_nano)).collect()
        }
        Some(Data::Histogram(h)) => {
            h.data_points.iter().map(|p| (&p.attributes[..], p.start_time_unix_nano, p.time_unix_nano)).collect()
        }
        Some(Data::ExponentialHistogram(h)) => {
            h.data_points.iter().map(|p| (&p.attributes[..], p.start_time_unix_nano, p.time_unix_nano)).collect()
        }
        Some(Data::Summary(s)) => {
            s.data_points.iter().map(|p| (&p.attributes[..], p.start_time_unix_nano, p.time_unix_nano)).collect()
        }
        None => Vec::new(),
    }
}

/// Keeps the data points whose index (counted across all of `m`'s points
/// from `*next`) `keep` accepts.
fn retain_points(m: &mut Metric, next: &mut usize, keep: &mut dyn FnMut(usize) -> bool) {
    let mut f = || {
        let i = *next;
        *next += 1;
        keep(i)
    };
    match &mut m.data {
        Some(Data::Gauge(g)) => g.data_points.retain(|_| f()),
        Some(Data::Sum(s)) => s.data_points.retain(|_| f()),
        Some(Data::Histogram(h)) => h.data_points.retain(|_| f()),
        Some(Data::ExponentialHistogram(h)) => h.data_points.retain(|_| f()),
        Some(Data::Summary(s)) => s.data_points.retain(|_| f()),
        None => {}
    }
}

/// The identity of a data point: name, attributes in key order, start, end.
pub fn point_fingerprint(name: &str, attributes: &[KeyValue], start: u64, end: u64) -> u64 {
    let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut buf = Vec::with_capacity(64 + name.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
    for a in sorted {
        // Length-prefixed so that no two attribute lists encode alike.
        a.encode_length_delimited(&mut buf).unwrap_or_default();
    }
    buf.extend_from_slice(&start.to_le_bytes());
    buf.extend_from_slice(&end.to_le_bytes());
    hash_bytes(&buf)
}

/// Reads `resourceMetrics` (a JSON list) into its metrics and point keys.
pub fn parse(resource_metrics: &serde_json::Value) -> Result<MetricsAnswer, MetricsWireError> {
    let list: Vec<ResourceMetrics> =
        serde_json::from_value(normalise(resource_metrics.clone())).map_err(|e| MetricsWireError(e.to_string()))?;
    let mut metrics = Vec::new();
    for rm in list {
        for sm in rm.scope_metrics {
            metrics.extend(sm.metrics);
        }
    }
    let mut keys = Vec::new();
    let written = json_point_count(resource_metrics);
    for m in &metrics {
        for (attrs, start, end) in point_times(m) {
            keys.push(PointKey { time_unix_nano: end, fingerprint: point_fingerprint(&m.name, attrs, start, end) });
        }
    }
    // A metric whose data does not parse is read as having none (the
    // generated types flatten the oneof, and serde's flatten turns an inner
    // error into an absent value): counting the points as written catches
    // it, so a malformed answer is never taken for a smaller one.
    if keys.len() != written {
        return Err(MetricsWireError(format!("{} data points written, {} readable", written, keys.len())));
    }
    Ok(MetricsAnswer { metrics, keys })
}

/// Data points in OTLP/JSON as written, whatever their content.
fn json_point_count(v: &serde_json::Value) -> usize {
    const KINDS: [&str; 5] = ["sum", "gauge", "histogram", "exponentialHistogram", "summary"];
    fn list<'a>(v: &'a serde_json::Value, k: &str) -> &'a [serde_json::Value] {
        v.get(k).and_then(serde_json::Value::as_array).map(Vec::as_slice).unwrap_or_default()
    }
    let mut n = 0;
    for rm in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        for sm in list(rm, "scopeMetrics") {
            for m in list(sm, "metrics") {
                n += KINDS.iter().filter_map(|k| m.get(*k)).map(|d| list(d, "dataPoints").len()).sum::<usize>();
            }
        }
    }
    n
}

/// OTLP/JSON allows enum names where protobuf JSON readers expect numbers:
/// `aggregationTemporality` is turned into its number.
fn normalise(mut v: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(t) = o.get_mut("aggregationTemporality")
                    && let Some(s) = t.as_str()
                {
                    *t = match s {
                        "AGGREGATION_TEMPORALITY_DELTA" => 1.into(),
                        "AGGREGATION_TEMPORALITY_CUMULATIVE" => 2.into(),
                        _ => 0.into(),
                    };
                }
                o.values_mut().for_each(walk);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

impl MetricsAnswer {
    /// Every data point's key, in answer order.
    pub fn keys(&self) -> &[PointKey] {
        &self.keys
    }

    /// The request for the points at `indices` (into [`Self::keys`]), one
    /// resource per environment, filled from the source.
    pub fn request(&self, source: &MetricsSourceConfig, indices: &[usize]) -> ExportMetricsServiceRequest {
        let mut wanted = vec![false; self.keys.len()];
        for &i in indices {
            if let Some(w) = wanted.get_mut(i) {
                *w = true;
            }
        }
        let envs_of: Vec<String> =
            self.metrics.iter().flat_map(|m| point_times(m).into_iter().map(|(a, _, _)| env_of(a, source))).collect();
        let want = |i: usize| wanted.get(i).copied().unwrap_or(false);
        // Environment → metrics holding only that environment's wanted points.
        let mut by_env: BTreeMap<String, Vec<Metric>> = BTreeMap::new();
        let mut next = 0;
        for m in &self.metrics {
            let first = next;
            next += point_times(m).len();
            let mut envs: Vec<&String> = (first..next).filter(|i| want(*i)).filter_map(|i| envs_of.get(i)).collect();
            envs.sort();
            envs.dedup();
            for env in envs {
                let mut one = m.clone();
                let mut k = first;
                retain_points(&mut one, &mut k, &mut |i| want(i) && envs_of.get(i) == Some(env));
                by_env.entry(env.clone()).or_default().push(one);
            }
        }
        let resource_metrics = by_env
            .into_iter()
            .map(|(env, metrics)| ResourceMetrics {
                resource: Some(resource(source, &env)),
                scope_metrics: vec![ScopeMetrics { scope: Some(scope()), metrics, ..ScopeMetrics::default() }],
                ..ResourceMetrics::default()
            })
            .collect();
        ExportMetricsServiceRequest { resource_metrics }
    }
}

/// A point's environment: its `environmentId`, else the source's only one.
fn env_of(attrs: &[KeyValue], source: &MetricsSourceConfig) -> String {
    attrs
        .iter()
        .find(|a| a.key == ENV_ATTR)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            AV::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| if source.environments.len() == 1 { source.environments[0].clone() } else { String::new() })
}

/// The resource of one environment's metrics.
pub fn resource(source: &MetricsSourceConfig, env: &str) -> Resource {
    let mut attributes = vec![
        kv("service.name", AV::StringValue(source.service_name.clone())),
        kv("forge.app.id", AV::StringValue(source.app_id.clone())),
        kv("forge.environment.id", AV::StringValue(env.to_string())),
        kv("forge.source.name", AV::StringValue(source.name.clone())),
    ];
    for (k, v) in &source.resource_attributes {
        let value = match v {
            AttrValue::Str(s) => AV::StringValue(s.clone()),
            AttrValue::Bool(b) => AV::BoolValue(*b),
            AttrValue::Int(i) => AV::IntValue(*i),
            AttrValue::Double(d) => AV::DoubleValue(*d),
        };
        attributes.retain(|a| &a.key != k);
        attributes.push(KeyValue {
            key: k.clone(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        });
    }
    Resource { attributes, ..Resource::default() }
}

/// Data points in a request, all types counted.
pub fn point_count(req: &ExportMetricsServiceRequest) -> u64 {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| point_times(m).len() as u64)
        .sum()
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
