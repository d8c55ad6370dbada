//! TEST-PLAN scenarios across restarts and at the 14-day edge (R14, R15,
//! T4): the built binary against the simulator, through a real collector.
//! Time is compressed through the config. Each prints a `RELIABILITY|...` row.

mod common;
mod harness;

use std::time::{Duration, SystemTime};

use forge_otel_sidecar::simulator::SimConfig;
use forge_otel_sidecar::simulator::behaviour::Behaviour;
use harness::*;

fn sim(history_s: u64) -> SimConfig {
    SimConfig { history: Duration::from_secs(history_s), ..common::fast_sim() }
}

/// R14: kill -9 in a catch-up that spends the whole budget, then an
/// immediate restart: the budget's recent calls are remembered, so the
/// new process does not burst into a 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_kill_in_a_saturated_catch_up_and_restart_at_once() {
    let Some(w) = World::new(SimConfig { page_size: 50, ..sim(1800) }, true).await else { return };
    let mut s = w.start(&w.default_config(), &[]);
    // Let the catch-up fill the budget's window (30 calls per 3 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    s.proc.kill9();
    let mut s = w.start(&w.default_config(), &[]);
    let t = w.wait_all(Duration::from_secs(120)).await;
    let n429 = w.count_status(429);
    if t.lost > 0 {
        for l in s.proc.lines().iter().rev().take(15) {
            eprintln!("sidecar: {l}");
        }
    }
    Row {
        pass: n429 == 0 && t.lost == 0 && t.dups <= 50 && w.max_calls() <= 30,
        note: format!("restarted at once after kill -9; {} duplicates (page of 50)", t.dups),
        ..w.row("R14", "kill -9 in a saturated catch-up, immediate restart", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

/// R15: cursors expire after 1 s; the process is killed in the middle of
/// multi-page windows and restarted after its cursor expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r15_expired_cursor_across_a_restart() {
    let b = Behaviour { cursor_ttl_ms: 1_000, ..Behaviour::default() };
    let Some(w) = World::new(SimConfig { page_size: 40, behaviour: b, ..sim(1800) }, true).await else { return };
    let mut kills = 0;
    for pause in [1_500u64, 2_300, 3_100] {
        let mut s = w.start(&w.default_config(), &[]);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        s.proc.kill9();
        kills += 1;
        // The saved cursor (if any) expires meanwhile.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
    }
    let mut s = w.start(&w.default_config(), &[]);
    let t = w.wait_all(Duration::from_secs(120)).await;
    Row {
        pass: t.lost == 0 && t.dups <= kills * 40,
        note: format!(
            "{kills} kills, each restart after the cursor expired; {} duplicates (≤ a page of 40 per kill)",
            t.dups
        ),
        ..w.row("R15", "cursor expired between pages and across a restart", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}

/// T4: a source 14 days behind whose oldest hour is a dozen pages deep,
/// with a retention margin of 2 s: the window at the edge finishes, and
/// the source reaches the present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_fourteen_days_behind_with_deep_oldest_hour() {
    let cfg = SimConfig {
        history: Duration::from_secs(14 * 86_400),
        records_per_second: 0.01,
        page_size: 3,
        rate_limit: 600,
        ..common::fast_sim()
    };
    let Some(w) = World::new(cfg, true).await else { return };
    let now = forge_otel_sidecar::timefmt::system_millis(SystemTime::now());
    let config = w
        .config("api_token: ${env:FORGE_API_TOKEN}", "  retention_margin: 2s\n  initial_lookback: 14d", "", "")
        .replace("requests_per_minute: 30", "requests_per_minute: 600")
        .replace("  initial_lookback: 31m\n", "");
    let mut s = w.start(&config, &[]);
    // Every record newer than the margin (and a little slack for start-up) is expected.
    let floor = now - 14 * 86_400_000 + 30_000;
    let expected = common::seqs_between(&w.sim, floor, common::settled_cutoff());
    let t = w.wait_for(expected, Duration::from_secs(240)).await;
    let behind = s.metric("forge_sidecar_watermark_lag_seconds").await;
    Row {
        pass: t.lost == 0 && t.dups == 0,
        note: format!("12 pages per hour for 14 days at 600 calls per 3 s; lag at the end {behind:.0} s"),
        ..w.row("T4", "14 days behind, oldest hour many pages deep", &t)
    }
    .check();
    s.proc.terminate(Duration::from_secs(10));
}
