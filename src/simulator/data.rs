//! Deterministic log records generated on demand from a seed.
//!
//! Record `i` of a stream has a timestamp in `[t0 + i·step, t0 + (i+1)·step)`,
//! so timestamps grow with `i` and a window maps to an index range without
//! storing anything: 14 days at one record per second cost no memory.
//! Some records sit exactly on a minute edge; a fraction become visible
//! only after a delay up to `max_late` (late records).

use crate::fingerprint::hash_bytes;
use crate::forge::model::{AnyValue, KeyValue, LogRecord, NumOrStr};

const NANOS_PER_MINUTE: i64 = 60_000_000_000;

/// Levels with their pino numbers and weights (per 1000).
const LEVELS: [(&str, i64, u64); 6] = [
    ("TRACE", 10, 20),
    ("DEBUG", 20, 150),
    ("INFO", 30, 600),
    ("WARN", 40, 120),
    ("ERROR", 50, 100),
    ("FATAL", 60, 10),
];

const MESSAGES: [&str; 8] = [
    "Issue updated",
    "Fetched 12 comments in 84 ms",
    "Request to \"https://example.com/api\" failed: timeout",
    "Path C:\\forge\\tmp not found",
    "Überprüfung abgeschlossen ✓ 完了",
    "multi-line\nstack trace:\n  at handler (index.js:10)",
    "Rate limit reached, retrying",
    "{\"event\":\"webhook\",\"ok\":true}",
];

const FUNCTIONS: [&str; 4] = ["updateStatusTitle", "issuePanel", "webtriggerSync", "scheduledCleanup"];
const MODULES: [&str; 3] = ["core:function", "jira:issuePanel", "scheduledTrigger"];

/// One (app, environment) stream of records.
#[derive(Debug, Clone)]
pub struct Stream {
    pub app_id: String,
    pub environment_id: String,
    /// Position among all streams; part of every sequence number.
    pub index: u64,
}

/// Shape of the generated data.
#[derive(Debug, Clone)]
pub struct Generator {
    pub seed: u64,
    /// Timestamp of record 0, in nanoseconds since the epoch.
    pub t0_ns: i64,
    /// Nanoseconds between consecutive records of a stream.
    pub step_ns: i64,
    /// Records per 1000 that become visible late.
    pub late_permille: u64,
    pub max_late_ns: i64,
    /// Records per 1000 placed exactly on a minute edge (when one falls in their slot).
    pub edge_permille: u64,
    pub sites: Vec<String>,
    /// Extra bytes of `arguments` per record, for large pages.
    pub pad_bytes: usize,
}

/// The facts about record `i` needed to select it, before building it.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub index: u64,
    pub seq: u64,
    pub ts_ns: i64,
    pub visible_ns: i64,
    pub level: usize,
    pub site: usize,
    h: u64,
}

impl Generator {
    fn hash(&self, stream: &Stream, i: u64, salt: u64) -> u64 {
        let mut buf = [0u8; 32];
        buf[..8].copy_from_slice(&self.seed.to_le_bytes());
        buf[8..16].copy_from_slice(&stream.index.to_le_bytes());
        buf[16..24].copy_from_slice(&i.to_le_bytes());
        buf[24..].copy_from_slice(&salt.to_le_bytes());
        hash_bytes(&buf)
    }

    /// Sequence numbers are unique across streams.
    pub fn seq(stream: &Stream, i: u64) -> u64 {
        (stream.index << 40) | i
    }

    pub fn meta(&self, stream: &Stream, i: u64) -> Meta {
        let h = self.hash(stream, i, 0);
        let base = self.t0_ns + (i as i64) * self.step_ns;
        let mut ts = base + (h % self.step_ns.max(1) as u64) as i64;
        if (h >> 20) % 1000 < self.edge_permille {
            let edge = (base + NANOS_PER_MINUTE - 1).div_euclid(NANOS_PER_MINUTE) * NANOS_PER_MINUTE;
            if edge < base + self.step_ns {
                ts = edge;
            }
        }
        let h2 = self.hash(stream, i, 1);
        let late = if h2 % 1000 < self.late_permille && self.max_late_ns > 0 {
            ((h2 >> 10) % (self.max_late_ns as u64 + 1)) as i64
        } else {
            0
        };
        let mut pick = (h >> 32) % 1000;
        let mut level = 0;
        for (n, (_, _, weight)) in LEVELS.iter().enumerate() {
            if pick < *weight {
                level = n;
                break;
            }
            pick -= weight;
        }
        let site = if self.sites.is_empty() { 0 } else { ((h >> 44) % self.sites.len() as u64) as usize };
        Meta { index: i, seq: Self::seq(stream, i), ts_ns: ts, visible_ns: ts + late, level, site, h }
    }

    /// First index whose timestamp may be at or after `ts_ns`.
    pub fn first_index_at(&self, ts_ns: i64) -> u64 {
        let i = (ts_ns - self.t0_ns).div_euclid(self.step_ns.max(1)) - 1;
        i.max(0) as u64
    }

