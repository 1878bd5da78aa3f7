//! What every benchmark shares: this machine's physical limits, deterministic int8 data,
//! the plaintext reference scan, criterion settings, and the JSON record each benchmark
//! leaves in `target/blindscore-bench/` for the report (`examples/bench_report/`).
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use blindscore_client::core::{Artifacts, PreparedCatalog};
use blindscore_common::api::{EmbeddingSpace, Metric, Normalisation};
use blindscore_common::artefacts::{encode_ids, encode_scales};
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{wire, Layout, LayoutChoice, QuantizedCatalog};
use blindscore_server::scan::kernel::Kernel;
use blindscore_server::scan::memory::aligned_zeros;
use blindscore_server::scan::tile::{TileSums, CHUNK_BLOCKS, TILE, TILE_F64};
use blindscore_server::{CatalogSource, ServedCatalog};
use criterion::{Criterion, SamplingMode};
use rayon::prelude::*;
use serde_json::{json, Value};

// The tests' deterministic data: the generator, unit rows, random queries.
#[path = "../../tests/common/mod.rs"]
mod common;
pub use common::{processes, unit_rows, SplitMix};

pub mod plaintext;
pub mod probe;
pub mod records;
pub use plaintext::PlaintextCatalog;

/// A catalog of uniform int8 values, as the server stores it and as the plaintext scan
/// reads it (whole, and cut into one slice per thread).
pub struct Int8Catalog {
    pub quantized: QuantizedCatalog,
    plain: PlaintextCatalog,
    parts: Vec<PlaintextCatalog>,
}

impl Int8Catalog {
    pub fn new(items: usize, dimension: usize, seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        let raw: Vec<i8> = (0..items * dimension)
            .map(|_| rng.value(127) as i8)
            .collect();
        let rows = items.div_ceil(rayon::current_num_threads());
        let parts = raw
            .chunks(rows * dimension)
            .map(|part| PlaintextCatalog::new(part, dimension))
            .collect();
        let plain = PlaintextCatalog::new(&raw, dimension);
        let values = raw.iter().map(|&v| v as i16).collect();
        let quantized = QuantizedCatalog::new(dimension, 8, values).expect("valid catalog");
        Int8Catalog {
            quantized,
            plain,
            parts,
        }
    }

    pub fn dimension(&self) -> usize {
        self.quantized.dimension()
    }

    pub fn items(&self) -> usize {
        self.quantized.items()
    }

    /// The reference: int8 x int8 -> i32 dot products, AVX-512 VNNI where the CPU has it.
    pub fn scan(&self, query: &[i8], out: &mut [i32]) {
        self.plain.scan(query, out)
    }

    /// The reference on every thread, one slice of the catalog each.
    pub fn scan_all_threads(&self, query: &[i8], out: &mut [i32]) {
        let rows = self.parts[0].items();
        out.par_chunks_mut(rows)
            .zip(&self.parts)
            .for_each(|(out, part)| part.scan(query, out));
    }
}

/// A query of uniform 8-bit values.
pub fn random_query(dimension: usize, seed: u64) -> Vec<i32> {
    common::random_query(dimension, 8, seed)
}

/// [`random_query`] as the plaintext scan takes it.
pub fn random_query_i8(dimension: usize, seed: u64) -> Vec<i8> {
    random_query(dimension, seed)
        .into_iter()
        .map(|v| v as i8)
        .collect()
}

/// A served catalog checked and prepared through the client core, as the SDK prepares
/// it (ids "0", "1", ... and unit scales stand in for the artefacts a server would add).
pub fn prepare(served: &ServedCatalog) -> PreparedCatalog {
    let items = served.shape().geometry.items;
    let artifacts = Artifacts {
        description: wire::encode(served.description()),
        hint: served.hint_message().to_vec(),
        ids: encode_ids(&(0..items).map(|i| i.to_string()).collect::<Vec<_>>()),
        scales: encode_scales(&vec![1.0; items]),
    };
    let space = EmbeddingSpace {
        model: "bench".into(),
        dimension: served.shape().geometry.dimension,
        normalisation: Normalisation::None,
        metric: Metric::Dot,
    };
    // The benchmarks' catalogs are larger than an app's default limits allow.
    let unlimited = blindscore_client::core::Limits::none();
    PreparedCatalog::check(
        &served.catalog_ref().catalog_id,
        space,
        &artifacts,
        &unlimited,
    )
    .expect("a catalog the server built passes the client's checks")
}

