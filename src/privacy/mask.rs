//! Mask patterns: regular expressions whose matches in a string are
//! replaced by a fixed marker, with ready-made named ones.
//!
//! Masking ([`Masker`], in `masker.rs`) replaces every pattern's matches
//! and runs again until nothing matches (bounded), so the output holds no
//! match of any pattern and masking it again changes nothing (a property
//! test holds this). Named patterns use
//! ASCII classes and ASCII word boundaries: the faster automata apply, and
//! what they look for is ASCII anyway.

use std::borrow::Cow;

use regex::{Captures, NoExpand, Regex, RegexBuilder};

use super::MaskSpec;
pub use super::masker::Masker;

/// The named patterns: (name, regex, whether a match must pass the Luhn check).
pub const NAMED: &[(&str, &str, bool)] = &[
    ("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", false),
    // Atlassian account ids: `557058:` + a UUID, or the older 24 hex digits.
    (
        "account_id",
        r"(?-u:\b)(?:[0-9]{6}:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-f]{24})(?-u:\b)",
        false,
    ),
    // Authorization header values, JSON web tokens and Atlassian API tokens.
    (
        "token",
        r"(?-u:\b)(?:(?i-u:bearer|basic)[ \t]+[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|ATATT[A-Za-z0-9_=-]{16,})",
        false,
    ),
    (
        "ipv4",
        r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)",
        false,
    ),
    // Full form, or compressed with `::` and a group on at least one side
    // (a bare `::`, as in `ari:cloud:jira::site/...`, is not an address).
    (
        "ipv6",
        r"(?i-u:\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?:\b[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?::[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6}\b|\b[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6}::)",
        false,
    ),
    // 13 to 19 digits, spaces or dashes between, that pass the Luhn check.
    ("credit_card", r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)", true),
];

/// Cap on a user's compiled pattern: a config must not cost the process its memory.
pub(super) const MAX_PATTERN_BYTES: usize = 1 << 20;
/// Passes over one string before giving up on a fixed point (a pattern
/// that matches its own marker would otherwise loop).
pub(super) const MAX_PASSES: usize = 4;

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    re: Regex,
    luhn: bool,
    /// For a named pattern: a byte test every match passes. Most strings
    /// fail it, and it costs less than a regex call on a short string.
    hint: Option<fn(&[u8]) -> bool>,
    /// For some named patterns: where a match may start (see [`Starts`]).
    starts: Option<Starts>,
    /// The name of a named pattern.
    named: Option<&'static str>,
}

/// `starts(b, from)`: the first position at or after `from` where a match
/// of the pattern may start in `b`, and where to look for the next one
/// when none starts there: no match starts in `from..start`, nor in
/// `start..resume` if none starts at `start` (`resume > start`); `None`
/// when no match starts at or after `from`. A search anchored at such
/// positions finds what a scan of the whole string finds, without
/// scanning the rest, and knows where each match starts without a scan
/// backwards.
pub(super) type Starts = fn(&[u8], usize) -> Option<(usize, usize)>;

/// Where matches may start, by the pattern's name.
fn starts(name: &str) -> Option<Starts> {
    match name {
        "email" => Some(email_start),
        "token" => Some(token_start),
        _ => None,
    }
}

/// A byte of an email's local part (`[A-Za-z0-9._%+-]`).
fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// An email's local part is the run of local-part bytes right before an
/// `@` (none of them is an `@`): a match starting in `from..` starts at
/// the first `@` after `from` that has such a run, where the run starts
/// (not before `from`), or nowhere before that `@`. Every start within
/// one run is followed by the same `@` and domain, so when none matches
/// at the run's start, none does before the `@`.
fn email_start(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = b.get(from..)?;
    memchr::memchr_iter(b'@', rest).find_map(|a| {
        let run = rest.get(..a)?.iter().rev().take_while(|&&c| is_local(c)).count();
        (run > 0).then(|| (from + a - run, from + a))
    })
}

/// A token starts with `bearer` or `basic` (any case) right before a
/// blank, with `eyJ` or with `ATATT`. None of these words holds a blank or
/// a `J`, so the first blank or `J` that ends one gives the first such
/// word.
fn token_start(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = b.get(from..)?;
    let start = |i: usize| match rest.get(i) {
        Some(b'J') => ends(rest, i, b"ey").then(|| i - 2),
        Some(b'A') => (rest.get(i..i + 5) == Some(b"ATATT")).then_some(i),
        _ if ends(rest, i, b"bearer") => Some(i - 6),
        _ => ends(rest, i, b"basic").then(|| i - 5),
    };
    if rest.len() <= SHORT {
        // In order of the bytes: a word found at a blank or `J` starts
        // before any later one, and `ATATT` starts where it is found.
        let at = rest.iter().enumerate().filter(|&(_, &c)| trigger(c) && c != b'@').find_map(|(i, _)| start(i))?;
        return Some((from + at, from + at + 1));
    }
    let word = memchr::memchr3_iter(b' ', b'\t', b'J', rest).find_map(start);
    let atatt = memchr::memchr_iter(b'A', rest).find_map(start);
    let at = match (word, atatt) {
        (Some(w), Some(a)) => w.min(a),
        (w, a) => w.or(a)?,
    };
    Some((from + at, from + at + 1))
}

