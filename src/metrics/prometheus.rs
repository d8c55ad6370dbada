//! `/metrics`: the catalogue as Prometheus text (format 0.0.4).
//!
//! The `prometheus` crate's encoder writes the text: escaping of help and
//! label values, `_bucket`/`_sum`/`_count` series and the `+Inf` bucket
//! are its business. It is fed the plain data model built here from
//! [`FAMILIES`]; none of its own registry or global state is used.

use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use super::Registry;
use super::catalogue::{FAMILIES, Family, Kind, Scrape, Value};

/// The value of the `Content-Type` header for [`render_prometheus`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus text of every family with at least one sample.
pub fn render_prometheus(registry: &Registry, now_ms: i64, ready: bool) -> String {
    let scrape = Scrape { registry, now_ms, ready: Some(ready) };
    let families: Vec<MetricFamily> = FAMILIES.iter().filter_map(|f| family(f, &scrape)).collect();
    let mut out = Vec::with_capacity(8192);
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        // Only an empty family or name fails, and `family` builds neither.
        tracing::warn!(error = %e, "rendering /metrics");
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn family(f: &Family, scrape: &Scrape<'_>) -> Option<MetricFamily> {
    let samples = f.samples(scrape);
    if samples.is_empty() {
        return None;
    }
    let mut mf = MetricFamily::default();
    mf.set_name(f.name.to_string());
    mf.set_help(f.help.to_string());
    mf.set_field_type(match f.kind {
        Kind::Counter(_) => MetricType::COUNTER,
        Kind::Gauge(_) => MetricType::GAUGE,
        Kind::Histogram(_) => MetricType::HISTOGRAM,
    });
    let metrics = samples
        .into_iter()
        .map(|(values, value)| {
            let labels = f
                .labels
                .iter()
                .zip(values)
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name(name.to_string());
                    pair.set_value(value);
                    pair
                })
                .collect();
            let mut m = Metric::from_label(labels);
            set_value(&mut m, f.kind, value);
            m
        })
        .collect();
    mf.set_metric(metrics);
    Some(mf)
}

fn set_value(m: &mut Metric, kind: Kind, value: Value) {
    let number = |v: &Value| match v {
        Value::Int(n) => *n as f64,
        Value::Float(x) => *x,
        Value::Histogram(h) => h.sum,
    };
    match (kind, value) {
        (_, Value::Histogram(h)) => {
            let mut hist = Histogram::default();
            hist.set_sample_count(h.count);
            hist.set_sample_sum(h.sum);
            let buckets = h
                .bounds
                .iter()
                .zip(&h.cumulative)
                .map(|(bound, n)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(*n);
                    b
                })
                .collect();
            hist.set_bucket(buckets);
            m.set_histogram(hist);
        }
        (Kind::Counter(_), v) => {
            let mut c = Counter::default();
            c.set_value(number(&v));
            m.set_counter(c);
        }
        (_, v) => {
            let mut g = Gauge::default();
            g.set_value(number(&v));
            m.set_gauge(g);
        }
    }
}
