//! Window planning: which stretch of time a source asks the API for next,
//! and how urgent it is. Pure.
//!
//! A source keeps two marks (DESIGN.md 5 and 6):
//! - `w`: every record with a timestamp before `w` has been delivered
//!   (first pass, read as soon as a stretch is `settle` old);
//! - `w2 ≤ w`: every stretch before `w2` has also been read a second time
//!   once it was `late` old, catching records that appeared late.
//!
//! Each pass's oldest unread stretch has a deadline: `start + interval +
//! settle` for the first pass, `start + step + late` for the second, whose
//! stride is a quarter of `late` and at least `interval` ([`late_step`];
//! DESIGN.md 4). The pass whose deadline is earlier goes first, and the
//! app's budget grants calls across sources in deadline order too, so no
//! pass and no source starves another whatever `interval` is. A pass that
//! waited reads everything it has accumulated (up to an hour), so demand
//! shrinks to what the budget can serve.
//!
//! Windows never start before the API's 14 days less a margin and never
//! end after `now - settle`. A first-pass window that is already `late`
//! old when read is final: `w2` follows `w` over it, so a backfill costs
//! one read per stretch, not two. A window that straddles the late
//! horizon is cut at it for the same reason, when the final part is at
//! least as long as the rest.

pub use crate::progress::{Pass, Window};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Planning time: the earlier of the host's clock and the API's.
    pub now_ms: i64,
    pub settle_ms: i64,
    /// 0: no second pass.
    pub late_ms: i64,
    pub interval_ms: i64,
    /// Oldest start a new window may have (the API's 14 days, margin included).
    pub oldest_ms: i64,
    pub max_window_ms: i64,
}

/// A window to read and its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub window: Window,
    pub due_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Fetch(Planned),
    /// Nothing due before this time.
    Sleep(i64),
}

/// The second pass's stride: it reads once a stretch of this length is
/// `late` old, a quarter of `late_arrival` but never less than `interval`
/// (nor more than a window). Its reads find mostly records delivered
/// already; long stretches fill whole pages, so each re-read record costs
/// its decoding and little else, and the second pass spends a call per
/// stride rather than per interval. A late record waits up to one stride
/// more for it: it arrives within `late_arrival` × 1.25 + `interval`.
pub(crate) fn late_step(p: &Params) -> i64 {
    stride(p.late_ms, p.interval_ms, p.max_window_ms)
}

/// [`late_step`] from the settings alone.
pub(crate) fn stride(late_ms: i64, interval_ms: i64, max_window_ms: i64) -> i64 {
    (late_ms / 4).min(max_window_ms).max(interval_ms.max(1))
}

/// When the stretch starting a window falls due: its deadline, for
/// ordering calls across passes and sources (earliest first).
pub(crate) fn due(window: &Window, p: &Params) -> i64 {
    let (step, wait) = match window.pass {
        Pass::First => (p.interval_ms.max(1), p.settle_ms),
        Pass::Late => (late_step(p), p.late_ms),
    };
    window.start_ms.saturating_add(step).saturating_add(wait)
}

/// Moves marks older than the API's retention up to it. Returns the
/// stretch (ms) of first-pass time that can no longer be read.
pub(crate) fn clamp_to_retention(w: &mut i64, w2: &mut i64, oldest_ms: i64) -> i64 {
    let gap = (oldest_ms - *w).max(0);
    *w = (*w).max(oldest_ms);
    *w2 = (*w2).max(oldest_ms).min(*w);
    gap
}

/// The next window to read: of the passes with a stretch due, the one
/// whose deadline is earliest; else when the next one falls due.
pub fn next(w: i64, w2: i64, p: &Params) -> Next {
    let interval = p.interval_ms.max(1);
    let first_limit = p.now_ms - p.settle_ms;
    let late_on = p.late_ms > 0;
    let complete_cut = p.now_ms - p.late_ms;

    let first = (w + interval <= first_limit).then(|| {
        let end = (w + p.max_window_ms).min(first_limit);
        // A window straddling the late horizon is cut there when its older part
        // is at least as long as the rest (a backfill's end, a long outage): that
        // part is final and never read again; only the recent part gets a second
        // pass. A shorter older part is read with the rest: the second pass
        // covers it in the call it makes anyway, and cutting it would keep a
        // first pass that calls less often than `interval` (a short budget)
        // trailing by `late` for good, each read ending at the late horizon.
        let old_part_long = complete_cut - w >= end - complete_cut;
        let window = if late_on && complete_cut > w + interval && complete_cut < end && old_part_long {
            Window { pass: Pass::First, start_ms: w, end_ms: complete_cut, complete: true }
        } else {
            Window { pass: Pass::First, start_ms: w, end_ms: end, complete: !late_on || end <= complete_cut }
        };
        Planned { window, due_ms: due(&window, p) }
    });
    let second_limit = w.min(complete_cut);
    let step = late_step(p);
    let second = (late_on && second_limit > w2 && w2 + step <= complete_cut).then(|| {
        let end = (w2 + p.max_window_ms).min(second_limit);
        let window = Window { pass: Pass::Late, start_ms: w2, end_ms: end, complete: true };
        Planned { window, due_ms: due(&window, p) }
    });
    match (first, second) {
        (Some(f), Some(s)) => Next::Fetch(if s.due_ms < f.due_ms { s } else { f }),
        (Some(one), None) | (None, Some(one)) => Next::Fetch(one),
        (None, None) => {
            let first_at = w + interval + p.settle_ms;
            let second_at = if late_on { w2 + step + p.late_ms } else { i64::MAX };
            Next::Sleep(first_at.min(second_at).max(p.now_ms + 1))
        }
    }
}

/// Marks after a window is fully read and delivered.
pub(crate) fn advance(w: &mut i64, w2: &mut i64, win: &Window) {
    match win.pass {
        Pass::First => {
            *w = (*w).max(win.end_ms);
            if win.complete && *w2 >= win.start_ms {
                *w2 = (*w2).max(win.end_ms);
            }
        }
        Pass::Late => *w2 = (*w2).max(win.end_ms).min(*w),
    }
}

#[cfg(test)]
mod tests;
