//! `import-audit`: the developer console's audit log CSV (columns in
//! docs: App ID, App name, Site ID, Product, Environment, Installed
//! version, Event, Event date, Location, Target location) into OTLP log
//! records through the configured exporter.
//!
//! Each row is a record: body = the event, one attribute per column
//! (`forge.audit.*`, `forge.site.id`, ...), time = the event date at 00:00
//! UTC, a resource per app with `service.name` (the config's source of
//! that app, else the app's name) and `forge.app.id`.
//!
//! Re-importing an overlapping file sends nothing twice: each row's
//! fingerprint (its values in column order) is counted in the state
//! directory's `audit-imported.json` once the backend accepted it. Counted,
//! not a set: two identical rows in one export are two events, and both
//! go out once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::{ToolError, now_ms, write_atomic};
use crate::config::Config;
use crate::convert::{Batch, scope};
use crate::export::{DeadLetter, DeliverError, Delivered, Exporter, Transport};
use crate::metrics::SourceMetrics;

pub const HELP: &str = "\
Examples:
  forge-otel-sidecar import-audit -c config.yaml audit-log.csv
  forge-otel-sidecar import-audit --dry-run audit-log.csv

Rows already imported (remembered in state.dir/audit-imported.json) are skipped, so an
overlapping export can be imported again. Bad rows are reported with their line number and
the others imported. --dry-run prints the OTLP/JSON records that would be sent and sends
nothing (the config is then optional).

Exit codes: 0 every row imported, 1 bad rows or records not accepted, 2 configuration or
usage error (such as a missing column).";

#[derive(Debug, Clone, clap::Args)]
pub struct ImportAuditArgs {
    /// The audit log CSV downloaded from the developer console.
    pub file: PathBuf,
    /// Config file (YAML): the exporter and state.dir.
    #[arg(long, short, env = "FORGE_OTEL_CONFIG", required_unless_present = "dry_run")]
    pub config: Option<PathBuf>,
    /// Print what would be sent; send and remember nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The columns, in canonical order, and the attribute each becomes.
pub const COLUMNS: [(&str, &str); 10] = [
    ("App ID", "forge.app.id"),
    ("App name", "forge.app.name"),
    ("Site ID", "forge.site.id"),
    ("Product", "forge.product"),
    ("Environment", "forge.environment"),
    ("Installed version", "forge.app.version"),
    ("Event", "forge.audit.event"),
    ("Event date", "forge.audit.event_date"),
    ("Location", "forge.audit.location"),
    ("Target location", "forge.audit.target_location"),
];
const APP_ID: usize = 0;
const APP_NAME: usize = 1;
const EVENT: usize = 6;
const DATE: usize = 7;
/// Rows per export request (a row is a few hundred bytes).
const ROWS_PER_REQUEST: usize = 500;

/// A good row: its values in canonical order and its line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub values: [String; 10],
    pub time_ms: i64,
}

impl Row {
    pub fn fingerprint(&self) -> u64 {
        crate::fingerprint::hash_bytes(self.values.join("\u{1f}").as_bytes())
    }
}

/// The rows of a CSV: good ones, and bad ones as "line N: why".
pub fn parse(text: &[u8]) -> Result<(Vec<Row>, Vec<String>), ToolError> {
    let mut rd = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text);
    let headers = rd.headers().map_err(|e| ToolError::usage(format!("cannot read the header line: {e}")))?.clone();
    let mut index = [None; 10];
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim_start_matches('\u{feff}').trim();
        if let Some(c) = COLUMNS.iter().position(|(name, _)| name.eq_ignore_ascii_case(h)) {
            index[c] = Some(i);
        }
    }
    let missing: Vec<&str> =
        [APP_ID, EVENT, DATE].iter().filter(|&&c| index[c].is_none()).map(|&c| COLUMNS[c].0).collect();
    if !missing.is_empty() {
        return Err(ToolError::usage(format!("missing columns: {}", missing.join(", "))));
    }
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    for rec in rd.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                bad.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let line = rec.position().map_or(0, csv::Position::line);
        if rec.len() != headers.len() {
            bad.push(format!("line {line}: {} fields, the header has {}", rec.len(), headers.len()));
            continue;
        }
        let values: [String; 10] = std::array::from_fn(|c| index[c].and_then(|i| rec.get(i)).unwrap_or("").to_string());
        if values[APP_ID].is_empty() || values[EVENT].is_empty() {
            bad.push(format!("line {line}: App ID and Event must not be empty"));
            continue;
        }
        match event_day_ms(&values[DATE]) {
            Some(time_ms) => rows.push(Row { line, values, time_ms }),
            None => bad.push(format!("line {line}: Event date `{}` is not a date (YYYY-MM-DD)", values[DATE])),
        }
    }
    Ok((rows, bad))
}

