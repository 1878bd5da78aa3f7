//! End to end over loopback HTTP with the real server and the real client: encrypt, send,
//! score, return, decrypt, rank.
//!
//! * 100k x 128 with the operator's defaults (widest values the budget allows, the cost
//!   model's layout): cold (a new client that fetches the catalog's public data first) and
//!   warm (cached), and the warm query's three steps;
//! * 4,096 x 128, the shape Apple's PNNS publishes figures for, warm, once per layout the
//!   cost model considers, with the server's own scoring time beside it.
//!
//! Each beside the plaintext int8 scan of a catalog of the same shape, in the same run.
//! `cargo bench --bench end_to_end`; figures go to `target/blindscore-bench/end_to_end.json`.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use blindscore_client::Ranker;
use blindscore_common::api::Normalisation;
use blindscore_common::catalog::candidate_layouts;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::Layout;
use blindscore_server::load::{quantize_rows, LoadedItems};
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use criterion::BatchSize;
use support::records::{
    ClientBytes, EndToEndCatalog, EndToEndRecord, PnnsLayout, PnnsShape, ServedShape,
};
use support::{unit_rows, Int8Catalog, Limits};

const D: usize = 128;
const K: usize = 10;

fn items(count: usize) -> LoadedItems {
    let ids = (0..count).map(|i| format!("item-{i}")).collect();
    quantize_rows(ids, &unit_rows(count, D, 5), D, 16, Normalisation::L2).expect("valid rows")
}

