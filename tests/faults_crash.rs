//! TEST-PLAN scenarios on the process side (C*, S2): kills at every
//! moment, broken checkpoint files, a state directory that refuses
//! writes, SIGTERM under load, and secret misconfiguration.

mod common;
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use forge_otel_sidecar::simulator::SimConfig;
use harness::*;

fn sim(history_s: u64) -> SimConfig {
    SimConfig { history: Duration::from_secs(history_s), ..common::fast_sim() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_kill_between_export_and_checkpoint() {
    let Some(w) = World::new(sim(1500), true).await else { return };
    let mut s = w.start(&w.default_config(), &[("FORGE_SIDECAR_FAULT_ABORT_BEFORE_COMMIT", "3")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.proc.is_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let aborted = !s.proc.is_running() && s.proc.text().contains("aborting before checkpoint write 3");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered_before = w.rx.record_count();
    let mut s = w.start(&w.default_config(), &[]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    let pass = aborted && t.lost == 0 && t.dups <= 200 && delivered_before > 0;
    Row {
        pass,
        note: format!(
            "abort injected before the 3rd checkpoint write; the page sent again ({} duplicates, page size 200)",
            t.dups
        ),
        ..w.row("C1", "SIGKILL after the export, before the checkpoint write", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_many_kills_at_random_moments() {
    let Some(w) = World::new(SimConfig { late_fraction: 0.3, ..sim(1500) }, true).await else { return };
    let mut kills = 0;
    let mut clean_starts = 0;
    for i in 0..22u64 {
        let mut s = w.start(&w.default_config(), &[]);
        clean_starts += usize::from(s.proc.is_running());
        // Pseudo-random moments between 50 ms and 1.2 s after the port opened.
        tokio::time::sleep(Duration::from_millis(50 + (i * 7_919 + 13) % 1_150)).await;
        s.proc.kill9();
        kills += 1;
    }
    let mut s = w.start(&w.default_config(), &[]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    let pass = t.lost == 0 && t.dups <= kills * 200 && clean_starts == kills;
    Row {
        pass,
        note: format!("{clean_starts}/{kills} restarts clean; duplicates ≤ one 200-record page per kill"),
        ..w.row("C2", "SIGKILL at random moments, 22 times", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_corrupt_checkpoint_files() {
    let Some(w) = World::new(sim(1500), true).await else { return };
    let store = forge_otel_sidecar::checkpoint::Store::new(&w.state_dir());
    std::fs::create_dir_all(w.state_dir()).unwrap_or_default();
    let mut results = Vec::new();
    for (name, garbage) in
        [("truncated", &b"{\"version\":1,\"source\":\"prod\",\"query_k"[..]), ("garbage", b"\x00\xff not json at all")]
    {
        std::fs::write(store.path("prod"), garbage).unwrap_or_default();
        let mut s = w.start(&w.default_config(), &[]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_, status) = s.get("/status").await;
        let running = s.proc.is_running();
        let aside = std::fs::read_dir(w.state_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .count();
        results.push((name, running, status.contains("moved to"), aside));
        s.proc.terminate(Duration::from_secs(10));
    }
    let mut s = w.start(&w.default_config(), &[]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    let pass =
        results.iter().all(|(_, running, reported, _)| *running && *reported) && results[1].3 == 2 && t.lost == 0;
    Row {
        id: "C3",
        scenario: "checkpoint file truncated, then garbage",
        lost: Some(t.lost),
        dups: Some(t.dups),
        pass,
        note: format!(
            "{results:?} (name, kept running, reported on /status, files moved aside); restarted from initial_lookback, so already delivered records came again (duplicates, not loss)"
        ),
        ..Row::default()
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_state_directory_refuses_writes() {
    let Some(w) = World::new(sim(1500), true).await else { return };
    let store = forge_otel_sidecar::checkpoint::Store::new(&w.state_dir());
    let mut s = w.start(&w.default_config(), &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The checkpoint's temporary file cannot be created (a directory sits at its path):
    // as a full or read-only disk would, every write of the small file fails. It is
    // written after a page at most every 5 s (the journal holds each page's counts),
    // so within 5 s the source stops there and retries.
    let blocker = store.path("prod").with_extension("json.tmp");
    std::fs::create_dir_all(&blocker).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (ready, reason) = s.get("/readyz").await;
    let delivered = w.rx.record_count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = w.rx.record_count() == delivered;
    let running = s.proc.is_running();
    std::fs::remove_dir_all(&blocker).unwrap_or_default();
    let healed = Instant::now();
    // The write is retried with backoff (up to 30 s apart): readiness returns with it.
    let mut ready_after = 0;
    while healed.elapsed() < Duration::from_secs(60) {
        ready_after = s.get("/readyz").await.0;
        if ready_after == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = healed.elapsed();
    let t = w.wait_all(Duration::from_secs(60)).await;
    let pass = t.lost == 0
        && ready == 503
        && reason.contains("checkpoint not saved")
        && stalled
        && running
        && ready_after == 200;
    Row { id: "C4", scenario: "state directory refuses writes, then recovers", lost: Some(t.lost), dups: Some(t.dups), recovery: Some(recovered), pass, note: format!("progress stopped while failing: {stalled}; readiness {ready} (checkpoint not saved) then {ready_after}; running: {running}"), ..Row::default() }.check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c5_sigterm_under_load() {
    // Almost two hours of backlog at 10 records per second (inside the 2 h lookback).
    let Some(w) = World::new(SimConfig { records_per_second: 10.0, page_size: 1000, ..sim(7000) }, true).await else {
        return;
    };
    let config = w.default_config().replace("initial_lookback: 31m", "initial_lookback: 2h");
    let mut s = w.start(&config, &[]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t0 = Instant::now();
    let code = s.proc.terminate(Duration::from_secs(30));
    let took = t0.elapsed();
    let stopped_cleanly = s.proc.text().contains("stopped");
    let mut s = w.start(&config, &[]);
    let t = w.wait_all(Duration::from_secs(90)).await;
    let pass = code == Some(0) && took < Duration::from_secs(25) && t.lost == 0 && t.dups == 0 && stopped_cleanly;
    Row {
        pass,
        note: format!("exit code {code:?} after {:.2} s (grace 25 s); no duplicates after restart", took.as_secs_f64()),
        ..w.row("C5", "SIGTERM during a 70,000-record backfill", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_token_misconfiguration_is_clear_and_secret_free() {
    let Some(w) = World::new(sim(60), false).await else { return };
    let token_file = w.dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap_or_default();
    let both = w.config(
        &format!("api_token: ${{env:FORGE_API_TOKEN}}\n  api_token_file: {}", token_file.display()),
        "",
        "",
        "",
    );
    let unreadable = w.config(&format!("api_token_file: {}", w.dir.path().display()), "", "", "");
    let missing_env = w.config("api_token: ${env:FORGE_API_TOKEN}", "", "", "");
    let mut rows = Vec::new();
    for (case, text, env_token) in [
        ("token and token file", &both, true),
        ("token file unreadable", &unreadable, true),
        ("FORGE_API_TOKEN unset", &missing_env, false),
    ] {
        let path = w.dir.path().join("s2.yaml");
        std::fs::write(&path, text).unwrap_or_default();
        let mut cmd = Command::new(sidecar_bin());
        cmd.args(["run", "--config"]).arg(&path).env_remove("FORGE_API_TOKEN");
        if env_token {
            cmd.env("FORGE_API_TOKEN", TOKEN);
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        rows.push((
            case,
            out.status.code(),
            err.lines().find(|l| l.contains("forge.") || l.contains("missing")).unwrap_or("").trim().to_string(),
            err.contains(TOKEN),
        ));
    }
    let pass = rows.iter().all(|(_, code, msg, leaked)| *code == Some(2) && !msg.is_empty() && !leaked);
    let note = rows
        .iter()
        .map(|(c, code, msg, _)| format!("{c}: exit {} «{msg}»", code.unwrap_or(-1)))
        .collect::<Vec<_>>()
        .join("; ");
    Row {
        id: "S2",
        scenario: "token and token file both set; unreadable token file; unset variable",
        pass,
        note,
        ..Row::default()
    }
    .check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_a_second_instance_on_the_same_sources_is_refused() {
    let Some(w) = World::new(sim(600), false).await else { return };
    let mut first = w.start(&w.default_config(), &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Same config and state directory, another server port.
    let other_port = free_port();
    let text = w
        .default_config()
        .replace(&format!("listen: 127.0.0.1:{}", w.port), &format!("listen: 127.0.0.1:{other_port}"));
    let path = w.dir.path().join("second.yaml");
    std::fs::write(&path, text).unwrap_or_default();
    let out = Command::new(sidecar_bin())
        .args(["run", "--config"])
        .arg(&path)
        .env("FORGE_API_TOKEN", TOKEN)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let refused = out.status.code() == Some(1) && err.contains("in use by another forge-otel-sidecar");
    let t = w.wait_all(Duration::from_secs(30)).await;
    let first_running = first.proc.is_running();
    Row {
        pass: refused && first_running && t.lost == 0 && t.dups == 0,
        note: format!(
            "second process on the same state directory: exit {:?}, «state directory … is in use by another forge-otel-sidecar»; the first kept running. Two instances with separate state directories on one app are not prevented: 429s while under budget are logged as another client sharing the app's limit",
            out.status.code()
        ),
        ..w.row("R4", "two instances on one app", &t)
    }
    .check();
    first.proc.terminate(Duration::from_secs(10));
}

/// Files in the state directory that something set aside.
fn set_aside(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("corrupt") || n.contains("orphan"))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts the sidecar on a checkpoint it must refuse, and tells whether it
/// waited (nothing delivered, not ready, the reason logged) and left the
/// file as it was.
async fn refused(w: &World, cfg: &str, path: &std::path::Path, bytes: &[u8], expect: &str) -> (bool, String) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
    let before = w.settled_count().await;
    let mut s = w.start(cfg, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ready, _) = s.get("/readyz").await;
    let (_, status) = s.get("/status").await;
    let quiet = w.rx.record_count() == before;
    let logged = s.proc.text().contains(expect);
    s.proc.terminate(Duration::from_secs(10));
    let untouched = std::fs::read(path).unwrap_or_default() == bytes;
    let reported = status.contains(expect);
    let ok = ready == 503 && quiet && logged && untouched && reported;
    (
        ok,
        format!(
            "readiness {ready}, nothing delivered {quiet}, logged {logged}, on /status {reported}, file untouched {untouched}"
        ),
    )
}

/// C6: a checkpoint that cannot be read for a while (a directory at its
/// path: every read fails, as with EIO), one written by a newer version,
/// one with a field this version does not know, then changed filters. The
/// source waits and says why, nothing is moved aside or overwritten, it
/// resumes where it was, and changed filters keep the watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c6_checkpoint_unreadable_newer_or_refiltered() {
    let Some(w) = World::new(sim(1500), true).await else { return };
    let store = forge_otel_sidecar::checkpoint::Store::new(&w.state_dir());
    let path = store.path("prod");
    let cfg = w.default_config();
    let mut s = w.start(&cfg, &[]);
    w.wait_all(Duration::from_secs(60)).await;
    s.proc.terminate(Duration::from_secs(10));

    // Unreadable for a while.
    let held = path.with_extension("held");
    std::fs::rename(&path, &held).unwrap();
    std::fs::create_dir(&path).unwrap();
    let before = w.settled_count().await;
    let mut s = w.start(&cfg, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ready, _) = s.get("/readyz").await;
    let waited = w.rx.record_count() == before && ready == 503 && s.proc.is_running();
    std::fs::remove_dir(&path).unwrap();
    std::fs::rename(&held, &path).unwrap();
    let healed = Instant::now();
    while w.rx.record_count() == before && healed.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovery = healed.elapsed();
    // Past the records of the stop (the oracle's cutoff is 6 s back).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let t = w.wait_all(Duration::from_secs(60)).await;
    let resumed = t.lost == 0 && t.dups == 0;
    s.proc.terminate(Duration::from_secs(10));

    // Written by a newer version, and with a field this version does not know.
    let current = std::fs::read(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&current).unwrap();
    v["version"] = serde_json::json!(99);
    let (newer, newer_note) = refused(&w, &cfg, &path, &serde_json::to_vec(&v).unwrap(), "format version 99").await;
    let mut v: serde_json::Value = serde_json::from_slice(&current).unwrap();
    v["written_by_a_later_release"] = serde_json::json!(true);
    let (unknown, unknown_note) =
        refused(&w, &cfg, &path, &serde_json::to_vec(&v).unwrap(), "unknown field `written_by_a_later_release`").await;
    std::fs::write(&path, &current).unwrap();

    // Filters changed (every level listed: the same records, another query).
    let refiltered =
        cfg.replace("    name: prod\n", "    name: prod\n    levels: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]\n");
    assert_ne!(refiltered, cfg);
    let mut s = w.start(&refiltered, &[]);
    let t = w.wait_all(Duration::from_secs(60)).await;
    let kept = s.proc.text().contains("filters changed; keeping its watermark");
    s.proc.terminate(Duration::from_secs(10));
    let aside = set_aside(&w.state_dir());
    let pass = waited && resumed && newer && unknown && kept && t.lost == 0 && t.dups == 0 && aside.is_empty();
    Row {
        pass,
        recovery: Some(recovery),
        note: format!(
            "unreadable: waited {waited} (readiness {ready}), resumed without repeats {resumed}; newer version: {newer_note}; unknown field: {unknown_note}; filters changed: watermark kept {kept}; files set aside: {}",
            aside.len()
        ),
        ..w.row("C6", "checkpoint unreadable for a while, newer version, unknown field, filters changed", &t)
    }
    .check();
}
