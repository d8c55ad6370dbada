//! End-to-end harness: the built binary as a child process, the simulator,
//! and a real OpenTelemetry collector (rotel) forwarding to a recording
//! receiver. The oracle is the simulator's sequence numbers against what
//! reached the receiver through the collector, each expected as many times
//! as the API holds copies of it (identical twins twice).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forge_otel_sidecar::testkit::receiver::Receiver;

/// The rotel binary: `ROTEL_AGENT`, else the copy scripts/install-test-tools.sh puts in .tools/.
pub fn rotel_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ROTEL_AGENT") {
        return Some(PathBuf::from(p));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/rotel/rotel/rotel-agent");
    local.exists().then_some(local)
}

/// The collector binary, or a skip notice outside CI (in CI its absence fails the test).
pub fn require_rotel() -> Option<PathBuf> {
    match rotel_path() {
        Some(p) => Some(p),
        // Skipping is asked for, never silent: a missing collector fails the run.
        None if std::env::var("FORGE_SIDECAR_SKIP_E2E").is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPED: FORGE_SIDECAR_SKIP_E2E=1 (end-to-end tests through rotel not run)");
            None
        }
        None => panic!(
            "rotel (the end-to-end tests' collector) is not installed: run scripts/install-test-tools.sh \
             (or scripts/test.sh, which does), or set FORGE_SIDECAR_SKIP_E2E=1 to skip these tests"
        ),
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"))
}

/// A child process whose output lines are kept, killed on drop.
pub struct Proc {
    pub child: Child,
    pub output: Arc<Mutex<Vec<String>>>,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    out.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
                }
            });
        }
        Proc { child, output, name: name.to_string() }
    }

    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// SIGTERM, then wait up to `grace`; returns the exit code (None if killed by a signal or still running).
    pub fn terminate(&mut self, grace: Duration) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A rotel collector on free ports, forwarding to `forward` over OTLP/HTTP
/// (when given), always printing what it receives.
pub struct Collector {
    pub proc: Proc,
    pub grpc_port: u16,
    pub http_port: u16,
    _dir: tempfile::TempDir,
}

impl Collector {
    pub fn start(rotel: &Path, forward: Option<&Receiver>) -> Collector {
        Self::start_on(rotel, forward, free_port(), free_port())
    }

    /// On given ports (a restart after an outage keeps its address).
    pub fn start_on(rotel: &Path, forward: Option<&Receiver>, grpc_port: u16, http_port: u16) -> Collector {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(rotel);
        cmd.arg("start")
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .arg("--debug-log")
            .arg("logs")
            .arg("--debug-log-verbosity")
            .arg("detailed");
        match forward {
            Some(rx) => {
                cmd.arg("--exporter")
                    .arg("otlp")
                    .arg("--otlp-exporter-protocol")
                    .arg("http")
                    .arg("--otlp-exporter-endpoint")
                    .arg(rx.http_endpoint());
            }
            None => {
                cmd.arg("--exporter").arg("blackhole");
            }
        }
        let proc = Proc::spawn("rotel", cmd);
        let c = Collector { proc, grpc_port, http_port, _dir: dir };
        wait_port(grpc_port, Duration::from_secs(10));
        wait_port(http_port, Duration::from_secs(10));
        c
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

pub fn wait_port(port: u16, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port} after {limit:?}");
}

/// The sidecar binary with a config file in a temporary directory.
pub struct Sidecar {
    pub proc: Proc,
    pub server_port: u16,
}

pub fn sidecar_bin() -> &'static str {
    env!("CARGO_BIN_EXE_forge-otel-sidecar")
}

impl Sidecar {
    /// Writes `config` to `dir/config.yaml` and runs `run` on it.
    pub fn start(dir: &Path, config: &str, server_port: u16, envs: &[(&str, &str)]) -> Sidecar {
        let path = dir.join("config.yaml");
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(sidecar_bin());
        cmd.arg("run").arg("--config").arg(&path).env("RUST_LOG", "info").env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn("sidecar", cmd);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", server_port)).is_err() {
            if !proc.is_running() || std::time::Instant::now() > deadline {
                std::thread::sleep(Duration::from_millis(100));
                panic!("the sidecar did not start serving on {server_port}:\n{}", proc.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Sidecar { proc, server_port }
    }

    /// A metric's value from /metrics, summed over its label sets.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.server_port);
        forge_otel_sidecar::tls::install_crypto_provider();
        match reqwest::Client::new().get(url).timeout(Duration::from_secs(5)).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }
}

/// One scenario's world: the simulator, the recording receiver, optionally
/// a rotel collector in front of it, a state directory and a server port.
pub struct World {
    pub sim: forge_otel_sidecar::simulator::SimHandle,
    pub rx: Receiver,
    pub collector: Option<Collector>,
    pub rotel: Option<PathBuf>,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

pub const TOKEN: &str = "tok-S3CRET-value-42";
pub const EMAIL: &str = "bot@example.com";

impl World {
    /// `via_rotel`: the sidecar exports to a real collector that forwards to the receiver;
    /// otherwise straight to the receiver (for scripted collector failures).
    pub async fn new(sim: forge_otel_sidecar::simulator::SimConfig, via_rotel: bool) -> Option<World> {
        Self::with_metrics(sim, Default::default(), via_rotel).await
    }