/// Start the real server on a loopback port with one catalog, "bench".
fn start(
    rt: &tokio::runtime::Runtime,
    count: usize,
    layout: Option<Layout>,
) -> (String, ServedShape) {
    // The benchmark's one client sends thousands of requests: no per-address limit.
    let state = AppState::new(ServiceConfig {
        layout,
        rate_limit: None,
        ..ServiceConfig::default()
    });
    let started = Instant::now();
    let entry = state
        .build_and_install("bench", items(count), &SpaceDeclaration::default())
        .expect("catalog fits the budget");
    let load_seconds = started.elapsed().as_secs_f64();
    let shape = *entry.shape();
    let served = Arc::clone(
        entry
            .served()
            .expect("the server scans this catalog itself"),
    );
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(blindscore_server::http::serve(
            listener,
            state,
            None,
            std::future::pending(),
        ));
        format!("http://{addr}")
    });
    // The server's own time for one query, without HTTP (one thread).
    let prepared = support::prepare(&served);
    let query = prepared
        .seal_quantized(&support::random_query(D, 1))
        .expect("encrypt");
    let one = support::one_thread();
    let server_seconds = (0..20)
        .map(|_| {
            let t = Instant::now();
            one.install(|| served.score_encoded(&query.bytes))
                .expect("score");
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    let info = ServedShape {
        items: count,
        dimension: D,
        layout: shape.layout.to_string(),
        group_size: shape.layout.group_size(),
        catalog_bits: shape.catalog_bits,
        query_bits: shape.query_bits,
        load_seconds,
        server_seconds_t1_best_of_20: server_seconds,
    };
    (url, info)
}

fn main() {
    let limits = Limits::measure();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Catalog versions start their batching tasks on this runtime.
    let _runtime = rt.enter();
    let preferences: Vec<f32> = unit_rows(1, D, 99);
    let none = HashSet::new();
    let mut c = support::criterion(5);

    // 100k x 128 with the defaults.
    let catalog_100k = {
        let count = 100_000;
        eprintln!("== {count} x {D}: loading ...");
        let (url, served) = start(&rt, count, None);
        let reference = Int8Catalog::new(count, D, 1);
        let q8 = support::random_query_i8(D, 2);
        let mut plain = vec![0i32; count];
        let warm = Ranker::new(&url);
        let top = rt
            .block_on(warm.rank("bench", &preferences, K))
            .expect("rank");
        assert_eq!(top.len(), K);
        let state = rt.block_on(warm.prepare("bench")).expect("prepare");
        let cost = state.cost();
        let group = "end_to_end_100kx128";
        let mut g = c.benchmark_group(group);
        support::flat(&mut g);
        g.bench_function("plaintext_t1", |b| {
            b.iter(|| reference.scan(std::hint::black_box(&q8), &mut plain))
        });
        g.bench_function("warm", |b| {
            b.iter(|| {
                rt.block_on(warm.rank("bench", &preferences, K))
                    .expect("rank")
            })
        });
        g.bench_function("cold", |b| {
            b.iter(|| {
                let fresh = Ranker::new(&url);
                rt.block_on(fresh.rank("bench", &preferences, K))
                    .expect("rank")
            })
        });
        g.bench_function("warm_step_encrypt", |b| {
            b.iter(|| state.seal(&preferences, None).expect("seal"))
        });
        g.bench_function("warm_step_http_and_scoring", |b| {
            b.iter_batched(
                || state.seal(&preferences, None).expect("seal"),
                |sealed| rt.block_on(warm.send(&state, sealed.bytes)).expect("send"),
                BatchSize::PerIteration,
            )
        });
        let response = {
            let sealed = state.seal(&preferences, None).expect("seal");
            rt.block_on(warm.send(&state, sealed.bytes)).expect("send")
        };
        g.bench_function("warm_step_decrypt_rank", |b| {
            b.iter_batched(
                || state.seal(&preferences, None).expect("seal"),
                |sealed| sealed.pending.open(&state, &response, K, &none),
                BatchSize::PerIteration,
            )
        });
        g.finish();
        let m = |name: &str| support::median(group, name);
        EndToEndCatalog {
            served,
            bytes: client_bytes(&cost),
            plaintext_t1_seconds: m("plaintext_t1"),
            warm_seconds: m("warm"),
            cold_seconds: m("cold"),
            warm_step_encrypt_seconds: m("warm_step_encrypt"),
            warm_step_http_and_scoring_seconds: m("warm_step_http_and_scoring"),
            warm_step_decrypt_rank_seconds: m("warm_step_decrypt_rank"),
        }
    };

    // Apple PNNS's shape, every layout.
    let pnns = {
        let count = 4096;
        let reference = Int8Catalog::new(count, D, 1);
        let q8 = support::random_query_i8(D, 2);
        let mut plain = vec![0i32; count];
        let group = "end_to_end_pnns_4096x128";
        let mut g = c.benchmark_group(group);
        g.bench_function("plaintext_t1", |b| {
            b.iter(|| reference.scan(std::hint::black_box(&q8), &mut plain))
        });
        let mut layouts = Vec::new();
        for layout in candidate_layouts(DEFAULT_PARAMS, D) {
            eprintln!("== {count} x {D}, {layout}: loading ...");
            let (url, served) = start(&rt, count, Some(layout));
            let ranker = Ranker::new(&url);
            let cost = rt.block_on(ranker.cost("bench")).expect("cost");
            let name = format!("warm_b{}", layout.group_size());
            g.bench_function(&name, |b| {
                b.iter(|| {
                    rt.block_on(ranker.rank("bench", &preferences, K))
                        .expect("rank")
                })
            });
            layouts.push(PnnsLayout {
                served,
                bytes: client_bytes(&cost),
                warm_seconds: support::median(group, &name),
            });
        }
        g.finish();
        PnnsShape {
            plaintext_t1_seconds: support::median(group, "plaintext_t1"),
            layouts,
        }
    };
    c.final_summary();
    support::record(
        "end_to_end",
        &EndToEndRecord {
            machine: support::machine(),
            limits: limits.record(),
            catalog_100k,
            pnns_4096x128: pnns,
        },
    );
}

/// What the SDK reports a client pays.
fn client_bytes(cost: &blindscore_client::core::QueryCost) -> ClientBytes {
    ClientBytes {
        bytes_up: cost.up,
        bytes_down: cost.down,
        bytes_once_per_version: cost.once_per_version,
    }
}
