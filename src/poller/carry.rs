//! What the logs and the metrics sources share once a Forge API error's
//! [`Action`] is decided: the health flags, the log line, the budget
//! lowered on a 429 nobody here caused, the margins of a re-plan, the gap
//! counted when a stretch is given up, and the state directory written
//! off the runtime, retried until it is done. Each task then moves its
//! own read (pages, site groups) as [`Then`] says.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::action::Action;
use super::budget::Budget;
use super::{Clock, health};
use crate::backoff::Backoff;
use crate::checkpoint::{Checkpoint, Delivered, Store};
use crate::metrics::SourceMetrics;
use crate::progress::{Pass, Window};

/// The source an error happened to.
pub(super) struct Scene<'a> {
    pub name: &'a str,
    pub metrics: &'a SourceMetrics,
    pub budget: &'a Budget,
    pub cp: &'a mut Checkpoint,
    pub older_margin_ms: &'a mut i64,
    pub future_lag_ms: &'a mut i64,
    pub now_ms: i64,
}

/// What is left for the task to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Then {
    /// Wait this long (if at all), then go on as the checkpoint says.
    Wait(Option<Duration>),
    /// Read the window again from its start after this wait.
    RestartGroup(Duration),
    /// Read this first half of the window now.
    Bisect(Window),
    /// Close this (incomplete) window: the gap is counted already.
    GiveUp(Window),
}

/// Carries out the shared part of `act` for the read of `window`;
/// `message` names the source, window and error.
pub(super) fn carry_out(s: Scene<'_>, act: Action, window: &Window, message: &str, attempts: &mut u32) -> Then {
    let name = s.name;
    health::api_failed(s.metrics, s.now_ms, message, matches!(act, Action::ConfigError { .. }));
    match act {
        Action::RateLimited { block } => {
            SourceMetrics::add(&s.metrics.rate_limited, 1);
            if s.budget.throttle(block) {
                tracing::warn!(source = %name, app = %s.metrics.app, effective_rate = s.budget.effective_rate(), "rate limited while under this process's budget: another client is using this limit; lowering our rate");
            }
            tracing::warn!(source = %name, retry_in = ?block, "{message}");
            health::throttled(s.metrics);
            Then::Wait(None)
        }
        Action::ConfigError { after } => {
            tracing::error!(source = %name, retry_in = ?after, "{message}");
            Then::Wait(Some(after))
        }
        Action::Retry { after } => {
            tracing::warn!(source = %name, attempt = *attempts, retry_in = ?after, "{message}");
            Then::Wait(Some(after))
        }
        Action::RestartGroup { after } => {
            tracing::warn!(source = %name, "{message}; reading this window again from its start");
            Then::RestartGroup(after)
        }
        Action::Replan { after, older_ms, future_ms } => {
            *s.older_margin_ms = (*s.older_margin_ms + older_ms).min(86_400_000);
            *s.future_lag_ms = (*s.future_lag_ms + future_ms).min(600_000);
            tracing::error!(source = %name, older_margin_ms = *s.older_margin_ms, future_lag_ms = *s.future_lag_ms, "{message}; re-planning the window");
            s.cp.current = None;
            Then::Wait(Some(after))
        }
        Action::Bisect { mid_ms } => {
            *attempts = 0;
            tracing::warn!(source = %name, "{message}; retrying the window in halves");
            Then::Bisect(Window { end_ms: mid_ms, complete: false, ..*window })
        }
        Action::GiveUp => {
            *attempts = 0;
            SourceMetrics::add(&s.metrics.gave_up_pages, 1);
            if window.pass == Pass::First {
                let secs = ((window.end_ms - window.start_ms) / 1000).max(1) as u64;
                s.cp.gap_seconds_total += secs;
                SourceMetrics::add(&s.metrics.gap_seconds, secs);
            }
            tracing::error!(source = %name, "{message}; giving up on this stretch (counted as a gap)");
            Then::GiveUp(Window { complete: false, ..*window })
        }
    }
}

/// Runs `write` off the async runtime until it succeeds, retrying with
/// backoff (the failure on /status and in the log as `what`); nothing
/// else of the source moves meanwhile. False when cancelled first.
pub(super) async fn until_written<E, F>(
    name: &str,
    what: &str,
    metrics: &Arc<SourceMetrics>,
    clock: &Arc<dyn Clock>,
    cancel: &CancellationToken,
    write: F,
) -> bool
where
    E: Display + Send + 'static,
    F: Fn() -> Result<(), E> + Send + Sync + 'static,
{
    Deferred::start(write).finish(name, what, metrics, clock, cancel).await
}

/// A write started off the runtime whose outcome is collected later
/// ([`Deferred::finish`]). Nothing polls it while it runs, so its end wakes
/// no one: a task that starts it before a sleep and collects it after
/// saves the runtime a wake-up (and the vCPU an idle exit) per write.
pub(super) struct Deferred<E> {
    running: JoinHandle<Result<(), E>>,
    write: Arc<dyn Fn() -> Result<(), E> + Send + Sync>,
}

impl<E: Display + Send + 'static> Deferred<E> {
    /// Starts `write` on the blocking pool.
    pub(super) fn start(write: impl Fn() -> Result<(), E> + Send + Sync + 'static) -> Self {
        let write: Arc<dyn Fn() -> Result<(), E> + Send + Sync> = Arc::new(write);
        let w = write.clone();
        Self { running: tokio::task::spawn_blocking(move || w()), write }
    }

    /// Whether the write has ended (collecting it then does not wait).
    pub(super) fn is_finished(&self) -> bool {
        self.running.is_finished()
    }

    /// Waits for the write; when it failed, writes again with backoff
    /// until it succeeds, as [`until_written`]. False when cancelled first.
    pub(super) async fn finish(
        self,
        name: &str,
        what: &str,
        metrics: &Arc<SourceMetrics>,
        clock: &Arc<dyn Clock>,
        cancel: &CancellationToken,
    ) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let Self { mut running, write } = self;
        loop {
            let message = match running.await {
                Ok(Ok(())) => return true,
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            health::checkpoint_failed(metrics, clock.now_ms(), message.clone());
            tracing::error!(source = %name, error = %message, "{what}; progress stops until it can be");
            let (m, c) = (metrics.clone(), clock.clone());
            if !crate::wait::wait(backoff.next_delay(), cancel, &move || m.tick(c.now_ms())).await {
                return false;
            }
            let w = write.clone();
            running = tokio::task::spawn_blocking(move || w());
        }
    }
}

/// Rewrites `source`'s journal from `live` when a compaction is due
/// (blocking; called after the small file, never beside an append). A
/// failure is only logged: the journal stays valid and the next due
/// compaction tries again. `what` names the journal in the log line.
pub(super) fn compact_due(store: &Store, source: &str, live: Option<&Delivered>, what: &str) {
    if let Some(live) = live
        && let Err(e) = store.compact(source, live)
    {
        tracing::warn!(source = %source, error = %e, "{what} journal not compacted; trying again later");
    }
}
