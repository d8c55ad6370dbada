//! The demo's App metrics console: a line per minute of data with the
//! backend's invocations, errors and p95 latency, the p95 read from the
//! latency histogram (its buckets merged across functions) when the
//! latency comes as one.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};

use crate::export::SendError;
use crate::export::metrics::MetricsSink;
use crate::timefmt::format_millis;

/// The App metrics the demo's metrics source asks for.
pub(crate) const DEMO_METRICS: [&str; 3] =
    ["FORGE_BACKEND_INVOCATION_COUNT", "FORGE_BACKEND_INVOCATION_ERRORS", "FORGE_BACKEND_INVOCATION_LATENCY"];

/// Minutes remembered (a late read adds to a minute shown already).
const MAX_MINUTES: usize = 1440;

/// One minute's figures, summed over series.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Minute {
    pub invocations: f64,
    pub errors: f64,
    /// Merged latency histogram: bounds and counts (one more count than bounds).
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    /// The largest latency given as a plain number (not a histogram).
    pub latency: Option<f64>,
    pub shown: bool,
}

impl Minute {
    fn merge_histogram(&mut self, bounds: &[f64], counts: &[u64]) {
        if counts.len() != bounds.len() + 1 {
            return;
        }
        if self.counts.is_empty() {
            self.bounds = bounds.to_vec();
            self.counts = vec![0; counts.len()];
        }
        // Buckets merge only over the same bounds.
        if self.bounds == bounds {
            for (sum, n) in self.counts.iter_mut().zip(counts) {
                *sum = sum.saturating_add(*n);
            }
        }
    }

    pub fn line(&self, minute_ms: i64) -> String {
        let latency = match (p95(&self.bounds, &self.counts), self.latency) {
            (Some(P95::Within(v)), _) => format!("p95 latency {v:.0} ms"),
            (Some(P95::Above(b)), _) => format!("p95 latency > {b:.0} ms"),
            (None, Some(v)) => format!("latency {v:.0} ms"),
            (None, None) => "latency -".to_string(),
        };
        let again = if self.shown { " (late points added)" } else { "" };
        let time = format_millis(minute_ms);
        let hhmm = time.get(11..16).unwrap_or(&time);
        format!("{hhmm} metrics · invocations {:.0} · errors {:.0} · {latency}{again}", self.invocations, self.errors)
    }
}

/// The 95th percentile of a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum P95 {
    /// Interpolated within its bucket.
    Within(f64),
    /// In the open bucket past the last bound.
    Above(f64),
}

/// The p95 of explicit-bounds buckets (`counts` has one more entry than
/// `bounds`), interpolated linearly inside its bucket; `None` when empty.
pub(crate) fn p95(bounds: &[f64], counts: &[u64]) -> Option<P95> {
    let total: u64 = counts.iter().fold(0u64, |a, n| a.saturating_add(*n));
    if total == 0 || counts.len() != bounds.len() + 1 {
        return None;
    }
    let rank = 0.95 * total as f64;
    let mut below = 0u64;
    for (i, n) in counts.iter().enumerate() {
        let upto = below.saturating_add(*n);
        if (upto as f64) >= rank && *n > 0 {
            let Some(upper) = bounds.get(i) else { return bounds.last().map(|b| P95::Above(*b)) };
            let lower = if i == 0 { 0.0f64.min(*upper) } else { bounds[i - 1] };
            let within = (rank - below as f64) / *n as f64;
            return Some(P95::Within(lower + (upper - lower) * within));
        }
        below = upto;
    }
    None
}

/// Prints a line per minute of metrics data to stdout.
pub(crate) struct MetricsConsole {
    minutes: Mutex<BTreeMap<i64, Minute>>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl MetricsConsole {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { minutes: Mutex::default(), out: Mutex::new(out) }
    }

