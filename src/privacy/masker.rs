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

use std::borrow::Cow;

use regex_automata::meta;

use super::mask::{MAX_PASSES, MAX_PATTERN_BYTES, Pattern, luhn};

/// The patterns of a source, each with its counter index, and the marker.
#[derive(Debug, Clone)]
pub struct Masker {
    patterns: Vec<(Pattern, usize)>,
    /// All patterns in one regex, pattern ids in order; `None` if it could
    /// not be built within the size limit (then they run one by one).
    all: Option<meta::Regex>,
    /// Some pattern has no byte test: every string goes to the regex.
    always: bool,
    marker: String,
}

/// Which patterns changed the string being masked.
struct Seen(Vec<bool>);

impl Seen {
    fn mark(&mut self, n: usize, len: usize) {
        if self.0.is_empty() {
            self.0 = vec![false; len];
        }
        if let Some(s) = self.0.get_mut(n) {
            *s = true;
        }
    }

    /// The end of a masking: when a pattern matched, counts each pattern
    /// that did and writes the masked text into `out`; whether one did.
    fn finish(&self, masked: &str, patterns: &[(Pattern, usize)], out: &mut String, counts: &mut [u64]) -> bool {
        if self.0.is_empty() {
            return false;
        }
        for (seen, (_, counter)) in self.0.iter().zip(patterns) {
            if let Some(c) = counts.get_mut(*counter).filter(|_| *seen) {
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
        Self { patterns, all, always, marker }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern may match `b` (no false negatives): when not,
    /// no string within `b` needs masking.
    pub fn may_match(&self, b: &[u8]) -> bool {
        self.always || self.patterns.iter().any(|(p, _)| p.hinted(b))
    }

    /// Writes `s` masked into `out` (cleared first) when any pattern
    /// matched; whether one did. `counts[i]` counts the strings pattern
    /// `i` changed.
    pub fn mask(&self, s: &str, out: &mut String, counts: &mut [u64]) -> bool {
        if !self.may_match(s.as_bytes()) {
            return false;
        }
        let Some(all) = &self.all else { return self.one_by_one(s, out, counts) };
        let mut cur = Cow::Borrowed(s);
        let mut seen = Seen(Vec::new());
        for pass in 0..MAX_PASSES {
            if pass > 0 && !self.may_match(cur.as_bytes()) {
                break;
            }
            let (mut next, mut last, mut matched) = (String::new(), 0, false);
            for m in all.find_iter(cur.as_bytes()) {
                let n = m.pattern().as_usize();
                let Some(((p, _), text)) = self.patterns.get(n).zip(cur.get(m.range())) else { continue };
                if p.luhn() && !luhn(text) {
                    return self.one_by_one(s, out, counts);
                }
                next.push_str(cur.get(last..m.start()).unwrap_or_default());
                next.push_str(&self.marker);
                last = m.end();
                matched = true;
                seen.mark(n, self.patterns.len());
            }
            if !matched {
                break;
            }
            next.push_str(cur.get(last..).unwrap_or_default());
            if next == *cur {
                break;
            }
            cur = Cow::Owned(next);
        }
        seen.finish(&cur, &self.patterns, out, counts)
    }

    /// The patterns in order, each over the whole string, again until
    /// nothing changes (bounded).
    pub(super) fn one_by_one(&self, s: &str, out: &mut String, counts: &mut [u64]) -> bool {
        let mut cur = Cow::Borrowed(s);
        let mut seen = Seen(Vec::new());
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
