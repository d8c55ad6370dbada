//! The masking of a string by a source's patterns: a byte prefilter, then
//! one combined pass of all patterns, repeated until nothing matches.
//!
//! Every named pattern has a byte test that all its matches pass (`@` for
//! emails, `bearer`/`basic` before a blank, `eyJ` or `ATATT` for tokens):
//! a string that fails every pattern's test costs one short scan per
//! pattern and no regex call. Otherwise one multi-pattern regex finds the
//! leftmost match of any pattern in a single scan and tells which pattern
//! it was (for the per-rule counters); its matches are replaced in one
//! copy. A credit-card candidate that fails the Luhn check is left as it
//! is; since it may hide another pattern's match, such a string is masked
//! again pattern by pattern, in order, as [`Pattern`] does alone.
//!
//! When every pattern knows where its matches may start (emails and
//! tokens do, [`Starts`]), the regex is not run over the whole string:
//! a search anchored at each such position, in order, finds the same
//! matches (the leftmost match starts at one of them; anchored, the
//! search knows where it starts and needs no scan backwards).

use std::borrow::Cow;

use regex_automata::{Anchored, Input, Match, meta};

use super::mask::{MAX_PASSES, MAX_PATTERN_BYTES, Pattern, Starts, email_or_token_hint, luhn};

/// Most patterns whose start positions are followed at once.
const MAX_STARTS: usize = 4;

/// The patterns of a source, each with its counter index, and the marker.
#[derive(Debug, Clone)]
pub struct Masker {
    patterns: Vec<(Pattern, usize)>,
    /// All patterns in one regex, pattern ids in order; `None` if it could
    /// not be built within the size limit (then they run one by one).
    all: Option<meta::Regex>,
    /// Some pattern has no byte test: every string goes to the regex.
    always: bool,
    /// The patterns are emails and tokens (`privacy: recommended`): their
    /// byte tests run as one ([`email_or_token_hint`]).
    email_or_token: bool,
    /// Where each pattern's matches may start, when every pattern knows
    /// (and there are at most [`MAX_STARTS`]).
    starts: Option<Vec<Starts>>,
    marker: String,
}

/// The leftmost-first matches of `all` in `hay`, as `find_iter` finds
/// them, from searches anchored where some pattern's match may start.
struct Anchors<'a> {
    all: &'a meta::Regex,
    hay: &'a [u8],
    starts: &'a [Starts],
    /// Per pattern: its next possible start and where to look past it.
    next: [Option<(usize, usize)>; MAX_STARTS],
    /// Where the next match may start (the end of the last one).
    at: usize,
}

impl<'a> Anchors<'a> {
    fn new(all: &'a meta::Regex, hay: &'a [u8], starts: &'a [Starts]) -> Self {
        let mut next = [None; MAX_STARTS];
        for (n, f) in next.iter_mut().zip(starts) {
            *n = f(hay, 0);
        }
        Self { all, hay, starts, next, at: 0 }
    }
}

impl Iterator for Anchors<'_> {
    type Item = Match;

    fn next(&mut self) -> Option<Match> {
        // Starts before the last match's end are past: look again from there.
        for (n, f) in self.next.iter_mut().zip(self.starts) {
            if n.is_some_and(|(s, _)| s < self.at) {
                *n = f(self.hay, self.at);
            }
        }
        loop {
            let start = self.next.iter().flatten().map(|&(s, _)| s).min()?;
            let input = Input::new(self.hay).span(start..self.hay.len()).anchored(Anchored::Yes);
            if let Some(m) = self.all.search(&input) {
                self.at = m.end();
                return Some(m);
            }
            // Nothing starts there: each pattern that might have, looks on.
            for (n, f) in self.next.iter_mut().zip(self.starts) {
                if let Some((s, resume)) = *n
                    && s == start
                {
                    *n = f(self.hay, resume);
                }
            }
        }
    }
}

/// What one pass of the combined regex did to a string.
enum Pass {
    /// No pattern matched.
    Unchanged,
    /// A credit-card candidate failed the Luhn check.
    Luhn,
    /// The string with the matches replaced.
    Masked(String),
}

/// Which patterns changed the string being masked (the first 64 as
/// bits, without an allocation per masked string).
#[derive(Default)]
struct Seen {
    marked: bool,
    bits: u64,
    more: Vec<bool>,
}

