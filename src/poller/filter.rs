//! Which records of a page go out: a pure function of the page, the
//! window, what this read of the window has seen so far, and how many
//! copies of each record were delivered before (DESIGN.md 6).
//!
//! Identical records are real (a function can log the same line twice in
//! the same millisecond), so delivery is counted, not set-like: the n-th
//! copy of a fingerprint seen in this read of a window goes out only when
//! fewer than n copies were delivered before. Identical records thus
//! arrive exactly as many times as the API holds them, across pages,
//! passes, restarts and cursor loops.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::checkpoint::FingerprintHasher;

/// A record as the filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// 0 when the record has no usable time.
    pub time_unix_nano: u64,
    pub fingerprint: u64,
}

/// The copies of each record seen so far in one read of one site group of
/// a window, keyed like the delivered counts. Starts empty whenever the
/// read starts again from a first page. Hashed by the fingerprint alone (it
/// is a hash already): SipHash over every key was the filter's main cost
/// when a second read finds nearly every record delivered.
pub(crate) type ReadCounts = HashMap<(i64, u64), u32, BuildHasherDefault<FingerprintHasher>>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filtered {
    /// Indices into the page of the records to deliver, in page order.
    pub deliver: Vec<usize>,
    /// For each delivered record (same order): its key and the delivered
    /// count to record once it is acknowledged.
    pub raise: Vec<(i64, u64, u32)>,
    /// Records inside the window.
    pub received: u64,
    /// Copies already delivered.
    pub duplicates: u64,
    /// Records outside the window (they belong to a neighbouring one).
    pub outside: u64,
}

/// Filters a page read for the window `[start_ns, end_ns)`. `delivered`
/// tells how many copies of a key went out before; `read` is updated with
/// this page's records. Records without a usable time stay in the window
/// that returned them, keyed at its start.
pub fn filter(
    page: impl IntoIterator<Item = Seen>,
    start_ns: i64,
    end_ns: i64,
    delivered: impl Fn(i64, u64) -> u32,
    read: &mut ReadCounts,
) -> Filtered {
    let mut out = Filtered::default();
    for (i, r) in page.into_iter().enumerate() {
        let Some(key) = key(r, start_ns, end_ns) else {
            out.outside += 1;
            continue;
        };
        let ts = key.0;
        out.received += 1;
        let copy = read.entry(key).or_insert(0);
        *copy += 1;
        if *copy <= delivered(ts, r.fingerprint) {
            out.duplicates += 1;
            continue;
        }
        out.deliver.push(i);
        out.raise.push((ts, r.fingerprint, *copy));
    }
    out
}

/// A record's key in the window `[start_ns, end_ns)`, or `None` when it
/// lies outside. Edge records belong to exactly one window, whatever the
/// API does at either end.
fn key(r: Seen, start_ns: i64, end_ns: i64) -> Option<(i64, u64)> {
    let timed = r.time_unix_nano > 0 && r.time_unix_nano <= i64::MAX as u64;
    let ts = if timed { r.time_unix_nano as i64 } else { start_ns };
    (start_ns..end_ns).contains(&ts).then_some((ts, r.fingerprint))
}

