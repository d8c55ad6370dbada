//! `fetch`: a source's records of a time range, to stdout or a file, as
//! JSON lines (each record as the API sent it), OTLP/JSON (one
//! `ExportLogsServiceRequest` per line, a page at most each) or readable
//! text like the demo console's.
//!
//! JSON lines keep each record's own bytes from the page (serde_json's
//! `RawValue`), with only whitespace outside strings removed so a record
//! is one line: nothing the API sent is reordered, renamed or re-encoded.

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::progress::Progress;
use super::query::{QueryArgs, Range, target};
use super::read::{Reader, WindowRead};
use super::{ToolError, now_ms};
use crate::config::{Config, SourceConfig};
use crate::convert::{Decoded, scope, source_resource};
use crate::timefmt::format_millis;

pub const HELP: &str = "\
Examples:
  forge-otel-sidecar fetch -c config.yaml --since 2h --site ari:cloud:jira::site/4eecb4e0-... > logs.jsonl
  forge-otel-sidecar fetch -c config.yaml --from 2026-03-01T10:00:00Z --to 2026-03-01T10:30:00Z --level ERROR --format text
  forge-otel-sidecar fetch -c config.yaml --source prod --since 1d --format otlp-json --output day.json

Calls are paced by the app's budget (forge.requests_per_minute). With the same state.dir as a
running sidecar, each sees the other's calls of the last period when it starts (not later);
a 429 caused by the other slows this command down. The state directory's lock is not taken.

Exit codes: 0 success, 1 runtime failure, 2 configuration or usage error (such as a range
older than the API's 14 days).";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One record per line, as the API sent it.
    Jsonl,
    /// One OTLP/JSON ExportLogsServiceRequest per line.
    OtlpJson,
    /// Readable lines, like the demo's console.
    Text,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Output form.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// Write to FILE instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(rename = "appLogs", borrow)]
    app_logs: Vec<&'a RawValue>,
}

/// Runs `fetch`; returns the number of records written.
pub async fn run(args: &FetchArgs, cfg: &Config) -> Result<u64, ToolError> {
    let source = target(cfg, &args.query)?;
    let range = Range::parse(&args.query, now_ms())?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| ToolError::usage(format!("--output {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let plain = args.output.is_some() || !std::io::IsTerminal::is_terminal(&std::io::stdout());
    let reader = Reader::new(cfg, &source)?;
    let cancel = super::cancel_on_signal();
    let windows = range.windows();
    let mut progress = Progress::new("fetch", windows.len() as u64);
    let console = crate::demo::Console::new();
    let mut body = Vec::new();
    let write_err = |e: std::io::Error| ToolError::runtime(format!("cannot write the output: {e}"));
    for (start, end) in windows {
        let mut w = WindowRead::new(&source, start, end);
        while let Some(page) = reader.next_page(&source, &mut w, &mut body, &cancel).await? {
            let text = render(args.format, &source, &body, &page.decoded, &page.emit, &console, plain)?;
            out.write_all(text.as_bytes()).map_err(write_err)?;
            w.commit(&page.raise);
            progress.records(page.emit.len() as u64, reader.calls());
        }
        progress.window_done(start, end, reader.calls());
    }
    out.flush().map_err(write_err)?;
    progress.finish();
    eprintln!("fetched {} records of {range} in {} API calls", progress.total_records(), reader.calls());
    Ok(progress.total_records())
}

/// The page's emitted records in the output form.
fn render(
    format: Format,
    source: &SourceConfig,
    body: &[u8],
    decoded: &Decoded,
    emit: &[usize],
    console: &crate::demo::Console,
    plain: bool,
) -> Result<String, ToolError> {
    let mut text = String::new();
    if emit.is_empty() {
        return Ok(text);
    }
    if format == Format::Jsonl {
        let raw: RawPage<'_> =
            serde_json::from_slice(body).map_err(|e| ToolError::runtime(format!("malformed page: {e}")))?;
        if raw.app_logs.len() != decoded.records.len() {
            return Err(ToolError::runtime("malformed page: records could not be matched to their JSON"));
        }
        for &i in emit {
            if let Some(r) = raw.app_logs.get(i) {
                text.push_str(&one_line(r.get()));
                text.push('\n');
            }
        }
        return Ok(text);
    }
    let all = decoded.records.to_messages().map_err(|e| ToolError::runtime(format!("cannot read a record: {e}")))?;
    let records: Vec<LogRecord> = emit.iter().filter_map(|&i| all.get(i).cloned()).collect();
    match format {
        Format::OtlpJson => {
            let req = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(source_resource(source)),
                    scope_logs: vec![ScopeLogs { scope: Some(scope()), log_records: records, ..ScopeLogs::default() }],
                    ..ResourceLogs::default()
                }],
            };
            text = serde_json::to_string(&req).map_err(|e| ToolError::runtime(format!("OTLP/JSON: {e}")))?;
            text.push('\n');
        }
        Format::Text | Format::Jsonl => {
            for r in &records {
                let day = format_millis((r.time_unix_nano / 1_000_000) as i64);
                let line = console.line(r);
                let line = if plain { strip_ansi(&line) } else { Cow::Borrowed(line.as_str()) };
                text.push_str(day.get(..10).unwrap_or(""));
                text.push(' ');
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
    Ok(text)
}

/// `json` without whitespace outside strings: one line, every byte of
/// content as it was.
fn one_line(json: &str) -> Cow<'_, str> {
    if !json.contains(['\n', '\r']) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The console's colour codes removed (output to a file or a pipe).
fn strip_ansi(s: &str) -> Cow<'_, str> {
    if !s.contains('\x1b') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn one_line_keeps_strings_and_drops_layout() {
        let pretty = "{\n  \"a\": \"x y\\n\\\"z\\\" \",\n  \"b\": [1, 2]\n}";
        assert_eq!(one_line(pretty), "{\"a\":\"x y\\n\\\"z\\\" \",\"b\":[1,2]}");
        let v1: serde_json::Value = serde_json::from_str(pretty).unwrap();
        let v2: serde_json::Value = serde_json::from_str(&one_line(pretty)).unwrap();
        assert_eq!(v1, v2);
        assert!(matches!(one_line("{\"a\": 1}"), Cow::Borrowed(_)));
    }

    #[test]
    fn ansi_codes_are_removed() {
        assert_eq!(strip_ansi("a \x1b[32mINFO \x1b[0m b"), "a INFO  b");
    }
}
