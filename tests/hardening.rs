//! The server's defences: its bearer tokens, its rate limits behind a proxy and without
//! connection info, its metrics, a bad upload next to a version in its grace period, and
//! catalogs still loading. The real server on loopback ports, over real HTTP.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use blindscore_client::{ClientError, Ranker};
use blindscore_server::access::{parse_proxy, BearerToken, RateLimit};
use blindscore_server::http::{router, serve, serve_metrics};
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const D: usize = 16;
const TOKEN: &str = "a-long-random-admin-token";

async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// The real server, with connection info, and catalog "shop" unless `empty`.
async fn start(config: ServiceConfig, empty: bool) -> (String, Arc<AppState>) {
    let state = AppState::new(config);
    if !empty {
        state
            .build_and_install(
                "shop",
                loaded_items(300, D, 1),
                &SpaceDeclaration::default(),
            )
            .unwrap();
    }
    let (listener, url) = listen().await;
    tokio::spawn(serve(listener, state.clone(), None, std::future::pending()));
    (url, state)
}

fn jsonl(items: usize, seed: u64) -> String {
    unit_rows(items, D, seed)
        .chunks_exact(D)
        .enumerate()
        .map(|(i, row)| {
            let v: Vec<String> = row.iter().map(|x| x.to_string()).collect();
            format!(
                "{{\"id\": \"s{seed}-{i}\", \"vector\": [{}]}}\n",
                v.join(",")
            )
        })
        .collect()
}

async fn status(request: reqwest::RequestBuilder) -> (u16, String) {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_string())
}