/// Takes a page that [`filter`] counted back out of the read: the page was
/// not delivered whole and is fetched again with the same cursor, so its
/// copies must count as unseen, or the second fetch would number them
/// after the first and send again what the first already delivered.
pub fn unread(page: impl IntoIterator<Item = Seen>, start_ns: i64, end_ns: i64, read: &mut ReadCounts) {
    for r in page {
        let Some(k) = key(r, start_ns, end_ns) else { continue };
        if let Some(copy) = read.get_mut(&k) {
            *copy = copy.saturating_sub(1);
            if *copy == 0 {
                read.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: u64, fp: u64) -> Seen {
        Seen { time_unix_nano: t, fingerprint: fp }
    }

    fn none(_: i64, _: u64) -> u32 {
        0
    }

    #[test]
    fn keeps_exactly_the_window() {
        let page = [rec(99, 1), rec(100, 2), rec(150, 3), rec(199, 4), rec(200, 5), rec(0, 6), rec(u64::MAX, 7)];
        let f = filter(page, 100, 200, none, &mut ReadCounts::default());
        assert_eq!(f.deliver, vec![1, 2, 3, 5, 6], "start kept, end left to the next window, untimed kept");
        assert_eq!((f.received, f.outside, f.duplicates), (5, 2, 0));
        assert_eq!(f.raise[3], (100, 6, 1), "untimed records are keyed at the window's start");
        assert_eq!(f.raise[4], (100, 7, 1), "a time past i64 counts as untimed, never wraps");
    }

    #[test]
    fn twins_are_delivered_as_often_as_the_api_holds_them() {
        // Two identical records in one page; then the second read of the
        // stretch finds a third, late copy.
        let mut delivered: HashMap<(i64, u64), u32> = HashMap::new();
        let mut read = ReadCounts::default();
        let f = filter(
            [rec(150, 9), rec(150, 9)],
            100,
            200,
            |t, fp| delivered.get(&(t, fp)).copied().unwrap_or(0),
            &mut read,
        );
        assert_eq!(f.deliver, vec![0, 1]);
        assert_eq!(f.raise, vec![(150, 9, 1), (150, 9, 2)]);
        for (t, fp, n) in f.raise {
            delivered.insert((t, fp), n);
        }
        let mut second = ReadCounts::default();
        let look = |t, fp| delivered.get(&(t, fp)).copied().unwrap_or(0);
        let f = filter([rec(150, 9), rec(150, 9), rec(150, 9)], 100, 200, look, &mut second);
        assert_eq!((f.deliver, f.duplicates), (vec![2], 2), "only the third copy is new");
    }

    #[test]
    fn counts_carry_across_the_pages_of_one_read() {
        let mut read = ReadCounts::default();
        let delivered = |_, _| 1; // one copy went out before (say, before a crash)
        let f1 = filter([rec(150, 9)], 100, 200, delivered, &mut read);
        assert!(f1.deliver.is_empty());
        let f2 = filter([rec(150, 9)], 100, 200, delivered, &mut read);
        assert_eq!(f2.deliver, vec![0], "the twin on the next page is the second copy");
        assert_eq!(f2.raise, vec![(150, 9, 2)]);
    }

    #[test]
    fn a_page_fetched_again_after_a_partial_delivery_sends_only_the_rest() {
        // The first request of a page went out (its counts recorded), the
        // second did not; the same page comes again with the same cursor.
        let mut delivered: HashMap<(i64, u64), u32> = HashMap::new();
        let mut read = ReadCounts::default();
        read.insert((105, 1), 1); // an earlier page of the same read
        let page = [rec(110, 1), rec(120, 2), rec(120, 2), rec(130, 3), rec(99, 4)];
        let look = |d: &HashMap<(i64, u64), u32>, t, fp| d.get(&(t, fp)).copied().unwrap_or(0);
        let f = filter(page, 100, 200, |t, fp| look(&delivered, t, fp), &mut read);
        for &(t, fp, n) in f.raise.get(..2).unwrap() {
            delivered.insert((t, fp), n);
        }
        unread(page, 100, 200, &mut read);
        assert_eq!(read, [((105, 1), 1)].into_iter().collect::<ReadCounts>(), "back to before the page");
        let f = filter(page, 100, 200, |t, fp| look(&delivered, t, fp), &mut read);
        assert_eq!((f.deliver, f.duplicates), (vec![2, 3], 2), "the accepted request's records are not sent again");
        assert_eq!(f.raise, vec![(120, 2, 2), (130, 3, 1)]);
    }

    #[test]
    fn a_read_started_again_recognises_what_went() {
        // Read again from its first page (expired cursor, cursor loop,
        // restart): everything delivered before is a duplicate, new is new.
        let delivered: HashMap<(i64, u64), u32> = [((110, 1), 1), ((120, 2), 1)].into_iter().collect();
        let look = |t, fp| delivered.get(&(t, fp)).copied().unwrap_or(0);
        let f = filter([rec(120, 2), rec(110, 1), rec(130, 3)], 100, 200, look, &mut ReadCounts::default());
        assert_eq!((f.deliver, f.duplicates), (vec![2], 2), "any order");
    }
}
