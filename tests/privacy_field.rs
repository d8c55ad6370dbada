//! Privacy rules through the built binary and a real collector (rotel):
//! what reaches the backend is redacted, hashing is joinable and hides the
//! raw value, a rule on a missing key changes nothing, and changing the
//! rules between two runs neither loses nor re-delivers a record.

mod common;
mod harness;

use std::time::Duration;

use forge_otel_sidecar::simulator::SimConfig;
use forge_otel_sidecar::simulator::behaviour::Behaviour;
use forge_otel_sidecar::simulator::data::site_id;
use forge_otel_sidecar::testkit::receiver::seq_of;
use harness::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

const HASH_KEY: &str = "k3y-for-the-privacy-test-0042";

fn sim(history_s: u64) -> SimConfig {
    let behaviour = Behaviour { privacy_samples: true, ..Behaviour::default() };
    SimConfig { history: Duration::from_secs(history_s), behaviour, ..common::fast_sim() }
}

fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a str> {
    match r.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn body(r: &LogRecord) -> &str {
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s,
        _ => "",
    }
}

const RULES: &str = "privacy:
  preset: recommended
  hash_key: ${env:PRIVACY_HASH_KEY}
  attributes:
    - {key: installationContext, action: hash}
    - {key: noSuchKey, action: truncate, max_bytes: 1}
  mask: [account_id]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaves_unredacted() {
    let cfg = sim(1200);
    let seed = cfg.seed;
    let sites: Vec<String> = (0..cfg.sites).map(|n| site_id(seed, n)).collect();
    let Some(w) = World::new(cfg, true).await else { return };
    let config = w.config("api_token: ${env:FORGE_API_TOKEN}", "", "", RULES);
    let mut s = w.start(&config, &[("PRIVACY_HASH_KEY", HASH_KEY)]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    assert!(t.lost == 0 && t.dups == 0 && t.received > 100, "{t:?}");
    let records: Vec<LogRecord> = w.rx.records().into_iter().map(|(_, r)| r).collect();
    let mut hashed = std::collections::BTreeSet::new();
    let mut samples = 0;
    for r in &records {
        assert!(attr(r, "arguments").is_none(), "{r:?}");
        let site = attr(r, "installationContext").unwrap_or_default();
        assert!(site.starts_with("hmac:") && site.len() == 69, "{site}");
        hashed.insert(site.to_string());
        // A rule on a key the record lacks leaves the others whole.
        assert!(attr(r, "functionKey").is_some_and(|f| f.len() > 1), "{r:?}");
        assert!(body(r).starts_with("seq="), "{r:?}");
        if body(r).contains("user=") {
            samples += 1;
            let b = body(r);
            assert!(b.contains("user=[redacted]") && b.contains("account=[redacted]"), "{b}");
            assert!(b.contains("auth=\"[redacted]\""), "{b}");
        }
    }
    assert!(samples > 10, "{samples} records with samples");
    // Equal inputs give equal outputs: every value is the keyed hash of one of the sites.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HASH_KEY.as_bytes());
    let expected: std::collections::BTreeSet<String> = sites
        .iter()
        .map(|s| {
            let tag = ring::hmac::sign(&key, s.as_bytes());
            format!("hmac:{}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
        })
        .collect();
    assert!(hashed.len() > 1 && hashed.is_subset(&expected), "{hashed:?}");
    let everything = format!("{records:?}");
    let logs = s.proc.text();
    for raw in ["@example.com", "Bearer sk", "557058:", "randomData", HASH_KEY] {
        assert!(!everything.contains(raw), "`{raw}` reached the collector");
        assert!(!logs.contains(raw), "`{raw}` is in the sidecar's logs");
    }
    for site in &sites {
        assert!(!everything.contains(site.as_str()), "{site} reached the collector");
        assert!(!logs.contains(site.as_str()), "{site} is in the sidecar's logs");
    }
    let dropped = s
        .metric("forge_sidecar_privacy_values_changed_total{app=\"demo-app\",source=\"prod\",rule=\"drop:arguments\"}")
        .await;
    assert!(dropped >= records.len() as f64, "{dropped}");
    let (_, metrics) = s.get("/metrics").await;
    assert!(metrics.contains("rule=\"truncate:noSuchKey\"} 0"), "{metrics}");
    Row {
        pass: true,
        note: format!(
            "recommended preset + site ids hashed + account ids masked: {} records, {samples} with an email, token and account id in the body; 0 raw values at the collector or in the sidecar's logs; {} distinct keyed hashes, each of a real site",
            records.len(),
            hashed.len()
        ),
        ..w.row("P1", "privacy rules on (drop, hash, mask, a rule on a missing key)", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_rules_between_runs_loses_and_repeats_nothing() {
    let Some(w) = World::new(sim(1800), true).await else { return };
    let mut first = w.start(&w.default_config(), &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while w.rx.record_count() < 300 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.proc.terminate(Duration::from_secs(10));
    // What the collector still forwards from the first run arrives first.
    let before = w.settled_count().await;
    assert!(before >= 300, "{before}");
    let config = w.config("api_token: ${env:FORGE_API_TOKEN}", "", "", RULES);
    let mut second = w.start(&config, &[("PRIVACY_HASH_KEY", HASH_KEY)]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    assert!(t.lost == 0 && t.dups == 0, "{t:?}");
    let records = w.rx.records();
    // Everything the second run sent is redacted.
    assert!(records[before..].iter().all(|(_, r)| attr(r, "arguments").is_none()));
    let redacted = records.iter().filter(|(_, r)| attr(r, "arguments").is_none()).count();
    assert!(redacted > 0 && redacted < records.len(), "{redacted} of {}", records.len());
    // Every record arrived once: the seqs are unique across both runs.
    let mut seqs: Vec<u64> = records.iter().filter_map(|(_, r)| seq_of(r)).collect();
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n);
    Row {
        pass: true,
        note: format!("{before} records delivered without rules, then the rest with them: {redacted} of {n} redacted (every record of the second run), each record once"),
        ..w.row("P2", "privacy rules changed between two runs", &t)
    }
    .check();
    second.proc.terminate(Duration::from_secs(10));
}
