//! Carrying out what an API error means ([`super::super::action`]) and
//! keeping windows inside the API's 14 days.

use std::time::Duration;

use super::super::action::Action;
use super::super::{health, plan};
use super::{EDGE_MS, SourceTask};
use crate::forge::client::ForgeError;
use crate::metrics::SourceMetrics;
use crate::progress::{Pass, Progress, Window};

impl SourceTask {
    /// Carries out an error's action; returns how long to wait.
    pub(super) fn carry_out(
        &mut self,
        e: &ForgeError,
        act: Action,
        progress: &Progress,
        attempts: &mut u32,
    ) -> Option<Duration> {
        let now = self.host_now();
        let message = format!(
            "source {} window {}..{} page {}: {e}",
            self.source.name,
            crate::timefmt::format_millis(progress.window.start_ms),
            crate::timefmt::format_millis(progress.window.end_ms),
            progress.pages + 1
        );
        let name = &self.source.name;
        health::api_failed(&self.metrics, now, &message, matches!(act, Action::ConfigError { .. }));
        match act {
            Action::RateLimited { block } => {
                SourceMetrics::add(&self.metrics.rate_limited, 1);
                if self.budget.throttle(block) {
                    tracing::warn!(source = %name, app = %self.source.app_id, effective_rate = self.budget.effective_rate(), "rate limited while under this process's budget: another client is using this app's API limit; lowering our rate");
                }
                tracing::warn!(source = %name, retry_in = ?block, "{message}");
                health::throttled(&self.metrics);
                None
            }
            Action::ConfigError { after } => {
                tracing::error!(source = %name, retry_in = ?after, "{message}");
                Some(after)
            }
            Action::Retry { after } => {
                tracing::warn!(source = %name, attempt = *attempts, retry_in = ?after, "{message}");
                Some(after)
            }
            Action::RestartGroup { after } => {
                tracing::warn!(source = %name, "{message}; reading this window again from its first page");
                self.cp.current = Some(Progress { cursor: None, pages: 0, ..progress.clone() });
                self.start_read();
                Some(after)
            }
            Action::Replan { after, older_ms, future_ms } => {
                self.older_margin_ms = (self.older_margin_ms + older_ms).min(86_400_000);
                self.future_lag_ms = (self.future_lag_ms + future_ms).min(600_000);
                tracing::error!(source = %name, older_margin_ms = self.older_margin_ms, future_lag_ms = self.future_lag_ms, "{message}; re-planning the window");
                self.cp.current = None;
                Some(after)
            }
            Action::Bisect { mid_ms } => {
                *attempts = 0;
                tracing::warn!(source = %name, "{message}; retrying the window in halves");
                let window = Window { end_ms: mid_ms, complete: false, ..progress.window };
                self.cp.current = Some(Progress { window, cursor: None, pages: 0, ..progress.clone() });
                self.start_read();
                None
            }
            Action::GiveUp => {
                *attempts = 0;
                SourceMetrics::add(&self.metrics.gave_up_pages, 1);
                if progress.window.pass == Pass::First {
                    let secs = ((progress.window.end_ms - progress.window.start_ms) / 1000).max(1) as u64;
                    self.cp.gap_seconds_total += secs;
                    SourceMetrics::add(&self.metrics.gap_seconds, secs);
                }
                tracing::error!(source = %name, "{message}; giving up on this stretch (counted as a gap)");
                let window = Window { complete: false, ..progress.window };
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
