use super::*;
use crate::checkpoint::delivered::MINUTE_NS;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::new(&dir.path().join("state"));
    (dir, store)
}

fn sample() -> Checkpoint {
    let mut cp = Checkpoint::fresh("prod / eu", "q1", 10 * 60_000);
    cp.watermark_ms = 20 * 60_000;
    cp.current = Some(Progress {
        window: Window { pass: Pass::First, start_ms: 20 * 60_000, end_ms: 21 * 60_000, complete: false },
        group: 1,
        cursor: Some("abc".into()),
        pages: 3,
    });
    cp.gap_seconds_total = 3_600;
    cp
}

fn resumed(l: Result<Loaded, LoadError>) -> (Checkpoint, Delivered, bool, Option<u32>) {
    match l {
        Ok(Loaded::Resumed { cp, delivered, query_changed, migrated_from }) => {
            (cp, delivered, query_changed, migrated_from)
        }
        other => panic!("{other:?}"),
    }
}

/// Names in the state directory other than the two files of "prod / eu".
fn others(store: &Store) -> Vec<String> {
    let mine = [store.path("prod / eu"), store.journal_path("prod / eu")];
    std::fs::read_dir(&store.dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !mine.contains(&e.path()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn store_is_shared_with_blocking_threads() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Store>();
}

#[test]
fn counts_survive_save_append_and_load() {
    let (_d, store) = store();
    assert!(matches!(store.load("prod / eu", "q1"), Ok(Loaded::Missing)));
    let cp = sample();
    let at = |min: i64| min * MINUTE_NS + 5;
    store.append("prod / eu", &[(at(12), 1, 1), (at(12), 2, 1), (at(25), 3, 2)]).unwrap_or_else(|e| panic!("{e}"));
    store.save(&cp).unwrap_or_else(|e| panic!("{e}"));
    store.append("prod / eu", &[(at(12), 1, 2), (at(9), 4, 1)]).unwrap_or_else(|e| panic!("{e}"));
    let (back, delivered, changed, migrated) = resumed(store.load("prod / eu", "q1"));
    assert_eq!((back, changed, migrated), (cp, false, None));
    assert_eq!(delivered.count(at(12), 1), 2);
    assert_eq!(delivered.count(at(12), 2), 1);
    assert_eq!(delivered.count(at(25), 3), 2);
    assert_eq!(delivered.count(at(9), 4), 0, "before W2: no longer kept");
    assert_eq!(delivered.len(), 3);
    assert!(store.path("prod / eu").file_name().is_some_and(|n| n.to_string_lossy().starts_with("prod___eu-")));
    assert!(others(&store).is_empty(), "{:?}", others(&store));
}

#[test]
fn changed_filters_keep_the_marks() {
    let (_d, store) = store();
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
    store.append("prod / eu", &[(15 * MINUTE_NS, 1, 1)]).unwrap_or_else(|e| panic!("{e}"));
    let (cp, delivered, changed, _) = resumed(store.load("prod / eu", "q2"));
    assert!(changed);
    assert_eq!(cp, sample(), "returned as stored");
    assert_eq!(delivered.len(), 1);
}

#[test]
fn a_file_that_cannot_be_read_now_is_an_error_and_stays() {
    let (_d, store) = store();
    // A directory where the file should be: reading fails (EISDIR) as EIO would.
    std::fs::create_dir_all(store.path("prod / eu")).unwrap_or_else(|e| panic!("{e}"));
    let err = store.load("prod / eu", "q1");
    assert!(matches!(&err, Err(LoadError::Unreadable { path, .. }) if *path == store.path("prod / eu")), "{err:?}");
    assert!(store.path("prod / eu").is_dir(), "nothing moved");
    assert!(others(&store).is_empty());
    std::fs::remove_dir(store.path("prod / eu")).unwrap_or_else(|e| panic!("{e}"));
    // The journal unreadable: the same, and the small file is left alone.
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(store.journal_path("prod / eu")).unwrap_or_else(|e| panic!("{e}"));
    let err = store.load("prod / eu", "q1");
    assert!(matches!(&err, Err(LoadError::Unreadable { path, .. }) if *path == store.journal_path("prod / eu")));
    assert!(err.is_err_and(|e| e.to_string().contains("retrying")));
    std::fs::remove_dir(store.journal_path("prod / eu")).unwrap_or_else(|e| panic!("{e}"));
    let (cp, ..) = resumed(store.load("prod / eu", "q1"));
    assert_eq!(cp, sample(), "resumes where it was once readable");
}

#[test]
fn files_from_a_newer_version_are_refused_and_untouched() {
    let (_d, store) = store();
    let mut v = serde_json::to_value(sample()).unwrap_or_default();
    v["version"] = (VERSION + 1).into();
    let mut unknown = serde_json::to_value(sample()).unwrap_or_default();
    unknown["shards"] = 4.into();
    for text in [v, unknown].map(|v| serde_json::to_vec(&v).unwrap_or_default()) {
        files::create_dir(&store.dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(store.path("prod / eu"), &text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(store.journal_path("prod / eu"), b"kept").unwrap_or_else(|e| panic!("{e}"));
        let err = store.load("prod / eu", "q1");
        assert!(matches!(&err, Err(LoadError::Newer { .. })), "{err:?}");
        assert!(err.is_err_and(|e| e.to_string().contains("newer forge-otel-sidecar")));
        assert_eq!(std::fs::read(store.path("prod / eu")).unwrap_or_default(), text);
        assert_eq!(std::fs::read(store.journal_path("prod / eu")).unwrap_or_default(), b"kept");
        assert!(others(&store).is_empty());
    }
    // A journal of a newer format, beside a small file this version reads.
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(store.journal_path("prod / eu"), b"FOSJRNL\x09").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(store.load("prod / eu", "q1"), Err(LoadError::Newer { detail, .. }) if detail.contains("journal"))
    );
    assert_eq!(std::fs::read(store.journal_path("prod / eu")).unwrap_or_default(), b"FOSJRNL\x09");
}

#[test]
fn a_version_1_file_is_migrated() {
    let (_d, store) = store();
    files::create_dir(&store.dir).unwrap_or_else(|e| panic!("{e}"));
    let v1 = include_bytes!("../../tests/data/checkpoint-v1.json");
    std::fs::write(store.path("prod / eu"), v1).unwrap_or_else(|e| panic!("{e}"));
    let (cp, delivered, changed, migrated) = resumed(store.load("prod / eu", "q-v1"));
    assert_eq!((changed, migrated, cp.version, cp.gap_seconds_total), (false, Some(1), VERSION, 3600));
    assert_eq!(delivered.len(), 4);
    assert!(delivered.entries().all(|(_, _, n)| n == 1));
    // Loading again before any save migrates again, to the same result.
    let (_, again, _, migrated) = resumed(store.load("prod / eu", "q-v1"));
    assert_eq!((again, migrated), (delivered.clone(), Some(1)));
    store.save(&cp).unwrap_or_else(|e| panic!("{e}"));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path("prod / eu")).unwrap_or_default()).unwrap_or_default();
    assert_eq!(written["version"], VERSION);
    assert!(written.get("fingerprints").is_none());
    let (back, counts, _, migrated) = resumed(store.load("prod / eu", "q-v1"));
    assert_eq!((back, counts, migrated), (cp, delivered, None));
}

#[test]
fn corrupt_files_are_moved_aside_with_their_journal() {
    let (_d, store) = store();
    for garbage in [&b"{\"version\":2,\"sour"[..], b"\x00\x01garbage", b"", b"{\"version\":0}", b"[]"] {
        store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
        store.append("prod / eu", &[(15 * MINUTE_NS, 1, 1)]).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(store.path("prod / eu"), garbage).unwrap_or_else(|e| panic!("{e}"));
        match store.load("prod / eu", "q1") {
            Ok(Loaded::MovedAside { to, reason }) => {
                assert_eq!(std::fs::read(&to).unwrap_or_default(), garbage, "{reason}");
                assert!(!store.path("prod / eu").exists());
                assert!(!store.journal_path("prod / eu").exists());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(store.load("prod / eu", "q1"), Ok(Loaded::Missing)));
    }
    assert_eq!(others(&store).iter().filter(|n| n.contains(".corrupt-")).count(), 5);
}

#[test]
fn a_journal_without_its_checkpoint_does_not_hold_back_a_fresh_start() {
    let (_d, store) = store();
    store.append("prod / eu", &[(15 * MINUTE_NS, 1, 1)]).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(store.load("prod / eu", "q1"), Ok(Loaded::Missing)));
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
    let (_, delivered, ..) = resumed(store.load("prod / eu", "q1"));
    assert!(delivered.is_empty());
    assert_eq!(others(&store).iter().filter(|n| n.contains(".orphan-")).count(), 1);
}

#[test]
fn a_torn_journal_loads_everything_before_the_tear_and_appends_after_it() {
    let (_d, store) = store();
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
    let first: Vec<_> = (0..100u64).map(|i| (15 * MINUTE_NS, i, 1)).collect();
    store.append("prod / eu", &first).unwrap_or_else(|e| panic!("{e}"));
    let jp = store.journal_path("prod / eu");
    let whole = std::fs::metadata(&jp).map(|m| m.len()).unwrap_or(0);
    store.append("prod / eu", &[(15 * MINUTE_NS, 500, 1)]).unwrap_or_else(|e| panic!("{e}"));
    // The crash came 11 bytes into the last entry.
    let f = std::fs::OpenOptions::new().write(true).open(&jp).unwrap_or_else(|e| panic!("{e}"));
    f.set_len(whole + 11).unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    let (_, delivered, ..) = resumed(store.load("prod / eu", "q1"));
    assert_eq!(delivered.len(), 100);
    assert_eq!(delivered.count(15 * MINUTE_NS, 500), 0);
    assert_eq!(std::fs::metadata(&jp).map(|m| m.len()).unwrap_or(0), whole, "cut off on load");
    store.append("prod / eu", &[(16 * MINUTE_NS, 600, 1)]).unwrap_or_else(|e| panic!("{e}"));
    let (_, delivered, ..) = resumed(store.load("prod / eu", "q1"));
    assert_eq!(delivered.len(), 101);
    assert!(others(&store).is_empty());
}

#[test]
fn a_journal_damaged_in_the_middle_is_kept_aside_and_rewritten() {
    let (_d, store) = store();
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
    let e: Vec<_> = (0..100u64).map(|i| (15 * MINUTE_NS, i, 1)).collect();
    store.append("prod / eu", &e).unwrap_or_else(|e| panic!("{e}"));
    let jp = store.journal_path("prod / eu");
    let mut bytes = std::fs::read(&jp).unwrap_or_default();
    bytes[8 + 40 * ENTRY_LEN + 9] ^= 1;
    std::fs::write(&jp, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let (cp, delivered, ..) = resumed(store.load("prod / eu", "q1"));
    assert_eq!((delivered.len(), cp.gap_seconds_total), (40, 3_600));
    assert_eq!(others(&store).iter().filter(|n| n.contains(".corrupt-")).count(), 1);
    store.append("prod / eu", &[(16 * MINUTE_NS, 600, 1)]).unwrap_or_else(|e| panic!("{e}"));
    let (_, delivered, ..) = resumed(store.load("prod / eu", "q1"));
    assert_eq!(delivered.len(), 41, "appends after the repair are replayed");
}

#[test]
fn compaction_keeps_exactly_the_live_counts() {
    let (_d, store) = store();
    let mut cp = sample();
    store.save(&cp).unwrap_or_else(|e| panic!("{e}"));
    let mut live = Delivered::default();
    // 60,000 entries over 20 minutes (1.6 MiB), then W2 passes 15 of them.
    for m in 10..30i64 {
        let page: Vec<_> = (0..3000u64).map(|i| (m * MINUTE_NS, i, 1)).collect();
        store.append("prod / eu", &page).unwrap_or_else(|e| panic!("{e}"));
        for &(t, f, n) in &page {
            live.raise(t, f, n);
        }
    }
    assert!(!store.compact("prod / eu", &live).unwrap_or(true), "nothing dead yet");
    (cp.watermark_ms, cp.late_watermark_ms) = (30 * 60_000, 25 * 60_000);
    live.prune_before(cp.late_watermark_ms);
    store.save(&cp).unwrap_or_else(|e| panic!("{e}"));
    let jp = store.journal_path("prod / eu");
    let before = std::fs::metadata(&jp).map(|m| m.len()).unwrap_or(0);
    assert!(store.compact("prod / eu", &live).unwrap_or(false));
    let after = std::fs::metadata(&jp).map(|m| m.len()).unwrap_or(0);
    println!("compaction: {before} bytes -> {after} bytes for {} live counts", live.len());
    assert_eq!(after, 8 + (live.len() * ENTRY_LEN) as u64);
    // An append after it goes to the new file, not the one it replaced
    // (which this process had kept open).
    store.append("prod / eu", &[(29 * MINUTE_NS, 9_999, 1)]).unwrap_or_else(|e| panic!("{e}"));
    live.raise(29 * MINUTE_NS, 9_999, 1);
    let (_, back, ..) = resumed(store.load("prod / eu", "q1"));
    assert_eq!(back, live);
    assert!(!store.compact("prod / eu", &live).unwrap_or(true), "just compacted");
    assert!(others(&store).is_empty());
}

#[test]
fn reset_deletes_both_files_and_the_counters() {
    let (_d, store) = store();
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
    store.append("prod / eu", &[(15 * MINUTE_NS, 1, 1)]).unwrap_or_else(|e| panic!("{e}"));
    store.save(&Checkpoint::fresh("other", "q", 0)).unwrap_or_else(|e| panic!("{e}"));
    store.reset("prod / eu").unwrap_or_else(|e| panic!("{e}"));
    assert!(!store.path("prod / eu").exists() && !store.journal_path("prod / eu").exists());
    // Appends after it make a new journal (not the one it removed, which
    // this process had kept open).
    store.append("prod / eu", &[(15 * MINUTE_NS, 2, 1)]).unwrap_or_else(|e| panic!("{e}"));
    assert!(store.journal_path("prod / eu").exists());
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
    let (_, delivered, ..) = resumed(store.load("prod / eu", "q1"));
    assert_eq!((delivered.count(15 * MINUTE_NS, 1), delivered.count(15 * MINUTE_NS, 2)), (0, 1));
    store.reset("prod / eu").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(store.load("prod / eu", "q1"), Ok(Loaded::Missing)));
    assert!(matches!(store.load("other", "q"), Ok(Loaded::Resumed { .. })), "other sources untouched");
    assert!(store.reset("never seen").is_ok());
}

#[cfg(unix)]
#[test]
fn checkpoint_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, store) = store();
    store.append("prod / eu", &[(15 * MINUTE_NS, 1, 1)]).unwrap_or_else(|e| panic!("{e}"));
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    assert_eq!(mode(&store.dir), 0o700);
    assert_eq!(mode(&store.path("prod / eu")), 0o600);
    assert_eq!(mode(&store.journal_path("prod / eu")), 0o600);
}

