//! A page delivered: what goes out, what is recorded as delivered before
//! the next request of the page is sent, where the read goes next, and
//! the checkpoint written once the page is done.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::carry::{self, Deferred};
use super::super::filter::{self, Seen};
use super::super::{health, plan};
use super::{
    MAX_DELIVERED, MAX_EMPTY_PAGES, MAX_LOOP_RESTARTS, PageError, SMALL_FILE_EVERY, STOP_GRACE, SourceTask, Writing,
};
use crate::convert::{self, Decoded, Known, Record};
use crate::export::DeliverError;
use crate::metrics::{LastError, SourceMetrics};
use crate::progress::{Pass, Progress, Window};

impl SourceTask {
    /// Delivers one page and moves the progress on. `Ok(Some(d))`: wait `d`
    /// before the next page (the window is being read again after a cursor loop).
    pub(super) async fn deliver_page(
        &mut self,
        progress: &Progress,
        page: &Decoded,
        call_ms: i64,
        cancel: &CancellationToken,
    ) -> Result<Option<Duration>, PageError> {
        let w = &progress.window;
        let (start_ns, end_ns) = (w.start_ms.saturating_mul(1_000_000), w.end_ms.saturating_mul(1_000_000));
        let records: Vec<Record<'_>> = page.records.iter().collect();
        let seen: Vec<Seen> =
            records.iter().map(|r| Seen { time_unix_nano: r.time_unix_nano, fingerprint: r.fingerprint() }).collect();
        let delivered = &self.delivered;
        let f = filter::filter(seen.iter().copied(), start_ns, end_ns, |t, fp| delivered.count(t, fp), &mut self.read);
        if w.pass == Pass::First && !w.complete && !self.shared.poll.late_arrival.is_zero() {
            // The second read will recognise these by their bytes.
            for (r, s) in records.iter().zip(&seen) {
                if let Some(raw) = r.raw_key() {
                    self.known.insert(Known { raw, time_unix_nano: s.time_unix_nano, fingerprint: s.fingerprint });
                }
            }
        }
        // Recognised records that must go out after all (a late twin of a
        // record seen before) are decoded now, from the page's body.
        let mut decoded_late = Vec::new();
        for &i in &f.deliver {
            if let Some((a, b)) = records.get(i).and_then(Record::skipped) {
                let raw = self.buffers.body.get(a..b).unwrap_or_default();
                match convert::decode_record(raw, page.observed_ns, self.source.privacy.rules()) {
                    Ok(one) => decoded_late.push(one),
                    Err(e) => {
                        // Not delivered: the page is fetched again and counted anew.
                        filter::unread(seen.iter().copied(), start_ns, end_ns, &mut self.read);
                        return Err(PageError::Stuck(format!("a recognised record no longer decodes: {e}")));
                    }
                }
            }
        }
        let mut late_records = decoded_late.iter().filter_map(|d| d.records.iter().next());
        let m = self.metrics.clone();
        SourceMetrics::add(&m.pages, 1);
        SourceMetrics::add(&m.received, f.received);
        SourceMetrics::add(&m.duplicates, f.duplicates);
        SourceMetrics::add(&m.recognised, page.skipped as u64);
        SourceMetrics::add(&m.out_of_window, f.outside);
        SourceMetrics::add(&m.bad_time, page.stats.bad_time);
        SourceMetrics::add(&m.bad_ids, page.stats.bad_ids);
        if let Some(rules) = self.source.privacy.rules() {
            m.privacy_changed(rules.names(), &page.privacy_changed);
            for d in &decoded_late {
                m.privacy_changed(rules.names(), &d.privacy_changed);
            }
        }
        let out: Vec<Record<'_>> = f
            .deliver
            .iter()
            .filter_map(|&i| {
                let r = records.get(i).copied()?;
                if r.skipped().is_some() { late_records.next() } else { Some(r) }
            })
            .collect();
        m.sites_seen(out.iter().filter_map(|r| Some((r.site()?, (r.time_unix_nano / 1_000_000) as i64))));
        health::arrivals(&m, w.pass, call_ms, out.iter().map(|r| r.time_unix_nano));
        let mut pending = out.len() as u64;
        SourceMetrics::add(&m.in_flight, pending);
        let mut done = 0usize;
        let head = self.head.clone();
        let encoded: Vec<&[u8]> = out.iter().map(Record::encoded).collect();
        let mut batches = convert::batches(&head, encoded, self.shared.max_request_bytes).peekable();
        while let Some(batch) = batches.next() {
            let n = batch.records();
            if let Err(e) = self.shared.exporter.deliver(&batch, &m, cancel).await {
                // Not delivered: these records will be fetched again, so they
                // leave the books as if never received.
                m.in_flight.fetch_sub(pending, Ordering::Relaxed);
                m.received.fetch_sub(pending, Ordering::Relaxed);
                // The page is fetched again with the same cursor: its copies
                // leave this read's counts, so what this page's earlier
                // requests delivered is recognised, not numbered anew.
                filter::unread(seen.iter().copied(), start_ns, end_ns, &mut self.read);
                return Err(match e {
                    DeliverError::Cancelled => PageError::Cancelled,
                    DeliverError::DeadLetter(e) => PageError::Stuck(e.to_string()),
                });
            }
            m.in_flight.fetch_sub(n, Ordering::Relaxed);
            pending -= n;
            // What went is on disk before the page's next request is sent;
            // the last request's counts go with the checkpoint ([`Self::commit`]).
            let upto = done + n as usize;
            let entries = f.raise.get(done..upto).unwrap_or_default().to_vec();
            for (t, fp, count) in &entries {
                self.delivered.raise(*t, *fp, *count);
            }
            self.appended += entries.len();
            if batches.peek().is_none() {
                self.unsaved = entries;
            } else if !self.persist_delivered(entries, cancel).await {
                return Err(PageError::Cancelled);
            }
            done = upto;
        }
        self.empty_pages = if records.is_empty() { self.empty_pages + 1 } else { 0 };
        match page.cursor.as_deref() {
            Some(c) => {
                let looped = Some(c) == progress.cursor.as_deref() || self.seen_cursors.contains(c);
                let too_many = progress.pages + 1 >= self.shared.max_pages_per_window;
                let empty_chain = self.empty_pages >= MAX_EMPTY_PAGES;
                if looped || too_many || empty_chain {
                    return Ok(self.cursor_loop(progress, looped, empty_chain));
                }
                self.seen_cursors.insert(c.to_string());
                self.cp.current =
                    Some(Progress { cursor: Some(c.to_string()), pages: progress.pages + 1, ..progress.clone() });
            }
            None => self.finish_group(progress.clone()),
        }
        Ok(None)
    }