/// Build the server's form of a catalog; returns it and the build time in seconds.
pub fn serve(catalog: &QuantizedCatalog, layout: Layout) -> (ServedCatalog, f64) {
    serve_with(catalog, LayoutChoice::Fixed(layout))
}

/// [`serve`] with the layout fixed or left to the layout objective.
pub fn serve_with(catalog: &QuantizedCatalog, layout: LayoutChoice) -> (ServedCatalog, f64) {
    let started = Instant::now();
    let served = ServedCatalog::build(
        &CatalogSource {
            catalog_id: "bench",
            params: DEFAULT_PARAMS,
            catalog,
            scales: &[],
            query_bits: 8,
            layout,
            item_data: &[],
        },
        &|_, _, _| {},
    )
    .expect("catalog fits the noise budget");
    (served, started.elapsed().as_secs_f64())
}

/// This machine's physical limits, measured on one thread.
#[derive(Clone, Copy)]
pub struct Limits {
    /// Sequential memory read, bytes per second.
    pub bandwidth: f64,
    /// f64 fused multiply-adds per second (AVX-512 where available).
    pub fma_rate: f64,
}

impl Limits {
    pub fn measure() -> Self {
        eprintln!("measuring this machine's memory bandwidth and FMA rate ...");
        let buffer = read_probe_buffer();
        let limits = Limits {
            bandwidth: read_rate(&buffer, 10),
            fma_rate: fma_rate(5),
        };
        eprintln!(
            "machine: memory read {:.1} GB/s, {:.1} G f64 FMA/s (one thread)",
            limits.bandwidth / 1e9,
            limits.fma_rate / 1e9
        );
        limits
    }

    /// The limits as the records carry them.
    pub fn record(self) -> records::MachineLimits {
        records::MachineLimits {
            bandwidth_bytes_per_s: self.bandwidth,
            fma_per_s: self.fma_rate,
        }
    }
}

/// 1 GiB, far beyond every cache, aligned to cache lines as the catalog is: what
/// [`read_rate`] reads.
pub fn read_probe_buffer() -> blindscore_server::scan::memory::AlignedF64 {
    let mut buffer = aligned_zeros(1 << 27);
    buffer.fill(1.0);
    buffer
}

/// Bytes per second one thread reads `buffer` at, the best of `rounds` reads taken in turn
/// with and without software prefetch: what one thread can read on this CPU, however it
/// is asked.
pub fn read_rate(buffer: &[f64], rounds: usize) -> f64 {
    let mut best = f64::MAX;
    for round in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(probe::read_sum(
            std::hint::black_box(buffer),
            round % 2 == 0,
        ));
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::mem::size_of_val(buffer) as f64 / best
}

/// f64 FMAs per second on one thread, the best of `bursts` bursts.
pub fn fma_rate(bursts: usize) -> f64 {
    let mut rate = 0.0f64;
    for _ in 0..bursts {
        let t = Instant::now();
        let (fmas, r) = probe::fma_burst(20_000_000, 1.0);
        std::hint::black_box(r);
        rate = rate.max(fmas as f64 / t.elapsed().as_secs_f64());
    }
    rate
}

/// f64 FMAs per second of the batch kernel (two queries against a chunk of blocks) on
/// data that stays in L1: the most the kernel can do on this core, whatever memory does.
pub fn batch_kernel_rate() -> f64 {
    let rate = pair_kernel_rate(32, 32, 1, 200_000);
    eprintln!("batch kernel on data in L1: {:.1} G f64 FMA/s", rate / 1e9);
    rate
}

/// f64 FMAs per second of the batch kernel over a chunk of `groups` groups, taken
/// `slice` groups at a time with `pairs` pairs of queries passing over each slice (as the
/// scan cuts a tile), `chunks` times, the best of 5 runs. The data stays in cache.
fn pair_kernel_rate(groups: usize, slice: usize, pairs: usize, chunks: usize) -> f64 {
    // Aligned to cache lines, as the catalog and the batch are.
    let mut p = aligned_zeros(CHUNK_BLOCKS * groups * TILE_F64);
    let mut q = aligned_zeros(pairs * groups * 2 * TILE_F64);
    for (i, v) in p.iter_mut().enumerate() {
        *v = (i % 7) as f64 * 1e-3;
    }
    for (i, v) in q.iter_mut().enumerate() {
        *v = (i % 5) as f64 * 1e-3;
    }
    let kernel = Kernel::detect();
    let mut sums = vec![[TileSums::default(); 2]; pairs];
    let at = |g: usize| g * CHUNK_BLOCKS * TILE_F64;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..chunks {
            for first in (0..groups).step_by(slice) {
                let p = &p[at(first)..at(first + slice)];
                for (pair, two) in sums.iter_mut().enumerate() {
                    let q = &q[(pair * groups + first) * 2 * TILE_F64..];
                    kernel.mac_tile_pair(std::hint::black_box(q), 2 * TILE_F64, p, two, &[]);
                }
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&sums);
    // Per group and pair: 2 queries x CHUNK_BLOCKS blocks x 4 FMAs on TILE points.
    let fmas = chunks as f64 * (pairs * groups) as f64 * (2 * CHUNK_BLOCKS * 4 * TILE) as f64;
    fmas / best
}

/// Criterion for slow, noisy measurements: ten samples of equal size.
pub fn criterion(measurement_seconds: u64) -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(measurement_seconds))
        .configure_from_args()
}

