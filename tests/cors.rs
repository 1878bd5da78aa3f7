//! CORS for the browser SDK, over real HTTP against the real server on loopback: a
//! preflight from an allowed origin is answered (before the API keys, which a preflight
//! never carries) with `x-api-key` and `content-type` allowed; answers to that origin,
//! errors included, name it and expose `Retry-After` and `ETag`; an origin not allowed,
//! and every origin when none is configured, gets no CORS header at all; the admin route
//! never answers a preflight.

mod common;

use std::sync::Arc;

use blindscore_server::access::{key_digest_hex, ApiKeyEntry, ApiKeys};
use blindscore_server::http::serve;
use blindscore_server::origins::AllowedOrigins;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::*;
use reqwest::header::HeaderMap;

const ALLOWED: &str = "https://shop.example";
const KEY: &str = "k-web";

async fn start(cors: AllowedOrigins) -> String {
    let keys = ApiKeys::new(vec![ApiKeyEntry {
        app: "shop-web".into(),
        key_sha256: key_digest_hex(KEY),
        queries_per_minute: 600,
    }])
    .unwrap();
    let state = AppState::new(ServiceConfig {
        rate_limit: None,
        api_keys: Some(Arc::new(keys)),
        cors,
        ..ServiceConfig::default()
    });
    state
        .build_and_install(
            "shop",
            loaded_items(300, 16, 1),
            &SpaceDeclaration::default(),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state, None, std::future::pending()));
    base
}

/// A browser's preflight of a score request from `origin`.
async fn preflight(base: &str, path: &str, origin: &str, method: &str) -> (u16, HeaderMap) {
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type,x-api-key")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.headers().clone())
}

/// A page's GET of `path` from `origin`, with the app's API key.
async fn get(base: &str, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("origin", origin)
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn lists(value: &str, wanted: &str) -> bool {
    value
        .split(',')
        .any(|v| v.trim().eq_ignore_ascii_case(wanted))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_is_answered_and_others_get_nothing() {
    let base = start(AllowedOrigins::parse(&[ALLOWED.to_string()]).unwrap()).await;
    let version = {
        let r = get(&base, "/v1/catalogs/shop", ALLOWED).await;
        let info: serde_json::Value = r.json().await.unwrap();
        info["current"]["version"].as_str().unwrap().to_string()
    };
    let score = format!("/v1/catalogs/shop/versions/{version}/score");

    // The preflight is answered without an API key.
    let (status, h) = preflight(&base, &score, ALLOWED, "POST").await;
    assert!((200..300).contains(&status), "preflight: {status}");
    assert_eq!(header(&h, "access-control-allow-origin"), ALLOWED);
    assert!(
        lists(header(&h, "access-control-allow-methods"), "POST"),
        "{h:?}"
    );
    let allowed_headers = header(&h, "access-control-allow-headers");
    assert!(lists(allowed_headers, "x-api-key"), "{allowed_headers}");
    assert!(lists(allowed_headers, "content-type"), "{allowed_headers}");
    assert!(header(&h, "access-control-max-age").parse::<u64>().unwrap() > 0);

    // Real answers name the origin and expose the headers the SDK reads.
    let hint = get(
        &base,
        &format!("/v1/catalogs/shop/versions/{version}/hint"),
        ALLOWED,
    )
    .await;
    assert_eq!(hint.status(), 200);
    assert!(hint.headers().contains_key("etag"));
    assert_eq!(
        header(hint.headers(), "access-control-allow-origin"),
        ALLOWED
    );
    let exposed = header(hint.headers(), "access-control-expose-headers").to_string();
    assert!(lists(&exposed, "retry-after"), "{exposed}");
    assert!(lists(&exposed, "etag"), "{exposed}");
    // An error answer too, so that the page can read its code.
    let gone = reqwest::Client::new()
        .post(format!(
            "{base}/v1/catalogs/shop/versions/{}/score",
            "0".repeat(64)
        ))
        .header("origin", ALLOWED)
        .header("x-api-key", KEY)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 64])
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_client_error(), "{}", gone.status());
    assert_eq!(
        header(gone.headers(), "access-control-allow-origin"),
        ALLOWED
    );
    let body: serde_json::Value = gone.json().await.unwrap();
    assert!(body["code"].is_string(), "{body}");

    // Another origin: no CORS header, on the preflight or on the answer.
    let other = "https://evil.example";
    let (_, h) = preflight(&base, &score, other, "POST").await;
    assert!(!h.contains_key("access-control-allow-origin"), "{h:?}");
    assert!(!h.contains_key("access-control-allow-headers"), "{h:?}");
    let r = get(&base, "/v1/catalogs/shop", other).await;
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("access-control-allow-origin"));

    // The admin route is for operators, never for pages.
    let (_, h) = preflight(&base, "/v1/admin/catalogs/shop", ALLOWED, "PUT").await;
    assert!(!h.contains_key("access-control-allow-origin"), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_allowed_origins_there_are_no_cors_headers() {
    let base = start(AllowedOrigins::None).await;
    let (_, h) = preflight(&base, "/v1/catalogs/shop", ALLOWED, "GET").await;
    assert!(!h.contains_key("access-control-allow-origin"), "{h:?}");
    let r = get(&base, "/v1/catalogs/shop", ALLOWED).await;
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_origin_when_the_operator_says_so() {
    let base = start(AllowedOrigins::parse(&["*".to_string()]).unwrap()).await;
    let (status, h) = preflight(&base, "/v1/catalogs/shop", "https://any.example", "GET").await;
    assert!((200..300).contains(&status));
    assert_eq!(header(&h, "access-control-allow-origin"), "*");
}
