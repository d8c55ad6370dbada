//! A decoded page: its records as encoded OTLP `LogRecord`s in one buffer,
//! its cursor, and the buffers a poller reuses from page to page.
//!
//! The poller's hot path: one pass over a page's JSON writes every record
//! as the protobuf bytes of an OTLP `LogRecord`, with no intermediate tree
//! and no allocation per string (only strings with escapes are copied).
//! The bytes are the ones prost writes for the record that the reference
//! path builds from the same JSON (a test holds the two together), so a
//! record's fingerprint is the hash of its bytes without the observed
//! time, and requests are assembled by concatenation
//! ([`super::batch::batches`]). Decoding stays tolerant (unknown fields are
//! skipped, `null` counts as absent).

use std::borrow::Cow;

use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::ConvertStats;
use super::json::{Parser, WireError};
use super::redact::Redaction;
use crate::privacy::Rules;

/// A decoded page.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Records,
    /// More pages follow when this is `Some`.
    pub cursor: Option<String>,
    pub stats: ConvertStats,
    /// Values each privacy rule changed on this page, indexed like
    /// [`crate::privacy::Rules::names`]; empty without rules.
    pub privacy_changed: Vec<u64>,
}

/// A page's records, each encoded as an OTLP `LogRecord`, in page order.
#[derive(Debug, Default)]
pub struct Records {
    pub(super) buf: Vec<u8>,
    pub(super) items: Vec<Item>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Item {
    /// The message as sent is `start..end` (privacy rules applied, the
    /// observed time last).
    pub(super) start: usize,
    /// End of the content as the API sent it (what the fingerprint hashes)
    /// when the message holds it; `start` when privacy rules changed the
    /// record (then `fingerprint` is set).
    pub(super) content_end: usize,
    pub(super) end: usize,
    pub(super) time_unix_nano: u64,
    pub(super) site: Option<(usize, usize)>,
    /// The fingerprint of a record the rules changed, taken while it was
    /// decoded from its content as the API sent it (not kept).
    pub(super) fingerprint: Option<u64>,
}

/// One encoded record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// 0 when the record has no usable time.
    pub time_unix_nano: u64,
    /// The `LogRecord` message as sent (privacy rules applied).
    pub encoded: &'a [u8],
    content: &'a [u8],
    fingerprint: Option<u64>,
    site: Option<&'a str>,
}

impl<'a> Record<'a> {
    /// The fingerprint of the record's content, its observed time left out
    /// (the same record fetched twice must match): the hash of the bytes
    /// prost writes for the record with observed time 0, as the API sent
    /// it (before privacy rules, so changing them re-delivers nothing).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint.unwrap_or_else(|| crate::fingerprint::hash_bytes(self.content))
    }

    /// The `LogRecord` message as sent.
    pub fn encoded(&self) -> &'a [u8] {
        self.encoded
    }

    /// The string value of the record's `installationContext` attribute,
    /// as the API sent it.
    pub fn site(&self) -> Option<&'a str> {
        self.site
    }
}

impl Records {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> + '_ {
        self.items.iter().map(|it| Record {
            time_unix_nano: it.time_unix_nano,
            encoded: self.buf.get(it.start..it.end).unwrap_or_default(),
            content: self.buf.get(it.start..it.content_end).unwrap_or_default(),
            fingerprint: it.fingerprint,
            site: it.site.and_then(|(a, b)| std::str::from_utf8(self.buf.get(a..b)?).ok()),
        })
    }

    /// The records as messages (tests, tools; the poller sends the bytes).
    pub fn to_messages(&self) -> Result<Vec<LogRecord>, prost::DecodeError> {
        use prost::Message;
        self.iter().map(|r| LogRecord::decode(r.encoded)).collect()
    }
}

/// Largest buffer kept for the next page: a huge page's body is let go as
/// soon as it is decoded (not held while the page is delivered), and its
/// records once delivered, so the memory of a burst of big pages returns.
const MAX_KEPT: usize = 4 << 20;

/// A poller's buffers, reused from page to page so that a backfill's
/// pages of similar size cost no fresh memory (and no page faults).
#[derive(Debug, Default)]
pub struct PageBuffers {
    /// The body of the last answer.
    pub body: Vec<u8>,
    records: Vec<u8>,
}

impl PageBuffers {
    /// Decodes `body` into records held in the reused buffer.
    pub fn decode(&mut self, observed_ns: u64) -> Result<Decoded, WireError> {
        self.decode_with(observed_ns, None)
    }

    /// [`Self::decode`] applying a source's privacy rules.
    pub fn decode_with(&mut self, observed_ns: u64, rules: Option<&Rules>) -> Result<Decoded, WireError> {
        let out = std::mem::take(&mut self.records);
        let page = decode_page_into(&self.body, observed_ns, out, rules);
        if self.body.capacity() > MAX_KEPT {
            self.body = Vec::new();
        }
        page
    }

    /// Takes back a page's record buffer once the page is delivered.
    pub(crate) fn recycle(&mut self, records: Records) {
        let mut buf = records.buf;
        if buf.capacity() <= MAX_KEPT {
            buf.clear();
            self.records = buf;
        }
    }
}

/// Decodes a page's JSON into OTLP records observed at `observed_ns`.
pub fn decode_page(bytes: &[u8], observed_ns: u64) -> Result<Decoded, WireError> {
    decode_page_into(bytes, observed_ns, Vec::new(), None)
}

/// [`decode_page`] applying privacy rules: records are fingerprinted as
/// the API sent them and encoded redacted.
pub fn decode_page_with(bytes: &[u8], observed_ns: u64, rules: Option<&Rules>) -> Result<Decoded, WireError> {
    decode_page_into(bytes, observed_ns, Vec::new(), rules)
}

/// [`decode_page`] writing into `buf` (cleared first).
fn decode_page_into(
    bytes: &[u8],
    observed_ns: u64,
    mut buf: Vec<u8>,
    rules: Option<&Rules>,
) -> Result<Decoded, WireError> {
    let mut redaction = rules.map(Redaction::new);
    let mut p = Parser::new(bytes)?;
    let mut stats = ConvertStats::default();
    let mut records = None;
    let mut cursor = None;
    let mut first = true;
    p.open(b'{', "expected the page object")?;
    while let Some(key) = p.next_key(&mut first)? {
        match &*key {
            "appLogs" => {
                if records.is_some() {
                    return Err(p.err("duplicate field `appLogs`"));
                }
                buf.clear();
                buf.reserve(bytes.len());
                let mut out = Records { buf: std::mem::take(&mut buf), items: Vec::new() };
                p.records(&mut out, observed_ns, &mut stats, redaction.as_mut())?;
                records = Some(out);
            }
            "cursor" => cursor = p.opt_str()?.map(Cow::into_owned),
            _ => p.skip()?,
        }
    }
    p.end()?;
    let records = records.ok_or_else(|| p.err("missing field `appLogs`"))?;
    let privacy_changed = redaction.map(|r| r.counts).unwrap_or_default();
    Ok(Decoded { records, cursor: cursor.filter(|c| !c.is_empty()), stats, privacy_changed })
}

/// Checks a page's syntax without decoding it: the floor of any decoder
/// built on this parser (benchmarks).
pub fn scan_page(bytes: &[u8]) -> Result<(), WireError> {
    let mut p = Parser::new(bytes)?;
    p.skip()?;
    p.end()
}
