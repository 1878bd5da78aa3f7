//! The layout chosen by what a client pays, measured as the bytes a client actually
//! transfers from the real server, and the catalog info's statement of when ranking on the
//! device would cost a client fewer bytes.

mod common;

use blindscore_common::api::{CatalogInfo, Normalisation};
use blindscore_common::catalog::{candidate_layouts, widest_catalog};
use blindscore_common::objective::{allowed_seconds, Objective};
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{CatalogShape, Layout, LayoutChoice};
use blindscore_demo::DemoCatalog;
use blindscore_server::http::serve;
use blindscore_server::load::{demo_items, quantize_rows, LoadedItems};
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::*;

/// L2-normalised float rows loaded as the server loads them (16 bits, narrowed later).
fn float_items(items: usize, d: usize, seed: u64) -> LoadedItems {
    let ids = (0..items).map(|i| format!("item-{i}")).collect();
    quantize_rows(ids, &unit_rows(items, d, seed), d, 16, Normalisation::L2).unwrap()
}

fn config() -> ServiceConfig {
    ServiceConfig {
        rate_limit: None,
        ..ServiceConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_catalogs_first_query_is_what_its_info_says_and_at_most_1_2_mb() {
    let state = AppState::new(config());
    let items = demo_items(&DemoCatalog::load().unwrap()).unwrap();
    let builder = state.clone();
    tokio::task::spawn_blocking(move || {
        builder.build_and_install("demo", items, &SpaceDeclaration::default())
    })
    .await
    .unwrap()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state, None, std::future::pending()));

    // Everything a new client transfers for its first ranking, counted on the wire.
    let http = reqwest::Client::new();
    let info: CatalogInfo = http
        .get(format!("{base}/v1/catalogs/demo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v = &info.current;
    let at = format!("{base}/v1/catalogs/demo/versions/{}", v.version);
    let mut artefacts = blindscore_client::core::Artifacts::default();
    for (part, bytes) in [
        ("description", &mut artefacts.description),
        ("hint", &mut artefacts.hint),
        ("ids", &mut artefacts.ids),
        ("scales", &mut artefacts.scales),
    ] {
        *bytes = http
            .get(format!("{at}/{part}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
    }
    let prepared = blindscore_client::core::PreparedCatalog::check(
        "demo",
        v.embedding_space.clone(),
        &artefacts,
        &blindscore_client::core::Limits::default(),
    )
    .unwrap();
    let query = random_query(v.dimension, 8, 3);
    let sealed = prepared.seal_quantized(&query).unwrap();
    let up = sealed.bytes.len();
    let response = http
        .post(format!("{at}/score"))
        .body(sealed.bytes)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let scores = sealed.pending.decrypt(&prepared, &response).unwrap();
    assert_eq!(scores.len(), v.items);
    let transferred = artefacts.len() + up + response.len();
    assert_eq!(
        v.first_query_bytes, transferred,
        "the info states what is transferred"
    );
    assert_eq!(v.later_query_bytes, up + response.len());
    // The target: the hint, the query and its response at most 1.2 MB (the ids and
    // scales, about a quarter of a megabyte here, come with either route).
    let hint_up_down = artefacts.hint.len() + up + response.len();
    assert!(
        hint_up_down <= 1_200_000,
        "the demo's first query: {hint_up_down} bytes of hint, query and response ({})",
        v.layout
    );
    // Ranking the demo on the device would cost fewer bytes over Q queries; the info says so.
    let alternative = v.plaintext_alternative.as_ref().unwrap();
    assert_eq!(
        alternative.queries_per_version,
        Objective::default().queries_per_version
    );
    assert_eq!(
        alternative.encryption_saves_bytes,
        alternative.encrypted_bytes < alternative.plaintext_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30k_x_384_catalog_costs_at_most_3_5_mb_first_and_500_kb_later() {
    let state = AppState::new(config());
    let builder = state.clone();
    let entry = tokio::task::spawn_blocking(move || {
        builder.build_and_install(
            "text",
            float_items(30_000, 384, 9),
            &SpaceDeclaration::default(),
        )
    })
    .await
    .unwrap()
    .unwrap();
    let info = entry.info();
    assert!(
        info.first_query_bytes <= 3_500_000 && info.later_query_bytes <= 500_000,
        "{}: first {} later {}",
        info.layout,
        info.first_query_bytes,
        info.later_query_bytes
    );
    // At this size the encrypted route is the cheaper one for the client.
    assert!(info.plaintext_alternative.unwrap().encryption_saves_bytes);
}

#[test]
fn a_tiny_catalog_is_stated_not_worth_encrypting() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in = rt.enter();
    let state = AppState::new(config());
    let entry = state
        .build_and_install(
            "tiny",
            float_items(300, 16, 4),
            &SpaceDeclaration::default(),
        )
        .unwrap();
    let alternative = entry.info().plaintext_alternative.unwrap();
    assert!(
        !alternative.encryption_saves_bytes,
        "300 x 16: {alternative:?}"
    );
    assert!(alternative.plaintext_bytes < alternative.encrypted_bytes);
}

#[test]
fn a_large_catalog_keeps_the_servers_throughput_and_the_group_size_flag_overrides() {
    let items = float_items(1_000_000, 128, 2);
    let objective = Objective::default();
    let (shape, narrow, _) = widest_catalog(
        DEFAULT_PARAMS,
        &items.catalog,
        8,
        LayoutChoice::Auto(objective),
    )
    .unwrap();
    let candidates: Vec<_> = candidate_layouts(DEFAULT_PARAMS, 128)
        .into_iter()
        .filter_map(|l| {
            CatalogShape::for_catalog(DEFAULT_PARAMS, &narrow, 8, LayoutChoice::Fixed(l)).ok()
        })
        .map(|s| s.candidate())
        .collect();
    let column = candidates
        .iter()
        .find(|c| c.layout == Layout::Column)
        .unwrap()
        .server_seconds
        .unwrap();
    let chosen = shape.candidate().server_seconds.unwrap();
    // Within the allowance, so at least 1 / 1.1 of the column layout's throughput.
    assert!(chosen <= allowed_seconds(&candidates).unwrap());
    assert!(
        column / chosen >= 0.9,
        "{}: {chosen} s against {column} s",
        shape.layout
    );
    // An operator's fixed layout is kept.
    let fixed = widest_catalog(
        DEFAULT_PARAMS,
        &items.catalog,
        8,
        LayoutChoice::Fixed(Layout::Grouped(8)),
    )
    .unwrap();
    assert_eq!(fixed.0.layout, Layout::Grouped(8));
}
