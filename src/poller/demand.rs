//! What an app's log sources ask of its budget, and what the budget gives
//! them (`/status`, `/metrics`). Pure.
//!
//! The demand is the configured one: every site group of every source of
//! the app once per `interval`, for each pass. It is what keeps each
//! window `interval` long; when the budget cannot serve it, a pass that
//! waited reads everything it accumulated in one window (DESIGN.md 4), so
//! windows grow and the calls actually made stay within the budget. The
//! interval the budget really allows is the configured one stretched by
//! demand ÷ rate, and each pass's lag says how far it trails its target.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::ms;
use crate::config::Config;

/// Calls one round (one `interval`) of each app's log sources takes:
/// every site group of every source once for the first pass, and the
/// share of a call the second pass makes per interval (it reads one
/// stretch of [`super::plan::stride`] at a time; none when `late_arrival`
/// is 0).
pub fn calls_per_round(cfg: &Config) -> BTreeMap<String, f64> {
    let p = &cfg.poll;
    let interval = ms(p.interval).max(1);
    let passes = if p.late_arrival.is_zero() {
        1.0
    } else {
        1.0 + interval as f64 / super::plan::stride(ms(p.late_arrival), interval, ms(crate::config::MAX_WINDOW)) as f64
    };
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for s in &cfg.sources {
        *out.entry(s.app_id.clone()).or_default() += s.site_groups().len() as f64 * passes;
    }
    out
}

/// Calls per minute that make `calls` every `interval`.
pub fn per_minute(calls: f64, interval: Duration) -> f64 {
    calls * 60.0 / interval.as_secs_f64().max(0.001)
}

/// One app's figures on `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AppDemand {
    /// Calls per minute the app's sources need to keep to `interval`.
    pub calls_needed_per_minute: f64,
    /// The configured limit, per minute.
    pub budget_per_minute: f64,
    /// What the budget allows now (the limit, or less after a 429 that
    /// showed another client on the same limit).
    pub effective_rate_per_minute: f64,
    pub interval_seconds: f64,
    /// The first-pass interval the budget allows: `interval` stretched by
    /// demand ÷ effective rate when demand is the larger.
    pub effective_interval_seconds: f64,
    /// How far the first pass trails `now - settle_delay`, worst source.
    pub first_pass_lag_seconds: f64,
    /// How far the second pass trails `now - late_arrival`, worst source;
    /// `None` when there is no second pass.
    pub second_pass_lag_seconds: Option<f64>,
}

/// What [`app_demand`] is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub calls_per_round: f64,
    pub interval: Duration,
    pub settle: Duration,
    pub late: Duration,
    pub budget_per_minute: f64,
    /// `None` before the budget reported its rate: the configured limit.
    pub effective_rate_per_minute: Option<f64>,
    /// `(w, w2)` of each source of the app; 0 while unknown.
    pub marks: &'a [(i64, i64)],
    pub now_ms: i64,
}

fn behind(target_ms: i64, mark_ms: i64) -> f64 {
    (target_ms.saturating_sub(mark_ms) as f64 / 1000.0).max(0.0)
}

fn worst(marks: impl Iterator<Item = i64>, target_ms: i64) -> f64 {
    marks.filter(|m| *m > 0).map(|m| behind(target_ms, m)).fold(0.0, f64::max)
}