fn admin_config() -> ServiceConfig {
    ServiceConfig {
        admin_token: Some(BearerToken::new(TOKEN).unwrap()),
        rate_limit: None,
        ..ServiceConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_compared_by_digest_and_the_route_is_limited() {
    let (base, _) = start(admin_config(), false).await;
    let http = reqwest::Client::new();
    let put = |token: String| {
        http.put(format!("{base}/v1/admin/catalogs/shop"))
            .header("authorization", format!("Bearer {token}"))
            .body(jsonl(50, 2))
    };
    // Near misses: a prefix, the token with more after it, the empty token.
    for wrong in [
        TOKEN[..TOKEN.len() - 1].to_string(),
        format!("{TOKEN}{}", "x".repeat(65_536)),
        String::new(),
    ] {
        assert_eq!(status(put(wrong)).await, (401, "unauthorized".into()));
    }
    assert_eq!(status(put(TOKEN.to_string())).await.0, 200);
    // A library caller cannot open the admin endpoints with an empty token.
    assert!(BearerToken::new("").is_err());

    // Guessing is rate-limited like every other request from an address.
    let (limited, _) = start(
        ServiceConfig {
            rate_limit: Some(RateLimit {
                per_second: 0.2,
                burst: 3,
            }),
            ..admin_config()
        },
        false,
    )
    .await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        let r = http
            .put(format!("{limited}/v1/admin/catalogs/shop"))
            .header("authorization", "Bearer guess")
            .body("{}")
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
    }
    assert_eq!(&codes[..3], &[401, 401, 401]);
    assert!(codes[3..].iter().all(|&c| c == 429), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_cut_off_by_the_admin_time_limit() {
    let (base, _) = start(
        ServiceConfig {
            admin_timeout: Duration::from_secs(1),
            ..admin_config()
        },
        false,
    )
    .await;
    // A request that announces 10,000 bytes and sends 10.
    let mut socket = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "PUT /v1/admin/catalogs/shop HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\ncontent-length: 10000\r\n\r\n{{\"id\": \"a\""
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let limits = |trusted: &[&str]| ServiceConfig {
        rate_limit: Some(RateLimit {
            per_second: 0.1,
            burst: 2,
        }),
        trusted_proxies: trusted.iter().map(|p| parse_proxy(p).unwrap()).collect(),
        ..ServiceConfig::default()
    };
    let http = reqwest::Client::new();
    let get = |base: &str, client: &str| {
        http.get(format!("{base}/v1/catalogs"))
            .header("x-forwarded-for", format!("{client}, 127.0.0.1"))
    };
    // The proxy on loopback is trusted: two clients behind it, two buckets.
    let (behind, _) = start(limits(&["127.0.0.1"]), false).await;
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(status(get(&behind, "203.0.113.1")).await.0);
    }
    assert_eq!(first, vec![200, 200, 429]);
    assert_eq!(status(get(&behind, "203.0.113.2")).await.0, 200);
    // Not trusted: the header is the client's own say-so, and one bucket is shared.
    let (direct, _) = start(limits(&[]), false).await;
    assert_eq!(status(get(&direct, "203.0.113.1")).await.0, 200);
    assert_eq!(status(get(&direct, "203.0.113.2")).await.0, 200);
    assert_eq!(status(get(&direct, "203.0.113.3")).await.0, 429);
}

/// The router served with plain `axum::serve`, without connection info.
async fn without_connect_info(config: ServiceConfig) -> String {
    let state = AppState::new(config);
    state
        .build_and_install(
            "shop",
            loaded_items(300, D, 1),
            &SpaceDeclaration::default(),
        )
        .unwrap();
    let (listener, base) = listen().await;
    let app = router(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_without_connection_info_is_a_choice_not_a_silent_gap() {
    let http = reqwest::Client::new();
    // While rate limits are on: refused, loudly.
    let base = without_connect_info(ServiceConfig::default()).await;
    assert_eq!(
        status(http.get(format!("{base}/v1/catalogs"))).await,
        (500, "internal".into())
    );
    // Chosen explicitly, it serves (without per-address limits).
    let base = without_connect_info(ServiceConfig {
        without_peer_addresses: true,
        ..ServiceConfig::default()
    })
    .await;
    assert_eq!(status(http.get(format!("{base}/v1/catalogs"))).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_need_a_token_or_live_on_their_own_listener() {
    let http = reqwest::Client::new();
    let (base, _) = start(
        ServiceConfig {
            metrics_token: Some(BearerToken::new("metrics-token").unwrap()),
            ..ServiceConfig::default()
        },
        false,
    )
    .await;
    let metrics = format!("{base}/metrics");
    assert_eq!(
        status(http.get(&metrics)).await,
        (401, "unauthorized".into())
    );
    let r = http
        .get(&metrics)
        .header("authorization", "bearer metrics-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the scheme's name in any case");
    assert!(r.text().await.unwrap().contains("blindscore_"));

    let (base, state) = start(
        ServiceConfig {
            metrics_on_main_listener: false,
            ..ServiceConfig::default()
        },
        false,
    )
    .await;
    assert_eq!(status(http.get(format!("{base}/metrics"))).await.0, 404);
    let (listener, separate) = listen().await;
    tokio::spawn(serve_metrics(listener, state, std::future::pending()));
    let r = http
        .get(format!("{separate}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_upload_leaves_the_current_and_the_grace_version_served() {
    let (base, _) = start(
        ServiceConfig {
            grace: Duration::from_secs(600),
            ..admin_config()
        },
        false,
    )
    .await;
    let http = reqwest::Client::new();
    let first = current_version(&base, "shop").await;
    let put = |body: String| {
        http.put(format!("{base}/v1/admin/catalogs/shop?normalisation=l2"))
            .bearer_auth(TOKEN)
            .body(body)
    };
    // A good replacement: the first version is in its grace period.
    assert_eq!(status(put(jsonl(400, 3))).await.0, 200);
    let second = current_version(&base, "shop").await;
    assert_ne!(first, second);
    let answerable = |version: String| {
        let url = format!("{base}/v1/catalogs/shop/versions/{version}/description");
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(answerable(first.clone()).await, 200);
    // Bad uploads: malformed, the wrong dimension on one line, and a declared width the
    // noise budget cannot meet. Each is refused, and both versions stay served.
    let wide: String = (0..300)
        .map(|i| {
            let v = vec!["1.0"; 4000].join(",");
            format!("{{\"id\": \"w{i}\", \"vector\": [{v}]}}\n")
        })
        .collect();
    for (body, query) in [
        ("not json\n".to_string(), ""),
        (jsonl(10, 4) + "{\"id\": \"x\", \"vector\": [1.0]}\n", ""),
        (wide, "&bits=16"),
    ] {
        let r = http
            .put(format!(
                "{base}/v1/admin/catalogs/shop?normalisation=l2{query}"
            ))
            .bearer_auth(TOKEN)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
        assert_eq!(
            answerable(first.clone()).await,
            200,
            "the grace version was dropped"
        );
        assert_eq!(answerable(second.clone()).await, 200);
        assert_eq!(current_version(&base, "shop").await, second);
    }
    // The same content again is the same version: nothing built, nothing dropped.
    assert_eq!(status(put(jsonl(400, 3))).await.0, 200);
    assert_eq!(current_version(&base, "shop").await, second);
    assert_eq!(answerable(first.clone()).await, 200);
    // A good replacement drops the version in grace (never three held) and keeps the one
    // it replaces answerable.
    assert_eq!(status(put(jsonl(500, 5))).await.0, 200);
    assert_eq!(answerable(first).await, 410);
    assert_eq!(answerable(second).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_still_loading_answers_503_loading_with_retry_after() {
    let (base, state) = start(ServiceConfig::default(), true).await;
    state.registry.expect(["shop".to_string()]);
    let http = reqwest::Client::new();
    for url in [
        format!("{base}/v1/catalogs/shop"),
        format!(
            "{base}/v1/catalogs/shop/versions/{}/description",
            "ab".repeat(32)
        ),
    ] {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 503, "{url}");
        assert_eq!(r.headers()["retry-after"], "5");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "loading");
    }
    // Another name is still unknown.
    assert_eq!(
        status(http.get(format!("{base}/v1/catalogs/other"))).await,
        (404, "unknown_catalog".into())
    );
    // The SDK says so with its own error kind.
    let ranker = Ranker::new(&base);
    let query = unit_rows(1, D, 9);
    assert!(matches!(
        ranker.rank("shop", &query, 3).await,
        Err(ClientError::Loading { retry_after: 5 })
    ));
    // Once built, it is served.
    state
        .build_and_install(
            "shop",
            loaded_items(300, D, 1),
            &SpaceDeclaration::default(),
        )
        .unwrap();
    assert_eq!(ranker.rank("shop", &query, 3).await.unwrap().len(), 3);
}
