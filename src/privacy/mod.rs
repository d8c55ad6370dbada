//! Privacy rules: what may leave the process (DESIGN.md 14).
//!
//! Forge records carry what customers' users typed: the `arguments`
//! attribute holds a function's input, bodies hold whatever the app
//! logged. A source's rules drop, hash (keyed HMAC-SHA256) or truncate
//! attributes by key, keep only listed keys (allow-list mode), and mask
//! patterns in the body and in string attribute values. The page decoder
//! applies them while it transcodes a page ([`crate::convert`]); the
//! record's fingerprint is still taken from the record as the API sent it,
//! so changing the rules neither re-delivers nor drops anything.
//!
//! [`PrivacySpec`] is the validated configuration (printable, comparable;
//! the HMAC key is a [`Secret`]); [`Rules`] is its compiled form, built
//! once at start; [`Privacy`] holds both for a source.
//!
//! - [`glob`]: attribute key patterns (`*`, `?`);
//! - [`mask`]: the named patterns and the masking of a string;
//! - [`text`]: truncation on a UTF-8 boundary and the keyed hash.

pub mod glob;
pub mod mask;
mod masker;
pub mod text;

use std::sync::Arc;

use serde::Serialize;

use crate::secret::Secret;

/// The preset behind `privacy: recommended`.
pub const RECOMMENDED: &str = "recommended";
/// What masked text is replaced with, unless configured.
pub const DEFAULT_MARKER: &str = "[redacted]";
/// What a hashed value starts with, unless configured.
pub const DEFAULT_HASH_PREFIX: &str = "hmac:";
/// A shorter HMAC key could be guessed; a site id's hash must not be reversible.
pub const MIN_KEY_BYTES: usize = 16;
/// The rule name counted for attributes dropped because no rule lists them
/// while `keep` rules are set.
pub const ALLOW_LIST_RULE: &str = "allow_list";

/// What an attribute rule does to the attributes whose key it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Drop,
    /// Replaced by the keyed hash of the value, as hex with the prefix.
    Hash,
    /// String values cut to at most this many bytes, on a UTF-8 boundary.
    Truncate(usize),
    /// Listed: survives allow-list mode (its strings are still masked).
    Keep,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Drop => "drop",
            Action::Hash => "hash",
            Action::Truncate(_) => "truncate",
            Action::Keep => "keep",
        }
    }
}

/// An attribute rule: a key (exact, or a glob with `*` and `?`) and its action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttrRule {
    pub key: String,
    pub action: Action,
}

/// A mask pattern: a named one ([`mask::NAMED`]) or the user's own regex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MaskSpec {
    Named(String),
    Custom { name: String, pattern: String },
}

impl MaskSpec {
    pub fn name(&self) -> &str {
        match self {
            MaskSpec::Named(n) => n,
            MaskSpec::Custom { name, .. } => name,
        }
    }
}

/// A source's validated rules, presets expanded. The first attribute rule
/// whose key matches decides; masks run in order over every string of the
/// body and of the attributes that are neither dropped nor hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PrivacySpec {
    pub attributes: Vec<AttrRule>,
    pub mask: Vec<MaskSpec>,
    pub marker: String,
    pub hash_key: Option<Secret>,
    pub hash_prefix: String,
}

impl PrivacySpec {
    /// No rule at all: records go out as the API sent them.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.mask.is_empty()
    }

    /// The rules of a preset, `None` for an unknown name.
    pub fn preset(name: &str) -> Option<(Vec<AttrRule>, Vec<MaskSpec>)> {
        match name {
            RECOMMENDED => Some((
                vec![AttrRule { key: "arguments".into(), action: Action::Drop }],
                vec![MaskSpec::Named("email".into()), MaskSpec::Named("token".into())],
            )),
            "none" => Some((Vec::new(), Vec::new())),
            _ => None,
        }
    }

    /// Compiles the rules; each error names the rule's position
    /// (`attributes[1]`, `mask[0]`) and what is wrong, all of them at once.
    pub fn compile(&self) -> Result<Option<Rules>, Vec<(String, String)>> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut errs = Vec::new();
        let mut names = Vec::new();
        let mut attrs = Vec::new();
        for (i, r) in self.attributes.iter().enumerate() {
            if r.key.is_empty() {
                errs.push((format!("attributes[{i}].key"), "is empty".into()));
            }
            if r.action == Action::Truncate(0) {
                errs.push((format!("attributes[{i}].max_bytes"), "must be at least 1".into()));
            }
            attrs.push((glob::Glob::new(&r.key), r.action, names.len()));
            names.push(format!("{}:{}", r.action.name(), r.key));
        }
        let mut allow_list = None;
        if self.attributes.iter().any(|r| r.action == Action::Keep) {
            allow_list = Some(names.len());
            names.push(ALLOW_LIST_RULE.into());
        }
        let hashes = self.attributes.iter().position(|r| r.action == Action::Hash);
        let key = match (&self.hash_key, hashes) {
            (Some(k), _) if !k.is_empty() && k.expose().len() < MIN_KEY_BYTES => {
                errs.push(("hash_key".into(), format!("must be at least {MIN_KEY_BYTES} bytes")));
                None
            }
            (Some(k), _) if !k.is_empty() => Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k.expose().as_bytes())),
            (_, Some(i)) => {
                errs.push((
                    format!("attributes[{i}]"),
                    "hash needs privacy.hash_key (a secret, e.g. ${env:PRIVACY_HASH_KEY})".into(),
                ));
                None
            }
            _ => None,
        };
        let mut masks = Vec::new();
        for (i, m) in self.mask.iter().enumerate() {
            match mask::Pattern::compile(m) {
                // A marker the pattern matches would be masked again and again.
                Ok(compiled) if compiled.matches(&self.marker) => {
                    errs.push((format!("mask[{i}]"), "matches the marker; choose another marker".into()));
                }
                Ok(compiled) => masks.push((compiled, names.len())),
                Err(e) => errs.push((format!("mask[{i}]"), e)),
            }
            names.push(format!("mask:{}", m.name()));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let masker = mask::Masker::new(masks, self.marker.clone());
        let key_lens = attrs.iter().try_fold(0u64, |lens, (g, _, _)| g.exact_len().map(|n| lens | len_bit(n)));
        Ok(Some(Rules { attrs, key_lens, allow_list, masker, key, prefix: self.hash_prefix.clone(), names }))
    }
}

