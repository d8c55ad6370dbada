//! `${env:VAR}` / `${VAR}` / `${env:VAR:-default}` expansion in YAML string values.
//!
//! Expansion runs on parsed YAML values, not on the raw text, so a `${...}`
//! inside a comment is never touched. `$${` stands for a literal `${`.
//! Every missing variable is collected so one error names them all.

use std::collections::BTreeSet;

/// Looks up an environment variable. Injected so tests never touch the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands one string, recording the names of missing variables.
pub fn expand_str(input: &str, env: EnvLookup<'_>, missing: &mut BTreeSet<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(body_start) = after.strip_prefix("${") {
            match body_start.find('}') {
                Some(end) => {
                    let body = &body_start[..end];
                    out.push_str(&substitute(body, env, missing));
                    rest = &body_start[end + 1..];
                }
                None => {
                    // No closing brace: keep the text as it is.
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

fn substitute(body: &str, env: EnvLookup<'_>, missing: &mut BTreeSet<String>) -> String {
    let body = body.strip_prefix("env:").unwrap_or(body);
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name.trim(), Some(default)),
        None => (body.trim(), None),
    };
    match env(name) {
        Some(value) if !(value.is_empty() && default.is_some()) => value,
        _ => match default {
            Some(default) => default.to_string(),
            None => {
                missing.insert(name.to_string());
                String::new()
            }
        },
    }
}

/// Expands every string scalar in a YAML tree (mapping keys included).
pub(crate) fn expand_value(value: &mut yaml_serde::Value, env: EnvLookup<'_>, missing: &mut BTreeSet<String>) {
    use yaml_serde::Value;
    match value {
        Value::String(s) => {
            if s.contains('$') {
                *s = expand_str(s, env, missing);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                expand_value(item, env, missing);
            }
        }
        Value::Mapping(map) => {
            let entries: Vec<(Value, Value)> = std::mem::take(map).into_iter().collect();
            for (mut k, mut v) in entries {
                expand_value(&mut k, env, missing);
                expand_value(&mut v, env, missing);
                map.insert(k, v);
            }
        }
        Value::Tagged(tagged) => expand_value(&mut tagged.value, env, missing),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_table() {
        let cases = [
            ("${env:TOKEN}", "abc"),
            ("${TOKEN}", "abc"),
            ("x-${TOKEN}-y", "x-abc-y"),
            ("${env:NOPE:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${TOKEN:-fallback}", "abc"),
            ("$${TOKEN}", "${TOKEN}"),
            ("cost: $5", "cost: $5"),
            ("${unclosed", "${unclosed"),
        ];
        for (input, want) in cases {
            let mut missing = BTreeSet::new();
            assert_eq!(expand_str(input, &env, &mut missing), want, "{input}");
            assert!(missing.is_empty(), "{input}: {missing:?}");
        }
    }

    #[test]
    fn every_missing_variable_is_named() {
        let mut value: yaml_serde::Value =
            yaml_serde::from_str("a: ${env:ONE}\nb: [\"${TWO}\", \"${TOKEN}\"]\n# ${IN_COMMENT}\n").unwrap_or_default();
        let mut missing = BTreeSet::new();
        expand_value(&mut value, &env, &mut missing);
        assert_eq!(missing.into_iter().collect::<Vec<_>>(), vec!["ONE", "TWO"]);
    }
}