/// What every match of a named pattern holds, by the pattern's name.
fn hint(name: &str) -> Option<fn(&[u8]) -> bool> {
    match name {
        "email" => Some(|b| memchr::memchr(b'@', b).is_some()),
        "token" => Some(token_hint),
        "ipv4" => Some(|b| memchr::memchr(b'.', b).is_some()),
        "ipv6" => Some(|b| memchr::memchr_iter(b':', b).nth(1).is_some()),
        _ => None,
    }
}

/// `bearer` or `basic` in any case right before a blank, `eyJ` or
/// `ATATT`: candidates found by a vectorised byte search, then checked (no
/// substring searcher per call: building one costs more than a short
/// string's whole scan). Blanks rather than `b`: hex ids are full of `b`.
fn token_hint(b: &[u8]) -> bool {
    memchr::memchr3_iter(b' ', b'\t', b'J', b).any(|i| match b.get(i) {
        Some(b'J') => ends(b, i, b"ey"),
        _ => ends(b, i, b"bearer") || ends(b, i, b"basic"),
    }) || memchr::memchr_iter(b'A', b).any(|i| b.get(i..i + 5) == Some(b"ATATT"))
}

/// Whether `lit` (any case) ends right before `i` in `b`.
fn ends(b: &[u8], i: usize, lit: &[u8]) -> bool {
    i >= lit.len() && b.get(i - lit.len()..i).is_some_and(|w| w.eq_ignore_ascii_case(lit))
}

/// Below this length a string's bytes are looked at one by one rather
/// than with vectorised searches: a body's blanks would stop a search
/// several times, and each restart costs more than a short loop.
const SHORT: usize = 192;

/// The bytes at which the email and token tests look closer: `@`, the
/// blanks, `J` (of `eyJ`) and `A` (of `ATATT`); one load per byte.
static TRIGGERS: [bool; 256] = {
    let mut t = [false; 256];
    t[b'@' as usize] = true;
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'J' as usize] = true;
    t[b'A' as usize] = true;
    t
};

/// Whether `c` is one of [`TRIGGERS`].
fn trigger(c: u8) -> bool {
    TRIGGERS.get(usize::from(c)).copied().unwrap_or(false)
}

/// The email test or the token test: a short string in one loop, a long
/// one in two byte searches instead of three (`@` with the blanks, `J`
/// with `A`).
pub(super) fn email_or_token_hint(b: &[u8]) -> bool {
    if b.len() <= SHORT {
        return b.iter().enumerate().any(|(i, &c)| {
            trigger(c)
                && match c {
                    b'@' => true,
                    b' ' | b'\t' => ends(b, i, b"bearer") || ends(b, i, b"basic"),
                    b'J' => ends(b, i, b"ey"),
                    _ => b.get(i..i + 5) == Some(b"ATATT"),
                }
        });
    }
    memchr::memchr3_iter(b'@', b' ', b'\t', b)
        .any(|i| b.get(i) == Some(&b'@') || ends(b, i, b"bearer") || ends(b, i, b"basic"))
        || memchr::memchr2_iter(b'J', b'A', b).any(|i| match b.get(i) {
            Some(b'J') => ends(b, i, b"ey"),
            _ => b.get(i..i + 5) == Some(b"ATATT"),
        })
}

