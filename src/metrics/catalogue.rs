//! The one list of the sidecar's own metric families.
//!
//! Each [`Family`] carries its name, kind, help, unit, labels and how to
//! read its values from the [`Registry`]. `/metrics` and the OTLP push
//! both iterate [`FAMILIES`]; a family added here appears in both.
//!
//! Names are the Prometheus ones, which dashboards use. The OTLP name is
//! derived by one rule ([`Family::otlp_name`]): a counter drops its
//! `_total` suffix (the OpenTelemetry convention; Prometheus-compatible
//! backends add it back), everything else keeps its name as is, unit
//! suffix included. The unit travels in OTLP's `unit` field besides.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{DELAY_BUCKETS, DURATION_BUCKETS};
use super::{HistogramSnapshot, Registry, SourceMetrics, SourceState, lag_seconds, lock, process_usage};

/// Names the recording side refers to.
pub mod names {
    pub(crate) const API_DURATION: &str = "forge_sidecar_api_request_duration_seconds";
    pub(crate) const EXPORT_DURATION: &str = "forge_sidecar_export_duration_seconds";
    pub(crate) const ARRIVAL_DELAY: &str = "forge_sidecar_record_arrival_delay_seconds";
}

/// Whether a counter or gauge holds whole numbers or floats (the push
/// picks its instrument by this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Num {
    Int,
    Float,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Counter(Num),
    Gauge(Num),
    /// With its bucket bounds, in the family's unit.
    Histogram(&'static [f64]),
}

/// One sample's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
    Histogram(HistogramSnapshot),
}

/// What a reader sees: the registry, the time, and readiness when known.
pub struct Scrape<'a> {
    pub registry: &'a Registry,
    pub now_ms: i64,
    pub ready: Option<bool>,
}

/// Calls `out(label values, value)` once per label set of the family.
pub type Read = fn(&Scrape<'_>, &mut dyn FnMut(&[&str], Value));

pub(crate) struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// UCUM unit for OTLP (`s`, `By`); the Prometheus name already says it.
    pub unit: Option<&'static str>,
    /// Label names; `out` gets the values in this order.
    pub labels: &'static [&'static str],
    pub read: Read,
}

impl Family {
    /// The name on the OTLP push: counters without `_total`.
    pub(crate) fn otlp_name(&self) -> &'static str {
        match self.kind {
            Kind::Counter(_) => self.name.strip_suffix("_total").unwrap_or(self.name),
            _ => self.name,
        }
    }

    /// Every sample of the family right now.
    pub fn samples(&self, scrape: &Scrape<'_>) -> Vec<(Vec<String>, Value)> {
        let mut rows = Vec::new();
        (self.read)(scrape, &mut |labels, v| rows.push((labels.iter().map(|l| l.to_string()).collect(), v)));
        rows
    }
}

const SOURCE: &[&str] = &["app", "source"];

fn each_source(s: &Scrape<'_>, out: &mut dyn FnMut(&[&str], Value), f: impl Fn(&SourceMetrics) -> Value) {
    for m in s.registry.sources() {
        out(&[&m.app, &m.source], f(&m));
    }
}

fn count(a: &AtomicU64) -> Value {
    Value::Int(a.load(Ordering::Relaxed))
}

fn state_name(s: SourceState) -> &'static str {
    match s {
        SourceState::Starting => "starting",
        SourceState::CatchingUp => "catching_up",
        SourceState::Live => "live",
        SourceState::Throttled => "throttled",
        SourceState::Error => "error",
        SourceState::Stopped => "stopped",
    }
}

const STATES: [SourceState; 6] = [
    SourceState::Starting,
    SourceState::CatchingUp,
    SourceState::Live,
    SourceState::Throttled,
    SourceState::Error,
    SourceState::Stopped,
];

/// A per-source counter of whole numbers.
macro_rules! source_counter {
    ($name:literal, $help:literal, $field:ident) => {
        source_counter!($name, $help, None, $field)
    };
    ($name:literal, $help:literal, $unit:expr, $field:ident) => {
        Family {
            name: $name,
            kind: Kind::Counter(Num::Int),
            help: $help,
            unit: $unit,
            labels: SOURCE,
            read: |s, out| each_source(s, out, |m| count(&m.$field)),
        }
    };
}

