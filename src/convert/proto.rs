//! Protobuf writing: every tag this crate writes and the length-delimited
//! field helpers. The page walk ([`super::walk`]) and the request builder
//! ([`super::batch`]) write OTLP bytes through these, so the tags of the
//! messages live in one place, checked against prost by the tests.

use prost::encoding::encode_varint;

// Protobuf tags (field number << 3 | wire type) of the messages written here.
pub(super) const LOG_TIME: u8 = 0x09;
pub(super) const LOG_SEVERITY_NUMBER: u8 = 0x10;
pub(super) const LOG_SEVERITY_TEXT: u8 = 0x1a;
pub(super) const LOG_BODY: u8 = 0x2a;
pub(super) const LOG_ATTRIBUTE: u8 = 0x32;
pub(super) const LOG_TRACE_ID: u8 = 0x4a;
pub(super) const LOG_SPAN_ID: u8 = 0x52;
pub(super) const LOG_OBSERVED_TIME: u8 = 0x59;
pub(super) const KV_KEY: u8 = 0x0a;
pub(super) const KV_VALUE: u8 = 0x12;
pub(super) const ANY_STRING: u8 = 0x0a;
pub(super) const ANY_BOOL: u8 = 0x10;
pub(super) const ANY_INT: u8 = 0x18;
pub(super) const ANY_DOUBLE: u8 = 0x21;
pub(super) const ANY_ARRAY: u8 = 0x2a;
pub(super) const ANY_KVLIST: u8 = 0x32;
pub(super) const ANY_BYTES: u8 = 0x3a;
pub(super) const LIST_VALUE: u8 = 0x0a;

// `ExportLogsServiceRequest`, `ResourceLogs` and `ScopeLogs`.
pub(super) const REQUEST_RESOURCE_LOGS: u8 = 0x0a;
pub(super) const RESOURCE_LOGS_RESOURCE: u8 = 0x0a;
pub(super) const RESOURCE_LOGS_SCOPE_LOGS: u8 = 0x12;
pub(super) const SCOPE_LOGS_SCOPE: u8 = 0x0a;
pub(super) const SCOPE_LOGS_LOG_RECORD: u8 = 0x12;

/// Bytes of a length-delimited field holding `len` bytes.
pub(super) fn field_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

/// The tag and length of a length-delimited field holding `len` bytes
/// (its content follows).
pub(super) fn put_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    encode_varint(len as u64, out);
}

/// [`put_header`] into an array: the bytes and how many are used.
pub(super) fn header(tag: u8, len: usize) -> ([u8; 11], usize) {
    let mut out = [0u8; 11];
    out[0] = tag;
    let width = prost::length_delimiter_len(len).min(10);
    let mut slot = &mut out[1..1 + width];
    encode_varint(len as u64, &mut slot);
    (out, 1 + width)
}

/// A length-delimited field.
pub(super) fn put_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Starts a length-delimited field of unknown length (one byte reserved
/// for it); the content starts at the returned offset.
pub(super) fn open_field(out: &mut Vec<u8>, tag: u8) -> usize {
    out.extend_from_slice(&[tag, 0]);
    out.len()
}

/// Writes the length of the field opened at `at`, moving the content when
/// the length takes more than one byte; the content's range.
pub(super) fn close_field(out: &mut Vec<u8>, at: usize) -> (usize, usize) {
    let len = out.len() - at;
    if len < 0x80 {
        out[at - 1] = len as u8;
        return (at, out.len());
    }
    let width = prost::length_delimiter_len(len);
    let extra = width - 1;
    out.resize(out.len() + extra, 0);
    out.copy_within(at..at + len, at + extra);
    let mut slot = &mut out[at - 1..at - 1 + width];
    encode_varint(len as u64, &mut slot);
    (at + extra, out.len())
}
