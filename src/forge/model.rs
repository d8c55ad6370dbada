//! Wire types of the App logs API, tolerant of fields added later.
//!
//! Records follow the OTLP/JSON log data model: `timeUnixNano` as a
//! decimal string (a number is accepted too), hex `traceId`/`spanId`,
//! AnyValue objects for the body and attribute values.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One page of `GET /v1/app/logs/{appId}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Page {
    #[serde(rename = "appLogs")]
    pub app_logs: Vec<LogRecord>,
    /// More pages follow when this is a non-empty string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl Page {
    /// The cursor for the next page; `None` when absent, null or empty.
    pub fn next_cursor(&self) -> Option<&str> {
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_unix_nano: Option<NumOrStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_number: Option<NumOrStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<AnyValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
}

/// A number written as a JSON number or as a decimal string.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum NumOrStr {
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
}

// A visitor instead of `#[serde(untagged)]`: untagged enums buffer every
// value and try each variant in turn, which dominated page parsing.
impl<'de> Deserialize<'de> for NumOrStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NumOrStr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NumOrStr, E> {
                Ok(i64::try_from(v).map_or(NumOrStr::Uint(v), NumOrStr::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Str(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl NumOrStr {
    /// The same value, borrowed.
    pub(crate) fn as_num(&self) -> Num<'_> {
        match self {
            NumOrStr::Int(i) => Num::Int(*i),
            NumOrStr::Uint(u) => Num::Uint(*u),
            NumOrStr::Float(f) => Num::Float(*f),
            NumOrStr::Str(s) => Num::Str(Cow::Borrowed(s)),
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_num().as_i64()
    }

    pub fn as_u64(&self) -> Option<u64> {
        self.as_num().as_u64()
    }

    #[cfg(any(test, feature = "testkit"))]
    pub(crate) fn as_f64(&self) -> Option<f64> {
        self.as_num().as_f64()
    }

    /// The value as written, for attributes that keep a raw value.
    #[cfg(any(test, feature = "testkit"))]
    pub(crate) fn raw(&self) -> String {
        self.as_num().raw()
    }
}

/// A number as a JSON number or a decimal string, borrowed from the page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Num<'a> {
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(Cow<'a, str>),
}

impl Num<'_> {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(*i),
            Num::Uint(u) => i64::try_from(*u).ok(),
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(*f as i64),
            Num::Float(_) => None,
            Num::Str(s) => s.trim().parse().ok(),
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Num::Uint(u) => Some(*u),
            Num::Str(s) => s.trim().parse().ok(),
            other => other.as_i64().and_then(|i| u64::try_from(i).ok()),
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Num::Int(i) => Some(*i as f64),
            Num::Uint(u) => Some(*u as f64),
            Num::Float(f) => Some(*f),
            Num::Str(s) => match s.trim() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                t => t.parse().ok(),
            },
        }
    }

    /// The value as written, for attributes that keep a raw value.
    pub(crate) fn raw(&self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Uint(u) => u.to_string(),
            Num::Float(f) => f.to_string(),
            Num::Str(s) => s.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<AnyValue>,
}

/// An OTLP/JSON AnyValue: at most one field is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnyValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bool_value: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int_value: Option<NumOrStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double_value: Option<NumOrStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_value: Option<ValueList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvlist_value: Option<KeyValueList>,
}

impl AnyValue {
    pub fn string(s: impl Into<String>) -> Self {
        Self { string_value: Some(s.into()), ..Self::default() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ValueList {
    #[serde(default)]
    pub values: Vec<AnyValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct KeyValueList {
    #[serde(default)]
    pub values: Vec<KeyValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_of_unknown_fields_and_cursor_forms() {
        let text = r#"{"appLogs":[{"timeUnixNano":"1707821444939000000","severityNumber":30,"newField":1,
            "body":{"stringValue":"hi","futureKind":2}}],"cursor":null,"extra":true}"#;
        let page: Page = serde_json::from_str(text).unwrap_or_default();
        assert_eq!(page.app_logs.len(), 1);
        assert_eq!(page.next_cursor(), None);
        let rec = &page.app_logs[0];
        assert_eq!(rec.time_unix_nano.as_ref().and_then(NumOrStr::as_u64), Some(1_707_821_444_939_000_000));
        assert_eq!(rec.severity_number.as_ref().and_then(NumOrStr::as_i64), Some(30));
        for (cursor, want) in [(r#""""#, None), (r#""abc""#, Some("abc"))] {
            let p: Page = serde_json::from_str(&format!(r#"{{"appLogs":[],"cursor":{cursor}}}"#)).unwrap_or_default();
            assert_eq!(p.next_cursor(), want);
        }
        let absent: Page = serde_json::from_str(r#"{"appLogs":[]}"#).unwrap_or_default();
        assert_eq!(absent.next_cursor(), None);
        assert!(serde_json::from_str::<Page>(r#"{"cursor":"x"}"#).is_err(), "appLogs is required");
    }
}
