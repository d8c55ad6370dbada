use proptest::prelude::*;

use super::*;

fn spec(attributes: Vec<AttrRule>, mask: &[&str]) -> PrivacySpec {
    PrivacySpec {
        attributes,
        mask: mask.iter().map(|m| MaskSpec::Named(m.to_string())).collect(),
        marker: DEFAULT_MARKER.into(),
        hash_key: Some(Secret::new("0123456789abcdef-key")),
        hash_prefix: DEFAULT_HASH_PREFIX.into(),
    }
}

fn rule(key: &str, action: Action) -> AttrRule {
    AttrRule { key: key.into(), action }
}

#[test]
fn no_rules_compile_to_nothing() {
    assert!(matches!(PrivacySpec::default().compile(), Ok(None)));
}

#[test]
fn first_matching_rule_decides_and_keep_turns_on_the_allow_list() {
    let s = spec(vec![rule("arguments", Action::Truncate(8)), rule("arg*", Action::Drop)], &[]);
    let Ok(Some(r)) = s.compile() else { panic!("compiles") };
    assert_eq!(r.decide(b"arguments"), Decision { action: Action::Truncate(8), rule: Some(0) });
    assert_eq!(r.decide(b"argv"), Decision { action: Action::Drop, rule: Some(1) });
    assert_eq!(r.decide(b"appId"), Decision { action: Action::Keep, rule: None });
    assert_eq!(r.names(), ["truncate:arguments", "drop:arg*"]);

    let s = spec(vec![rule("appId", Action::Keep)], &["email"]);
    let Ok(Some(r)) = s.compile() else { panic!("compiles") };
    assert_eq!(r.decide(b"appId"), Decision { action: Action::Keep, rule: Some(0) });
    assert_eq!(r.decide(b"arguments"), Decision { action: Action::Drop, rule: Some(1) });
    assert_eq!(r.names(), ["keep:appId", ALLOW_LIST_RULE, "mask:email"]);
}

#[test]
fn hashing_is_keyed_and_stable() {
    let s = spec(vec![rule("installationContext", Action::Hash)], &[]);
    let Ok(Some(r)) = s.compile() else { panic!("compiles") };
    let hash = |v: &[u8], r: &Rules| {
        let mut out = Vec::new();
        r.hash_into(v, &mut out);
        String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"))
    };
    let a = hash(b"ari:cloud:jira::site/1", &r);
    assert_eq!(a, hash(b"ari:cloud:jira::site/1", &r));
    assert_ne!(a, hash(b"ari:cloud:jira::site/2", &r));
    assert!(a.starts_with("hmac:") && a.len() == 5 + 64, "{a}");
    let other = PrivacySpec { hash_key: Some(Secret::new("another-key-of-16+")), ..s };
    let Ok(Some(r2)) = other.compile() else { panic!("compiles") };
    assert_ne!(a, hash(b"ari:cloud:jira::site/1", &r2), "a different key gives a different hash");
}

#[test]
fn refused_specs_name_the_rule() {
    let no_key = PrivacySpec { hash_key: None, ..spec(vec![rule("a", Action::Drop), rule("b", Action::Hash)], &[]) };
    let at = |s: PrivacySpec| s.compile().err().unwrap_or_default().into_iter().map(|e| e.0).collect::<Vec<_>>();
    assert_eq!(at(no_key), ["attributes[1]"]);
    let short = PrivacySpec { hash_key: Some(Secret::new("short")), ..spec(vec![rule("b", Action::Hash)], &[]) };
    assert_eq!(at(short), ["hash_key"]);
    let bad = PrivacySpec { hash_key: None, ..spec(vec![rule("b", Action::Hash)], &["email", "phone"]) };
    assert_eq!(at(bad), ["attributes[0]", "mask[1]"], "every error at once");
    let marker = PrivacySpec { marker: "<a@b.cc>".into(), ..spec(vec![], &["token", "email"]) };
    assert_eq!(at(marker), ["mask[1]"], "a marker the pattern masks");
}

