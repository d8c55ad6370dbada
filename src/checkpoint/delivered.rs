//! How many copies of each record were delivered, per minute of record
//! time, for the stretches the second pass has yet to read (DESIGN.md 6).
//!
//! Counts, not a set: a function that logs the same line twice in one
//! millisecond produces two identical records, and both are real. A read
//! delivers the copies of a fingerprint beyond the count already
//! delivered, so identical records arrive exactly as often as the API
//! holds them, whichever page or pass brings them.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Nanoseconds per bucket.
pub(super) const MINUTE_NS: i64 = 60_000_000_000;
const MINUTE_MS: i64 = 60_000;

/// Fingerprints are already well-mixed 64-bit hashes
/// ([`crate::fingerprint`]): hashing them again would only cost time on
/// every record of every page.
#[derive(Debug, Default, Clone, Copy)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; this keeps other keys correct.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Bucket = HashMap<u64, u32, BuildHasherDefault<FingerprintHasher>>;

/// Per minute bucket of record time: for each fingerprint, how many copies
/// were delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    by_minute: BTreeMap<i64, Bucket>,
    /// Entries (fingerprint, minute) over all buckets.
    len: usize,
}

/// The bucket of a record time.
pub(super) fn minute_of(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(MINUTE_NS)
}

impl Delivered {
    /// Copies of `fp` delivered in the minute of `ts_ns`.
    pub fn count(&self, ts_ns: i64, fp: u64) -> u32 {
        self.by_minute.get(&minute_of(ts_ns)).and_then(|b| b.get(&fp)).copied().unwrap_or(0)
    }

    /// Raises the count to at least `n`; returns true when it changed.
    ///
    /// A maximum, never a sum, so applying the same fact twice (a journal
    /// replayed again, a page delivered again after a crash) is harmless.
    pub(crate) fn raise(&mut self, ts_ns: i64, fp: u64, n: u32) -> bool {
        self.raise_minute(minute_of(ts_ns), fp, n)
    }

    pub(super) fn raise_minute(&mut self, minute: i64, fp: u64, n: u32) -> bool {
        if n == 0 {
            return false;
        }
        match self.by_minute.entry(minute).or_default().entry(fp) {
            Entry::Occupied(mut e) => {
                if *e.get() >= n {
                    return false;
                }
                e.insert(n);
            }
            Entry::Vacant(e) => {
                e.insert(n);
                self.len += 1;
            }
        }
        true
    }

    /// Raises every count of `other` into this one.
    pub(crate) fn merge(&mut self, other: &Delivered) {
        for (minute, fp, n) in other.minute_entries() {
            self.raise_minute(minute, fp, n);
        }
    }

    /// Drops the buckets wholly before `ms`; the bucket holding `ms` stays.
    pub(crate) fn prune_before(&mut self, ms: i64) {
        let keep_from = minute_of(ms.saturating_mul(1_000_000));
        self.by_minute = self.by_minute.split_off(&keep_from);
        self.len = self.by_minute.values().map(HashMap::len).sum();
    }

    /// Drops the oldest buckets until at most `max` entries remain; returns
    /// the end (ms, exclusive) of the last dropped bucket, or `None` when
    /// nothing went. Whole buckets go, so what remains is exact from that
    /// end on, and the caller can move the second pass past it.
    pub fn cap(&mut self, max: usize) -> Option<i64> {
        let mut end = None;
        while self.len > max {
            let Some((minute, bucket)) = self.by_minute.pop_first() else { break };
            self.len -= bucket.len();
            end = Some(minute.saturating_add(1).saturating_mul(MINUTE_MS));
        }
        end
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry as (start of its minute in ns, fingerprint, count), oldest minute first.
    pub fn entries(&self) -> impl Iterator<Item = (i64, u64, u32)> + '_ {
        self.minute_entries().map(|(m, fp, n)| (m.saturating_mul(MINUTE_NS), fp, n))
    }

    pub(super) fn minute_entries(&self) -> impl Iterator<Item = (i64, u64, u32)> + '_ {
        self.by_minute.iter().flat_map(|(&m, b)| b.iter().map(move |(&fp, &n)| (m, fp, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = MINUTE_NS;

    #[test]
    fn counts_rise_and_never_fall() {
        let mut d = Delivered::default();
        assert_eq!(d.count(5, 9), 0);
        assert!(!d.raise(5, 9, 0), "a count of zero is no entry");
        assert!(d.is_empty());
        assert!(d.raise(5, 9, 1));
        assert!(d.raise(M - 1, 9, 2), "same minute, same entry");
        assert!(!d.raise(7, 9, 2), "already at 2");
        assert!(!d.raise(7, 9, 1), "never lowered");
        assert_eq!(d.count(0, 9), 2);
        assert_eq!(d.count(M, 9), 0, "the next minute is another bucket");
        assert!(d.raise(M, 9, 1));
        assert!(d.raise(-1, 9, 3), "before the epoch: the bucket below zero");
        assert_eq!(d.count(-M, 9), 3);
        assert_eq!(d.len(), 3);
        let mut twice = d.clone();
        twice.merge(&d);
        assert_eq!(twice, d, "merging the same facts changes nothing");
        assert_eq!(d.entries().count(), 3);
        assert_eq!(d.entries().next(), Some((-M, 9, 3)));
    }

    fn ten_minutes() -> Delivered {
        let mut d = Delivered::default();
        for m in 0..10i64 {
            for k in 0..5u64 {
                d.raise(m * M + 1, (m as u64) * 100 + k, 1);
            }
        }
        d
    }

    #[test]
    fn prune_keeps_the_bucket_holding_the_cut() {
        let mut d = ten_minutes();
        assert_eq!(d.len(), 50);
        d.prune_before(3 * 60_000 + 30_000);
        assert_eq!(d.len(), 35);
        assert_eq!(d.count(3 * M, 301), 1);
        assert_eq!(d.count(2 * M, 201), 0);
        d.prune_before(i64::MIN);
        assert_eq!(d.len(), 35, "a cut before everything drops nothing");
        d.prune_before(i64::MAX);
        assert!(d.is_empty());
    }

    #[test]
    fn cap_drops_whole_oldest_buckets_and_says_where_exactness_starts() {
        let mut d = ten_minutes();
        assert_eq!(d.cap(50), None, "at the cap nothing goes");
        assert_eq!(d.len(), 50);
        assert_eq!(d.cap(48), Some(60_000), "one bucket of five goes; minute 1 starts at 60 s");
        assert_eq!(d.len(), 45);
        assert_eq!(d.cap(20), Some(6 * 60_000), "minutes 1..=5 go");
        assert_eq!(d.len(), 20);
        assert_eq!(d.count(6 * M, 601), 1);
        assert_eq!(d.count(5 * M, 501), 0);
        assert_eq!(d.cap(0), Some(10 * 60_000));
        assert!(d.is_empty());
        assert_eq!(d.cap(0), None);
    }
}