    /// A cursor chain that does not end: read the window again from its
    /// first page a few times (later), then cut it short.
    fn cursor_loop(&mut self, progress: &Progress, looped: bool, empty_chain: bool) -> Option<Duration> {
        SourceMetrics::add(&self.metrics.cursor_loops, 1);
        let why = if looped {
            "the API returned a cursor it had returned before"
        } else if empty_chain {
            "the API kept returning empty pages with a cursor"
        } else {
            "more pages than forge.max_pages_per_window"
        };
        tracing::error!(source = %self.source.name, window_start = %crate::timefmt::format_millis(progress.window.start_ms), "{why}; ending this window's pages here");
        let now = self.host_now();
        self.metrics
            .update(|s| s.last_api_error = Some(LastError { at_ms: now, message: format!("cursor loop: {why}") }));
        if self.loop_restarts < MAX_LOOP_RESTARTS {
            // Read the window again from its first page, later; what was
            // delivered already is recognised by its counts.
            self.loop_restarts += 1;
            self.cp.current = Some(Progress { cursor: None, pages: 0, ..progress.clone() });
            self.start_read();
            return Some(self.shared.poll.config_error_retry);
        }
        self.loop_restarts = 0;
        SourceMetrics::add(&self.metrics.gave_up_pages, 1);
        // Not final: the second pass reads this stretch once more.
        self.finish_group(Progress { window: Window { complete: false, ..progress.window }, ..progress.clone() });
        None
    }

    /// Moves to the next site group, or closes the window after the last.
    /// A window cut short (cursor loop, page given up) is marked incomplete,
    /// so the second pass reads its stretch once more.
    pub(super) fn finish_group(&mut self, mut progress: Progress) {
        self.start_read();
        self.loop_restarts = 0;
        progress.group += 1;
        progress.cursor = None;
        progress.pages = 0;
        if progress.group < self.groups.len() {
            self.cp.current = Some(progress);
            return;
        }
        plan::advance(&mut self.cp.watermark_ms, &mut self.cp.late_watermark_ms, &progress.window);
        self.cp.current = None;
        self.delivered.prune_before(self.cp.late_watermark_ms);
        self.known.prune_before(self.cp.late_watermark_ms.saturating_mul(1_000_000));
        if let Some(until) = self.delivered.cap(MAX_DELIVERED) {
            // The oldest counts went: the second pass must not read that
            // stretch again (it would deliver it twice), so it skips it.
            let skip_to = until.min(self.cp.watermark_ms);
            let skipped = (skip_to - self.cp.late_watermark_ms).max(0);
            if skipped > 0 {
                self.cp.late_watermark_ms = skip_to;
                let secs = (skipped / 1000) as u64;
                self.cp.late_pass_skipped_seconds_total += secs;
                // A counter that must survive restarts: written with this page.
                self.small_saved = None;
                SourceMetrics::add(&self.metrics.late_pass_skipped_seconds, secs);
                tracing::warn!(source = %self.source.name, skipped_seconds = secs, "delivered-record memory full; the second pass skips its oldest stretch (late records there are not caught)");
            }
        }
        self.publish_marks();
        if self.appended > 2 * self.delivered.len() + 10_000 {
            // Rewritten with the checkpoint that moved W2, in the same
            // blocking call: never beside an append of this source.
            self.appended = self.delivered.len();
            self.compaction = Some(self.delivered.clone());
        }
    }

