//! Forge page → OTLP. Pure functions; no I/O.
//!
//! Reads the API's records ([`crate::forge::model`]) and emits
//! `opentelemetry-proto` messages: one resource per source, the crate as
//! the instrumentation scope, record attributes under Forge's own keys.
//! Severity becomes a valid OpenTelemetry number (DESIGN.md 8); the API's
//! original number is kept as `forge.severity_number`.

use base64::Engine;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::config::{AttrValue, SourceConfig};
use crate::forge::model;

/// Attribute holding the API's own severity number.
pub const ATTR_SEVERITY_NUMBER: &str = "forge.severity_number";
/// Attribute holding a `timeUnixNano` that could not be parsed.
pub const ATTR_RAW_TIME: &str = "forge.time_unix_nano.raw";

/// Problems found in records that were delivered anyway.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConvertStats {
    pub bad_time: u64,
    pub bad_ids: u64,
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
}

/// The resource of every record of a source.
pub fn source_resource(source: &SourceConfig) -> Resource {
    let mut attributes = vec![
        kv("service.name", Value::StringValue(source.service_name.clone())),
        kv("forge.app.id", Value::StringValue(source.app_id.clone())),
        kv("forge.environment.id", Value::StringValue(source.environment_id.clone())),
        kv("forge.source.name", Value::StringValue(source.name.clone())),
    ];
    for (k, v) in &source.resource_attributes {
        let value = match v {
            AttrValue::Str(s) => Value::StringValue(s.clone()),
            AttrValue::Bool(b) => Value::BoolValue(*b),
            AttrValue::Int(i) => Value::IntValue(*i),
            AttrValue::Double(d) => Value::DoubleValue(*d),
        };
        // A configured key replaces a built-in one rather than duplicating it.
        attributes.retain(|a| &a.key != k);
        attributes.push(kv(k, value));
    }
    Resource { attributes, ..Resource::default() }
}

/// The instrumentation scope: this crate.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: env!("CARGO_PKG_NAME").to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..InstrumentationScope::default()
    }
}

/// OpenTelemetry severity from the record's text, else its number.
pub fn severity(text: Option<&str>, number: Option<i64>) -> i32 {
    const NAMES: [(&str, i32); 7] =
        [("TRACE", 1), ("DEBUG", 5), ("INFO", 9), ("WARN", 13), ("WARNING", 13), ("ERROR", 17), ("FATAL", 21)];
    if let Some(t) = text.map(str::trim) {
        let (name, step) = match t.as_bytes().last() {
            Some(d @ b'2'..=b'4') => (t.get(..t.len() - 1).unwrap_or(t), i32::from(d - b'1')),
            _ => (t, 0),
        };
        if let Some((_, base)) = NAMES.iter().find(|(n, _)| name.eq_ignore_ascii_case(n)) {
            return base + step;
        }
    }
    match number {
        Some(10) => 1,
        Some(20) => 5,
        Some(30) => 9,
        Some(40) => 13,
        Some(50) => 17,
        Some(60) => 21,
        Some(n @ 1..=24) => n as i32,
        _ => 0,
    }
}

/// Hex → exactly `out.len()` bytes; `false` when malformed.
pub fn hex_into(s: &str, out: &mut [u8]) -> bool {
    let b = s.trim().as_bytes();
    if b.len() != out.len() * 2 {
        return false;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (digit(pair[0]), digit(pair[1])) else { return false };
        *o = hi << 4 | lo;
    }
    true
}

/// Hex → bytes of the expected length; `None` when malformed.
fn hex_id(s: &str, len: usize) -> Option<Vec<u8>> {
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
        Some(t) => t.as_u64().unwrap_or_else(|| {
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

/// One export request, encoded: what the exporters send and retry.
#[derive(Debug, Clone)]
pub struct Batch {
    bytes: Bytes,
    records: u64,
}

impl Batch {
    /// The `ExportLogsServiceRequest` as protobuf bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Number of log records in the request.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The request as a message, for the exporters that write something
    /// other than protobuf (OTLP/JSON, stdout, the dead-letter file).
    pub fn request(&self) -> Result<ExportLogsServiceRequest, prost::DecodeError> {
        use prost::Message;
        ExportLogsServiceRequest::decode(self.bytes.as_ref())
    }
}

impl From<&ExportLogsServiceRequest> for Batch {
    fn from(req: &ExportLogsServiceRequest) -> Self {
        use prost::Message;
        Batch { bytes: Bytes::from(req.encode_to_vec()), records: record_count(req) as u64 }
    }
}

/// What every request of a source starts with: its resource and the
/// scope, encoded once.
#[derive(Debug, Clone)]
pub struct RequestHead {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl RequestHead {
    pub fn new(resource: &Resource) -> Self {
        use prost::Message;
        RequestHead { resource: resource.encode_to_vec(), scope: scope().encode_to_vec() }
    }

    /// One request holding `records`.
    fn wrap(&self, records: &[&[u8]]) -> Batch {
        let scope_logs = field_len(self.scope.len()) + records.iter().map(|r| field_len(r.len())).sum::<usize>();
        let resource_logs = field_len(self.resource.len()) + field_len(scope_logs);
        let mut buf = Vec::with_capacity(field_len(resource_logs));
        put_field(&mut buf, 0x0a, resource_logs);
        put_field(&mut buf, 0x0a, self.resource.len());
        buf.extend_from_slice(&self.resource);
        put_field(&mut buf, 0x12, scope_logs);
        put_field(&mut buf, 0x0a, self.scope.len());
        buf.extend_from_slice(&self.scope);
        for r in records {
            put_field(&mut buf, 0x12, r.len());
            buf.extend_from_slice(r);
        }
        Batch { bytes: Bytes::from(buf), records: records.len() as u64 }
    }
}

/// Bytes of a length-delimited field holding `len` bytes.
fn field_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

/// The tag and length of a length-delimited field holding `len` bytes.
fn put_field(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    prost::encoding::encode_varint(len as u64, out);
}

/// Wraps encoded records (each a `LogRecord` message) into export requests
/// of at most `max_bytes` each: the bytes prost would write for
/// [`requests`], without building the messages. A single record larger
/// than the limit travels alone. Requests are built one at a time, as the
/// iterator is advanced, so a page is never copied whole.
pub fn batches<'a>(
    head: &'a RequestHead,
    records: impl IntoIterator<Item = &'a [u8]> + 'a,
    max_bytes: usize,
) -> impl Iterator<Item = Batch> + 'a {
    // The same accounting as `requests`: an empty request plus slack.
    let overhead = field_len(field_len(head.resource.len()) + field_len(field_len(head.scope.len()))) + 16;
    let mut records = records.into_iter().peekable();
    let mut group: Vec<&[u8]> = Vec::new();
    std::iter::from_fn(move || {
        group.clear();
        let mut size = overhead;
        while let Some(r) = records.peek() {
            let framed = field_len(r.len());
            if !group.is_empty() && size + framed > max_bytes {
                break;
            }
            size += framed;
            group.push(r);
            records.next();
        }
        (!group.is_empty()).then(|| head.wrap(&group))
    })
}

/// Number of log records in a request.
pub fn record_count(req: &ExportLogsServiceRequest) -> usize {
    req.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum()
}

#[cfg(test)]
mod tests;
