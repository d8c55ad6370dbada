//! What `fetch` and `backfill` read: a source of the config (its filters
//! overridable on the command line) and a time range, split into the
//! API's windows of at most an hour within its 14 days.

use std::path::PathBuf;
use std::time::Duration;

use super::ToolError;
use crate::config::{API_RETENTION, Config, MAX_WINDOW, SourceConfig};
use crate::timefmt::{format_millis, parse_iso8601_millis};

/// The query options shared by `fetch` and `backfill`.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// Config file (YAML): forge credentials, sources, state.dir (and the exporter for backfill).
    #[arg(long, short, env = "FORGE_OTEL_CONFIG")]
    pub config: PathBuf,
    /// Source name from the config (default: the only or first source).
    #[arg(long)]
    pub source: Option<String>,
    /// App id, instead of the source's.
    #[arg(long)]
    pub app: Option<String>,
    /// Environment id, instead of the source's.
    #[arg(long)]
    pub env: Option<String>,
    /// Site (installationContext ARI); repeatable; replaces the source's sites.
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// Level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL); repeatable; replaces the source's levels.
    #[arg(long = "level")]
    pub levels: Vec<String>,
    /// Substring filter on the message; replaces the source's.
    #[arg(long)]
    pub message: Option<String>,
    /// Start of the range, UTC ISO 8601 (`2026-03-01T10:00:00Z`).
    #[arg(long, conflicts_with = "since")]
    pub from: Option<String>,
    /// End of the range (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// The range is the last DURATION (`2h`, `30m`), up to --to or now.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
}

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The source the command reads: the config's, with the command line's overrides.
pub fn target(cfg: &Config, args: &QueryArgs) -> Result<SourceConfig, ToolError> {
    let mut source = match &args.source {
        Some(name) => cfg.sources.iter().find(|s| &s.name == name).cloned().ok_or_else(|| {
            let names: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
            ToolError::usage(format!("--source {name}: no such source in the config (sources: {})", names.join(", ")))
        })?,
        None => cfg.sources.first().cloned().ok_or_else(|| ToolError::usage("the config has no source"))?,
    };
    if let Some(app) = &args.app {
        source.app_id = app.clone();
    }
    if let Some(env) = &args.env {
        source.environment_id = env.clone();
    }
    if !args.sites.is_empty() {
        source.installation_contexts = args.sites.clone();
    }
    if !args.levels.is_empty() {
        let mut levels = Vec::new();
        for l in &args.levels {
            let up = l.to_ascii_uppercase();
            if !LEVELS.contains(&up.as_str()) {
                return Err(ToolError::usage(format!("--level {l}: expected one of {}", LEVELS.join(", "))));
            }
            levels.push(up);
        }
        source.levels = levels;
    }
    if let Some(m) = &args.message {
        source.message = Some(m.clone()).filter(|m| !m.is_empty());
    }
    if source.app_id.is_empty() || source.environment_id.is_empty() {
        return Err(ToolError::usage("--app and --env must not be empty"));
    }
    Ok(source)
}

/// A time range `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Range {
    /// The range of the command line, checked against the API's limits at `now_ms`.
    pub fn parse(args: &QueryArgs, now_ms: i64) -> Result<Self, ToolError> {
        let time = |flag: &str, s: &str| {
            parse_iso8601_millis(s).ok_or_else(|| {
                ToolError::usage(format!("--{flag} {s}: expected a UTC ISO 8601 time such as 2026-03-01T10:00:00Z"))
            })
        };
        let to_ms = match &args.to {
            Some(s) => time("to", s)?,
            None => now_ms,
        };
        let from_ms = match (&args.from, args.since) {
            (Some(s), _) => time("from", s)?,
            (None, Some(d)) => to_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            (None, None) => return Err(ToolError::usage("give the range: --from (and --to) or --since")),
        };
        Self::check(from_ms, to_ms, now_ms)
    }

    /// Refuses what the API cannot answer; an end in the future becomes now.
    pub fn check(from_ms: i64, to_ms: i64, now_ms: i64) -> Result<Self, ToolError> {
        // The API refuses dates past its own now; a second's margin for clocks.
        let to_ms = to_ms.min(now_ms - 1000);
        if from_ms >= to_ms {
            return Err(ToolError::usage(format!(
                "empty range: {} is not before {}",
                format_millis(from_ms),
                format_millis(to_ms)
            )));
        }
        // A minute's margin: the range must still be readable when its first window is asked for.
        let oldest = now_ms - API_RETENTION.as_millis() as i64 + 60_000;
        if from_ms < oldest {
            return Err(ToolError::usage(format!(
                "{} is older than the App logs API keeps (14 days): the oldest time it can read now is {}",
                format_millis(from_ms),
                format_millis(oldest)
            )));
        }
        Ok(Self { from_ms, to_ms })
    }

    /// The windows covering the range, in order: at most an hour with the
    /// millisecond asked past each end ([`super::read`]).
    pub fn windows(&self) -> Vec<(i64, i64)> {
        let step = MAX_WINDOW.as_millis() as i64 - 2;
        let mut out = Vec::new();
        let mut start = self.from_ms;
        while start < self.to_ms {
            let end = start.saturating_add(step).min(self.to_ms);
            out.push((start, end));
            start = end;
        }
        out
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} .. {}", format_millis(self.from_ms), format_millis(self.to_ms))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    #[test]
    fn windows_cover_the_range_in_hours() {
        let r = Range::check(NOW - 3 * 3_600_000 - 5_000, NOW - 5_006, NOW).unwrap_or_else(|e| panic!("{e}"));
        let w = r.windows();
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].0, r.from_ms);
        assert_eq!(w[2].1, r.to_ms);
        assert!(w.windows(2).all(|p| p[0].1 == p[1].0));
        // Asked 1 ms past both ends, a window stays within the API's hour.
        assert!(w.iter().all(|(a, b)| (b + 1) - (a - 1) <= 3_600_000 && a < b));
        let odd = Range::check(NOW - 3_600_000 - 90_000, NOW - 10_000, NOW).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(odd.windows().len(), 2);
    }

    #[test]
    fn older_than_fourteen_days_is_refused() {
        let e = Range::check(NOW - 15 * 86_400_000, NOW - 14 * 86_400_000, NOW).err();
        assert!(e.as_ref().is_some_and(|e| e.code == 2 && e.message.contains("14 days")), "{e:?}");
        assert!(Range::check(NOW - 13 * 86_400_000, NOW, NOW).is_ok());
    }

    #[test]
    fn an_end_in_the_future_becomes_now_and_empty_ranges_are_refused() {
        let r = Range::check(NOW - 60_000, NOW + 3_600_000, NOW).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.to_ms < NOW);
        assert!(Range::check(NOW - 10_000, NOW - 20_000, NOW).is_err());
    }
}
