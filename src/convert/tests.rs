use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::batch::kv;
use super::*;
use crate::config::{AttrValue, SourceConfig};
use crate::forge::model;

const SAMPLE: &str = r#"{
  "appLogs": [
    {
      "timeUnixNano": "1707821444939000000",
      "severityNumber": 30,
      "severityText": "INFO",
      "body": { "stringValue": "This is simple log message" },
      "traceId": "3e1c350520934cbeb20b7d54d56bee2c",
      "spanId": "6c7f6ad7436700c1",
      "attributes": [
        { "key": "appId", "value": { "stringValue": "yibeb59-d217-58d3-a3a7-0a888b3bc5ef" } },
        { "key": "environmentId", "value": { "stringValue": "0129990-850f-1a19-a013-12cdefe2fa19" } },
        { "key": "invocationId", "value": { "stringValue": "e1f88a1e-1b59-1511-adfb-e080972d5d89" } },
        { "key": "installationContext", "value": { "stringValue": "ari:cloud:confluence::site/089a1455-4ea0-122a-b70c-5b17360f047d" } },
        { "key": "appVersion", "value": { "stringValue": "1.206.0" } },
        { "key": "functionKey", "value": { "stringValue": "updateStatusTitle" } },
        { "key": "moduleType", "value": { "stringValue": "core:function" } },
        { "key": "arguments", "value": { "stringValue": "[{\"randomData\":0.6341547823420093}]" } },
        { "key": "licenseState", "value": { "stringValue": "Active" } },
        { "key": "edition", "value": { "stringValue": "Standard" } }
      ]
    }
  ],
  "cursor": "someString"
}"#;

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.to_string()))
}

fn parse(text: &str) -> model::Page {
    match serde_json::from_str(text) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn documented_sample_converts_exactly() {
    let page = parse(SAMPLE);
    let mut stats = ConvertStats::default();
    let got = record(&page.app_logs[0], 42, &mut stats);
    let want = LogRecord {
        time_unix_nano: 1_707_821_444_939_000_000,
        observed_time_unix_nano: 42,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(AnyValue { value: Some(Value::StringValue("This is simple log message".into())) }),
        attributes: vec![
            s("appId", "yibeb59-d217-58d3-a3a7-0a888b3bc5ef"),
            s("environmentId", "0129990-850f-1a19-a013-12cdefe2fa19"),
            s("invocationId", "e1f88a1e-1b59-1511-adfb-e080972d5d89"),
            s("installationContext", "ari:cloud:confluence::site/089a1455-4ea0-122a-b70c-5b17360f047d"),
            s("appVersion", "1.206.0"),
            s("functionKey", "updateStatusTitle"),
            s("moduleType", "core:function"),
            s("arguments", "[{\"randomData\":0.6341547823420093}]"),
            s("licenseState", "Active"),
            s("edition", "Standard"),
            kv(ATTR_SEVERITY_NUMBER, Value::IntValue(30)),
        ],
        trace_id: vec![0x3e, 0x1c, 0x35, 0x05, 0x20, 0x93, 0x4c, 0xbe, 0xb2, 0x0b, 0x7d, 0x54, 0xd5, 0x6b, 0xee, 0x2c],
        span_id: vec![0x6c, 0x7f, 0x6a, 0xd7, 0x43, 0x67, 0x00, 0xc1],
        ..LogRecord::default()
    };
    assert_eq!(got, want);
    assert_eq!(stats, ConvertStats::default());
}

#[test]
fn severity_table() {
    let cases: [(Option<&str>, Option<i64>, i32); 16] = [
        (Some("INFO"), Some(30), 9),
        (Some("info"), None, 9),
        (Some("WARNING"), Some(40), 13),
        (Some("Warn"), None, 13),
        (Some("ERROR"), Some(999), 17),
        (Some("FATAL"), None, 21),
        (Some("TRACE"), None, 1),
        (Some("DEBUG"), None, 5),
        (Some("INFO3"), None, 11),
        (Some("notice"), Some(40), 13),
        (None, Some(10), 1),
        (None, Some(50), 17),
        (None, Some(60), 21),
        (None, Some(7), 7),
        (None, Some(99), 0),
        (None, None, 0),
    ];
    for (text, number, want) in cases {
        assert_eq!(severity(text, number), want, "{text:?} {number:?}");
    }
}

#[test]
fn bad_time_and_ids_are_counted_and_the_record_kept() {
    let page = parse(
        r#"{"appLogs":[{"timeUnixNano":"yesterday","traceId":"xyz","spanId":"6c7f6ad7436700c1","body":{"stringValue":"m"}},
        {"timeUnixNano":1707821444939000000,"traceId":"3e1c350520934cbeb20b7d54d56bee2c","spanId":"12"}]}"#,
    );
    let mut stats = ConvertStats::default();
    let a = record(&page.app_logs[0], 0, &mut stats);
    let b = record(&page.app_logs[1], 0, &mut stats);
    assert_eq!(stats, ConvertStats { bad_time: 1, bad_ids: 2 });
    assert_eq!(a.time_unix_nano, 0);
    assert!(a.attributes.contains(&s(ATTR_RAW_TIME, "yesterday")));
    assert!(a.trace_id.is_empty() && a.span_id.len() == 8);
    assert_eq!(b.time_unix_nano, 1_707_821_444_939_000_000);
    assert!(b.trace_id.len() == 16 && b.span_id.is_empty());
}

