//! The command line: `run`, `check-config`, `simulate`, `demo`, `healthcheck`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use forge_otel_sidecar::config::{self, Config};

const EXAMPLES: &str = "\
Examples:
  forge-otel-sidecar check-config --config config/example.yaml
  FORGE_API_TOKEN=... forge-otel-sidecar run --config /etc/forge-otel-sidecar/config.yaml

Exit codes: 0 success, 1 runtime failure, 2 configuration or usage error.";

#[derive(Parser)]
#[command(name = "forge-otel-sidecar", version, about = "Delivers Atlassian Forge app logs to OpenTelemetry backends over OTLP, without loss.", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Poll the Forge App logs API and deliver records over OTLP.
    Run {
        /// Config file (YAML).
        #[arg(long, short, env = "FORGE_OTEL_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and print the effective config (secrets redacted).
    CheckConfig {
        /// Config file (YAML).
        #[arg(long, short, env = "FORGE_OTEL_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match cli.command {
        Command::CheckConfig { config } => match Config::load(&config, &config::process_env) {
            Ok(cfg) => {
                print!("{}", cfg.to_redacted_yaml());
                eprintln!("{}: configuration is valid", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", config.display());
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let cfg = match Config::load(&config, &config::process_env) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("error: {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            forge_otel_sidecar::logging::init(cfg.log.format, &cfg.log.level);
            eprintln!("error: the poller is not built yet");
            ExitCode::from(1)
        }
    }
}
