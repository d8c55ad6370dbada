use prost::Message;

use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::json::find_stop;
use super::*;
use crate::forge::model::Page;

/// The model path: serde_json into owned wire types, then `convert::record`.
fn via_model(text: &str, observed_ns: u64) -> (Vec<LogRecord>, ConvertStats, Option<String>) {
    let page: Page = serde_json::from_str(text).unwrap_or_default();
    let mut stats = ConvertStats::default();
    let records = page.app_logs.iter().map(|r| crate::convert::record(r, observed_ns, &mut stats)).collect();
    (records, stats, page.next_cursor().map(str::to_string))
}

/// Decodes with both paths and checks they agree byte for byte.
fn check_agrees(text: &str, observed_ns: u64) -> Decoded {
    let direct = decode_page(text.as_bytes(), observed_ns);
    let Ok(direct) = direct else { panic!("{direct:?}: {text:.80}") };
    let (records, stats, cursor) = via_model(text, observed_ns);
    assert_eq!(direct.records.len(), records.len());
    for (got, want) in direct.records.iter().zip(&records) {
        assert_eq!(got.encoded, want.encode_to_vec().as_slice(), "{want:?}");
        let mut want = want.clone();
        assert_eq!(got.fingerprint(), crate::convert::fingerprint(&mut want, &mut Vec::new()));
        assert_eq!(got.time_unix_nano, want.time_unix_nano);
    }
    assert_eq!(direct.stats, stats);
    assert_eq!(direct.cursor, cursor);
    direct
}

const ODD: &str = r#"{"appLogs":[{"timeUnixNano":"yesterday","traceId":"xyz","spanId":"6c7f6ad7436700c1","severityText":"WARNING","body":{"kvlistValue":{"values":[{"key":"s","value":{"stringValue":"x","intValue":"3"}},{"key":"s"},{"key":"i","value":{"intValue":"-12"}},{"key":"n","value":{"intValue":7}},{"key":"big","value":{"intValue":"99999999999999999999"}},{"key":"d","value":{"doubleValue":"Infinity"}},{"key":"y","value":{"bytesValue":"AAEC"}},{"key":"bad","value":{"bytesValue":"%%%"}},{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true},{}]}}},{"key":"u","value":{"futureKind":1}}]}}},
    {"timeUnixNano":1707821444939000000,"severityNumber":"50","extra":[1,2]}],"cursor":""}"#;

#[test]
fn agrees_with_the_model_path() {
    let sample = include_str!("../../tests/data/sample-page.json");
    let d = check_agrees(sample, 5);
    assert_eq!(d.cursor.as_deref(), Some("someString"));
    assert_eq!(
        d.records.iter().next().and_then(|r| r.site()),
        Some("ari:cloud:confluence::site/089a1455-4ea0-122a-b70c-5b17360f047d")
    );
    check_agrees(ODD, 5);
    check_agrees(ODD, 0);
    // Field order of the page differs from protobuf's; values before keys; escapes everywhere.
    let shuffled = r#" { "cursor" : null , "appLogs" : [ { "attributes" : [ { "value" : { "stringValue" : "s\u00e9\"q\\\n\ud83d\ude00" } , "key" : "installationContext" } ,
        { "value" : null , "key" : "k\t" } , { "key" : "" , "value" : { "doubleValue" : -1.5e3 } } ] , "spanId" : "" , "body" : { "stringValue" : "" } ,
        "severityNumber" : 17.0 , "timeUnixNano" : 1.5e18 , "trac\u0065Id" : " 3E1C350520934CBEB20B7D54D56BEE2C " } , { } ] } "#;
    let d = check_agrees(shuffled, 7);
    assert_eq!(d.records.iter().next().and_then(|r| r.site()), Some("sé\"q\\\n😀"));
    // Fields and records longer than 127 bytes take two-byte lengths.
    let long = "x\\\"y".repeat(300);
    let nested = format!(
        r#"{{"appLogs":[{{"body":{{"kvlistValue":{{"values":[{{"key":"deep","value":{{"arrayValue":{{"values":[{{"stringValue":"{long}"}},{{"kvlistValue":{{"values":[{{"value":{{"stringValue":"{long}"}},"key":"{long}"}}]}}}}]}}}}}}]}}}},"attributes":[{{"key":"installationContext","value":{{"intValue":"5"}}}},{{"key":"installationContext","value":{{"stringValue":"second"}}}}]}}]}}"#
    );
    let d = check_agrees(&nested, 9);
    assert_eq!(d.records.iter().next().and_then(|r| r.site()), None, "the first installationContext decides");
}

#[test]
fn messages_round_trip() {
    let sample = include_str!("../../tests/data/sample-page.json");
    let d = check_agrees(sample, 5);
    let (want, _, _) = via_model(sample, 5);
    assert_eq!(d.records.to_messages().ok(), Some(want));
}

