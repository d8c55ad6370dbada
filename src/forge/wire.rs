//! Pages encoded straight into OTLP protobuf.
//!
//! The poller's hot path: one pass over a page's JSON writes every record
//! as the protobuf bytes of an OTLP `LogRecord`, with no intermediate tree
//! and no allocation per string (only strings with escapes are copied).
//! The bytes are the ones prost writes for the record that
//! [`crate::convert::record`] builds from the same JSON (a test holds the
//! two together), so a record's fingerprint is the hash of its bytes
//! without the observed time, and requests are assembled by
//! concatenation ([`crate::convert::batches`]).
//!
//! Decoding stays tolerant (unknown fields are skipped, `null` counts as
//! absent) and safe on hostile input: nesting is bounded, every error is
//! a value with the byte offset, and nothing indexes past the input.

use std::borrow::Cow;

use base64::Engine;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use prost::encoding::encode_varint;

use super::model::Num;
use crate::convert::{ATTR_RAW_TIME, ATTR_SEVERITY_NUMBER, ConvertStats, hex_into, severity};

/// Deepest nesting of objects and arrays accepted (serde_json's default too).
const MAX_DEPTH: u32 = 128;

// Protobuf tags (field number << 3 | wire type) of the messages written here.
const LOG_TIME: u8 = 0x09;
const LOG_SEVERITY_NUMBER: u8 = 0x10;
const LOG_SEVERITY_TEXT: u8 = 0x1a;
const LOG_BODY: u8 = 0x2a;
const LOG_ATTRIBUTE: u8 = 0x32;
const LOG_TRACE_ID: u8 = 0x4a;
const LOG_SPAN_ID: u8 = 0x52;
const LOG_OBSERVED_TIME: u8 = 0x59;
const KV_KEY: u8 = 0x0a;
const KV_VALUE: u8 = 0x12;
const ANY_STRING: u8 = 0x0a;
const ANY_BOOL: u8 = 0x10;
const ANY_INT: u8 = 0x18;
const ANY_DOUBLE: u8 = 0x21;
const ANY_ARRAY: u8 = 0x2a;
const ANY_KVLIST: u8 = 0x32;
const ANY_BYTES: u8 = 0x3a;
const LIST_VALUE: u8 = 0x0a;

/// The first `"`, `\\` or control character (which JSON forbids in
/// strings) in `s`: eight bytes per step, then byte by byte.
fn find_stop(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte is flagged when it is zero after the xor, or below 0x20; the
    // lowest flagged byte is always a true match (carries only run upwards).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else { break };
        let w = u64::from_le_bytes(bytes);
        let hit =
            (zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | zero_below_0x20(w)) & HIGH;
        if hit != 0 {
            return Some(at + (hit.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = chunks.remainder();
    tail.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|n| at + n)
}

/// Flags (high bit) the bytes of `w` below 0x20, as `find_stop` needs.
fn zero_below_0x20(w: u64) -> u64 {
    w.wrapping_sub(0x2020_2020_2020_2020) & !w
}

/// The attribute whose string value names the record's site.
const SITE_KEY: &str = "installationContext";

/// A page that is not the JSON the API documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct WireError {
    pub what: Cow<'static, str>,
    pub at: usize,
}

/// A decoded page.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Records,
    /// More pages follow when this is `Some`.
    pub cursor: Option<String>,
    pub stats: ConvertStats,
}

/// A page's records, each encoded as an OTLP `LogRecord`, in page order.
#[derive(Debug, Default)]
pub struct Records {
    buf: Vec<u8>,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    start: usize,
    /// End of the content; the observed time follows up to `end`.
    content_end: usize,
    end: usize,
    time_unix_nano: u64,
    site: Option<(usize, usize)>,
}

/// One encoded record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// 0 when the record has no usable time.
    pub time_unix_nano: u64,
    /// The `LogRecord` message as sent.
    pub encoded: &'a [u8],
    content: &'a [u8],
    site: Option<&'a str>,
}

impl<'a> Record<'a> {
    /// The fingerprint of the record's content, its observed time left out
    /// (the same record fetched twice must match): the hash of the bytes
    /// prost writes for the record with observed time 0.
    pub fn fingerprint(&self) -> u64 {
        crate::fingerprint::hash_bytes(self.content)
    }

