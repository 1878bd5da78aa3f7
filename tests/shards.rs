//! Catalog artefacts, shards and the router, in process on loopback with the real client:
//! an artefact serves what its source files serve (the same version and bytes), shards
//! joined by the router answer byte for byte what the whole catalog answers (every score
//! exact, worst cases included), damaged files are refused by name, and a missing or wrong
//! shard gives 503 `shard_unavailable`, never a partial response.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use blindscore_client::{ClientError, Ranker};
use blindscore_common::api::{ErrorBody, ErrorCode};
use blindscore_common::budget::max_abs_for_bits;
use blindscore_common::{Layout, QuantizedCatalog};
use blindscore_server::artefact::{install_artefact, routed_entry, write_artefact, Artefact};
use blindscore_server::http::serve;
use blindscore_server::load::LoadedItems;
use blindscore_server::serving::{plan_entry, AppState, ServiceConfig, SpaceDeclaration};
use common::*;

const D: usize = 32;

fn config(layout: Layout) -> ServiceConfig {
    ServiceConfig {
        layout: Some(layout),
        rate_limit: None,
        ..ServiceConfig::default()
    }
}

/// Values at their bound with random signs: the largest block norms the width allows.
fn worst_case_catalog(items: usize, d: usize, bits: u32, seed: u64) -> QuantizedCatalog {
    let max = max_abs_for_bits(bits) as i16;
    let mut rng = SplitMix(seed);
    let values = (0..items * d)
        .map(|_| if rng.next() & 1 == 0 { max } else { -max })
        .collect();
    QuantizedCatalog::new(d, bits, values).unwrap()
}

fn items(catalog: &QuantizedCatalog) -> LoadedItems {
    LoadedItems {
        ids: (0..catalog.items()).map(|i| format!("item-{i}")).collect(),
        catalog: catalog.clone(),
        scales: (0..catalog.items())
            .map(|i| 1.0 + i as f32 / 1000.0)
            .collect(),
    }
}

