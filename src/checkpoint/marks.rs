//! The small file: a source's marks, the page in progress and its
//! counters, as versioned JSON; and how a file's bytes are judged on load
//! (current, older and migrated, newer and refused, or corrupt).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::delivered::Delivered;
use super::legacy;
use crate::progress::Progress;

/// The format written; 1 (fingerprints inline) is migrated on load.
pub const VERSION: u32 = 2;

/// A source's progress, without fingerprints (those are in the journal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    pub source: String,
    /// `SourceConfig::query_key` of the filters this progress was made with.
    pub query_key: String,
    /// W: every record before it was delivered by the first pass.
    pub watermark_ms: i64,
    /// W2 ≤ W: every stretch before it was read by the second pass too.
    pub late_watermark_ms: i64,
    pub current: Option<Progress>,
    /// Seconds of history lost to the API's 14-day limit, ever.
    pub gap_seconds_total: u64,
    /// Seconds the second pass did not read again because the counts kept
    /// for them went over the cap, ever.
    pub late_pass_skipped_seconds_total: u64,
}

impl Checkpoint {
    pub fn fresh(source: &str, query_key: &str, start_ms: i64) -> Self {
        Self {
            version: VERSION,
            source: source.to_string(),
            query_key: query_key.to_string(),
            watermark_ms: start_ms,
            late_watermark_ms: start_ms,
            current: None,
            gap_seconds_total: 0,
            late_pass_skipped_seconds_total: 0,
        }
    }
}

/// The fields each version writes; anything else was written by a version
/// this one does not know.
const V2_FIELDS: &[&str] = &[
    "version",
    "source",
    "query_key",
    "watermark_ms",
    "late_watermark_ms",
    "current",
    "gap_seconds_total",
    "late_pass_skipped_seconds_total",
];
pub(super) const V1_FIELDS: &[&str] = &[
    "version",
    "source",
    "query_key",
    "watermark_ms",
    "late_watermark_ms",
    "current",
    "fingerprints",
    "gap_seconds_total",
];
/// [`Progress`] flattened into `current` (its window included).
const PROGRESS_FIELDS: &[&str] = &["pass", "start_ms", "end_ms", "complete", "group", "cursor", "pages"];

/// What a small file's bytes are.
#[derive(Debug)]
pub(super) enum Decoded {
    Current(Checkpoint),
    /// An older version, converted: counts of 1 for every fingerprint it kept.
    Migrated {
        cp: Checkpoint,
        delivered: Delivered,
        from: u32,
    },
    /// Written by a newer version: must not be used or overwritten.
    Newer(String),
    /// Not a checkpoint this or any version writes.
    Corrupt(String),
}

fn unknown_field(obj: &Map<String, Value>, known: &[&str]) -> Option<String> {
    let top = obj.keys().find(|k| !known.contains(&k.as_str())).cloned();
    let nested = || match obj.get("current") {
        Some(Value::Object(p)) => {
            p.keys().find(|k| !PROGRESS_FIELDS.contains(&k.as_str())).map(|k| format!("current.{k}"))
        }
        _ => None,
    };
    top.or_else(nested)
}

/// Judges a small file's bytes.
pub(super) fn decode(bytes: &[u8]) -> Decoded {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Decoded::Corrupt(format!("corrupt: {e}")),
    };
    let Value::Object(obj) = &value else { return Decoded::Corrupt("corrupt: not a JSON object".into()) };
    let Some(version) = obj.get("version").and_then(Value::as_u64) else {
        return Decoded::Corrupt("corrupt: no version".into());
    };
    if version > u64::from(VERSION) {
        return Decoded::Newer(format!("format version {version}; this build reads versions 1 to {VERSION}"));
    }
    let known = match version {
        1 => V1_FIELDS,
        2 => V2_FIELDS,
        v => return Decoded::Corrupt(format!("unknown version {v}")),
    };
    if let Some(field) = unknown_field(obj, known) {
        return Decoded::Newer(format!("unknown field `{field}` in a version {version} file"));
    }
    let decoded = if version == 1 {
        match legacy::migrate(value) {
            Ok((cp, delivered)) => Decoded::Migrated { cp, delivered, from: 1 },
            Err(e) => return Decoded::Corrupt(format!("corrupt version 1 file: {e}")),
        }
    } else {
        match serde_json::from_value::<Checkpoint>(value) {
            Ok(cp) => Decoded::Current(cp),
            Err(e) => return Decoded::Corrupt(format!("corrupt: {e}")),
        }
    };
    let (Decoded::Current(cp) | Decoded::Migrated { cp, .. }) = &decoded else { return decoded };
    if cp.late_watermark_ms > cp.watermark_ms {
        return Decoded::Corrupt("inconsistent marks (late watermark after watermark)".into());
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Pass, Window};

    fn sample() -> Checkpoint {
        let mut cp = Checkpoint::fresh("prod / eu", "q1", 1_000);
        cp.watermark_ms = 2_000;
        cp.current = Some(Progress {
            window: Window { pass: Pass::Late, start_ms: 1_000, end_ms: 2_000, complete: true },
            group: 1,
            cursor: Some("abc".into()),
            pages: 3,
        });
        cp.gap_seconds_total = 7;
        cp.late_pass_skipped_seconds_total = 60;
        cp
    }

    #[test]
    fn the_field_lists_match_what_is_written() {
        let v = serde_json::to_value(sample()).unwrap_or_default();
        let keys: Vec<&str> = v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        let mut want = V2_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        let mut progress: Vec<&str> =
            v["current"].as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        progress.sort_unstable();
        let mut want = PROGRESS_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(progress, want);
    }

    #[test]
    fn judges_each_kind_of_file() {
        let good = serde_json::to_vec(&sample()).unwrap_or_default();
        assert!(matches!(decode(&good), Decoded::Current(cp) if cp == sample()));
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = serde_json::to_value(sample()).unwrap_or_default();
            f(&mut v);
            decode(&serde_json::to_vec(&v).unwrap_or_default())
        };
        let newer = [
            with(&|v| v["version"] = 3.into()),
            with(&|v| v["version"] = u64::MAX.into()),
            with(&|v| v["shard"] = 1.into()),
            with(&|v| v["current"]["budget"] = 1.into()),
        ];
        for d in newer {
            assert!(matches!(d, Decoded::Newer(_)), "{d:?}");
        }
        let corrupt = [
            with(&|v| v["version"] = 0.into()),
            with(&|v| v["version"] = (-1).into()),
            with(&|v| v["watermark_ms"] = "soon".into()),
            with(&|v| v["late_watermark_ms"] = 5_000.into()),
            with(&|v| {
                v.as_object_mut().map(|o| o.remove("source"));
            }),
            decode(b"[1,2]"),
            decode(b"{\"version\":2,\"sour"),
            decode(b""),
            decode(b"\x00\xff"),
        ];
        for d in corrupt {
            assert!(matches!(d, Decoded::Corrupt(_)), "{d:?}");
        }
    }
}