/// `2024-03-12` (a time after it is ignored) → that day at 00:00 UTC.
fn event_day_ms(s: &str) -> Option<i64> {
    let day = s.get(..10)?;
    if !matches!(s.as_bytes().get(10), None | Some(b'T' | b' ')) {
        return None;
    }
    crate::timefmt::parse_millis(&format!("{day}T00:00:00.000Z"))
}

fn string_kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

/// The record of a row.
pub fn record(row: &Row, observed_ms: i64) -> LogRecord {
    let attributes = COLUMNS
        .iter()
        .zip(&row.values)
        .filter(|(_, v)| !v.is_empty() && !v.eq_ignore_ascii_case("N/A"))
        .map(|((_, key), v)| string_kv(key, v))
        .collect();
    LogRecord {
        time_unix_nano: u64::try_from(row.time_ms).unwrap_or(0).saturating_mul(1_000_000),
        observed_time_unix_nano: u64::try_from(observed_ms).unwrap_or(0).saturating_mul(1_000_000),
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(AnyValue { value: Some(Value::StringValue(row.values[EVENT].clone())) }),
        attributes,
        ..Default::default()
    }
}

/// The resource of an app's rows.
fn resource(cfg: Option<&Config>, row: &Row) -> Resource {
    let app = &row.values[APP_ID];
    let service = cfg
        .and_then(|c| c.sources.iter().find(|s| &s.app_id == app))
        .map(|s| s.service_name.clone())
        .or_else(|| Some(row.values[APP_NAME].clone()).filter(|n| !n.is_empty()))
        .unwrap_or_else(|| app.clone());
    Resource {
        attributes: vec![
            string_kv("service.name", &service),
            string_kv("forge.app.id", app),
            string_kv("forge.app.name", &row.values[APP_NAME]),
        ],
        ..Default::default()
    }
}

