//! The sans-IO client core on its own: the test fetches a real server's artefacts and
//! responses over loopback HTTP itself and hands them to the core as bytes, as a web or
//! mobile SDK with its own transport would. No `Ranker` is involved.

mod common;

use std::collections::HashSet;

use blindscore_client::core::{Artifacts, Limits, PreparedCatalog};
use blindscore_common::api::{CatalogInfo, Metric, Normalisation};
use blindscore_common::{Layout, QuantizedCatalog};
use blindscore_server::http::serve;
use blindscore_server::load::LoadedItems;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::*;

/// A server on a loopback port serving `catalog` (integer rows, unit scales) as "shop".
async fn serve_over_http(catalog: &QuantizedCatalog, layout: Layout) -> String {
    let state = AppState::new(ServiceConfig {
        layout: Some(layout),
        ..ServiceConfig::default()
    });
    let items = LoadedItems {
        ids: (0..catalog.items()).map(|i| format!("item-{i}")).collect(),
        catalog: catalog.clone(),
        scales: vec![1.0; catalog.items()],
    };
    let declaration = SpaceDeclaration {
        model: "integers".into(),
        normalisation: Normalisation::None,
        metric: Metric::Dot,
        bits: Some(catalog.bits()),
        dimension_scales: false,
    };
    state
        .build_and_install("shop", items, &declaration)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state, None, std::future::pending()));
    format!("http://{addr}")
}

async fn get(url: &str) -> Vec<u8> {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

async fn post(url: &str, body: Vec<u8>) -> Vec<u8> {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

/// Fetch the catalog info and the four artefacts as bytes and check them in the core.
async fn prepared_over_http(base: &str) -> (PreparedCatalog, String) {
    let info = CatalogInfo::parse(&get(&format!("{base}/v1/catalogs/shop")).await).unwrap();
    let vbase = format!("{base}/v1/catalogs/shop/versions/{}", info.current.version);
    let artifacts = Artifacts {
        description: get(&format!("{vbase}/description")).await,
        hint: get(&format!("{vbase}/hint")).await,
        ids: get(&format!("{vbase}/ids")).await,
        scales: get(&format!("{vbase}/scales")).await,
    };
    let prepared = PreparedCatalog::check(
        "shop",
        info.current.embedding_space.clone(),
        &artifacts,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(prepared.version().to_hex(), info.current.version);
    (prepared, vbase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_alone_decrypts_exact_scores_from_a_real_server() {
    let cases = [
        // Random values, a partial last block.
        (
            random_catalog(5000, 64, 8, 31),
            Layout::Column,
            random_query(64, 8, 32),
        ),
        (
            random_catalog(3001, 48, 8, 33),
            Layout::Grouped(4),
            random_query(48, 8, 34),
        ),
        // The worst case for the noise budget: every value and every query value at the
        // largest magnitude.
        (
            QuantizedCatalog::new(64, 8, vec![127; 4096 * 64]).unwrap(),
            Layout::Column,
            vec![127; 64],
        ),
        (
            QuantizedCatalog::new(64, 8, vec![-127; 2100 * 64]).unwrap(),
            Layout::Grouped(8),
            vec![127; 64],
        ),
    ];
    for (catalog, layout, query) in cases {
        let base = serve_over_http(&catalog, layout).await;
        let (prepared, vbase) = prepared_over_http(&base).await;
        assert_eq!(prepared.shape().layout, layout);
        let sealed = prepared.seal_quantized(&query).unwrap();
        let response = post(&format!("{vbase}/score"), sealed.bytes).await;
        let scores = sealed.pending.decrypt(&prepared, &response).unwrap();
        assert_eq!(
            wrong_scores(&catalog, &query, &scores),
            0,
            "{layout}, {} items",
            catalog.items()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_alone_opens_a_ranking_equal_to_the_plaintext_one() {
    let catalog = random_catalog(2500, 32, 8, 41);
    let base = serve_over_http(&catalog, Layout::Column).await;
    let (prepared, vbase) = prepared_over_http(&base).await;
    // A float vector that quantizes to itself at 8 bits: its largest value is 127.
    let query: Vec<i32> = random_query(32, 8, 42)
        .into_iter()
        .enumerate()
        .map(|(i, v)| if i == 0 { 127 } else { v })
        .collect();
    let floats: Vec<f32> = query.iter().map(|&v| v as f32).collect();
    let sealed = prepared.seal(&floats, Some("integers")).unwrap();
    let response = post(&format!("{vbase}/score"), sealed.bytes).await;
    let exclude: HashSet<String> = ["item-3".to_string()].into();
    let top = sealed
        .pending
        .open(&prepared, &response, 10, &exclude)
        .unwrap();
    let mut expected: Vec<(i64, usize)> = catalog
        .plaintext_scores(&query)
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| i != 3)
        .map(|(i, s)| (s, i))
        .collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let ids: Vec<String> = top.iter().map(|r| r.id.clone()).collect();
    let want: Vec<String> = expected[..10]
        .iter()
        .map(|&(_, i)| format!("item-{i}"))
        .collect();
    assert_eq!(ids, want);
    // The float score is the exact integer score times the query's quantization scale (1).
    assert_eq!(top[0].score, expected[0].0 as f64);
}
