//! The support commands run as the built binary against the in-process
//! simulator and OTLP receiver: `fetch` (content, both JSON forms, the
//! 14-day limit, plain progress lines), `backfill` (once, resumed after a
//! kill), `import-audit` (good rows once, even imported twice) and `reset`
//! (refused while a sidecar runs, names what it drops, asks for --yes).

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use forge_otel_sidecar::simulator::{SimConfig, SimHandle};
use forge_otel_sidecar::timefmt::{format_millis, system_millis};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

const BIN: &str = env!("CARGO_BIN_EXE_forge-otel-sidecar");

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).stdin(Stdio::null()).output().unwrap())
        .await
        .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The simulator's records of `[from_ms, to_ms)` (of `site` when given), one per copy the API holds.
fn sim_records(sim: &SimHandle, from_ms: i64, to_ms: i64, site: Option<&str>) -> Vec<(u64, serde_json::Value)> {
    let g = sim.generator();
    let st = &sim.streams()[0];
    let (from_ns, to_ns) = (from_ms * 1_000_000, to_ms * 1_000_000);
    let mut out = Vec::new();
    let mut i = g.first_index_at(from_ns);
    while !g.past(i, to_ns) {
        let m = g.meta(st, i);
        if m.ts_ns >= from_ns && m.ts_ns < to_ns && (site.is_none() || g.site_of(&m) == site) {
            let value = serde_json::to_value(g.record(st, &m)).unwrap();
            for _ in 0..sim.copies_of(m.seq) {
                out.push((m.seq, value.clone()));
            }
        }
        i += 1;
    }
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_exactly_the_sites_records_as_json_lines_and_otlp_json() {
    let sim = sim(sim_4h()).await;
    let rx = receiver().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = write_config(state.path(), &sidecar_yaml(&sim, &rx, &state.path().join("state"), ""));
    let now = system_millis(SystemTime::now());
    let from = now - 3 * 3_600_000 - 20 * 60_000;
    let to = from + 3 * 3_600_000;
    let site = sim.generator().sites[2].clone();
    let expected = sim_records(&sim, from, to, Some(&site));
    assert!(expected.len() > 1000, "the range holds the site's records: {}", expected.len());

    let out = state.path().join("out.jsonl");
    let (f, t) = (format_millis(from), format_millis(to));
    let common = ["fetch", "-c", &cfg, "--from", &f, "--to", &t, "--site", &site];
    let mut a = args(&common);
    a.extend(args(&["--output", &out.display().to_string()]));
    let o = run(a).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap().to_string())
        .collect();
    let mut want: Vec<String> = expected.iter().map(|(_, v)| v.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "record count");
    assert!(got == want, "the records as the API sent them");

    // Progress on stderr, not a terminal here: plain lines, one per window, no control codes.
    let err = stderr(&o);
    for n in 1..=4 {
        assert!(err.contains(&format!("fetch: window {n}/4 done")), "{err}");
    }
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");

    // The same range as OTLP/JSON on stdout.
    let mut a = args(&common);
    a.extend(args(&["--format", "otlp-json"]));
    let o = run(a).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut seqs = Vec::new();
    let bodies: HashMap<u64, String> =
        expected.iter().map(|(s, v)| (*s, v["body"]["stringValue"].as_str().unwrap_or_default().to_string())).collect();
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let req: serde_json::Value = serde_json::from_str(line).unwrap();
        let rl = &req["resourceLogs"][0];
        assert!(rl["resource"]["attributes"].to_string().contains("service.name"));
        for r in rl["scopeLogs"][0]["logRecords"].as_array().unwrap() {
            let attrs = r["attributes"].as_array().unwrap();
            let seq_attr = attrs.iter().find(|a| a["key"] == "sim.seq").unwrap();
            let seq: u64 = match &seq_attr["value"]["intValue"] {
                serde_json::Value::String(s) => s.parse().unwrap(),
                v => v.as_u64().unwrap(),
            };
            assert_eq!(r["body"]["stringValue"].as_str(), bodies.get(&seq).map(String::as_str), "seq {seq}");
            let site_attr = attrs.iter().find(|a| a["key"] == "installationContext").unwrap();
            assert_eq!(site_attr["value"]["stringValue"], site.as_str());
            seqs.push(seq);
        }
    }
    let mut want_seqs: Vec<u64> = expected.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    want_seqs.sort_unstable();
    assert_eq!(seqs, want_seqs);
    sim.stop().await;
    rx.stop().await;
}

