//! What a Forge API error means for the source: a pure function from the
//! error and the page's situation to an [`Action`], beside the exporter's
//! retry rules ([`crate::export::retry`]). The loop carries it out.

use std::time::Duration;

use crate::forge::client::ForgeError;
use crate::progress::Progress;

/// A window whose page keeps failing is halved down to this span, then given up.
pub(crate) const MIN_SPLIT_MS: i64 = 1000;

/// How much older than the API's hard limit a new window stays after the
/// API called a window too old (added to the configured margin each time).
pub(crate) const OLDER_MARGIN_STEP_MS: i64 = 10 * 60_000;
/// How far behind "now" planning moves after the API called a window's end
/// in the future (a clock ahead of the API's without a `Date` header).
pub(crate) const FUTURE_LAG_STEP_MS: i64 = 15_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Wait, then ask for the same page again.
    Retry { after: Duration },
    /// 429: every source of the app waits `block` (server-given and capped, or a backoff).
    RateLimited { block: Duration },
    /// Bad credentials, unknown app or environment: a configuration error,
    /// retried slowly (the token file is re-read on every call).
    ConfigError { after: Duration },
    /// The cursor was refused (expired, or bound to another query): read
    /// this site group again from its first page; what was delivered is
    /// recognised by its counts.
    RestartGroup { after: Duration },
    /// The window itself was refused: drop it and plan again, with the
    /// planning margins moved (`older_ms`: a new window starts that much
    /// later; `future_ms`: planning's "now" moves that much earlier).
    Replan { after: Duration, older_ms: i64, future_ms: i64 },
    /// A page that never parses: read the first half of the window alone.
    Bisect { mid_ms: i64 },
    /// A second-long stretch whose page never parses: give it up (a gap).
    GiveUp,
}

/// The page's situation when the error came.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Situation<'a> {
    pub progress: &'a Progress,
    /// Failed attempts at this page so far, this one included.
    pub attempts: u32,
    /// Planning time (ms) and the API's hard 14-day limit at it.
    pub now_ms: i64,
    pub hard_oldest_ms: i64,
    /// The next delay of the source's exponential backoff.
    pub backoff: Duration,
    pub config_error_retry: Duration,
    /// 0: never give a page up.
    pub max_page_attempts: u32,
    /// Cap on any server-given delay.
    pub max_server_delay: Duration,
}

