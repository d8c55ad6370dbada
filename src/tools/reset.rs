//! `reset SOURCE`: starts a source afresh on purpose, by deleting its
//! checkpoint (marks, page in progress, gap total) and its journal of
//! delivered counts ([`crate::checkpoint::Store::reset`]). Refused while
//! a sidecar holds the state directory's lock; names what it throws away
//! and asks before it does, unless `--yes` (required when stdin is not a
//! terminal).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use super::ToolError;
use crate::checkpoint::{DirLock, Marks, Store, Stored};
use crate::config::Config;
use crate::progress::Pass;
use crate::timefmt::format_millis;

pub const HELP: &str = "\
Examples:
  forge-otel-sidecar reset prod --config /etc/forge-otel-sidecar/config.yaml
  forge-otel-sidecar reset metrics:prod --config config.yaml --yes

The source starts again from poll.initial_lookback on its next run: records
it delivered since then are delivered again, and its gap total starts at 0.
A running sidecar must be stopped first (it holds the state directory).
Exit codes: 0 reset (or nothing stored), 1 refused, declined or failed,
2 unknown source, bad config, or no terminal to ask on and no --yes.";

#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// The source to start afresh: a `sources` entry's name, or
    /// `metrics:<name>` for a `metrics_sources` entry.
    pub source: String,
    /// Config file (YAML); its state.dir holds the checkpoint.
    #[arg(long, short, env = "FORGE_OTEL_CONFIG")]
    pub config: PathBuf,
    /// Do not ask (required when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

/// The checkpoint names the config knows.
fn names(cfg: &Config) -> Vec<String> {
    let logs = cfg.sources.iter().map(|s| s.name.clone());
    logs.chain(cfg.metrics_sources.iter().map(|s| s.checkpoint_name())).collect()
}

/// What `stored` holds, in words, one line each.
pub fn describe(name: &str, stored: &Stored) -> Vec<String> {
    let mut out = Vec::new();
    match &stored.small {
        Some((path, Marks::Read(cp))) => {
            out.push(format!("checkpoint {}:", path.display()));
            out.push(format!(
                "  watermark {} (the first pass delivered everything before it)",
                format_millis(cp.watermark_ms)
            ));
            out.push(format!(
                "  late watermark {} (the second pass read everything before it again)",
                format_millis(cp.late_watermark_ms)
            ));
            if let Some(p) = &cp.current {
                let pass = if p.window.pass == Pass::First { "first" } else { "second" };
                out.push(format!(
                    "  window in progress ({pass} pass): {} to {}, site group {}, {} pages read",
                    format_millis(p.window.start_ms),
                    format_millis(p.window.end_ms),
                    p.group + 1,
                    p.pages
                ));
            }
            out.push(format!(
                "  gap total {} s (history lost to the API's 14 days); second pass skipped {} s",
                cp.gap_seconds_total, cp.late_pass_skipped_seconds_total
            ));
        }
        Some((path, Marks::Unusable(why))) => out.push(format!("checkpoint {} (unusable: {why})", path.display())),
        None => out.push(format!("no checkpoint for {name}")),
    }
    match &stored.journal {
        Some((path, len)) => out.push(format!(
            "journal {}: {len} bytes, {} delivered-record counts",
            path.display(),
            stored.journal_entries()
        )),
        None => out.push("no journal of delivered-record counts".into()),
    }
    out
}

/// Reads the answer to the question: yes only for `y` or `yes`.
pub fn confirmed(input: &mut dyn BufRead) -> bool {
    let mut line = String::new();
    input.read_line(&mut line).is_ok() && matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Runs the command. `ask`: where to read the answer from, `None` when
/// stdin is not a terminal. `Ok(false)`: declined.
pub fn run(
    args: &ResetArgs,
    cfg: &Config,
    ask: Option<&mut dyn BufRead>,
    out: &mut dyn Write,
) -> Result<bool, ToolError> {
    let known = names(cfg);
    if !known.contains(&args.source) {
        return Err(ToolError::usage(format!(
            "unknown source `{}`; the config's sources: {}",
            args.source,
            known.join(", ")
        )));
    }
    let dir = &cfg.state.dir;
    // Held until the files are gone: no sidecar may start meanwhile.
    let _lock = DirLock::acquire(dir)
        .map_err(|e| ToolError::runtime(format!("{e}; stop it before resetting a source (nothing changed)")))?;
    let store = Store::new(dir);
    let io = |e: std::io::Error| ToolError::runtime(format!("cannot read the state directory {}: {e}", dir.display()));
    let stored = store.inspect(&args.source).map_err(io)?;
    let write = |out: &mut dyn Write, text: &str| {
        out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| ToolError::runtime(e.to_string()))
    };
    if stored.is_empty() {
        write(out, &format!("source {}: nothing stored in {}; nothing to reset\n", args.source, dir.display()))?;
        return Ok(true);
    }
    let mut text = format!("source {} (state directory {}) has:\n", args.source, dir.display());
    for line in describe(&args.source, &stored) {
        text.push_str(&format!("  {line}\n"));
    }
    text.push_str(&format!(
        "Reset throws these away: the source starts again from poll.initial_lookback ({}) on its next run; \
         records delivered since then are delivered again, and its gap total starts at 0.\n",
        humantime::format_duration(cfg.poll.initial_lookback)
    ));
    write(out, &text)?;
    if !args.yes {
        let Some(input) = ask else {
            return Err(ToolError::usage("stdin is not a terminal: pass --yes to reset (nothing changed)"));
        };
        write(out, &format!("Reset source {}? [y/N] ", args.source))?;
        if !confirmed(input) {
            write(out, "not reset; nothing changed\n")?;
            return Ok(false);
        }
    }
    store
        .reset(&args.source)
        .map_err(|e| ToolError::runtime(format!("{e}; the reset may be partial, run it again")))?;
    write(out, &format!("source {} reset: checkpoint and journal deleted\n", args.source))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_y_or_yes_confirms() {
        for (answer, yes) in [
            ("y\n", true),
            ("YES\n", true),
            (" yes ", true),
            ("\n", false),
            ("no\n", false),
            ("", false),
            ("yess\n", false),
        ] {
            assert_eq!(confirmed(&mut answer.as_bytes()), yes, "{answer:?}");
        }
    }
}
