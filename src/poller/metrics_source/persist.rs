//! A metrics source's state on disk: the checkpoint loaded (waiting, never
//! overwriting, while it cannot be read), the delivered-point journal
//! appended before anything else moves, and the checkpoint saved.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::{carry, health, ms};
use super::{MetricsSourceTask, Stop};
use crate::backoff::Backoff;
use crate::checkpoint::{Checkpoint, Loaded};

impl MetricsSourceTask {
    /// Loads the checkpoint, waiting while it cannot be read. False when cancelled.
    pub(super) async fn load(&mut self, cancel: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(Duration::from_secs(1), self.shared.poll.config_error_retry);
        loop {
            let (store, name, key) = (self.shared.store.clone(), self.name.clone(), self.query_key.clone());
            let loaded = tokio::task::spawn_blocking(move || store.load(&name, &key)).await;
            let now = self.now();
            let start = (now - ms(self.shared.poll.initial_lookback)).max(self.params(now).oldest_ms);
            match loaded {
                Ok(Ok(Loaded::Missing)) => self.cp = Checkpoint::fresh(&self.name, &self.query_key, start),
                Ok(Ok(Loaded::Resumed { mut cp, delivered, query_changed, .. })) => {
                    if query_changed {
                        tracing::warn!(source = %self.name, "the metrics source's query changed; keeping its watermark");
                        cp.query_key = self.query_key.clone();
                        cp.current = None;
                    }
                    tracing::info!(source = %self.name, watermark = %crate::timefmt::format_millis(cp.watermark_ms), "resuming from checkpoint");
                    self.cp = cp;
                    self.delivered = delivered;
                }
                Ok(Ok(Loaded::MovedAside { to, reason })) => {
                    tracing::error!(source = %self.name, "checkpoint {reason}; moved to {}; starting afresh", to.display());
                    self.cp = Checkpoint::fresh(&self.name, &self.query_key, start);
                }
                Ok(Err(e)) => {
                    health::checkpoint_failed(&self.metrics, now, e.to_string());
                    tracing::error!(source = %self.name, error = %e, "checkpoint unreadable; waiting, nothing is overwritten");
                    if !self.sleep(backoff.next_delay(), cancel).await {
                        return false;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(source = %self.name, error = %e, "checkpoint load failed; retrying");
                    if !self.sleep(backoff.next_delay(), cancel).await {
                        return false;
                    }
                    continue;
                }
            }
            self.metrics.update(|s| s.checkpoint_failing = false);
            self.publish_marks();
            return true;
        }
    }

    /// Appends delivered counts to the journal before anything else moves.
    pub(super) async fn persist(
        &mut self,
        entries: Vec<(i64, u64, u32)>,
        cancel: &CancellationToken,
    ) -> Result<(), Stop> {
        self.appended += entries.len();
        let (store, name) = (self.shared.store.clone(), self.name.clone());
        let write = move || store.append(&name, &entries);
        let what = "delivered points not recorded";
        match carry::until_written(&self.name, what, &self.metrics, &self.shared.clock, cancel, write).await {
            true => Ok(()),
            false => Err(Stop::Cancelled),
        }
    }

    /// Saves the checkpoint, retrying until it is on disk. False when cancelled.
    pub(super) async fn commit(&mut self, cancel: &CancellationToken) -> bool {
        #[cfg(feature = "testkit")]
        crate::testkit::crash_point::before_commit();
        let (store, cp, compaction) = (self.shared.store.clone(), self.cp.clone(), self.compaction.take());
        let write = move || {
            store.save(&cp)?;
            carry::compact_due(&store, &cp.source, compaction.as_ref(), "delivered-point");
            Ok::<(), crate::checkpoint::CheckpointError>(())
        };
        let what = "checkpoint not saved";
        let saved = carry::until_written(&self.name, what, &self.metrics, &self.shared.clock, cancel, write).await;
        if saved {
            self.metrics.update(|s| s.checkpoint_failing = false);
        }
        saved
    }
}
