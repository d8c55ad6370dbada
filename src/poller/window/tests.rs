use super::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

fn params(now: i64) -> Params {
    Params {
        now_ms: now,
        settle_ms: MIN,
        late_ms: 10 * MIN,
        interval_ms: MIN,
        oldest_ms: now - 14 * DAY + 10 * MIN,
        max_window_ms: HOUR,
    }
}

fn fetch(n: Next) -> Window {
    match n {
        Next::Fetch(w) => w,
        Next::Sleep(t) => panic!("expected a fetch, got sleep until {t}"),
    }
}

#[test]
fn first_start_cuts_at_the_late_horizon_then_reads_the_rest() {
    let now = 100 * DAY;
    let (mut w, mut w2) = (now - HOUR - MIN, now - HOUR - MIN);
    let win = fetch(next(w, w2, &params(now)));
    assert_eq!((win.pass, win.start_ms, win.end_ms, win.complete), (Pass::First, w, now - 10 * MIN, true));
    advance(&mut w, &mut w2, &win);
    assert_eq!(w2, w, "a final window needs no second read");
    let win = fetch(next(w, w2, &params(now)));
    assert_eq!((win.start_ms, win.end_ms), (now - 10 * MIN, now - MIN));
    assert!(!win.complete, "the last ten minutes may still change");
}

#[test]
fn exactly_one_hour_is_one_window() {
    let now = 100 * DAY;
    let mut p = params(now);
    p.late_ms = 0;
    let w = now - HOUR - MIN;
    let win = fetch(next(w, w, &p));
    assert_eq!(win.end_ms - win.start_ms, HOUR);
    let win = fetch(next(w - 1, w - 1, &p));
    assert_eq!(win.end_ms - win.start_ms, HOUR, "one ms more is two windows");
}

#[test]
fn windows_never_exceed_an_hour_or_the_settle_delay() {
    let now = 100 * DAY;
    for behind in [MIN, 59 * MIN, HOUR, HOUR + 1, 5 * HOUR, 13 * DAY] {
        let w = now - MIN - behind;
        let win = fetch(next(w, w, &params(now)));
        assert!(win.end_ms - win.start_ms <= HOUR, "{behind}");
        assert!(win.end_ms <= now - MIN, "{behind}");
        assert_eq!(win.start_ms, w);
    }
}

#[test]
fn steady_state_waits_for_an_interval_of_settled_time() {
    let now = 100 * DAY;
    let p = params(now);
    let w = now - MIN - 30_000;
    assert_eq!(next(w, w - 9 * MIN, &p), Next::Sleep((w + MIN + MIN).min(w - 9 * MIN + MIN + 10 * MIN)));
    let w = now - MIN - MIN;
    assert_eq!(fetch(next(w, w - 9 * MIN, &p)).end_ms, now - MIN);
}

#[test]
fn catch_up_is_oldest_first_and_single_pass() {
    // Twenty hours behind: walk forward window by window; stretches older than
    // `late` are read once, the recent ones twice.
    let mut now = 100 * DAY;
    let (mut w, mut w2) = (now - 20 * HOUR, now - 20 * HOUR);
    let mut reads: Vec<Window> = Vec::new();
    for _ in 0..100 {
        match next(w, w2, &params(now)) {
            Next::Fetch(win) => {
                if let Some(last) = reads.iter().rev().find(|r| r.pass == win.pass) {
                    assert_eq!(last.end_ms, win.start_ms, "each pass is contiguous");
                }
                advance(&mut w, &mut w2, &win);
                reads.push(win);
            }
            Next::Sleep(t) => now = t,
        }
        if now > 100 * DAY + 30 * MIN {
            break;
        }
    }
    let first: Vec<_> = reads.iter().filter(|r| r.pass == Pass::First).collect();
    let late: Vec<_> = reads.iter().filter(|r| r.pass == Pass::Late).collect();
    assert!(first.windows(2).all(|p| p[0].start_ms < p[1].start_ms), "oldest first");
    assert_eq!(first.iter().take(19).filter(|r| r.complete).count(), 19, "backfill windows are final");
    let late_ms: i64 = late.iter().map(|r| r.end_ms - r.start_ms).sum();
    let first_ms: i64 = first.iter().map(|r| r.end_ms - r.start_ms).sum();
    assert!(late_ms < 2 * HOUR, "only the recent stretch is read twice: {late_ms}");
    assert!(first_ms >= 20 * HOUR);
    assert!(w2 <= w);
}

