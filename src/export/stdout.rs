//! The `stdout` exporter: one OTLP/JSON line per record, for debugging.

use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use super::SendError;
use super::retry::Verdict;

pub fn send(req: &ExportLogsServiceRequest) -> Result<(u64, String), SendError> {
    let mut out = String::new();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                let line = serde_json::json!({ "resource": rl.resource, "logRecord": r });
                out.push_str(&line.to_string());
                out.push('\n');
            }
        }
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(out.as_bytes())
        .and_then(|()| lock.flush())
        .map_err(|e| SendError { verdict: Verdict::Retry(None), message: format!("cannot write to stdout: {e}") })?;
    Ok((0, String::new()))
}
