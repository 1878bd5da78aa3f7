//! The client SDK against the real server over loopback, and against a deliberately
//! hostile server.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use blindscore_client::{ClientError, Ranker};
use blindscore_common::api::ErrorCode;
use blindscore_common::digest::sha256;
use blindscore_common::encoding::word_to_torus;
use blindscore_common::params::ParamId;
use blindscore_common::{bitpack, wire, CatalogDescription, HintMessage, Layout, QueryMessage};
use blindscore_server::http::serve;
use blindscore_server::load::LoadedItems;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::*;

const D: usize = 32;
const HINT_ROUTE: &str = "/v1/catalogs/{name}/versions/{version}/hint";
const SCORE_ROUTE: &str = "/v1/catalogs/{name}/versions/{version}/score";
const INFO_ROUTE: &str = "/v1/catalogs/{name}";

fn float_rows(items: usize, seed: u64) -> Vec<f32> {
    unit_rows(items, D, seed)
}

fn loaded(items: usize, seed: u64) -> LoadedItems {
    loaded_items(items, D, seed)
}

fn unit_query(seed: u64) -> Vec<f32> {
    float_rows(1, seed + 1000)
}

async fn serve_state(state: Arc<AppState>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state, None, std::future::pending()));
    format!("http://{addr}")
}

async fn start(items: LoadedItems, grace: Duration) -> (String, Arc<AppState>) {
    let state = AppState::new(ServiceConfig {
        grace,
        layout: Some(Layout::Grouped(4)),
        ..ServiceConfig::default()
    });
    state
        .build_and_install(
            "shop",
            items,
            &SpaceDeclaration {
                model: "m".into(),
                ..SpaceDeclaration::default()
            },
        )
        .unwrap();
    (serve_state(state.clone()).await, state)
}