#[test]
fn every_value_kind_survives_in_order_with_duplicates() {
    let page = parse(
        r#"{"appLogs":[{"body":{"kvlistValue":{"values":[
            {"key":"s","value":{"stringValue":"x"}},
            {"key":"s","value":{"stringValue":"again"}},
            {"key":"b","value":{"boolValue":true}},
            {"key":"i","value":{"intValue":"-12"}},
            {"key":"n","value":{"intValue":7}},
            {"key":"d","value":{"doubleValue":1.5}},
            {"key":"y","value":{"bytesValue":"AAEC"}},
            {"key":"a","value":{"arrayValue":{"values":[{"stringValue":"p"},{"intValue":"1"}]}}},
            {"key":"e"}
        ]}}}]}"#,
    );
    let r = record(&page.app_logs[0], 0, &mut ConvertStats::default());
    let Some(Value::KvlistValue(list)) = r.body.and_then(|b| b.value) else { panic!("not a kvlist") };
    let keys: Vec<&str> = list.values.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["s", "s", "b", "i", "n", "d", "y", "a", "e"]);
    let v = |n: usize| list.values[n].value.clone().and_then(|v| v.value);
    assert_eq!(v(1), Some(Value::StringValue("again".into())));
    assert_eq!(v(2), Some(Value::BoolValue(true)));
    assert_eq!(v(3), Some(Value::IntValue(-12)));
    assert_eq!(v(4), Some(Value::IntValue(7)));
    assert_eq!(v(5), Some(Value::DoubleValue(1.5)));
    assert_eq!(v(6), Some(Value::BytesValue(vec![0, 1, 2])));
    let Some(Value::ArrayValue(arr)) = v(7) else { panic!("not an array") };
    assert_eq!(arr.values.len(), 2);
    assert_eq!(list.values[8].value, None);
}

#[test]
fn fingerprint_ignores_observed_time_only() {
    let page = parse(SAMPLE);
    let mut buf = Vec::new();
    let mut a = record(&page.app_logs[0], 1, &mut ConvertStats::default());
    let mut b = record(&page.app_logs[0], 2, &mut ConvertStats::default());
    assert_eq!(fingerprint(&mut a, &mut buf), fingerprint(&mut b, &mut buf));
    assert_eq!(a.observed_time_unix_nano, 1, "observed time restored");
    b.body = Some(AnyValue { value: Some(Value::StringValue("other".into())) });
    assert_ne!(fingerprint(&mut a, &mut buf), fingerprint(&mut b, &mut buf));
}

