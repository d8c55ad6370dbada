use super::*;
use crate::checkpoint::delivered::MINUTE_NS;

fn entries(n: usize, seed: u64) -> Vec<(i64, u64, u32)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|i| (rng.i64(0..30) * MINUTE_NS + rng.i64(0..MINUTE_NS), rng.u64(..), 1 + (i % 3) as u32)).collect()
}

fn expected(entries: &[(i64, u64, u32)]) -> Delivered {
    let mut d = Delivered::default();
    for &(ts, fp, n) in entries {
        d.raise(ts, fp, n);
    }
    d
}

fn replay_bytes(bytes: &[u8]) -> Replay {
    replay(bytes).unwrap_or_else(|e| panic!("{e:?}"))
}

fn journal_bytes(e: &[(i64, u64, u32)]) -> Vec<u8> {
    let mut out = header().to_vec();
    for &(ts, fp, n) in e {
        encode_entry(minute_of(ts), fp, n, &mut out);
    }
    out
}

#[test]
fn an_entry_is_small_and_round_trips() {
    const { assert!(ENTRY_LEN <= 32) };
    let mut buf = Vec::new();
    encode_entry(-5, u64::MAX, u32::MAX, &mut buf);
    assert_eq!(buf.len(), ENTRY_LEN);
    let arr: [u8; ENTRY_LEN] = buf.as_slice().try_into().unwrap_or([0; ENTRY_LEN]);
    assert_eq!(decode_entry(&arr), Some((-5, u64::MAX, u32::MAX)));
    for i in 0..ENTRY_LEN {
        let mut bad = arr;
        bad[i] ^= 0x10;
        assert_eq!(decode_entry(&bad), None, "a flipped bit in byte {i} is caught");
    }
}

#[test]
fn bytes_per_page_follow_the_page_not_the_horizon() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("j");
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let first = append(dir.path(), &path, &entries(1000, 1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first, HEADER_LEN + 1000 * ENTRY_LEN as u64, "the header once, then the page");
    // A horizon of 200,000 counts already in the journal...
    for seed in 2..202 {
        append(dir.path(), &path, &entries(1000, seed)).unwrap_or_else(|e| panic!("{e}"));
    }
    let before = size();
    // ...and a page of 1,000 new records still writes 1,000 entries.
    let started = std::time::Instant::now();
    let page = append(dir.path(), &path, &entries(1000, 999)).unwrap_or_else(|e| panic!("{e}"));
    // Shown, not asserted: how long one append with its fsync took here.
    let took = started.elapsed();
    assert_eq!(page, 1000 * ENTRY_LEN as u64);
    assert_eq!(size() - before, page);
    println!(
        "journal: {ENTRY_LEN} bytes per entry; a 1,000-record page appends {page} bytes in {took:?} (fsync included) with {before} bytes already in the journal"
    );
    assert_eq!(append(dir.path(), &path, &[]).unwrap_or(1), 0, "nothing to append, nothing written");
}

#[test]
fn replay_takes_the_maximum_so_repeats_are_harmless() {
    let e = entries(500, 7);
    let once = replay_bytes(&journal_bytes(&e));
    assert_eq!(once.delivered, expected(&e));
    assert_eq!((once.entries, once.damage), (500, None));
    let twice: Vec<_> = e.iter().chain(e.iter()).copied().collect();
    assert_eq!(replay_bytes(&journal_bytes(&twice)).delivered, once.delivered);
    let lower: Vec<_> =
        e.iter().chain(e.iter().map(|&(t, f, _)| (t, f, 1)).collect::<Vec<_>>().iter()).copied().collect();
    assert_eq!(replay_bytes(&journal_bytes(&lower)).delivered, once.delivered, "a later lower count lowers nothing");
    let empty = replay_bytes(b"");
    assert!(empty.delivered.is_empty() && empty.damage.is_none() && empty.valid_len == 0);
}

#[test]
fn a_torn_tail_keeps_everything_before_it() {
    let e = entries(50, 3);
    let whole = journal_bytes(&e);
    let before_last = expected(&e[..49]);
    for cut in 1..ENTRY_LEN {
        let r = replay_bytes(&whole[..whole.len() - cut]);
        assert_eq!(r.delivered, before_last, "cut {cut}");
        assert_eq!(r.valid_len, HEADER_LEN + 49 * ENTRY_LEN as u64);
        assert_eq!(r.damage, Some(Damage::TornTail { bytes: (ENTRY_LEN - cut) as u64 }));
    }
    // Size grown but blocks never written: zeros, possibly several entries' worth.
    let mut zeros = whole.clone();
    zeros.extend_from_slice(&[0u8; 3 * ENTRY_LEN + 5]);
    let r = replay_bytes(&zeros);
    assert_eq!((r.delivered, r.entries), (expected(&e), 50));
    assert_eq!(r.damage, Some(Damage::TornTail { bytes: 3 * ENTRY_LEN as u64 + 5 }));
    // Half an entry written, the rest of the page zero.
    let mut half = whole[..whole.len() - 10].to_vec();
    half.extend_from_slice(&[0u8; 10 + 2 * ENTRY_LEN]);
    assert!(matches!(replay_bytes(&half).damage, Some(Damage::TornTail { .. })));
    // A header cut short: created, then the crash.
    for n in 1..8 {
        let r = replay_bytes(&whole[..n]);
        assert_eq!((r.valid_len, r.damage), (0, Some(Damage::TornTail { bytes: n as u64 })));
    }
}

