//! A JSON lexer over a page's bytes: tokens, strings (unescaped into an
//! output buffer), numbers, and skipping of values the schema walk does
//! not need. Safe on hostile input: the page is checked as UTF-8 once,
//! nesting stops at [`MAX_DEPTH`], every error is a value with its byte
//! offset, and nothing indexes past the input.

use std::borrow::Cow;

use crate::forge::model::Num;

/// Deepest nesting of objects and arrays accepted (serde_json's default too).
pub(super) const MAX_DEPTH: u32 = 128;

/// The first `"`, `\\` or control character (which JSON forbids in
/// strings) in `s`: eight bytes per step, then byte by byte.
pub(super) fn find_stop(s: &[u8]) -> Option<usize> {
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

/// A page that is not the JSON the API documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct WireError {
    pub what: Cow<'static, str>,
    pub at: usize,
}

pub(super) struct Parser<'a> {
    pub(super) s: &'a str,
    pub(super) b: &'a [u8],
    pub(super) i: usize,
    pub(super) depth: u32,
}

impl<'a> Parser<'a> {
    /// A parser at the start of a page, which must be UTF-8.
    pub(super) fn new(bytes: &'a [u8]) -> Result<Self, WireError> {
        let s = std::str::from_utf8(bytes).map_err(|e| WireError { what: "not UTF-8".into(), at: e.valid_up_to() })?;
        Ok(Parser { s, b: bytes, i: 0, depth: 0 })
    }

    /// Checks that only whitespace follows the page.
    pub(super) fn end(&mut self) -> Result<(), WireError> {
        self.ws();
        if self.i != self.b.len() {
            return Err(self.err("trailing characters after the page"));
        }
        Ok(())
    }

    pub(super) fn err(&self, what: impl Into<Cow<'static, str>>) -> WireError {
        WireError { what: what.into(), at: self.i }
    }

    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    pub(super) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Consumes `{` or `[` (after whitespace) and enters one level.
    pub(super) fn open(&mut self, c: u8, what: &'static str) -> Result<(), WireError> {
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
    pub(super) fn next_key(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>, WireError> {
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
    pub(super) fn next_elem(&mut self, first: &mut bool) -> Result<bool, WireError> {
        self.more(b']', first)
    }

    /// Past the `,` before the next member of an object or array, or past
    /// its closing `close` (then `false`, one level left).
    pub(super) fn more(&mut self, close: u8, first: &mut bool) -> Result<bool, WireError> {
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
    pub(super) fn null(&mut self) -> Result<bool, WireError> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            return Ok(true);
        }
        Ok(false)
    }

    pub(super) fn literal(&mut self, word: &'static str) -> Result<(), WireError> {
        if self.b.get(self.i..self.i + word.len()) != Some(word.as_bytes()) {
            return Err(self.err("expected a value"));
        }
        self.i += word.len();
        Ok(())
    }

    /// A string (the opening quote next), borrowed unless it has escapes.
    pub(super) fn str(&mut self) -> Result<Cow<'a, str>, WireError> {
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
    pub(super) fn plain_run(&mut self) -> Result<usize, WireError> {
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
    pub(super) fn unescape_rest(&mut self, out: &mut Vec<u8>) -> Result<(), WireError> {
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
    pub(super) fn unicode_escape(&mut self) -> Result<char, WireError> {
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

    pub(super) fn opt_str(&mut self) -> Result<Option<Cow<'a, str>>, WireError> {
        if self.null()? { Ok(None) } else { self.str().map(Some) }
    }

    /// A number or a decimal string; `None` for `null`.
    pub(super) fn opt_num(&mut self) -> Result<Option<Num<'a>>, WireError> {
        match self.peek() {
            Some(b'"') => self.str().map(|s| Some(Num::Str(s))),
            Some(b'-' | b'0'..=b'9') => self.number().map(Some),
            Some(b'n') => self.null().map(|_| None),
            _ => Err(self.err("expected a number or a string")),
        }
    }

    /// A JSON number: an integer when it has no fraction or exponent and fits.
    pub(super) fn number(&mut self) -> Result<Num<'a>, WireError> {
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
        if !float && negative && text.bytes().skip(1).all(|c| c == b'0') {
            // serde_json (the reference) reads `-0` as the float -0.0.
            return Ok(Num::Float(-0.0));
        }
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
    pub(super) fn skip(&mut self) -> Result<(), WireError> {
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
}