    /// The string value of the record's `installationContext` attribute.
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
        let out = std::mem::take(&mut self.records);
        let page = decode_page_into(&self.body, observed_ns, out);
        if self.body.capacity() > MAX_KEPT {
            self.body = Vec::new();
        }
        page
    }

    /// Takes back a page's record buffer once the page is delivered.
    pub fn recycle(&mut self, records: Records) {
        let mut buf = records.buf;
        if buf.capacity() <= MAX_KEPT {
            buf.clear();
            self.records = buf;
        }
    }
}

/// Decodes a page's JSON into OTLP records observed at `observed_ns`.
pub fn decode_page(bytes: &[u8], observed_ns: u64) -> Result<Decoded, WireError> {
    decode_page_into(bytes, observed_ns, Vec::new())
}

/// [`decode_page`] writing into `buf` (cleared first).
fn decode_page_into(bytes: &[u8], observed_ns: u64, mut buf: Vec<u8>) -> Result<Decoded, WireError> {
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
                p.records(&mut out, observed_ns, &mut stats)?;
                records = Some(out);
            }
            "cursor" => cursor = p.opt_str()?.map(Cow::into_owned),
            _ => p.skip()?,
        }
    }
    p.end()?;
    let records = records.ok_or_else(|| p.err("missing field `appLogs`"))?;
    Ok(Decoded { records, cursor: cursor.filter(|c| !c.is_empty()), stats })
}

/// Checks a page's syntax without decoding it: the floor of any decoder
/// built on this parser (benchmarks).
pub fn scan_page(bytes: &[u8]) -> Result<(), WireError> {
    let mut p = Parser::new(bytes)?;
    p.skip()?;
    p.end()
}

/// Scratch space for one record, reused across records.
#[derive(Default)]
struct Scratch {
    body: Vec<u8>,
    attrs: Vec<u8>,
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    /// A parser at the start of a page, which must be UTF-8.
    fn new(bytes: &'a [u8]) -> Result<Self, WireError> {
        let s = std::str::from_utf8(bytes).map_err(|e| WireError { what: "not UTF-8".into(), at: e.valid_up_to() })?;
        Ok(Parser { s, b: bytes, i: 0, depth: 0 })
    }

    /// Checks that only whitespace follows the page.
    fn end(&mut self) -> Result<(), WireError> {
        self.ws();
        if self.i != self.b.len() {
            return Err(self.err("trailing characters after the page"));
        }
        Ok(())
    }

    fn err(&self, what: impl Into<Cow<'static, str>>) -> WireError {
        WireError { what: what.into(), at: self.i }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Consumes `{` or `[` (after whitespace) and enters one level.
    fn open(&mut self, c: u8, what: &'static str) -> Result<(), WireError> {
        if self.peek() != Some(c) {
            return Err(self.err(what));
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1;
        Ok(())
    }

    /// The next key of an object opened with [`Self::open`]; `None` after its `}`.
    fn next_key(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>, WireError> {
        if !self.more(b'}', first)? {
            return Ok(None);
        }
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a key"));
        }
        let key = self.str()?;
        if self.peek() != Some(b':') {
            return Err(self.err("expected ':'"));
        }
        self.i += 1;
        Ok(Some(key))
    }

    /// Whether another element of an array opened with [`Self::open`] follows.
    fn next_elem(&mut self, first: &mut bool) -> Result<bool, WireError> {
        self.more(b']', first)
    }

    /// Past the `,` before the next member of an object or array, or past
    /// its closing `close` (then `false`, one level left).
    fn more(&mut self, close: u8, first: &mut bool) -> Result<bool, WireError> {
        match self.peek() {
            Some(c) if c == close => {
                self.i += 1;
                self.depth -= 1;
                return Ok(false);
            }
            Some(b',') if !*first => self.i += 1,
            Some(_) if *first => {}
            _ => return Err(self.err(if close == b'}' { "expected ',' or '}'" } else { "expected ',' or ']'" })),
        }
        *first = false;
        Ok(true)
    }

    /// Consumes `null` if it comes next.
    fn null(&mut self) -> Result<bool, WireError> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            return Ok(true);
        }
        Ok(false)
    }

    fn literal(&mut self, word: &'static str) -> Result<(), WireError> {
        if self.b.get(self.i..self.i + word.len()) != Some(word.as_bytes()) {
            return Err(self.err("expected a value"));
        }
        self.i += word.len();
        Ok(())
    }