    /// Adds the request's points to their minutes; the lines of the minutes touched.
    pub fn lines(&self, req: &ExportMetricsServiceRequest) -> Vec<String> {
        let mut minutes = crate::metrics::lock(&self.minutes);
        let mut touched = std::collections::BTreeSet::new();
        let minute_of = |t: u64| ((t / 1_000_000) as i64).div_euclid(60_000) * 60_000;
        for m in req.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
            let name = m.name.to_ascii_lowercase();
            match &m.data {
                Some(Data::Sum(s)) => {
                    for p in &s.data_points {
                        let minute = minutes.entry(minute_of(p.time_unix_nano)).or_default();
                        let v = number(&p.value);
                        if name.contains("invocation_count") {
                            minute.invocations += v;
                        } else if name.contains("invocation_errors") {
                            minute.errors += v;
                        }
                        touched.insert(minute_of(p.time_unix_nano));
                    }
                }
                Some(Data::Histogram(h)) if name.contains("latency") => {
                    for p in &h.data_points {
                        let minute = minutes.entry(minute_of(p.time_unix_nano)).or_default();
                        minute.merge_histogram(&p.explicit_bounds, &p.bucket_counts);
                        touched.insert(minute_of(p.time_unix_nano));
                    }
                }
                Some(Data::Gauge(g)) if name.contains("latency") => {
                    for p in &g.data_points {
                        let minute = minutes.entry(minute_of(p.time_unix_nano)).or_default();
                        let v = number(&p.value);
                        minute.latency = Some(minute.latency.map_or(v, |l| l.max(v)));
                        touched.insert(minute_of(p.time_unix_nano));
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for t in touched {
            if let Some(m) = minutes.get_mut(&t) {
                out.push(m.line(t));
                m.shown = true;
            }
        }
        while minutes.len() > MAX_MINUTES {
            minutes.pop_first();
        }
        out
    }
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        Some(number_data_point::Value::AsDouble(d)) => *d,
        None => 0.0,
    }
}

impl MetricsSink for MetricsConsole {
    fn send(&self, req: &ExportMetricsServiceRequest) -> Result<(u64, String), SendError> {
        let mut text = String::new();
        for line in self.lines(req) {
            text.push_str(&line);
            text.push('\n');
        }
        let mut out = crate::metrics::lock(&self.out);
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        Ok((0, String::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };

    #[test]
    fn p95_interpolates_within_its_bucket() {
        let bounds = [50.0, 100.0, 250.0];
        // 100 observations: 90 under 50 ms, 10 in 100..250 ms: rank 95 is half way into the third bucket.
        assert_eq!(p95(&bounds, &[90, 0, 10, 0]), Some(P95::Within(175.0)));
        assert_eq!(p95(&bounds, &[100, 0, 0, 0]), Some(P95::Within(47.5)));
        assert_eq!(p95(&bounds, &[0, 0, 0, 4]), Some(P95::Above(250.0)));
        assert_eq!(p95(&bounds, &[0, 0, 0, 0]), None);
        assert_eq!(p95(&bounds, &[1, 2]), None, "counts must match the bounds");
    }

    fn sum(name: &str, t_ns: u64, v: i64) -> Metric {
        let p = NumberDataPoint {
            time_unix_nano: t_ns,
            value: Some(number_data_point::Value::AsInt(v)),
            ..Default::default()
        };
        Metric {
            name: name.into(),
            data: Some(Data::Sum(Sum { data_points: vec![p], ..Default::default() })),
            ..Default::default()
        }
    }

    fn hist(t_ns: u64, counts: Vec<u64>) -> Metric {
        let p = HistogramDataPoint {
            time_unix_nano: t_ns,
            explicit_bounds: vec![50.0, 100.0, 250.0],
            count: counts.iter().sum(),
            bucket_counts: counts,
            ..Default::default()
        };
        let h = Histogram { data_points: vec![p], ..Default::default() };
        Metric { name: "forge_backend_invocation_latency".into(), data: Some(Data::Histogram(h)), ..Default::default() }
    }

    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        let scope = ScopeMetrics { metrics, ..Default::default() };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics { scope_metrics: vec![scope], ..Default::default() }],
        }
    }

    #[test]
    fn one_line_per_minute_with_invocations_errors_and_p95() {
        let console = MetricsConsole::new(Box::new(std::io::sink()));
        // 2026-01-01T10:00:00Z and the next minute (point times are their ends).
        let t0 = 1_767_261_600_000_000_000u64;
        let next = t0 + 60_000_000_000;
        let lines = console.lines(&request(vec![
            sum("forge_backend_invocation_count", t0 + 1, 40),
            sum("forge_backend_invocation_count", t0 + 2, 60),
            sum("forge_backend_invocation_errors", t0 + 3, 2),
            hist(t0 + 4, vec![45, 0, 5, 0]),
            hist(t0 + 5, vec![45, 0, 5, 0]),
            sum("forge_backend_invocation_count", next, 7),
        ]));
        assert_eq!(
            lines,
            vec![
                "10:00 metrics · invocations 100 · errors 2 · p95 latency 175 ms".to_string(),
                "10:01 metrics · invocations 7 · errors 0 · latency -".to_string(),
            ]
        );
        let late = console.lines(&request(vec![sum("forge_backend_invocation_errors", next + 1, 1)]));
        assert_eq!(late, vec!["10:01 metrics · invocations 7 · errors 1 · latency - (late points added)".to_string()]);
    }
}
