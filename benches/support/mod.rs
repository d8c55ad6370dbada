//! What the benches share: the pages they measure and the poller's work
//! on one page (`pipeline_with`).

use std::hint::black_box;

use forge_otel_sidecar::convert::{self, RequestHead, decode_page_with};
use forge_otel_sidecar::forge::model::Page;
use forge_otel_sidecar::privacy::{self, Privacy, PrivacySpec, Rules};
use forge_otel_sidecar::simulator::behaviour::Behaviour;
use forge_otel_sidecar::simulator::data::{Generator, Stream, site_id};

/// A page of `n` records as the API sends it, a third of the bodies with
/// personal data (an email, a bearer token, an account id) when `samples`.
pub fn page_json_with(n: usize, samples: bool) -> Vec<u8> {
    let g = Generator {
        seed: 1,
        t0_ns: 1_700_000_000_000_000_000,
        step_ns: 500_000_000,
        late_permille: 0,
        max_late_ns: 0,
        edge_permille: 0,
        sites: (0..50).map(|i| site_id(1, i)).collect(),
        pad_bytes: 0,
    };
    let s = Stream {
        app_id: "0f7c6a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6".into(),
        environment_id: "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d".into(),
        index: 0,
    };
    let b = Behaviour { privacy_samples: samples, ..Behaviour::default() };
    let records: Vec<_> = (0..n as u64)
        .map(|i| {
            let mut r = g.record(&s, &g.meta(&s, i));
            if let (Some(extra), Some(body)) = (b.privacy_sample(i), r.body.as_mut()) {
                body.string_value.get_or_insert_default().push_str(&extra);
            }
            r
        })
        .collect();
    serde_json::to_vec(&Page { app_logs: records, cursor: Some("next".into()) }).unwrap_or_default()
}

/// The rules of `privacy: recommended` with the default marker and prefix.
pub fn recommended() -> Privacy {
    let (attributes, mask) = PrivacySpec::preset(privacy::RECOMMENDED).unwrap_or_default();
    let spec = PrivacySpec {
        attributes,
        mask,
        marker: privacy::DEFAULT_MARKER.into(),
        hash_key: None,
        hash_prefix: privacy::DEFAULT_HASH_PREFIX.into(),
    };
    Privacy::new(spec).unwrap_or_default()
}

/// What the poller does with one page, up to the bytes on the wire:
/// decode straight into protobuf records (with privacy rules when given),
/// fingerprint, wrap into requests.
pub fn pipeline_with(json: &[u8], head: &RequestHead, rules: Option<&Rules>) -> usize {
    let page = decode_page_with(json, 1, rules).unwrap_or_default();
    let mut out = Vec::with_capacity(page.records.len());
    for r in page.records.iter() {
        black_box(r.fingerprint());
        out.push(r.encoded);
    }
    convert::batches(head, out, 4 << 20).map(|b| b.bytes().len()).sum()
}
