//! The privacy rules ([`crate::privacy`]) applied to one record's body and
//! attributes while the walk writes them.
//!
//! The walk writes each attribute as the API sent it into its scratch
//! buffer and hands the field over at once, still hot in cache: its key is
//! decided once, and a field a rule changes is noted as a cut (its range in
//! the list and its replacement, empty when dropped). A kept field is not
//! copied here: the record is written from the list as parsed, cuts
//! applied ([`Redaction::write_attributes`]). Masks wait for the whole
//! attribute list: one prefilter scan over all of it (long runs are what
//! vectorised byte searches are fast on) rules out nearly every record,
//! and only a record it does not rule out has its attributes redacted
//! again, with masks. The body is masked when the record's fields are
//! read, behind the same prefilter. The record's fingerprint is still the hash of
//! its encoding as the API sent it (see `walk.rs`), so dedupe and
//! checkpoints do not depend on the rules. The mask pass reads strings
//! only when masks are set. The attributes the finishing rules add (`forge.severity_number`,
//! `forge.time_unix_nano.raw`) are the sidecar's and are not touched.

use super::proto::*;
use crate::privacy::{Action, Rules, text::truncate_utf8};

/// One page's redaction state: the rules, the per-rule counters and the
/// record's redacted parts.
pub(super) struct Redaction<'r> {
    rules: &'r Rules,
    /// Values changed, per rule (indexed like [`Rules::names`]).
    pub(super) counts: Vec<u64>,
    pub(super) body: Vec<u8>,
    /// The replacements of the current record's changed attribute fields.
    repl: Vec<u8>,
    /// The current record's changed attribute fields, in list order.
    cuts: Vec<Cut>,
    tmp: String,
    truncated: bool,
    /// Whether strings are masked: off while the walk writes attributes
    /// (see [`Self::attribute`]), on for bodies and [`Self::mask_attributes`].
    masking: bool,
    /// The attribute-rule counters bumped for the current record's
    /// attributes, undone when they are redacted again with masks.
    counted: Vec<usize>,
}

/// A changed field of a record's attribute list: `from..to` of the list
/// as parsed is replaced by `with` of [`Redaction::repl`].
#[derive(Debug, Clone, Copy)]
struct Cut {
    from: usize,
    to: usize,
    with: (usize, usize),
}

/// One field of a message written by this crate (single-byte tags).
struct Field<'a> {
    /// Where the field starts in the bytes read.
    at: usize,
    tag: u8,
    whole: &'a [u8],
    /// The content of a length-delimited field; empty otherwise.
    content: &'a [u8],
}

/// The fields of a message. Stops at the first malformed field: the walk
/// wrote these bytes, so that does not happen, and what follows is then
/// left out rather than sent unredacted.
fn fields(buf: &[u8]) -> impl Iterator<Item = Field<'_>> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = i;
        let tag = *buf.get(i)?;
        i += 1;
        let mut len = 0usize;
        match tag & 7 {
            0 => loop {
                let b = *buf.get(i)?;
                i += 1;
                if b < 0x80 {
                    break;
                }
            },
            1 => i += 8,
            5 => i += 4,
            2 => {
                let mut shift = 0;
                loop {
                    let b = *buf.get(i)?;
                    i += 1;
                    len |= usize::from(b & 0x7f).checked_shl(shift)?;
                    if b < 0x80 {
                        break;
                    }
                    shift += 7;
                    if shift > 28 {
                        return None;
                    }
                }
                i = i.checked_add(len)?;
            }
            _ => return None,
        }
        let whole = buf.get(start..i)?;
        let content = if tag & 7 == 2 { whole.get(whole.len() - len..)? } else { &[] };
        Some(Field { at: start, tag, whole, content })
    })
}

/// The key of `KeyValue` content (empty when it has none): its first
/// field, as the walk writes it, without the general field reader.
fn key_of(content: &[u8]) -> &[u8] {
    match content {
        [KV_KEY, len, rest @ ..] if *len < 0x80 => rest.get(..usize::from(*len)).unwrap_or_default(),
        _ => fields(content).find(|f| f.tag == KV_KEY).map_or(&[][..], |f| f.content),
    }
}

/// The text of `AnyValue` content that is one string field.
fn plain_string(content: &[u8]) -> Option<&str> {
    let mut it = fields(content);
    match (it.next(), it.next()) {
        (Some(f), None) if f.tag == ANY_STRING => std::str::from_utf8(f.content).ok(),
        _ => None,
    }
}

impl<'r> Redaction<'r> {
    pub(super) fn new(rules: &'r Rules) -> Self {
        Self {
            rules,
            counts: vec![0; rules.names().len()],
            body: Vec::new(),
            repl: Vec::new(),
            cuts: Vec::new(),
            tmp: String::new(),
            truncated: false,
            masking: false,
            counted: Vec::new(),
        }
    }