/// Compiled rules. Counters are indexed like [`Rules::names`].
#[derive(Debug)]
pub struct Rules {
    attrs: Vec<(glob::Glob, Action, usize)>,
    /// When every attribute rule is an exact key: the lengths of the keys
    /// ([`len_bit`]), so a key of another length is decided at once.
    key_lens: Option<u64>,
    allow_list: Option<usize>,
    pub(crate) masker: mask::Masker,
    key: Option<ring::hmac::Key>,
    prefix: String,
    names: Vec<String>,
}

/// What happens to one attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The counter of the rule that decided; `None`: no rule matched.
    pub rule: Option<usize>,
}

impl Rules {
    /// The metric label of each rule (`drop:arguments`, `mask:email`, `allow_list`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether any mask pattern is set (the string pass runs only then).
    pub fn masks(&self) -> bool {
        !self.masker.is_empty()
    }

    /// Whether any attribute rule is set.
    pub fn attribute_rules(&self) -> bool {
        !self.attrs.is_empty()
    }

    /// The first rule matching `key`; unmatched keys are kept, or dropped
    /// in allow-list mode.
    #[inline]
    pub fn decide(&self, key: &[u8]) -> Decision {
        if self.key_lens.is_none_or(|lens| lens & len_bit(key.len()) != 0) {
            return self.decide_by_rules(key);
        }
        self.unmatched()
    }

    fn decide_by_rules(&self, key: &[u8]) -> Decision {
        for (glob, action, rule) in &self.attrs {
            if glob.matches(key) {
                return Decision { action: *action, rule: Some(*rule) };
            }
        }
        self.unmatched()
    }

    /// The decision for a key no rule matches.
    fn unmatched(&self) -> Decision {
        match self.allow_list {
            Some(rule) => Decision { action: Action::Drop, rule: Some(rule) },
            None => Decision { action: Action::Keep, rule: None },
        }
    }

    /// `prefix` + hex HMAC-SHA256 of `value` under the configured key.
    pub fn hash_into(&self, value: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(self.prefix.as_bytes());
        if let Some(key) = &self.key {
            text::hex_hmac(key, value, out);
        }
    }

    /// Whether some mask pattern may match within `b` (a byte prefilter,
    /// no false negatives): when not, nothing in `b` needs masking.
    pub fn may_mask(&self, b: &[u8]) -> bool {
        self.masker.may_match(b)
    }

    /// Masks `s` into `out` when a pattern matches; whether it did.
    pub fn mask(&self, s: &str, out: &mut String, counts: &mut [u64]) -> bool {
        self.masker.mask(s, out, counts)
    }

    /// [`Self::mask`] of a string within bytes that passed [`Self::may_mask`]
    /// (its byte test not run again).
    pub fn mask_passed(&self, s: &str, out: &mut String, counts: &mut [u64]) -> bool {
        self.masker.mask_passed(s, out, counts)
    }
}

/// A bit for a key length (lengths from 63 on share one).
fn len_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// A source's privacy rules: the spec as configured and its compiled form.
#[derive(Debug, Clone, Default)]
pub struct Privacy {
    spec: PrivacySpec,
    rules: Option<Arc<Rules>>,
}

impl Privacy {
    /// Compiles `spec` (see [`PrivacySpec::compile`]).
    pub fn new(spec: PrivacySpec) -> Result<Self, Vec<(String, String)>> {
        let rules = spec.compile()?.map(Arc::new);
        Ok(Self { spec, rules })
    }

    pub fn spec(&self) -> &PrivacySpec {
        &self.spec
    }

    /// The compiled rules; `None` when there are none.
    pub fn rules(&self) -> Option<&Rules> {
        self.rules.as_deref()
    }
}

impl PartialEq for Privacy {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Eq for Privacy {}

impl Serialize for Privacy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

#[cfg(test)]
mod tests;