#[test]
fn simulator_pages_agree() {
    use crate::simulator::data::{Generator, Stream, site_id};
    let g = Generator {
        seed: 3,
        t0_ns: 1_700_000_000_000_000_000,
        step_ns: 250_000_000,
        late_permille: 0,
        max_late_ns: 0,
        edge_permille: 100,
        sites: (0..5).map(|i| site_id(3, i)).collect(),
        pad_bytes: 300,
    };
    let s = Stream { app_id: "app".into(), environment_id: "env".into(), index: 0 };
    let records: Vec<_> = (0..300u64).map(|i| g.record(&s, &g.meta(&s, i))).collect();
    let text = serde_json::to_string(&Page { app_logs: records, cursor: Some("c".into()) }).unwrap_or_default();
    let d = check_agrees(&text, 11);
    assert_eq!(d.records.len(), 300);
    assert!(d.records.iter().all(|r| r.site().is_some_and(|s| s.starts_with("ari:cloud:"))));
}

#[test]
fn hostile_input_is_an_error_not_a_crash() {
    let deep = format!(
        "{{\"appLogs\":[{{\"body\":{}\"stringValue\":\"x\"{}}}]}}",
        "{\"arrayValue\":{\"values\":[".repeat(500),
        "]}}".repeat(500)
    );
    let deep_skip = format!("{{\"appLogs\":[],\"x\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    for bad in [
        "",
        "null",
        "[]",
        "{\"appLogs\":{}}",
        "{\"appLogs\":[{\"body\":[]}]}",
        "<html>",
        "{\"appLogs\":[",
        "{\"appLogs\":[]} x",
        "{\"appLogs\":[],}",
        "{\"cursor\":\"x\"}",
        "{\"appLogs\":[{\"body\":{\"stringValue\":\"a\u{1}\"}}]}",
        "{\"appLogs\":[{\"body\":{\"stringValue\":\"\\ud800\"}}]}",
        "{\"appLogs\":[{\"body\":{\"stringValue\":\"\\x\"}}]}",
        "{\"appLogs\":[{\"timeUnixNano\":01}]}",
        "{\"appLogs\":[{\"timeUnixNano\":1e999}]}",
        "{\"appLogs\":[{\"timeUnixNano\":true}]}",
        "{\"appLogs\":[{\"attributes\":[{\"value\":{}}]}]}",
        "{\"appLogs\":[{\"spanId\":\"a\",\"spanId\":\"b\"}]}",
        "{\"appLogs\":[],\"appLogs\":[]}",
        &deep,
        &deep_skip,
    ] {
        assert!(decode_page(bad.as_bytes(), 0).is_err(), "{bad:.60}");
    }
    assert!(decode_page(b"{\"appLogs\":[{\"body\":{\"stringValue\":\"\xff\"}}]}", 0).is_err());
    let e = decode_page(b"{\"appLogs\":[{\"body\":{\"boolValue\":1}}]}", 0).err();
    assert_eq!(e.map(|e| e.to_string()), Some("`boolValue`: expected a boolean at byte 33".to_string()));
}

/// Damaged copies of a real page: never a panic; what decodes is valid protobuf.
#[test]
fn damaged_pages_never_panic() {
    let sample = include_str!("../../tests/data/sample-page.json").as_bytes();
    let mut rng = fastrand::Rng::with_seed(7);
    let noise = b"{}[]\",:\\u0n1-e. \xc3\xa9";
    let mut decoded = 0;
    for _ in 0..3000 {
        let mut page = sample.to_vec();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..page.len());
            match rng.u8(..3) {
                0 => page[at] = noise[rng.usize(..noise.len())],
                1 => page.truncate(at),
                _ => {
                    page.remove(at);
                }
            }
            if page.is_empty() {
                break;
            }
        }
        if let Ok(d) = decode_page(&page, 1) {
            decoded += 1;
            assert!(d.records.to_messages().is_ok());
        }
    }
    assert!(decoded > 0, "some damage (inside strings) leaves a valid page");
}

/// The word-at-a-time search finds what a byte loop finds, at every offset.
#[test]
fn find_stop_matches_a_byte_loop() {
    let mut rng = fastrand::Rng::with_seed(11);
    let alphabet = b"ab\"\\\x00\x1f\x20\x7f\x80\xc3\xa9\xff!#[]";
    for _ in 0..20_000 {
        let len = rng.usize(0..40);
        let s: Vec<u8> = (0..len)
            .map(|_| if rng.u8(..4) == 0 { alphabet[rng.usize(..alphabet.len())] } else { b'a' + rng.u8(..26) })
            .collect();
        let want = s.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        assert_eq!(find_stop(&s), want, "{s:?}");
    }
}

