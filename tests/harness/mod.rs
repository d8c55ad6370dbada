//! End-to-end harness: the built binary as a child process, the simulator,
//! and a real OpenTelemetry collector (rotel) forwarding to a recording
//! receiver. The oracle is the simulator's sequence numbers against what
//! reached the receiver through the collector.

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
        None if std::env::var("CI").is_ok() => panic!("rotel is not installed; run scripts/install-test-tools.sh"),
        None => {
            eprintln!("SKIPPED: rotel not installed (run scripts/install-test-tools.sh)");
            None
        }
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
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (grpc_port, http_port) = (free_port(), free_port());
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
        let proc = Proc::spawn("sidecar", cmd);
        wait_port(server_port, Duration::from_secs(10));
        Sidecar { proc, server_port }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.server_port);
        match reqwest::Client::new().get(url).timeout(Duration::from_secs(5)).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }
}
