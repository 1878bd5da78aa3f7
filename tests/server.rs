//! The HTTP service end to end: the real server on a loopback port, the real client.

mod common;

use std::sync::Arc;
use std::time::Duration;

use blindscore_client::{ClientError, Ranker};
use blindscore_common::api::Normalisation;
use blindscore_common::digest::CatalogVersion;
use blindscore_common::wire::{self, QueryMessage};
use blindscore_common::{Layout, QuantizedCatalog};
use blindscore_server::access::BearerToken;
use blindscore_server::http::serve;
use blindscore_server::load::LoadedItems;
use blindscore_server::serving::BatchConfig;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::*;

const TOKEN: &str = "test-admin-token";
/// A small upload: a refused upload is answered before its body is read, so a large one
/// could meet a closed connection.
const SMALL: &str = "{\"id\": \"x\", \"vector\": [1.0]}\n";

fn items(catalog: &QuantizedCatalog) -> LoadedItems {
    LoadedItems {
        ids: (0..catalog.items()).map(|i| format!("item-{i}")).collect(),
        catalog: catalog.clone(),
        scales: vec![1.0; catalog.items()],
    }
}

fn config() -> ServiceConfig {
    ServiceConfig {
        admin_token: Some(BearerToken::new(TOKEN).unwrap()),
        layout: Some(Layout::Column),
        grace: Duration::from_secs(30),
        // Concurrent clients on one address: no per-address limit here.
        rate_limit: None,
        ..ServiceConfig::default()
    }
}

async fn start(
    config: ServiceConfig,
    catalogs: &[(&str, &QuantizedCatalog)],
) -> (String, Arc<AppState>) {
    let state = AppState::new(config);
    for (name, catalog) in catalogs {
        state
            .build_and_install(name, items(catalog), &SpaceDeclaration::default())
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state.clone(), None, std::future::pending()));
    (format!("http://{addr}"), state)
}