fn declaration(catalog: &QuantizedCatalog) -> SpaceDeclaration {
    SpaceDeclaration {
        bits: Some(catalog.bits()),
        ..SpaceDeclaration::default()
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("blindscore-shards-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Build `catalog` into an artefact of `shards` shards at `dir/name`.
fn build(
    dir: &Path,
    name: &str,
    catalog: &QuantizedCatalog,
    layout: Layout,
    shards: usize,
) -> PathBuf {
    let out = dir.join(name);
    let plan = plan_entry(
        "shop",
        items(catalog),
        &declaration(catalog),
        &config(layout),
    )
    .unwrap();
    write_artefact(&out, &plan, shards, &|_| {}).unwrap();
    out
}

async fn listen(state: Arc<AppState>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state, None, std::future::pending()));
    format!("http://{addr}")
}

/// Serve one shard of an artefact on a loopback port.
async fn start_shard(dir: &Path, shard: usize) -> String {
    let state = AppState::new(ServiceConfig {
        rate_limit: None,
        ..ServiceConfig::default()
    });
    let artefact = Artefact::open(dir).unwrap();
    install_artefact(&state, &artefact, Some(shard)).unwrap();
    listen(state).await
}

/// A router for an artefact whose shards are at `urls`.
async fn start_router(dir: &Path, urls: Vec<String>, deadline: Duration) -> String {
    let state = AppState::new(config(Layout::Column));
    let artefact = Artefact::open(dir).unwrap();
    let entry = routed_entry(&artefact, urls, deadline, 8).unwrap();
    state
        .registry
        .install(&artefact.manifest().catalog, Arc::new(entry));
    listen(state).await
}

async fn get(url: String) -> Vec<u8> {
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

async fn post(url: String, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The public artefacts of the current version at `base`.
async fn artefacts(base: &str) -> (String, Vec<Vec<u8>>) {
    let version = current_version(base, "shop").await;
    let mut all = Vec::new();
    for kind in ["description", "hint", "ids", "scales"] {
        all.push(get(format!("{base}/v1/catalogs/shop/versions/{version}/{kind}")).await);
    }
    (version, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_catalogs_answer_byte_for_byte_what_the_whole_catalog_answers() {
    let dir = scratch("bytes");
    for (case, catalog, layout, shards) in [
        (
            "worst-column",
            worst_case_catalog(5000, D, 8, 1),
            Layout::Column,
            2,
        ),
        (
            "worst-grouped",
            worst_case_catalog(3000, D, 10, 2),
            Layout::Grouped(8),
            3,
        ),
        (
            "random-grouped",
            random_catalog(1000, D, 12, 3),
            Layout::Grouped(32),
            4,
        ),
    ] {
        // The source files' way: quantize, plan and build in the server.
        let source_state = AppState::new(config(layout));
        source_state
            .build_and_install("shop", items(&catalog), &declaration(&catalog))
            .unwrap();
        let source = listen(source_state).await;
        let expected = artefacts(&source).await;

        // The artefact, whole.
        let whole_dir = build(&dir, &format!("{case}-whole"), &catalog, layout, 1);
        let whole_state = AppState::new(config(layout));
        install_artefact(&whole_state, &Artefact::open(&whole_dir).unwrap(), None).unwrap();
        let whole = listen(whole_state).await;
        assert_eq!(artefacts(&whole).await, expected, "{case}: whole artefact");

        // The artefact in shards, behind the router.
        let sharded = build(&dir, &format!("{case}-sharded"), &catalog, layout, shards);
        let manifest = Artefact::open(&sharded).unwrap().manifest().clone();
        assert_eq!(manifest.shards.len(), shards);
        let mut urls = Vec::new();
        for s in 0..shards {
            urls.push(start_shard(&sharded, s).await);
        }
        let router = start_router(&sharded, urls.clone(), Duration::from_secs(10)).await;
        assert_eq!(artefacts(&router).await, expected, "{case}: router");
        // A shard serves scores only.
        let version = &expected.0;
        let r = reqwest::get(format!(
            "{}/v1/catalogs/shop/versions/{version}/hint",
            urls[0]
        ))
        .await
        .unwrap();
        assert_eq!(r.status(), 404);

        let client = Ranker::new(&router);
        let prepared = client.prepare("shop").await.unwrap();
        let max = max_abs_for_bits(8) as i32;
        for (q, query) in [
            random_query(D, 8, 7),
            (0..D)
                .map(|j| if j % 3 == 0 { -max } else { max })
                .collect(),
        ]
        .into_iter()
        .enumerate()
        {
            let sealed = prepared.seal_quantized(&query).unwrap();
            let routed = client.send(&prepared, sealed.bytes.clone()).await.unwrap();
            let direct = post(
                format!("{source}/v1/catalogs/shop/versions/{version}/score"),
                sealed.bytes.clone(),
            )
            .await;
            assert_eq!(direct.status(), 200);
            assert!(
                routed == direct.bytes().await.unwrap(),
                "{case}, query {q}: the router's joined response differs from the whole catalog's"
            );
            let scores = sealed.pending.decrypt(&prepared, &routed).unwrap();
            assert_eq!(scores.len(), catalog.items());
            assert_eq!(
                wrong_scores(&catalog, &query, &scores),
                0,
                "{case}, query {q}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_slow_or_wrong_shard_gives_503_never_a_partial_response() {
    let dir = scratch("faults");
    let catalog = random_catalog(3000, D, 8, 4);
    let sharded = build(&dir, "a", &catalog, Layout::Column, 2);
    let good = start_shard(&sharded, 0).await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // A shard of another catalog version (other content) at the right index.
    let other = build(&dir, "b", &random_catalog(3000, D, 8, 5), Layout::Column, 2);
    let wrong = start_shard(&other, 1).await;
    // A shard that accepts the connection and never answers.
    let silent = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = l.accept().await {
                held.push(socket);
            }
        });
        format!("http://{addr}")
    };
    for (what, url) in [("missing", closed), ("wrong", wrong), ("slow", silent)] {
        let router = start_router(&sharded, vec![good.clone(), url], Duration::from_secs(2)).await;
        let client = Ranker::new(&router);
        let prepared = client.prepare("shop").await.unwrap();
        let sealed = prepared.seal_quantized(&random_query(D, 8, 1)).unwrap();
        let version = prepared.catalog().version.to_hex();
        let started = std::time::Instant::now();
        let r = post(
            format!("{router}/v1/catalogs/shop/versions/{version}/score"),
            sealed.bytes.clone(),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{what}: within the deadline"
        );
        assert_eq!(r.status(), 503, "{what}");
        assert_eq!(r.headers()["retry-after"], "1", "{what}");
        let body: ErrorBody = r.json().await.unwrap();
        assert_eq!(body.code, ErrorCode::ShardUnavailable, "{what}");
        assert!(body.message.contains("shard 1"), "{what}: {}", body.message);
        // The client's typed error.
        let err = client.send(&prepared, sealed.bytes).await.unwrap_err();
        assert!(
            matches!(err, ClientError::ShardUnavailable { .. }),
            "{what}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_or_mismatched_files_are_refused_with_the_file_named() {
    let dir = scratch("damage");
    let catalog = random_catalog(3000, D, 8, 6);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let fresh = |name: &str| build(&dir, name, &catalog, Layout::Column, 2);
    let serve_err = |artefact: &Path, shard: Option<usize>| {
        let state = AppState::new(config(Layout::Column));
        let opened = Artefact::open(artefact).map_err(|e| e.to_string())?;
        install_artefact(&state, &opened, shard)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let flip = |path: &Path, at: usize| {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at] ^= 1;
        std::fs::write(path, bytes).unwrap();
    };

    // An intact artefact serves whole and as each shard.
    let intact = fresh("intact");
    serve_err(&intact, None).unwrap();
    serve_err(&intact, Some(1)).unwrap();
    assert!(serve_err(&intact, Some(2)).is_err(), "no shard 2");

    // A damaged file, by its digest.
    for file in [
        "shard-001/items.i16",
        "shard-001/hint.bin",
        "shard-000/ids.json",
        "shard-000/scales.f32",
    ] {
        let a = fresh(&format!("flip-{}", file.replace('/', "-")));
        flip(&a.join(file), 5);
        let shard = if file.starts_with("shard-001") { 1 } else { 0 };
        for target in [None, Some(shard)] {
            let err = serve_err(&a, target).unwrap_err();
            assert!(
                err.contains(file) && err.contains("SHA-256"),
                "{file} {target:?}: {err}"
            );
        }
    }

    // Hint blocks that match their recorded digest but not the items: recomputed and
    // compared at start-up.
    let a = fresh("hint");
    let hint = a.join("shard-001/hint.bin");
    flip(&hint, 100);
    let text = std::fs::read_to_string(a.join("manifest.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let digest = blindscore_common::digest::hex(&blindscore_common::digest::sha256(
        &std::fs::read(&hint).unwrap(),
    ));
    manifest["shards"][1]["hint"]["sha256"] = digest.into();
    std::fs::write(a.join("manifest.json"), manifest.to_string()).unwrap();
    let err = serve_err(&a, Some(1)).unwrap_err();
    assert!(err.contains("hint blocks differ"), "{err}");
    let err = serve_err(&a, None).unwrap_err();
    assert!(err.contains("hint"), "{err}");

    // A manifest whose version is not its items'.
    let a = fresh("version");
    let text = std::fs::read_to_string(a.join("manifest.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["version"] = "00".repeat(32).into();
    std::fs::write(a.join("manifest.json"), manifest.to_string()).unwrap();
    let err = serve_err(&a, None).unwrap_err();
    assert!(
        err.contains("manifest.json") && err.contains("version"),
        "{err}"
    );

    // A manifest whose budget is not the one its parameters give.
    let a = fresh("budget");
    let text = std::fs::read_to_string(a.join("manifest.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["delta_log2"] = (manifest["delta_log2"].as_u64().unwrap() - 1).into();
    std::fs::write(a.join("manifest.json"), manifest.to_string()).unwrap();
    let err = serve_err(&a, Some(0)).unwrap_err();
    assert!(
        err.contains("manifest.json") && err.contains("budget"),
        "{err}"
    );

    // Shard ranges that are not whole units.
    let a = fresh("ranges");
    let text = std::fs::read_to_string(a.join("manifest.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["shards"][1]["first_item"] = 2000.into();
    std::fs::write(a.join("manifest.json"), manifest.to_string()).unwrap();
    let err = serve_err(&a, Some(0)).unwrap_err();
    assert!(err.contains("shard 1 holds items"), "{err}");

    // An existing output directory is never overwritten.
    let plan = plan_entry(
        "shop",
        items(&catalog),
        &declaration(&catalog),
        &config(Layout::Column),
    )
    .unwrap();
    assert!(write_artefact(&intact, &plan, 1, &|_| {}).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
