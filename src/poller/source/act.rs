//! Carrying out what an API error means ([`super::super::action`]) and
//! keeping windows inside the API's 14 days.

use std::time::Duration;

use super::super::action::Action;
use super::super::carry::{self, Then};
use super::super::plan;
use super::{EDGE_MS, SourceTask};
use crate::forge::client::ForgeError;
use crate::metrics::SourceMetrics;
use crate::progress::Progress;

impl SourceTask {
    /// Carries out an error's action ([`carry::carry_out`]); returns how long to wait.
    pub(super) fn carry_out(
        &mut self,
        e: &ForgeError,
        act: Action,
        progress: &Progress,
        attempts: &mut u32,
    ) -> Option<Duration> {
        let message = format!(
            "source {} window {}..{} page {}: {e}",
            self.source.name,
            crate::timefmt::format_millis(progress.window.start_ms),
            crate::timefmt::format_millis(progress.window.end_ms),
            progress.pages + 1
        );
        let scene = carry::Scene {
            name: &self.source.name,
            metrics: &self.metrics,
            budget: &self.budget,
            cp: &mut self.cp,
            older_margin_ms: &mut self.older_margin_ms,
            future_lag_ms: &mut self.future_lag_ms,
            now_ms: self.shared.clock.now_ms(),
        };
        match carry::carry_out(scene, act, &progress.window, &message, attempts) {
            Then::Wait(wait) => wait,
            Then::RestartGroup(after) => {
                self.cp.current = Some(Progress { cursor: None, pages: 0, ..progress.clone() });
                self.start_read();
                Some(after)
            }
            Then::Bisect(window) => {
                self.cp.current = Some(Progress { window, cursor: None, pages: 0, ..progress.clone() });
                self.start_read();
                None
            }
            Then::GiveUp(window) => {
                self.finish_group(Progress { window, ..progress.clone() });
                None
            }
        }
    }

    /// New windows never start before the API's 14 days (less the margin);
    /// a window in progress is dropped only once its start passes the
    /// API's hard limit, so a multi-page window at the edge finishes.
    pub(super) fn clamp_retention(&mut self, now: i64) {
        let hard = Self::hard_oldest(now);
        if let Some(p) = &self.cp.current {
            if p.window.start_ms - EDGE_MS >= hard + 1000 {
                return;
            }
            tracing::warn!(source = %self.source.name, "the window being read fell out of the API's 14 days");
            self.cp.current = None;
        }
        let oldest = self.params(now).oldest_ms;
        let gap = plan::clamp_to_retention(&mut self.cp.watermark_ms, &mut self.cp.late_watermark_ms, oldest);
        if gap > 0 {
            let secs = (gap / 1000) as u64;
            self.cp.gap_seconds_total += secs;
            SourceMetrics::add(&self.metrics.gap_seconds, secs);
            tracing::warn!(source = %self.source.name, gap_seconds = secs, "records older than the API's 14 days can no longer be read; starting at the oldest readable time");
            self.publish_marks();
        }
    }
}