#[test]
fn a_page_saved_in_one_call_and_pages_between_small_files_in_the_journal_only() {
    let (_d, store) = store();
    let mut cp = sample();
    let t = 20 * MINUTE_NS + 5;
    store.save_page(&cp, &[(t, 7, 1)]).unwrap_or_else(|e| panic!("{e}"));
    // Later pages append their counts only; the small file stays as it was.
    cp.watermark_ms = 25 * 60_000;
    store.append(&cp.source, &[(t + 1, 8, 1), (t + 2, 9, 2)]).unwrap_or_else(|e| panic!("{e}"));
    let (loaded, delivered, _, _) = resumed(store.load("prod / eu", "q1"));
    assert_eq!(loaded.watermark_ms, 20 * 60_000, "the small file as last written: those pages are read again");
    assert_eq!((delivered.count(t, 7), delivered.count(t + 1, 8), delivered.count(t + 2, 9)), (1, 1, 2));
    // An overwrite of an existing small file (its rename synced lazily) reads back whole.
    store.save_page(&cp, &[]).unwrap_or_else(|e| panic!("{e}"));
    let (loaded, _, _, _) = resumed(store.load("prod / eu", "q1"));
    assert_eq!(loaded, cp);
    assert!(others(&store).is_empty(), "no temporary file left: {:?}", others(&store));
}

