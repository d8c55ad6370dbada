//! Convert: a Forge page's bytes → OTLP protobuf. Pure; no I/O.
//!
//! Reads the body the Forge client fetched ([`crate::forge::client`]) and
//! emits what the exporters send: each record as the bytes of an OTLP
//! `LogRecord`, wrapped into `ExportLogsServiceRequest`s by concatenation.
//! One resource per source, the crate as the instrumentation scope,
//! record attributes under Forge's own keys. Severity becomes a valid
//! OpenTelemetry number (DESIGN.md 8); the API's original number is kept
//! as `forge.severity_number`.
//!
//! - [`json`]: the JSON lexer;
//! - [`walk`]: the Forge schema walk that writes `LogRecord` bytes;
//! - [`proto`]: every protobuf tag and the field writers;
//! - [`page`]: a decoded page and the buffers reused from page to page;
//! - [`redact`]: the privacy rules applied to a record as the walk wrote it;
//! - [`batch`]: the resource, the scope and export requests;
//! - [`severity`]: severity and id rules shared with the reference path;
//! - [`metrics`]: the App metrics API's OTLP/JSON → OTLP protobuf metrics;
//! - `reference` (tests and the `testkit` feature): the serde path the
//!   walk is tested against.

mod batch;
mod json;
pub mod metrics;
mod page;
mod proto;
mod redact;
#[cfg(any(test, feature = "testkit"))]
mod reference;
mod severity;
mod walk;

pub use batch::{Batch, RequestHead, batches, record_count, scope, source_resource};
pub use json::WireError;
pub use page::{
    Decoded, Known, PageBuffers, RAW_PREFIX, Raw, RawKey, Record, Records, decode_page, decode_page_raw,
    decode_page_with, decode_record, raw_key, raw_matches, raw_prefix, scan_page,
};
#[cfg(any(test, feature = "testkit"))]
pub use reference::{any_value, fingerprint, record, requests};
pub use severity::{hex_into, severity, trace_id_into};

/// Attribute holding the API's own severity number.
pub(crate) const ATTR_SEVERITY_NUMBER: &str = "forge.severity_number";
/// Attribute holding a `timeUnixNano` that could not be parsed.
pub(crate) const ATTR_RAW_TIME: &str = "forge.time_unix_nano.raw";

/// Problems found in records that were delivered anyway.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConvertStats {
    pub bad_time: u64,
    pub bad_ids: u64,
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;