pub(crate) fn on_error(e: &ForgeError, s: &Situation<'_>) -> Action {
    let window = &s.progress.window;
    match e {
        ForgeError::RateLimited { retry_after } => {
            Action::RateLimited { block: retry_after.unwrap_or(s.backoff).min(s.max_server_delay) }
        }
        ForgeError::Auth { .. } | ForgeError::NotFound { .. } | ForgeError::Token(_) => {
            Action::ConfigError { after: s.config_error_retry }
        }
        ForgeError::BadRequest { .. } if s.progress.cursor.is_some() => Action::RestartGroup { after: s.backoff },
        ForgeError::BadRequest { .. } => {
            // Which end the API refused is read from the window, not from
            // the message's wording, which is not documented.
            let near_oldest = window.start_ms < s.hard_oldest_ms + 3_600_000;
            let near_now = window.end_ms > s.now_ms - 120_000;
            Action::Replan {
                after: s.backoff,
                older_ms: if near_oldest { OLDER_MARGIN_STEP_MS } else { 0 },
                future_ms: if near_now { FUTURE_LAG_STEP_MS } else { 0 },
            }
        }
        ForgeError::Server { .. } | ForgeError::Transport(_) => Action::Retry { after: s.backoff },
        ForgeError::Malformed(_) | ForgeError::TooLarge { .. } => {
            if s.max_page_attempts == 0 || s.attempts < s.max_page_attempts {
                return Action::Retry { after: s.backoff };
            }
            let span = window.end_ms - window.start_ms;
            if span > MIN_SPLIT_MS {
                // A page that never parses usually holds one bad record;
                // halving the window isolates it to a second.
                Action::Bisect { mid_ms: window.start_ms + span / 2 }
            } else {
                Action::GiveUp
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Pass, Window};

    const NOW: i64 = 100 * 86_400_000;
    const HARD: i64 = NOW - 14 * 86_400_000;

    fn progress(start_ms: i64, end_ms: i64, cursor: Option<&str>) -> Progress {
        Progress {
            window: Window { pass: Pass::First, start_ms, end_ms, complete: false },
            group: 0,
            cursor: cursor.map(str::to_string),
            pages: u32::from(cursor.is_some()),
        }
    }

    fn act(e: ForgeError, p: &Progress, attempts: u32) -> Action {
        on_error(
            &e,
            &Situation {
                progress: p,
                attempts,
                now_ms: NOW,
                hard_oldest_ms: HARD,
                backoff: Duration::from_secs(2),
                config_error_retry: Duration::from_secs(300),
                max_page_attempts: 3,
                max_server_delay: Duration::from_secs(300),
            },
        )
    }

    #[test]
    fn every_error_has_its_action() {
        let mid = progress(NOW - 5 * 3_600_000, NOW - 4 * 3_600_000, None);
        let paged = progress(NOW - 5 * 3_600_000, NOW - 4 * 3_600_000, Some("c"));
        let old = progress(HARD + 60_000, HARD + 120_000, None);
        let recent = progress(NOW - 120_000, NOW - 60_000, None);
        let tiny = progress(NOW - 5_000, NOW - 4_500, None);
        let bad = || ForgeError::BadRequest { message: "whatever the API says".into() };
        let malformed = || ForgeError::Malformed("x".into());
        let s = Duration::from_secs;
        let cases: Vec<(ForgeError, &Progress, u32, Action)> = vec![
            (ForgeError::RateLimited { retry_after: Some(s(7)) }, &mid, 1, Action::RateLimited { block: s(7) }),
            (ForgeError::RateLimited { retry_after: None }, &mid, 1, Action::RateLimited { block: s(2) }),
            (ForgeError::RateLimited { retry_after: Some(s(86_400)) }, &mid, 1, Action::RateLimited { block: s(300) }),
            (ForgeError::Auth { status: 401, message: String::new() }, &mid, 1, Action::ConfigError { after: s(300) }),
            (ForgeError::NotFound { message: String::new() }, &mid, 1, Action::ConfigError { after: s(300) }),
            (ForgeError::Token("unreadable".into()), &mid, 1, Action::ConfigError { after: s(300) }),
            (bad(), &paged, 1, Action::RestartGroup { after: s(2) }),
            (bad(), &mid, 1, Action::Replan { after: s(2), older_ms: 0, future_ms: 0 }),
            (bad(), &old, 1, Action::Replan { after: s(2), older_ms: OLDER_MARGIN_STEP_MS, future_ms: 0 }),
            (bad(), &recent, 1, Action::Replan { after: s(2), older_ms: 0, future_ms: FUTURE_LAG_STEP_MS }),
            (ForgeError::Server { status: 503, message: String::new() }, &mid, 1, Action::Retry { after: s(2) }),
            (ForgeError::Transport("reset".into()), &mid, 1, Action::Retry { after: s(2) }),
            (malformed(), &mid, 2, Action::Retry { after: s(2) }),
            (malformed(), &mid, 3, Action::Bisect { mid_ms: NOW - 4 * 3_600_000 - 1_800_000 }),
            (ForgeError::TooLarge { limit: 1 }, &mid, 3, Action::Bisect { mid_ms: NOW - 4 * 3_600_000 - 1_800_000 }),
            (malformed(), &tiny, 3, Action::GiveUp),
        ];
        for (e, p, attempts, want) in cases {
            assert_eq!(act(e.clone(), p, attempts), want, "{e:?} at {p:?}");
        }
    }
}
