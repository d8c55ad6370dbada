//! The field's worst behaviours as simulator knobs: another client sharing
//! the app's budget, 429 answers in other styles, a clock that differs from
//! the host's, either window edge moved, identical twin records, shuffled
//! pages, expiring cursors and odd trace ids.
//!
//! One struct serves the `simulate` command line (flattened into its
//! arguments), the in-process [`super::SimConfig`] and the run-time endpoint
//! `/_sim/behaviour` (`GET`, `PUT` to replace, `PATCH` to change some).
//! Every choice is a function of the record's index, so records stay
//! deterministic from the seed and cost no memory.

use serde::{Deserialize, Serialize};

/// How a rate-limited answer (429 from the sliding-window limit) says when to come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum RateLimitStyle {
    /// `Retry-After` in whole seconds.
    #[default]
    RetryAfter,
    /// Only `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
    /// (ISO 8601 UTC, the API's time at which a slot frees).
    XRatelimit,
    /// No header at all.
    None,
}

/// Run-time behaviour knobs; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Calls another client spends of each app's limit per rate window,
    /// spread evenly over the window and counted by the same sliding-window limit.
    #[arg(long, default_value_t = 0)]
    pub other_client_calls: u32,
    /// How a 429 from the rate limit tells when to retry.
    #[arg(long, value_enum, default_value_t = RateLimitStyle::RetryAfter)]
    pub rate_limit_style: RateLimitStyle,
    /// The API's clock minus the host's, in ms (negative: the API is behind).
    /// It decides visibility, the 14-day limit, "future" and the `Date` header.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_offset_ms: i64,
    /// Answer 400 "endDate is in the future" when endDate is after the API's now.
    #[arg(long)]
    pub refuse_future_end: bool,
    /// Leave out records in startDate's millisecond.
    #[arg(long)]
    pub start_exclusive: bool,
    /// Include records in endDate's millisecond.
    #[arg(long, alias = "inclusive-end")]
    pub end_inclusive: bool,
    /// Every N-th record has an identical copy, `sim.seq` included (0: none).
    #[arg(long, default_value_t = 0)]
    pub twin_every: u64,
    /// Every second copy becomes visible this many ms after its original.
    #[arg(long, default_value_t = 0)]
    pub twin_late_ms: u64,
    /// A window's records come in a deterministic pseudo-random order, within and across pages.
    #[arg(long)]
    pub shuffle: bool,
    /// A cursor older than this (ms) answers 400 "cursor expired" (0: never).
    #[arg(long, default_value_t = 0)]
    pub cursor_ttl_ms: u64,
    /// Every N-th record carries a 64-bit (16 hex) B3 trace id (0: none).
    #[arg(long, default_value_t = 0)]
    pub short_trace_ids_every: u64,
    /// Every N-th record carries ids of odd lengths: a trace id of 20 or 31
    /// hex characters, or a span id of 10 (0: none).
    #[arg(long, default_value_t = 0)]
    pub odd_ids_every: u64,
    /// Every third record's body also carries an email address, a bearer
    /// token and an Atlassian account id (what privacy rules mask).
    #[arg(long)]
    pub privacy_samples: bool,
}

/// Shown after `simulate --help`.
pub const CLI_HELP: &str = "\
Run-time knobs (JSON, same names as the flags with `_`):
  GET/PUT/PATCH /_sim/behaviour   the behaviour flags above (PATCH changes only the keys given)
  GET/PUT/PATCH /_sim/faults      error injection, see --faults
Introspection:
  GET /_sim/records?before_ms=MS[&detail=true]   one entry per copy the API holds; `copies` maps twinned seqs to 2
  GET /_sim/requests                             every call: time, app, environment, status";

/// What a record's index makes of it under the current knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdShape {
    Normal,
    /// A 16-hex trace id.
    Short,
    /// A trace id of 20 hex characters.
    Odd20,
    /// A trace id of 31 hex characters.
    Odd31,
    /// A valid trace id with a 10-hex span id.
    OddSpan,
}

/// Phases keep the knobs from always picking the same records.
const TWIN_PHASE: u64 = 0;
const SHORT_PHASE: u64 = 1;
const ODD_PHASE: u64 = 2;

fn every(n: u64, index: u64, phase: u64) -> bool {
    n > 0 && (index + phase) % n == n - 1
}

impl Behaviour {
    /// How many copies of record `index` the API holds (1 or 2).
    pub fn copies(&self, index: u64) -> u64 {
        if every(self.twin_every, index, TWIN_PHASE) { 2 } else { 1 }
    }

    /// The extra delay (ns) before the copy of a twinned record becomes visible:
    /// every second twin, so exactly half of them are late.
    pub(crate) fn twin_delay_ns(&self, index: u64) -> i64 {
        let ordinal = (index + TWIN_PHASE) / self.twin_every.max(1);
        if ordinal % 2 == 1 { (self.twin_late_ms.min(86_400_000) as i64) * 1_000_000 } else { 0 }
    }

    /// The shape of record `index`'s ids.
    pub(crate) fn id_shape(&self, index: u64) -> IdShape {
        if every(self.odd_ids_every, index, ODD_PHASE) {
            match (index + ODD_PHASE) / self.odd_ids_every.max(1) % 3 {
                0 => IdShape::Odd20,
                1 => IdShape::Odd31,
                _ => IdShape::OddSpan,
            }
        } else if every(self.short_trace_ids_every, index, SHORT_PHASE) {
            IdShape::Short
        } else {
            IdShape::Normal
        }
    }

    /// What record `index` adds to its body under `privacy_samples`: text
    /// that is personal data or a credential, unique per record.
    pub fn privacy_sample(&self, index: u64) -> Option<String> {
        (self.privacy_samples && index.is_multiple_of(3)).then(|| {
            format!(
                " user=jane.doe.{index}@example.com auth=\"Bearer sk{index:08x}Zq9\" account=557058:00000000-0000-4000-8000-{index:012x}"
            )
        })
    }

    /// The API's clock for the host's `host_ms`.
    pub(crate) fn api_ms(&self, host_ms: i64) -> i64 {
        host_ms.saturating_add(self.clock_offset_ms)
    }
}

/// `Date` header text for milliseconds since the epoch (clamped at the epoch).
pub(crate) fn http_date(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// Applies a JSON object's keys onto `current` (PATCH); unknown keys are refused.
pub(crate) fn patch<T: Serialize + serde::de::DeserializeOwned>(
    current: &T,
    changes: serde_json::Value,
) -> Result<T, String> {
    let mut value = serde_json::to_value(current).map_err(|e| e.to_string())?;
    let (Some(target), serde_json::Value::Object(changes)) = (value.as_object_mut(), changes) else {
        return Err("expected a JSON object".into());
    };
    for (k, v) in changes {
        target.insert(k, v);
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}
