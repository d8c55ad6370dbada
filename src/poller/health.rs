//! A source's health as `/status`, `/readyz` and the metrics show it: the
//! one place the poller changes a source's state and error flags.

use crate::checkpoint::Checkpoint;
use crate::config::PollConfig;
use crate::metrics::{LastError, SourceMetrics, SourceState};
use crate::progress::Pass;

use super::ms;

/// The state a source is in, from its flags and how far behind it is. Pure.
pub(crate) fn state_of(current: SourceState, failing: bool, behind_ms: i64, interval_ms: i64) -> SourceState {
    if failing {
        if current == SourceState::Throttled { SourceState::Throttled } else { SourceState::Error }
    } else if behind_ms > interval_ms * 2 + 1000 {
        SourceState::CatchingUp
    } else {
        SourceState::Live
    }
}

pub(crate) fn set_state(m: &SourceMetrics, cp: &Checkpoint, now: i64, poll: &PollConfig) {
    let behind = now - ms(poll.settle_delay) - cp.watermark_ms;
    m.update(|s| {
        let failing = s.config_error || s.api_failing || s.export_failing || s.checkpoint_failing;
        s.state = state_of(s.state, failing, behind, ms(poll.interval));
    });
}

pub(crate) fn api_ok(m: &SourceMetrics, at_ms: i64) {
    m.update(|s| {
        s.last_poll_ok_ms = Some(at_ms);
        s.api_failing = false;
        s.config_error = false;
        if s.state == SourceState::Throttled {
            s.state = SourceState::Live;
        }
    });
}

pub(crate) fn api_failed(m: &SourceMetrics, at_ms: i64, message: &str, config_error: bool) {
    m.update(|s| {
        s.api_failing = true;
        s.config_error = config_error;
        s.last_api_error = Some(LastError { at_ms, message: message.to_string() });
    });
}

pub fn throttled(m: &SourceMetrics) {
    m.update(|s| s.state = SourceState::Throttled);
}

pub fn stuck(m: &SourceMetrics) {
    m.update(|s| s.state = SourceState::Error);
}

pub(crate) fn checkpoint_failed(m: &SourceMetrics, at_ms: i64, message: String) {
    m.update(|s| {
        s.checkpoint_failing = true;
        s.state = SourceState::Error;
        s.last_checkpoint_error = Some(LastError { at_ms, message });
    });
}

/// How late delivered records arrived (first seen minus their own time),
/// and how many only the second pass found.
pub fn arrivals(m: &SourceMetrics, pass: Pass, seen_ms: i64, times_ns: impl Iterator<Item = u64>) {
    let mut n = 0;
    for t in times_ns {
        n += 1;
        if t > 0 && t <= i64::MAX as u64 {
            let delay = (seen_ms - (t / 1_000_000) as i64).max(0);
            m.observe_arrival_delay(delay as f64 / 1000.0);
        }
    }
    if pass == Pass::Late {
        SourceMetrics::add(&m.found_late, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_table() {
        use SourceState::*;
        let cases = [
            (Starting, false, 0, Live),
            (Live, false, 10_000, Live),
            (Live, false, 200_000, CatchingUp),
            (Live, true, 0, Error),
            (Throttled, true, 0, Throttled),
            (Error, false, 0, Live),
        ];
        for (current, failing, behind, want) in cases {
            assert_eq!(state_of(current, failing, behind, 60_000), want, "{current:?} {failing} {behind}");
        }
    }
}