fn request(resource: Resource, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs { scope: Some(scope()), log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// Copies of each row fingerprint already imported.
fn memory_path(dir: &Path) -> PathBuf {
    dir.join("audit-imported.json")
}

fn load_memory(path: &Path) -> Result<HashMap<String, u32>, ToolError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| ToolError::runtime(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(ToolError::runtime(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The rows not imported before: the n-th copy of a fingerprint in the
/// file goes only when fewer than n were imported.
pub fn new_rows(rows: Vec<Row>, imported: &HashMap<String, u32>) -> Vec<Row> {
    let mut seen: HashMap<u64, u32> = HashMap::new();
    rows.into_iter()
        .filter(|r| {
            let fp = r.fingerprint();
            let copy = seen.entry(fp).or_insert(0);
            *copy += 1;
            *copy > imported.get(&format!("{fp:016x}")).copied().unwrap_or(0)
        })
        .collect()
}

/// Runs `import-audit`; `Ok(true)` when every row was good and accepted.
pub async fn run(args: &ImportAuditArgs, cfg: Option<&Config>) -> Result<bool, ToolError> {
    let text = std::fs::read(&args.file).map_err(|e| ToolError::usage(format!("{}: {e}", args.file.display())))?;
    let (rows, bad) = parse(&text)?;
    for b in &bad {
        eprintln!("{}: {b}", args.file.display());
    }
    let mem_path = cfg.map(|c| memory_path(&c.state.dir));
    let mut imported = match &mem_path {
        Some(p) => load_memory(p)?,
        None => HashMap::new(),
    };
    let total = rows.len();
    let fresh = new_rows(rows, &imported);
    let skipped = total - fresh.len();
    let now = now_ms();
    if args.dry_run {
        for row in &fresh {
            let line = serde_json::json!({ "resource": resource(cfg, row), "logRecord": record(row, now) });
            println!("{line}");
        }
        eprintln!("dry run: {} rows would be sent, {skipped} already imported, {} bad", fresh.len(), bad.len());
        return Ok(bad.is_empty());
    }
    let (Some(cfg), Some(mem_path)) = (cfg, mem_path) else {
        return Err(ToolError::usage("--config is needed to send (or use --dry-run)"));
    };
    super::ensure_dir(&cfg.state.dir)?;
    let transport = Transport::new(&cfg.exporter).map_err(|e| ToolError::usage(format!("exporter: {e}")))?;
    let dead_letter = DeadLetter::new(&cfg.state.dir, cfg.state.dead_letter_max_bytes);
    let exporter = Exporter::new(transport, cfg.exporter.retry.clone(), dead_letter);
    let metrics = SourceMetrics::new("import-audit", "");
    let cancel = super::cancel_on_signal();
    let mut by_app: Vec<(String, Vec<Row>)> = Vec::new();
    for row in fresh {
        match by_app.iter_mut().find(|(app, _)| *app == row.values[APP_ID]) {
            Some((_, rows)) => rows.push(row),
            None => by_app.push((row.values[APP_ID].clone(), vec![row])),
        }
    }
    let (mut accepted, mut dead) = (0u64, 0u64);
    for (_, rows) in &by_app {
        for chunk in rows.chunks(ROWS_PER_REQUEST) {
            let req = request(resource(Some(cfg), &chunk[0]), chunk.iter().map(|r| record(r, now)).collect());
            match exporter.deliver(&Batch::from(&req), &metrics, &cancel).await {
                Ok(Delivered::Accepted { records, rejected }) => accepted += records.saturating_sub(rejected),
                Ok(Delivered::DeadLettered { records, .. }) => dead += records,
                Err(DeliverError::Cancelled) => return Err(ToolError::runtime("interrupted; import again to finish")),
                Err(e) => return Err(ToolError::runtime(e.to_string())),
            }
            // Dead-lettered rows are remembered too: they are in the dead-letter
            // file, and `dead-letter replay` sends them again.
            for r in chunk {
                *imported.entry(format!("{:016x}", r.fingerprint())).or_insert(0) += 1;
            }
            let bytes = serde_json::to_vec(&imported).map_err(|e| ToolError::runtime(e.to_string()))?;
            write_atomic(&mem_path, &bytes)
                .map_err(|e| ToolError::runtime(format!("cannot write {}: {e}", mem_path.display())))?;
        }
    }
    eprintln!(
        "{}: {accepted} rows imported, {dead} dead-lettered, {skipped} already imported, {} bad",
        args.file.display(),
        bad.len()
    );
    Ok(bad.is_empty() && dead == 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    const CSV: &str =
        "App ID,App name,Site ID,Product,Environment,Installed version,Event,Event date,Location,Target location
app-1,My App,site-a,Jira,production,1.2.0,Migration scheduled,2024-03-12,Global,US
app-1,My App,site-a,Jira,production,1.2.0,Migration scheduled,2024-03-12,Global,US
app-1,My App,site-b,Jira,production,1.2.0,App uninstalled,2024-13-01,Global,N/A
app-1,My App,site-b,Jira
";

    #[test]
    fn rows_bad_rows_and_line_numbers() {
        let (rows, bad) = parse(CSV.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].time_ms, crate::timefmt::parse_millis("2024-03-12T00:00:00.000Z").unwrap());
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("line 4:"), "{bad:?}");
        assert!(bad[1].starts_with("line 5:"), "{bad:?}");
    }

    #[test]
    fn identical_rows_are_counted_not_merged() {
        let (rows, _) = parse(CSV.as_bytes()).unwrap();
        assert_eq!(new_rows(rows.clone(), &HashMap::new()).len(), 2);
        let once = HashMap::from([(format!("{:016x}", rows[0].fingerprint()), 1)]);
        assert_eq!(new_rows(rows.clone(), &once).len(), 1);
        let twice = HashMap::from([(format!("{:016x}", rows[0].fingerprint()), 2)]);
        assert!(new_rows(rows, &twice).is_empty());
    }

    #[test]
    fn a_missing_column_is_a_usage_error() {
        let e = parse(b"App ID,Event\nx,y\n").err();
        assert!(e.is_some_and(|e| e.code == 2 && e.message.contains("Event date")));
    }

    #[test]
    fn record_carries_columns_as_attributes() {
        let (rows, _) = parse(CSV.as_bytes()).unwrap();
        let r = record(&rows[0], 0);
        let attr = |k: &str| r.attributes.iter().any(|a| a.key == k);
        assert!(attr("forge.audit.event") && attr("forge.site.id") && attr("forge.audit.target_location"));
        assert_eq!(r.body, Some(AnyValue { value: Some(Value::StringValue("Migration scheduled".into())) }));
    }
}
