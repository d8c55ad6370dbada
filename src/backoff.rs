//! Exponential backoff with jitter, shared by the Forge client's retries
//! and the exporters'. Pure: the random part is passed in.

use std::time::Duration;

/// Delay before retry number `attempt` (0-based): `initial · 2^attempt`,
/// capped at `max`, then scaled into `[½, 1]` of itself by `rand01`, so
/// many clients retrying together spread out.
pub fn delay(initial: Duration, max: Duration, attempt: u32, rand01: f64) -> Duration {
    let exp = initial.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX));
    let capped = exp.min(max);
    capped.mul_f64(0.5 + 0.5 * rand01.clamp(0.0, 1.0))
}

/// A retry sequence.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, attempt: 0 }
    }

    /// The next delay, with fresh jitter.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = delay(self.initial, self.max, self.attempt, fastrand::f64());
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters() {
        let s = Duration::from_secs;
        let cases = [
            (0, 1.0, s(1)),
            (0, 0.0, Duration::from_millis(500)),
            (1, 1.0, s(2)),
            (3, 1.0, s(8)),
            (10, 1.0, s(60)),
            (10, 0.0, s(30)),
            (200, 1.0, s(60)),
        ];
        for (attempt, r, want) in cases {
            assert_eq!(delay(s(1), s(60), attempt, r), want, "attempt {attempt} rand {r}");
        }
        let mut b = Backoff::new(s(1), s(4));
        let got: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        for (d, cap) in got.iter().zip([1, 2, 4, 4, 4]) {
            assert!(*d >= s(cap) / 2 && *d <= s(cap), "{d:?} vs {cap}");
        }
        assert_eq!(b.attempts(), 5);
    }
}
