//! The client's work per query, per layout: drawing a fresh key, encrypting, and
//! decrypting plus top-10, beside the plaintext int8 scan of the same catalog in the same
//! run.
//!
//! `cargo bench --bench client` measures the build with tfhe's AVX-512 FFT kernels;
//! `cargo bench --bench client --no-default-features` the portable build (tfhe's kernels
//! without AVX-512). `BLINDSCORE_BENCH_ITEMS` sets the catalog size (default 1M).

mod support;

use blindscore_client::core::{top_k, SecretKey};
use blindscore_common::Layout;
use criterion::BatchSize;
use support::records::{ClientLayout, ClientRecord};
use support::{Int8Catalog, Limits};

const D: usize = 128;

fn main() {
    let limits = Limits::measure();
    let items: usize = std::env::var("BLINDSCORE_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let build = if cfg!(feature = "avx512") {
        "avx512"
    } else {
        "portable"
    };
    let data = Int8Catalog::new(items, D, 11);
    let query = support::random_query(D, 3);
    let query_i8: Vec<i8> = query.iter().map(|&v| v as i8).collect();
    let mut c = support::criterion(3);
    let mut rows = Vec::new();
    for layout in [Layout::Column, Layout::Grouped(4), Layout::Grouped(16)] {
        eprintln!("== {layout}: building a {items} x {D} catalog ...");
        let (served, _) = support::serve(&data.quantized, layout);
        let prepared = support::prepare(&served);
        let sample = prepared.seal_quantized(&query).expect("encrypt");
        let response = served.score_encoded(&sample.bytes).expect("score");
        let scores = sample
            .pending
            .decrypt(&prepared, &response)
            .expect("decrypt");
        let expected = data.quantized.plaintext_scores(&query);
        assert_eq!(scores, expected, "{layout}: wrong scores");

        let group_name = format!("client_{build}_b{}", layout.group_size());
        let mut g = c.benchmark_group(&group_name);
        let mut plain = vec![0i32; items];
        g.bench_function("plaintext_t1", |b| {
            b.iter(|| data.scan(std::hint::black_box(&query_i8), &mut plain))
        });
        g.bench_function("key_generation", |b| {
            b.iter(|| SecretKey::generate(2048).expect("randomness"))
        });
        g.bench_function("encrypt", |b| {
            b.iter(|| {
                prepared
                    .seal_quantized(std::hint::black_box(&query))
                    .expect("encrypt")
            })
        });
        // An app keeps its score buffer from query to query.
        let mut buffer = Vec::new();
        g.bench_function("decrypt_top10", |b| {
            b.iter_batched(
                || prepared.seal_quantized(&query).expect("encrypt").pending,
                |pending| {
                    pending
                        .decrypt_into(&prepared, &response, &mut buffer)
                        .expect("decrypt");
                    top_k(&buffer, 10)
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("decrypt_top10_fresh_buffer", |b| {
            b.iter_batched(
                || prepared.seal_quantized(&query).expect("encrypt").pending,
                |pending| top_k(&pending.decrypt(&prepared, &response).expect("decrypt"), 10),
                BatchSize::PerIteration,
            )
        });
        g.finish();
        let m = |name: &str| support::median(&group_name, name);
        rows.push(ClientLayout {
            layout: layout.to_string(),
            group_size: layout.group_size(),
            items,
            dimension: D,
            plaintext_seconds_t1: m("plaintext_t1"),
            key_generation_seconds: m("key_generation"),
            encrypt_seconds: m("encrypt"),
            decrypt_top10_seconds: m("decrypt_top10"),
            decrypt_top10_fresh_seconds: m("decrypt_top10_fresh_buffer"),
            query_message_bytes: sample.bytes.len(),
            response_message_bytes: response.len(),
            hint_message_bytes: served.hint_message().len(),
        });
    }
    c.final_summary();
    support::record(
        &format!("client_{build}"),
        &ClientRecord {
            machine: support::machine(),
            limits: limits.record(),
            build: build.to_string(),
            layouts: rows,
        },
    );
}