impl Pattern {
    /// Compiles a named or custom pattern; the error says why it is refused.
    pub fn compile(spec: &MaskSpec) -> Result<Self, String> {
        let (text, luhn, named) = match spec {
            MaskSpec::Named(name) => match NAMED.iter().find(|(n, _, _)| n == name) {
                Some((n, re, luhn)) => (*re, *luhn, Some(*n)),
                None => {
                    let known: Vec<&str> = NAMED.iter().map(|(n, _, _)| *n).collect();
                    return Err(format!("unknown pattern `{name}`; named ones are {}", known.join(", ")));
                }
            },
            MaskSpec::Custom { name, pattern } => {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                    return Err("name: letters, digits, `_`, `.` and `-` only".into());
                }
                (pattern.as_str(), false, None)
            }
        };
        let re = RegexBuilder::new(text)
            .size_limit(MAX_PATTERN_BYTES)
            .build()
            .map_err(|e| format!("invalid regex: {}", one_line(&e.to_string())))?;
        if re.is_match("") {
            return Err("the pattern matches the empty string".into());
        }
        let (hint, starts) = match spec {
            MaskSpec::Named(name) => (hint(name), starts(name)),
            MaskSpec::Custom { .. } => (None, None),
        };
        Ok(Self { re, luhn, hint, starts, named })
    }

    pub fn matches(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// The pattern's regex text.
    pub(super) fn as_str(&self) -> &str {
        self.re.as_str()
    }

    /// Whether matches must pass the Luhn check.
    pub(super) fn luhn(&self) -> bool {
        self.luhn
    }

    /// The name of a named pattern.
    pub(super) fn named(&self) -> Option<&'static str> {
        self.named
    }

    /// Where its matches may start, when known.
    pub(super) fn starts(&self) -> Option<Starts> {
        self.starts
    }

    /// Whether the pattern has a byte test.
    pub(super) fn has_hint(&self) -> bool {
        self.hint.is_some()
    }

    /// Whether `b` passes the pattern's byte test (true without one).
    pub(super) fn hinted(&self, b: &[u8]) -> bool {
        self.hint.is_none_or(|h| h(b))
    }

    /// `s` with this pattern's matches replaced by `marker`, when any was.
    pub(super) fn replace(&self, s: &str, marker: &str) -> Option<String> {
        if !self.hinted(s.as_bytes()) {
            return None;
        }
        let out = if self.luhn {
            self.re.replace_all(s, |c: &Captures<'_>| {
                let m = c.get(0).map_or("", |m| m.as_str());
                if luhn(m) { marker.to_string() } else { m.to_string() }
            })
        } else {
            self.re.replace_all(s, NoExpand(marker))
        };
        match out {
            Cow::Owned(o) if o != s => Some(o),
            _ => None,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The Luhn checksum over the digits of `s`.
pub(super) fn luhn(s: &str) -> bool {
    let mut sum = 0u32;
    for (i, d) in s.bytes().rev().filter(u8::is_ascii_digit).map(|b| u32::from(b - b'0')).enumerate() {
        sum += if i % 2 == 1 { [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][d as usize] } else { d };
    }
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(names: &[&str]) -> Masker {
        super::super::masker::named(names)
    }

    fn masked(m: &Masker, s: &str) -> String {
        let mut out = String::new();
        let mut counts = vec![0; 8];
        if m.mask(s, &mut out, &mut counts) { out } else { s.to_string() }
    }

    #[test]
    fn named_patterns_find_what_they_name() {
        let all = masker(&["email", "account_id", "token", "ipv4", "ipv6", "credit_card"]);
        let cases = [
            ("mail jane.doe+x@example.co.uk now", "mail [redacted] now"),
            ("user 557058:0a1b2c3d-1111-2222-3333-444455556666 did", "user [redacted] did"),
            ("old 5b10ac8d82e05b22cc7d4ef5 id", "old [redacted] id"),
            ("Authorization: Bearer abc.DEF-123_x", "Authorization: [redacted]"),
            ("basic dXNlcjpwYXNz==", "[redacted]"),
            ("jwt eyJhbGciOi.eyJzdWIiOi.sig-_x", "jwt [redacted]"),
            ("from 192.168.10.254:8080", "from [redacted]:8080"),
            ("v6 fe80::1 and 2001:db8:0:0:0:0:2:1", "v6 [redacted] and [redacted]"),
            ("card 4111 1111 1111 1111 ok", "card [redacted] ok"),
            // Not a card: the Luhn check fails.
            ("n 4111 1111 1111 1112", "n 4111 1111 1111 1112"),
            // A site id keeps its `::`.
            ("ari:cloud:jira::site/abc-123", "ari:cloud:jira::site/abc-123"),
            ("version 1.203.0 at 12:30:45", "version 1.203.0 at 12:30:45"),
        ];
        for (input, want) in cases {
            assert_eq!(masked(&all, input), want, "{input}");
        }
    }

    #[test]
    fn hints_pass_every_match() {
        for (name, _, _) in NAMED {
            let p = Pattern::compile(&MaskSpec::Named(name.to_string())).unwrap_or_else(|e| panic!("{e}"));
            let Some(h) = p.hint else { continue };
            for s in [
                "a@b.cc",
                "BEARER x1",
                "Basic eA==",
                "eyJa1b2.eyJc3d4.x",
                "ATATT3xFfGF0abcdefghijklmn",
                "10.0.0.1",
                "fe80::1",
                "1:2:3:4:5:6:7:8",
            ] {
                if p.re.is_match(s) {
                    assert!(h(s.as_bytes()), "{name}: {s}");
                }
            }
        }
    }

    #[test]
    fn counts_each_string_once_per_pattern() {
        let m = masker(&["email", "token"]);
        let mut out = String::new();
        let mut counts = vec![0; 2];
        assert!(m.mask("a@b.cc c@d.ee Bearer x", &mut out, &mut counts));
        assert_eq!(counts, [1, 1]);
        assert!(!m.mask("nothing here", &mut out, &mut counts));
        assert_eq!(counts, [1, 1]);
    }

    #[test]
    fn refuses_bad_patterns() {
        let bad = [
            MaskSpec::Named("phone".into()),
            MaskSpec::Custom { name: "x".into(), pattern: "(".into() },
            MaskSpec::Custom { name: "x".into(), pattern: "a*".into() },
            MaskSpec::Custom { name: "bad name".into(), pattern: "a".into() },
        ];
        for spec in bad {
            assert!(Pattern::compile(&spec).is_err(), "{spec:?}");
        }
        assert!(Pattern::compile(&MaskSpec::Custom { name: "order".into(), pattern: "ORD-[0-9]+".into() }).is_ok());
    }
}