impl Seen {
    fn mark(&mut self, n: usize, len: usize) {
        self.marked = true;
        if n < 64 {
            self.bits |= 1 << n;
            return;
        }
        if self.more.is_empty() {
            self.more = vec![false; len];
        }
        if let Some(s) = self.more.get_mut(n) {
            *s = true;
        }
    }

    fn seen(&self, n: usize) -> bool {
        if n < 64 { self.bits >> n & 1 == 1 } else { self.more.get(n).copied().unwrap_or(false) }
    }

    /// The end of a masking: when a pattern matched, counts each pattern
    /// that did and writes the masked text into `out`; whether one did.
    fn finish(&self, masked: &str, patterns: &[(Pattern, usize)], out: &mut String, counts: &mut [u64]) -> bool {
        if !self.marked {
            return false;
        }
        for (n, (_, counter)) in patterns.iter().enumerate() {
            if let Some(c) = counts.get_mut(*counter).filter(|_| self.seen(n)) {
                *c += 1;
            }
        }
        out.clear();
        out.push_str(masked);
        true
    }
}

impl Masker {
    pub fn new(patterns: Vec<(Pattern, usize)>, marker: String) -> Self {
        let texts: Vec<&str> = patterns.iter().map(|(p, _)| p.as_str()).collect();
        let limit = MAX_PATTERN_BYTES.saturating_mul(texts.len().max(1));
        let all =
            meta::Regex::builder().configure(meta::Config::new().nfa_size_limit(Some(limit))).build_many(&texts).ok();
        let always = patterns.iter().any(|(p, _)| !p.has_hint());
        let named: Option<Vec<&str>> = patterns.iter().map(|(p, _)| p.named()).collect();
        let email_or_token = named.is_some_and(|n| {
            n.contains(&"email") && n.contains(&"token") && n.iter().all(|n| matches!(*n, "email" | "token"))
        });
        let starts: Option<Vec<Starts>> = patterns.iter().map(|(p, _)| p.starts()).collect();
        let starts = starts.filter(|s| s.len() <= MAX_STARTS);
        Self { patterns, all, always, email_or_token, starts, marker }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern may match `b` (no false negatives): when not,
    /// no string within `b` needs masking.
    pub fn may_match(&self, b: &[u8]) -> bool {
        if self.email_or_token {
            return email_or_token_hint(b);
        }
        self.always || self.patterns.iter().any(|(p, _)| p.hinted(b))
    }

    /// Writes `s` masked into `out` (cleared first) when any pattern
    /// matched; whether one did. `counts[i]` counts the strings pattern
    /// `i` changed.
    pub fn mask(&self, s: &str, out: &mut String, counts: &mut [u64]) -> bool {
        self.may_match(s.as_bytes()) && self.mask_passed(s, out, counts)
    }

    /// [`Self::mask`] of a string known to pass [`Self::may_match`] (or
    /// to be within bytes that do: the passes find no match where the
    /// test would have failed, at some cost).
    pub fn mask_passed(&self, s: &str, out: &mut String, counts: &mut [u64]) -> bool {
        let Some(all) = &self.all else { return self.one_by_one(s, out, counts) };
        let mut cur = Cow::Borrowed(s);
        let mut seen = Seen::default();
        for pass in 0..MAX_PASSES {
            if pass > 0 && !self.may_match(cur.as_bytes()) {
                break;
            }
            let hay = cur.as_bytes();
            let done = match &self.starts {
                Some(starts) => self.pass(&cur, Anchors::new(all, hay, starts), &mut seen),
                None => self.pass(&cur, all.find_iter(hay), &mut seen),
            };
            let next = match done {
                Pass::Unchanged => break,
                Pass::Luhn => return self.one_by_one(s, out, counts),
                Pass::Masked(next) => next,
            };
            if next == *cur {
                break;
            }
            cur = Cow::Owned(next);
        }
        seen.finish(&cur, &self.patterns, out, counts)
    }

    /// Replaces `matches` (of the combined regex, in order) in `cur` by the marker.
    fn pass(&self, cur: &str, matches: impl Iterator<Item = Match>, seen: &mut Seen) -> Pass {
        let (mut next, mut last, mut matched) = (String::with_capacity(cur.len() + self.marker.len()), 0, false);
        for m in matches {
            let n = m.pattern().as_usize();
            let Some(((p, _), text)) = self.patterns.get(n).zip(cur.get(m.range())) else { continue };
            if p.luhn() && !luhn(text) {
                return Pass::Luhn;
            }
            next.push_str(cur.get(last..m.start()).unwrap_or_default());
            next.push_str(&self.marker);
            last = m.end();
            matched = true;
            seen.mark(n, self.patterns.len());
        }
        if !matched {
            return Pass::Unchanged;
        }
        next.push_str(cur.get(last..).unwrap_or_default());
        Pass::Masked(next)
    }

    /// The patterns in order, each over the whole string, again until
    /// nothing changes (bounded).
    pub(super) fn one_by_one(&self, s: &str, out: &mut String, counts: &mut [u64]) -> bool {
        let mut cur = Cow::Borrowed(s);
        let mut seen = Seen::default();
        for _ in 0..MAX_PASSES {
            let mut again = false;
            for (n, (p, _)) in self.patterns.iter().enumerate() {
                if let Some(next) = p.replace(&cur, &self.marker) {
                    cur = Cow::Owned(next);
                    again = true;
                    seen.mark(n, self.patterns.len());
                }
            }
            if !again {
                break;
            }
        }
        seen.finish(&cur, &self.patterns, out, counts)
    }
}

/// A masker of the named patterns, marker `[redacted]` (tests).
#[cfg(test)]
pub(crate) fn named(names: &[&str]) -> Masker {
    let patterns = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let spec = crate::privacy::MaskSpec::Named(n.to_string());
            (Pattern::compile(&spec).unwrap_or_else(|e| panic!("{e}")), i)
        })
        .collect();
    Masker::new(patterns, "[redacted]".into())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn masker(names: &[&str]) -> Masker {
        named(names)
    }

    /// Pieces that make and break emails and tokens.
    const PIECES: &[&str] = &[
        "a",
        "b",
        "e",
        "r",
        "s",
        "i",
        "c",
        "x",
        "Z",
        "0",
        "9",
        ".",
        "-",
        "_",
        "%",
        "+",
        "/",
        "=",
        "~",
        "@",
        " ",
        "\t",
        "\"",
        ":",
        "é",
        "bearer",
        "Bearer",
        "BEARER",
        "basic",
        "Basic",
        "bAsIc",
        "eyJ",
        "ey",
        "J",
        "ATATT",
        "ATAT",
        "jane.doe",
        "@example.com",
        "@x.y",
        "@-.co",
        ".com",
        "sk0123456789abcdefghij",
        "xbearer",
        "[redacted]",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..120).prop_map(|v| v.concat())
    }

    fn spans(ms: impl Iterator<Item = Match>) -> Vec<(usize, usize, usize)> {
        ms.map(|m| (m.pattern().as_usize(), m.start(), m.end())).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Anchored at the possible starts, the search finds what a scan
        /// of the whole string finds, pattern for pattern.
        #[test]
        fn anchored_searches_find_what_the_scan_finds(s in text(), order in any::<bool>()) {
            let m = if order { masker(&["email", "token"]) } else { masker(&["token", "email"]) };
            let (Some(all), Some(starts)) = (&m.all, &m.starts) else { panic!("both patterns have starts") };
            let hay = s.as_bytes();
            prop_assert_eq!(spans(Anchors::new(all, hay, starts)), spans(all.find_iter(hay)), "{:?}", s);
            let mut scan = m.clone();
            scan.starts = None;
            scan.email_or_token = false;
            prop_assert_eq!(m.may_match(hay), scan.may_match(hay));
            let (mut a, mut b) = (String::new(), String::new());
            let (mut ca, mut cb) = (vec![0; 2], vec![0; 2]);
            prop_assert_eq!(m.mask(&s, &mut a, &mut ca), scan.mask(&s, &mut b, &mut cb));
            prop_assert_eq!(a, b);
            prop_assert_eq!(ca, cb);
        }
    }

    #[test]
    fn only_emails_and_tokens_know_their_starts() {
        assert!(masker(&["email", "token"]).starts.is_some());
        assert!(masker(&["email", "token", "email"]).email_or_token);
        assert!(!masker(&["email"]).email_or_token);
        assert!(!masker(&["email", "token", "ipv4"]).email_or_token);
        assert!(masker(&["email", "ipv4"]).starts.is_none());
        assert!(masker(&["token", "credit_card"]).starts.is_none());
    }
}
