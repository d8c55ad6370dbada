//! The page decoder on arbitrary bytes: it never panics, and every page it
//! accepts that serde also reads gives the same records, byte for byte, as
//! the reference path (serde into `forge::model`, then `convert::record`).
#![no_main]

use forge_otel_sidecar::convert::{self, ConvertStats};
use forge_otel_sidecar::forge::model::Page;
use forge_otel_sidecar::convert::decode_page;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the observed time, so 0 (unset) is covered too.
    let (observed_ns, page) = match data.split_first() {
        Some((b, rest)) => (u64::from(*b) * 1_000_000_007, rest),
        None => (0, data),
    };
    let Ok(direct) = decode_page(page, observed_ns) else { return };
    let Ok(model) = serde_json::from_slice::<Page>(page) else { return };
    let mut stats = ConvertStats::default();
    let want: Vec<_> = model.app_logs.iter().map(|r| convert::record(r, observed_ns, &mut stats)).collect();
    assert_eq!(direct.records.len(), want.len(), "record count");
    for (got, want) in direct.records.iter().zip(&want) {
        assert_eq!(got.encoded, want.encode_to_vec().as_slice(), "{want:?}");
        assert_eq!(got.time_unix_nano, want.time_unix_nano);
        let mut want = want.clone();
        assert_eq!(got.fingerprint(), convert::fingerprint(&mut want, &mut Vec::new()));
    }
    assert_eq!(direct.stats, stats);
    assert_eq!(direct.cursor.as_deref(), model.next_cursor());
});