    /// [`World::new`] with the App metrics endpoint's own settings.
    pub async fn with_metrics(
        sim: forge_otel_sidecar::simulator::SimConfig,
        metrics: forge_otel_sidecar::simulator::MetricsSimConfig,
        via_rotel: bool,
    ) -> Option<World> {
        let rotel = if via_rotel { Some(require_rotel()?) } else { None };
        let sim = forge_otel_sidecar::simulator::SimConfig { email: EMAIL.into(), token: TOKEN.into(), ..sim };
        let sim = super::common::sim_with_metrics(sim, metrics).await;
        let rx = super::common::receiver().await;
        let collector = rotel.as_ref().map(|r| Collector::start(r, Some(&rx)));
        Some(World {
            sim,
            rx,
            collector,
            rotel,
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            port: free_port(),
        })
    }

    /// gRPC endpoint the sidecar exports to.
    pub fn endpoint(&self) -> String {
        match &self.collector {
            Some(c) => c.grpc_endpoint(),
            None => self.rx.grpc_endpoint(),
        }
    }

    /// The sidecar's config ([`super::common::SidecarYaml`]); `poll` lines go
    /// under `poll:`, `exporter` under `exporter:`, `extra` at the top level.
    pub fn config(&self, token_line: &str, poll: &str, exporter: &str, extra: &str) -> String {
        self.config_with_sources(token_line, "", poll, exporter, extra)
    }

    /// [`World::config`] with `sources` lines after the first source (more
    /// sources, or more keys of the first).
    pub fn config_with_sources(
        &self,
        token_line: &str,
        sources: &str,
        poll: &str,
        exporter: &str,
        extra: &str,
    ) -> String {
        let state = self.dir.path().join("state");
        let exporter_extra = format!("  timeout: 2s\n{exporter}");
        super::common::SidecarYaml {
            base_url: self.sim.base_url(),
            email: EMAIL,
            token_line,
            request_timeout: "2s",
            initial_lookback: "31m",
            source_extra: sources,
            poll_extra: poll,
            protocol: "grpc",
            endpoint: self.endpoint(),
            exporter_extra: &exporter_extra,
            state: &state,
            listen: format!("127.0.0.1:{}", self.port),
            extra,
        }
        .render()
    }

    pub fn default_config(&self) -> String {
        self.config("api_token: ${env:FORGE_API_TOKEN}", "", "", "")
    }

    pub fn start(&self, config: &str, envs: &[(&str, &str)]) -> Sidecar {
        let mut all = vec![("FORGE_API_TOKEN", TOKEN)];
        all.extend_from_slice(envs);
        Sidecar::start(self.dir.path(), config, self.port, &all)
    }

    pub async fn wait_all(&self, limit: Duration) -> super::common::Tally {
        super::common::wait_for_all(&self.sim, &self.rx, super::common::settled_cutoff(), limit).await
    }

    /// Waits for `expected` (one entry per copy), counting newer twins' copies as the simulator holds them.
    pub async fn wait_for(&self, expected: Vec<u64>, limit: Duration) -> super::common::Tally {
        super::common::wait_for_sim(&self.sim, &self.rx, expected, limit).await
    }

    pub fn max_calls(&self) -> usize {
        forge_otel_sidecar::simulator::max_calls_in_window(&self.sim.requests(), "demo-app", Duration::from_secs(3))
    }

    pub fn count_status(&self, status: u16) -> usize {
        self.sim.requests().iter().filter(|r| r.status == status).count()
    }

    /// A report row with the run's tally and the API figures filled in.
    pub fn row(&self, id: &'static str, scenario: &'static str, t: &super::common::Tally) -> Row {
        Row {
            id,
            scenario,
            lost: Some(t.lost),
            dups: Some(t.dups),
            max_calls: Some(self.max_calls()),
            n429: Some(self.count_status(429)),
            ..Row::default()
        }
    }

    /// The receiver's record count once the collector has forwarded what it
    /// still held (unchanged for half a second, 10 s at most).
    pub async fn settled_count(&self) -> usize {
        let mut count = self.rx.record_count();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.rx.record_count();
            if now == count {
                break;
            }
            count = now;
        }
        count
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// One row of docs/RELIABILITY.md, printed for scripts/reliability.sh.
#[derive(Debug, Default)]
pub struct Row {
    pub id: &'static str,
    pub scenario: &'static str,
    pub lost: Option<usize>,
    pub dups: Option<usize>,
    pub max_calls: Option<usize>,
    pub n429: Option<usize>,
    pub recovery: Option<Duration>,
    pub pass: bool,
    pub note: String,
}

impl Row {
    pub fn print(&self) {
        let o = |v: Option<usize>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "RELIABILITY|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.id,
            self.scenario,
            o(self.lost),
            o(self.dups),
            o(self.max_calls),
            o(self.n429),
            self.recovery.map(|d| format!("{:.1}s", d.as_secs_f64())).unwrap_or_else(|| "-".into()),
            if self.pass { "pass" } else { "FAIL" },
            self.note.replace('|', "/"),
        );
    }

    /// Prints the row, then fails the test if it did not pass.
    pub fn check(self) {
        self.print();
        assert!(self.pass, "{} failed: {:?}", self.id, self);
    }
}