/// Flat sampling: every sample runs the same number of iterations (slow iterations).
pub fn flat(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.sampling_mode(SamplingMode::Flat);
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Criterion's median of a benchmark run in this process, seconds.
pub fn median(group: &str, name: &str) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(name)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64().map(|ns| ns * 1e-9)
}

/// The machine the run is on, as far as the process can tell.
pub fn machine() -> records::Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let flags = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .unwrap_or_default();
    let simd: Vec<String> = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512ifma"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .map(String::from)
        .collect();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        })
        .map(|kb| kb / (1 << 20) as f64);
    records::Machine {
        cpu,
        simd,
        threads: rayon::current_num_threads(),
        memory_gib,
        tfhe_avx512_kernels: cfg!(feature = "avx512"),
    }
}

/// Where a file of the benchmarks' records goes.
pub fn record_path(file: &str) -> PathBuf {
    let dir = target_dir().join("blindscore-bench");
    std::fs::create_dir_all(&dir).expect("create the record directory");
    dir.join(file)
}

/// Leave this benchmark's figures for the report.
pub fn record(bench: &str, value: &impl serde::Serialize) {
    let path = record_path(&format!("{bench}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json"))
        .expect("write the record");
    eprintln!("figures written to {}", path.display());
}

/// A one-thread rayon pool, for the one-thread figures.
pub fn one_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool")
}

/// Human size of a catalog: 10k, 100k, 1M.
pub fn items_label(items: usize) -> String {
    match items {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}M", n >> 20),
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

/// One pass as the service runs it: the encoded queries checked, then scored together.
pub fn checked_pass(
    served: &ServedCatalog,
    messages: &[axum::body::Bytes],
) -> Vec<blindscore_server::scan::ResponseMessage> {
    let checked: Vec<blindscore_server::CheckedQuery> = messages
        .iter()
        .map(|q| served.check_query(q.clone()).expect("a valid query"))
        .collect();
    served.score(&checked)
}

/// Seal `query` for `prepared`, send it with the real client, decrypt: the sealed bytes
/// sent and the number of scores that differ from the plaintext dot products of `catalog`.
pub async fn send_checked(
    client: &blindscore_client::Ranker,
    prepared: &PreparedCatalog,
    catalog: &QuantizedCatalog,
    query: &[i32],
) -> (Vec<u8>, usize) {
    let sealed = prepared.seal_quantized(query).expect("seal");
    let bytes = sealed.bytes.clone();
    let response = client.send(prepared, sealed.bytes).await.expect("send");
    let scores = sealed
        .pending
        .decrypt(prepared, &response)
        .expect("decrypt");
    let expected = catalog.plaintext_scores(query);
    assert_eq!(scores.len(), expected.len());
    let wrong = scores.iter().zip(&expected).filter(|(a, b)| a != b).count();
    (bytes, wrong)
}

/// f64 FMAs per second of the batch kernel on one tile of a 16-query pass at d = 128 as the
/// scan walks it (a chunk of the catalog a slice of groups at a time, the 8 pairs of
/// queries passing over each slice), with the tile's 256 KiB of query vectors and the
/// chunk's 96 KiB held in cache: the scan's own loop, with no catalog streaming from
/// memory. Its requests ahead and its stores of the sums are left out.
pub fn batch_kernel_rate_on_a_tile() -> f64 {
    // The scan's cut at d = 128, column layout, 16 queries: 128 groups, the evaluator's
    // slice of 32 groups (GROUP_SLICE, kept in step by hand), 8 pairs of queries.
    let rate = pair_kernel_rate(128, 32, 8, 2_000);
    eprintln!(
        "batch kernel on a tile of a 16-query pass, in cache: {:.1} G f64 FMA/s",
        rate / 1e9
    );
    rate
}
