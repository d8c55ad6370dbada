//! Fixed-bucket histograms for durations and delays.
//!
//! `/metrics` reads the buckets when scraped. The OTLP push cannot read
//! them: the OpenTelemetry SDK has no pull-style histogram, only one that
//! is recorded into. So each observation is also handed to the registry's
//! [`HistogramSink`] once the push has installed one; observations made
//! before that are on `/metrics` only.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Bucket bounds (seconds) of request durations: Forge API calls and
/// exports, from a fast loopback answer (5 ms) to a timed-out request (60 s).
pub const DURATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Bucket bounds (seconds) of record arrival delays: from the usual
/// seconds of API indexing to the hour after which the second pass stops looking.
pub const DELAY_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];

/// Records one observation into the push's copy of a histogram.
pub(crate) type Recorder = Box<dyn Fn(f64) + Send + Sync>;

/// Receives each histogram observation as it is made (the OTLP push).
pub(crate) trait HistogramSink: Send + Sync + fmt::Debug {
    /// A recorder for one histogram, bound once so that an observation
    /// (one per record, for arrival delays) builds no attributes.
    /// `labels` are the values of the family's labels, in catalogue order.
    fn bind(&self, family: &'static str, labels: &[&str]) -> Option<Recorder>;
}

/// Where observations are forwarded; empty until the push starts.
pub(crate) type SinkSlot = OnceLock<Arc<dyn HistogramSink>>;

/// One histogram of one label set: per-bucket counts and the sum.
pub struct Histogram {
    family: &'static str,
    bounds: &'static [f64],
    /// Non-cumulative counts; the last one is the `+Inf` bucket.
    counts: Box<[AtomicU64]>,
    /// The sum as `f64` bits (atomics have no float add).
    sum_bits: AtomicU64,
    labels: Vec<String>,
    sink: Arc<SinkSlot>,
    /// Bound on the first observation after the sink is installed.
    recorder: OnceLock<Option<Recorder>>,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Histogram").field("family", &self.family).field("count", &s.count).field("sum", &s.sum).finish()
    }
}

/// What a histogram held at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [f64],
    /// Cumulative counts, one per bound (the `+Inf` bucket is `count`).
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub(crate) fn new(family: &'static str, bounds: &'static [f64], labels: Vec<String>, sink: Arc<SinkSlot>) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        let sum_bits = AtomicU64::new(0f64.to_bits());
        Self { family, bounds, counts, sum_bits, labels, sink, recorder: OnceLock::new() }
    }

    /// Records one value. Negative values (a record stamped ahead of the
    /// host clock) count as zero; NaN is dropped.
    pub(crate) fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let value = value.max(0.0);
        let i = self.bounds.iter().position(|b| value <= *b).unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some((f64::from_bits(b) + value).to_bits()));
        if let Some(sink) = self.sink.get() {
            let recorder = self.recorder.get_or_init(|| {
                let labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
                sink.bind(self.family, &labels)
            });
            if let Some(record) = recorder {
                record(value);
            }
        }
    }

    /// The count is the sum of the buckets read, so the series of one
    /// snapshot agree with each other even while observations go on.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        let mut total = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            total = total.saturating_add(c.load(Ordering::Relaxed));
            if i < self.bounds.len() {
                cumulative.push(total);
            }
        }
        HistogramSnapshot {
            bounds: self.bounds,
            cumulative,
            count: total,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Seen(Mutex<Vec<(String, Vec<String>, f64)>>);

    impl HistogramSink for Arc<Seen> {
        fn bind(&self, family: &'static str, labels: &[&str]) -> Option<Recorder> {
            let seen = self.clone();
            let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
            Some(Box::new(move |value| crate::metrics::lock(&seen.0).push((family.to_string(), labels.clone(), value))))
        }
    }

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::new("h", &[1.0, 10.0], vec![], Arc::default());
        for v in [0.5, 1.0, 3.0, 10.0, 11.0, -2.0, f64::NAN] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative, vec![3, 5]);
        assert_eq!(s.count, 6);
        assert_eq!(s.sum, 25.5);
    }

    #[test]
    fn observations_reach_the_sink_once_installed() {
        let slot: Arc<SinkSlot> = Arc::default();
        let h = Histogram::new("fam", DURATION_BUCKETS, vec!["a".into(), "s".into()], slot.clone());
        h.observe(0.1);
        let seen = Arc::new(Seen::default());
        assert!(slot.set(Arc::new(seen.clone())).is_ok());
        h.observe(0.2);
        let got = crate::metrics::lock(&seen.0).clone();
        assert_eq!(got, vec![("fam".to_string(), vec!["a".to_string(), "s".to_string()], 0.2)]);
        assert_eq!(h.snapshot().count, 2);
    }
}
