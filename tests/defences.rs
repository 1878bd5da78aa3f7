//! The SDK against servers that try to exhaust it, redirect it, plant data in its cache,
//! or keep it waiting: real servers on loopback ports, some of them hostile proxies in
//! front of a real one.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use blindscore_client::core::Limits;
use blindscore_client::{ClientError, Connection, Ranker};
use blindscore_common::digest::sha256;
use blindscore_common::{wire, CatalogDescription, HintMessage};
use blindscore_server::http::serve;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::*;

const D: usize = 32;
const HINT_ROUTE: &str = "/v1/catalogs/{name}/versions/{version}/hint";

async fn serve_app(app: Router, host: &str) -> String {
    let listener = tokio::net::TcpListener::bind(format!("{host}:0"))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{host}:{port}")
}

/// The real server with catalog "shop".
async fn real() -> (String, Arc<AppState>) {
    let state = AppState::new(ServiceConfig::default());
    state
        .build_and_install(
            "shop",
            loaded_items(2200, D, 51),
            &SpaceDeclaration::default(),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state.clone(), None, std::future::pending()));
    (url, state)
}

fn unit(seed: u64) -> Vec<f32> {
    unit_rows(1, D, seed)
}

/// One request as a server saw it: path, `x-api-key`, body size.
type Seen1 = (String, Option<String>, usize);

/// What a server saw of the requests that reached it.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Seen1>>>);

