//! `simulate`: the built-in Forge API simulator as a command.

use std::process::ExitCode;

use super::block_on;

#[derive(clap::Args)]
#[command(
    after_help = forge_otel_sidecar::simulator::behaviour::CLI_HELP,
    before_help = "Example:\n  forge-otel-sidecar simulate --listen 127.0.0.1:8080 --app demo-app:production,staging"
)]
pub(crate) struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Apps and their environments, `APP_ID:ENV_ID[,ENV_ID...]`; repeatable.
    #[arg(long = "app", default_value = "demo-app:production")]
    apps: Vec<String>,
    /// Account email accepted by Basic auth.
    #[arg(long, default_value = "demo@example.com")]
    email: String,
    /// API token accepted by Basic auth.
    #[arg(long, env = "FORGE_SIM_TOKEN", default_value = "demo-token", hide_env_values = true)]
    token: String,
    /// Seed of the generated records.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// History before start (at most 14d).
    #[arg(long, default_value = "3h", value_parser = humantime::parse_duration)]
    history: std::time::Duration,
    /// Records per second per environment.
    #[arg(long, default_value_t = 2.0)]
    records_per_second: f64,
    /// Records per page.
    #[arg(long, default_value_t = 100)]
    page_size: usize,
    /// Calls allowed per app in any --rate-window (0: no limit).
    #[arg(long, default_value_t = 30)]
    rate_limit: u32,
    /// The rate limit's sliding window.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    rate_window: std::time::Duration,
    /// Share of records that become visible late (0 to 1).
    #[arg(long, default_value_t = 0.05)]
    late_fraction: f64,
    /// Longest delay before a late record becomes visible.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    max_late: std::time::Duration,
    /// Share of records placed exactly on a minute edge (0 to 1).
    #[arg(long, default_value_t = 0.02)]
    edge_fraction: f64,
    /// Number of sites (installationContext values).
    #[arg(long, default_value_t = 8)]
    sites: usize,
    /// Extra bytes per record, for large pages.
    #[arg(long, default_value_t = 0)]
    pad_bytes: usize,
    /// Fault knobs as JSON, e.g. '{"p_503":0.2}' (also PUT /_sim/faults).
    #[arg(long)]
    faults: Option<String>,
    #[command(flatten)]
    behaviour: forge_otel_sidecar::simulator::Behaviour,
}

impl SimulateArgs {
    fn into_config(self) -> Result<forge_otel_sidecar::simulator::SimConfig, String> {
        let mut apps = Vec::new();
        for spec in &self.apps {
            let (app, envs) =
                spec.split_once(':').ok_or_else(|| format!("--app `{spec}`: expected APP_ID:ENV_ID[,ENV_ID]"))?;
            let envs: Vec<String> = envs.split(',').filter(|e| !e.is_empty()).map(str::to_string).collect();
            if app.is_empty() || envs.is_empty() {
                return Err(format!("--app `{spec}`: expected APP_ID:ENV_ID[,ENV_ID]"));
            }
            apps.push((app.to_string(), envs));
        }
        let faults = match &self.faults {
            Some(text) => serde_json::from_str(text).map_err(|e| format!("--faults: {e}"))?,
            None => Default::default(),
        };
        Ok(forge_otel_sidecar::simulator::SimConfig {
            seed: self.seed,
            apps,
            email: self.email,
            token: self.token,
            history: self.history,
            records_per_second: self.records_per_second,
            page_size: self.page_size,
            rate_limit: self.rate_limit,
            rate_window: self.rate_window,
            late_fraction: self.late_fraction,
            max_late: self.max_late,
            edge_fraction: self.edge_fraction,
            inclusive_end: false,
            sites: self.sites,
            pad_bytes: self.pad_bytes,
            faults,
            behaviour: self.behaviour,
        })
    }
}

/// One thread: the work is I/O-bound and sequential per source, and a
/// single allocator arena keeps the resident memory small (docs/BENCHMARKS.md).
pub(crate) fn simulate(args: SimulateArgs) -> ExitCode {
    forge_otel_sidecar::logging::init(forge_otel_sidecar::config::LogFormat::Text, "info");
    let listen = args.listen;
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    block_on(async move {
        let handle = match forge_otel_sidecar::simulator::start(cfg, listen).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(url = %handle.base_url(), "Forge API simulator listening");
        forge_otel_sidecar::shutdown_signal().await;
        handle.stop().await;
        ExitCode::SUCCESS
    })
}
