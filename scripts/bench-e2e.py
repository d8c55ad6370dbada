#!/usr/bin/env python3
"""End-to-end benchmark: simulator → sidecar → rotel (blackhole exporter),
against the documented cron-style setup on the same pages; plus memory,
backfill pacing, freshness (real time, default poll settings, 1 and 5
sources of one app within the real budget) and a busy app's steady state
(CPU per record against the backfill's, checkpoint bytes per page, peak
RSS). Prints markdown tables for docs/BENCHMARKS.md.

Usage: python3 scripts/bench-e2e.py [--records 100000] [--skip-build] [--only PART] [--profile]
Everything runs on loopback and stops by itself."""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "forge-otel-sidecar")
ROTEL = os.environ.get("ROTEL_AGENT") or os.path.join(ROOT, ".tools", "rotel", "rotel", "rotel-agent")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(p, limit=60):
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", p), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {p}")


def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def rss(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def metric(port_, name):
    total = 0.0
    for line in get(f"http://127.0.0.1:{port_}/metrics").splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Proc:
    def __init__(self, args, env=None, log=None):
        self.log = open(log or os.devnull, "w")
        self.p = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def simulator(args, tmp):
    p = port()
    limit = [] if "--rate-limit" in args else ["--rate-limit", "0"]
    proc = Proc([BIN, "simulate", "--listen", f"127.0.0.1:{p}", *limit, "--email", "bench@example.com",
                 "--token", "bench-token", *args], log=os.path.join(tmp, f"sim-{p}.log"))
    wait_port(p)
    return proc, p


def rotel(tmp):
    g, h = port(), port()
    proc = Proc([ROTEL, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{g}", "--otlp-http-endpoint", f"127.0.0.1:{h}",
                 "--exporter", "blackhole", "--pid-file", os.path.join(tmp, f"rotel-{g}.pid")], log=os.path.join(tmp, f"rotel-{g}.log"))
    wait_port(g)
    wait_port(h)
    return proc, g, h


def sidecar(tmp, sim_port, endpoint, protocol, poll, extra="", name="bench", budget="requests_per_minute: 10000",
            envs=None):
    """The sidecar: one log source of demo-app ("bench", production), or one per
    environment in `envs` (named after it)."""
    sp = port()
    state = os.path.join(tmp, f"state-{name}")
    cfg = os.path.join(tmp, f"{name}.yaml")
    pairs = [(e, e) for e in envs] if envs else [("production", "bench")]
    sources = "".join(f"  - app_id: demo-app\n    environment_id: {e}\n    name: {n}\n" for e, n in pairs)
    open(cfg, "w").write(f"""forge:
  base_url: http://127.0.0.1:{sim_port}
  email: bench@example.com
  api_token: bench-token
  {budget}
sources:
{sources}poll:
{poll}
exporter:
  protocol: {protocol}
  endpoint: {endpoint}
state:
  dir: {state}
server:
  listen: 127.0.0.1:{sp}
log:
  level: warn
{extra}""")
    proc = Proc([BIN, "run", "--config", cfg], log=os.path.join(tmp, f"{name}.log"))
    wait_port(sp)
    return proc, sp


def expected_count(sim_port, before_ms):
    return len(json.loads(get(f"http://127.0.0.1:{sim_port}/_sim/records?before_ms={before_ms}"))["seqs"])


def throughput(args, tmp, name="bench", documented=True):
    """The backfill: the sidecar, then (when `documented`) the documented
    setup, over the same pages."""
    rate = 50.0
    history = int(args.records / rate) + 60
    sim, sp = simulator(["--history", f"{history}s", "--records-per-second", str(rate), "--page-size", "1000",
                         "--late-fraction", "0", "--edge-fraction", "0"], tmp)
    now_ms = int(time.time() * 1000)
    col, g, h = rotel(tmp)
    col_cpu0 = cpu_seconds(col.p.pid)
    poll = f"  interval: 1s\n  settle_delay: 1s\n  late_arrival: 0s\n  initial_lookback: {history + 120}s"
    t0 = time.time()
    endpoint = f"http://127.0.0.1:{g}" if args.protocol == "grpc" else f"http://127.0.0.1:{h}"
    side, port_ = sidecar(tmp, sp, endpoint, args.protocol, poll, name=name)
    target = expected_count(sp, now_ms - 2000)
    while metric(port_, "forge_sidecar_sent_log_records_total") < target:
        time.sleep(0.05)
        if time.time() - t0 > 600:
            raise SystemExit("sidecar did not finish in 10 minutes")
    wall = time.time() - t0
    sent = metric(port_, "forge_sidecar_sent_log_records_total")
    s_cpu = cpu_seconds(side.p.pid)
    s_peak = rss(side.p.pid, "VmHWM")
    time.sleep(3)  # steady state: caught up, polling every second
    s_steady = rss(side.p.pid, "VmRSS")
    c_cpu = cpu_seconds(col.p.pid) - col_cpu0
    c_peak = rss(col.p.pid, "VmHWM")
    side.stop()
    col.stop()
    if not documented:
        sim.stop()
        return dict(sent=sent, wall=wall, s_cpu=s_cpu)

    # The documented setup over the same stretch, to a fresh collector's OTLP/HTTP JSON receiver.
    col, g, h = rotel(tmp)
    col_cpu0 = cpu_seconds(col.p.pid)
    start_ms = now_ms - (history + 120) * 1000
    t1 = time.time()
    job = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "bench", "documented_poller.py"),
                            f"http://127.0.0.1:{sp}", "demo-app", "production", str(start_ms), str(now_ms - 2000),
                            f"http://127.0.0.1:{h}/v1/logs"],
                           env={**os.environ, "FORGE_EMAIL": "bench@example.com", "FORGE_API_TOKEN": "bench-token"},
                           stdout=subprocess.PIPE)
    out = job.stdout.read()
    _, _, usage = os.wait4(job.pid, 0)  # this child's own CPU time and peak RSS
    d_wall = time.time() - t1
    d_sent = int(out.decode().strip() or 0)
    time.sleep(1)
    dc_cpu = cpu_seconds(col.p.pid) - col_cpu0
    dc_peak = rss(col.p.pid, "VmHWM")
    col.stop()
    sim.stop()
    return dict(target=target, sent=sent, wall=wall, s_cpu=s_cpu, s_peak=s_peak, s_steady=s_steady, c_cpu=c_cpu,
                c_peak=c_peak, d_sent=d_sent, d_wall=d_wall, d_usage=usage, dc_cpu=dc_cpu, dc_peak=dc_peak)


