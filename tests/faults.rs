//! Faults: clients that disconnect mid-request, the server killed and restarted under a
//! client with cached public data, and a corrupt catalog replacement; the real server
//! (in process, or its binary) and the real client over loopback.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Child;

use blindscore_client::Ranker;
use blindscore_server::access::BearerToken;
use blindscore_server::http::serve;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::processes::*;
use common::*;

const D: usize = 32;

fn spawn(port: u16, npy: &Path, ids: &Path) -> Child {
    spawn_server(
        &[
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--catalog".into(),
            format!("shop={}", npy.display()),
            "--ids".into(),
            ids.display().to_string(),
        ],
        None,
    )
}

/// How many times the server answered a route, from its metrics.
async fn served(base: &str, route: &str) -> u64 {
    metrics_text(base)
        .await
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "blindscore_http_requests_total{{route=\"{route}\""
            ))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_keeps_its_version_and_clients_recover() {
    let dir = std::env::temp_dir().join(format!("blindscore-faults-{}", std::process::id()));
    let (npy, ids) = write_catalog(&dir, 2000, D);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = spawn(port, &npy, &ids);
    wait_ready(&base, &mut first).await;
    let ranker = Ranker::new(&base).with_cache_dir(dir.join("cache"));
    let query = unit_rows(1, D, 9);
    let before = ranker.rank("shop", &query, 10).await.unwrap();
    let version = current_version(&base, "shop").await;

    // SIGKILL: no graceful shutdown, the client's pooled connection dies with it.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = spawn(port, &npy, &ids);
    wait_ready(&base, &mut second).await;
    assert_eq!(
        current_version(&base, "shop").await,
        version,
        "the same catalog must come back as the same version"
    );
    // The same ranker: its cached hint stays valid and the query goes through (after one
    // retry if its pooled connection was the dead one).
    let after = ranker.rank("shop", &query, 10).await.unwrap();
    assert_eq!(before, after);
    assert_eq!(
        served(&base, "/v1/catalogs/{name}/versions/{version}/hint").await,
        0,
        "the restarted server was asked for the hint again"
    );
    // A new app process with the same cache directory does not download it either.
    let restarted_app = Ranker::new(&base).with_cache_dir(dir.join("cache"));
    assert_eq!(
        restarted_app.rank("shop", &query, 10).await.unwrap(),
        before
    );
    assert_eq!(
        served(&base, "/v1/catalogs/{name}/versions/{version}/hint").await,
        0
    );
    second.kill().unwrap();
    second.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_disconnect_mid_request_disturb_nobody() {
    // No per-address limit: every client here is 127.0.0.1.
    let state = AppState::new(ServiceConfig {
        rate_limit: None,
        ..ServiceConfig::default()
    });
    let items = loaded_items(3000, D, 3);
    state
        .build_and_install("shop", items, &SpaceDeclaration::default())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state.clone(), None, std::future::pending()));
    let base = format!("http://{addr}");
    let ranker = Ranker::new(&base);
    let query = unit_rows(1, D, 4);
    let expected = ranker.rank("shop", &query, 10).await.unwrap();

    let catalog = ranker.prepare("shop").await.unwrap();
    let sealed = catalog.seal(&query, None).unwrap();
    let path = format!("/v1/catalogs/shop/versions/{}/score", catalog.version());
    let raw = |body: &[u8], declared: usize| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
        )
        .unwrap();
        s.write_all(body).unwrap();
        s
    };
    for _ in 0..20 {
        // Half a query, then gone.
        drop(raw(
            &sealed.bytes[..sealed.bytes.len() / 2],
            sealed.bytes.len(),
        ));
        // A whole query, gone before the answer.
        drop(raw(&sealed.bytes, sealed.bytes.len()));
    }
    // Queries from well-behaved clients, concurrently with more disconnects.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (base, query) = (base.clone(), query.clone());
        tasks.push(tokio::spawn(async move {
            Ranker::new(&base).rank("shop", &query, 10).await.unwrap()
        }));
    }
    for _ in 0..10 {
        drop(raw(&sealed.bytes, sealed.bytes.len()));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), expected);
    }
    assert_eq!(ranker.rank("shop", &query, 10).await.unwrap(), expected);
    assert_eq!(state.registry.list().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_replacement_is_refused_and_the_old_catalog_keeps_serving() {
    let state = AppState::new(ServiceConfig {
        admin_token: Some(BearerToken::new("t0ken").unwrap()),
        rate_limit: None,
        ..ServiceConfig::default()
    });
    state
        .build_and_install(
            "shop",
            loaded_items(500, D, 6),
            &SpaceDeclaration::default(),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state.clone(), None, std::future::pending()));
    let base = format!("http://{addr}");
    let query = unit_rows(1, D, 8);
    let ranker = Ranker::new(&base);
    let before = ranker.rank("shop", &query, 5).await.unwrap();
    let version = current_version(&base, "shop").await;
    let http = reqwest::Client::new();
    for (body, what) in [
        (
            b"{\"id\": \"a\", \"vector\": [1.0, 0.5]}\n{\"id\": \"b\", \"vector\": [0.0".to_vec(),
            "truncated",
        ),
        (
            b"{\"id\": \"a\", \"vector\": [1.0, \"x\"]}\n".to_vec(),
            "wrong type",
        ),
        (vec![0xff; 4096], "binary garbage"),
        (
            b"{\"id\": \"a\", \"vector\": [1.0]}\n{\"id\": \"b\", \"vector\": [1.0, 2.0]}\n"
                .to_vec(),
            "ragged",
        ),
    ] {
        let r = http
            .put(format!("{base}/v1/admin/catalogs/shop"))
            .bearer_auth("t0ken")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{what}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert!(
            !e["message"].as_str().unwrap_or("").is_empty(),
            "{what}: {e}"
        );
        assert_eq!(current_version(&base, "shop").await, version, "{what}");
    }
    assert_eq!(ranker.rank("shop", &query, 5).await.unwrap(), before);
}
