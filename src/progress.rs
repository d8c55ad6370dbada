//! Vocabulary shared by planning (the poller) and storage (checkpoints):
//! the two passes, a window of time, and the page a source is in the
//! middle of. Below every stage; imports none.

use serde::{Deserialize, Serialize};

/// Which read of a stretch of time: the first, as soon as it is settled,
/// or the second, once it is `late_arrival` old (DESIGN.md 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    First,
    Late,
}

/// A stretch of time `[start_ms, end_ms)` read by one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub pass: Pass,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Read at a time when every record of the window is already visible:
    /// the second pass need not read it again.
    pub complete: bool,
}

/// The page a source is in the middle of: its window, the site group and
/// the cursor of the next page. Stored flat in the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(flatten)]
    pub window: Window,
    /// Index of the site group (groups of at most 50 sites).
    pub group: usize,
    /// Cursor of the next page of this group; `None` for its first page.
    pub cursor: Option<String>,
    /// Pages read so far in this group.
    pub pages: u32,
}

impl Progress {
    /// The first page of `window`'s first site group.
    pub fn start(window: Window) -> Self {
        Self { window, group: 0, cursor: None, pages: 0 }
    }
}
