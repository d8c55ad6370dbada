//! The poller against the simulator: every record exactly once across
//! normal runs, restarts, crashes, late and edge records, API faults and
//! 429 storms, within the budget.

mod common;

use std::time::Duration;

use common::*;
use forge_otel_sidecar::simulator::{Faults, SimConfig, max_calls_in_window};

const BUDGET: usize = 30;
const PERIOD: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_run_delivers_every_record_once_within_budget() {
    let sim = sim(fast_sim()).await;
    let rx = receiver().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = start(config(&sidecar_yaml(&sim, &rx, dir.path(), ""))).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let t = wait_for_all(&sim, &rx, settled_cutoff(), Duration::from_secs(30)).await;
    println!("normal run: {t:?}");
    assert_eq!((t.lost, t.dups), (0, 0), "{t:?}");
    assert!(t.expected > 14_000, "two hours of history: {t:?}");
    let log = sim.requests();
    let max = max_calls_in_window(&log, "demo-app", PERIOD);
    println!("max calls per window: {max}, 429s: {}", log.iter().filter(|r| r.status == 429).count());
    assert!(max <= BUDGET, "{max} calls in one window");
    assert_eq!(log.iter().filter(|r| r.status == 429).count(), 0);
    assert!(app.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_crashes_lose_nothing() {
    let sim = sim(fast_sim()).await;
    let rx = receiver().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = sidecar_yaml(&sim, &rx, dir.path(), "");
    // Clean restart.
    let app = start(config(&text)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(app.shutdown(Duration::from_secs(10)).await);
    // Crashes at pseudo-random moments (a task abort is as abrupt as kill -9 for the state on disk).
    let mut crashes = 0;
    for i in 0..6u64 {
        let app = start(config(&text)).await;
        tokio::time::sleep(Duration::from_millis(150 + (i * 7919) % 600)).await;
        app.abort();
        crashes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let app = start(config(&text)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let t = wait_for_all(&sim, &rx, settled_cutoff(), Duration::from_secs(30)).await;
    println!("restart + {crashes} crashes: {t:?}");
    assert_eq!(t.lost, 0, "{t:?}");
    assert!(t.dups <= crashes * 200, "at most one page (200) repeated per crash: {t:?}");
    assert!(app.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_and_edge_records_in_both_edge_modes() {
    for inclusive in [false, true] {
        let cfg = SimConfig {
            history: Duration::from_secs(1800),
            late_fraction: 0.5,
            edge_fraction: 0.5,
            inclusive_end: inclusive,
            ..fast_sim()
        };
        let sim = sim(cfg).await;
        let rx = receiver().await;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let app = start(config(&sidecar_yaml(&sim, &rx, dir.path(), ""))).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t = wait_for_all(&sim, &rx, settled_cutoff(), Duration::from_secs(30)).await;
        println!("late+edge inclusive={inclusive}: {t:?}");
        assert_eq!((t.lost, t.dups), (0, 0), "inclusive={inclusive}: {t:?}");
        let m = &app.registry.sources()[0];
        assert!(
            m.duplicates.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "the second pass saw delivered records again"
        );
        assert!(app.shutdown(Duration::from_secs(10)).await);
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_429_storms_lose_nothing_and_respect_the_budget() {
    let cfg = SimConfig {
        history: Duration::from_secs(3600),
        faults: Faults {
            p_500: 0.1,
            p_503: 0.1,
            p_429_no_retry_after: 0.05,
            p_malformed: 0.03,
            p_truncated: 0.03,
            p_html: 0.02,
            ..Faults::default()
        },
        ..fast_sim()
    };
    let sim = sim(cfg).await;
    let rx = receiver().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = start(config(&sidecar_yaml(&sim, &rx, dir.path(), "  max_page_attempts: 0"))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.set_faults(Faults { n_429: 5, retry_after_secs: 1, p_500: 0.1, p_503: 0.1, ..Faults::default() });
    tokio::time::sleep(Duration::from_secs(8)).await;
    let t = wait_for_all(&sim, &rx, settled_cutoff(), Duration::from_secs(40)).await;
    let log = sim.requests();
    let errors = log.iter().filter(|r| r.status >= 500).count();
    let throttled = log.iter().filter(|r| r.status == 429).count();
    let max = max_calls_in_window(&log, "demo-app", PERIOD);
    println!("faults: {t:?}, 5xx {errors}, 429 {throttled}, max calls per window {max}");
    assert_eq!((t.lost, t.dups), (0, 0), "{t:?}");
    assert!(errors > 0 && throttled >= 5);
    assert!(max <= BUDGET, "{max}");
    assert!(app.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sites_are_queried_in_groups_of_fifty() {
    let cfg = SimConfig { sites: 120, history: Duration::from_secs(1800), ..fast_sim() };
    let sim = sim(cfg).await;
    let rx = receiver().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sites: Vec<String> = sim.generator().sites.clone();
    let list = sites.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let text = sidecar_yaml(&sim, &rx, dir.path(), "")
        .replace("    name: prod\n", &format!("    name: prod\n    installation_contexts: [{list}]\n"));
    let app = start(config(&text)).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let t = wait_for_all(&sim, &rx, settled_cutoff(), Duration::from_secs(30)).await;
    println!("120 sites: {t:?}");
    assert_eq!((t.lost, t.dups), (0, 0), "{t:?}");
    assert!(app.shutdown(Duration::from_secs(10)).await);
}
