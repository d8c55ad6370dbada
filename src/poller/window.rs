//! Window planning: which stretch of time to ask the API for next. Pure.
//!
//! A source keeps two marks (DESIGN.md 5 and 6):
//! - `w`: every record with a timestamp before `w` has been delivered
//!   (first pass, read as soon as a stretch is `settle` old);
//! - `w2 ≤ w`: every stretch before `w2` has also been read a second time
//!   once it was `late` old, catching records that appeared late.
//!
//! Windows are at most one hour, never start before the API's 14 days
//! (less a margin) and never end after `now - settle`. A first-pass window
//! that is already `late` old when read is final: `w2` follows `w` over
//! it, so a backfill costs one read per stretch, not two. A window that
//! straddles the late horizon is cut at it for the same reason.

pub use crate::progress::{Pass, Window};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub now_ms: i64,
    pub settle_ms: i64,
    /// 0: no second pass.
    pub late_ms: i64,
    pub interval_ms: i64,
    /// Oldest start the API accepts, margin included.
    pub oldest_ms: i64,
    pub max_window_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Fetch(Window),
    /// Nothing due before this wall-clock time.
    Sleep(i64),
}

/// Moves marks older than the API's retention up to it. Returns the
/// stretch (ms) of first-pass time that can no longer be read.
pub fn clamp_to_retention(w: &mut i64, w2: &mut i64, oldest_ms: i64) -> i64 {
    let gap = (oldest_ms - *w).max(0);
    *w = (*w).max(oldest_ms);
    *w2 = (*w2).max(oldest_ms).min(*w);
    gap
}

/// The next window to read, oldest need first:
/// 1. while deep in a backfill, finish the second pass's older stretch;
/// 2. the first pass, once `interval` of settled time has accumulated;
/// 3. the second pass, once `interval` of late-settled time has.
pub fn next(w: i64, w2: i64, p: &Params) -> Next {
    let first_limit = p.now_ms - p.settle_ms;
    let late_on = p.late_ms > 0;
    let second_limit = if late_on { w.min(p.now_ms - p.late_ms) } else { w2 };
    let first_due = first_limit - w >= p.interval_ms.max(1) || (first_limit > w && first_limit - w >= p.max_window_ms);
    let deep_backfill = w + p.max_window_ms <= p.now_ms - p.late_ms;
    let second_pending = late_on && second_limit > w2;
    let second_due = second_pending && (second_limit - w2 >= p.interval_ms.max(1) || deep_backfill);

    let first = |complete_cut: i64| {
        let end = (w + p.max_window_ms).min(first_limit);
        // A window straddling the late horizon is cut there: the older part is
        // final and never read again; only the recent part gets a second pass.
        if late_on && complete_cut > w + p.interval_ms.max(1) && complete_cut < end {
            return Window { pass: Pass::First, start_ms: w, end_ms: complete_cut, complete: true };
        }
        Window { pass: Pass::First, start_ms: w, end_ms: end, complete: !late_on || end <= complete_cut }
    };
    let second = || {
        let end = (w2 + p.max_window_ms).min(second_limit);
        Window { pass: Pass::Late, start_ms: w2, end_ms: end, complete: true }
    };
    if deep_backfill && second_pending {
        return Next::Fetch(second());
    }
    if first_due {
        return Next::Fetch(first(p.now_ms - p.late_ms));
    }
    if second_due {
        return Next::Fetch(second());
    }
    let first_at = w + p.interval_ms.max(1) + p.settle_ms;
    let second_at = if late_on { w2 + p.interval_ms.max(1) + p.late_ms } else { i64::MAX };
    Next::Sleep(first_at.min(second_at).max(p.now_ms + 1))
}

/// Marks after a window is fully read and delivered.
pub fn advance(w: &mut i64, w2: &mut i64, win: &Window) {
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
