//! Encrypted scoring against the plaintext int8 scan on the same data, in the same run.
//!
//! `cargo bench --bench scoring` (set `BLINDSCORE_BENCH_ITEMS` for a smaller catalog).
//! Defaults: 1,048,576 items x 128 dims, uniform int8, column layout. Prints this
//! machine's measured memory bandwidth and FMA rate, then a summary of medians with each
//! figure's ratio to the plaintext scan and its distance from the physical limits, and
//! the bytes per query.

use std::time::{Duration, Instant};

use blindscore_client::{top_k, PreparedCatalog};
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{Layout, LayoutChoice, QuantizedCatalog};
use blindscore_server::simd::{probe, PlaintextCatalog};
use blindscore_server::{CatalogSource, ServedCatalog};
use criterion::{BatchSize, Criterion};

const D: usize = 128;
const BATCH: usize = 16;

struct Lcg(u64);

impl Lcg {
    fn value(&mut self) -> i32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % 255) as i32 - 127
    }
}

struct Limits {
    bandwidth: f64,
    fma_rate: f64,
}

fn measure_limits() -> Limits {
    let buffer = vec![1.0f64; 1 << 27]; // 1 GiB
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(probe::read_sum(std::hint::black_box(&buffer)));
        best = best.min(t.elapsed().as_secs_f64());
    }
    let bandwidth = (buffer.len() * 8) as f64 / best;
    let mut best_rate = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let (fmas, r) = probe::fma_burst(20_000_000, 1.0);
        std::hint::black_box(r);
        best_rate = best_rate.max(fmas as f64 / t.elapsed().as_secs_f64());
    }
    Limits {
        bandwidth,
        fma_rate: best_rate,
    }
}

