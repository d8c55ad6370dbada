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
    /// Records recognised by their bytes and not decoded ([`Raw::Skip`]).
    pub skipped: usize,
    /// The observed time the records were written with.
    pub observed_ns: u64,
}

/// A record's bytes as the API sent them, as a later read of the same
/// stretch recognises them without decoding them ([`Raw::Skip`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawKey {
    /// Hash of the first [`RAW_PREFIX`] bytes: where to look.
    pub prefix: u64,
    /// Hash of all of them: what must match.
    pub hash: u64,
    pub len: u32,
}

/// A record recognised by its bytes: what decoding it gave before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub raw: RawKey,
    pub time_unix_nano: u64,
    pub fingerprint: u64,
}

/// Bytes of a record's JSON that key it. Shorter records are decoded
/// every time (they are cheap, and rare).
pub const RAW_PREFIX: usize = 64;

/// The key of a record's JSON `raw` (from its `{` to its `}`).
pub fn raw_key(raw: &[u8]) -> Option<RawKey> {
    Some(RawKey {
        prefix: raw_prefix(raw)?,
        hash: crate::fingerprint::hash_wide(raw),
        len: u32::try_from(raw.len()).ok()?,
    })
}

/// The prefix hash of the record that starts `rest`.
pub fn raw_prefix(rest: &[u8]) -> Option<u64> {
    rest.get(..RAW_PREFIX).map(crate::fingerprint::hash_wide)
}

/// Whether `known` is the record that starts `rest`: its bytes, all of them.
pub fn raw_matches(rest: &[u8], known: &RawKey) -> bool {
    rest.get(..known.len as usize).is_some_and(|b| crate::fingerprint::hash_wide(b) == known.hash)
}

/// What a page's decoding does with each record's bytes as the API sent them.
#[derive(Clone, Copy, Default)]
pub enum Raw<'k> {
    /// Nothing.
    #[default]
    Off,
    /// Keys them ([`Record::raw_key`]), for a later read to recognise.
    Keys,
    /// Asks whether a record that starts at a given byte is one seen
    /// before; if so, takes its time and fingerprint from there and
    /// leaves it undecoded ([`Record::skipped`]).
    Skip(&'k dyn Fn(&[u8]) -> Option<Known>),
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
    /// decoded from its content as the API sent it (not kept), or of a
    /// record recognised by its bytes.
    pub(super) fingerprint: Option<u64>,
    /// With [`Raw::Keys`].
    pub(super) raw: Option<RawKey>,
    /// A record recognised and not decoded: where it lies in the body.
    pub(super) skipped: Option<(usize, usize)>,
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
    raw: Option<RawKey>,
    skipped: Option<(usize, usize)>,
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

    /// The key of the record's JSON, when decoded with [`Raw::Keys`].
    pub fn raw_key(&self) -> Option<RawKey> {
        self.raw
    }

    /// Where the record lies in the page's body when it was recognised
    /// and not decoded ([`Raw::Skip`]): it has no message then, and
    /// [`decode_record`] decodes it if it must go out.
    pub fn skipped(&self) -> Option<(usize, usize)> {
        self.skipped
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
            raw: it.raw,
            skipped: it.skipped,
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
        self.decode_raw(observed_ns, rules, Raw::Off)
    }

    /// [`Self::decode_with`], doing `raw` with the records' bytes. The body
    /// is kept until [`Self::recycle`] when records were skipped (they are
    /// decoded from it if they must go out).
    pub fn decode_raw(&mut self, observed_ns: u64, rules: Option<&Rules>, raw: Raw<'_>) -> Result<Decoded, WireError> {
        let out = std::mem::take(&mut self.records);
        let page = decode_page_into(&self.body, observed_ns, out, rules, raw);
        let skipped = page.as_ref().is_ok_and(|p| p.skipped > 0);
        if self.body.capacity() > MAX_KEPT && !skipped {
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
        if self.body.capacity() > MAX_KEPT {
            self.body = Vec::new();
        }
    }
}

/// Decodes one record's JSON (a record [`Record::skipped`] on its page),
/// as its page's decoding would have.
pub fn decode_record(raw: &[u8], observed_ns: u64, rules: Option<&Rules>) -> Result<Decoded, WireError> {
    let mut redaction = rules.map(Redaction::new);
    let mut p = Parser::new(raw)?;
    let mut stats = ConvertStats::default();
    let mut out = Records { buf: Vec::with_capacity(raw.len()), items: Vec::with_capacity(1) };
    p.one_record(&mut out, observed_ns, &mut stats, redaction.as_mut())?;
    p.end()?;
    let privacy_changed = redaction.map(|r| r.counts).unwrap_or_default();
    Ok(Decoded { records: out, cursor: None, stats, privacy_changed, skipped: 0, observed_ns })
}

/// Decodes a page's JSON into OTLP records observed at `observed_ns`.
pub fn decode_page(bytes: &[u8], observed_ns: u64) -> Result<Decoded, WireError> {
    decode_page_into(bytes, observed_ns, Vec::new(), None, Raw::Off)
}

/// [`decode_page`] doing `raw` with the records' bytes (tests, tools).
pub fn decode_page_raw(bytes: &[u8], observed_ns: u64, raw: Raw<'_>) -> Result<Decoded, WireError> {
    decode_page_into(bytes, observed_ns, Vec::new(), None, raw)
}

/// [`decode_page`] applying privacy rules: records are fingerprinted as
/// the API sent them and encoded redacted.
pub fn decode_page_with(bytes: &[u8], observed_ns: u64, rules: Option<&Rules>) -> Result<Decoded, WireError> {
    decode_page_into(bytes, observed_ns, Vec::new(), rules, Raw::Off)
}

/// [`decode_page`] writing into `buf` (cleared first).
fn decode_page_into(
    bytes: &[u8],
    observed_ns: u64,
    mut buf: Vec<u8>,
    rules: Option<&Rules>,
    raw: Raw<'_>,
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
                p.records(&mut out, observed_ns, &mut stats, redaction.as_mut(), raw)?;
                records = Some(out);
            }
            "cursor" => cursor = p.opt_str()?.map(Cow::into_owned),
            _ => p.skip()?,
        }
    }
    p.end()?;
    let records = records.ok_or_else(|| p.err("missing field `appLogs`"))?;
    let privacy_changed = redaction.map(|r| r.counts).unwrap_or_default();
    let skipped = records.items.iter().filter(|i| i.skipped.is_some()).count();
    Ok(Decoded { records, cursor: cursor.filter(|c| !c.is_empty()), stats, privacy_changed, skipped, observed_ns })
}

/// Checks a page's syntax without decoding it: the floor of any decoder
/// built on this parser (benchmarks).
pub fn scan_page(bytes: &[u8]) -> Result<(), WireError> {
    let mut p = Parser::new(bytes)?;
    p.skip()?;
    p.end()
}
