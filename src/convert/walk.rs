//! The Forge schema walk: a page's `appLogs` records written as OTLP
//! `LogRecord` protobuf bytes while the lexer ([`super::json`]) reads them,
//! with the finishing rules (severity, ids, times) of the reference path
//! applied on the way (DESIGN.md 8 and 9).

use base64::Engine;
use prost::encoding::encode_varint;

use super::json::{Parser, WireError};
use super::page::{Item, Raw, Records, raw_key};
use super::proto::*;
mod finish;
mod site;

use super::redact::Redaction;
use super::{ConvertStats, hex_into, severity, trace_id_into};
use crate::forge::model::Num;
use finish::Finish;
use site::site_string;

/// The attribute whose string value names the record's site.
const SITE_KEY: &str = "installationContext";

/// Scratch space for one record, reused across records.
#[derive(Default)]
struct Scratch {
    body: Vec<u8>,
    attrs: Vec<u8>,
}

impl<'a> Parser<'a> {
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

    /// The `appLogs` array.
    pub(super) fn records(
        &mut self,
        out: &mut Records,
        observed_ns: u64,
        stats: &mut ConvertStats,
        mut redaction: Option<&mut Redaction<'_>>,
        raw: Raw<'_>,
    ) -> Result<(), WireError> {
        self.open(b'[', "`appLogs`: expected an array")?;
        let mut scratch = Scratch::default();
        let mut first = true;
        while self.next_elem(&mut first)? {
            self.ws();
            let start = self.i;
            if let Raw::Skip(known) = raw
                && let Some(k) = self.b.get(start..).and_then(known)
            {
                // The same bytes decoded before: their time and fingerprint
                // are known, and the record is decoded only if it must go out.
                let end = start + k.raw.len as usize;
                let at = out.buf.len();
                out.items.push(Item {
                    start: at,
                    content_end: at,
                    end: at,
                    time_unix_nano: k.time_unix_nano,
                    site: None,
                    fingerprint: Some(k.fingerprint),
                    raw: None,
                    skipped: Some((start, end)),
                });
                self.i = end;
                continue;
            }
            self.record(out, &mut scratch, observed_ns, stats, redaction.as_deref_mut())?;
            if let Raw::Keys = raw
                && let Some(item) = out.items.last_mut()
            {
                item.raw = self.b.get(start..self.i).and_then(raw_key);
            }
        }
        Ok(())
    }

    /// A single record and nothing else ([`super::page::decode_record`]).
    pub(super) fn one_record(
        &mut self,
        out: &mut Records,
        observed_ns: u64,
        stats: &mut ConvertStats,
        redaction: Option<&mut Redaction<'_>>,
    ) -> Result<(), WireError> {
        self.record(out, &mut Scratch::default(), observed_ns, stats, redaction)
    }

