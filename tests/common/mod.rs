//! Shared harness for the in-process integration tests: the simulator,
//! the OTLP receiver, and the sidecar wired between them, with time
//! compressed through configuration.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use forge_otel_sidecar::app::{App, Options};
use forge_otel_sidecar::config::Config;
use forge_otel_sidecar::simulator::{self, SimConfig, SimHandle};
use forge_otel_sidecar::testkit::receiver::Receiver;

pub fn addr0() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

pub async fn sim(cfg: SimConfig) -> SimHandle {
    simulator::start(cfg, addr0()).await.unwrap_or_else(|e| panic!("simulator: {e}"))
}

/// [`sim`] with the App metrics endpoint's own settings.
pub async fn sim_with_metrics(cfg: SimConfig, metrics: simulator::MetricsSimConfig) -> SimHandle {
    simulator::start_with_metrics(cfg, metrics, addr0()).await.unwrap_or_else(|e| panic!("simulator: {e}"))
}

pub async fn receiver() -> Receiver {
    Receiver::start().await.unwrap_or_else(|e| panic!("receiver: {e}"))
}

/// A simulator config with compressed time: two hours of history, records
/// visible up to 3 s late, a rate limit of 30 calls per 3 s.
pub fn fast_sim() -> SimConfig {
    SimConfig {
        history: Duration::from_secs(2 * 3600),
        records_per_second: 2.0,
        page_size: 200,
        rate_limit: 30,
        rate_window: Duration::from_secs(3),
        late_fraction: 0.2,
        max_late: Duration::from_secs(3),
        edge_fraction: 0.05,
        ..SimConfig::default()
    }
}

/// The tests' one sidecar config template: compressed time (poll and
/// settle 500 ms, late_arrival 4 s, the budget 30 calls per 3 s, backoff
/// 50 ms to 500 ms). Callers fill in where the API and the collector are,
/// and add lines under `poll:`, the source, `exporter:` or the top level.
pub struct SidecarYaml<'a> {
    pub base_url: String,
    pub email: &'a str,
    pub token_line: &'a str,
    pub request_timeout: &'a str,
    pub initial_lookback: &'a str,
    pub source_extra: &'a str,
    pub poll_extra: &'a str,
    pub protocol: &'a str,
    pub endpoint: String,
    pub exporter_extra: &'a str,
    pub state: &'a Path,
    pub listen: String,
    pub extra: &'a str,
}

impl SidecarYaml<'_> {
    pub fn render(&self) -> String {
        format!(
            r#"forge:
  base_url: {base}
  email: {email}
  {token_line}
  request_timeout: {timeout}
  requests_per_minute: 30
  rate_period: 3s
sources:
  - app_id: demo-app
    environment_id: production
    name: prod
{source_extra}
poll:
  interval: 500ms
  settle_delay: 500ms
  late_arrival: 4s
  initial_lookback: {lookback}
  backoff_initial: 50ms
  backoff_max: 500ms
  config_error_retry: 1s
{poll_extra}
exporter:
  protocol: {protocol}
  endpoint: {endpoint}
  retry: {{initial_backoff: 50ms, max_backoff: 500ms}}
{exporter_extra}
state:
  dir: {state}
server:
  listen: {listen}
{extra}"#,
            base = self.base_url,
            email = self.email,
            token_line = self.token_line,
            timeout = self.request_timeout,
            source_extra = self.source_extra,
            lookback = self.initial_lookback,
            poll_extra = self.poll_extra,
            protocol = self.protocol,
            endpoint = self.endpoint,
            exporter_extra = self.exporter_extra,
            state = self.state.display(),
            listen = self.listen,
            extra = self.extra,
        )
    }
}

/// Sidecar config text for `sim` → `rx` (gRPC); `poll_extra` lines go under `poll:`.
pub fn sidecar_yaml(sim: &SimHandle, rx: &Receiver, state: &Path, poll_extra: &str) -> String {
    SidecarYaml {
        base_url: sim.base_url(),
        email: "demo@example.com",
        token_line: "api_token: demo-token",
        request_timeout: "5s",
        initial_lookback: "2h",
        source_extra: "",
        poll_extra,
        protocol: "grpc",
        endpoint: rx.grpc_endpoint(),
        exporter_extra: "",
        state,
        listen: "127.0.0.1:0".into(),
        extra: "",
    }
    .render()
}

pub fn config(text: &str) -> Config {
    Config::from_yaml(text, &|_| None).unwrap_or_else(|e| panic!("config: {e}\n{text}"))
}

pub async fn start(cfg: Config) -> App {
    App::start(cfg, Options::default()).await.unwrap_or_else(|e| panic!("start: {e:#}"))
}

/// Loss and duplicates of `expected` in `got`, by `sim.seq`. `expected`
/// holds a seq once per copy the API holds (twice for identical twins, as
/// [`SimHandle::seqs_before`] gives them): `lost` counts expected copies
/// that did not arrive, `dups` arrivals beyond the copies the API holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub expected: usize,
    pub received: usize,
    pub lost: usize,
    pub dups: usize,
}

/// [`tally_copies`] where a seq missing from `expected` (newer than its
/// cutoff) has one copy.
pub fn tally(expected: &[u64], got: &[u64]) -> Tally {
    tally_copies(expected, got, |_| 1)
}