    /// A string (the opening quote next), borrowed unless it has escapes.
    fn str(&mut self) -> Result<Cow<'a, str>, WireError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string"));
        }
        self.i += 1;
        let start = self.i;
        let plain = self.plain_run()?;
        if self.b.get(self.i) == Some(&b'"') {
            self.i += 1;
            return self.s.get(start..start + plain).map(Cow::Borrowed).ok_or_else(|| self.err("bad string"));
        }
        let mut out = Vec::with_capacity(plain + 16);
        out.extend_from_slice(self.b.get(start..start + plain).unwrap_or_default());
        self.unescape_rest(&mut out)?;
        String::from_utf8(out).map(Cow::Owned).map_err(|_| self.err("bad string"))
    }

    /// Skips the characters up to the next `"` or `\`; their count.
    fn plain_run(&mut self) -> Result<usize, WireError> {
        let rest = self.b.get(self.i..).unwrap_or_default();
        let Some(n) = find_stop(rest) else {
            self.i = self.b.len();
            return Err(self.err("unterminated string"));
        };
        self.i += n;
        if rest.get(n).is_some_and(|&c| c < 0x20) {
            return Err(self.err("control character in a string"));
        }
        Ok(n)
    }

    /// From a `\` or the closing quote: the rest of the string, unescaped into `out`.
    fn unescape_rest(&mut self, out: &mut Vec<u8>) -> Result<(), WireError> {
        loop {
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.b.get(self.i) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return Err(self.err("bad escape")),
                    };
                    self.i += 1;
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => return Err(self.err("unterminated string")),
            }
            let start = self.i;
            let n = self.plain_run()?;
            out.extend_from_slice(self.b.get(start..start + n).unwrap_or_default());
        }
    }

    /// At the `u` of `\uXXXX` (a surrogate pair takes two): the character;
    /// leaves `i` on the escape's last digit.
    fn unicode_escape(&mut self) -> Result<char, WireError> {
        let hex4 = |p: &Self, at: usize| -> Result<u32, WireError> {
            let digits = p.b.get(at..at + 4).ok_or_else(|| p.err("bad \\u escape"))?;
            let text = std::str::from_utf8(digits).map_err(|_| p.err("bad \\u escape"))?;
            u32::from_str_radix(text, 16).map_err(|_| p.err("bad \\u escape"))
        };
        let hi = hex4(self, self.i + 1)?;
        self.i += 4;
        let code = match hi {
            0xd800..=0xdbff => {
                if self.b.get(self.i + 1..self.i + 3) != Some(b"\\u") {
                    return Err(self.err("lone leading surrogate in \\u escape"));
                }
                let lo = hex4(self, self.i + 3)?;
                if !(0xdc00..=0xdfff).contains(&lo) {
                    return Err(self.err("lone leading surrogate in \\u escape"));
                }
                self.i += 6;
                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.err("lone trailing surrogate in \\u escape")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.err("bad \\u escape"))
    }

    /// Writes a string (the opening quote next) as field `tag`; an empty
    /// string is written only when `always` (a oneof member is, a plain field is not).
    fn str_field(&mut self, out: &mut Vec<u8>, tag: u8, always: bool) -> Result<(), WireError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string"));
        }
        self.i += 1;
        let start = self.i;
        let plain = self.plain_run()?;
        let run = self.b.get(start..start + plain).unwrap_or_default();
        if self.b.get(self.i) == Some(&b'"') {
            self.i += 1;
            if always || plain > 0 {
                put_field(out, tag, run);
            }
            return Ok(());
        }
        let at = open_field(out, tag);
        out.extend_from_slice(run);
        self.unescape_rest(out)?;
        close_field(out, at);
        Ok(())
    }

    fn opt_str(&mut self) -> Result<Option<Cow<'a, str>>, WireError> {
        if self.null()? { Ok(None) } else { self.str().map(Some) }
    }

    /// A number or a decimal string; `None` for `null`.
    fn opt_num(&mut self) -> Result<Option<Num<'a>>, WireError> {
        match self.peek() {
            Some(b'"') => self.str().map(|s| Some(Num::Str(s))),
            Some(b'-' | b'0'..=b'9') => self.number().map(Some),
            Some(b'n') => self.null().map(|_| None),
            _ => Err(self.err("expected a number or a string")),
        }
    }

    /// A JSON number: an integer when it has no fraction or exponent and fits.
    fn number(&mut self) -> Result<Num<'a>, WireError> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let from = p.i;
            while let Some(b'0'..=b'9') = p.b.get(p.i) {
                p.i += 1;
            }
            p.i - from
        };
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b.get(int_start) == Some(&b'0')) {
            return Err(self.err("invalid number"));
        }
        let mut float = false;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            float = true;
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            float = true;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let text = self.s.get(start..self.i).unwrap_or_default();
        if !float {
            let parsed = if negative { text.parse::<i64>().map(Num::Int) } else { text.parse::<u64>().map(Num::Uint) };
            if let Ok(n) = parsed {
                return Ok(match n {
                    Num::Uint(u) => i64::try_from(u).map_or(Num::Uint(u), Num::Int),
                    other => other,
                });
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Num::Float(f)),
            _ => Err(self.err("number out of range")),
        }
    }

    /// Skips any value, checking its syntax.
    fn skip(&mut self) -> Result<(), WireError> {
        match self.peek() {
            Some(b'{') => {
                self.open(b'{', "expected an object")?;
                let mut first = true;
                while self.next_key(&mut first)?.is_some() {
                    self.skip()?;
                }
                Ok(())
            }
            Some(b'[') => {
                self.open(b'[', "expected an array")?;
                let mut first = true;
                while self.next_elem(&mut first)? {
                    self.skip()?;
                }
                Ok(())
            }
            Some(b'"') => self.str().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            _ => Err(self.err("expected a value")),
        }
    }

    /// The `appLogs` array.
    fn records(&mut self, out: &mut Records, observed_ns: u64, stats: &mut ConvertStats) -> Result<(), WireError> {
        self.open(b'[', "`appLogs`: expected an array")?;
        let mut scratch = Scratch::default();
        let mut first = true;
        while self.next_elem(&mut first)? {
            self.record(out, &mut scratch, observed_ns, stats)?;
        }
        Ok(())
    }

    /// One record: parsed in the page's field order, written in prost's
    /// (field number order), with the finishing rules of `convert::record`.
    fn record(
        &mut self,
        out: &mut Records,
        scratch: &mut Scratch,
        observed_ns: u64,
        stats: &mut ConvertStats,
    ) -> Result<(), WireError> {
        self.open(b'{', "expected a log record object")?;
        let (mut time, mut sev_number, mut sev_text, mut trace, mut span) = (None, None, None, None, None);
        let (mut body, mut attrs) = (false, false);
        let mut site = None;
        scratch.body.clear();
        scratch.attrs.clear();
        let mut seen = 0u8;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            let bit = match &*key {
                "timeUnixNano" => 1,
                "severityNumber" => 2,
                "severityText" => 4,
                "body" => 8,
                "traceId" => 16,
                "spanId" => 32,
                "attributes" => 64,
                _ => 0,
            };
            if seen & bit != 0 {
                return Err(self.err(format!("duplicate field `{key}`")));
            }
            seen |= bit;
            match bit {
                1 => time = self.opt_num()?,
                2 => sev_number = self.opt_num()?,
                4 => sev_text = self.opt_str()?,
                8 => body = !self.null()? && self.any_value(&mut scratch.body).map(|()| true)?,
                16 => trace = self.opt_str()?,
                32 => span = self.opt_str()?,
                64 => attrs = !self.null()? && self.attributes(&mut scratch.attrs, &mut site).map(|()| true)?,
                _ => self.skip()?,
            }
        }
        let buf = &mut out.buf;
        let start = buf.len();
        let mut raw_time = None;
        let time_unix_nano = match &time {
            None => 0,
            Some(t) => t.as_u64().unwrap_or_else(|| {
                stats.bad_time += 1;
                raw_time = Some(t.raw());
                0
            }),
        };
        if time_unix_nano != 0 {
            buf.push(LOG_TIME);
            buf.extend_from_slice(&time_unix_nano.to_le_bytes());
        }
        let sev_number = sev_number.as_ref().and_then(Num::as_i64);
        let level = severity(sev_text.as_deref(), sev_number);
        if level != 0 {
            buf.push(LOG_SEVERITY_NUMBER);
            encode_varint(i64::from(level) as u64, buf);
        }
        if let Some(text) = sev_text.as_deref().filter(|t| !t.is_empty()) {
            put_field(buf, LOG_SEVERITY_TEXT, text.as_bytes());
        }
        if body {
            put_field(buf, LOG_BODY, &scratch.body);
        }
        let attrs_at = buf.len();
        if attrs {
            buf.extend_from_slice(&scratch.attrs);
        }
        if let Some(raw) = raw_time {
            extra_attribute(buf, ATTR_RAW_TIME, |b| put_field(b, ANY_STRING, raw.as_bytes()));
        }
        if let Some(n) = sev_number {
            extra_attribute(buf, ATTR_SEVERITY_NUMBER, |b| {
                b.push(ANY_INT);
                encode_varint(n as u64, b);
            });
        }
        for (id, tag, bytes) in [(&trace, LOG_TRACE_ID, &mut [0u8; 16][..]), (&span, LOG_SPAN_ID, &mut [0u8; 8][..])] {
            match id.as_deref() {
                None | Some("") => {}
                Some(text) if hex_into(text, bytes) => put_field(buf, tag, bytes),
                Some(_) => stats.bad_ids += 1,
            }
        }
        let content_end = buf.len();
        if observed_ns != 0 {
            buf.push(LOG_OBSERVED_TIME);
            buf.extend_from_slice(&observed_ns.to_le_bytes());
        }
        let site = site.map(|(a, b)| (attrs_at + a, attrs_at + b));
        out.items.push(Item { start, content_end, end: buf.len(), time_unix_nano, site });
        Ok(())
    }

    /// A record's `attributes` array, as `LogRecord.attributes` fields.
    /// `site`: where the first `installationContext` attribute's string lies.
    fn attributes(&mut self, out: &mut Vec<u8>, site: &mut Option<(usize, usize)>) -> Result<(), WireError> {
        self.open(b'[', "`attributes`: expected an array")?;
        let mut site_done = false;
        let mut first = true;
        while self.next_elem(&mut first)? {
            let at = open_field(out, LOG_ATTRIBUTE);
            let is_site = self.key_value(out)?;
            let content = close_field(out, at);
            if is_site && !site_done {
                site_done = true;
                *site = site_string(out, content);
            }
        }
        Ok(())
    }

    /// A `{"key": ..., "value": ...}` object as `KeyValue` content; whether
    /// its key is the site attribute's.
    fn key_value(&mut self, out: &mut Vec<u8>) -> Result<bool, WireError> {
        self.open(b'{', "expected a key-value object")?;
        let start = out.len();
        let (mut key_at, mut value_at) = (None, None);
        let mut is_site = false;
        let mut first = true;
        while let Some(field) = self.next_key(&mut first)? {
            match &*field {
                "key" => {
                    if key_at.is_some() {
                        return Err(self.err("duplicate field `key`"));
                    }
                    let at = out.len();
                    key_at = Some(at);
                    self.str_field(out, KV_KEY, false)?;
                    is_site = out.get(at + 2..) == Some(SITE_KEY.as_bytes());
                }
                "value" => {
                    if value_at.is_some() {
                        return Err(self.err("duplicate field `value`"));
                    }
                    value_at = Some(out.len());
                    if !self.null()? {
                        let at = open_field(out, KV_VALUE);
                        self.any_value(out)?;
                        close_field(out, at);
                    }
                }
                _ => self.skip()?,
            }
        }
        let Some(key_at) = key_at else { return Err(self.err("missing field `key`")) };
        if let Some(value_at) = value_at.filter(|&v| v < key_at) {
            // The value came first in the page: the key goes first in protobuf.
            if let Some(kv) = out.get_mut(start..) {
                kv.rotate_left(key_at - value_at);
            }
        }
        Ok(is_site)
    }

    /// An AnyValue object as `AnyValue` content: the member set, the first
    /// of string, bool, int, double, bytes, array, kvlist when several are.
    fn any_value(&mut self, out: &mut Vec<u8>) -> Result<(), WireError> {
        self.open(b'{', "expected an AnyValue object")?;
        let start = out.len();
        let mut best = u8::MAX;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            let rank = match &*key {
                "stringValue" => 0,
                "boolValue" => 1,
                "intValue" => 2,
                "doubleValue" => 3,
                "bytesValue" => 4,
                "arrayValue" => 5,
                "kvlistValue" => 6,
                _ => {
                    self.skip()?;
                    continue;
                }
            };
            if self.null()? {
                continue;
            }
            // A better-ranked member replaces what was written; a worse one
            // is still parsed (and checked), then dropped.
            let mark = if rank <= best {
                out.truncate(start);
                best = rank;
                None
            } else {
                Some(out.len())
            };
            match rank {
                0 => self.str_field(out, ANY_STRING, true)?,
                1 => {
                    let v = match self.peek() {
                        Some(b't') => self.literal("true").map(|()| 1),
                        Some(b'f') => self.literal("false").map(|()| 0),
                        _ => Err(self.err("`boolValue`: expected a boolean")),
                    }?;
                    out.extend_from_slice(&[ANY_BOOL, v]);
                }
                2 | 3 => {
                    let Some(n) = self.opt_num()? else { continue };
                    match (rank, n.as_i64(), n.as_f64()) {
                        (2, Some(i), _) => {
                            out.push(ANY_INT);
                            encode_varint(i as u64, out);
                        }
                        (3, _, Some(d)) => {
                            out.push(ANY_DOUBLE);
                            out.extend_from_slice(&d.to_le_bytes());
                        }
                        _ => put_field(out, ANY_STRING, n.raw().as_bytes()),
                    }
                }
                4 => {
                    let text = self.str()?;
                    match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                        Ok(bytes) => put_field(out, ANY_BYTES, &bytes),
                        Err(_) => put_field(out, ANY_STRING, text.as_bytes()),
                    }
                }
                5 => self.list(out, ANY_ARRAY, |p, out| p.any_value(out))?,
                _ => self.list(out, ANY_KVLIST, |p, out| p.key_value(out).map(drop))?,
            }
            if let Some(mark) = mark {
                out.truncate(mark);
            }
        }
        Ok(())
    }

    /// `{"values": [...]}` as field `tag` holding one `values` field per element.
    fn list(
        &mut self,
        out: &mut Vec<u8>,
        tag: u8,
        mut elem: impl FnMut(&mut Self, &mut Vec<u8>) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        self.open(b'{', "expected an object with `values`")?;
        let at = open_field(out, tag);
        let mut seen = false;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            if &*key != "values" {
                self.skip()?;
                continue;
            }
            if seen {
                return Err(self.err("duplicate field `values`"));
            }
            seen = true;
            if self.null()? {
                continue;
            }
            self.open(b'[', "`values`: expected an array")?;
            let mut first_elem = true;
            while self.next_elem(&mut first_elem)? {
                let e = open_field(out, LIST_VALUE);
                elem(self, out)?;
                close_field(out, e);
            }
        }
        close_field(out, at);
        Ok(())
    }
}