fn median_seconds(group: &str, name: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = format!("{dir}/criterion/{group}/{name}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64().map(|ns| ns * 1e-9)
}

fn main() {
    let items: usize = std::env::var("BLINDSCORE_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    eprintln!("building a {items} x {D} int8 catalog ...");
    let mut rng = Lcg(42);
    let values: Vec<i16> = (0..items * D).map(|_| rng.value() as i16).collect();
    let catalog_i8: Vec<i8> = values.iter().map(|&v| v as i8).collect();
    let catalog = QuantizedCatalog::new(D, 8, values).expect("valid catalog");
    let t = Instant::now();
    let served = ServedCatalog::build(
        &CatalogSource {
            catalog_id: "bench",
            params: DEFAULT_PARAMS,
            catalog: &catalog,
            scales: &[],
            query_bits: 8,
            layout: LayoutChoice::Fixed(Layout::Column),
            item_data: &[],
        },
        &|step, done, total| {
            if done == total || done % 64 == 0 {
                eprint!("\r  {step}: {done}/{total} blocks   ");
            }
        },
    )
    .expect("catalog fits the budget");
    eprintln!("\n  built in {:.1} s", t.elapsed().as_secs_f64());
    let prepared = PreparedCatalog::new(served.description(), served.hint_message())
        .expect("valid description");
    let queries: Vec<Vec<i32>> = (0..BATCH)
        .map(|_| (0..D).map(|_| rng.value()).collect())
        .collect();
    let query_i8: Vec<i8> = queries[0].iter().map(|&v| v as i8).collect();
    let encrypted: Vec<Vec<u8>> = queries
        .iter()
        .map(|q| prepared.encrypt(q).expect("encrypt").bytes)
        .collect();
    let response = served.score_encoded(&encrypted[0]).expect("score");

    // Check once that what is timed is right.
    let check = prepared.encrypt(&queries[0]).expect("encrypt");
    let scores = check
        .pending
        .decrypt(
            &prepared,
            &served.score_encoded(&check.bytes).expect("score"),
        )
        .expect("decrypt");
    let expected = catalog.plaintext_scores(&queries[0]);
    let wrong = scores.iter().zip(&expected).filter(|(a, b)| a != b).count();
    assert_eq!(wrong, 0, "{wrong} wrong scores");
    let mut plain_scores = vec![0i32; items];
    PlaintextCatalog::new(&catalog_i8, D).scan(&query_i8, &mut plain_scores);
    assert!(
        plain_scores
            .iter()
            .zip(&expected)
            .all(|(a, b)| *a as i64 == *b),
        "plaintext scan is wrong"
    );

    eprintln!("measuring this machine's limits ...");
    let limits = measure_limits();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("scan_1_thread");
        let mut out = vec![0i32; items];
        let plain = PlaintextCatalog::new(&catalog_i8, D);
        g.bench_function("plaintext_int8", |b| {
            b.iter(|| plain.scan(std::hint::black_box(&query_i8), &mut out))
        });
        g.bench_function("encrypted_1_query", |b| {
            b.iter(|| one.install(|| served.score_encoded(std::hint::black_box(&encrypted[0]))))
        });
        let refs: Vec<&[u8]> = encrypted.iter().map(|q| q.as_slice()).collect();
        g.bench_function("encrypted_16_queries", |b| {
            b.iter(|| one.install(|| served.score_encoded_batch(&refs)))
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("scan_all_threads");
        g.bench_function("encrypted_1_query", |b| {
            b.iter(|| served.score_encoded(std::hint::black_box(&encrypted[0])))
        });
        let refs: Vec<&[u8]> = encrypted.iter().map(|q| q.as_slice()).collect();
        g.bench_function("encrypted_16_queries", |b| {
            b.iter(|| served.score_encoded_batch(&refs))
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("client");
        g.bench_function("encrypt", |b| {
            b.iter(|| {
                prepared
                    .encrypt(std::hint::black_box(&queries[0]))
                    .expect("encrypt")
            })
        });
        // The app keeps its score buffer from query to query.
        let mut scores = Vec::new();
        g.bench_function("decrypt_and_top10", |b| {
            b.iter_batched(
                || prepared.encrypt(&queries[0]).expect("encrypt").pending,
                |pending| {
                    pending
                        .decrypt_into(&prepared, &response, &mut scores)
                        .expect("decrypt");
                    top_k(&scores, 10)
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
    c.final_summary();

    let m = |g: &str, n: &str| median_seconds(g, n).unwrap_or(f64::NAN);
    let plain = m("scan_1_thread", "plaintext_int8");
    let one_q = m("scan_1_thread", "encrypted_1_query");
    let batch = m("scan_1_thread", "encrypted_16_queries") / BATCH as f64;
    let fourier_bytes = served.fourier().memory_bytes() as f64;
    let stream_floor = fourier_bytes / limits.bandwidth;
    let fma_floor = 2.0 * D as f64 * items as f64 / limits.fma_rate;
    let ms = |s: f64| s * 1e3;
    println!();
    println!("== blindscore scoring, {items} x {D}, uniform int8, column layout ==");
    println!(
        "machine: memory read {:.1} GB/s (1 thread), {:.2} G f64 FMA/s (1 thread, AVX-512)",
        limits.bandwidth / 1e9,
        limits.fma_rate / 1e9
    );
    println!(
        "plaintext int8 scan:         {:8.2} ms  ({:.1} GB/s)",
        ms(plain),
        (items * D) as f64 / plain / 1e9
    );
    println!(
        "Fourier catalog once (floor): {:8.2} ms  ({:.0} MiB)",
        ms(stream_floor),
        fourier_bytes / (1 << 20) as f64
    );
    println!("FMA floor per query:          {:8.2} ms", ms(fma_floor));
    println!(
        "encrypted, 1 query, 1 thread: {:8.2} ms  = {:.1}x plaintext, {:.2}x the streaming floor",
        ms(one_q),
        one_q / plain,
        one_q / stream_floor
    );
    println!(
        "encrypted, 16 in one pass:    {:8.2} ms per query = {:.1}x plaintext, {:.2}x the FMA floor",
        ms(batch),
        batch / plain,
        batch / fma_floor
    );
    println!(
        "all threads: 1 query {:.2} ms, 16 in one pass {:.2} ms per query",
        ms(m("scan_all_threads", "encrypted_1_query")),
        ms(m("scan_all_threads", "encrypted_16_queries") / BATCH as f64)
    );
    println!(
        "client: encrypt {:.2} ms; decrypt + top-10 of {items} scores {:.2} ms",
        ms(m("client", "encrypt")),
        ms(m("client", "decrypt_and_top10"))
    );
    let b = &served.shape().budget;
    println!(
        "wire: query {:.1} KiB up ({} bits/coefficient), response {:.1} KiB down ({:.2} bytes/score, {} bits), \
         hint {:.1} MiB once ({} bits); Delta 2^{}",
        encrypted[0].len() as f64 / 1024.0,
        b.query_bits(),
        response.len() as f64 / 1024.0,
        response.len() as f64 / items as f64,
        b.response_bits(),
        served.hint_message().len() as f64 / (1 << 20) as f64,
        b.hint_bits(),
        b.delta_log2
    );
}
