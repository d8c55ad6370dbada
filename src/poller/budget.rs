//! One API budget per app id, shared by all its sources, site groups and
//! both passes (DESIGN.md 4).
//!
//! At most `limit` calls in any `period`, paced evenly rather than in
//! bursts, with a small margin on the sliding window so network jitter
//! cannot push a call into the server's previous window. Calls go
//! **earliest deadline first**: each caller says when its stretch fell
//! due, and a free slot goes to the waiter whose stretch waited longest.
//!
//! A 429 blocks every caller of the app for the (capped) delay the server
//! gave. A 429 while this process is under its own count means another
//! client spends the same limit: the effective rate is halved, then
//! raised by one call per period without a 429 (AIMD), so the sidecar
//! settles on what is left. The calls of the last period are remembered
//! in the state directory ([`memory`]) so a restart does not burst.

pub mod memory;

use std::collections::{BTreeSet, VecDeque};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::lock;
use memory::Memory;

#[derive(Debug)]
struct Inner {
    /// Times of the last `limit` calls.
    calls: VecDeque<Instant>,
    next_slot: Option<Instant>,
    blocked_until: Option<Instant>,
    /// Waiting callers by (deadline, arrival).
    waiters: BTreeSet<(i64, u64)>,
    arrivals: u64,
    /// Calls per period this process allows itself (≤ limit).
    rate: f64,
    /// Last time the rate changed (cut or raised).
    rate_changed: Instant,
}

#[derive(Debug)]
pub struct Budget {
    pub app: String,
    limit: usize,
    period: Duration,
    inner: Mutex<Inner>,
    notify: Notify,
    memory: Option<Memory>,
}

/// Gap kept beyond the sliding window, so that a request slowed on its way
/// (a new connection, a busy host) still lands in the window it was
/// counted in: 1 % of the window, at least 100 ms, at most 500 ms.
fn margin(period: Duration) -> Duration {
    (period / 100).clamp(Duration::from_millis(100), Duration::from_millis(500))
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

/// The rate after a 429 that came while under the limit: halved, at least one call per period.
fn cut(rate: f64) -> f64 {
    (rate / 2.0).max(1.0)
}

/// Removes a waiter when its `acquire` ends, however it ends.
struct Waiting<'a> {
    budget: &'a Budget,
    key: (i64, u64),
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.budget.inner).waiters.remove(&self.key);
        self.budget.notify.notify_waiters();
    }
}

impl Budget {
    pub fn new(app: &str, limit: u32, period: Duration) -> Self {
        let limit = (limit as usize).max(1);
        Self {
            app: app.to_string(),
            limit,
            period,
            inner: Mutex::new(Inner {
                calls: VecDeque::new(),
                next_slot: None,
                blocked_until: None,
                waiters: BTreeSet::new(),
                arrivals: 0,
                rate: limit as f64,
                rate_changed: Instant::now(),
            }),
            notify: Notify::new(),
            memory: None,
        }
    }

    /// A budget that remembers its calls in `memory` and starts from the
    /// calls remembered there (a restart right after a busy minute waits).
    pub(crate) fn with_memory(app: &str, limit: u32, period: Duration, memory: Memory) -> Self {
        let mut b = Self::new(app, limit, period);
        let now = Instant::now();
        let recent = memory.recent_calls(period);
        {
            let inner = b.inner.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
            for ago in recent {
                if let Some(t) = now.checked_sub(ago) {
                    inner.calls.push_back(t);
                }
            }
            while inner.calls.len() > b.limit {
                inner.calls.pop_front();
            }
            inner.next_slot = inner.calls.back().map(|t| *t + period / b.limit as u32);
        }
        b.memory = Some(memory.keeping(period));
        b
    }

    /// Writes the memory's exact calls when a reserve is on file (a clean
    /// stop). Blocking.
    pub(crate) fn release_memory(&self) {
        if let Some(m) = &self.memory {
            m.release();
        }
    }

    /// Calls per period this process currently allows itself.
    pub(crate) fn effective_rate(&self) -> f64 {
        lock(&self.inner).rate
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn period(&self) -> Duration {
        self.period
    }

    /// Waits for a slot and takes it. `deadline_ms`: when the caller's
    /// stretch fell due; the earliest goes first. Calls `tick` at least
    /// every few seconds while waiting (liveness). `None` when cancelled.
    pub async fn acquire(&self, deadline_ms: i64, cancel: &CancellationToken, tick: &(dyn Fn() + Sync)) -> Option<()> {
        let key = {
            let mut inner = lock(&self.inner);
            inner.arrivals += 1;
            let key = (deadline_ms, inner.arrivals);
            inner.waiters.insert(key);
            key
        };
        let waiting = Waiting { budget: self, key };
        loop {
            tick();
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut inner = lock(&self.inner);
                let now = Instant::now();
                self.recover(&mut inner, now);
                let allowed = (inner.rate.floor() as usize).clamp(1, self.limit);
                let at = earliest(&inner.calls, inner.next_slot, inner.blocked_until, now, allowed, self.period);
                let first = inner.waiters.first() == Some(&key);
                if first && at <= now {
                    inner.calls.push_back(now);
                    while inner.calls.len() > self.limit {
                        inner.calls.pop_front();
                    }
                    inner.next_slot = Some(now + self.period.div_f64(inner.rate.max(1.0)));
                    ControlFlow::Break(self.memory.as_ref().and_then(|m| m.record(now)))
                } else {
                    ControlFlow::Continue(if first { at - now } else { crate::wait::TICK })
                }
            };
            let wait = match wait {
                ControlFlow::Continue(wait) => wait,
                ControlFlow::Break(written) => {
                    // The slot is taken: the next caller need not wait for
                    // this one's file. The call is in the memory's file
                    // (listed or reserved) before it is made: a kill -9
                    // right after it must not let the next process spend
                    // it again.
                    drop(waiting);
                    if let Some(written) = written {
                        let _ = written.await;
                    }
                    return Some(());
                }
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => return None,
                () = &mut notified => {}
                () = tokio::time::sleep(wait.min(crate::wait::TICK)) => {}
            }
        }
    }

    /// Additive increase: one call per period more after a period without a cut.
    fn recover(&self, inner: &mut Inner, now: Instant) {
        if inner.rate < self.limit as f64 && now.duration_since(inner.rate_changed) >= self.period {
            inner.rate = (inner.rate + 1.0).min(self.limit as f64);
            inner.rate_changed = now;
        }
    }

    /// After a 429: nobody calls this app before `delay` has passed.
    /// Returns true when the 429 came while this process was under its
    /// own limit: another client is using the same app's limit, and the
    /// effective rate is cut.
    pub(crate) fn throttle(&self, delay: Duration) -> bool {
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        let until = now.checked_add(delay).unwrap_or(now + crate::net::MAX_SERVER_DELAY);
        inner.blocked_until = Some(inner.blocked_until.map_or(until, |b| b.max(until)));
        let window_start = now.checked_sub(self.period).unwrap_or(now);
        let ours = inner.calls.iter().filter(|t| **t > window_start).count();
        let shared = ours < self.limit;
        if shared {
            inner.rate = cut(inner.rate);
            inner.rate_changed = now;
        }
        drop(inner);
        self.notify.notify_waiters();
        shared
    }
}

#[cfg(test)]
mod tests;