/// A figure for people to read: three decimals, so a rate computed in
/// binary floating point shows as 1980, not 1980.0000000000002.
fn shown(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn app_demand(i: &Inputs) -> AppDemand {
    let needed = per_minute(i.calls_per_round, i.interval);
    let effective = i.effective_rate_per_minute.unwrap_or(i.budget_per_minute);
    let stretch = (needed / effective.max(f64::MIN_POSITIVE)).max(1.0);
    let interval_seconds = i.interval.as_secs_f64();
    AppDemand {
        calls_needed_per_minute: shown(needed),
        budget_per_minute: i.budget_per_minute,
        effective_rate_per_minute: shown(effective),
        interval_seconds,
        effective_interval_seconds: shown(interval_seconds * stretch),
        first_pass_lag_seconds: worst(i.marks.iter().map(|m| m.0), i.now_ms.saturating_sub(ms(i.settle))),
        second_pass_lag_seconds: (!i.late.is_zero())
            .then(|| worst(i.marks.iter().map(|m| m.1), i.now_ms.saturating_sub(ms(i.late)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn inputs(marks: &[(i64, i64)]) -> Inputs<'_> {
        Inputs {
            calls_per_round: 10.0,
            interval: Duration::from_secs(30),
            settle: Duration::from_secs(5),
            late: Duration::from_secs(600),
            budget_per_minute: 30.0,
            effective_rate_per_minute: Some(30.0),
            marks,
            now_ms: NOW,
        }
    }

    #[test]
    fn within_the_budget_the_interval_holds() {
        // Ten calls a round every 30 s: 20 calls a minute of 30.
        let d = app_demand(&inputs(&[]));
        assert_eq!(d.calls_needed_per_minute, 20.0);
        assert_eq!(d.effective_interval_seconds, 30.0);
        assert_eq!((d.first_pass_lag_seconds, d.second_pass_lag_seconds), (0.0, Some(0.0)));
    }

    #[test]
    fn figures_are_shown_without_binary_noise() {
        // 0.01 × 60 / 3 is 0.19999999999999998 in floating point.
        let i = Inputs { calls_per_round: 0.01, interval: Duration::from_secs(3), ..inputs(&[]) };
        assert_eq!(app_demand(&i).calls_needed_per_minute, 0.2);
        let d = app_demand(&Inputs { calls_per_round: 40.0 / 3.0, ..inputs(&[]) });
        assert_eq!((d.calls_needed_per_minute, d.effective_interval_seconds), (26.667, 30.0));
    }

    #[test]
    fn over_the_budget_the_interval_stretches() {
        let i = Inputs { interval: Duration::from_secs(10), ..inputs(&[]) };
        let d = app_demand(&i);
        assert_eq!(d.calls_needed_per_minute, 60.0);
        assert_eq!(d.effective_interval_seconds, 20.0);
        // A 429 that halved the rate stretches it further.
        let d = app_demand(&Inputs { effective_rate_per_minute: Some(15.0), ..i });
        assert_eq!((d.effective_rate_per_minute, d.effective_interval_seconds), (15.0, 40.0));
        // Before the budget reported: the configured limit.
        let d = app_demand(&Inputs { effective_rate_per_minute: None, ..i });
        assert_eq!(d.effective_rate_per_minute, 30.0);
    }

    #[test]
    fn a_round_is_a_first_pass_call_and_the_second_pass_share_of_one() {
        let yaml = |poll: &str| {
            format!(
                "forge:\n  email: a@example.com\n  api_token: t\nsources:\n  - app_id: app-1\n    environment_id: production\n  - app_id: app-1\n    environment_id: staging\npoll:\n{poll}\nexporter:\n  endpoint: http://127.0.0.1:4317\nstate:\n  dir: /tmp/unused\n"
            )
        };
        let round = |poll: &str| {
            let cfg = Config::from_yaml(&yaml(poll), &|_| None).unwrap_or_else(|e| panic!("{e}"));
            calls_per_round(&cfg).get("app-1").copied().unwrap_or_default()
        };
        // 30 s interval, 10 min late: the second pass reads 150 s stretches,
        // a fifth of a call per interval per source.
        assert!((round("  interval: 30s\n  late_arrival: 10m") - 2.4).abs() < 1e-9);
        // A stride never shorter than the interval: one call each per round.
        assert_eq!(round("  interval: 30s\n  late_arrival: 1m"), 4.0);
        assert_eq!(round("  interval: 30s\n  late_arrival: 0s"), 2.0);
    }

    #[test]
    fn lags_are_the_worst_source_behind_each_target() {
        // Source a: first pass 12 s behind now - 5 s, second 30 s behind now - 600 s.
        // Source b: first pass on time, second pass 90 s behind; c: marks not known yet.
        let marks = [(NOW - 17_000, NOW - 630_000), (NOW - 5_000, NOW - 690_000), (0, 0)];
        let d = app_demand(&inputs(&marks));
        assert_eq!(d.first_pass_lag_seconds, 12.0);
        assert_eq!(d.second_pass_lag_seconds, Some(90.0));
        let d = app_demand(&Inputs { late: Duration::ZERO, ..inputs(&marks) });
        assert_eq!(d.second_pass_lag_seconds, None);
    }
}
