//! Privacy rules in the page decoder, through the public API: rules come
//! from a config file, pages are decoded with them, and what would be
//! exported is read back as OTLP messages.

use forge_otel_sidecar::config::Config;
use forge_otel_sidecar::convert::{Decoded, decode_page, decode_page_with};
use forge_otel_sidecar::privacy::Privacy;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

const SITE_A: &str = "ari:cloud:jira::site/aaaa-1111";
const SITE_B: &str = "ari:cloud:jira::site/bbbb-2222";

fn record(body: &str, site: &str, arguments: &str) -> String {
    format!(
        r#"{{"timeUnixNano":"1700000000000000000","severityText":"INFO","body":{{"stringValue":{body:?}}},
"attributes":[{{"key":"appId","value":{{"stringValue":"app-1"}}}},
{{"key":"installationContext","value":{{"stringValue":"{site}"}}}},
{{"key":"arguments","value":{{"stringValue":{arguments:?}}}}},
{{"key":"user.list","value":{{"arrayValue":{{"values":[{{"stringValue":"x@y.example.org"}},{{"intValue":"7"}}]}}}}}},
{{"key":"count","value":{{"intValue":"3"}}}}]}}"#
    )
}

fn page() -> String {
    let records = [
        record("hello jane@example.com", SITE_A, "[{\"q\":\"secret query\"}]"),
        record("auth Bearer abc.def-123 done", SITE_B, "[]"),
        record("plain", SITE_A, "[{\"q\":\"héllo wörld\"}]"),
    ];
    format!(r#"{{"appLogs":[{}],"cursor":null}}"#, records.join(","))
}

fn privacy(rules: &str) -> Privacy {
    let text = format!(
        "forge: {{email: a@b.c, api_token: t}}\nsources:\n  - app_id: a\n    environment_id: e\n    privacy:\n{rules}\n"
    );
    match Config::from_yaml(&text, &|n: &str| (n == "KEY").then(|| "a-key-of-at-least-16".to_string())) {
        Ok(mut cfg) => cfg.sources.remove(0).privacy,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn decode(p: &Privacy) -> Decoded {
    decode_page_with(page().as_bytes(), 42, p.rules()).unwrap_or_else(|e| panic!("{e}"))
}

fn messages(d: &Decoded) -> Vec<LogRecord> {
    d.records.to_messages().unwrap_or_else(|e| panic!("{e}"))
}

fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a Value> {
    r.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn body(r: &LogRecord) -> &str {
    string(r.body.as_ref().and_then(|b| b.value.as_ref())).unwrap_or_default()
}

#[test]
fn no_rules_and_rules_that_match_nothing_change_no_byte() {
    let plain = decode_page(page().as_bytes(), 42).unwrap_or_else(|e| panic!("{e}"));
    for rules in [
        "      none",
        "      attributes: [{key: noSuchKey, action: drop}, {key: other*, action: truncate, max_bytes: 1}]",
        "      mask: [{name: order, pattern: 'ORD-[0-9]+'}]",
    ] {
        let d = decode(&privacy(rules));
        let a: Vec<&[u8]> = plain.records.iter().map(|r| r.encoded()).collect();
        let b: Vec<&[u8]> = d.records.iter().map(|r| r.encoded()).collect();
        assert_eq!(a, b, "{rules}");
        assert!(d.privacy_changed.iter().all(|&n| n == 0), "{rules}: {:?}", d.privacy_changed);
    }
}

#[test]
fn recommended_drops_arguments_masks_bodies_and_keeps_fingerprints() {
    let plain = decode_page(page().as_bytes(), 42).unwrap_or_else(|e| panic!("{e}"));
    let d = decode(&privacy("      recommended"));
    let got = messages(&d);
    assert!(got.iter().all(|r| attr(r, "arguments").is_none()));
    assert_eq!(body(&got[0]), "hello [redacted]");
    assert_eq!(body(&got[1]), "auth [redacted] done");
    assert_eq!(body(&got[2]), "plain");
    // Strings in attributes are masked too, nested ones included.
    let Some(Value::ArrayValue(list)) = attr(&got[0], "user.list") else { panic!("{:?}", got[0]) };
    assert_eq!(string(list.values[0].value.as_ref()), Some("[redacted]"));
    assert_eq!(string(attr(&got[0], "installationContext")), Some(SITE_A));
    // Fingerprints and sites come from the record as the API sent it.
    let fp =
        |d: &Decoded| d.records.iter().map(|r| (r.fingerprint(), r.site().map(str::to_string))).collect::<Vec<_>>();
    assert_eq!(fp(&plain), fp(&d));
    let names = privacy("      recommended").rules().map(|r| r.names().to_vec()).unwrap_or_default();
    assert_eq!(names, ["drop:arguments", "mask:email", "mask:token"]);
    // Three arguments dropped; the email in body 0 and in its list, the list of records 1 and 2; one token.
    assert_eq!(d.privacy_changed, [3, 4, 1]);
}

#[test]
fn hashing_is_joinable_and_hides_the_raw_value() {
    let d = decode(&privacy(
        "      hash_key: ${env:KEY}\n      attributes: [{key: installationContext, action: hash}, {key: count, action: hash}]",
    ));
    let got = messages(&d);
    let site = |i: usize| string(attr(&got[i], "installationContext")).unwrap_or_default().to_string();
    assert_eq!(site(0), site(2), "equal inputs, equal outputs");
    assert_ne!(site(0), site(1));
    assert!(site(0).starts_with("hmac:"), "{}", site(0));
    // A non-string value is hashed too, as a string.
    assert!(string(attr(&got[0], "count")).is_some_and(|h| h.starts_with("hmac:")));
    let bytes: Vec<u8> = d.records.iter().flat_map(|r| r.encoded().to_vec()).collect();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(SITE_A) && !text.contains(SITE_B), "{text}");
    assert_eq!(d.records.iter().next().and_then(|r| r.site()), Some(SITE_A), "the poller still knows the site");
}

#[test]
fn truncation_and_the_allow_list() {
    let d = decode(&privacy("      attributes: [{key: arguments, action: truncate, max_bytes: 9}]"));
    let got = messages(&d);
    // `[{"q":"h` is 8 bytes and `é` takes two: the cut moves back to 8.
    assert_eq!(string(attr(&got[2], "arguments")), Some("[{\"q\":\"h"));
    assert_eq!(string(attr(&got[1], "arguments")), Some("[]"));
    assert_eq!(d.privacy_changed, [2]);

    let d = decode(&privacy("      attributes: [{key: appId, action: keep}, {key: 'install*', action: keep}]"));
    for r in messages(&d) {
        let keys: Vec<&str> = r.attributes.iter().map(|kv| kv.key.as_str()).collect();
        // The sidecar's own attributes stay.
        assert_eq!(keys, ["appId", "installationContext"]);
    }
    assert_eq!(d.privacy_changed, [0, 0, 9]);
}

#[test]
fn refused_rules_name_their_key_path() {
    let cases = [
        (
            "      attributes: [{key: installationContext, action: hash}]",
            "sources[0].privacy.attributes[0]: hash needs",
        ),
        ("      mask: [email, phone]", "sources[0].privacy.mask[1]: unknown pattern `phone`"),
        ("      mask: [{name: x, pattern: '(unclosed'}]", "sources[0].privacy.mask[0]: invalid regex"),
        ("      strict", "sources[0].privacy: unknown preset `strict`"),
        (
            "      attributes: [{key: a, action: truncate}]",
            "sources[0].privacy.attributes[0].max_bytes: truncate needs",
        ),
        ("      attributes: [{key: a, action: blur}]", "sources[0].privacy.attributes[0].action: `blur` is not one of"),
        ("      colour: red", "sources[0].privacy.colour: unknown field"),
    ];
    for (rules, want) in cases {
        let text = format!(
            "forge: {{email: a@b.c, api_token: t}}\nsources:\n  - app_id: a\n    environment_id: e\n    privacy:\n{rules}\n"
        );
        let err = Config::from_yaml(&text, &|_: &str| None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(want), "{rules}: {err}");
    }
}

#[test]
fn the_hash_key_is_never_printed() {
    let text = "forge: {email: a@b.c, api_token: t}\nprivacy:\n  hash_key: literal-key-0123456789\n  attributes: [{key: installationContext, action: hash}]\nsources: [{app_id: a, environment_id: e}]\n";
    let cfg = Config::from_yaml(text, &|_: &str| None).unwrap_or_else(|e| panic!("{e}"));
    for shown in [cfg.to_redacted_yaml(), format!("{cfg:?}"), serde_json::to_string(&cfg).unwrap_or_default()] {
        assert!(!shown.contains("literal-key"), "{shown}");
    }
    assert!(
        cfg.to_redacted_yaml().contains("hash:installationContext") || cfg.to_redacted_yaml().contains("action: hash")
    );
}

#[test]
fn printed_rules_load_back_with_the_key_as_its_reference() {
    use forge_otel_sidecar::config::print;
    let text = "forge: {email: a@b.c, api_token: '${env:TOK}'}\nprivacy:\n  hash_key: ${env:KEY}\n  preset: recommended\n  attributes: [{key: installationContext, action: hash}]\nsources:\n  - {app_id: a, environment_id: e1}\n  - {app_id: b, environment_id: e2, privacy: none}\n  - {app_id: c, environment_id: e3, privacy: {attributes: [{key: x, action: hash}], mask: [{name: order, pattern: 'ORD-[0-9]+'}]}}\n";
    let env = |n: &str| match n {
        "KEY" => Some("a-key-of-at-least-16".to_string()),
        "TOK" => Some("token".to_string()),
        _ => None,
    };
    let (cfg, origins) = Config::from_yaml_traced(text, &env).unwrap_or_else(|e| panic!("{e}"));
    let printed = print::render(&cfg, &origins);
    assert!(printed.contains("hash_key: ${env:KEY}") && !printed.contains("a-key-of"), "{printed}");
    let (again, origins2) = Config::from_yaml_traced(&printed, &env).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(cfg, again);
    assert_eq!(printed, print::render(&again, &origins2));
    // The source that inherits the top-level key hashes with it.
    assert!(again.sources[2].privacy.rules().is_some());
    assert!(again.sources[1].privacy.rules().is_none());
}