#[test]
fn short_trace_ids_are_padded_and_odd_ones_dropped() {
    let page = r#"{"appLogs":[
        {"timeUnixNano":"1","traceId":"463ac35c9f6413ad","spanId":"a2fb4a1d1a96d312"},
        {"timeUnixNano":"2","traceId":"463ac35c9f6413ad48485a3953bb6124","spanId":"a2fb4a1d1a96d312"},
        {"timeUnixNano":"3","traceId":"463ac35c9f6413ad4848","spanId":"a2fb4a1d1a"}]}"#;
    let d = check_agrees(page, 1);
    let msgs = d.records.to_messages().unwrap();
    assert_eq!(msgs[0].trace_id, [&[0u8; 8][..], &[0x46, 0x3a, 0xc3, 0x5c, 0x9f, 0x64, 0x13, 0xad]].concat());
    assert_eq!(msgs[1].trace_id.len(), 16);
    assert!(msgs[2].trace_id.is_empty() && msgs[2].span_id.is_empty(), "odd lengths are dropped");
    assert_eq!(d.stats.bad_ids, 2, "both odd ids counted");
}

#[test]
fn times_past_i64_are_kept_raw_and_counted() {
    let page = r#"{"appLogs":[{"timeUnixNano":"9223372036854775808"},{"timeUnixNano":"18446744073709551615"},{"timeUnixNano":"9223372036854775807"}]}"#;
    let d = check_agrees(page, 1);
    let msgs = d.records.to_messages().unwrap();
    assert_eq!(d.stats.bad_time, 2);
    for m in &msgs[..2] {
        assert_eq!(m.time_unix_nano, 0, "never wrapped into a negative time");
        assert!(m.attributes.iter().any(|a| a.key == ATTR_RAW_TIME), "the raw value is kept");
    }
    assert_eq!(msgs[2].time_unix_nano, i64::MAX as u64);
}

#[test]
fn negative_zero_agrees_with_the_reference() {
    // Found by the decode_page fuzz target (fuzz/regressions/decode_page).
    check_agrees(r#"{"appLogs":[{"body":{"doubleValue":-0}},{"body":{"intValue":-0}},{"severityNumber":-0}]}"#, 1);
}

#[test]
fn a_record_recognised_by_its_bytes_decodes_as_its_page_did() {
    let rec = |t: u64, msg: &str| {
        format!(
            r#"{{"timeUnixNano":"{t}","severityText":"INFO","body":{{"stringValue":"{msg}"}},"attributes":[{{"key":"installationContext","value":{{"stringValue":"ari:cloud:jira::site/1"}}}}]}}"#
        )
    };
    let (a, b) = (rec(1_707_821_444_939_000_000, r#"order \"17\" shipped"#), rec(1_707_821_444_940_000_000, "done"));
    // Two twins, another record, and one too short to key.
    let sample = format!(r#"{{"appLogs":[{a}, {b},{a}, {{"body":{{"stringValue":"x"}}}}],"cursor":"c"}}"#);
    let keyed = decode_page_raw(sample.as_bytes(), 5, Raw::Keys).unwrap_or_else(|e| panic!("{e}"));
    let known: Vec<Known> = keyed
        .records
        .iter()
        .filter_map(|r| {
            Some(Known { raw: r.raw_key()?, time_unix_nano: r.time_unix_nano, fingerprint: r.fingerprint() })
        })
        .collect();
    assert_eq!(known.len(), 3, "records long enough are keyed");
    let find = |rest: &[u8]| {
        known.iter().find(|k| raw_prefix(rest) == Some(k.raw.prefix) && raw_matches(rest, &k.raw)).copied()
    };
    let again = decode_page_raw(sample.as_bytes(), 5, Raw::Skip(&find)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.skipped, known.len());
    assert_eq!(again.records.len(), keyed.records.len());
    for (first, second) in keyed.records.iter().zip(again.records.iter()) {
        assert_eq!((second.time_unix_nano, second.fingerprint()), (first.time_unix_nano, first.fingerprint()));
        match second.skipped() {
            Some((a, b)) => {
                assert!(second.encoded().is_empty(), "not decoded");
                let one = decode_record(sample.as_bytes().get(a..b).unwrap_or_default(), 5, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                let r = one.records.iter().next().unwrap_or_else(|| panic!("one record"));
                assert_eq!((r.encoded(), r.fingerprint()), (first.encoded(), first.fingerprint()));
            }
            None => assert!(first.raw_key().is_none(), "only records too short to key are decoded again"),
        }
    }
    // A record whose bytes differ by one is decoded, not recognised.
    let reordered = sample.replacen("\"done\"", "\"done!\"", 1);
    let other = decode_page_raw(reordered.as_bytes(), 5, Raw::Skip(&find)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.skipped + 1, again.skipped, "the changed record is decoded");
}