def proc_io(pid):
    return {k: int(v) for k, v in (line.split(": ") for line in open(f"/proc/{pid}/io"))}


def journal_bytes(state):
    return sum(os.path.getsize(os.path.join(state, f)) for f in os.listdir(state) if f.endswith(".journal"))


def steady(tmp, warmup=150, span=180, profile=False):
    """A busy app in steady state: a live stream of 300 records/s, 1,000-record pages,
    late_arrival 2m (the second pass reads every stretch again 2 minutes later), interval 1s,
    no rate limit. Measured over `span` seconds once the second pass is re-reading."""
    sim, sp = simulator(["--history", "0s", "--records-per-second", "300", "--page-size", "1000"], tmp)
    col, g, h = rotel(tmp)
    poll = "  interval: 1s\n  settle_delay: 1s\n  late_arrival: 2m\n  initial_lookback: 10s"
    side, port_ = sidecar(tmp, sp, f"http://127.0.0.1:{g}", "grpc", poll, name="steady",
                          budget="requests_per_minute: 10000")
    state = os.path.join(tmp, "state-steady")
    time.sleep(warmup)
    late_lag = metric(port_, "forge_sidecar_late_watermark_lag_seconds")
    names = ["forge_sidecar_sent_log_records_total", "forge_sidecar_pages_total",
             "forge_sidecar_duplicate_log_records_total", "forge_sidecar_received_log_records_total"]
    before = ({n: metric(port_, n) for n in names}, cpu_seconds(side.p.pid), proc_io(side.p.pid), journal_bytes(state),
              time.time())
    perf = None
    if profile:
        perf = subprocess.Popen(["perf", "record", "-F", "499", "-e", "cpu-clock", "-g", "-p", str(side.p.pid),
                                 "-o", os.path.join(tmp, "steady.perf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(span)
    after = ({n: metric(port_, n) for n in names}, cpu_seconds(side.p.pid), proc_io(side.p.pid), journal_bytes(state),
             time.time())
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(60)
    peak = rss(side.p.pid, "VmHWM")
    late_lag_end = metric(port_, "forge_sidecar_late_watermark_lag_seconds")
    side.stop()
    col.stop()
    sim.stop()
    d = {n: after[0][n] - before[0][n] for n in names}
    report = None
    if perf:
        report = subprocess.run(["perf", "report", "-i", os.path.join(tmp, "steady.perf"), "--no-children",
                                 "--stdio", "--percent-limit", "1.5", "-g", "none", "--sort", "symbol"],
                                capture_output=True, text=True).stdout
    return dict(sent=d[names[0]], pages=d[names[1]], dups=d[names[2]], received=d[names[3]], cpu=after[1] - before[1],
                write_bytes=after[2]["write_bytes"] - before[2]["write_bytes"],
                syscw=after[2]["syscw"] - before[2]["syscw"], journal=after[3] - before[3], wall=after[4] - before[4],
                peak=peak, late_lag=late_lag, late_lag_end=late_lag_end, profile=report)


def memory(tmp):
    """Peak RSS with 10 MB pages; RSS while the collector is down."""
    sim, sp = simulator(["--history", "1200s", "--records-per-second", "10", "--page-size", "1000",
                         "--pad-bytes", "10000", "--late-fraction", "0"], tmp)
    col, g, h = rotel(tmp)
    poll = "  interval: 1s\n  settle_delay: 1s\n  late_arrival: 0s\n  initial_lookback: 1500s"
    side, port_ = sidecar(tmp, sp, f"http://127.0.0.1:{g}", "grpc", poll, name="big")
    target = expected_count(sp, int(time.time() * 1000) - 2000)
    t0 = time.time()
    while metric(port_, "forge_sidecar_sent_log_records_total") < target and time.time() - t0 < 300:
        time.sleep(0.2)
    big_peak = rss(side.p.pid, "VmHWM")
    # The collector goes down: the sidecar holds one page and retries.
    col.stop()
    samples = []
    for _ in range(10):
        time.sleep(1)
        samples.append(rss(side.p.pid, "VmRSS"))
    side.stop()
    sim.stop()
    return dict(big_peak=big_peak, page_bytes=1000 * 10_500, down_max=max(samples), down_min=min(samples))


def pacing(tmp):
    """14 days of history under the budget, time-compressed: 30 calls per 2 s."""
    sim, sp = simulator(["--history", "14d", "--records-per-second", "0.01", "--page-size", "1000",
                         "--rate-limit", "30", "--rate-window", "2s"], tmp)
    col, g, h = rotel(tmp)
    poll = "  interval: 1s\n  settle_delay: 1s\n  late_arrival: 10s\n  initial_lookback: 14d"
    t0_ms = int(time.time() * 1000)
    side, sp2 = sidecar(tmp, sp, f"http://127.0.0.1:{g}", "grpc", poll, name="pace",
                        budget="requests_per_minute: 30\n  rate_period: 2s")
    while metric(sp2, "forge_sidecar_watermark_lag_seconds") > 5 and time.time() * 1000 - t0_ms < 120_000:
        time.sleep(0.2)
    done_ms = int(time.time() * 1000)
    log = json.loads(get(f"http://127.0.0.1:{sp}/_sim/requests"))
    side.stop()
    col.stop()
    sim.stop()
    calls = [r for r in log if t0_ms <= r["at_ms"] <= done_ms]
    n429 = sum(1 for r in calls if r["status"] == 429)
    windows = (14 * 24 * 3600 - 600) / 3600
    elapsed = (calls[-1]["at_ms"] - calls[0]["at_ms"]) / 1000
    minimum = (len(calls) - 1) * 2 / 30
    times = [r["at_ms"] for r in calls]
    worst = max(sum(1 for u in times if t <= u < t + 2000) for t in times)
    return dict(calls=len(calls), windows=windows, elapsed=elapsed, minimum=minimum, n429=n429, worst=worst)


def freshness(tmp, n_sources, run_s):
    """Real time, the default poll settings (interval, settle_delay, late_arrival), the real
    budget of 30 calls a minute shared by `n_sources` sources of one app (one environment
    each), records written live at 2 per second per environment, all visible on time.
    Delay = arrival at the receiver - the moment the record became visible in the API."""
    import http.server
    import threading
    arrivals = {}

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            now = time.time() * 1000
            for rl in body.get("resourceLogs", []):
                for sl in rl.get("scopeLogs", []):
                    for r in sl.get("logRecords", []):
                        for a in r.get("attributes", []):
                            if a["key"] == "sim.seq":
                                arrivals.setdefault(int(a["value"]["intValue"]), now)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    envs = [f"env{i + 1}" for i in range(n_sources)]
    # No history, so no backfill: the first read's window (the default lookback, 1 h) is older
    # than late_arrival and final, so the second pass steps through the last 10 minutes from the
    # start, one call per interval, as it does in the steady state.
    sim, sp = simulator(["--app", "demo-app:" + ",".join(envs), "--history", "0s", "--records-per-second", "2",
                         "--late-fraction", "0", "--rate-limit", "30", "--rate-window", "60s"], tmp)
    # Only the first read's start; interval, settle_delay and late_arrival are the defaults.
    poll = "  initial_lookback: 1h"
    t_start = int(time.time() * 1000)
    # The real budget: 30 calls a minute, shared by the app's sources.
    side, port_ = sidecar(tmp, sp, f"http://127.0.0.1:{srv.server_address[1]}", "http/json", poll,
                          name=f"fresh{n_sources}", budget="requests_per_minute: 30", envs=envs)
    time.sleep(run_s)
    t_end = int(time.time() * 1000)
    status = json.loads(get(f"http://127.0.0.1:{port_}/status"))
    side.stop()
    warmup, tail = 90_000, 90_000  # the backfill before; records too recent to be due after
    detail = json.loads(get(f"http://127.0.0.1:{sp}/_sim/records?before_ms={t_end - tail}&detail=true"))["records"]
    log = json.loads(get(f"http://127.0.0.1:{sp}/_sim/requests"))
    sim.stop()
    srv.shutdown()
    delays = []
    missing = 0
    for seq, ts, visible in detail:
        if ts < t_start + warmup:
            continue
        if seq not in arrivals:
            missing += 1
            continue
        delays.append(arrivals[seq] - visible)
    calls = [r for r in log if r["at_ms"] >= t_start]
    times = [r["at_ms"] for r in calls]
    worst = max((sum(1 for u in times if t <= u < t + 60_000) for t in times), default=0)
    steady = [t for t in times if t >= t_start + warmup]
    per_min = len(steady) * 60_000 / max(1, t_end - (t_start + warmup))
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
    app = (status.get("apps") or [{}])[0]
    return dict(sources=n_sources, n=len(delays), median=statistics.median(delays) if delays else float("nan"),
                p99=q(delays, 0.99), max=max(delays, default=float("nan")), missing=missing,
                n429=sum(1 for r in calls if r["status"] == 429), worst=worst, per_min=per_min,
                needed=app.get("calls_needed_per_minute"), eff_interval=app.get("effective_interval_seconds"),
                run_s=run_s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--only", choices=["throughput", "memory", "pacing", "freshness", "steady"],
                    help="one part; steady runs the throughput (backfill) part too, for its comparison")
    ap.add_argument("--steady-span", type=int, default=180, help="seconds of steady state measured")
    ap.add_argument("--profile", action="store_true", help="perf-record the sidecar during the steady state")
    ap.add_argument("--freshness-seconds", type=int, default=300, help="real time per freshness case (1 and 5 sources)")
    ap.add_argument("--protocol", choices=["grpc", "http/protobuf"], default="grpc",
                    help="how the sidecar sends to the collector in the throughput run")
    args = ap.parse_args()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    if args.only != "freshness" and not os.access(ROTEL, os.X_OK):  # the freshness runs need no collector
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "install-test-tools.sh")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        backfill_us = None
        if args.only in (None, "throughput", "steady"):
            r = throughput(args, tmp)
            n, dn = r["sent"], max(r["d_sent"], 1)
            d_cpu = r["d_usage"].ru_utime + r["d_usage"].ru_stime
            us = lambda cpu, n: cpu * 1e6 / n
            side_total = us(r["s_cpu"] + r["c_cpu"], n)
            doc_total = us(d_cpu + r["dc_cpu"], dn)
            print(f"\n## Throughput: {n:.0f} records, 1,000-record pages, no rate limit\n")
            print("| setup | wall s | records/s | poller CPU µs/record | collector CPU µs/record | total µs/record | poller peak RSS | collector peak RSS |")
            print("|---|---|---|---|---|---|---|---|")
            how = "gRPC protobuf" if args.protocol == "grpc" else "HTTP protobuf"
            print(f"| forge-otel-sidecar → rotel ({how}) | {r['wall']:.1f} | {n / r['wall']:.0f} | {us(r['s_cpu'], n):.2f} | {us(r['c_cpu'], n):.2f} | {side_total:.2f} | {r['s_peak'] / 2**20:.1f} MiB | {r['c_peak'] / 2**20:.1f} MiB |")
            print(f"| documented job (Python) → rotel (HTTP JSON) | {r['d_wall']:.1f} | {dn / r['d_wall']:.0f} | {us(d_cpu, dn):.2f} | {us(r['dc_cpu'], dn):.2f} | {doc_total:.2f} | {r['d_usage'].ru_maxrss / 1024:.1f} MiB | {r['dc_peak'] / 2**20:.1f} MiB |")
            print(f"\nTotal CPU per record, documented ÷ sidecar: {doc_total / side_total:.1f}×; sidecar steady-state RSS after catching up: {r['s_steady'] / 2**20:.1f} MiB")
            backfill_us = us(r["s_cpu"], n)
            runs = [backfill_us]
            if args.only in (None, "steady"):
                # The steady state is divided by this figure. A 4-second run
                # on a shared machine varies, and so does the machine from one
                # hour to the next: the median of five backfills, three before
                # the steady state and two after it.
                runs += [us(x["s_cpu"], x["sent"]) for x in
                         (throughput(args, tmp, name=f"bench{i}", documented=False) for i in (2, 3))]
        if args.only in (None, "steady"):
            st = steady(tmp, span=args.steady_span, profile=args.profile)
            if backfill_us:
                runs += [us(x["s_cpu"], x["sent"]) for x in
                         (throughput(args, tmp, name=f"bench{i}", documented=False) for i in (4, 5))]
                backfill_us = statistics.median(runs)
                print(f"\nBackfill CPU per record in five runs (three before the steady state, two after): "
                      f"{', '.join(f'{x:.2f}' for x in runs)} µs (median {backfill_us:.2f})")
            per = st["cpu"] * 1e6 / max(st["sent"], 1)
            pages = max(st["pages"], 1)
            print(f"\n## Steady state: 300 records/s live, late_arrival 2m, interval 1s, {st['wall']:.0f} s measured\n")
            print("| records sent | pages read | duplicates dropped | sidecar CPU µs/record | ÷ backfill | disk write_bytes per page | journal growth per page | write syscalls per page | peak RSS |")
            print("|---|---|---|---|---|---|---|---|---|")
            ratio = f"{per / backfill_us:.2f}×" if backfill_us else "-"
            print(f"| {st['sent']:.0f} ({st['sent'] / st['wall']:.0f}/s) | {st['pages']:.0f} | {st['dups']:.0f} | {per:.2f} | {ratio} | {st['write_bytes'] / pages:.0f} B | {st['journal'] / pages:.0f} B | {st['syscw'] / pages:.1f} | {st['peak'] / 2**20:.1f} MiB |")
            print(f"\nsecond pass: late watermark lag {st['late_lag']:.0f} s at the start, {st['late_lag_end']:.0f} s at the end; "
                  f"backfill CPU {backfill_us:.2f} µs/record (median of five)" if backfill_us else "")
            if st["profile"]:
                print("\nperf (cpu-clock, 499 Hz, self time by symbol):\n")
                print("\n".join(l for l in st["profile"].splitlines() if l.strip() and not l.startswith("#")))
        if args.only in (None, "memory"):
            m = memory(tmp)
            print("\n## Memory\n")
            print("| case | RSS |")
            print("|---|---|")
            print(f"| peak with 10 MB pages (1,000 records of 10 KB) | {m['big_peak'] / 2**20:.1f} MiB ({m['big_peak'] / m['page_bytes']:.1f}× the page) |")
            print(f"| collector down 10 s after that (min–max) | {m['down_min'] / 2**20:.1f}–{m['down_max'] / 2**20:.1f} MiB |")
        if args.only in (None, "pacing"):
            p = pacing(tmp)
            print("\n## Backfill pacing: 14 days, budget 30 calls per 2 s (time-compressed 30×)\n")
            print("| calls | windows (≥) | elapsed s | minimum s for these calls | over minimum | most calls in any 2 s | 429s |")
            print("|---|---|---|---|---|---|---|")
            print(f"| {p['calls']} | {p['windows']:.0f} | {p['elapsed']:.1f} | {p['minimum']:.1f} | {100 * (p['elapsed'] / p['minimum'] - 1):.1f} % | {p['worst']} | {p['n429']} |")
        if args.only in (None, "freshness"):
            rows = [freshness(tmp, n, args.freshness_seconds) for n in (1, 5)]
            print(f"\n## Freshness: default poll settings, real time, the real budget (30 calls per minute), {args.freshness_seconds} s per case\n")
            print("| sources on one app | records | median delay | p99 delay | max | missing | calls/min (steady) | most calls in any 60 s | 429s | /status: needed/min, effective interval |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for f in rows:
                print(f"| {f['sources']} | {f['n']} | {f['median'] / 1000:.1f} s | {f['p99'] / 1000:.1f} s | {f['max'] / 1000:.1f} s | {f['missing']} | {f['per_min']:.1f} | {f['worst']} | {f['n429']} | {f['needed']}, {f['eff_interval']} s |")

if __name__ == "__main__":
    main()