/// A per-app gauge of [`super::AppGauges`], exported once set.
macro_rules! app_gauge {
    ($name:literal, $help:literal, $unit:expr, $field:ident) => {
        Family {
            name: $name,
            kind: Kind::Gauge(Num::Float),
            help: $help,
            unit: $unit,
            labels: &["app"],
            read: |s, out| {
                for (app, g) in s.registry.apps() {
                    if let Some(v) = g.$field {
                        out(&[&app], Value::Float(v));
                    }
                }
            },
        }
    };
}

pub(crate) static FAMILIES: &[Family] = &[
    Family {
        name: "forge_sidecar_api_requests_total",
        kind: Kind::Counter(Num::Int),
        help: "Forge API calls by answer.",
        unit: None,
        labels: &["app", "source", "status"],
        read: |s, out| {
            for m in s.registry.sources() {
                for (status, n) in lock(&m.api_requests).iter() {
                    out(&[&m.app, &m.source, status], Value::Int(*n));
                }
            }
        },
    },
    Family {
        name: names::API_DURATION,
        kind: Kind::Histogram(DURATION_BUCKETS),
        help: "Time spent in Forge API calls.",
        unit: Some("s"),
        labels: SOURCE,
        read: |s, out| each_source(s, out, |m| Value::Histogram(m.api_duration.snapshot())),
    },
    source_counter!("forge_sidecar_rate_limited_total", "429 answers from the Forge API.", rate_limited),
    source_counter!("forge_sidecar_pages_total", "Pages fetched and processed.", pages),
    source_counter!(
        "forge_sidecar_received_log_records_total",
        "Records fetched inside their window (received = sent + rejected + dead-lettered + duplicates + in flight).",
        received
    ),
    source_counter!("forge_sidecar_sent_log_records_total", "Records accepted by the backend.", sent),
    source_counter!(
        "forge_sidecar_rejected_log_records_total",
        "Records the backend refused in a partial success.",
        rejected
    ),
    source_counter!(
        "forge_sidecar_send_failed_log_records_total",
        "Records whose export failed for good.",
        send_failed
    ),
    source_counter!(
        "forge_sidecar_dead_lettered_log_records_total",
        "Records written to the dead-letter file.",
        dead_lettered
    ),
    Family {
        name: "forge_sidecar_privacy_values_changed_total",
        kind: Kind::Counter(Num::Int),
        help: "Values a privacy rule dropped, hashed, truncated or masked before export.",
        unit: None,
        labels: &["app", "source", "rule"],
        read: |s, out| {
            for m in s.registry.sources() {
                for (rule, n) in lock(&m.privacy_changed).iter() {
                    out(&[&m.app, &m.source, rule], Value::Int(*n));
                }
            }
        },
    },
    source_counter!("forge_sidecar_duplicate_log_records_total", "Records dropped as already delivered.", duplicates),
    source_counter!(
        "forge_sidecar_recognised_log_records_total",
        "Records the second pass recognised by their bytes as the first pass read them, and did not decode again.",
        recognised
    ),
    Family {
        name: "forge_sidecar_in_flight_log_records",
        kind: Kind::Gauge(Num::Int),
        help: "Records awaiting the backend's answer.",
        unit: None,
        labels: SOURCE,
        read: |s, out| each_source(s, out, |m| count(&m.in_flight)),
    },
    source_counter!(
        "forge_sidecar_out_of_window_log_records_total",
        "Records outside the queried window (edge records), left to the neighbouring window.",
        out_of_window
    ),
    source_counter!("forge_sidecar_export_retries_total", "Export attempts retried.", export_retries),
    Family {
        name: names::EXPORT_DURATION,
        kind: Kind::Histogram(DURATION_BUCKETS),
        help: "Time spent in export requests.",
        unit: Some("s"),
        labels: SOURCE,
        read: |s, out| each_source(s, out, |m| Value::Histogram(m.export_duration().snapshot())),
    },
    Family {
        name: "forge_sidecar_watermark_lag_seconds",
        kind: Kind::Gauge(Num::Float),
        help: "Now minus the first-pass watermark.",
        unit: Some("s"),
        labels: SOURCE,
        read: |s, out| {
            each_source(s, out, |m| Value::Float(lag_seconds(m.watermark_ms.load(Ordering::Relaxed), s.now_ms)))
        },
    },
    Family {
        name: "forge_sidecar_late_watermark_lag_seconds",
        kind: Kind::Gauge(Num::Float),
        help: "Now minus the second-pass (late records) watermark.",
        unit: Some("s"),
        labels: SOURCE,
        read: |s, out| {
            each_source(s, out, |m| Value::Float(lag_seconds(m.late_watermark_ms.load(Ordering::Relaxed), s.now_ms)))
        },
    },
    source_counter!(
        "forge_sidecar_gap_seconds_total",
        "Seconds of history that could not be read (older than 14 days, or pages given up).",
        Some("s"),
        gap_seconds
    ),
    source_counter!("forge_sidecar_abandoned_pages_total", "Pages given up after repeated failures.", gave_up_pages),
    source_counter!("forge_sidecar_cursor_loops_total", "Cursor loops detected and cut.", cursor_loops),
    source_counter!(
        "forge_sidecar_invalid_timestamp_log_records_total",
        "Records delivered with an unparsable timestamp.",
        bad_time
    ),
    source_counter!(
        "forge_sidecar_invalid_id_log_records_total",
        "Records with a malformed trace or span id (id dropped).",
        bad_ids
    ),
    Family {
        name: names::ARRIVAL_DELAY,
        kind: Kind::Histogram(DELAY_BUCKETS),
        help: "Time from a record's own timestamp to the poll that first saw it.",
        unit: Some("s"),
        labels: SOURCE,
        read: |s, out| each_source(s, out, |m| Value::Histogram(m.arrival_delay.snapshot())),
    },
    source_counter!(
        "forge_sidecar_records_found_late_total",
        "Records found only by the second (late records) pass.",
        found_late
    ),
    source_counter!(
        "forge_sidecar_sites_evicted_total",
        "Sites let go from the per-source site map at its cap (silent-site detection forgets them).",
        sites_evicted
    ),
    source_counter!(
        "forge_sidecar_late_pass_skipped_seconds_total",
        "Seconds of time the second pass skipped because the delivered-record memory was full (late records there are not caught).",
        late_pass_skipped_seconds
    ),
    Family {
        name: "forge_sidecar_source_state",
        kind: Kind::Gauge(Num::Int),
        help: "1 for the state each source is in.",
        unit: None,
        labels: &["app", "source", "state"],
        read: |s, out| {
            for m in s.registry.sources() {
                let current = m.status().state;
                for state in STATES {
                    out(&[&m.app, &m.source, state_name(state)], Value::Int(u64::from(current == state)));
                }
            }
        },
    },
    Family {
        name: "forge_sidecar_metrics_source_info",
        kind: Kind::Gauge(Num::Int),
        help: "1 for each App metrics source, with the budget key of its account (join on app and source).",
        unit: None,
        labels: &["app", "source", "account"],
        read: |s, out| {
            for m in s.registry.sources() {
                if let Some(info) = m.metrics_source.get() {
                    out(&[&m.app, &m.source, &info.account], Value::Int(1));
                }
            }
        },
    },
    app_gauge!("forge_sidecar_clock_skew_seconds", "Forge API clock minus host clock.", Some("s"), clock_skew_seconds),
    app_gauge!(
        "forge_sidecar_budget_calls_needed_per_minute",
        "API calls per minute the app's sources need to keep up.",
        None,
        calls_needed_per_minute
    ),
    app_gauge!(
        "forge_sidecar_budget_effective_rate_per_minute",
        "API calls per minute the app's rate budget allows.",
        None,
        effective_rate_per_minute
    ),
    Family {
        name: "forge_sidecar_ready",
        kind: Kind::Gauge(Num::Int),
        help: "1 when every source is ready.",
        unit: None,
        labels: &[],
        read: |s, out| {
            if let Some(ready) = s.ready {
                out(&[], Value::Int(u64::from(ready)));
            }
        },
    },
    Family {
        name: "process_resident_memory_bytes",
        kind: Kind::Gauge(Num::Int),
        help: "Resident memory.",
        unit: Some("By"),
        labels: &[],
        read: |_, out| {
            if let Some((rss, _)) = process_usage() {
                out(&[], Value::Int(rss));
            }
        },
    },
    Family {
        name: "process_cpu_seconds_total",
        kind: Kind::Counter(Num::Float),
        help: "CPU time, user and system.",
        unit: Some("s"),
        labels: &[],
        read: |_, out| {
            if let Some((_, cpu)) = process_usage() {
                out(&[], Value::Float(cpu));
            }
        },
    },
];

#[cfg(test)]
mod tests;
