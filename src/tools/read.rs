//! Reads one window of a source page by page, as the poller does: 1 ms
//! past both ends asked for, [start, end) kept by the poller's pure
//! filter, every call paced by the app's budget.
//!
//! The budget remembers its calls in the state directory's budget memory,
//! the same file a running sidecar with the same `state.dir` uses: each
//! process reads the other's recent calls when it starts (not later), so
//! a command started beside a busy sidecar waits for the calls already
//! spent, and a 429 from the calls spent since slows it down (the
//! budget's cut on a shared limit).
//!
//! What a command has emitted is counted per record key, so a window read
//! again (a refused cursor, a resumed backfill) emits each copy once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ToolError;
use crate::backoff::Backoff;
use crate::config::{Config, SourceConfig};
use crate::convert::{Decoded, decode_page};
use crate::forge::client::{ForgeClient, ForgeError, Query};
use crate::poller::budget::{Budget, memory::Memory};
use crate::poller::filter::{self, ReadCounts, Seen};

/// Failed attempts at one page (429s aside) before the command gives up.
const MAX_ATTEMPTS: u32 = 8;
/// 429s in a row at one page before the command gives up.
const MAX_RATE_LIMITED: u32 = 100;
/// Refused cursors in one window before the command gives up.
const MAX_RESTARTS: u32 = 3;

/// The reading state of one window.
#[derive(Debug)]
pub struct WindowRead {
    pub start_ms: i64,
    pub end_ms: i64,
    groups: Vec<Vec<String>>,
    group: usize,
    cursor: Option<String>,
    pages: u32,
    restarts: u32,
    read: ReadCounts,
    /// Copies emitted per (time, fingerprint): what a read again skips.
    pub emitted: HashMap<(i64, u64), u32>,
    done: bool,
}

impl WindowRead {
    pub fn new(source: &SourceConfig, start_ms: i64, end_ms: i64) -> Self {
        Self {
            start_ms,
            end_ms,
            groups: source.site_groups(),
            group: 0,
            cursor: None,
            pages: 0,
            restarts: 0,
            read: ReadCounts::default(),
            emitted: HashMap::new(),
            done: false,
        }
    }

    /// Records `entries` (from [`PageRead::raise`]) as emitted.
    pub fn commit(&mut self, entries: &[(i64, u64, u32)]) {
        for (t, fp, n) in entries {
            let c = self.emitted.entry((*t, *fp)).or_insert(0);
            *c = (*c).max(*n);
        }
    }

    fn restart_group(&mut self) {
        self.cursor = None;
        self.pages = 0;
        self.read.clear();
        self.restarts += 1;
    }
}

/// One page read: the decoded records, and which of them to emit.
#[derive(Debug)]
pub struct PageRead {
    pub decoded: Decoded,
    /// Indices into `decoded.records` of the records to emit, in page order.
    pub emit: Vec<usize>,
    /// For each emitted record: its key and count, for [`WindowRead::commit`].
    pub raise: Vec<(i64, u64, u32)>,
}

pub struct Reader {
    client: ForgeClient,
    budget: Budget,
    backoff: (Duration, Duration),
    max_delay: Duration,
    max_pages: u32,
    calls: AtomicU64,
}

impl Reader {
    /// A reader for `source`'s app, its budget shared through `cfg.state.dir`.
    pub fn new(cfg: &Config, source: &SourceConfig) -> Result<Self, ToolError> {
        super::ensure_dir(&cfg.state.dir)?;
        let client = ForgeClient::new(&cfg.forge).map_err(|e| ToolError::runtime(e.to_string()))?;
        let limit = cfg.forge.requests_per_minute;
        let memory = Memory::open(&cfg.state.dir, &source.app_id, limit as usize);
        Ok(Self {
            client,
            budget: Budget::with_memory(&source.app_id, limit, cfg.forge.rate_period, memory),
            backoff: (cfg.poll.backoff_initial, cfg.poll.backoff_max),
            max_delay: cfg.forge.max_retry_delay,
            max_pages: cfg.forge.max_pages_per_window.max(1),
            calls: AtomicU64::new(0),
        })
    }