    /// True once no record at or after index `i` can be at or before `ts_ns`.
    pub fn past(&self, i: u64, ts_ns: i64) -> bool {
        self.t0_ns + (i as i64) * self.step_ns > ts_ns
    }

    pub(crate) fn level_name(level: usize) -> &'static str {
        LEVELS[level].0
    }

    pub fn site_of(&self, m: &Meta) -> Option<&str> {
        self.sites.get(m.site).map(String::as_str)
    }

    /// Every sequence number of a stream with a timestamp before `before_ns`.
    pub fn seqs_before(&self, stream: &Stream, before_ns: i64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut i = 0;
        while !self.past(i, before_ns) {
            let m = self.meta(stream, i);
            if m.ts_ns < before_ns {
                out.push(m.seq);
            }
            i += 1;
        }
        out
    }

    /// The record as the API shows it.
    pub fn record(&self, stream: &Stream, m: &Meta) -> LogRecord {
        let h = m.h;
        let (level_name, pino, _) = LEVELS[m.level];
        let msg = MESSAGES[(h % MESSAGES.len() as u64) as usize];
        let s = |v: String| Some(AnyValue::string(v));
        let kv = |k: &str, v: Option<AnyValue>| KeyValue { key: k.to_string(), value: v };
        let invocation = self.hash(stream, m.index / 4, 2);
        let mut arguments = format!("[{{\"randomData\":0.{:016}}}]", h % 10_000_000_000_000_000);
        if self.pad_bytes > 0 {
            arguments.push_str(&"x".repeat(self.pad_bytes));
        }
        let traced = !(h >> 8).is_multiple_of(10);
        LogRecord {
            time_unix_nano: Some(NumOrStr::Str(m.ts_ns.to_string())),
            severity_number: Some(NumOrStr::Int(pino)),
            severity_text: Some(level_name.to_string()),
            body: Some(AnyValue::string(format!("seq={} {msg}", m.seq))),
            trace_id: traced.then(|| format!("{:016x}{:016x}", self.hash(stream, m.index, 3), invocation)),
            span_id: traced.then(|| format!("{:016x}", self.hash(stream, m.index, 4))),
            attributes: vec![
                kv("appId", s(stream.app_id.clone())),
                kv("environmentId", s(stream.environment_id.clone())),
                kv("invocationId", s(uuid_like(invocation))),
                kv("installationContext", self.site_of(m).map(AnyValue::string)),
                kv("appVersion", s(format!("1.{}.0", 200 + (h >> 50) % 8))),
                kv("functionKey", s(FUNCTIONS[((h >> 40) % 4) as usize].to_string())),
                kv("moduleType", s(MODULES[((h >> 36) % 3) as usize].to_string())),
                kv("arguments", s(arguments)),
                kv("licenseState", s(if (h >> 30).is_multiple_of(5) { "Trial" } else { "Active" }.to_string())),
                kv("edition", s(if (h >> 28).is_multiple_of(3) { "Premium" } else { "Standard" }.to_string())),
                kv(
                    "sim.seq",
                    Some(AnyValue { int_value: Some(NumOrStr::Str(m.seq.to_string())), ..AnyValue::default() }),
                ),
            ],
        }
    }
}

/// A site id in the documented form for site number `n`.
pub fn site_id(seed: u64, n: usize) -> String {
    let h = hash_bytes(format!("site-{seed}-{n}").as_bytes());
    let product = if n % 3 == 2 { "confluence" } else { "jira" };
    format!("ari:cloud:{product}::site/{}", uuid_like(h))
}

fn uuid_like(h: u64) -> String {
    let h2 = h.rotate_left(29) ^ 0x5bd1_e995_5bd1_e995;
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        h2 >> 52,
        h2 & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen_() -> Generator {
        Generator {
            seed: 7,
            t0_ns: 1_700_000_000_000_000_000,
            step_ns: 1_000_000_000,
            late_permille: 100,
            max_late_ns: 30_000_000_000,
            edge_permille: 500,
            sites: (0..5).map(|n| site_id(7, n)).collect(),
            pad_bytes: 0,
        }
    }

    #[test]
    fn timestamps_grow_and_are_deterministic() {
        let g = gen_();
        let st = Stream { app_id: "a".into(), environment_id: "e".into(), index: 1 };
        let mut last = i64::MIN;
        let mut edges = 0;
        for i in 0..5000 {
            let m = g.meta(&st, i);
            assert!(m.ts_ns >= last, "record {i} goes back in time");
            assert!(m.visible_ns >= m.ts_ns && m.visible_ns <= m.ts_ns + g.max_late_ns);
            if m.ts_ns % NANOS_PER_MINUTE == 0 {
                edges += 1;
            }
            last = m.ts_ns;
            assert_eq!(g.record(&st, &m), g.record(&st, &g.meta(&st, i)));
        }
        assert!(edges > 10, "some records sit on minute edges: {edges}");
        assert_eq!(Generator::seq(&st, 3), (1 << 40) | 3);
        assert!(g.first_index_at(g.t0_ns + 10_500_000_000) <= 10);
    }
}
