//! The config loader on arbitrary text: YAML parsing, `${env:…}`
//! expansion, strict deserialization and validation never panic, and an
//! accepted config always prints (redacted) as YAML that parses again.
#![no_main]

use std::collections::BTreeSet;

use forge_otel_sidecar::config::{Config, expand::expand_str};
use libfuzzer_sys::fuzz_target;

/// A fixed environment, so runs are reproducible.
fn env(name: &str) -> Option<String> {
    match name {
        "A" => Some("1".into()),
        "EMPTY" => Some(String::new()),
        "TOKEN" => Some("t0k3n".into()),
        "URL" => Some("http://127.0.0.1:4317".into()),
        "DOLLAR" => Some("${A}".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut missing = BTreeSet::new();
    let once = expand_str(text, &env, &mut missing);
    // A value is never expanded again: `${DOLLAR}` yields the text `${A}`.
    if !text.contains('$') {
        assert_eq!(once, text);
    }
    if let Ok(cfg) = Config::from_yaml(text, &env) {
        let printed = cfg.to_redacted_yaml();
        assert!(serde_yaml::from_str::<serde_yaml::Value>(&printed).is_ok(), "{printed}");
    }
});
