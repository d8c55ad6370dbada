//! The reference conversion: Forge records decoded by serde into
//! [`crate::forge::model`] types, then built as `opentelemetry-proto`
//! messages. Slower than the page walk and not on the data path; the
//! tests hold the walk's bytes equal to prost's encoding of these
//! messages, and the benchmarks compare the two. Compiled for tests and
//! the `testkit` feature only.

use base64::Engine;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::batch::{kv, scope};
use super::{ATTR_RAW_TIME, ATTR_SEVERITY_NUMBER, ConvertStats, hex_into, severity, trace_id_into};
use crate::forge::model;

/// Hex → bytes of the expected length; `None` when malformed.
fn hex_id(s: &str, len: usize) -> Option<Vec<u8>> {
    if len == 16 {
        let mut out = [0u8; 16];
        return trace_id_into(s, &mut out).then(|| out.to_vec());
    }
    let mut out = vec![0; len];
    hex_into(s, &mut out).then_some(out)
}

/// A Forge AnyValue as an OTLP AnyValue, keeping every kind.
pub fn any_value(v: &model::AnyValue) -> AnyValue {
    let value = if let Some(s) = &v.string_value {
        Some(Value::StringValue(s.clone()))
    } else if let Some(b) = v.bool_value {
        Some(Value::BoolValue(b))
    } else if let Some(i) = &v.int_value {
        Some(i.as_i64().map_or_else(|| Value::StringValue(i.raw()), Value::IntValue))
    } else if let Some(d) = &v.double_value {
        Some(d.as_f64().map_or_else(|| Value::StringValue(d.raw()), Value::DoubleValue))
    } else if let Some(b) = &v.bytes_value {
        Some(bytes_value(b.clone()))
    } else if let Some(a) = &v.array_value {
        Some(Value::ArrayValue(ArrayValue { values: a.values.iter().map(any_value).collect() }))
    } else {
        v.kvlist_value.as_ref().map(|l| Value::KvlistValue(KeyValueList { values: key_values(&l.values) }))
    };
    AnyValue { value }
}

fn key_values(list: &[model::KeyValue]) -> Vec<KeyValue> {
    list.iter()
        .map(|kv| KeyValue { key: kv.key.clone(), value: kv.value.as_ref().map(any_value), ..KeyValue::default() })
        .collect()
}

/// A `bytesValue`: base64 decoded, or kept as a string when it is not base64.
fn bytes_value(b: String) -> Value {
    match base64::engine::general_purpose::STANDARD.decode(&b) {
        Ok(bytes) => Value::BytesValue(bytes),
        Err(_) => Value::StringValue(b),
    }
}

/// One Forge record as an OTLP record. `observed_ns`: when the page was
/// fetched. The reference for [`crate::forge::wire`], which writes the same
/// record's protobuf bytes without building it: timestamp, severity
/// and ids follow the same rules there.
pub fn record(rec: &model::LogRecord, observed_ns: u64, stats: &mut ConvertStats) -> LogRecord {
    let mut attributes = key_values(&rec.attributes);
    let time_unix_nano = match &rec.time_unix_nano {
        None => 0,
        Some(t) => t.as_u64().filter(|n| i64::try_from(*n).is_ok()).unwrap_or_else(|| {
            stats.bad_time += 1;
            attributes.push(kv(ATTR_RAW_TIME, Value::StringValue(t.raw())));
            0
        }),
    };
    let severity_number = rec.severity_number.as_ref().and_then(model::NumOrStr::as_i64);
    if let Some(n) = severity_number {
        attributes.push(kv(ATTR_SEVERITY_NUMBER, Value::IntValue(n)));
    }
    let mut id = |s: &Option<String>, len: usize| match s.as_deref() {
        None | Some("") => Vec::new(),
        Some(text) => hex_id(text, len).unwrap_or_else(|| {
            stats.bad_ids += 1;
            Vec::new()
        }),
    };
    let trace_id = id(&rec.trace_id, 16);
    let span_id = id(&rec.span_id, 8);
    LogRecord {
        time_unix_nano,
        observed_time_unix_nano: observed_ns,
        severity_number: severity(rec.severity_text.as_deref(), severity_number),
        severity_text: rec.severity_text.clone().unwrap_or_default(),
        body: rec.body.as_ref().map(any_value),
        attributes,
        trace_id,
        span_id,
        ..LogRecord::default()
    }
}

/// The fingerprint of a record's content, its observed time left out (the
/// same record fetched twice must match), used to drop records already
/// delivered. `buf` is scratch space reused across calls.
pub fn fingerprint(rec: &mut LogRecord, buf: &mut Vec<u8>) -> u64 {
    use prost::Message;
    buf.clear();
    let observed = std::mem::take(&mut rec.observed_time_unix_nano);
    // Encoding into a Vec only fails when it lacks capacity, and a Vec grows.
    let _ = rec.encode(buf);
    rec.observed_time_unix_nano = observed;
    crate::fingerprint::hash_bytes(buf)
}

/// Wraps records into export requests of at most `max_bytes` each (encoded).
/// A single record larger than the limit travels alone.
pub fn requests(resource: &Resource, records: Vec<LogRecord>, max_bytes: usize) -> Vec<ExportLogsServiceRequest> {
    use prost::Message;
    let wrap = |records: Vec<LogRecord>| ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs { scope: Some(scope()), log_records: records, ..ScopeLogs::default() }],
            ..ResourceLogs::default()
        }],
    };
    let overhead = wrap(Vec::new()).encoded_len() + 16;
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut size = overhead;
    for r in records {
        let len = r.encoded_len();
        let framed = len + prost::length_delimiter_len(len) + 1;
        if !batch.is_empty() && size + framed > max_bytes {
            out.push(wrap(std::mem::take(&mut batch)));
            size = overhead;
        }
        size += framed;
        batch.push(r);
    }
    if !batch.is_empty() {
        out.push(wrap(batch));
    }
    out
}