    /// API calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The next page of `w` into `body`; `None` when the window is done.
    pub async fn next_page(
        &self,
        source: &SourceConfig,
        w: &mut WindowRead,
        body: &mut Vec<u8>,
        cancel: &CancellationToken,
    ) -> Result<Option<PageRead>, ToolError> {
        if w.done {
            return Ok(None);
        }
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        let mut limited = 0u32;
        loop {
            let decoded = match self.call(source, w, body, cancel).await? {
                Ok(d) => d,
                Err(e) => {
                    let wait = match &e {
                        ForgeError::RateLimited { retry_after } => {
                            limited += 1;
                            let delay = retry_after.unwrap_or_else(|| backoff.next_delay()).min(self.max_delay);
                            self.budget.throttle(delay);
                            if limited > MAX_RATE_LIMITED {
                                return Err(ToolError::runtime(format!("gave up: {e}")));
                            }
                            Duration::ZERO
                        }
                        ForgeError::BadRequest { .. } if w.cursor.is_some() && w.restarts < MAX_RESTARTS => {
                            // An expired cursor: the window's group again; the
                            // emitted counts keep what went out from going twice.
                            w.restart_group();
                            backoff.next_delay()
                        }
                        ForgeError::Server { .. }
                        | ForgeError::Transport(_)
                        | ForgeError::TooLarge { .. }
                        | ForgeError::Malformed(_)
                            if backoff.attempts() + 1 < MAX_ATTEMPTS =>
                        {
                            backoff.next_delay()
                        }
                        _ => return Err(ToolError::runtime(e.to_string())),
                    };
                    tracing::debug!(error = %e, retry_in = ?wait, "page failed; asking again");
                    tokio::select! {
                        () = cancel.cancelled() => return Err(ToolError::runtime("interrupted")),
                        () = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            return self.advance(w, decoded).map(Some);
        }
    }

    /// One API call for `w`'s next page, decoded. The outer error stops
    /// the command; the inner one is the API's, for the retry rules.
    async fn call(
        &self,
        source: &SourceConfig,
        w: &WindowRead,
        body: &mut Vec<u8>,
        cancel: &CancellationToken,
    ) -> Result<Result<Decoded, ForgeError>, ToolError> {
        if self.budget.acquire(w.start_ms, cancel, &|| {}).await.is_none() {
            return Err(ToolError::runtime("interrupted"));
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let sites = w.groups.get(w.group).map(Vec::as_slice).unwrap_or_default();
        let q = Query {
            app_id: &source.app_id,
            environment_id: &source.environment_id,
            // The API's edges are not documented: ask 1 ms past both, keep [start, end).
            start_ms: w.start_ms - 1,
            end_ms: w.end_ms + 1,
            levels: &source.levels,
            message: source.message.as_deref(),
            sites,
            cursor: w.cursor.as_deref(),
        };
        if let Err(e) = self.client.fetch(&q, body).await {
            return Ok(Err(e));
        }
        let observed = u64::try_from(super::now_ms()).unwrap_or(0).saturating_mul(1_000_000);
        Ok(decode_page(body, observed).map_err(|e| ForgeError::Malformed(e.to_string())))
    }

    /// Filters the page and moves the window's read on.
    fn advance(&self, w: &mut WindowRead, decoded: Decoded) -> Result<PageRead, ToolError> {
        let (start_ns, end_ns) = (w.start_ms.saturating_mul(1_000_000), w.end_ms.saturating_mul(1_000_000));
        let seen =
            decoded.records.iter().map(|r| Seen { time_unix_nano: r.time_unix_nano, fingerprint: r.fingerprint() });
        let emitted = &w.emitted;
        let f =
            filter::filter(seen, start_ns, end_ns, |t, fp| emitted.get(&(t, fp)).copied().unwrap_or(0), &mut w.read);
        w.pages += 1;
        match decoded.cursor.as_deref() {
            Some(c) if Some(c) == w.cursor.as_deref() => {
                return Err(ToolError::runtime("the API answered the same cursor again (a cursor loop)"));
            }
            Some(_) if w.pages >= self.max_pages => {
                return Err(ToolError::runtime(format!(
                    "more than forge.max_pages_per_window ({}) pages in one window",
                    self.max_pages
                )));
            }
            Some(c) => w.cursor = Some(c.to_string()),
            None => {
                w.cursor = None;
                w.pages = 0;
                w.read.clear();
                w.group += 1;
                w.done = w.group >= w.groups.len();
            }
        }
        Ok(PageRead { decoded, emit: f.deliver, raise: f.raise })
    }
}
