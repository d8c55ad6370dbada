//! The one way this crate waits: a sleep that keeps the liveness clock
//! ticking and ends early when cancelled. Used by the poller, the budget
//! and the exporter alike.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a long wait ticks the liveness clock.
pub(crate) const TICK: Duration = Duration::from_secs(5);

/// Sleeps `d`, calling `tick` at the start and at least every [`TICK`].
/// False when cancelled first.
pub async fn wait(d: Duration, cancel: &CancellationToken, tick: &(dyn Fn() + Sync)) -> bool {
    let until = Instant::now().checked_add(d).unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
    loop {
        tick();
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(left.min(TICK)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_while_waiting_and_stops_when_cancelled() {
        let ticks = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let t0 = Instant::now();
        assert!(
            wait(Duration::from_secs(12), &cancel, &|| {
                ticks.fetch_add(1, Ordering::Relaxed);
            })
            .await
        );
        assert!(Instant::now() - t0 >= Duration::from_secs(12));
        assert!(ticks.load(Ordering::Relaxed) >= 3, "ticked at 0, 5, 10 and the end");
        cancel.cancel();
        assert!(!wait(Duration::MAX, &cancel, &|| {}).await, "a huge wait neither overflows nor ignores cancellation");
    }
}
