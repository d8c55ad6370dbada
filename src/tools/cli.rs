//! The commands' entry points for `main`: load the config, run on one
//! thread, map the outcome to the exit code (0 success, 1 runtime
//! failure, 2 configuration or usage error).

use std::path::Path;
use std::process::ExitCode;

use super::ToolError;
use crate::config::{self, Config};

fn report(result: Result<bool, ToolError>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit()
        }
    }
}

/// The config, and logging to stderr beside the progress (warnings and errors only).
fn setup(path: &Path) -> Result<Config, ExitCode> {
    let cfg = Config::load(path, &config::process_env).map_err(|e| {
        // The config's errors never hold a secret's value.
        eprintln!("error: {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    crate::logging::init(cfg.log.format, "warn");
    Ok(cfg)
}

/// One thread: the commands read and send one page at a time.
fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(work),
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn fetch(args: &super::fetch::FetchArgs) -> ExitCode {
    let cfg = match setup(&args.query.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    block_on(async move { report(super::fetch::run(args, &cfg).await.map(|_| true)) })
}

pub fn backfill(args: &super::backfill::BackfillArgs) -> ExitCode {
    let cfg = match setup(&args.query.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    block_on(async move { report(super::backfill::run(args, &cfg).await) })
}

pub fn import_audit(args: &super::audit::ImportAuditArgs) -> ExitCode {
    let cfg = match &args.config {
        Some(path) => match setup(path) {
            Ok(c) => Some(c),
            Err(code) => return code,
        },
        None => None,
    };
    block_on(async move { report(super::audit::run(args, cfg.as_ref()).await) })
}

pub fn reset(args: &super::reset::ResetArgs) -> ExitCode {
    let cfg = match setup(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let ask = std::io::IsTerminal::is_terminal(&std::io::stdin()).then_some(&mut lock as &mut dyn std::io::BufRead);
    report(super::reset::run(args, &cfg, ask, &mut std::io::stdout()))
}