/// Four hours of history: a three-hour range well before the records still arriving late.
fn sim_4h() -> forge_otel_sidecar::simulator::SimConfig {
    forge_otel_sidecar::simulator::SimConfig { history: Duration::from_secs(4 * 3600), ..fast_sim() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_older_than_fourteen_days_is_refused_with_exit_2() {
    let sim = sim(fast_sim()).await;
    let rx = receiver().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = write_config(state.path(), &sidecar_yaml(&sim, &rx, &state.path().join("state"), ""));
    let from = format_millis(system_millis(SystemTime::now()) - 15 * 86_400_000);
    let o = run(args(&["fetch", "-c", &cfg, "--from", &from, "--since", "1h"])).await;
    assert_eq!(o.status.code(), Some(2), "conflicting flags: {}", stderr(&o));
    let o = run(args(&["fetch", "-c", &cfg, "--from", &from])).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("14 days"), "{}", stderr(&o));
    assert!(sim.requests().is_empty(), "nothing asked of the API");
    let o = run(args(&["backfill", "-c", &cfg, "--from", &from])).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    sim.stop().await;
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_delivers_every_record_once_and_resumes_after_a_kill() {
    let sim =
        sim(forge_otel_sidecar::simulator::SimConfig { records_per_second: 1.0, page_size: 100, ..fast_sim() }).await;
    let rx = receiver().await;
    let state = tempfile::tempdir().unwrap();
    // A slow budget (4 calls a second) so the kill lands mid-range.
    let yaml = sidecar_yaml(&sim, &rx, &state.path().join("state"), "")
        .replace("requests_per_minute: 30\n  rate_period: 3s", "requests_per_minute: 4\n  rate_period: 1s");
    let cfg = write_config(state.path(), &yaml);
    let now = system_millis(SystemTime::now());
    let (from, to) = (now - 100 * 60_000, now - 10 * 60_000);
    let expected: Vec<u64> = sim_records(&sim, from, to, None).into_iter().map(|(s, _)| s).collect();
    let (f, t) = (format_millis(from), format_millis(to));

    // The source already delivered the range's first 10 minutes: refused without --yes.
    let checkpoint = forge_otel_sidecar::checkpoint::Store::new(&state.path().join("state")).path("prod");
    std::fs::create_dir_all(checkpoint.parent().unwrap()).unwrap();
    std::fs::write(&checkpoint, format!(r#"{{"version":3,"source":"prod","watermark_ms":{}}}"#, from + 600_000))
        .unwrap();
    let o = run(args(&["backfill", "-c", &cfg, "--from", &f, "--to", &t])).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("(10 min)") && stderr(&o).contains("--yes"), "{}", stderr(&o));
    assert!(sim.requests().is_empty() && rx.record_count() == 0, "nothing read or sent");

    let a = args(&["backfill", "-c", &cfg, "--from", &f, "--to", &t, "--yes"]);
    let log = std::fs::File::create(state.path().join("first.log")).unwrap();
    let mut child = Command::new(BIN).args(&a).stdin(Stdio::null()).stderr(log).spawn().unwrap();
    let mut waited = 0;
    while rx.record_count() < 500 && waited < 300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert!(rx.record_count() >= 500, "the backfill started");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    let first_log = std::fs::read_to_string(state.path().join("first.log")).unwrap();
    assert_eq!(status.code(), Some(1), "interrupted: {first_log}");
    let partial = rx.record_count();
    assert!(partial < expected.len(), "killed before the end: {partial} of {}", expected.len());

    let o = run(args(&["backfill", "-c", &cfg, "--from", &f, "--to", &t])).await;
    assert_eq!(o.status.code(), Some(2), "a second backfill is refused while one is unfinished: {}", stderr(&o));
    let o = run(args(&["backfill", "-c", &cfg, "--resume"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = tally_copies(&expected, &rx.seqs(), |s| sim.copies_of(s));
    assert_eq!((t.lost, t.dups), (0, 0), "{t:?}");
    assert_eq!(rx.record_count(), expected.len());
    let o = run(args(&["backfill", "-c", &cfg, "--resume"])).await;
    assert_eq!(o.status.code(), Some(2), "nothing left to resume: {}", stderr(&o));
    sim.stop().await;
    rx.stop().await;
}

fn attr(r: &opentelemetry_proto::tonic::logs::v1::LogRecord, key: &str) -> Option<String> {
    r.attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_audit_delivers_the_good_rows_once_even_imported_twice() {
    let sim = sim(fast_sim()).await;
    let rx = receiver().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = write_config(state.path(), &sidecar_yaml(&sim, &rx, &state.path().join("state"), ""));
    let csv = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/audit-sample.csv");
    let o = run(args(&["import-audit", "--dry-run", csv])).await;
    assert_eq!(o.status.code(), Some(1), "a bad row: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 5);
    assert_eq!(rx.record_count(), 0, "a dry run sends nothing");
    for round in 0..2 {
        let o = run(args(&["import-audit", "-c", &cfg, csv])).await;
        assert_eq!(o.status.code(), Some(1), "round {round}: {}", stderr(&o));
        assert!(stderr(&o).contains("line 6:"), "the bad row by its line: {}", stderr(&o));
        assert_eq!(rx.record_count(), 5, "round {round}");
    }
    for (resource, r) in rx.records() {
        let event = attr(&r, "forge.audit.event").unwrap();
        assert!(matches!(r.body.as_ref().and_then(|b| b.value.as_ref()), Some(Value::StringValue(b)) if *b == event));
        assert!(attr(&r, "forge.site.id").is_some());
        assert_eq!(r.time_unix_nano % (86_400 * 1_000_000_000), 0, "the event date at 00:00 UTC");
        let keys: Vec<&str> = resource.attributes.iter().map(|a| a.key.as_str()).collect();
        assert!(keys.contains(&"service.name") && keys.contains(&"forge.app.id"), "{keys:?}");
    }
    // An overlapping export: one new row, the rest already imported.
    let text = std::fs::read_to_string(csv).unwrap();
    let newer = format!(
        "{text}yibeb59-d217-58d3-a3a7-0a888b3bc5ef,Status Helper,089a1455-4ea0-122a-b70c-5b17360f047d,Confluence,production,1.208.0,App installed,2024-06-01,Global,N/A\n"
    );
    let newer_path = state.path().join("newer.csv");
    std::fs::write(&newer_path, newer).unwrap();
    let o = run(args(&["import-audit", "-c", &cfg, &newer_path.display().to_string()])).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(rx.record_count(), 6);
    sim.stop().await;
    rx.stop().await;
}

#[tokio::test]
async fn completions_man_page_and_help_examples() {
    let o = run(args(&["completions", "bash"])).await;
    assert_eq!(o.status.code(), Some(0));
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(script.contains("import-audit") && script.contains("backfill") && script.contains("reset"));
    let o = run(args(&["man-page"])).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains(".TH"));
    for cmd in ["run", "check-config", "fetch", "backfill", "import-audit", "reset", "simulate", "demo", "healthcheck"]
    {
        let o = run(args(&[cmd, "--help"])).await;
        assert_eq!(o.status.code(), Some(0), "{cmd}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("Example"), "{cmd} --help has an example");
    }
    let o = run(args(&["fetch"])).await;
    assert_eq!(o.status.code(), Some(2), "usage error");
}

/// `demo` shows the App metrics beside the logs: a line per minute of
/// data with invocations, errors and the p95 latency read from the
/// latency histogram. Read until the first such lines (the demo ends by
/// itself after `--duration` if none ever comes).
#[tokio::test]
async fn demo_prints_a_metrics_line_per_minute() {
    use std::io::BufRead;
    let a = args(&["demo", "--duration", "120s", "--history", "5m", "--records-per-second", "1"]);
    let mut child = Command::new(BIN)
        .args(&a)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(" metrics · ") {
                found.push(line);
                // The 5 minutes of history come in one answer.
                if found.len() >= 3 {
                    break;
                }
            }
        }
        found
    })
    .await
    .unwrap();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert!(lines.len() >= 3, "metrics lines: {lines:?}");
    let mut minutes = Vec::new();
    for line in &lines {
        // "HH:MM metrics · invocations N · errors N · p95 latency …"
        let parts: Vec<&str> = line.split(" · ").collect();
        assert_eq!(parts.len(), 4, "{line}");
        let (hhmm, rest) = parts[0].split_once(' ').unwrap();
        assert_eq!((hhmm.len(), &hhmm[2..3], rest), (5, ":", "metrics"), "{line}");
        assert!(parts[1].strip_prefix("invocations ").is_some_and(|n| n.parse::<u64>().is_ok()), "{line}");
        assert!(parts[2].strip_prefix("errors ").is_some_and(|n| n.parse::<u64>().is_ok()), "{line}");
        // A minute whose latency points are still to come (the newest one's
        // may be late) or that had no calls shows none.
        assert!(parts[3].starts_with("p95 latency ") || parts[3] == "latency -", "{line}");
        minutes.push(hhmm.to_string());
    }
    assert!(lines.iter().any(|l| l.contains(" · p95 latency ")), "the latency comes as a histogram: {lines:?}");
    let mut distinct = minutes.clone();
    distinct.dedup();
    assert_eq!(distinct, minutes, "one line per minute");
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_is_refused_while_running_names_what_it_drops_and_asks_for_yes() {
    let sim = sim(SimConfig { history: Duration::from_secs(600), ..fast_sim() }).await;
    let rx = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let text = sidecar_yaml(&sim, &rx, &state, "");
    let cfg = write_config(dir.path(), &text);
    let store = forge_otel_sidecar::checkpoint::Store::new(&state);
    let small = store.path("prod");
    let journal = small.with_extension("journal");
    let app = start(config(&text)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Records acknowledged, their counts journalled and a checkpoint saved.
    while rx.record_count() == 0 || !small.exists() || !journal.exists() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint and journal written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The sidecar holds the state directory: refused, nothing touched.
    let o = run(args(&["reset", "prod", "-c", &cfg, "--yes"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("in use by another forge-otel-sidecar"), "{}", stderr(&o));
    assert!(small.exists() && journal.exists());
    app.shutdown(Duration::from_secs(10)).await;

    let o = run(args(&["reset", "nope", "-c", &cfg, "--yes"])).await;
    assert_eq!(o.status.code(), Some(2), "unknown source");
    assert!(stderr(&o).contains("unknown source `nope`; the config's sources: prod"), "{}", stderr(&o));

    // No terminal and no --yes: says what it would throw away, changes nothing.
    let o = run(args(&["reset", "prod", "-c", &cfg])).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let told = stdout(&o);
    for what in
        ["watermark 20", "late watermark 20", "gap total 0 s", "delivered-record counts", "Reset throws these away"]
    {
        assert!(told.contains(what), "names {what:?}: {told}");
    }
    assert!(told.contains(&small.display().to_string()) && told.contains(&journal.display().to_string()), "{told}");
    assert!(stderr(&o).contains("pass --yes"), "{}", stderr(&o));
    assert!(small.exists() && journal.exists());

    let o = run(args(&["reset", "prod", "-c", &cfg, "--yes"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("source prod reset"), "{}", stdout(&o));
    assert!(!small.exists() && !journal.exists());
    let o = run(args(&["reset", "prod", "-c", &cfg, "--yes"])).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("nothing to reset"), "{}", stdout(&o));

    // The next start is a first start: everything is delivered again.
    let before = rx.record_count();
    let app = start(config(&text)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rx.record_count() < 2 * before {
        assert!(std::time::Instant::now() < deadline, "not started afresh: {} of {}", rx.record_count(), 2 * before);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.shutdown(Duration::from_secs(10)).await;
    sim.stop().await;
    rx.stop().await;
}
