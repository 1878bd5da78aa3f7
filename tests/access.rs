//! Transport and access: TLS between the real server and the real client, per-client rate
//! limits, and per-app API keys with quotas, over loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use blindscore_client::{ClientError, Connection, Ranker};
use blindscore_server::access::{key_digest_hex, ApiKeyEntry, ApiKeys, RateLimit};
use blindscore_server::http::serve;
use blindscore_server::http::tls::server_config_from_pem;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::*;

const D: usize = 32;

struct SelfSigned {
    cert_pem: String,
    key_pem: String,
}

fn self_signed() -> SelfSigned {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    SelfSigned {
        cert_pem: cert.pem(),
        key_pem: signing_key.serialize_pem(),
    }
}

/// The real server, with one catalog "shop", over TLS when a certificate is given.
async fn start(config: ServiceConfig, tls: Option<&SelfSigned>) -> (u16, Arc<AppState>) {
    let state = AppState::new(config);
    state
        .build_and_install(
            "shop",
            loaded_items(300, D, 1),
            &SpaceDeclaration::default(),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls =
        tls.map(|t| server_config_from_pem(t.cert_pem.as_bytes(), t.key_pem.as_bytes()).unwrap());
    tokio::spawn(serve(listener, state.clone(), tls, std::future::pending()));
    (port, state)
}

fn query() -> Vec<f32> {
    unit_rows(1, D, 77)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_a_client_that_trusts_the_certificate_and_nobody_else() {
    let cert = self_signed();
    let (port, _) = start(
        ServiceConfig {
            rate_limit: None,
            ..ServiceConfig::default()
        },
        Some(&cert),
    )
    .await;
    let url = format!("https://localhost:{port}");
    let trusting = Ranker::with_connection(
        &url,
        &Connection {
            root_certificates: vec![cert.cert_pem.clone().into_bytes()],
            ..Connection::default()
        },
    );
    let ranked = trusting.rank("shop", &query(), 5).await.unwrap();
    assert_eq!(ranked.len(), 5);

    // The certificate is verified: a client without the root refuses the server.
    let err = Ranker::new(&url)
        .rank("shop", &query(), 5)
        .await
        .unwrap_err();
    match err {
        ClientError::Transport(e) => assert!(!e.to_string().is_empty()),
        other => panic!("expected a transport error, got {other:?}"),
    }
    // Plain HTTP to the TLS port gets nowhere.
    let plain = Ranker::new(&format!("http://127.0.0.1:{port}"));
    assert!(matches!(
        plain.rank("shop", &query(), 5).await,
        Err(ClientError::Transport(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_plain_http_beyond_loopback_unless_allowed() {
    // An IPv4-mapped IPv6 address is not loopback to the client's rule, yet it reaches
    // this machine's own server: no traffic leaves the machine either way.
    let (port, _) = start(ServiceConfig::default(), None).await;
    let beyond = format!("http://[::ffff:127.0.0.1]:{port}");
    let err = Ranker::new(&beyond)
        .rank("shop", &query(), 5)
        .await
        .unwrap_err();
    match err {
        ClientError::PlainHttpRefused { ref host } => {
            assert_eq!(host, "[::ffff:7f00:1]");
            assert!(err.to_string().contains("refusing plain http"), "{err}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Allowed, it ranks.
    let allowed = Connection {
        allow_plain_http: true,
        ..Connection::default()
    };
    let ranked = tokio::time::timeout(
        Duration::from_secs(20),
        Ranker::with_connection(&beyond, &allowed).rank("shop", &query(), 5),
    )
    .await
    .expect("in time")
    .unwrap();
    assert_eq!(ranked.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_address_is_rate_limited_with_retry_after() {
    let (port, _) = start(
        ServiceConfig {
            rate_limit: Some(RateLimit {
                per_second: 0.5,
                burst: 3,
            }),
            ..ServiceConfig::default()
        },
        None,
    )
    .await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..3 {
        let r = http
            .get(format!("{base}/v1/catalogs"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http
        .get(format!("{base}/v1/catalogs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u32 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry after {retry}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Health and metrics stay answerable.
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The SDK reports it as such.
    let err = Ranker::new(&base)
        .rank("shop", &query(), 5)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::RateLimited { retry_after } if retry_after >= 1),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_required_and_each_app_has_a_quota() {
    let keys = ApiKeys::new(vec![ApiKeyEntry {
        app: "shop-ios".into(),
        key_sha256: key_digest_hex("k-ios"),
        queries_per_minute: 2,
    }])
    .unwrap();
    let (port, _) = start(
        ServiceConfig {
            rate_limit: None,
            api_keys: Some(Arc::new(keys)),
            ..ServiceConfig::default()
        },
        None,
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/v1/catalogs/shop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "api_key_required");
    let r = http
        .get(format!("{base}/v1/catalogs/shop"))
        .header("x-api-key", "k-android")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Open routes stay open.
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let with_key = |key: &str| {
        Ranker::with_connection(
            &base,
            &Connection {
                api_key: Some(key.into()),
                ..Connection::default()
            },
        )
    };
    let err = Ranker::new(&base)
        .rank("shop", &query(), 5)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Server { status: 401, .. }),
        "{err:?}"
    );
    let ranker = with_key("k-ios");
    // Two queries a minute: fetching the catalog's public data is not charged, queries are.
    assert_eq!(ranker.rank("shop", &query(), 5).await.unwrap().len(), 5);
    assert_eq!(ranker.rank("shop", &query(), 5).await.unwrap().len(), 5);
    let err = ranker.rank("shop", &query(), 5).await.unwrap_err();
    assert!(
        matches!(err, ClientError::RateLimited { retry_after } if retry_after >= 20),
        "{err:?}"
    );
}