#[test]
fn the_marks_never_reach_the_disk_before_the_counts_they_rely_on() {
    let (_d, store) = store();
    let first = sample();
    store.save(&first).unwrap_or_else(|e| panic!("{e}"));
    store.append("prod / eu", &[(15 * MINUTE_NS, 1, 1)]).unwrap_or_else(|e| panic!("{e}"));
    // The journal cannot be synced (here: its name now holds a directory,
    // and the file kept open for appends is closed).
    store.close_journal("prod / eu");
    let journal = store.journal_path("prod / eu");
    let kept = journal.with_extension("kept");
    std::fs::rename(&journal, &kept).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(&journal).unwrap_or_else(|e| panic!("{e}"));
    let mut moved = sample();
    moved.watermark_ms += 60_000;
    assert!(store.save(&moved).is_err(), "the small file waits for the journal");
    assert!(store.save_page(&moved, &[]).is_err(), "still unsynced: tried again, refused again");
    let on_disk: Checkpoint = serde_json::from_slice(&std::fs::read(store.path("prod / eu")).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(on_disk, first, "the marks did not move");
    // Once the journal can be synced, the marks move.
    std::fs::remove_dir(&journal).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&kept, &journal).unwrap_or_else(|e| panic!("{e}"));
    store.save(&moved).unwrap_or_else(|e| panic!("{e}"));
    let (back, delivered, _, _) = resumed(store.load("prod / eu", "q1"));
    assert_eq!((back, delivered.count(15 * MINUTE_NS, 1)), (moved, 1));
    // Nothing appended since: the next save syncs nothing and cannot fail on it.
    std::fs::remove_file(&journal).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(&journal).unwrap_or_else(|e| panic!("{e}"));
    store.save(&sample()).unwrap_or_else(|e| panic!("{e}"));
}
