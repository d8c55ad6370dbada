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
        Next::Fetch(planned) => planned.window,
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
fn a_first_pass_calling_less_often_than_interval_is_not_held_at_the_late_horizon() {
    // The budget lets this source call every 3 minutes (interval 1 minute):
    // its first pass is 3 minutes past the late horizon at each call. The short
    // final part is read with the rest, so the read ends at the settle line.
    let now = 100 * DAY;
    let (mut w, mut w2) = (now - 13 * MIN, now - 13 * MIN);
    let win = fetch(next(w, w2, &params(now)));
    assert_eq!((win.pass, win.start_ms, win.end_ms, win.complete), (Pass::First, w, now - MIN, false));
    advance(&mut w, &mut w2, &win);
    assert_eq!((w, w2), (now - MIN, now - 13 * MIN), "the whole stretch waits for its second read");
    // Three minutes later the second pass reads the stretch now final, in one call.
    let later = now + 3 * MIN;
    let win = fetch(next(w, w2, &params(later)));
    assert_eq!((win.pass, win.start_ms, win.end_ms), (Pass::Late, now - 13 * MIN, later - 10 * MIN));
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
            Next::Fetch(Planned { window: win, .. }) => {
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
            Next::Fetch(Planned { window: win, .. }) => {
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
        if let Next::Fetch(Planned { window: win, .. }) = next(w, w2, &p) {
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
        Next::Fetch(planned) => panic!("fetched {planned:?} after the clock went back"),
    }
}

#[test]
fn the_pass_that_waited_longest_goes_first_and_late_never_overtakes() {
    let now = 100 * DAY;
    // The second pass's stretch (due at w2 + 12.5 min: its stride is a quarter
    // of late_arrival) waited longer than the first pass's (due at w + 2 min):
    // it goes first, and stops at `w`.
    let (mut w, mut w2) = (now - 5 * MIN, now - 30 * MIN);
    let planned = match next(w, w2, &params(now)) {
        Next::Fetch(p) => p,
        Next::Sleep(t) => panic!("sleep until {t}"),
    };
    assert_eq!(planned.window.pass, Pass::Late);
    assert_eq!(planned.due_ms, w2 + 150_000 + 10 * MIN);
    assert!(planned.window.end_ms <= now - 10 * MIN && planned.window.end_ms <= w);
    advance(&mut w, &mut w2, &planned.window);
    let win = fetch(next(w, w2, &params(now)));
    assert_eq!(win.pass, Pass::First);
    advance(&mut w, &mut w2, &win);
    assert!(w2 <= w);
}

/// A poll interval at the budget's pace (one call every 2 s at 30/min):
/// with the first pass always due again, the second pass still gets its
/// share and its mark keeps up with the late horizon (the starvation the
/// old "first pass before second" rule caused).
#[test]
fn an_interval_at_the_budgets_pace_starves_neither_pass() {
    let mut p = params(100 * DAY);
    p.interval_ms = 2_000;
    p.settle_ms = 5_000;
    p.late_ms = MIN;
    let start = 100 * DAY;
    let (mut w, mut w2) = (start - 5_000, start - 5_000);
    let mut now = start;
    let (mut firsts, mut lates) = (0, 0);
    let mut worst_late_lag = 0;
    while now < start + 30 * MIN {
        p.now_ms = now;
        p.oldest_ms = now - 14 * DAY;
        match next(w, w2, &p) {
            Next::Fetch(planned) => {
                match planned.window.pass {
                    Pass::First => firsts += 1,
                    Pass::Late => lates += 1,
                }
                advance(&mut w, &mut w2, &planned.window);
                now += 2_000; // the budget's pace: one call every 2 s
            }
            Next::Sleep(t) => now = t,
        }
        if now > start + 2 * MIN {
            worst_late_lag = worst_late_lag.max((now - MIN) - w2);
        }
    }
    // The second pass reads 15 s stretches (a quarter of late_arrival): about
    // 120 reads in 30 minutes, each as soon as its stretch is late-settled.
    assert_eq!(late_step(&p), 15_000);
    assert!(lates > 100 && firsts > 100, "both passes run: {firsts} first, {lates} late");
    assert!(worst_late_lag <= 15_000 + 4_000, "the second pass keeps up: {worst_late_lag} ms behind its horizon");
}

#[test]
fn windows_in_progress_keep_their_deadline() {
    let p = params(100 * DAY);
    let win = Window { pass: Pass::First, start_ms: 5 * MIN, end_ms: 6 * MIN, complete: false };
    assert_eq!(due(&win, &p), 5 * MIN + MIN + MIN);
    let late = Window { pass: Pass::Late, ..win };
    assert_eq!(due(&late, &p), 5 * MIN + 150_000 + 10 * MIN);
}

#[test]
fn the_second_pass_strides_a_quarter_of_late_arrival_never_less_than_interval() {
    let mut p = params(100 * DAY);
    assert_eq!(late_step(&p), 150_000, "10 min late: 2.5 min stretches");
    p.late_ms = 2 * MIN;
    assert_eq!(late_step(&p), MIN, "never below interval");
    p.interval_ms = 1_000;
    assert_eq!(late_step(&p), 30_000);
    p.late_ms = 10 * HOUR;
    assert_eq!(late_step(&p), HOUR, "never more than a window");
    // The stride is waited for: a stretch of 29 s is not read yet, 30 s is, in one window.
    p.late_ms = 2 * MIN;
    p.now_ms = 100 * DAY;
    let w = p.now_ms - 5_000;
    let w2 = p.now_ms - 2 * MIN - 29_000;
    assert!(matches!(next(w, w2, &p), Next::Sleep(t) if t == w2 + 30_000 + 2 * MIN));
    let w2 = w2 - 1_000;
    let win = fetch(next(w, w2, &p));
    assert_eq!((win.pass, win.start_ms, win.end_ms), (Pass::Late, w2, p.now_ms - 2 * MIN));
}
