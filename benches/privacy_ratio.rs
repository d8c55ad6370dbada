//! The cost of `privacy: recommended` against no rules, measured so that
//! background load hits both cases alike: one process alternates blocks of
//! pages without rules and with them (ABBA order, so neither case always
//! runs first), many rounds, and reports per case the fastest block (the
//! run least disturbed by other work) and the median block, in ns per
//! record, with the ratios. Criterion's `privacy_1000` groups
//! (benches/pipeline.rs) measure the two cases one after the other, so a
//! change of load between them moves the ratio.
//!
//! Run: `cargo bench --bench privacy_ratio` (`-- ROUNDS PAGES_PER_BLOCK`,
//! 40 and 10 unless given).

use std::hint::black_box;
use std::time::Instant;

use forge_otel_sidecar::convert::RequestHead;
use forge_otel_sidecar::privacy::Rules;
use opentelemetry_proto::tonic::resource::v1::Resource;

mod support;
use support::{page_json_with, pipeline_with, recommended};

const RECORDS: usize = 1_000;

/// ns per record of one block of `pages` pages.
fn block(json: &[u8], head: &RequestHead, rules: Option<&Rules>, pages: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..pages {
        black_box(pipeline_with(black_box(json), head, rules));
    }
    t.elapsed().as_nanos() as f64 / (pages * RECORDS) as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; numbers are ours.
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rounds = nums.first().copied().unwrap_or(40).max(1);
    let pages = nums.get(1).copied().unwrap_or(10).max(1);
    let head = RequestHead::new(&Resource::default());
    let recommended = recommended();
    let rules = recommended.rules();
    println!("{rounds} rounds, blocks of {pages} pages of {RECORDS} records; ns per record");
    println!(
        "| page | no rules min | recommended min | ratio of min | no rules median | recommended median | ratio of median | median of round ratios |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, samples) in [("personal data", true), ("clean", false)] {
        let json = page_json_with(RECORDS, samples);
        // Warm-up: caches, allocator, branch predictors for both cases.
        for _ in 0..3 {
            block(&json, &head, None, pages);
            block(&json, &head, rules, pages);
        }
        let (mut none, mut with, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (a, b) = if round % 2 == 0 {
                let a = block(&json, &head, None, pages);
                (a, block(&json, &head, rules, pages))
            } else {
                let b = block(&json, &head, rules, pages);
                (block(&json, &head, None, pages), b)
            };
            none.push(a);
            with.push(b);
            ratios.push(b / a);
        }
        let (min_none, min_with) =
            (none.iter().copied().fold(f64::INFINITY, f64::min), with.iter().copied().fold(f64::INFINITY, f64::min));
        let (med_none, med_with) = (median(&mut none), median(&mut with));
        println!(
            "| {name} | {min_none:.0} | {min_with:.0} | {:.3} | {med_none:.0} | {med_with:.0} | {:.3} | {:.3} |",
            min_with / min_none,
            med_with / med_none,
            median(&mut ratios),
        );
    }
}
