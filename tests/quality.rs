//! Ranking quality on the real sets, end to end through the server: the widths the noise
//! budget chooses pay off in recall, worst-case values at those widths still decrypt
//! exactly, and widths shrink as d grows.

mod common;

use std::collections::HashMap;

use blindscore_cli::quality::evaluate;
use blindscore_client::Ranker;
use blindscore_common::api::Normalisation;
use blindscore_common::catalog::widest_catalog;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{Layout, LayoutChoice, QuantizedCatalog};
use blindscore_server::load::quantize_rows;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use blindscore_server::{CatalogSource, ServedCatalog};
use common::{prepare, SplitMix};

fn matrix(path: &str) -> (Vec<f32>, usize) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let cols = npy.shape()[1] as usize;
    (npy.into_vec::<f32>().unwrap(), cols)
}

async fn check_real_set(set: &str, dimension_scales: bool) {
    let (items, d) = matrix(&format!("data/{set}/items.npy"));
    let (queries, _) = matrix(&format!("data/{set}/queries.npy"));
    let ids: Vec<String> = std::fs::read_to_string(format!("data/{set}/ids.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let loaded = quantize_rows(ids.clone(), &items, d, 16, Normalisation::L2).unwrap();
    // One client ranking 400 queries in a row: no per-address limit.
    let state = AppState::new(ServiceConfig {
        rate_limit: None,
        ..ServiceConfig::default()
    });
    let declaration = SpaceDeclaration {
        dimension_scales,
        ..SpaceDeclaration::default()
    };
    let entry = state
        .build_and_install("real", loaded, &declaration)
        .unwrap();
    assert_eq!(entry.info().dimension_scales, dimension_scales);
    let shape = *entry.shape();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(blindscore_server::http::serve(
        listener,
        state,
        None,
        std::future::pending(),
    ));
    let ranker = Ranker::new(&format!("http://{addr}"));
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut rankings = Vec::new();
    for q in queries.chunks_exact(d) {
        let ranked = ranker.rank("real", q, 10).await.unwrap();
        rankings.push(
            ranked
                .iter()
                .map(|r| index[r.id.as_str()])
                .collect::<Vec<_>>(),
        );
    }
    let report = evaluate(&items, &queries, d, &rankings, 10, 1e-3);
    println!(
        "{set} (dimension scales: {dimension_scales}): {} queries, {}-bit catalog, {}-bit queries, Delta 2^{}, {}: recall@10 {:.4}, tolerant {:.4}, score ratio {:.5}",
        report.queries, shape.catalog_bits, shape.query_bits, shape.budget.delta_log2, shape.layout, report.recall, report.tolerant_recall, report.score_ratio
    );
    assert!(report.recall >= 0.95, "{report:?}");
    assert!(report.tolerant_recall >= 0.99, "{report:?}");
    worst_case_at(
        shape.layout,
        d,
        shape.catalog_bits,
        shape.query_bits,
        shape.block_norm_sq,
    );
}

/// Values at their bounds (as many per item as the budget's block norm allows, the same in
/// every block) and a query at its bound decrypt exactly (the noise and its margin are
/// measured by the client crate's noise tests, which can see it).
fn worst_case_at(layout: Layout, d: usize, bits: u32, query_bits: u32, norm_sq: u64) {
    let max = (1i32 << (bits - 1)) - 1;
    let qmax = (1i32 << (query_bits - 1)) - 1;
    let per_block = DEFAULT_PARAMS.polynomial_size.0 / layout.group_size();
    let per_item =
        ((norm_sq / per_block as u64) / (max as u64 * max as u64)).clamp(1, d as u64) as usize;
    let mut rng = SplitMix(5);
    let block: Vec<i16> = (0..per_block)
        .flat_map(|_| {
            let mut row = vec![0i16; d];
            for v in row.iter_mut().take(per_item) {
                *v = if rng.next() & 1 == 1 {
                    max as i16
                } else {
                    -max as i16
                };
            }
            row
        })
        .collect();
    let catalog = QuantizedCatalog::new(d, bits, block.repeat(3)).unwrap();
    let served = ServedCatalog::build(
        &CatalogSource {
            catalog_id: "worst",
            params: DEFAULT_PARAMS,
            catalog: &catalog,
            scales: &[],
            query_bits,
            layout: LayoutChoice::Fixed(layout),
            item_data: &[],
        },
        &|_, _, _| {},
    )
    .unwrap();
    let prepared = prepare(&served);
    let query: Vec<i32> = (0..d)
        .map(|_| if rng.next() & 1 == 1 { qmax } else { -qmax })
        .collect();
    let encrypted = prepared.seal_quantized(&query).unwrap();
    let response = served.score_encoded(&encrypted.bytes).unwrap();
    let scores = encrypted.pending.decrypt(&prepared, &response).unwrap();
    assert_eq!(scores, catalog.plaintext_scores(&query));
    println!(
        "  worst case at {bits}-bit values ({per_item} of {d} at the bound per item), {query_bits}-bit query: exact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_set_at_128_dims() {
    check_real_set("debian-128", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_set_at_384_dims() {
    check_real_set("debian-384", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_set_at_128_dims_with_dimension_scales() {
    check_real_set("debian-128", true).await;
}

#[test]
fn widths_shrink_as_d_grows() {
    let mut last = u32::MAX;
    for d in [32usize, 64, 128, 256, 384, 512] {
        let mut rng = SplitMix(d as u64);
        let rows: Vec<f32> = (0..4096 * d).map(|_| rng.value(1000) as f32).collect();
        let ids = (0..4096).map(|i| i.to_string()).collect();
        let loaded = quantize_rows(ids, &rows, d, 16, Normalisation::L2).unwrap();
        let (shape, _, _) = widest_catalog(
            DEFAULT_PARAMS,
            &loaded.catalog,
            8,
            LayoutChoice::Fixed(Layout::Column),
        )
        .unwrap();
        println!(
            "d = {d}: {}-bit catalog values, Delta 2^{}",
            shape.catalog_bits, shape.budget.delta_log2
        );
        assert!(shape.catalog_bits <= last, "widths must not grow with d");
        last = shape.catalog_bits;
    }
    assert!(last >= 6, "d = 512 must still fit at a useful width");
}

#[test]
fn a_catalog_that_cannot_fit_is_refused_naming_the_limit() {
    let d = 4096;
    let mut rng = SplitMix(3);
    let rows: Vec<f32> = (0..2048 * d).map(|_| rng.value(1000) as f32).collect();
    let ids = (0..2048).map(|i| i.to_string()).collect();
    let loaded = quantize_rows(ids, &rows, d, 16, Normalisation::L2).unwrap();
    let err = widest_catalog(
        DEFAULT_PARAMS,
        &loaded.catalog,
        16,
        LayoutChoice::Fixed(Layout::Column),
    )
    .unwrap_err();
    let message = err.to_string();
    println!("{message}");
    assert!(
        message.contains("d = 4096") && message.contains("does not fit"),
        "{message}"
    );
}