#[test]
fn every_stretch_is_read_twice_in_steady_state_at_most() {
    let start = 100 * DAY;
    let mut now = start;
    let (mut w, mut w2) = (now - MIN, now - MIN);
    let mut first_ms = 0;
    let mut late_ms = 0;
    let mut covered_late = Vec::new();
    while now < start + 3 * HOUR {
        match next(w, w2, &params(now)) {
            Next::Fetch(win) => {
                match win.pass {
                    Pass::First => first_ms += win.end_ms - win.start_ms,
                    Pass::Late => {
                        late_ms += win.end_ms - win.start_ms;
                        assert!(win.end_ms <= now - 10 * MIN, "second pass reads only late-settled time");
                        covered_late.push((win.start_ms, win.end_ms));
                    }
                }
                advance(&mut w, &mut w2, &win);
            }
            Next::Sleep(t) => {
                assert!(t > now);
                now = t;
            }
        }
    }
    assert!(late_ms <= first_ms);
    assert!(first_ms >= 3 * HOUR - 3 * MIN);
    assert!(covered_late.windows(2).all(|p| p[0].1 == p[1].0), "second pass has no holes");
}

#[test]
fn late_zero_turns_the_second_pass_off() {
    let now = 100 * DAY;
    let mut p = params(now);
    p.late_ms = 0;
    let (mut w, mut w2) = (now - 2 * HOUR, now - 2 * HOUR);
    for _ in 0..5 {
        if let Next::Fetch(win) = next(w, w2, &p) {
            assert_eq!(win.pass, Pass::First);
            assert!(win.complete);
            advance(&mut w, &mut w2, &win);
        }
    }
    assert_eq!(w, w2);
}

#[test]
fn retention_clamp_counts_the_gap() {
    let now = 100 * DAY;
    let oldest = now - 14 * DAY + 10 * MIN;
    let (mut w, mut w2) = (now - 15 * DAY, now - 15 * DAY - MIN);
    assert_eq!(clamp_to_retention(&mut w, &mut w2, oldest), DAY + 10 * MIN);
    assert_eq!((w, w2), (oldest, oldest));
    let win = fetch(next(w, w2, &params(now)));
    assert!(win.start_ms >= oldest, "never asks for an older window");
    // Exactly at the limit: no gap.
    let (mut w, mut w2) = (oldest, oldest);
    assert_eq!(clamp_to_retention(&mut w, &mut w2, oldest), 0);
}

#[test]
fn a_clock_moving_backwards_plans_nothing_new() {
    let now = 100 * DAY;
    let (w, w2) = (now - MIN, now - 11 * MIN);
    let earlier = params(now - 30 * MIN);
    match next(w, w2, &earlier) {
        Next::Sleep(t) => assert!(t > now - 30 * MIN),
        Next::Fetch(win) => panic!("fetched {win:?} after the clock went back"),
    }
}

#[test]
fn late_pass_never_overtakes_the_first() {
    let now = 100 * DAY;
    let (mut w, mut w2) = (now - 5 * MIN, now - 30 * MIN);
    let win = fetch(next(w, w2, &params(now)));
    assert_eq!(win.pass, Pass::First);
    advance(&mut w, &mut w2, &win);
    let win = fetch(next(w, w2, &params(now)));
    assert_eq!(win.pass, Pass::Late);
    assert!(win.end_ms <= now - 10 * MIN);
    advance(&mut w, &mut w2, &win);
    assert!(w2 <= w);
}
