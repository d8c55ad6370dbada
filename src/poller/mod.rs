//! The poller: one task per source, carrying out decisions made by pure
//! functions.
//!
//! - [`plan`]: which window next, and its deadline (DESIGN.md 4-6);
//! - [`budget`]: the per-app budget, earliest deadline first, remembered
//!   across restarts; [`demand`]: what an app's sources ask of it and get;
//! - [`action`]: what a Forge API error means;
//! - [`filter`]: which records of a page go out (counted dedup);
//! - `known`: records the first pass read, which the second recognises
//!   by their bytes instead of decoding them again;
//! - [`health`]: a source's state and error flags;
//! - `carry`: what both kinds of source do once an error's action is
//!   decided, and the state directory written until it is done;
//! - [`metrics_source`]: an App metrics source's loop, by the same rules;
//! - [`source`]: the loop that carries these out, strictly in order:
//!   fetch a page, convert it ([`crate::convert`]), deliver it
//!   ([`crate::export`]) and wait for the answer, and only then save the
//!   checkpoint ([`crate::checkpoint`]). Nothing is queued between stages,
//!   so nothing can be dropped from a queue; a crash repeats at most one page.

pub mod action;
pub mod budget;
mod carry;
pub mod demand;
pub mod filter;
pub mod health;
mod known;
pub mod metrics_source;
pub mod plan;
mod source;

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::Store;
use crate::config::PollConfig;
use crate::export::Exporter;
use crate::forge::client::ForgeClient;
pub use source::SourceTask;

/// Wall-clock time, injected so tests can control it.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::timefmt::system_millis(std::time::SystemTime::now())
    }
}

/// What every source task shares.
pub struct Shared {
    pub client: ForgeClient,
    pub exporter: Exporter,
    pub store: Store,
    pub poll: PollConfig,
    pub max_request_bytes: usize,
    pub max_pages_per_window: u32,
    /// Cap on any delay a Forge answer asks for.
    pub max_server_delay: Duration,
    pub clock: Arc<dyn Clock>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
