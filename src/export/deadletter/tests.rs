use super::*;

#[test]
fn summary_counts_by_reason_and_source() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dl = DeadLetter::new(dir.path(), 1 << 20);
    let batch = Batch::from(&ExportLogsServiceRequest::default());
    let _ = dl.write("prod", "HTTP 400: bad", 2_000, &batch);
    let _ = dl.write("prod", "HTTP 400: bad", 1_000, &batch);
    let _ = dl.write("dev", "HTTP 413: too large", 3_000, &batch);
    let _ = std::fs::OpenOptions::new().append(true).open(dl.path()).and_then(|mut f| f.write_all(b"{not json\n"));
    let s = summarize(dir.path(), true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.entries, s.unreadable, s.list.len()), (3, 1, 3));
    assert_eq!(s.by_reason.get("HTTP 400: bad"), Some(&(2, 0)));
    assert_eq!(s.by_source.keys().collect::<Vec<_>>(), ["dev", "prod"]);
    assert_eq!(s.oldest.as_deref(), Some("1970-01-01T00:00:01.000Z"));
    assert_eq!(s.newest.as_deref(), Some("1970-01-01T00:00:03.000Z"));
    let text = s.to_string();
    assert!(text.contains("2 entries: HTTP 400: bad"), "{text}");

    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = summarize(empty.path(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.entries, s.bytes), (0, 0));
}

#[test]
fn full_file_refuses_new_entries_but_not_kept_lines() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dl = DeadLetter::new(dir.path(), 10);
    let batch = Batch::from(&ExportLogsServiceRequest::default());
    assert!(matches!(dl.write("s", "r", 0, &batch), Err(DeadLetterError::Full { .. })));
    assert!(dl.append("{\"kept\":1}\n", false).is_ok());
    assert_eq!(std::fs::read_to_string(dl.path()).unwrap_or_default(), "{\"kept\":1}\n");
}
