//! The command line: `run`, `check-config`, `dead-letter`, `fetch`, `backfill`,
//! `import-audit`, `reset`, `simulate`, `demo`, `healthcheck`, `completions`, `man-page`.
//! Each command's work lives in the library (`tools` for the support commands).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use forge_otel_sidecar::config::{self, Config};

const EXAMPLES: &str = "\
Examples:
  forge-otel-sidecar demo
  forge-otel-sidecar check-config --config config/example.yaml
  forge-otel-sidecar fetch --config config/example.yaml --since 2h --format text
  forge-otel-sidecar dead-letter show --config config/example.yaml
  FORGE_API_TOKEN=... forge-otel-sidecar run --config /etc/forge-otel-sidecar/config.yaml

Exit codes: 0 success, 1 runtime failure, 2 configuration or usage error.";

/// Time allowed for exports in flight and final checkpoints after SIGTERM
/// (Kubernetes and Docker give 30 s by default before SIGKILL).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(25);

#[path = "cli/simulate.rs"]
mod simulate;
use simulate::{SimulateArgs, simulate};

#[derive(Parser)]
#[command(name = "forge-otel-sidecar", version, about = "Delivers Atlassian Forge app logs to OpenTelemetry backends over OTLP, without loss.", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Poll the Forge App logs API and deliver records over OTLP.
    #[command(
        after_help = "Example:\n  FORGE_API_TOKEN=... forge-otel-sidecar run --config /etc/forge-otel-sidecar/config.yaml"
    )]
    Run {
        /// Config file (YAML).
        #[arg(long, short, env = "FORGE_OTEL_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and print the effective config (secrets redacted).
    #[command(after_help = "Example:\n  forge-otel-sidecar check-config --config config/example.yaml")]
    CheckConfig {
        /// Config file (YAML).
        #[arg(long, short, env = "FORGE_OTEL_CONFIG")]
        config: PathBuf,
    },
    /// Inspect or re-send the dead-letter file (records a backend rejected for good).
    #[command(after_help = "Example:\n  forge-otel-sidecar dead-letter show --config config/example.yaml")]
    DeadLetter {
        #[command(subcommand)]
        action: DeadLetterCommand,
    },
    /// Serve a simulator of the Forge App logs API (no Atlassian account needed).
    Simulate(Box<SimulateArgs>),
    /// Fetch a source's logs of a time range to stdout or a file (JSON lines, OTLP/JSON or text).
    #[command(after_help = forge_otel_sidecar::tools::fetch::HELP)]
    Fetch(Box<forge_otel_sidecar::tools::fetch::FetchArgs>),
    /// Deliver a source's logs of a time range through the configured exporter.
    #[command(after_help = forge_otel_sidecar::tools::backfill::HELP)]
    Backfill(Box<forge_otel_sidecar::tools::backfill::BackfillArgs>),
    /// Import the developer console's audit log CSV through the configured exporter.
    #[command(after_help = forge_otel_sidecar::tools::audit::HELP)]
    ImportAudit(forge_otel_sidecar::tools::audit::ImportAuditArgs),
    /// Start a source afresh: delete its checkpoint and delivered-record journal (asks first).
    #[command(after_help = forge_otel_sidecar::tools::reset::HELP)]
    Reset(forge_otel_sidecar::tools::reset::ResetArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  forge-otel-sidecar completions bash > /etc/bash_completion.d/forge-otel-sidecar"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  forge-otel-sidecar man-page > /usr/local/share/man/man1/forge-otel-sidecar.1")]
    ManPage,
    /// Run the simulator, the sidecar and a readable console together (no account needed).
    #[command(after_help = "Example:\n  forge-otel-sidecar demo --duration 2m")]
    Demo {
        /// Stop after this long (default: run until Ctrl-C).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// History the simulator holds and the sidecar backfills.
        #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
        history: std::time::Duration,
        /// Records per second.
        #[arg(long, default_value_t = 2.0)]
        records_per_second: f64,
    },
    /// Call /healthz of a running sidecar; exit 0 when healthy, 1 otherwise (for images without curl).
    #[command(after_help = "Example:\n  forge-otel-sidecar healthcheck --addr 127.0.0.1:9464")]
    Healthcheck {
        /// Address of the sidecar's server.
        #[arg(long, env = "FORGE_OTEL_HEALTH_ADDR", default_value = "127.0.0.1:9464")]
        addr: String,
    },
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// Counts by reason and source, oldest and newest entry; exit 0 even when empty.
    #[command(after_help = "Example:\n  forge-otel-sidecar dead-letter show --config config/example.yaml --entries")]
    Show {
        /// Config file (YAML); its state.dir holds the file.
        #[arg(long, short, env = "FORGE_OTEL_CONFIG")]
        config: PathBuf,
        /// Also list every entry.
        #[arg(long)]
        entries: bool,
    },
    /// Send the file's records again through the configured exporter, then keep the file
    /// as dead-letter.jsonl.replayed-<time>; what fails again goes to a new dead-letter.jsonl.
    /// Exit 0 when every record was accepted, 1 otherwise.
    #[command(
        after_help = "Example:\n  forge-otel-sidecar dead-letter replay --config config/example.yaml --give-up-after 5m"
    )]
    Replay {
        /// Config file (YAML): the exporter and state.dir.
        #[arg(long, short, env = "FORGE_OTEL_CONFIG")]
        config: PathBuf,
        /// Retry an unreachable backend this long per request before stopping
        /// (exporter.retry.max_elapsed when shorter).
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        give_up_after: std::time::Duration,
    },
}

fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(work),
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            ExitCode::from(1)
        }
    }
}

fn healthcheck(addr: &str) -> ExitCode {
    // A container's server listens on 0.0.0.0; probe it on loopback.
    let addr = addr.replace("0.0.0.0", "127.0.0.1");
    forge_otel_sidecar::tls::install_crypto_provider();
    block_on(async move {
        let client = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                return ExitCode::from(1);
            }
        };
        match client.get(format!("http://{addr}/healthz")).send().await {
            Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
            Ok(r) => {
                eprintln!("unhealthy: /healthz answered {}", r.status());
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("unhealthy: cannot reach http://{addr}/healthz: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path, &config::process_env).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn dead_letter(action: DeadLetterCommand) -> ExitCode {
    use forge_otel_sidecar::export::{self, DeadLetter, Exporter, Transport};
    match action {
        DeadLetterCommand::Show { config, entries } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match export::deadletter::summarize(&cfg.state.dir, entries) {
                Ok(summary) => {
                    print!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot read the dead-letter file in {}: {e}", cfg.state.dir.display());
                    ExitCode::from(1)
                }
            }
        }
        DeadLetterCommand::Replay { config, give_up_after } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            forge_otel_sidecar::logging::init(cfg.log.format, &cfg.log.level);
            let transport = match Transport::new(&cfg.exporter) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            let mut retry = cfg.exporter.retry.clone();
            retry.max_elapsed = Some(retry.max_elapsed.map_or(give_up_after, |m| m.min(give_up_after)));
            let dead_letter = DeadLetter::new(&cfg.state.dir, cfg.state.dead_letter_max_bytes);
            let exporter = Exporter::new(transport, retry, dead_letter);
            block_on(async move {
                let cancel = tokio_util::sync::CancellationToken::new();
                let on_signal = cancel.clone();
                tokio::spawn(async move {
                    forge_otel_sidecar::shutdown_signal().await;
                    on_signal.cancel();
                });
                let now = forge_otel_sidecar::timefmt::system_millis(std::time::SystemTime::now());
                match export::deadletter::replay(&cfg.state.dir, &exporter, now, &cancel).await {
                    Ok(report) => {
                        println!("{report}");
                        if report.complete() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(1)
                    }
                }
            })
        }
    }
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
        Command::CheckConfig { config } => match Config::load_traced(&config, &config::process_env) {
            Ok((cfg, origins)) => {
                print!("{}", config::print::render(&cfg, &origins));
                for w in cfg.warnings() {
                    eprintln!("warning: {w}");
                }
                eprintln!("{}: configuration is valid", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", config.display());
                ExitCode::from(2)
            }
        },
        Command::DeadLetter { action } => dead_letter(action),
        Command::Fetch(args) => forge_otel_sidecar::tools::cli::fetch(&args),
        Command::Backfill(args) => forge_otel_sidecar::tools::cli::backfill(&args),
        Command::ImportAudit(args) => forge_otel_sidecar::tools::cli::import_audit(&args),
        Command::Reset(args) => forge_otel_sidecar::tools::cli::reset(&args),
        Command::Completions { shell } => {
            // Into memory first: the generator panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "forge-otel-sidecar", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::ManPage => match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Simulate(args) => simulate(*args),
        Command::Healthcheck { addr } => healthcheck(&addr),
        Command::Demo { duration, history, records_per_second } => {
            forge_otel_sidecar::logging::init(forge_otel_sidecar::config::LogFormat::Text, "warn");
            let opts = forge_otel_sidecar::demo::DemoOptions { duration, history, records_per_second };
            block_on(async move {
                match forge_otel_sidecar::demo::run(opts).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::from(1)
                    }
                }
            })
        }
        Command::Run { config } => {
            let cfg = match Config::load(&config, &config::process_env) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("error: {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            forge_otel_sidecar::logging::init(cfg.log.format, &cfg.log.level);
            for w in cfg.warnings() {
                tracing::warn!(warning = %w, "configuration looks wrong");
            }
            block_on(async move {
                let app = match forge_otel_sidecar::app::App::start(cfg, Default::default()).await {
                    Ok(app) => app,
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), "cannot start");
                        return ExitCode::from(1);
                    }
                };
                forge_otel_sidecar::shutdown_signal().await;
                app.shutdown(SHUTDOWN_GRACE).await;
                tracing::info!("stopped");
                ExitCode::SUCCESS
            })
        }
    }
}
