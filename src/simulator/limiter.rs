//! The per-app sliding-window rate limit, shared by all environments of an
//! app, and the calls of another client spending part of the same budget.
//!
//! The other client's calls are not simulated by a task: they are evenly
//! spaced points in time, replayed into the window whenever a real call
//! arrives, and counted like real calls. They always count, even when the
//! window is full: a client refused retries until it has spent its share,
//! so ours is what is left. The window holds at most `limit` plus the
//! other client's calls.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// One app's window.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    /// Admitted calls, oldest first: (time, ours).
    calls: VecDeque<(Instant, bool)>,
    /// The other client's next call, if it is spending.
    next_other: Option<Instant>,
    /// The other client's calls admitted so far.
    pub other_admitted: u64,
}

impl Limiter {
    /// Admits our call at `now`, or tells how long until a slot frees.
    /// `other` is the other client's calls per `window`.
    pub(crate) fn admit(&mut self, now: Instant, limit: usize, window: Duration, other: u32) -> Result<(), Duration> {
        let period = (other > 0).then(|| (window / other).max(Duration::from_millis(1)));
        self.replay_other(now, window, period);
        self.expire(now, window);
        if self.calls.len() < limit {
            self.calls.push_back((now, true));
            return Ok(());
        }
        Err(self.until_free(now, limit, window, period))
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while self.calls.front().is_some_and(|(t, _)| now.duration_since(*t) >= window) {
            self.calls.pop_front();
        }
    }

    /// Puts the other client's calls up to `now` into the window, in time order.
    fn replay_other(&mut self, now: Instant, window: Duration, period: Option<Duration>) {
        let Some(period) = period else {
            self.next_other = None;
            return;
        };
        // A client that starts spending has been doing so for a while: its
        // last window of calls is already there. Anything older than two
        // windows no longer matters.
        let floor = now.checked_sub(window * 2).unwrap_or(now);
        let mut t = match self.next_other {
            Some(t) => t.max(floor),
            None => now.checked_sub(window).map(|s| s + period).unwrap_or(now),
        };
        while t <= now {
            let at = self.calls.partition_point(|(c, _)| *c <= t);
            self.calls.insert(at, (t, false));
            self.other_admitted += 1;
            t += period;
        }
        self.next_other = Some(t);
    }

    /// When, after `now`, the window first has room for one more call,
    /// counting the other client's calls still to come.
    fn until_free(&self, now: Instant, limit: usize, window: Duration, period: Option<Duration>) -> Duration {
        let n = self.calls.len();
        for (j, (c, _)) in self.calls.iter().enumerate() {
            let at = *c + window;
            let coming = match (period, self.next_other) {
                (Some(p), Some(next)) if next <= at => {
                    (at.duration_since(next).as_nanos() / p.as_nanos().max(1)) as usize + 1
                }
                _ => 0,
            };
            if n - (j + 1) + coming < limit {
                return at.saturating_duration_since(now);
            }
        }
        window
    }

    /// Calls (ours and the other client's) in the window ending at `now`.
    #[cfg(test)]
    pub(crate) fn in_window(&self, now: Instant, window: Duration) -> usize {
        self.calls.iter().filter(|(c, _)| now.duration_since(*c) < window).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);

    #[test]
    fn alone_the_limit_is_ours() {
        let t0 = Instant::now();
        let mut l = Limiter::default();
        for k in 0..30 {
            assert!(l.admit(t0 + Duration::from_millis(k), 30, W, 0).is_ok());
        }
        let wait = l.admit(t0 + Duration::from_secs(1), 30, W, 0);
        assert_eq!(wait, Err(W - Duration::from_secs(1)));
        assert!(l.admit(t0 + W, 30, W, 0).is_ok(), "the oldest call left the window");
    }

    #[test]
    fn another_client_takes_its_share_evenly() {
        let t0 = Instant::now();
        let mut l = Limiter::default();
        // 18 of 30 taken by the other client: 12 left for us in any window.
        let mut ours = 0;
        let mut refused = 0;
        for k in 0..600 {
            let now = t0 + Duration::from_millis(k * 1000);
            match l.admit(now, 30, W, 18) {
                Ok(()) => ours += 1,
                Err(wait) => {
                    refused += 1;
                    assert!(wait <= W && wait > Duration::ZERO, "{wait:?}");
                }
            }
            assert!(l.in_window(now, W) <= 31, "{}", l.in_window(now, W));
        }
        // 10 minutes: 12 per minute are ours, the first minute's included.
        assert!((118..=122).contains(&ours), "ours {ours}, refused {refused}");
        assert!((194..=200).contains(&l.other_admitted), "{}", l.other_admitted);
    }
}
