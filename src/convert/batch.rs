//! Export requests: the resource of a source, the scope, and encoded
//! records wrapped into `ExportLogsServiceRequest` bytes by concatenation,
//! split by encoded size.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::proto::{
    REQUEST_RESOURCE_LOGS, RESOURCE_LOGS_RESOURCE, RESOURCE_LOGS_SCOPE_LOGS, SCOPE_LOGS_LOG_RECORD, SCOPE_LOGS_SCOPE,
    field_len, put_header,
};
use crate::config::{AttrValue, SourceConfig};

pub(super) fn kv(key: &str, value: Value) -> KeyValue {
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
        put_header(&mut buf, REQUEST_RESOURCE_LOGS, resource_logs);
        put_header(&mut buf, RESOURCE_LOGS_RESOURCE, self.resource.len());
        buf.extend_from_slice(&self.resource);
        put_header(&mut buf, RESOURCE_LOGS_SCOPE_LOGS, scope_logs);
        put_header(&mut buf, SCOPE_LOGS_SCOPE, self.scope.len());
        buf.extend_from_slice(&self.scope);
        for r in records {
            put_header(&mut buf, SCOPE_LOGS_LOG_RECORD, r.len());
            buf.extend_from_slice(r);
        }
        Batch { bytes: Bytes::from(buf), records: records.len() as u64 }
    }
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
