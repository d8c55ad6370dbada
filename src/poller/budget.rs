//! One API budget per app id, shared by all its sources and site groups.
//!
//! At most `limit` calls in any `period`, paced evenly (`period / limit`
//! apart) rather than in bursts, with a small margin on the sliding window
//! so network jitter cannot push a call into the server's previous window.
//! A 429 blocks every caller of the app until its `Retry-After`. First-pass
//! callers (freshness) go before second-pass callers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    High,
    Low,
}

#[derive(Debug)]
struct Inner {
    calls: VecDeque<Instant>,
    next_slot: Option<Instant>,
    blocked_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Budget {
    pub app: String,
    limit: usize,
    period: Duration,
    inner: Mutex<Inner>,
    high_waiting: AtomicUsize,
}

/// Gap kept beyond the sliding window: 1 % of it, at most 500 ms.
fn margin(period: Duration) -> Duration {
    (period / 100).min(Duration::from_millis(500))
}

/// The earliest time a call may start. Pure.
fn earliest(
    calls: &VecDeque<Instant>,
    next_slot: Option<Instant>,
    blocked_until: Option<Instant>,
    now: Instant,
    limit: usize,
    period: Duration,
) -> Instant {
    let mut t = now;
    if let Some(s) = next_slot {
        t = t.max(s);
    }
    if let Some(b) = blocked_until {
        t = t.max(b);
    }
    if calls.len() >= limit
        && let Some(oldest) = calls.get(calls.len() - limit)
    {
        t = t.max(*oldest + period + margin(period));
    }
    t
}

impl Budget {
    pub fn new(app: &str, limit: u32, period: Duration) -> Self {
        Self {
            app: app.to_string(),
            limit: (limit as usize).max(1),
            period,
            inner: Mutex::new(Inner { calls: VecDeque::new(), next_slot: None, blocked_until: None }),
            high_waiting: AtomicUsize::new(0),
        }
    }

    /// Waits for a slot and takes it, calling `tick` at least every few
    /// seconds while it waits (liveness). `None` when cancelled first.
    pub async fn acquire(
        &self,
        priority: Priority,
        cancel: &CancellationToken,
        tick: &(dyn Fn() + Sync),
    ) -> Option<()> {
        if priority == Priority::High {
            self.high_waiting.fetch_add(1, Ordering::SeqCst);
        }
        let result = self.acquire_inner(priority, cancel, tick).await;
        if priority == Priority::High {
            self.high_waiting.fetch_sub(1, Ordering::SeqCst);
        }
        result
    }

    async fn acquire_inner(
        &self,
        priority: Priority,
        cancel: &CancellationToken,
        tick: &(dyn Fn() + Sync),
    ) -> Option<()> {
        loop {
            tick();
            let wait = {
                let mut inner = lock(&self.inner);
                let now = Instant::now();
                let at = earliest(&inner.calls, inner.next_slot, inner.blocked_until, now, self.limit, self.period);
                let yield_to_high = priority == Priority::Low && self.high_waiting.load(Ordering::SeqCst) > 0;
                if at <= now && !yield_to_high {
                    inner.calls.push_back(now);
                    while inner.calls.len() > self.limit {
                        inner.calls.pop_front();
                    }
                    inner.next_slot = Some(now + self.period / self.limit as u32);
                    return Some(());
                }
                let wait = if at > now { at - now } else { self.period / self.limit as u32 / 4 };
                wait.min(Duration::from_secs(5))
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// After a 429: nobody calls this app before `delay` has passed.
    /// Returns true when the 429 came while this process was under its own
    /// budget (another client is likely using the same app's limit).
    pub fn throttle(&self, delay: Duration) -> bool {
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        let until = now + delay;
        inner.blocked_until = Some(inner.blocked_until.map_or(until, |b| b.max(until)));
        let window_start = now.checked_sub(self.period).unwrap_or(now);
        inner.calls.iter().filter(|t| **t > window_start).count() < self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_evenly_and_never_exceeds_the_window() {
        let b = Budget::new("app", 30, Duration::from_secs(60));
        let cancel = CancellationToken::new();
        let t0 = Instant::now();
        let mut times = Vec::new();
        for _ in 0..95 {
            assert!(b.acquire(Priority::High, &cancel, &|| {}).await.is_some());
            times.push(Instant::now() - t0);
        }
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(2), "evenly paced: {pair:?}");
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().take_while(|u| **u - *t < Duration::from_secs(60)).count();
            assert!(in_window <= 30, "{in_window} calls within 60 s from call {i}");
        }
        // Within 2 % of the minimum possible time for 95 calls at 30/min.
        let total = *times.last().unwrap_or(&Duration::ZERO);
        let minimum = Duration::from_secs(2 * 94);
        assert!(total <= minimum.mul_f64(1.02), "{total:?} vs {minimum:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_blocks_every_caller_until_retry_after() {
        let b = Budget::new("app", 30, Duration::from_secs(60));
        let cancel = CancellationToken::new();
        b.acquire(Priority::High, &cancel, &|| {}).await;
        let t0 = Instant::now();
        assert!(b.throttle(Duration::from_secs(7)), "one call, then a 429: someone else shares the limit");
        b.acquire(Priority::Low, &cancel, &|| {}).await;
        assert!(Instant::now() - t0 >= Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn first_pass_goes_before_second() {
        let b = std::sync::Arc::new(Budget::new("app", 30, Duration::from_secs(60)));
        let cancel = CancellationToken::new();
        b.acquire(Priority::High, &cancel, &|| {}).await;
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (b1, o1, c1) = (b.clone(), order.clone(), cancel.clone());
        let low = tokio::spawn(async move {
            b1.acquire(Priority::Low, &c1, &|| {}).await;
            lock(&o1).push("low");
        });
        tokio::task::yield_now().await;
        let (b2, o2, c2) = (b.clone(), order.clone(), cancel.clone());
        let high = tokio::spawn(async move {
            b2.acquire(Priority::High, &c2, &|| {}).await;
            lock(&o2).push("high");
        });
        let _ = tokio::join!(low, high);
        assert_eq!(*lock(&order), vec!["high", "low"]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_ends_the_wait() {
        let b = Budget::new("app", 1, Duration::from_secs(3600));
        let cancel = CancellationToken::new();
        b.acquire(Priority::High, &cancel, &|| {}).await;
        cancel.cancel();
        assert!(b.acquire(Priority::High, &cancel, &|| {}).await.is_none());
    }
}