impl Seen {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A server that records every request (path, x-api-key, body size) and answers 200.
async fn recording() -> (String, Seen) {
    async fn record(State(seen): State<Seen>, headers: HeaderMap, req: Request) -> StatusCode {
        let path = req.uri().path().to_string();
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = axum::body::to_bytes(req.into_body(), 64 << 20)
            .await
            .unwrap_or_default();
        seen.0.lock().unwrap().push((path, key, body.len()));
        StatusCode::OK
    }
    let seen = Seen::default();
    let app = Router::new().fallback(record).with_state(seen.clone());
    (serve_app(app, "127.0.0.1").await, seen)
}

/// A server that answers every request with `status` and `Location: {target}{path}`.
async fn redirecting(status: StatusCode, target: String) -> String {
    let app = Router::new().fallback(move |req: Request| {
        let location = format!("{target}{}", req.uri().path());
        async move { (status, [("location", location)]).into_response() }
    });
    serve_app(app, "127.0.0.1").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_never_followed_with_the_api_key_or_the_query() {
    let (real, _) = real().await;
    let prepared = Ranker::new(&real).prepare("shop").await.unwrap();
    let (elsewhere, seen) = recording().await;
    for status in [
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
        StatusCode::FOUND,
    ] {
        let redirector = redirecting(status, elsewhere.clone()).await;
        let ranker = Ranker::with_connection(
            &redirector,
            &Connection {
                api_key: Some("the-app-key".into()),
                ..Connection::default()
            },
        );
        // The catalog info, and a query body (which 307 and 308 would carry along).
        let err = ranker.prepare("shop").await.unwrap_err();
        assert!(
            matches!(err, ClientError::Redirected { status: s, ref location } if s == status.as_u16() && location.starts_with(&elsewhere)),
            "{err:?}"
        );
        let sealed = prepared.seal(&unit(1), None).unwrap();
        let err = ranker.send(&prepared, sealed.bytes).await.unwrap_err();
        assert!(matches!(err, ClientError::Redirected { .. }), "{err:?}");
    }
    assert_eq!(seen.len(), 0, "a redirect was followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_loopback_to_plain_http_beyond_it_is_not_followed() {
    // An IPv4-mapped IPv6 address is not loopback to the client's rule (so plain HTTP to
    // it is refused), yet it reaches this machine's own recording server.
    let (elsewhere, seen) = recording().await;
    let port = elsewhere.rsplit(':').next().unwrap();
    let beyond = format!("http://[::ffff:127.0.0.1]:{port}");
    let err = Ranker::new(&beyond).prepare("shop").await.unwrap_err();
    assert!(
        matches!(err, ClientError::PlainHttpRefused { .. }),
        "{err:?}"
    );
    let redirector = redirecting(StatusCode::TEMPORARY_REDIRECT, beyond.clone()).await;
    let from_localhost = redirector.replace("127.0.0.1", "localhost");
    let err = Ranker::new(&from_localhost)
        .prepare("shop")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Redirected { .. }), "{err:?}");
    assert_eq!(seen.len(), 0, "the redirect to plain HTTP was followed");
}

/// A proxy in front of the real server that rewrites the ids artefact, or the catalog
/// info's hint digest, as a hostile server would.
#[derive(Clone)]
struct Tampering {
    real: String,
    plant_ids: bool,
    wrong_hint_digest: bool,
    requests: Seen,
}

async fn tampering(real: &str, plant_ids: bool, wrong_hint_digest: bool) -> (String, Seen) {
    async fn forward(State(t): State<Tampering>, req: Request) -> axum::response::Response {
        let path = req.uri().path().to_string();
        t.requests.0.lock().unwrap().push((path.clone(), None, 0));
        let url = format!("{}{path}", t.real);
        let r = if req.method() == axum::http::Method::POST {
            let body = axum::body::to_bytes(req.into_body(), 64 << 20)
                .await
                .unwrap();
            reqwest::Client::new()
                .post(url)
                .body(body)
                .send()
                .await
                .unwrap()
        } else {
            reqwest::get(url).await.unwrap()
        };
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        let mut body: Bytes = r.bytes().await.unwrap();
        if t.plant_ids && path.ends_with("/ids") {
            let ids: Vec<String> = serde_json::from_slice(&body).unwrap();
            let planted: Vec<String> = (0..ids.len()).map(|i| format!("planted-{i}")).collect();
            body = serde_json::to_vec(&planted).unwrap().into();
        }
        if t.wrong_hint_digest && path == "/v1/catalogs/shop" {
            let mut info: serde_json::Value = serde_json::from_slice(&body).unwrap();
            info["current"]["hint_sha256"] = "00".repeat(32).into();
            body = serde_json::to_vec(&info).unwrap().into();
        }
        (status, body).into_response()
    }
    let t = Tampering {
        real: real.into(),
        plant_ids,
        wrong_hint_digest,
        requests: Seen::default(),
    };
    let seen = t.requests.clone();
    let app = Router::new().fallback(forward).with_state(t);
    (serve_app(app, "127.0.0.1").await, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_cannot_plant_artefacts_in_the_cache_for_another() {
    let (real, state) = real().await;
    let (hostile, _) = tampering(&real, true, false).await;
    let dir = std::env::temp_dir().join(format!("blindscore-origin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The hostile server serves the real catalog's version with ids of its own.
    let planted = Ranker::new(&hostile)
        .with_cache_dir(&dir)
        .rank("shop", &unit(2), 5)
        .await
        .unwrap();
    assert!(planted[0].id.starts_with("planted-"));
    // The real server's catalog, same name, same version, same cache directory: none of
    // the planted ids is used, and its artefacts are fetched from it.
    let hints = state.metrics.requests_for(HINT_ROUTE);
    let ranked = Ranker::new(&real)
        .with_cache_dir(&dir)
        .rank("shop", &unit(2), 5)
        .await
        .unwrap();
    assert!(
        ranked.iter().all(|r| r.id.starts_with("s51-item-")),
        "{ranked:?}"
    );
    assert_eq!(state.metrics.requests_for(HINT_ROUTE), hints + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hint_must_match_the_catalog_infos_digest_fetched_or_cached() {
    let (real, _) = real().await;
    let dir = std::env::temp_dir().join(format!("blindscore-digest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (liar, _) = tampering(&real, false, true).await;
    let err = Ranker::new(&liar).prepare("shop").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol(blindscore_common::ProtocolError::DigestMismatch(_))
        ),
        "{err:?}"
    );
    // A cached hint is checked against the info too: alter the cached hint's words (a
    // valid hint message for the same catalog and version, with the description's digest
    // made to match), so that only the info's digest can tell.
    Ranker::new(&real)
        .with_cache_dir(&dir)
        .prepare("shop")
        .await
        .unwrap();
    let mut versions = Vec::new();
    for origin in std::fs::read_dir(&dir).unwrap().flatten() {
        for catalog in std::fs::read_dir(origin.path()).unwrap().flatten() {
            versions.extend(std::fs::read_dir(catalog.path()).unwrap().flatten());
        }
    }
    assert_eq!(versions.len(), 1);
    let cached = versions[0].path();
    let mut hint: HintMessage =
        wire::decode(&std::fs::read(cached.join("hint")).unwrap(), u64::MAX).unwrap();
    hint.words[0] ^= 0x5a;
    let altered = wire::encode(&hint);
    let mut description: CatalogDescription =
        wire::decode(&std::fs::read(cached.join("description")).unwrap(), 1 << 16).unwrap();
    description.hint_digest = sha256(&altered);
    std::fs::write(cached.join("description"), wire::encode(&description)).unwrap();
    std::fs::write(cached.join("hint"), &altered).unwrap();
    // The check refuses the cached entry and the real artefacts are fetched again.
    let ranked = Ranker::new(&real)
        .with_cache_dir(&dir)
        .rank("shop", &unit(3), 5)
        .await
        .unwrap();
    assert_eq!(ranked.len(), 5);
    assert_ne!(std::fs::read(cached.join("hint")).unwrap(), altered);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_over_the_apps_limits_is_refused_before_its_hint_is_fetched() {
    let (real, state) = real().await;
    let limits = Limits {
        max_hint_bytes: 1000,
        ..Limits::default()
    };
    let err = Ranker::new(&real)
        .with_limits(limits)
        .rank("shop", &unit(4), 5)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::OverLimit { limit: "max_hint_bytes", allowed: 1000, value } if value > 1000),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_hint_bytes"), "{err}");
    assert_eq!(state.metrics.requests_for(HINT_ROUTE), 0);
    // The dimension the app expects, and the declared dimension against the limit, are
    // checked on the catalog info alone.
    let (proxy, requests) = tampering(&real, false, false).await;
    let err = Ranker::new(&proxy)
        .expect_dimension(D + 1)
        .prepare("shop")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::WrongDimension { found, expected: D } if found == D + 1),
        "{err:?}"
    );
    let err = Ranker::new(&proxy)
        .with_limits(Limits {
            max_dimension: 16,
            ..Limits::default()
        })
        .prepare("shop")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::OverLimit {
                limit: "max_dimension",
                ..
            }
        ),
        "{err:?}"
    );
    let paths: Vec<String> = requests
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.0.clone())
        .collect();
    assert_eq!(
        paths,
        vec!["/v1/catalogs/shop"; 2],
        "only the info was fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    // Accepts connections and reads, but never writes a byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let connection = Connection {
        read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        ..Connection::default()
    };
    let started = Instant::now();
    let err = Ranker::with_connection(&url, &connection)
        .prepare("shop")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Transport(ref e) if e.is_timeout()),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The defaults are stated.
    let d = Connection::default();
    assert_eq!(
        (d.connect_timeout, d.read_timeout, d.request_timeout),
        (
            Duration::from_secs(10),
            Duration::from_secs(30),
            Duration::from_secs(120)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_still_loading_is_its_own_error_with_retry_after() {
    let app = Router::new().fallback(|| async {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "7")],
            axum::Json(
                serde_json::json!({"code": "loading", "message": "catalog shop is loading"}),
            ),
        )
    });
    let url = serve_app(app, "127.0.0.1").await;
    let err = Ranker::new(&url)
        .rank("shop", &unit(5), 5)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Loading { retry_after: 7 }),
        "{err:?}"
    );
}
