//! Records the second pass has seen before, recognised by their bytes.
//!
//! In steady state every stretch is read twice (DESIGN.md 6), and the
//! second read finds nearly every record delivered already. Decoding a
//! record (JSON to protobuf, fingerprint) only to learn that it is a
//! duplicate was most of the second read's cost. The first read keys each
//! record's JSON as the API sent it ([`crate::convert::Raw::Keys`]); the
//! second read asks this list about each record before decoding it, and
//! takes the time and fingerprint of a record whose bytes are exactly
//! those seen before ([`crate::convert::Raw::Skip`]).
//!
//! Only a cache: the counted filter still decides what goes out, with the
//! same keys, and a recognised record that must go out (a late twin) is
//! decoded then. A record whose bytes differ in any way (another field
//! order, other whitespace), or that is not found, is simply decoded. A
//! match is the whole byte string's 64-bit hash, beside its length and its
//! first [`crate::convert::RAW_PREFIX`] bytes' hash: the same odds as the
//! fingerprints themselves. The hash is a two-lane one kept in memory only
//! (`fingerprint::hash_wide`, about four times the persisted hash's speed
//! on a kilobyte): each record is hashed once per read. Not persisted:
//! after a restart the second read decodes everything, as before.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::checkpoint::FingerprintHasher;
use crate::convert::{Known, raw_matches, raw_prefix};

/// Records kept at most (about 40 bytes each): past this, records are
/// not added and the second read decodes them.
pub(super) const MAX_KNOWN: usize = 1 << 17;

/// How many records past the expected one a lookup steps over before it
/// gives up (records the first read saw and the second does not).
const STEP_AHEAD: u64 = 4;

type Index = HashMap<u64, u64, BuildHasherDefault<FingerprintHasher>>;

/// The records in the order the first read met them. A second read meets
/// them in about that order, so a lookup tries the record after the last
/// one found (and the few after it): a step through memory read in
/// sequence. An index from prefix to record serves records met out of
/// that order; it is built only once a read finds most of its records
/// that way ([`Self::index_if_needed`]): an index of a few megabytes
/// costs a cache miss per record kept and per record dropped, which an
/// API that keeps its order never repays.
#[derive(Debug, Default)]
pub(super) struct KnownRecords {
    order: VecDeque<Known>,
    /// Sequence number of `order[0]`.
    base: u64,
    /// Where each prefix's first kept record lies, once built.
    by_prefix: Option<Index>,
    /// Sequence number tried first: the one after the last found.
    next: AtomicU64,
    /// Lookups, and lookups that stepping did not answer, since the last
    /// [`Self::index_if_needed`].
    looked: AtomicU32,
    missed: AtomicU32,
    /// Record time (ns) below which entries were dropped last.
    pruned_ns: i64,
    /// Time (ns) of the first record kept: a stretch before it was first
    /// read by an earlier process (or not at all), and no index finds it.
    first_kept_ns: Option<i64>,
}

impl KnownRecords {
    /// Keeps `k` for the second read.
    pub(super) fn insert(&mut self, k: Known) {
        if k.time_unix_nano == 0 || (k.time_unix_nano as i64) < self.pruned_ns || self.order.len() >= MAX_KNOWN {
            return;
        }
        self.first_kept_ns.get_or_insert(k.time_unix_nano as i64);
        let seq = self.base + self.order.len() as u64;
        if let Some(index) = &mut self.by_prefix {
            index.entry(k.raw.prefix).or_insert(seq);
        }
        self.order.push_back(k);
    }

    /// The record that starts `rest`, if its bytes are exactly those of a
    /// record kept.
    pub(super) fn find(&self, rest: &[u8]) -> Option<Known> {
        let prefix = raw_prefix(rest)?;
        self.looked.fetch_add(1, Ordering::Relaxed);
        let guess = self.next.load(Ordering::Relaxed);
        let stepped = (guess..guess.saturating_add(STEP_AHEAD)).find_map(|seq| {
            self.get(seq).filter(|k| k.raw.prefix == prefix && raw_matches(rest, &k.raw)).map(|k| (seq, k))
        });
        let found = stepped.or_else(|| {
            self.missed.fetch_add(1, Ordering::Relaxed);
            let seq = *self.by_prefix.as_ref()?.get(&prefix)?;
            self.get(seq).filter(|k| raw_matches(rest, &k.raw)).map(|k| (seq, k))
        });
        let (seq, k) = found?;
        self.next.store(seq + 1, Ordering::Relaxed);
        Some(*k)
    }

