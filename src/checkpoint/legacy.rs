//! Version 1 of the small file: fingerprints inline, a set per minute,
//! each minute's sorted u64s little-endian and base64-encoded. Read only
//! to migrate: every fingerprint becomes a count of 1 (version 1 kept no
//! counts; it delivered each content once).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::delivered::Delivered;
use super::marks::{Checkpoint, VERSION};
use crate::progress::Progress;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1 {
    #[allow(dead_code)]
    version: u32,
    source: String,
    query_key: String,
    watermark_ms: i64,
    late_watermark_ms: i64,
    current: Option<Progress>,
    fingerprints: BTreeMap<String, String>,
    gap_seconds_total: u64,
}

/// A version 1 file as today's checkpoint and counts.
pub(super) fn migrate(value: serde_json::Value) -> Result<(Checkpoint, Delivered), String> {
    let v1: V1 = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let mut delivered = Delivered::default();
    for (minute, b64) in &v1.fingerprints {
        let minute: i64 = minute.parse().map_err(|e| format!("minute {minute:?}: {e}"))?;
        let bytes = STANDARD.decode(b64).map_err(|e| format!("minute {minute}: {e}"))?;
        if bytes.len() % 8 != 0 {
            return Err(format!("minute {minute}: not a whole number of fingerprints"));
        }
        for c in bytes.chunks_exact(8) {
            let fp = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            delivered.raise_minute(minute, fp, 1);
        }
    }
    let cp = Checkpoint {
        version: VERSION,
        source: v1.source,
        query_key: v1.query_key,
        watermark_ms: v1.watermark_ms,
        late_watermark_ms: v1.late_watermark_ms,
        current: v1.current,
        gap_seconds_total: v1.gap_seconds_total,
        late_pass_skipped_seconds_total: 0,
    };
    Ok((cp, delivered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::delivered::MINUTE_NS;
    use crate::progress::{Pass, Window};

    /// Written by the version 1 serializer itself (before this module existed).
    const V1_FILE: &[u8] = include_bytes!("../../tests/data/checkpoint-v1.json");

    #[test]
    fn a_version_1_file_becomes_counts_of_one() {
        let value = serde_json::from_slice(V1_FILE).unwrap_or_default();
        let (cp, delivered) = migrate(value).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cp.version, VERSION);
        assert_eq!((cp.source.as_str(), cp.query_key.as_str()), ("prod / eu", "q-v1"));
        assert_eq!((cp.watermark_ms, cp.late_watermark_ms), (1_764_600_000_000, 1_764_599_880_000));
        assert_eq!(cp.gap_seconds_total, 3600);
        assert_eq!(cp.late_pass_skipped_seconds_total, 0);
        let window =
            Window { pass: Pass::First, start_ms: 1_764_600_000_000, end_ms: 1_764_600_060_000, complete: false };
        assert_eq!(cp.current, Some(Progress { window, group: 1, cursor: Some("c-42".into()), pages: 2 }));
        let ns = |ms: i64| ms * 1_000_000;
        assert_eq!(delivered.len(), 4);
        assert_eq!(delivered.count(ns(1_764_599_880_500), 0x1111_2222_3333_4444), 1);
        assert_eq!(delivered.count(ns(1_764_599_890_000), 7), 1);
        assert_eq!(delivered.count(ns(1_764_599_950_000), 0xffff_ffff_ffff_fff0), 1);
        assert_eq!(delivered.count(ns(1_764_600_010_000), 42), 1);
        assert_eq!(delivered.count(ns(1_764_600_010_000) + MINUTE_NS, 42), 0);
    }

    #[test]
    fn damaged_version_1_fingerprints_are_errors_not_panics() {
        for fps in [r#"{"x":"AAAAAAAAAAA="}"#, r#"{"1":"%%%"}"#, r#"{"1":"AAAA"}"#] {
            let text = format!(
                r#"{{"version":1,"source":"s","query_key":"q","watermark_ms":0,"late_watermark_ms":0,"current":null,"fingerprints":{fps},"gap_seconds_total":0}}"#
            );
            let value = serde_json::from_str(&text).unwrap_or_default();
            assert!(migrate(value).is_err(), "{fps}");
        }
    }
}