/// A length-delimited field.
fn put_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Starts a length-delimited field of unknown length (one byte reserved
/// for it); the content starts at the returned offset.
fn open_field(out: &mut Vec<u8>, tag: u8) -> usize {
    out.extend_from_slice(&[tag, 0]);
    out.len()
}

/// Writes the length of the field opened at `at`, moving the content when
/// the length takes more than one byte; the content's range.
fn close_field(out: &mut Vec<u8>, at: usize) -> (usize, usize) {
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

/// An attribute the finishing rules add: a `LogRecord.attributes` field.
fn extra_attribute(out: &mut Vec<u8>, key: &str, value: impl FnOnce(&mut Vec<u8>)) {
    let at = open_field(out, LOG_ATTRIBUTE);
    put_field(out, KV_KEY, key.as_bytes());
    let v = open_field(out, KV_VALUE);
    value(out);
    close_field(out, v);
    close_field(out, at);
}

/// Within `KeyValue` content written here (`start..end` of `buf`): the
/// range of its value's string, when the value is a string.
fn site_string(buf: &[u8], (start, end): (usize, usize)) -> Option<(usize, usize)> {
    let (_, key_end) = field_at(buf, start, end, KV_KEY)?;
    let (value, value_end) = field_at(buf, key_end, end, KV_VALUE)?;
    field_at(buf, value, value_end, ANY_STRING)
}

/// The content range of the length-delimited field `tag` starting at `at`.
fn field_at(buf: &[u8], at: usize, end: usize, tag: u8) -> Option<(usize, usize)> {
    if *buf.get(at)? != tag {
        return None;
    }
    let mut len = 0usize;
    let mut i = at + 1;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(i)?;
        i += 1;
        len |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return (i + len <= end).then_some((i, i + len));
        }
    }
    None
}

#[cfg(test)]
mod tests;
