//! The naive route: a query of d encrypted `FheInt32` coordinates scored against a clear
//! int8 catalog with tfhe's high-level API, one clear multiply per value and a sum per
//! item. Measured at a size it can finish (`BLINDSCORE_NAIVE_ITEMS` x
//! `BLINDSCORE_NAIVE_DIMENSION`, default 1 x 8, on every thread), beside the plaintext
//! dot products of the same data. Figures go to
//! `$BLINDSCORE_RECORD_DIR/naive.json` (default `target/blindscore-bench/`).

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};

// The record's type, shared with the report (`examples/bench_report/`).
#[path = "../../support/records.rs"]
#[allow(dead_code)]
mod records;
use records::NaiveRecord;
use tfhe::prelude::*;
use tfhe::{generate_keys, set_server_key, ConfigBuilder, FheInt32};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(target: &std::path::Path, group: &str, name: &str) -> Option<f64> {
    let path = target.join(format!("criterion/{group}/{name}/new/estimates.json"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64().map(|ns| ns * 1e-9)
}

fn main() {
    let items = env_usize("BLINDSCORE_NAIVE_ITEMS", 1);
    let d = env_usize("BLINDSCORE_NAIVE_DIMENSION", 8);
    let mut state = 0x1234_5678_u64;
    let mut int8 = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 255) as i32 - 127
    };
    let catalog: Vec<i32> = (0..items * d).map(|_| int8()).collect();
    let query: Vec<i32> = (0..d).map(|_| int8()).collect();
    let expected: Vec<i32> = catalog
        .chunks(d)
        .map(|row| row.iter().zip(&query).map(|(a, b)| a * b).sum())
        .collect();

    eprintln!("generating tfhe's high-level keys (default parameters) ...");
    let t = Instant::now();
    let (client_key, server_key) = generate_keys(ConfigBuilder::default());
    let keygen_seconds = t.elapsed().as_secs_f64();
    set_server_key(server_key);
    let encrypted: Vec<FheInt32> = query
        .iter()
        .map(|&v| FheInt32::encrypt(v, &client_key))
        .collect();
    let score = |row: &[i32]| -> FheInt32 {
        encrypted
            .iter()
            .zip(row)
            .map(|(ct, &w)| ct * w)
            .sum::<FheInt32>()
    };
    for (row, want) in catalog.chunks(d).zip(&expected) {
        let got: i32 = score(row).decrypt(&client_key);
        assert_eq!(got, *want, "the naive route computed a wrong score");
    }

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1))
        .configure_from_args();
    let group = format!("naive_{items}x{d}");
    let mut g = c.benchmark_group(&group);
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("plaintext", |b| {
        b.iter(|| {
            std::hint::black_box(&catalog)
                .chunks(d)
                .map(|row| row.iter().zip(&query).map(|(a, b)| a * b).sum::<i32>())
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("fheint32_mul_sum", |b| {
        b.iter(|| catalog.chunks(d).map(score).collect::<Vec<_>>())
    });
    g.finish();
    c.final_summary();

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let naive = median(&target, &group, "fheint32_mul_sum");
    let plain = median(&target, &group, "plaintext");
    let record = NaiveRecord {
        items,
        dimension: d,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        tfhe: "1.8.2, high-level API, ConfigBuilder::default()".into(),
        key_generation_seconds: keygen_seconds,
        seconds: naive,
        plaintext_seconds: plain,
        seconds_per_coordinate: naive.map(|s| s / (items * d) as f64),
    };
    let dir = std::env::var_os("BLINDSCORE_RECORD_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| target.join("blindscore-bench"));
    std::fs::create_dir_all(&dir).expect("create the record directory");
    std::fs::write(
        dir.join("naive.json"),
        serde_json::to_vec_pretty(&record).expect("json"),
    )
    .expect("write the record");
    println!("{}", serde_json::to_string(&record).expect("json"));
}
