//! The `privacy` keys (top level and per source) → [`Privacy`]: presets
//! expanded, actions and patterns checked, the rules compiled once, every
//! error naming its key path (`sources[0].privacy.mask[1]: invalid regex`).
//!
//! A source's `privacy` replaces the top-level rules; its `marker`,
//! `hash_key` and `hash_prefix` default to the top-level ones, so one key
//! serves every source.

use super::raw::{RawPrivacy, StrOr};
use crate::privacy::{
    Action, AttrRule, DEFAULT_HASH_PREFIX, DEFAULT_MARKER, MaskSpec, Privacy, PrivacySpec, RECOMMENDED,
};
use crate::secret::Secret;

/// The spec of the top level, for sources to inherit.
pub(super) fn base() -> PrivacySpec {
    PrivacySpec { marker: DEFAULT_MARKER.into(), hash_prefix: DEFAULT_HASH_PREFIX.into(), ..PrivacySpec::default() }
}

/// Reads `raw` at `path`; unset keys come from `inherit` (the top level's
/// spec for a source, [`base`] for the top level).
pub(super) fn spec(path: &str, raw: &StrOr<RawPrivacy>, inherit: &PrivacySpec, errs: &mut Vec<String>) -> PrivacySpec {
    let empty = RawPrivacy::default();
    let (preset, r) = match raw {
        StrOr::Str(name) => (Some(name.as_str()), &empty),
        StrOr::Map(r) => (r.preset.as_deref(), r),
    };
    let mut attributes = Vec::new();
    for (i, a) in r.attributes.iter().flatten().enumerate() {
        let p = format!("{path}.attributes[{i}]");
        let key = a.key.clone().unwrap_or_default();
        if key.is_empty() {
            errs.push(format!("{p}.key: required (an attribute key, or a glob with * and ?)"));
        }
        let max_bytes = match &a.max_bytes {
            None => None,
            Some(v) => match v.get() {
                Ok(n) => Some(n),
                Err(e) => {
                    errs.push(format!("{p}.max_bytes: {e}"));
                    None
                }
            },
        };
        let action = match (a.action.as_deref().map(str::to_ascii_lowercase).as_deref(), max_bytes) {
            (Some("drop"), None) => Action::Drop,
            (Some("hash"), None) => Action::Hash,
            (Some("keep"), None) => Action::Keep,
            (Some("truncate"), Some(n)) if n > 0 => Action::Truncate(n),
            (Some("truncate"), _) => {
                errs.push(format!("{p}.max_bytes: truncate needs max_bytes of at least 1"));
                continue;
            }
            (Some("drop" | "hash" | "keep"), Some(_)) => {
                errs.push(format!("{p}.max_bytes: only for action truncate"));
                continue;
            }
            (Some(other), _) => {
                errs.push(format!("{p}.action: `{other}` is not one of drop, hash, truncate, keep"));
                continue;
            }
            (None, _) => {
                errs.push(format!("{p}.action: required (drop, hash, truncate or keep)"));
                continue;
            }
        };
        attributes.push(AttrRule { key, action });
    }
    let mut mask = Vec::new();
    for (i, m) in r.mask.iter().flatten().enumerate() {
        mask.push(match m {
            StrOr::Str(name) => MaskSpec::Named(name.clone()),
            StrOr::Map(m) => match (&m.name, &m.pattern) {
                (Some(name), Some(pattern)) => MaskSpec::Custom { name: name.clone(), pattern: pattern.clone() },
                _ => {
                    errs.push(format!("{path}.mask[{i}]: a named pattern, or a map with name and pattern"));
                    continue;
                }
            },
        });
    }
    // The user's own rules come first: the first matching attribute rule decides.
    match preset {
        None => {}
        Some(name) => match PrivacySpec::preset(name) {
            Some((preset_attrs, preset_masks)) => {
                attributes.extend(preset_attrs);
                for m in preset_masks {
                    if !mask.iter().any(|x| x.name() == m.name()) {
                        mask.push(m);
                    }
                }
            }
            None => {
                let at = if matches!(raw, StrOr::Str(_)) { path.to_string() } else { format!("{path}.preset") };
                errs.push(format!("{at}: unknown preset `{name}`; use {RECOMMENDED} or none"));
            }
        },
    }
    let hash_key = match r.hash_key.as_deref().map(str::trim) {
        Some("") => {
            errs.push(format!("{path}.hash_key: is empty (is its environment variable set?)"));
            None
        }
        Some(k) => Some(Secret::new(k)),
        None => inherit.hash_key.clone(),
    };
    PrivacySpec {
        attributes,
        mask,
        marker: r.marker.clone().unwrap_or_else(|| inherit.marker.clone()),
        hash_key,
        hash_prefix: r.hash_prefix.clone().unwrap_or_else(|| inherit.hash_prefix.clone()),
    }
}

/// Compiles `spec`; a refused rule is reported at `path`.
pub(super) fn compile(path: &str, spec: PrivacySpec, errs: &mut Vec<String>) -> Privacy {
    if spec.marker.is_empty() && !spec.mask.is_empty() {
        errs.push(format!("{path}.marker: must not be empty"));
    }
    match Privacy::new(spec) {
        Ok(p) => p,
        Err(refused) => {
            errs.extend(refused.into_iter().map(|(at, why)| format!("{path}.{at}: {why}")));
            Privacy::default()
        }
    }
}