fn jsonl(catalog: &QuantizedCatalog) -> String {
    (0..catalog.items())
        .map(|i| {
            let v: Vec<String> = catalog.row(i).iter().map(|x| x.to_string()).collect();
            format!("{{\"id\": \"item-{i}\", \"vector\": [{}]}}\n", v.join(","))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_scores_validators_metrics_and_bad_input() {
    let catalog = random_catalog(3000, 64, 8, 1);
    let (base, state) = start(config(), &[("books", &catalog)]).await;
    let client = Ranker::new(&base);
    let prepared = client.prepare("books").await.unwrap();
    let query = random_query(64, 8, 2);
    let encrypted = prepared.seal_quantized(&query).unwrap();
    let good = encrypted.bytes.clone();
    let response = client.send(&prepared, encrypted.bytes).await.unwrap();
    let scores = encrypted.pending.decrypt(&prepared, &response).unwrap();
    assert_eq!(wrong_scores(&catalog, &query, &scores), 0);
    assert_eq!(prepared.ids()[7], "item-7");
    assert_eq!(prepared.item_scales().len(), 3000);

    let http = reqwest::Client::new();
    let version = prepared.catalog().version.to_hex();
    let vbase = format!("{base}/v1/catalogs/books/versions/{version}");
    // Validators: strong ETag, long caching, 304 on a conditional request.
    for kind in ["hint", "ids", "scales", "description"] {
        let r = http.get(format!("{vbase}/{kind}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && !etag.starts_with("W/"));
        assert!(r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let again = http
            .get(format!("{vbase}/{kind}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{kind}");
    }

    let post = |url: String, body: Vec<u8>| {
        let http = http.clone();
        async move {
            let r = http.post(url).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
            (status, body["code"].as_str().unwrap_or("").to_string())
        }
    };
    assert_eq!(
        post(format!("{vbase}/score"), b"garbage".to_vec()).await,
        (400, "malformed_query".into())
    );
    assert_eq!(
        post(
            format!("{base}/v1/catalogs/nope/versions/{version}/score"),
            good.clone()
        )
        .await,
        (404, "unknown_catalog".into())
    );
    let gone = CatalogVersion([3; 32]).to_hex();
    assert_eq!(
        post(
            format!("{base}/v1/catalogs/books/versions/{gone}/score"),
            good.clone()
        )
        .await,
        (410, "version_gone".into())
    );
    let mut other: QueryMessage = wire::decode(&good, u64::MAX).unwrap();
    other.catalog.version = CatalogVersion([4; 32]);
    assert_eq!(
        post(format!("{vbase}/score"), wire::encode(&other)).await,
        (409, "version_mismatch".into())
    );
    let mut short: QueryMessage = wire::decode(&good, u64::MAX).unwrap();
    short.bodies.truncate(100);
    assert_eq!(
        post(format!("{vbase}/score"), wire::encode(&short)).await,
        (400, "wrong_length".into())
    );
    assert_eq!(
        post(format!("{vbase}/score"), vec![0; good.len() + 10_000]).await,
        (413, "body_too_large".into())
    );
    assert_eq!(
        post(format!("{base}/v1/nothing"), vec![]).await,
        (404, "not_found".into())
    );

    // Admin: no token, wrong token, bad catalog; the old catalog keeps serving.
    let put = |token: Option<&str>, body: String| {
        let http = http.clone();
        let url = format!("{base}/v1/admin/catalogs/books");
        let token = token.map(|t| format!("Bearer {t}"));
        async move {
            let mut req = http.put(url).body(body);
            if let Some(t) = token {
                req = req.header("authorization", t);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
            (status, body["code"].as_str().unwrap_or("").to_string())
        }
    };
    assert_eq!(
        put(None, SMALL.to_string()).await,
        (401, "unauthorized".into())
    );
    assert_eq!(
        put(Some("wrong"), SMALL.to_string()).await,
        (401, "unauthorized".into())
    );
    assert_eq!(
        put(
            Some(TOKEN),
            "{\"id\": 1, \"vector\": [1.0]}\nnot json\n".into()
        )
        .await,
        (400, "bad_catalog".into())
    );
    assert_eq!(current_version(&base, "books").await, version);
    let again = prepared.seal_quantized(&query).unwrap();
    let response = client.send(&prepared, again.bytes).await.unwrap();
    assert_eq!(again.pending.decrypt(&prepared, &response).unwrap(), scores);

    // Metrics count requests by route.
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("blindscore_queries_scored_total 2"), "{text}");
    assert!(
        text.contains("route=\"/v1/catalogs/{name}/versions/{version}/score\",status=\"200\"} 2"),
        "{text}"
    );
    assert!(
        state
            .metrics
            .requests_for("/v1/catalogs/{name}/versions/{version}/score")
            >= 8
    );
    // Readiness, transparency, OpenAPI.
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let t: serde_json::Value = http
        .get(format!("{base}/v1/transparency"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(t["logs"].as_str().unwrap().contains("Never a query"));
    let api: serde_json::Value = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(api["paths"]["/v1/catalogs/{name}/versions/{version}/score"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_is_disabled_without_a_token() {
    let catalog = random_catalog(100, 8, 8, 1);
    let (base, _) = start(ServiceConfig::default(), &[("c", &catalog)]).await;
    let r = reqwest::Client::new()
        .put(format!("{base}/v1/admin/catalogs/c"))
        .body(SMALL)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn the_same_catalog_keeps_its_version_across_restarts() {
    let catalog = random_catalog(2100, 32, 8, 9);
    let (a, _) = start(config(), &[("c", &catalog)]).await;
    let (b, _) = start(config(), &[("c", &catalog)]).await;
    let va = current_version(&a, "c").await;
    let vb = current_version(&b, "c").await;
    assert_eq!(va, vb);
    // The same vectors under other ids are another version (cached ids must not go stale).
    let state = AppState::new(config());
    let mut renamed = items(&catalog);
    renamed.ids[0] = "renamed".into();
    let entry = state
        .build_and_install("c", renamed, &SpaceDeclaration::default())
        .unwrap();
    assert_ne!(entry.version().to_hex(), va);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_under_concurrent_queries_keeps_every_answer_exact() {
    let first = random_catalog(2500, 48, 8, 21);
    let uploaded = random_catalog(2600, 48, 8, 22);
    // What the server will hold after quantizing the upload.
    let second =
        blindscore_server::load::read_jsonl(jsonl(&uploaded).as_bytes(), 8, Normalisation::None)
            .unwrap()
            .catalog;
    let (base, _) = start(config(), &[("live", &first)]).await;
    let mut tasks = Vec::new();
    for worker in 0..4u64 {
        let base = base.clone();
        let (first, second) = (first.clone(), second.clone());
        tasks.push(tokio::spawn(async move {
            let client = Ranker::new(&base);
            let mut seen = std::collections::HashSet::new();
            for round in 0..12u64 {
                let prepared = client.prepare("live").await.unwrap();
                let query = random_query(48, 8, worker * 100 + round);
                let encrypted = prepared.seal_quantized(&query).unwrap();
                let response = match client.send(&prepared, encrypted.bytes).await {
                    Ok(r) => r,
                    // Swapped out and its grace is over: refetch, as a client must.
                    Err(ClientError::VersionGone) => continue,
                    Err(e) => panic!("{e}"),
                };
                let scores = encrypted.pending.decrypt(&prepared, &response).unwrap();
                let items = prepared.shape().geometry.items;
                let catalog = if items == first.items() {
                    &first
                } else {
                    &second
                };
                assert_eq!(
                    wrong_scores(catalog, &query, &scores),
                    0,
                    "worker {worker} round {round}"
                );
                seen.insert(items);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = reqwest::Client::new()
        .put(format!(
            "{base}/v1/admin/catalogs/live?model=test&normalisation=none&bits=8"
        ))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(jsonl(&uploaded))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let replaced: serde_json::Value = r.json().await.unwrap();
    assert_eq!(replaced["items"], 2600);
    let mut versions_seen = std::collections::HashSet::new();
    for t in tasks {
        versions_seen.extend(t.await.unwrap());
    }
    assert!(
        versions_seen.contains(&2600),
        "no query ran on the new version"
    );
    assert_eq!(
        Ranker::new(&base)
            .prepare("live")
            .await
            .unwrap()
            .shape()
            .geometry
            .items,
        2600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let catalog = random_catalog(40_000, 128, 8, 3);
    let config = ServiceConfig {
        batch: BatchConfig {
            window: Duration::from_millis(50),
            max_batch: 1,
            queue_depth: 1,
        },
        ..config()
    };
    let (base, _) = start(config, &[("big", &catalog)]).await;
    let client = Arc::new(Ranker::new(&base));
    let prepared = client.prepare("big").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..12u64 {
        let (client, prepared) = (client.clone(), prepared.clone());
        tasks.push(tokio::spawn(async move {
            let q = prepared.seal_quantized(&random_query(128, 8, i)).unwrap();
            client.send(&prepared, q.bytes).await.map(|_| ())
        }));
    }
    let mut busy = 0;
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(ClientError::Busy { retry_after }) => {
                assert!(retry_after >= 1);
                busy += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
}
