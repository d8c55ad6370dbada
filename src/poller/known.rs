//! Records the second pass has seen before, recognised by their bytes.
//!
//! In steady state every stretch is read twice (DESIGN.md 6), and the
//! second read finds nearly every record delivered already. Decoding a
//! record (JSON to protobuf, fingerprint) only to learn that it is a
//! duplicate was most of the second read's cost. The first read keys each
//! record's JSON as the API sent it ([`crate::convert::Raw::Keys`]); the
//! second read asks this index about each record before decoding it, and
//! takes the time and fingerprint of a record whose bytes are exactly
//! those seen before ([`crate::convert::Raw::Skip`]).
//!
//! Only a cache: the counted filter still decides what goes out, with the
//! same keys, and a recognised record that must go out (a late twin) is
//! decoded then. A record whose bytes differ in any way (another field
//! order, other whitespace) is simply decoded. A match is the whole byte
//! string's 64-bit hash, beside its length and its first
//! [`crate::convert::RAW_PREFIX`] bytes' hash: the same odds as the
//! fingerprints themselves. The hash is a two-lane one kept in memory only
//! (`fingerprint::hash_wide`, about four times the persisted hash's speed
//! on a kilobyte): each record is hashed once per read. Not persisted:
//! after a restart the second read decodes everything, as before.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::checkpoint::FingerprintHasher;
use crate::convert::{Known, raw_matches, raw_prefix};

/// Records kept at most (about 50 bytes each): past this, records are
/// not added and the second read decodes them.
pub(super) const MAX_KNOWN: usize = 1 << 17;

#[derive(Debug, Default)]
pub(super) struct KnownRecords {
    by_prefix: HashMap<u64, Known, BuildHasherDefault<FingerprintHasher>>,
    /// Record time (ns) below which entries were dropped last.
    pruned_ns: i64,
}

impl KnownRecords {
    /// Keeps `k` for the second read. A record whose first bytes are those
    /// of one kept already is not kept (it will be decoded): one entry
    /// per prefix keeps the lookup a single probe.
    pub(super) fn insert(&mut self, k: Known) {
        if k.time_unix_nano == 0 || (k.time_unix_nano as i64) < self.pruned_ns || self.by_prefix.len() >= MAX_KNOWN {
            return;
        }
        self.by_prefix.entry(k.raw.prefix).or_insert(k);
    }

    /// The record that starts `rest`, if its bytes are exactly those of a
    /// record kept.
    pub(super) fn find(&self, rest: &[u8]) -> Option<Known> {
        let k = self.by_prefix.get(&raw_prefix(rest)?)?;
        raw_matches(rest, &k.raw).then_some(*k)
    }

    /// Drops records timed before `ns` (the second pass is past them).
    pub(super) fn prune_before(&mut self, ns: i64) {
        if ns > self.pruned_ns {
            self.pruned_ns = ns;
            self.by_prefix.retain(|_, k| k.time_unix_nano as i64 >= ns);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_prefix.len()
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
    fn one_entry_per_prefix_and_pruned_by_time() {
        let mut idx = KnownRecords::default();
        let (a, b) =
            (rec(1_000, "first of two with the same head"), rec(1_000, "first of two with the same head, longer"));
        idx.insert(known(&a, 1_000, 1));
        idx.insert(known(&b, 1_000, 2));
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.find(b.as_bytes()), None, "the second is decoded");
        idx.insert(known(&rec(5_000, "later"), 5_000, 3));
        idx.prune_before(2_000);
        assert_eq!((idx.len(), idx.find(a.as_bytes())), (1, None));
        idx.insert(known(&a, 1_000, 1));
        assert_eq!(idx.len(), 1, "nothing older than the pruned time comes back");
        idx.insert(Known { time_unix_nano: 0, ..known(&rec(9_000, "untimed"), 9_000, 4) });
        assert_eq!(idx.len(), 1, "untimed records are keyed by their window, not kept");
    }
}
