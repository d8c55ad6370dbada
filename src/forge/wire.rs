//! Pages decoded straight into OTLP records.
//!
//! The poller's hot path: the JSON of a page becomes `opentelemetry-proto`
//! records in one pass, each string allocated once, with no intermediate
//! tree. Decoding stays tolerant (unknown fields are skipped) and safe on
//! hostile input (serde_json's recursion limit bounds nesting). The
//! finishing rules (severity, ids, timestamps) are [`crate::convert`]'s.

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde::Deserialize;

use super::model::NumOrStr;
use crate::convert::{ConvertStats, Parts, finish};

/// A decoded page.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<LogRecord>,
    /// More pages follow when this is `Some`.
    pub cursor: Option<String>,
    pub stats: ConvertStats,
}

#[derive(Deserialize)]
struct WirePage {
    #[serde(rename = "appLogs")]
    app_logs: Vec<WireRecord>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord {
    #[serde(default)]
    time_unix_nano: Option<NumOrStr>,
    #[serde(default)]
    severity_number: Option<NumOrStr>,
    #[serde(default)]
    severity_text: Option<String>,
    #[serde(default)]
    body: Option<WireAny>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    span_id: Option<String>,
    #[serde(default)]
    attributes: Vec<WireKv>,
}

#[derive(Deserialize)]
struct WireKv {
    key: String,
    #[serde(default)]
    value: Option<WireAny>,
}

impl From<WireKv> for KeyValue {
    fn from(kv: WireKv) -> Self {
        KeyValue { key: kv.key, value: kv.value.map(|v| v.0), ..KeyValue::default() }
    }
}

#[derive(Deserialize, Default)]
struct WireList<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
}

/// An OTLP/JSON AnyValue decoded into the proto type.
struct WireAny(AnyValue);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum AnyKey {
    StringValue,
    BoolValue,
    IntValue,
    DoubleValue,
    BytesValue,
    ArrayValue,
    KvlistValue,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for WireAny {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = WireAny;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an AnyValue object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<WireAny, A::Error> {
                // Several fields set: the same precedence as `convert::any_value`.
                let mut slots: [Option<Value>; 7] = Default::default();
                while let Some(key) = map.next_key::<AnyKey>()? {
                    match key {
                        AnyKey::StringValue => slots[0] = Some(Value::StringValue(map.next_value()?)),
                        AnyKey::BoolValue => slots[1] = Some(Value::BoolValue(map.next_value()?)),
                        AnyKey::IntValue => {
                            let n: NumOrStr = map.next_value()?;
                            slots[2] = Some(n.as_i64().map_or_else(|| Value::StringValue(n.raw()), Value::IntValue));
                        }
                        AnyKey::DoubleValue => {
                            let n: NumOrStr = map.next_value()?;
                            slots[3] = Some(n.as_f64().map_or_else(|| Value::StringValue(n.raw()), Value::DoubleValue));
                        }
                        AnyKey::BytesValue => {
                            let s: String = map.next_value()?;
                            slots[4] = Some(crate::convert::bytes_value(s));
                        }
                        AnyKey::ArrayValue => {
                            let l: WireList<WireAny> = map.next_value()?;
                            slots[5] = Some(Value::ArrayValue(ArrayValue {
                                values: l.values.into_iter().map(|v| v.0).collect(),
                            }));
                        }
                        AnyKey::KvlistValue => {
                            let l: WireList<WireKv> = map.next_value()?;
                            slots[6] = Some(Value::KvlistValue(KeyValueList {
                                values: l.values.into_iter().map(KeyValue::from).collect(),
                            }));
                        }
                        AnyKey::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(WireAny(AnyValue { value: slots.into_iter().flatten().next() }))
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes a page's JSON into OTLP records observed at `observed_ns`.
pub fn decode_page(bytes: &[u8], observed_ns: u64) -> Result<Decoded, serde_json::Error> {
    let page: WirePage = serde_json::from_slice(bytes)?;
    let mut stats = ConvertStats::default();
    let records = page
        .app_logs
        .into_iter()
        .map(|r| {
            let parts = Parts {
                time: r.time_unix_nano,
                severity_number: r.severity_number.as_ref().and_then(NumOrStr::as_i64),
                severity_text: r.severity_text,
                body: r.body.map(|b| b.0),
                attributes: r.attributes.into_iter().map(KeyValue::from).collect(),
                trace_id: r.trace_id,
                span_id: r.span_id,
            };
            finish(parts, observed_ns, &mut stats)
        })
        .collect();
    Ok(Decoded { records, cursor: page.cursor.filter(|c| !c.is_empty()), stats })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::model::Page;

    /// The direct decoder and the model-based conversion agree on every input shape.
    #[test]
    fn agrees_with_the_model_path() {
        let pages = [
            include_str!("../../tests/data/sample-page.json").to_string(),
            r#"{"appLogs":[{"timeUnixNano":"yesterday","traceId":"xyz","spanId":"6c7f6ad7436700c1","severityText":"WARNING","body":{"kvlistValue":{"values":[{"key":"s","value":{"stringValue":"x","intValue":"3"}},{"key":"s"},{"key":"i","value":{"intValue":"-12"}},{"key":"n","value":{"intValue":7}},{"key":"big","value":{"intValue":"99999999999999999999"}},{"key":"d","value":{"doubleValue":"Infinity"}},{"key":"y","value":{"bytesValue":"AAEC"}},{"key":"bad","value":{"bytesValue":"%%%"}},{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true},{}]}}},{"key":"u","value":{"futureKind":1}}]}}},
                {"timeUnixNano":1707821444939000000,"severityNumber":"50","extra":[1,2]}],"cursor":""}"#.to_string(),
        ];
        for text in pages {
            let direct = decode_page(text.as_bytes(), 5).map_err(|e| e.to_string());
            let Ok(direct) = direct else { panic!("{direct:?}") };
            let page: Page = serde_json::from_str(&text).unwrap_or_default();
            let mut stats = ConvertStats::default();
            let via_model: Vec<LogRecord> =
                page.app_logs.iter().map(|r| crate::convert::record(r, 5, &mut stats)).collect();
            assert_eq!(direct.records, via_model);
            assert_eq!(direct.stats, stats);
            assert_eq!(direct.cursor.as_deref(), page.next_cursor());
        }
    }

    #[test]
    fn hostile_input_is_an_error_not_a_crash() {
        let deep = format!(
            "{{\"appLogs\":[{{\"body\":{}\"stringValue\":\"x\"{}}}]}}",
            "{\"arrayValue\":{\"values\":[".repeat(500),
            "]}}".repeat(500)
        );
        for bad in
            ["", "null", "[]", "{\"appLogs\":{}}", "{\"appLogs\":[{\"body\":[]}]}", "<html>", "{\"appLogs\":[", &deep]
        {
            assert!(decode_page(bad.as_bytes(), 0).is_err(), "{bad:.60}");
        }
    }
}