    /// Masks a record's body (`AnyValue` content) into `self.body`;
    /// whether it changed (an unchanged body is not written).
    pub(super) fn body(&mut self, body: &[u8]) -> bool {
        if !self.rules.masks() || !self.rules.may_mask(body) {
            return false;
        }
        let mut out = std::mem::take(&mut self.body);
        out.clear();
        // The common case, one string, past the byte test already.
        let changed = if let Some(text) = plain_string(body) {
            let mut tmp = std::mem::take(&mut self.tmp);
            let masked = self.rules.mask_passed(text, &mut tmp, &mut self.counts);
            if masked {
                put_field(&mut out, ANY_STRING, tmp.as_bytes());
            }
            self.tmp = tmp;
            masked
        } else {
            self.masking = true;
            let changed = self.any(body, &mut out, None);
            self.masking = false;
            changed
        };
        self.body = out;
        changed
    }

    /// Starts a record's redacted attributes.
    pub(super) fn begin_attributes(&mut self) {
        self.repl.clear();
        self.cuts.clear();
        self.counted.clear();
    }

    /// Decides one `LogRecord.attributes` field of `list` (the field from
    /// `at`, its `KeyValue` content at `content`) by its key, masks left
    /// out, noting a cut when a rule changes it; whether it changed.
    pub(super) fn attribute(&mut self, list: &[u8], at: usize, content: (usize, usize)) -> bool {
        let kv = list.get(content.0..content.1).unwrap_or_default();
        // Most keys are kept (the `Keep` case of `attribute_into`, masks
        // being left out here), decided without anything else.
        if self.rules.decide(key_of(kv)).action == Action::Keep {
            return false;
        }
        let whole = list.get(at..content.1).unwrap_or_default();
        self.cut(at, whole, kv).unwrap_or(false)
    }

    /// Once a record's attributes (`LogRecord.attributes` fields) are
    /// written: when a mask may match within them (one prefilter scan over
    /// all of them), redacts them again with masks and says whether they
    /// changed; `None` when they were not redacted again.
    pub(super) fn mask_attributes(&mut self, src: &[u8]) -> Option<bool> {
        if !self.rules.masks() || !self.rules.may_mask(src) {
            return None;
        }
        for rule in std::mem::take(&mut self.counted) {
            if let Some(c) = self.counts.get_mut(rule) {
                *c -= 1;
            }
        }
        self.repl.clear();
        self.cuts.clear();
        self.masking = true;
        let mut changed = false;
        let mut end = 0;
        for f in fields(src) {
            end = f.at + f.whole.len();
            changed |= self.cut(f.at, f.whole, f.content).unwrap_or(false);
        }
        // A malformed rest (the walk wrote these bytes: it does not happen)
        // is left out rather than sent unredacted.
        if end < src.len() {
            let at = self.repl.len();
            self.cuts.push(Cut { from: end, to: src.len(), with: (at, at) });
        }
        self.masking = false;
        Some(changed)
    }

    /// `src`, the record's attribute list as parsed, with the cuts applied.
    pub(super) fn write_attributes(&self, src: &[u8], out: &mut Vec<u8>) {
        let mut last = 0;
        for c in &self.cuts {
            out.extend_from_slice(src.get(last..c.from).unwrap_or_default());
            out.extend_from_slice(self.repl.get(c.with.0..c.with.1).unwrap_or_default());
            last = c.to;
        }
        out.extend_from_slice(src.get(last..).unwrap_or_default());
    }

    /// Redacts the field `whole` (at `at` of the list, `KeyValue` content
    /// `kv`); when it is not kept as it is, notes a cut and says whether
    /// it changed.
    fn cut(&mut self, at: usize, whole: &[u8], kv: &[u8]) -> Option<bool> {
        let mut repl = std::mem::take(&mut self.repl);
        let from = repl.len();
        let changed = self.attribute_into(kv, &mut repl);
        if changed.is_some() {
            self.cuts.push(Cut { from: at, to: at + whole.len(), with: (from, repl.len()) });
        } else {
            repl.truncate(from);
        }
        self.repl = repl;
        changed
    }

    fn count(&mut self, rule: Option<usize>) {
        if let Some(r) = rule
            && let Some(c) = self.counts.get_mut(r)
        {
            *c += 1;
            if !self.masking {
                self.counted.push(r);
            }
        }
    }

