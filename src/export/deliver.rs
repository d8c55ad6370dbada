//! The one delivery loop of both signals: send until the backend answers
//! for good. Accepted (a partial success counted, capped by what was
//! sent), or refused for good (or retried past `retry.max_elapsed`) and
//! handed to the signal's dead-letter writer. Retryable failures wait
//! with backoff, honouring the server's delay up to `max_retry_after`;
//! cancellation interrupts only those waits, never a request in flight.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::retry::Verdict;
use super::{DeadLetterError, DeliverError, Delivered, SendError};
use crate::backoff::Backoff;
use crate::config::RetryConfig;
use crate::metrics::{LastError, SourceMetrics};
use crate::timefmt::system_millis;

/// What a delivery carries and where its refusals go.
pub(crate) struct Parcel<'a> {
    /// Records or data points in the request.
    pub count: u64,
    /// `"records"` or `"points"`, for the log lines.
    pub what: &'static str,
    pub dead_letter_path: &'a Path,
}

/// Sends with `send` until the backend answers for good; a refusal is
/// written with `dead_letter(reason, now_ms)`.
pub(crate) async fn deliver<S, F>(
    retry: &RetryConfig,
    parcel: Parcel<'_>,
    metrics: &SourceMetrics,
    cancel: &CancellationToken,
    mut send: S,
    dead_letter: impl FnOnce(&str, i64) -> Result<(), DeadLetterError>,
) -> Result<Delivered, DeliverError>
where
    S: FnMut() -> F,
    F: Future<Output = Result<(u64, String), SendError>>,
{
    let (records, what) = (parcel.count, parcel.what);
    let started = Instant::now();
    let mut backoff = Backoff::new(retry.initial_backoff, retry.max_backoff);
    loop {
        let t = Instant::now();
        let result = send().await;
        metrics.export_call(t.elapsed().as_secs_f64());
        let now_ms = system_millis(SystemTime::now());
        let err = match result {
            Ok((rejected, message)) => {
                // The collector's figure, capped: it cannot refuse more than was sent.
                let rejected = rejected.min(records);
                if rejected > 0 {
                    tracing::warn!(source = %metrics.source, rejected, what, message = %message, "collector accepted the request partially");
                    SourceMetrics::add(&metrics.rejected, rejected);
                }
                SourceMetrics::add(&metrics.sent, records.saturating_sub(rejected));
                metrics.update(|s| {
                    s.last_export_ok_ms = Some(now_ms);
                    s.export_failing = false;
                });
                return Ok(Delivered::Accepted { records, rejected });
            }
            Err(e) => e,
        };
        metrics.update(|s| {
            s.export_failing = true;
            s.last_export_error = Some(LastError { at_ms: now_ms, message: err.message.clone() });
        });
        let give_up = retry.max_elapsed.is_some_and(|max| started.elapsed() >= max);
        let delay = match err.verdict {
            Verdict::Retry(_) if give_up => None,
            Verdict::Retry(Some(server)) => Some(server.min(retry.max_retry_after)),
            Verdict::Retry(None) => Some(backoff.next_delay()),
            Verdict::Permanent => None,
        };
        let Some(delay) = delay else {
            SourceMetrics::add(&metrics.send_failed, records);
            let reason =
                if give_up { format!("gave up after {:?}: {}", started.elapsed(), err.message) } else { err.message };
            tracing::error!(source = %metrics.source, records, what, reason = %reason, file = %parcel.dead_letter_path.display(), "collector rejected the request for good; writing it to the dead-letter file");
            dead_letter(&reason, now_ms)?;
            SourceMetrics::add(&metrics.dead_lettered, records);
            return Ok(Delivered::DeadLettered { records, reason });
        };
        metrics.export_retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(source = %metrics.source, what, error = %err.message, retry_in = ?delay, "export failed; retrying");
        if !crate::wait::wait(delay, cancel, &|| metrics.tick(system_millis(SystemTime::now()))).await {
            return Err(DeliverError::Cancelled);
        }
    }
}
