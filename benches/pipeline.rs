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
//! `second_read_1000` is the second pass's read of a page the first pass
//! read: records recognised by their bytes against decoded again.
//!
//! Run: `cargo bench --bench pipeline`

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use forge_otel_sidecar::convert::{self, ConvertStats, RequestHead};
use forge_otel_sidecar::convert::{Known, Raw, decode_page_raw, raw_matches, raw_prefix};
use forge_otel_sidecar::convert::{decode_page, scan_page};
use forge_otel_sidecar::forge::model::Page;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

mod support;
use support::{page_json_with, pipeline_with, recommended};

/// A page of `n` records as the API sends it.
fn page_json(n: usize) -> Vec<u8> {
    page_json_with(n, false)
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
    let recommended = recommended();
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

/// The second read of a stretch (DESIGN.md 6): a page whose records were
/// all seen by the first read, recognised by their bytes (`Raw::Skip`)
/// against decoded again (`Raw::Off`), and the first read's keying of them
/// (`Raw::Keys`) against none.
fn bench_second_read(c: &mut Criterion) {
    use std::collections::HashMap;
    let json = page_json(1_000);
    let first = decode_page_raw(&json, 1, Raw::Keys).map(|p| p.records).unwrap_or_default();
    let known: HashMap<u64, Known> = first
        .iter()
        .filter_map(|r| {
            let raw = r.raw_key()?;
            Some((raw.prefix, Known { raw, time_unix_nano: r.time_unix_nano, fingerprint: r.fingerprint() }))
        })
        .collect();
    assert_eq!(known.len(), 1_000, "every record keyed");
    let find = |rest: &[u8]| -> Option<Known> {
        let k = known.get(&raw_prefix(rest)?)?;
        raw_matches(rest, &k.raw).then_some(*k)
    };
    let mut g = c.benchmark_group("second_read_1000");
    g.sample_size(30);
    g.throughput(Throughput::Elements(1_000));
    let read = |raw: Raw<'_>| decode_page_raw(black_box(&json), 1, raw).map(|p| (p.records.len(), p.skipped));
    g.bench_function("decode", |b| b.iter(|| black_box(read(Raw::Off))));
    g.bench_function("decode_keyed", |b| b.iter(|| black_box(read(Raw::Keys))));
    g.bench_function("recognised", |b| b.iter(|| black_box(read(Raw::Skip(&find)))));
    g.finish();
}

criterion_group!(benches, bench, bench_privacy, bench_second_read);
criterion_main!(benches);