    /// Appends delivered counts to the journal (fsynced before the next
    /// small file), retrying until written. False when cancelled before that.
    async fn persist_delivered(&mut self, entries: Vec<(i64, u64, u32)>, cancel: &CancellationToken) -> bool {
        if entries.is_empty() {
            return true;
        }
        if !self.settle(cancel).await {
            return false;
        }
        let (store, name) = (self.shared.store.clone(), self.source.name.clone());
        let what = "delivered records not recorded";
        let write = move || store.append(&name, &entries);
        carry::until_written(&self.source.name, what, &self.metrics, &self.shared.clock, cancel, write).await
    }

    /// Saves the checkpoint after a page: the counts of the page's last
    /// request appended to the journal, then the small file, then a due
    /// journal compaction, in one call off the runtime. The write is
    /// started here and its outcome collected by [`Self::settle`] before
    /// the source's next request (or next write), retrying until it is on
    /// disk: the source usually sleeps meanwhile, and a write nobody waits
    /// for wakes no one when it ends. False when cancelled before an
    /// earlier write was on disk (the next start repeats the last page).
    ///
    /// The small file is written when `force` (an error moved the
    /// progress), when a compaction is due, when a counter that must
    /// survive restarts moved, and otherwise at most every
    /// [`SMALL_FILE_EVERY`]: the journal holds what each page delivered,
    /// so a restart from a small file a few seconds old reads those
    /// seconds again and recognises every record in them (nothing is sent
    /// twice, nothing is skipped); it costs a call or two of the budget,
    /// not a file creation, a rename and an fsync per page.
    pub(super) async fn commit(&mut self, cancel: &CancellationToken, force: bool) -> bool {
        // Writes of one source stay in order: appends before the small file.
        if !self.settle(cancel).await {
            return false;
        }
        #[cfg(feature = "testkit")]
        crate::testkit::crash_point::before_commit();
        let now = std::time::Instant::now();
        let small = force
            || self.compaction.is_some()
            || self.small_saved.is_none_or(|t| now.duration_since(t) >= SMALL_FILE_EVERY);
        if !small && self.unsaved.is_empty() {
            self.small_dirty = true;
            return true;
        }
        let (store, cp) = (self.shared.store.clone(), self.cp.clone());
        let (entries, compaction) = (std::mem::take(&mut self.unsaved), self.compaction.take());
        let write = move || {
            if !small {
                return store.append(&cp.source, &entries);
            }
            store.save_page(&cp, &entries)?;
            carry::compact_due(&store, &cp.source, compaction.as_ref(), "delivered-record");
            Ok::<(), crate::checkpoint::CheckpointError>(())
        };
        self.writing = Some(Writing { write: Deferred::start(write), small, at: now });
        true
    }

    /// Collects the checkpoint write in flight, if any, writing it again
    /// until it is on disk. False when cancelled first: the small file
    /// must then not move past its counts at stop (they are read again).
    pub(super) async fn settle(&mut self, cancel: &CancellationToken) -> bool {
        let Some(w) = self.writing.take() else { return true };
        let saved =
            w.write.finish(&self.source.name, "checkpoint not saved", &self.metrics, &self.shared.clock, cancel).await;
        self.written(saved, w.small, w.at);
        saved
    }

    fn written(&mut self, saved: bool, small: bool, at: std::time::Instant) {
        if saved {
            self.metrics.update(|s| s.checkpoint_failing = false);
            if small {
                self.small_saved = Some(at);
            }
            self.small_dirty = !small;
        } else {
            self.small_dirty = false;
            self.write_lost = true;
        }
    }

    /// Writes the small file once more when the source stops, if a page
    /// moved it since its last write (one attempt: a failure only means
    /// those seconds are read again).
    pub(super) async fn flush_small(&mut self) {
        if let Some(w) = self.writing.take() {
            // Stopping: the write in flight is retried for a few seconds more.
            let never = CancellationToken::new();
            let (name, metrics, clock) = (&self.source.name, &self.metrics, &self.shared.clock);
            let finish = w.write.finish(name, "checkpoint not saved at stop", metrics, clock, &never);
            let saved = tokio::time::timeout(STOP_GRACE, finish).await.unwrap_or(false);
            self.written(saved, w.small, w.at);
        }
        let entries = std::mem::take(&mut self.unsaved);
        let (store, cp) = (self.shared.store.clone(), self.cp.clone());
        if self.write_lost {
            // An earlier write's counts are not on disk: the small file
            // stays where it is (those pages are read again and sent
            // again); this page's counts still go to the journal.
            tracing::warn!(source = %self.source.name, "checkpoint not saved at stop; the last pages are read again at the next start");
            let _ = tokio::task::spawn_blocking(move || store.append(&cp.source, &entries)).await;
            return;
        }
        if !self.small_dirty && entries.is_empty() {
            return;
        }
        match tokio::task::spawn_blocking(move || store.save_page(&cp, &entries)).await {
            Ok(Ok(())) => self.small_dirty = false,
            Ok(Err(e)) => {
                tracing::warn!(source = %self.source.name, error = %e, "checkpoint not saved at stop; the last seconds are read again at the next start")
            }
            Err(e) => tracing::warn!(source = %self.source.name, error = %e, "checkpoint not saved at stop"),
        }
    }
}