    fn get(&self, seq: u64) -> Option<&Known> {
        self.order.get(usize::try_from(seq.checked_sub(self.base)?).ok()?)
    }

    /// Called after each page of a second read of a window starting at
    /// `window_start_ns`: builds the index when stepping missed more than
    /// half of the page's lookups (the API returned the stretch in another
    /// order than the first read met it). Records that appeared late miss
    /// too, but they are not kept, so an index would not find them either;
    /// the threshold lets an ordinary share of them pass. So do the pages
    /// of a stretch the first read met before this process started (after
    /// a restart): nothing of it is kept. Once built, the index stays.
    pub(super) fn index_if_needed(&mut self, window_start_ns: i64) {
        let looked = std::mem::take(self.looked.get_mut());
        let missed = std::mem::take(self.missed.get_mut());
        let kept_before = self.first_kept_ns.is_some_and(|first| first <= window_start_ns);
        if self.by_prefix.is_some() || missed < 8 || missed <= looked / 2 || !kept_before {
            return;
        }
        let mut index = Index::with_capacity_and_hasher(self.order.len(), Default::default());
        for (i, k) in self.order.iter().enumerate() {
            index.entry(k.raw.prefix).or_insert(self.base + i as u64);
        }
        self.by_prefix = Some(index);
    }