    /// One record: parsed in the page's field order, written in prost's
    /// (field number order), with the finishing rules of `convert::record`.
    fn record(
        &mut self,
        out: &mut Records,
        scratch: &mut Scratch,
        observed_ns: u64,
        stats: &mut ConvertStats,
        mut redaction: Option<&mut Redaction<'_>>,
    ) -> Result<(), WireError> {
        self.open(b'{', "expected a log record object")?;
        let (mut time, mut sev_number, mut sev_text, mut trace, mut span) = (None, None, None, None, None);
        let (mut body, mut attrs) = (false, false);
        let mut attrs_changed = false;
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
                64 => {
                    if !self.null()? {
                        attrs = true;
                        attrs_changed = self.attributes(&mut scratch.attrs, &mut site, redaction.as_deref_mut())?;
                    }
                }
                _ => self.skip()?,
            }
        }
        let sev_number = sev_number.as_ref().and_then(Num::as_i64);
        let mut fin = Finish {
            time_unix_nano: 0,
            level: severity(sev_text.as_deref(), sev_number),
            sev_text: sev_text.as_deref().filter(|t| !t.is_empty()),
            raw_time: None,
            sev_number,
            trace: None,
            span: None,
        };
        if let Some(t) = &time {
            // A time past i64::MAX cannot be a nanosecond time; it is kept raw, like unparsable ones.
            match t.as_u64().filter(|n| i64::try_from(*n).is_ok()) {
                Some(ns) => fin.time_unix_nano = ns,
                None => {
                    stats.bad_time += 1;
                    fin.raw_time = Some(t.raw());
                }
            }
        }
        let (mut t, mut sp) = ([0u8; 16], [0u8; 8]);
        let trace_ok = match trace.as_deref() {
            None | Some("") => false,
            Some(text) => {
                trace_id_into(text, &mut t) || {
                    stats.bad_ids += 1;
                    false
                }
            }
        };
        let span_ok = match span.as_deref() {
            None | Some("") => false,
            Some(text) => {
                hex_into(text, &mut sp) || {
                    stats.bad_ids += 1;
                    false
                }
            }
        };
        fin.trace = trace_ok.then_some(t);
        fin.span = span_ok.then_some(sp);
        let (body, attrs) = (body.then_some(&scratch.body[..]), attrs.then_some(&scratch.attrs[..]));
        let red = redaction.map(|r| {
            let body_changed = body.is_some_and(|b| r.body(b));
            (&*r, body_changed)
        });
        let buf = &mut out.buf;
        let start = buf.len();
        let (content_end, fingerprint, site) = match red {
            Some((r, body_changed)) if body_changed || attrs_changed => {
                // Written only redacted. The content as the API sent it is
                // hashed in parts, nothing written again: the head as
                // written (up to the body when the body changed, then the
                // body as parsed), the attributes as parsed, the tail as
                // written.
                let body_at = fin.write_head(buf, if body_changed { Some(&r.body[..]) } else { body });
                let head_end = buf.len();
                match attrs {
                    Some(a) if attrs_changed => r.write_attributes(a, buf),
                    Some(a) => buf.extend_from_slice(a),
                    None => {}
                }
                let tail_at = buf.len();
                fin.write_tail(buf);
                let sent_body = body.filter(|_| body_changed).unwrap_or_default();
                let (hdr, hdr_len) = header(LOG_BODY, sent_body.len());
                let (head, hdr) = match body.filter(|_| body_changed) {
                    Some(_) => (buf.get(start..body_at), hdr.get(..hdr_len)),
                    None => (buf.get(start..head_end), None),
                };
                let (head, hdr) = (head.unwrap_or_default(), hdr.unwrap_or_default());
                let tail = buf.get(tail_at..).unwrap_or_default();
                let fingerprint =
                    crate::fingerprint::hash_parts(&[head, hdr, sent_body, attrs.unwrap_or_default(), tail]);
                (start, Some(fingerprint), site)
            }
            _ => {
                let attrs_at = fin.write(buf, body, attrs);
                (buf.len(), None, site.map(|(a, b)| (attrs_at + a, attrs_at + b)))
            }
        };
        let time_unix_nano = fin.time_unix_nano;
        if observed_ns != 0 {
            buf.push(LOG_OBSERVED_TIME);
            buf.extend_from_slice(&observed_ns.to_le_bytes());
        }
        let end = buf.len();
        // The site as the API sent it: after the message when only the
        // parsed attributes hold it (`site` is then within them).
        let site = match (fingerprint, site) {
            (Some(_), Some((a, b))) => scratch.attrs.get(a..b).map(|s| {
                buf.extend_from_slice(s);
                (end, buf.len())
            }),
            (_, site) => site,
        };
        out.items.push(Item { start, content_end, end, time_unix_nano, site, fingerprint, raw: None, skipped: None });
        Ok(())
    }

    /// A record's `attributes` array, as `LogRecord.attributes` fields.
    /// `site`: where the first `installationContext` attribute's string
    /// lies. With privacy rules, each field is redacted as soon as it is
    /// written; whether any changed.
    fn attributes(
        &mut self,
        out: &mut Vec<u8>,
        site: &mut Option<(usize, usize)>,
        mut redaction: Option<&mut Redaction<'_>>,
    ) -> Result<bool, WireError> {
        self.open(b'[', "`attributes`: expected an array")?;
        if let Some(r) = redaction.as_deref_mut() {
            r.begin_attributes();
        }
        let mut site_done = false;
        let mut changed = false;
        let mut first = true;
        while self.next_elem(&mut first)? {
            let field = out.len();
            let at = open_field(out, LOG_ATTRIBUTE);
            let is_site = self.key_value(out)?;
            let (a, b) = close_field(out, at);
            if let Some(r) = redaction.as_deref_mut() {
                changed |= r.attribute(out, field, (a, b));
            }
            if is_site && !site_done {
                site_done = true;
                *site = site_string(out, (a, b));
            }
        }
        if let Some(r) = redaction {
            changed = r.mask_attributes(out).unwrap_or(changed);
        }
        Ok(changed)
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