    /// Appends the redacted form of a field (its `KeyValue` content
    /// `content`) to `out` and says whether it differs from the field;
    /// `None` (nothing appended) when the field stays as it is.
    fn attribute_into(&mut self, content: &[u8], out: &mut Vec<u8>) -> Option<bool> {
        let d = self.rules.decide(key_of(content));
        // Kept, and not masked: as it is.
        if d.action == Action::Keep && !self.masking {
            return None;
        }
        // Dropped: nothing of it is read.
        if d.action == Action::Drop {
            self.count(d.rule);
            return Some(true);
        }
        let (mut key, mut value) = (None, None);
        for kv in fields(content) {
            match kv.tag {
                KV_KEY if key.is_none() => key = Some(kv),
                KV_VALUE if value.is_none() => value = Some(kv),
                _ => {}
            }
        }
        let key_bytes = key.as_ref().map_or(&[][..], |k| k.whole);
        match (d.action, value) {
            (Action::Drop, _) => {
                self.count(d.rule);
                Some(true)
            }
            (Action::Hash, Some(v)) => {
                // A string is hashed as its text, anything else as its encoding.
                let mut inner = fields(v.content);
                let input = match (inner.next(), inner.next()) {
                    (Some(s), None) if s.tag == ANY_STRING => s.content,
                    _ => v.content,
                };
                let at = open_field(out, LOG_ATTRIBUTE);
                out.extend_from_slice(key_bytes);
                let va = open_field(out, KV_VALUE);
                let sa = open_field(out, ANY_STRING);
                self.rules.hash_into(input, out);
                close_field(out, sa);
                close_field(out, va);
                close_field(out, at);
                self.count(d.rule);
                Some(true)
            }
            (Action::Keep | Action::Truncate(_), Some(v))
                if self.masking || matches!(d.action, Action::Truncate(_)) =>
            {
                let limit = match d.action {
                    Action::Truncate(n) => Some(n),
                    _ => None,
                };
                // The common case, one string short of any limit, without
                // the general rewrite (and as it is when unmasked).
                if let Some(text) = plain_string(v.content)
                    && limit.is_none_or(|n| text.len() <= n)
                {
                    let mut tmp = std::mem::take(&mut self.tmp);
                    let masked = self.masking && self.rules.mask(text, &mut tmp, &mut self.counts);
                    if masked {
                        let at = open_field(out, LOG_ATTRIBUTE);
                        out.extend_from_slice(key_bytes);
                        let va = open_field(out, KV_VALUE);
                        put_field(out, ANY_STRING, tmp.as_bytes());
                        close_field(out, va);
                        close_field(out, at);
                    }
                    self.tmp = tmp;
                    return masked.then_some(true);
                }
                let at = open_field(out, LOG_ATTRIBUTE);
                out.extend_from_slice(key_bytes);
                let va = open_field(out, KV_VALUE);
                self.truncated = false;
                let changed = self.any(v.content, out, limit);
                close_field(out, va);
                close_field(out, at);
                if self.truncated {
                    self.count(d.rule);
                }
                Some(changed)
            }
            _ => None,
        }
    }

    /// `AnyValue` content with every string masked (and cut to `limit`
    /// bytes); whether anything changed.
    fn any(&mut self, src: &[u8], out: &mut Vec<u8>, limit: Option<usize>) -> bool {
        let mut changed = false;
        for f in fields(src) {
            match f.tag {
                ANY_STRING => {
                    let Ok(s) = std::str::from_utf8(f.content) else {
                        out.extend_from_slice(f.whole);
                        continue;
                    };
                    let mut tmp = std::mem::take(&mut self.tmp);
                    let masked = self.masking && self.rules.mask(s, &mut tmp, &mut self.counts);
                    let text = if masked { tmp.as_str() } else { s };
                    let cut = limit.map_or(text, |n| truncate_utf8(text, n));
                    if cut.len() < text.len() {
                        self.truncated = true;
                    }
                    changed |= masked || cut.len() < text.len();
                    put_field(out, ANY_STRING, cut.as_bytes());
                    self.tmp = tmp;
                }
                ANY_ARRAY => changed |= self.list(f.content, out, ANY_ARRAY, limit, false),
                ANY_KVLIST => changed |= self.list(f.content, out, ANY_KVLIST, limit, true),
                _ => out.extend_from_slice(f.whole),
            }
        }
        changed
    }

    /// An `ArrayValue` (`kv` false) or `KeyValueList` (`kv` true) as field `tag`.
    fn list(&mut self, src: &[u8], out: &mut Vec<u8>, tag: u8, limit: Option<usize>, kv: bool) -> bool {
        let mut changed = false;
        let at = open_field(out, tag);
        for e in fields(src) {
            if e.tag != LIST_VALUE {
                out.extend_from_slice(e.whole);
                continue;
            }
            let ea = open_field(out, LIST_VALUE);
            if kv {
                for f in fields(e.content) {
                    if f.tag == KV_VALUE {
                        let va = open_field(out, KV_VALUE);
                        changed |= self.any(f.content, out, limit);
                        close_field(out, va);
                    } else {
                        out.extend_from_slice(f.whole);
                    }
                }
            } else {
                changed |= self.any(e.content, out, limit);
            }
            close_field(out, ea);
        }
        close_field(out, at);
        changed
    }
}
