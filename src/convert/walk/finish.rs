//! A record's fields after the finishing rules (time, severity, ids),
//! written as `LogRecord` protobuf bytes, in two parts around the
//! attributes: when privacy rules changed the record, it is written
//! redacted, and the fingerprint hashes the content as the API sent it
//! from the parts (only the part before the attributes is written a
//! second time, and only when the body changed).

use prost::encoding::encode_varint;

use super::super::proto::*;
use super::super::{ATTR_RAW_TIME, ATTR_SEVERITY_NUMBER};

/// A record's fields after the finishing rules.
pub(super) struct Finish<'t> {
    pub(super) time_unix_nano: u64,
    pub(super) level: i32,
    pub(super) sev_text: Option<&'t str>,
    pub(super) raw_time: Option<String>,
    pub(super) sev_number: Option<i64>,
    pub(super) trace: Option<[u8; 16]>,
    pub(super) span: Option<[u8; 8]>,
}

impl Finish<'_> {
    /// Writes the record's content (all but the observed time) in prost's
    /// field order; where its attributes start.
    pub(super) fn write(&self, buf: &mut Vec<u8>, body: Option<&[u8]>, attrs: Option<&[u8]>) -> usize {
        self.write_head(buf, body);
        let attrs_at = buf.len();
        if let Some(attrs) = attrs {
            buf.extend_from_slice(attrs);
        }
        self.write_tail(buf);
        attrs_at
    }

    /// The fields before the attributes: time, severity, body; where the
    /// body's field starts (the end when there is none).
    pub(super) fn write_head(&self, buf: &mut Vec<u8>, body: Option<&[u8]>) -> usize {
        if self.time_unix_nano != 0 {
            buf.push(LOG_TIME);
            buf.extend_from_slice(&self.time_unix_nano.to_le_bytes());
        }
        if self.level != 0 {
            buf.push(LOG_SEVERITY_NUMBER);
            encode_varint(i64::from(self.level) as u64, buf);
        }
        if let Some(text) = self.sev_text {
            put_field(buf, LOG_SEVERITY_TEXT, text.as_bytes());
        }
        let body_at = buf.len();
        if let Some(body) = body {
            put_field(buf, LOG_BODY, body);
        }
        body_at
    }

    /// The fields after the record's own attributes: the ones the
    /// finishing rules add, the trace and span ids.
    pub(super) fn write_tail(&self, buf: &mut Vec<u8>) {
        if let Some(raw) = &self.raw_time {
            extra_attribute(buf, ATTR_RAW_TIME, |b| put_field(b, ANY_STRING, raw.as_bytes()));
        }
        if let Some(n) = self.sev_number {
            extra_attribute(buf, ATTR_SEVERITY_NUMBER, |b| {
                b.push(ANY_INT);
                encode_varint(n as u64, b);
            });
        }
        if let Some(id) = &self.trace {
            put_field(buf, LOG_TRACE_ID, id);
        }
        if let Some(id) = &self.span {
            put_field(buf, LOG_SPAN_ID, id);
        }
    }
}

/// An attribute the finishing rules add: a `LogRecord.attributes` field.
pub(super) fn extra_attribute(out: &mut Vec<u8>, key: &str, value: impl FnOnce(&mut Vec<u8>)) {
    let at = open_field(out, LOG_ATTRIBUTE);
    put_field(out, KV_KEY, key.as_bytes());
    let v = open_field(out, KV_VALUE);
    value(out);
    close_field(out, v);
    close_field(out, at);
}