#[test]
fn damage_in_the_middle_stops_the_replay_there() {
    let e = entries(50, 4);
    let mut bytes = journal_bytes(&e);
    let at = HEADER_LEN as usize + 20 * ENTRY_LEN + 13;
    bytes[at] ^= 0xff;
    let r = replay_bytes(&bytes);
    assert_eq!(r.delivered, expected(&e[..20]));
    assert_eq!(r.entries, 20);
    let offset = HEADER_LEN + 20 * ENTRY_LEN as u64;
    assert_eq!(r.damage, Some(Damage::Corrupt { offset, bytes: 30 * ENTRY_LEN as u64 }));
    // A length other than this format's.
    let mut bytes = journal_bytes(&e);
    bytes[HEADER_LEN as usize..HEADER_LEN as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let r = replay_bytes(&bytes);
    assert_eq!((r.entries, r.valid_len), (0, HEADER_LEN));
    assert!(matches!(r.damage, Some(Damage::Corrupt { offset: HEADER_LEN, .. })));
}

#[test]
fn headers_other_than_ours() {
    let mut newer = journal_bytes(&entries(3, 5));
    newer[7] = FORMAT + 1;
    assert!(matches!(replay(newer.as_slice()), Err(ReplayError::Newer(f)) if f == FORMAT + 1));
    let r = replay_bytes(b"{\"version\":2} and more");
    assert_eq!((r.valid_len, r.damage), (0, Some(Damage::NotAJournal)));
}

#[test]
fn random_damage_never_panics_and_never_invents_counts() {
    let e = entries(40, 6);
    let whole = journal_bytes(&e);
    let full = expected(&e);
    let mut rng = fastrand::Rng::with_seed(42);
    for _ in 0..2000 {
        let mut b = whole.clone();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(..b.len());
            b[i] = rng.u8(..);
        }
        b.truncate(rng.usize(..=b.len()));
        let Ok(r) = replay(b.as_slice()) else { continue };
        for (ts, fp, n) in r.delivered.entries() {
            assert!(n <= full.count(ts, fp), "replay stated a count never written");
        }
    }
}

#[test]
fn an_append_after_a_failed_one_stays_aligned() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("j");
    let (a, b) = (entries(10, 8), entries(10, 9));
    append(dir.path(), &path, &a).unwrap_or_else(|e| panic!("{e}"));
    // Half an entry, as a write cut off by a full disk leaves it.
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap_or_else(|e| panic!("{e}"));
    f.write_all(&[0x14, 0, 0, 0, 9, 9]).unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    append(dir.path(), &path, &b).unwrap_or_else(|e| panic!("{e}"));
    let r = replay_bytes(&std::fs::read(&path).unwrap_or_default());
    let all: Vec<_> = a.iter().chain(b.iter()).copied().collect();
    assert_eq!((r.delivered, r.damage), (expected(&all), None));
}

#[test]
fn a_rewrite_holds_exactly_the_live_counts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("j");
    append(dir.path(), &path, &entries(300, 10)).unwrap_or_else(|e| panic!("{e}"));
    let mut live = expected(&entries(300, 10));
    live.prune_before(15 * 60_000);
    rewrite(dir.path(), &path, &live).unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&path).unwrap_or_default();
    assert_eq!(bytes.len() as u64, HEADER_LEN + (live.len() * ENTRY_LEN) as u64);
    let r = replay_bytes(&bytes);
    assert_eq!((r.delivered, r.damage), (live, None));
}

#[test]
fn compaction_waits_until_dead_bytes_outweigh_live_ones() {
    let mib = 1u64 << 20;
    let entries_per_mib = (mib / ENTRY_LEN as u64) as usize;
    let bytes = |live: usize| HEADER_LEN + (live * ENTRY_LEN) as u64;
    let table: &[(u64, usize, bool)] = &[
        (0, 0, false),
        (bytes(10), 10, false),
        (bytes(10) + mib - 1, 10, false),
        (bytes(10) + mib, 10, true),
        (bytes(0) + mib, 0, true),
        (2 * bytes(4 * entries_per_mib) - 1, 4 * entries_per_mib, false),
        (2 * bytes(4 * entries_per_mib), 4 * entries_per_mib, true),
        (bytes(100), 1000, false),
        (u64::MAX, usize::MAX, false),
    ];
    for &(file_len, live, want) in table {
        assert_eq!(should_compact(file_len, live), want, "{file_len} bytes, {live} live");
    }
}