/// `copies(seq)`: how many copies the API holds of a seq that is not in
/// `expected`, so that both copies of a newer twin are not duplicates.
pub fn tally_copies(expected: &[u64], got: &[u64], copies: impl Fn(u64) -> usize) -> Tally {
    let mut want: HashMap<u64, usize> = HashMap::new();
    for s in expected {
        *want.entry(*s).or_default() += 1;
    }
    let mut have: HashMap<u64, usize> = HashMap::new();
    for s in got {
        *have.entry(*s).or_default() += 1;
    }
    let lost = want.iter().map(|(s, w)| w.saturating_sub(have.get(s).copied().unwrap_or(0))).sum();
    let dups = have.iter().map(|(s, h)| h.saturating_sub(want.get(s).copied().unwrap_or_else(|| copies(*s)))).sum();
    Tally { expected: expected.len(), received: got.len(), lost, dups }
}

/// Waits until every record before `cutoff` arrived (or `limit` passes).
/// With the API's clock behind the host's, records after the API's now
/// cannot have arrived: the cutoff moves back by the offset.
pub async fn wait_for_all(sim: &SimHandle, rx: &Receiver, cutoff: SystemTime, limit: Duration) -> Tally {
    wait_for_sim(sim, rx, sim.seqs_before(sim.settled(cutoff)), limit).await
}

/// The records before `cutoff` whose timestamps are at or after `from_ms`.
pub fn seqs_between(sim: &SimHandle, from_ms: i64, cutoff: SystemTime) -> Vec<u64> {
    let g = sim.generator();
    let streams = sim.streams();
    sim.seqs_before(cutoff)
        .into_iter()
        .filter(|q| {
            let st = &streams[(q >> 40) as usize];
            g.meta(st, q & ((1 << 40) - 1)).ts_ns >= from_ms * 1_000_000
        })
        .collect()
}

/// Waits until every expected record arrived (or `limit` passes).
pub async fn wait_for(rx: &Receiver, expected: Vec<u64>, limit: Duration) -> Tally {
    wait_until(rx, &expected, limit, |_| 1).await
}

/// [`wait_for`], counting newer records' copies as the simulator holds them.
pub async fn wait_for_sim(sim: &SimHandle, rx: &Receiver, expected: Vec<u64>, limit: Duration) -> Tally {
    let t = wait_until(rx, &expected, limit, |s| sim.copies_of(s)).await;
    if t.lost > 0 {
        eprintln!("{}", describe_lost(sim, &expected, &rx.seqs()));
    }
    t
}

/// Where the first lost copies sit: each one's timestamp after the start of
/// the simulator's history and the moment the API showed it, so that a
/// failing row says whether a window edge, the lookback or a late record
/// lost it.
pub fn describe_lost(sim: &SimHandle, expected: &[u64], got: &[u64]) -> String {
    let mut have: HashMap<u64, usize> = HashMap::new();
    for s in got {
        *have.entry(*s).or_default() += 1;
    }
    let g = sim.generator();
    let streams = sim.streams();
    let t0 = sim.history_start_ns();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    let mut lines = Vec::new();
    for s in expected {
        match have.get_mut(s) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                let m = g.meta(&streams[(s >> 40) as usize], s & ((1 << 40) - 1));
                lines.push(format!(
                    "  seq {s:#x}: ts = history start + {:.3} s = now - {:.3} s, visible {:.3} s after ts, ts % 60 s = {:.3} s",
                    (m.ts_ns - t0) as f64 / 1e9,
                    (now - m.ts_ns) as f64 / 1e9,
                    (m.visible_ns - m.ts_ns) as f64 / 1e9,
                    m.ts_ns.rem_euclid(60_000_000_000) as f64 / 1e9,
                ));
            }
        }
    }
    let n = lines.len();
    lines.truncate(10);
    format!("lost {n} copies:\n{}", lines.join("\n"))
}

async fn wait_until(rx: &Receiver, expected: &[u64], limit: Duration, copies: impl Fn(u64) -> usize) -> Tally {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let t = tally_copies(expected, &rx.seqs(), &copies);
        if t.lost == 0 || tokio::time::Instant::now() >= deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn tally_counts_copies() {
    // 1 and 3 once each, 2 twice (twins); 9 is newer than the cutoff.
    let expected = [1, 2, 2, 3];
    let t = tally(&expected, &[1, 2, 2, 3]);
    assert_eq!((t.lost, t.dups), (0, 0));
    let t = tally(&expected, &[1, 2, 3]);
    assert_eq!((t.lost, t.dups), (1, 0), "one copy of the twin missing");
    let t = tally(&expected, &[1, 1, 2, 2, 2, 3]);
    assert_eq!((t.lost, t.dups), (0, 2));
    let t = tally(&expected, &[2, 2, 9, 9]);
    assert_eq!((t.lost, t.dups, t.received, t.expected), (2, 1, 4, 4));
    let t = tally_copies(&expected, &[1, 2, 2, 3, 9, 9], |s| if s == 9 { 2 } else { 1 });
    assert_eq!((t.lost, t.dups), (0, 0), "a newer twin arrives twice");
}

/// The time before which every record must have been delivered by now:
/// settle delay, late-arrival horizon and a few intervals back.
pub fn settled_cutoff() -> SystemTime {
    SystemTime::now() - Duration::from_secs(6)
}