    /// Drops records timed before `ns` (the second pass is past them),
    /// from the oldest met: one met out of order behind a newer one goes
    /// when that one has (memory only; the cap holds).
    pub(super) fn prune_before(&mut self, ns: i64) {
        if ns <= self.pruned_ns {
            return;
        }
        self.pruned_ns = ns;
        while let Some(k) = self.order.front().filter(|k| (k.time_unix_nano as i64) < ns) {
            if let Some(index) = &mut self.by_prefix
                && let std::collections::hash_map::Entry::Occupied(e) = index.entry(k.raw.prefix)
                && *e.get() == self.base
            {
                e.remove();
            }
            self.order.pop_front();
            self.base += 1;
        }
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::raw_key;

    fn rec(time: u64, msg: &str) -> String {
        format!(r#"{{"timeUnixNano":"{time}","severityText":"INFO","body":{{"stringValue":"{msg}"}}}}"#)
    }

    fn known(raw: &str, time: u64, fp: u64) -> Known {
        let raw = raw_key(raw.as_bytes()).unwrap_or_else(|| panic!("long enough"));
        Known { raw, time_unix_nano: time, fingerprint: fp }
    }

    #[test]
    fn recognises_exactly_the_bytes_seen() {
        let mut idx = KnownRecords::default();
        let a = rec(1_000, "order 17 shipped");
        idx.insert(known(&a, 1_000, 7));
        let page = format!("{a},{}", rec(2_000, "x"));
        assert_eq!(idx.find(page.as_bytes()).map(|k| (k.fingerprint, k.raw.len as usize)), Some((7, a.len())));
        // Same first bytes, another end: not recognised (decoded instead).
        let b = rec(1_000, "order 17 shipped!");
        assert_eq!(idx.find(b.as_bytes()), None);
        let c = a.replace("shipped", "shipper");
        assert_eq!(idx.find(c.as_bytes()), None, "one byte differs");
        assert_eq!(idx.find(&a.as_bytes()[..a.len() - 1]), None, "cut short");
        assert_eq!(idx.find(b"{\"short\":1}"), None);
    }

    #[test]
    fn records_sharing_their_first_bytes_are_all_kept_and_pruned_by_time() {
        let mut idx = KnownRecords::default();
        let (a, b) =
            (rec(1_000, "first of two with the same head"), rec(1_000, "first of two with the same head, longer"));
        idx.insert(known(&a, 1_000, 1));
        idx.insert(known(&b, 1_000, 2));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.find(a.as_bytes()).map(|k| k.fingerprint), Some(1));
        assert_eq!(idx.find(b.as_bytes()).map(|k| k.fingerprint), Some(2), "the same head, another record");
        idx.insert(known(&rec(5_000, "later"), 5_000, 3));
        idx.prune_before(2_000);
        assert_eq!((idx.len(), idx.find(a.as_bytes())), (1, None));
        assert_eq!(idx.find(rec(5_000, "later").as_bytes()).map(|k| k.fingerprint), Some(3), "the newer one stays");
        idx.insert(known(&a, 1_000, 1));
        assert_eq!(idx.len(), 1, "nothing older than the pruned time comes back");
        idx.insert(Known { time_unix_nano: 0, ..known(&rec(9_000, "untimed"), 9_000, 4) });
        assert_eq!(idx.len(), 1, "untimed records are keyed by their window, not kept");
    }

    #[test]
    fn found_by_stepping_in_order_and_by_an_index_in_any_other() {
        let mut idx = KnownRecords::default();
        let recs: Vec<String> = (0..6u64).map(|i| rec(1_000 + i, &format!("record number {i} of six"))).collect();
        // Met by the first read: 0 1 2 4 3 5.
        for i in [0usize, 1, 2, 4, 3, 5] {
            idx.insert(known(&recs[i], 1_000 + i as u64, i as u64));
        }
        // The second read in the first read's order, with a record that
        // appeared late (never kept) in between and record 2 gone.
        let late = rec(1_003, "a record the first read never saw");
        let read = [&recs[0], &recs[1], &late, &recs[4], &recs[3], &recs[5]];
        let found: Vec<Option<u64>> = read.iter().map(|r| idx.find(r.as_bytes()).map(|k| k.fingerprint)).collect();
        assert_eq!(found, [Some(0), Some(1), None, Some(4), Some(3), Some(5)]);
        idx.index_if_needed(1_000);
        assert!(idx.by_prefix.is_none(), "one miss in six: no index");
        // A read in another order: stepping finds none of them (they are
        // decoded), and the index is built for the next page; not for a
        // window that starts before the first record kept (a stretch read
        // before a restart, where nothing is found however it is looked up).
        let shuffled = [5usize, 0, 1, 3, 4, 2, 2, 0];
        assert!(shuffled.iter().all(|&i| idx.find(recs[i].as_bytes()).is_none()));
        idx.index_if_needed(999);
        assert!(idx.by_prefix.is_none(), "a stretch older than anything kept");
        assert!(shuffled.iter().all(|&i| idx.find(recs[i].as_bytes()).is_none()));
        idx.index_if_needed(1_000);
        assert!(idx.by_prefix.is_some());
        for i in shuffled {
            assert_eq!(idx.find(recs[i].as_bytes()).map(|k| k.fingerprint), Some(i as u64), "record {i}");
        }
        // A record whose prefix is the guessed one's but whose bytes differ is not taken for it.
        idx.find(recs[0].as_bytes());
        let other = recs[1].replace("six", "sax");
        assert_eq!(idx.find(other.as_bytes()), None);
        // Kept in the index as records come.
        let seventh = rec(1_006, "record number 6, after the index");
        idx.insert(known(&seventh, 1_006, 6));
        idx.find(recs[0].as_bytes());
        assert_eq!(idx.find(seventh.as_bytes()).map(|k| k.fingerprint), Some(6));
        // Pruned from the front: 3 (met after 4) goes once 4 has.
        idx.prune_before(1_004);
        assert_eq!(idx.len(), 4, "4, 3, 5 and 6 left (4 is newer than the cut and holds 3 behind it)");
        assert_eq!(idx.find(recs[3].as_bytes()).map(|k| k.fingerprint), Some(3), "still found meanwhile");
        assert_eq!(idx.find(recs[0].as_bytes()), None);
        idx.prune_before(1_005);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.by_prefix.as_ref().map(HashMap::len), Some(2), "the index drops what the list drops");
        assert_eq!(idx.find(recs[5].as_bytes()).map(|k| k.fingerprint), Some(5));
        assert_eq!((idx.find(recs[3].as_bytes()), idx.find(recs[4].as_bytes())), (None, None));
    }
}