/// The plaintext top-k of the quantized vectors, with the same scales.
fn plaintext_top(items: &LoadedItems, query: &[f32], k: usize) -> Vec<String> {
    let q = blindscore_common::quant::quantize(query, 8);
    let scores = items.catalog.plaintext_scores(&q.values);
    let scaled = blindscore_client::core::rescale(&scores, q.scale, &items.scales);
    blindscore_client::core::top_k(&scaled, k)
        .into_iter()
        .map(|(i, _)| items.ids[i].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_k_equals_the_plaintext_top_k_and_the_hint_is_fetched_once() {
    let items = loaded(5000, 1);
    let reference = loaded(5000, 1);
    let (base, state) = start(items, Duration::from_secs(60)).await;
    let ranker = Ranker::new(&base);
    for seed in 0..3 {
        let query = unit_query(seed);
        let ranked = ranker.rank("shop", &query, 10).await.unwrap();
        let ids: Vec<String> = ranked.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, plaintext_top(&reference, &query, 10));
        assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
    }
    assert_eq!(
        state.metrics.requests_for(HINT_ROUTE),
        1,
        "the cached hint must be reused"
    );

    // Exclusions are applied on the device: the server sees the same requests.
    let query = unit_query(0);
    let top = ranker.rank("shop", &query, 3).await.unwrap();
    let exclude: HashSet<String> = [top[0].id.clone()].into();
    let before = state.metrics.requests_for(SCORE_ROUTE);
    let without = ranker
        .rank_excluding("shop", &query, 3, &exclude)
        .await
        .unwrap();
    assert_eq!(without[0].id, top[1].id);
    assert_eq!(state.metrics.requests_for(SCORE_ROUTE), before + 1);

    // An on-disk cache spares a restarted app the download.
    let dir = std::env::temp_dir().join(format!("blindscore-sdk-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Ranker::new(&base)
        .with_cache_dir(&dir)
        .rank("shop", &query, 5)
        .await
        .unwrap();
    let hints = state.metrics.requests_for(HINT_ROUTE);
    let again = Ranker::new(&base)
        .with_cache_dir(&dir)
        .rank("shop", &query, 5)
        .await
        .unwrap();
    assert_eq!(
        state.metrics.requests_for(HINT_ROUTE),
        hints,
        "the disk cache must be used"
    );
    assert_eq!(again.len(), 5);
    // A damaged cache is ignored and refetched, never trusted (entries are kept per
    // server, then per catalog and version).
    let mut damaged = 0;
    for origin in std::fs::read_dir(&dir).unwrap().flatten() {
        for catalog in std::fs::read_dir(origin.path()).unwrap().flatten() {
            for v in std::fs::read_dir(catalog.path()).unwrap().flatten() {
                std::fs::write(v.path().join("hint"), b"damaged").unwrap();
                damaged += 1;
            }
        }
    }
    assert_eq!(damaged, 1);
    Ranker::new(&base)
        .with_cache_dir(&dir)
        .rank("shop", &query, 5)
        .await
        .unwrap();
    assert_eq!(state.metrics.requests_for(HINT_ROUTE), hints + 1);
    let _ = std::fs::remove_dir_all(&dir);

    // The cost is known before sending.
    let cost = ranker.cost("shop").await.unwrap();
    assert!(cost.up > 0 && cost.down >= 5000 * 2 && cost.once_per_version > cost.up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_depend_on_the_scores() {
    let (base, state) = start(loaded(3000, 2), Duration::from_secs(60)).await;
    let ranker = Ranker::new(&base);
    ranker.prepare("shop").await.unwrap();
    // Whatever the scores look like, each ranking sends the same two requests.
    for seed in [3, 4, 5] {
        let (info, score, hint) = (
            state.metrics.requests_for(INFO_ROUTE),
            state.metrics.requests_for(SCORE_ROUTE),
            state.metrics.requests_for(HINT_ROUTE),
        );
        let mut q = vec![0.0f32; D];
        q[seed as usize] = 1.0;
        ranker.rank("shop", &q, 10).await.unwrap();
        assert_eq!(state.metrics.requests_for(INFO_ROUTE), info + 1);
        assert_eq!(state.metrics.requests_for(SCORE_ROUTE), score + 1);
        assert_eq!(state.metrics.requests_for(HINT_ROUTE), hint);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_between_calls_is_picked_up_and_a_gone_version_is_retried() {
    let first = loaded(2500, 7);
    let (base, state) = start(first, Duration::ZERO).await;
    let ranker = Ranker::new(&base);
    let query = unit_query(9);
    let before = ranker.rank("shop", &query, 5).await.unwrap();
    assert!(before[0].id.starts_with("s7-"));
    let old = ranker.prepare("shop").await.unwrap();
    let second = loaded(2600, 8);
    let reference = loaded(2600, 8);
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        s.build_and_install(
            "shop",
            second,
            &SpaceDeclaration {
                model: "m".into(),
                ..SpaceDeclaration::default()
            },
        )
        .unwrap()
    })
    .await
    .unwrap();
    state.registry.expire();
    let after = ranker.rank("shop", &query, 5).await.unwrap();
    let ids: Vec<String> = after.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, plaintext_top(&reference, &query, 5));
    // The old version is gone: a query sealed for it gets the typed error.
    let sealed = old.seal(&query, None).unwrap();
    assert!(matches!(
        ranker.send(&old, sealed.bytes).await,
        Err(ClientError::VersionGone)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_error_class_is_typed() {
    let (base, _) = start(loaded(2100, 11), Duration::from_secs(60)).await;
    let ranker = Ranker::new(&base);
    let q = unit_query(1);
    assert!(matches!(
        ranker.rank("shop", &q[..D - 1], 5).await,
        Err(ClientError::WrongDimension {
            found,
            expected: D
        }) if found == D - 1
    ));
    let doubled: Vec<f32> = q.iter().map(|x| x * 2.0).collect();
    assert!(matches!(
        ranker.rank("shop", &doubled, 5).await,
        Err(ClientError::SpaceMismatch(_))
    ));
    let nan = vec![f32::NAN; D];
    assert!(matches!(
        ranker.rank("shop", &nan, 5).await,
        Err(ClientError::SpaceMismatch(_))
    ));
    assert!(matches!(
        Ranker::new(&base)
            .expect_model("other")
            .rank("shop", &q, 5)
            .await,
        Err(ClientError::SpaceMismatch(_))
    ));
    assert!(
        matches!(ranker.rank("nope", &q, 5).await, Err(ClientError::Server { status: 404, ref code, .. }) if *code == ErrorCode::UnknownCatalog)
    );
    assert!(matches!(
        ranker.rank("../x", &q, 5).await,
        Err(ClientError::Protocol(_))
    ));
    assert!(matches!(
        Ranker::new("http://127.0.0.1:9").rank("shop", &q, 5).await,
        Err(ClientError::Transport(_))
    ));
}

/// Rewrites an artefact by kind ("description", "hint", "ids", "scales", "score").
type Tamper = Arc<dyn Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync>;

/// A server that serves a real catalog's artefacts after `tamper` has had its way.
async fn hostile(tamper: impl Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync + 'static) -> String {
    let state = AppState::new(ServiceConfig::default());
    let entry = state
        .build_and_install("shop", loaded(2100, 12), &SpaceDeclaration::default())
        .unwrap();
    let info = serde_json::json!({"name": "shop", "current": entry.info(), "previous": null});
    let tamper = Arc::new(tamper);
    let version = entry.version().to_hex();
    let artefact = |kind: &'static str, bytes: Vec<u8>, tamper: Tamper| {
        get(move || {
            let out = tamper(kind, bytes.clone());
            async move { out }
        })
    };
    let base = format!("/v1/catalogs/shop/versions/{version}");
    let app = Router::new()
        .route(
            "/v1/catalogs/shop",
            get(move || {
                let b = serde_json::to_vec(&info).unwrap();
                async move { b }
            }),
        )
        .route(
            &format!("{base}/description"),
            artefact(
                "description",
                entry.description_bytes.to_vec(),
                tamper.clone(),
            ),
        )
        .route(
            &format!("{base}/hint"),
            artefact("hint", entry.hint_message.to_vec(), tamper.clone()),
        )
        .route(
            &format!("{base}/ids"),
            artefact("ids", entry.ids_json.to_vec(), tamper.clone()),
        )
        .route(
            &format!("{base}/scales"),
            artefact("scales", entry.scales_bytes.to_vec(), tamper.clone()),
        )
        .route(
            &format!("{base}/score"),
            post({
                let tamper = tamper.clone();
                move || {
                    let out = tamper("score", vec![7; 1000]);
                    async move { out }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn edit_description(bytes: Vec<u8>, f: impl Fn(&mut CatalogDescription)) -> Vec<u8> {
    let mut d: CatalogDescription = wire::decode(&bytes, 1 << 16).unwrap();
    f(&mut d);
    wire::encode(&d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_server_is_refused_cleanly() {
    let q = unit_query(2);
    let attempt = |base: String| {
        let q = q.clone();
        async move { Ranker::new(&base).rank("shop", &q, 5).await }
    };
    // The untampered server answers garbage to the query itself.
    let r = attempt(hostile(|_, b| b).await).await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
    // Garbage everywhere.
    let r = attempt(hostile(|_, _| b"garbage".to_vec()).await).await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
    // A downgraded parameter id.
    let r = attempt(
        hostile(|k, b| {
            if k == "description" {
                edit_description(b, |d| d.catalog.param_id = ParamId(0))
            } else {
                b
            }
        })
        .await,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(ClientError::Protocol(
                blindscore_common::ProtocolError::UnknownParameters(_)
            ))
        ),
        "{r:?}"
    );
    // Oversized fields: a huge item count, a huge dimension.
    let r = attempt(
        hostile(|k, b| {
            if k == "description" {
                edit_description(b, |d| d.item_count = 1 << 40)
            } else {
                b
            }
        })
        .await,
    )
    .await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
    let r = attempt(
        hostile(|k, b| {
            if k == "description" {
                edit_description(b, |d| d.dimension = 1 << 30)
            } else {
                b
            }
        })
        .await,
    )
    .await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
    // A hint that does not match its digest.
    let r = attempt(
        hostile(|k, mut b| {
            if k == "hint" {
                let n = b.len();
                b[n - 1] ^= 1;
            }
            b
        })
        .await,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(ClientError::Protocol(
                blindscore_common::ProtocolError::DigestMismatch(_)
            ))
        ),
        "{r:?}"
    );
    // A swapped hint with a digest to match (a consistent liar): refused by its contents.
    let r = attempt(
        hostile(|k, b| match k {
            "hint" => {
                let mut h: HintMessage = wire::decode(&b, 1 << 30).unwrap();
                h.words.truncate(10);
                wire::encode(&h)
            }
            "description" => edit_description(b, |d| {
                let mut h = HintMessage {
                    wire_version: 1,
                    catalog: d.catalog.clone(),
                    words: vec![],
                };
                h.words = vec![0; 10];
                d.hint_digest = sha256(&wire::encode(&h));
            }),
            _ => b,
        })
        .await,
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    // An oversized body is cut off, not read into memory.
    let r = attempt(hostile(|k, b| if k == "ids" { vec![b'['; 64 << 20] } else { b }).await).await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
    // Wrong lengths of ids and scales.
    let r = attempt(hostile(|k, b| if k == "scales" { b[..8].to_vec() } else { b }).await).await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
}

/// A proxy in front of the real server that answers the first query with 410 (as if the
/// version had just been swapped out) and forwards everything else: the SDK must refetch
/// and retry once, with a fresh encryption (a different query body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_version_during_a_query_is_retried_once_with_a_fresh_encryption() {
    use axum::body::Bytes;
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::sync::Mutex;

    let (real, _) = start(loaded(2200, 31), Duration::from_secs(60)).await;
    #[derive(Clone)]
    struct Proxy {
        real: String,
        bodies: Arc<Mutex<Vec<Bytes>>>,
        refuse: Arc<Mutex<usize>>,
    }
    async fn forward(State(p): State<Proxy>, req: Request) -> axum::response::Response {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let body = axum::body::to_bytes(req.into_body(), 64 << 20)
            .await
            .unwrap();
        if path.ends_with("/score") {
            p.bodies.lock().unwrap().push(body.clone());
            let mut refuse = p.refuse.lock().unwrap();
            if *refuse > 0 {
                *refuse -= 1;
                return (
                    StatusCode::GONE,
                    axum::Json(serde_json::json!({"code": "version_gone", "message": "gone"})),
                )
                    .into_response();
            }
        }
        let http = reqwest::Client::new();
        let r = if method == axum::http::Method::POST {
            http.post(format!("{}{path}", p.real))
                .body(body)
                .send()
                .await
                .unwrap()
        } else {
            http.get(format!("{}{path}", p.real)).send().await.unwrap()
        };
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.bytes().await.unwrap()).into_response()
    }
    let proxy = Proxy {
        real,
        bodies: Arc::new(Mutex::new(Vec::new())),
        refuse: Arc::new(Mutex::new(1)),
    };
    let app = Router::new().fallback(forward).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let ranker = Ranker::new(&format!("http://{addr}"));
    let ranked = ranker.rank("shop", &unit_query(5), 5).await.unwrap();
    assert_eq!(ranked.len(), 5);
    let bodies = proxy.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "one retry");
    // A fresh encryption under a fresh key: the two bodies differ everywhere by about as
    // much as two uniform words. Under a reused key (with fresh noise) they would differ
    // only by the noise, about 2^18, and the rounding of the low bits.
    let shape = *ranker.prepare("shop").await.unwrap().shape();
    let b = shape.budget;
    let words = |bytes: &Bytes| {
        let q: QueryMessage = wire::decode(bytes, u64::MAX).unwrap();
        bitpack::unpack(
            &q.bodies,
            b.query_bits(),
            shape.geometry.query_coefficients(),
            "bodies",
        )
        .unwrap()
    };
    let (first, second) = (words(&bodies[0]), words(&bodies[1]));
    // Differences in units of the body modulus 2^hi, centred.
    let small = 1i128 << (18.max(b.query_low + 1) + 2);
    let close = first
        .iter()
        .zip(&second)
        .filter(|(x, y)| {
            let diff = word_to_torus(**x, b.query_bits())
                .wrapping_sub(word_to_torus(**y, b.query_bits())) as i64
                as i128;
            (diff >> (64 - b.modulus_log2)).abs() < small
        })
        .count();
    assert!(
        close * 100 < first.len(),
        "{close} of {} body coefficients are within the noise of each other: a reused key?",
        first.len()
    );

    // Gone twice: reported, not retried again.
    *proxy.refuse.lock().unwrap() = 2;
    assert!(matches!(
        ranker.rank("shop", &unit_query(5), 5).await,
        Err(ClientError::VersionGone)
    ));
    assert_eq!(proxy.bodies.lock().unwrap().len(), 4);
}