#[test]
fn requests_split_by_encoded_size() {
    let page = parse(SAMPLE);
    let one = record(&page.app_logs[0], 0, &mut ConvertStats::default());
    let records: Vec<LogRecord> = (0..1000).map(|_| one.clone()).collect();
    let resource = Resource::default();
    let max = 64 * 1024;
    let reqs = requests(&resource, records, max);
    assert!(reqs.len() > 1);
    assert_eq!(reqs.iter().map(record_count).sum::<usize>(), 1000);
    for r in &reqs {
        assert!(r.encoded_len() <= max, "{} > {max}", r.encoded_len());
    }
    assert_eq!(requests(&resource, vec![one.clone()], 1024).len(), 1, "an oversized record travels alone");
}

/// The poller's requests, assembled from encoded records, are the bytes
/// prost writes for the same requests, split at the same places.
#[test]
fn batches_are_the_encoded_requests() {
    let page = parse(SAMPLE);
    let mut records: Vec<LogRecord> = Vec::new();
    for i in 0..300u64 {
        let mut r = record(&page.app_logs[0], i, &mut ConvertStats::default());
        r.body = Some(AnyValue { value: Some(Value::StringValue("b".repeat(i as usize))) });
        records.push(r);
    }
    let mut resource = Resource::default();
    resource.attributes.push(kv("service.name", Value::StringValue("checkout".into())));
    let head = RequestHead::new(&resource);
    let encoded: Vec<Vec<u8>> = records.iter().map(Message::encode_to_vec).collect();
    for max in [1, 512, 20_000, 64 << 20] {
        let want: Vec<Vec<u8>> = requests(&resource, records.clone(), max).iter().map(Message::encode_to_vec).collect();
        let got: Vec<Batch> = batches(&head, encoded.iter().map(Vec::as_slice), max).collect();
        assert_eq!(got.iter().map(|b| b.bytes().to_vec()).collect::<Vec<_>>(), want, "max {max}");
        assert_eq!(got.iter().map(Batch::records).sum::<u64>(), 300);
        let back = got.first().map(Batch::request);
        assert!(matches!(back, Some(Ok(ref req)) if record_count(req) == got[0].records() as usize));
    }
    assert_eq!(batches(&head, std::iter::empty(), 1024).count(), 0);
}

#[test]
fn resource_carries_source_identity_and_config() {
    let src = SourceConfig {
        app_id: "app".into(),
        environment_id: "env".into(),
        name: "prod".into(),
        service_name: "svc".into(),
        levels: vec![],
        message: None,
        installation_contexts: vec![],
        resource_attributes: vec![
            ("deployment.environment.name".into(), AttrValue::Str("production".into())),
            ("service.name".into(), AttrValue::Str("override".into())),
        ],
        privacy: Default::default(),
    };
    let r = source_resource(&src);
    let keys: Vec<&str> = r.attributes.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(
        keys,
        ["forge.app.id", "forge.environment.id", "forge.source.name", "deployment.environment.name", "service.name"]
    );
    assert_eq!(r.attributes[4], s("service.name", "override"));
}

#[test]
fn a_redacted_record_keeps_only_its_redacted_bytes_and_its_fingerprint_as_sent() {
    use crate::privacy::{Action, AttrRule, PrivacySpec};
    let spec = PrivacySpec {
        attributes: vec![AttrRule { key: "arguments".into(), action: Action::Drop }],
        ..PrivacySpec::default()
    };
    let Ok(Some(rules)) = spec.compile() else { panic!("compiles") };
    let plain = decode_page(SAMPLE.as_bytes(), 7).unwrap_or_else(|e| panic!("{e}"));
    let red = decode_page_with(SAMPLE.as_bytes(), 7, Some(&rules)).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (plain.records.iter().next(), red.records.iter().next());
    let (Some(a), Some(b)) = (a, b) else { panic!("one record each") };
    assert_eq!(a.fingerprint(), b.fingerprint(), "fingerprinted as the API sent it");
    assert_eq!(a.site(), b.site());
    assert!(b.site().is_some());
    assert!(b.encoded().len() < a.encoded().len());
    // The dropped value is nowhere in the page's buffer, not only not sent.
    let needle = b"randomData";
    assert!(plain.records.buf.windows(needle.len()).any(|w| w == needle));
    assert!(!red.records.buf.windows(needle.len()).any(|w| w == needle));
    assert_eq!(red.privacy_changed, [1]);
}
