//! The hot path, per page of realistic records: Forge JSON → OTLP protobuf
//! bytes, with the parse strategies tried. `pipeline` is what the poller
//! does per page: decode straight into protobuf, fingerprint, split into
//! requests. The `parse_*` and `scan_*` entries parse alone (the floor).
//!
//! `privacy_1000` is `pipeline` on a page where a third of the bodies carry
//! an email, a token and an account id, without rules and with
//! `privacy: recommended`; `privacy_1000_clean` the same on a page without
//! them (docs/PRIVACY.md).
//!
//! Run: `cargo bench --bench pipeline`

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use forge_otel_sidecar::convert::{self, ConvertStats, RequestHead};
use forge_otel_sidecar::convert::{decode_page, decode_page_with, scan_page};
use forge_otel_sidecar::forge::model::Page;
use forge_otel_sidecar::privacy::{self, Privacy, PrivacySpec, Rules};
use forge_otel_sidecar::simulator::behaviour::Behaviour;
use forge_otel_sidecar::simulator::data::{Generator, Stream, site_id};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// A page of `n` records as the API sends it.
fn page_json(n: usize) -> Vec<u8> {
    page_json_with(n, false)
}

/// [`page_json`], a third of the bodies with personal data when `samples`.
fn page_json_with(n: usize, samples: bool) -> Vec<u8> {
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

/// Borrowed serde_json: strings stay in the page unless they have escapes.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct BorrowedPage<'a> {
    #[serde(rename = "appLogs", borrow)]
    app_logs: Vec<BorrowedRecord<'a>>,
    #[serde(borrow)]
    cursor: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct BorrowedRecord<'a> {
    #[serde(borrow)]
    time_unix_nano: Option<Cow<'a, str>>,
    severity_number: Option<i64>,
    #[serde(borrow)]
    severity_text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    body: Option<BorrowedAny<'a>>,
    #[serde(borrow)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    span_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    attributes: Vec<BorrowedKv<'a>>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct BorrowedKv<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: Option<BorrowedAny<'a>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct BorrowedAny<'a> {
    #[serde(borrow)]
    string_value: Option<Cow<'a, str>>,
    int_value: Option<serde::de::IgnoredAny>,
    bool_value: Option<bool>,
}

/// The first strategy: serde_json into owned wire types, conversion into
/// `LogRecord`s, fingerprint, prost encoding of the requests.
fn pipeline_via_model(json: &[u8], resource: &Resource, scratch: &mut Vec<u8>) -> usize {
    let page: Page = serde_json::from_slice(json).unwrap_or_default();
    let mut stats = ConvertStats::default();
    let mut out = Vec::with_capacity(page.app_logs.len());
    for rec in &page.app_logs {
        let mut r = convert::record(rec, 1, &mut stats);
        black_box(convert::fingerprint(&mut r, scratch));
        out.push(r);
    }
    convert::requests(resource, out, 4 << 20).iter().map(|r| r.encode_to_vec().len()).sum()
}

/// What the poller does with one page, up to the bytes on the wire:
/// decode straight into protobuf records, fingerprint, wrap into requests.
fn pipeline(json: &[u8], head: &RequestHead) -> usize {
    pipeline_with(json, head, None)
}

/// [`pipeline`] with privacy rules.
fn pipeline_with(json: &[u8], head: &RequestHead, rules: Option<&Rules>) -> usize {
    let page = decode_page_with(json, 1, rules).unwrap_or_default();
    let mut out = Vec::with_capacity(page.records.len());
    for r in page.records.iter() {
        black_box(r.fingerprint());
        out.push(r.encoded);
    }
    convert::batches(head, out, 4 << 20).map(|b| b.bytes().len()).sum()
}

fn bench(c: &mut Criterion) {
    let resource = Resource::default();
    let head = RequestHead::new(&resource);
    for n in [100usize, 1_000, 10_000] {
        let json = page_json(n);
        let mut g = c.benchmark_group(format!("page_{n}"));
        g.sample_size(if n >= 10_000 { 10 } else { 30 });
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("scan_syntax", |b| b.iter(|| black_box(scan_page(black_box(&json)).is_ok())));
        g.bench_function("parse_simd_json", |b| {
            b.iter(|| {
                let mut copy = black_box(&json).clone();
                black_box(simd_json::to_borrowed_value(&mut copy).is_ok())
            })
        });
        g.bench_function("parse_borrowed", |b| {
            b.iter(|| black_box(serde_json::from_slice::<BorrowedPage>(black_box(&json)).map(|p| p.app_logs.len())))
        });
        g.bench_function("parse_model", |b| {
            b.iter(|| black_box(serde_json::from_slice::<Page>(black_box(&json)).map(|p| p.app_logs.len())))
        });
        g.bench_function("parse_value", |b| {
            b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(&json)).is_ok()))
        });
        g.bench_function("decode_page", |b| {
            b.iter(|| black_box(decode_page(black_box(&json), 1).map(|p| p.records.len())))
        });
        let mut scratch = Vec::new();
        g.bench_function("pipeline_via_model", |b| {
            b.iter(|| black_box(pipeline_via_model(black_box(&json), &resource, &mut scratch)))
        });
        g.bench_function("pipeline", |b| b.iter(|| black_box(pipeline(black_box(&json), &head))));
        g.throughput(Throughput::Bytes(json.len() as u64));
        g.bench_function("pipeline_bytes", |b| b.iter(|| black_box(pipeline(black_box(&json), &head))));
        g.finish();
    }
}

/// The recommended rules against none, on the same 1,000-record page:
/// with personal data in a third of the bodies, and without any.
fn bench_privacy(c: &mut Criterion) {
    let head = RequestHead::new(&Resource::default());
    let (attributes, mask) = PrivacySpec::preset(privacy::RECOMMENDED).unwrap_or_default();
    let spec = PrivacySpec {
        attributes,
        mask,
        marker: privacy::DEFAULT_MARKER.into(),
        hash_key: None,
        hash_prefix: privacy::DEFAULT_HASH_PREFIX.into(),
    };
    let recommended = Privacy::new(spec).unwrap_or_default();
    for (group, samples) in [("privacy_1000", true), ("privacy_1000_clean", false)] {
        let json = page_json_with(1_000, samples);
        let mut g = c.benchmark_group(group);
        g.sample_size(30);
        g.throughput(Throughput::Elements(1_000));
        g.bench_function("no_rules", |b| b.iter(|| black_box(pipeline_with(black_box(&json), &head, None))));
        g.bench_function("recommended", |b| {
            b.iter(|| black_box(pipeline_with(black_box(&json), &head, recommended.rules())))
        });
        g.finish();
    }
}

criterion_group!(benches, bench, bench_privacy);
criterion_main!(benches);