#[test]
fn the_recommended_preset_drops_arguments_and_masks_emails_and_tokens() {
    let Some((attrs, masks)) = PrivacySpec::preset(RECOMMENDED) else { panic!("known preset") };
    assert!(attrs.iter().any(|r| r.key == "arguments" && r.action == Action::Drop));
    let names: Vec<&str> = masks.iter().map(MaskSpec::name).collect();
    assert_eq!(names, ["email", "token"]);
    assert!(PrivacySpec::preset("strict").is_none());
}

fn all_masks() -> Rules {
    let names: Vec<&str> = mask::NAMED.iter().map(|(n, _, _)| *n).collect();
    match spec(vec![], &names).compile() {
        Ok(Some(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// Text rich in what the patterns look for, and in their near misses.
fn texty() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "a",
        "Z",
        "0",
        "9",
        "1",
        ".",
        "@",
        ":",
        "::",
        "-",
        " ",
        "_",
        "+",
        "/",
        "=",
        "é",
        "😀",
        "[",
        "]",
        "Bearer ",
        "basic ",
        "eyJ",
        "ATATT",
        "ff",
        "192.168.",
        "255",
        "4111",
        "557058:",
        "example.com",
        "[redacted]",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

#[test]
fn a_rejected_card_candidate_leaves_the_other_patterns_masked() {
    let r = all_masks();
    let mut counts = vec![0; r.names().len()];
    let mut out = String::new();
    // Luhn fails on the digits: the string is masked pattern by pattern.
    assert!(r.mask("n 4111 1111 1111 1112 by a@b.cc", &mut out, &mut counts));
    assert_eq!(out, "n 4111 1111 1111 1112 by [redacted]");
    assert!(r.mask("card 4111 1111 1111 1111, Bearer x1", &mut out, &mut counts));
    assert_eq!(out, "card [redacted], [redacted]");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn truncation_never_splits_a_character(s in ".{0,40}", max in 0usize..64) {
        let cut = text::truncate_utf8(&s, max);
        prop_assert!(cut.len() <= max);
        prop_assert!(s.starts_with(cut));
        // The longest prefix that fits: one more character would not.
        let next = s[cut.len()..].chars().next().map_or(0, char::len_utf8);
        prop_assert!(cut.len() == s.len() || cut.len() + next > max);
    }

    #[test]
    fn masking_is_idempotent(s in texty()) {
        let r = all_masks();
        let mut counts = vec![0; r.names().len()];
        let mut once = String::new();
        let first = if r.mask(&s, &mut once, &mut counts) { once.clone() } else { s.clone() };
        let mut twice = String::new();
        prop_assert!(!r.mask(&first, &mut twice, &mut counts), "{s:?} → {first:?} → {twice:?}");
    }

    #[test]
    fn the_combined_pass_changes_what_the_patterns_one_by_one_change(s in texty()) {
        let r = all_masks();
        let mut counts = vec![0; r.names().len()];
        let (mut a, mut b) = (String::new(), String::new());
        let combined = r.mask(&s, &mut a, &mut counts);
        let one_by_one = r.masker.one_by_one(&s, &mut b, &mut counts);
        prop_assert_eq!(combined, one_by_one, "{:?} → {:?} / {:?}", s, a, b);
    }
}

#[test]
fn exact_keys_are_decided_by_length_first() {
    let long = "k".repeat(70);
    let s = spec(vec![rule("arguments", Action::Drop), rule(&long, Action::Hash)], &[]);
    let Ok(Some(r)) = s.compile() else { panic!("compiles") };
    assert_eq!(r.decide(b"arguments"), Decision { action: Action::Drop, rule: Some(0) });
    assert_eq!(r.decide(b"argumentz"), Decision { action: Action::Keep, rule: None });
    assert_eq!(r.decide(b"appId"), Decision { action: Action::Keep, rule: None });
    assert_eq!(r.decide(long.as_bytes()), Decision { action: Action::Hash, rule: Some(1) });
    // Lengths from 63 on share a bit: still decided by the rules.
    assert_eq!(r.decide("k".repeat(64).as_bytes()), Decision { action: Action::Keep, rule: None });
    assert_eq!(r.decide(b""), Decision { action: Action::Keep, rule: None });
}
