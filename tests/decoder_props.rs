//! Differential property tests: the page decoder (`convert::decode_page`) against
//! the reference path (serde into `forge::model`, then `convert::record`)
//! on generated pages. Both must give the same encoded records, byte for
//! byte, the same fingerprints, times, statistics and cursor.
//!
//! The pages mix what the API sends with what it might: numbers as strings
//! or not, out-of-range and unparsable times, 16- and 32-hex and broken
//! ids, nested bodies, escapes and non-ASCII text, unknown fields, and
//! compact or pretty layout. The case count is small so `cargo test` stays
//! fast; the fuzz target `decode_page` runs the same check for longer.

use forge_otel_sidecar::convert::decode_page;
use forge_otel_sidecar::convert::{self, ConvertStats};
use forge_otel_sidecar::forge::model::Page;
use proptest::prelude::*;
use prost::Message;
use serde_json::{Map, Value, json};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec!["", "hello", "a\"b\\c", "tab\there", "line\nbreak", "é", "😀", "\u{0}", "</script>"])
            .prop_map(str::to_string),
        2 => proptest::collection::vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect()),
    ]
}

fn number_or_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n.to_string())),
        any::<i64>().prop_map(|n| json!(n.to_string())),
        (-1e20f64..1e20).prop_map(|f| json!(f)),
        proptest::sample::select(vec![
            "18446744073709551616",
            "9223372036854775808",
            "-1",
            "1.5e18",
            "yesterday",
            "",
            " 17 ",
            "0x10",
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn hex_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[0-9a-f]{32}".prop_map(Value::String),
        "[0-9a-f]{16}".prop_map(Value::String),
        "[0-9A-F]{32}".prop_map(Value::String),
        "[0-9a-fxz ]{0,34}".prop_map(Value::String),
        Just(Value::Null),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(|s| json!({ "stringValue": s })),
        number_or_string().prop_map(|n| json!({ "intValue": n })),
        prop_oneof![any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)), Just(json!("NaN"))]
            .prop_map(|d| json!({ "doubleValue": d })),
        any::<bool>().prop_map(|b| json!({ "boolValue": b })),
        prop_oneof![Just("AAEC"), Just("%%%"), Just("")].prop_map(|b| json!({ "bytesValue": b })),
        Just(json!({})),
        Just(json!({ "futureKind": 1 })),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({ "arrayValue": { "values": v } })),
            proptest::collection::vec((key(), proptest::option::of(inner)), 0..4).prop_map(|kvs| {
                let values: Vec<Value> = kvs
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => json!({ "key": k, "value": v }),
                        None => json!({ "key": k }),
                    })
                    .collect();
                json!({ "kvlistValue": { "values": values } })
            }),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("installationContext".to_string()),
        2 => proptest::sample::select(vec!["", "k", "sim.seq", "k\t", "é"]).prop_map(str::to_string),
        1 => text(),
    ]
}

fn record() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(number_or_string()),
        proptest::option::of(number_or_string()),
        proptest::option::of(proptest::sample::select(vec!["INFO", "WARN", "WARNING", "error", "FATAL", "", "x"])),
        proptest::option::of(any_value()),
        proptest::option::of(hex_id()),
        proptest::option::of(hex_id()),
        proptest::collection::vec((key(), proptest::option::of(any_value())), 0..4),
        any::<bool>(),
    )
        .prop_map(|(time, sev_num, sev_text, body, trace, span, attrs, extra)| {
            let mut m = Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            };
            put("timeUnixNano", time);
            put("severityNumber", sev_num);
            put("severityText", sev_text.map(|s| json!(s)));
            put("body", body);
            put("traceId", trace);
            put("spanId", span);
            if !attrs.is_empty() {
                let a: Vec<Value> = attrs
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => json!({ "key": k, "value": v }),
                        None => json!({ "key": k, "value": null }),
                    })
                    .collect();
                put("attributes", Some(Value::Array(a)));
            }
            if extra {
                put("observedTimeUnixNano", Some(json!("5")));
                put("future", Some(json!([1, { "a": null }])));
            }
            Value::Object(m)
        })
}

fn page() -> impl Strategy<Value = (String, u64)> {
    (
        proptest::collection::vec(record(), 0..8),
        proptest::option::of(prop_oneof![Just(Value::Null), text().prop_map(Value::String)]),
        any::<bool>(),
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(|(records, cursor, pretty, observed)| {
            let mut m = Map::new();
            m.insert("appLogs".into(), Value::Array(records));
            if let Some(c) = cursor {
                m.insert("cursor".into(), c);
            }
            let v = Value::Object(m);
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) };
            (text.unwrap_or_default(), observed)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn decoder_agrees_with_the_reference((text, observed) in page()) {
        let direct = decode_page(text.as_bytes(), observed);
        prop_assert!(direct.is_ok(), "{:?}: {}", direct.err(), text);
        let Ok(direct) = direct else { return Ok(()) };
        let model: Page = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut stats = ConvertStats::default();
        let want: Vec<_> = model.app_logs.iter().map(|r| convert::record(r, observed, &mut stats)).collect();
        prop_assert_eq!(direct.records.len(), want.len());
        for (got, want) in direct.records.iter().zip(&want) {
            let encoded = want.encode_to_vec();
            prop_assert_eq!(got.encoded, encoded.as_slice(), "{:?}", want);
            prop_assert_eq!(got.time_unix_nano, want.time_unix_nano);
            let mut want = want.clone();
            prop_assert_eq!(got.fingerprint(), convert::fingerprint(&mut want, &mut Vec::new()));
        }
        prop_assert_eq!(direct.stats, stats);
        prop_assert_eq!(direct.cursor.as_deref(), model.next_cursor());
    }
}
