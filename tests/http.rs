//! End to end over real HTTP: the real server on a loopback port, the real client.

mod common;

use std::sync::Arc;

use blindscore_client::{Client, ClientError};
use blindscore_common::digest::CatalogVersion;
use blindscore_common::wire::{self, QueryMessage};
use blindscore_common::Layout;
use blindscore_server::http::{router, AppState};
use common::*;

async fn start(served: Vec<blindscore_server::ServedCatalog>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(Arc::new(AppState::new(served)));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn scores_are_exact_over_http_and_bad_requests_get_clear_statuses() {
    let catalog = random_catalog(4100, 96, 8, 5);
    let base = start(vec![serve(&catalog, Layout::Column, 8)]).await;
    let client = Client::new(&base);
    let (prepared, fetched) = client.fetch_catalog("test").await.unwrap();
    assert!(fetched.down > 0);

    let query = random_query(96, 8, 6);
    let encrypted = prepared.encrypt(&query).unwrap();
    let good_query = encrypted.bytes.clone();
    let (response, sent) = client.score("test", encrypted.bytes).await.unwrap();
    assert_eq!(sent.up, good_query.len());
    let scores = encrypted.pending.decrypt(&prepared, &response).unwrap();
    assert_eq!(wrong_scores(&catalog, &query, &scores), 0);

    // Unknown catalog.
    let err = client.fetch_catalog("nope").await.err().unwrap();
    assert!(
        matches!(err, ClientError::Server { status: 404, ref message } if message.contains("unknown_catalog")),
        "{err}"
    );
    // Garbage body.
    let err = client.score("test", b"garbage".to_vec()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Server { status: 400, ref message } if message.contains("malformed_query")),
        "{err}"
    );
    // Stale version.
    let mut stale: QueryMessage = wire::decode(&good_query, u64::MAX).unwrap();
    stale.catalog.version = CatalogVersion([9; 32]);
    let err = client
        .score("test", wire::encode(&stale))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Server { status: 409, ref message } if message.contains("stale_version")),
        "{err}"
    );
    // Oversized body.
    let err = client
        .score("test", vec![0u8; good_query.len() + (1 << 20)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Server { status: 413, .. }),
        "{err}"
    );
    // Unreachable server.
    let err = Client::new("http://127.0.0.1:9")
        .fetch_catalog("test")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Transport(_)), "{err}");

    // The catalog still answers exactly after all that.
    let again = prepared.encrypt(&query).unwrap();
    let (response, _) = client.score("test", again.bytes).await.unwrap();
    assert_eq!(again.pending.decrypt(&prepared, &response).unwrap(), scores);
}
