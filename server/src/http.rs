//! The HTTP API (axum), versioned under `/v1`. Handlers extract, call the domain and map
//! errors to a JSON body with a stable code; CPU work runs off the async runtime. Nothing
//! here logs, stores or echoes a query or a response: logs carry a request id, the route
//! template, the status and the time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use blindscore_common::params::PARAMETER_TABLE;
use blindscore_common::ProtocolError;

use crate::access::{client_key, forwarded_client, Refusal};
use crate::batcher::SubmitError;
use blindscore_common::api::{CatalogInfo, ErrorBody, ErrorCode, Metric, Normalisation};

use crate::load::read_jsonl;
use crate::metrics::process_memory;
use crate::registry::{Lookup, VersionEntry};
use crate::service::{plan_entry, AppState, SpaceDeclaration};

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The router: public routes under a request timeout, the catalog routes under the
/// per-address rate limits and the API keys (each score request charged to its app's
/// quota), the admin route under the rate limits and its own time limit, request ids,
/// metrics and logs on everything.
///
/// The rate limits need each connection's peer address: serve the router with [`serve`]
/// (or `into_make_service_with_connect_info::<SocketAddr>()`). Served without it while
/// rate limits are on, catalog and admin requests are refused (500 `internal`, logged
/// once) unless `ServiceConfig::without_peer_addresses` says that is meant.
pub fn router(state: Arc<AppState>) -> Router {
    let timeout = state.config.request_timeout;
    let admin_timeout = state.config.admin_timeout;
    if state.config.without_peer_addresses && state.limiter.is_some() {
        tracing::warn!(
            "served without peer addresses, by choice: the per-address rate limits are off"
        );
    }
    let mut open = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/parameters", get(parameters))
        .route("/v1/transparency", get(transparency))
        .route(
            "/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        );
    if state.config.metrics_on_main_listener {
        open = open.merge(metrics_routes(&state));
    }
    // Everything that reads a catalog: under the rate limits and the API keys; a score
    // request is also charged to its app's quota.
    let catalogs = Router::new()
        .route("/v1/catalogs", get(list_catalogs))
        .route("/v1/catalogs/{name}", get(describe_catalog))
        .route(
            "/v1/catalogs/{name}/versions/{version}/description",
            artefact(Artefact::Description),
        )
        .route(
            "/v1/catalogs/{name}/versions/{version}/hint",
            artefact(Artefact::Hint),
        )
        .route(
            "/v1/catalogs/{name}/versions/{version}/ids",
            artefact(Artefact::Ids),
        )
        .route(
            "/v1/catalogs/{name}/versions/{version}/scales",
            artefact(Artefact::Scales),
        )
        .route(
            "/v1/catalogs/{name}/versions/{version}/score",
            post(score).route_layer(middleware::from_fn_with_state(state.clone(), charge_quota)),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit));
    let public = open
        .merge(catalogs)
        .layer(middleware::from_fn(move |req, next| {
            with_timeout(timeout, req, next)
        }));
    let admin = Router::new()
        .route("/v1/admin/catalogs/{name}", put(replace_catalog))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn(move |req, next| {
            with_timeout(admin_timeout, req, next)
        }));
    public
        .merge(admin)
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        // Bodies are read by the handlers under their own limits, with JSON errors.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// `/metrics` alone, for a listener of its own (`--metrics-listen`), behind the metrics
/// token if one is set and under the rate limits (serve it with connection info, as
/// `serve_metrics` does).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    metrics_routes(&state)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

fn metrics_routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    // Under the rate limits too: a metrics token cannot be guessed faster than catalogs
    // can be read.
    Router::new().route(
        "/metrics",
        get(metrics)
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                require_metrics_token,
            ))
            .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit)),
    )
}

/// Serve [`metrics_router`] on a listener of its own, with each connection's peer address
/// known to the rate limits, until `shutdown` completes.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = metrics_router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serve the router on a listener until `shutdown` completes: over TLS when a
/// configuration is given, with each connection's peer address known to the rate limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            let listener = crate::tls::TlsListener::new(listener, config)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// Request id, metrics and one log line per request (no bodies, no query strings).
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().clone();
    let started = Instant::now();
    let mut response = next.run(req).await;
    let status = response.status().as_u16();
    state.metrics.record_request(&route, status);
    tracing::info!(request_id = id, %method, route, status, ms = started.elapsed().as_secs_f64() * 1e3, "request");
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The client's address for the rate limits: the peer, or the client a trusted proxy
/// names. `None` only when the operator chose to serve without peer addresses; a request
/// without one otherwise is refused rather than left unlimited.
fn client_address(state: &AppState, req: &Request) -> Result<Option<IpAddr>, ApiError> {
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => Ok(Some(forwarded_client(
            peer.ip(),
            req.headers(),
            &state.config.trusted_proxies,
            state.config.forwarded_header,
        ))),
        None if state.config.without_peer_addresses => Ok(None),
        None => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::error!(
                    "requests arrive without the peer's address while rate limits are on, and are refused: serve with http::serve (or into_make_service_with_connect_info), or set without_peer_addresses"
                )
            });
            Err(ApiError::new(
                ErrorCode::Internal,
                "the server cannot tell the client's address, so it cannot apply its rate limits",
            ))
        }
    }
}

/// Per-client-address rate limits.
async fn rate_limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(limiter) = &state.limiter {
        match client_address(&state, &req) {
            Ok(Some(ip)) => {
                if let Err(wait) = limiter.take(client_key(ip)) {
                    return rate_limited(wait, "too many requests from this address; slow down");
                }
            }
            Ok(None) => {}
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

/// With API keys configured, a valid `x-api-key` on every catalog request.
async fn require_api_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(keys) = &state.config.api_keys {
        if let Err(refusal) = keys.app(api_key(&req)) {
            return refused(refusal);
        }
    }
    next.run(req).await
}

/// With API keys configured, each score request charged to its app's quota.
async fn charge_quota(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(keys) = &state.config.api_keys {
        if let Err(refusal) = keys.charge(api_key(&req)) {
            return refused(refusal);
        }
    }
    next.run(req).await
}

fn api_key(req: &Request) -> Option<&str> {
    req.headers().get("x-api-key").and_then(|v| v.to_str().ok())
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorized => ApiError::new(
            ErrorCode::ApiKeyRequired,
            "this server needs a valid API key in the x-api-key header",
        )
        .into_response(),
        Refusal::Limited(wait) => {
            rate_limited(wait, "this app's query quota is spent; retry later")
        }
    }
}

/// With a metrics token set, `/metrics` needs it as a bearer token.
async fn require_metrics_token(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.config.metrics_token {
        if !token.matches(bearer(req.headers())) {
            return ApiError::new(
                ErrorCode::Unauthorized,
                "a valid bearer token is required for the metrics",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// The token of an `Authorization: Bearer <token>` header (the scheme's name in any case),
/// or "" (which matches no token).
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .unwrap_or("")
}

fn rate_limited(wait: std::time::Duration, message: &str) -> Response {
    let seconds = wait.as_secs_f64().ceil().clamp(1.0, 3600.0) as u32;
    ApiError::new(ErrorCode::RateLimited, message)
        .retry_after(seconds)
        .into_response()
}

async fn with_timeout(limit: std::time::Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::Timeout,
            "the request took longer than the server's limit",
        )
        .into_response(),
    }
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if !state.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "loading").into_response()
    } else {
        "ready".into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state.registry),
    )
        .into_response()
}

#[derive(Serialize)]
struct ParameterInfo {
    id: u16,
    budget_revision: u32,
    polynomial_size: usize,
    glwe_dimension: usize,
    noise: String,
    key: &'static str,
    modulus: &'static str,
    source: &'static str,
}

async fn parameters() -> Json<Vec<ParameterInfo>> {
    Json(
        PARAMETER_TABLE
            .iter()
            .map(|p| ParameterInfo {
                id: p.id.0,
                budget_revision: p.budget_revision,
                polynomial_size: p.polynomial_size.0,
                glwe_dimension: p.glwe_dimension.0,
                noise: format!("TUniform({})", p.noise_bound_log2),
                key: "binary",
                modulus: "2^64",
                source: p.source,
            })
            .collect(),
    )
}

async fn transparency() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "computes": "For each query, the products of the encrypted query bodies with the catalog's item vectors (a linear map on ciphertexts). The server holds no key and cannot decrypt queries or scores.",
        "receives": "Ciphertext bodies under a secret key the client draws fresh for every query and never sends.",
        "keeps": "The catalogs it serves. It does not store queries or responses; they live in memory only while a query is scored.",
        "logs": "Per request: a request id, the route template, the status and the time taken. Per scoring pass: catalog name, version, item count, batch size and time. Never a query, a response, a vector or a score.",
        "metrics": "Counts of requests by route and status, queries and passes, queue depth, catalog sizes and memory.",
        "does_not_guarantee": "Integrity: a malicious server could return wrong scores. The catalog (its quantized vectors) is public to clients.",
    }))
}

async fn list_catalogs(State(state): State<Arc<AppState>>) -> Json<Vec<CatalogInfo>> {
    Json(
        state
            .registry
            .list()
            .into_iter()
            .map(|(name, current, previous)| CatalogInfo {
                name,
                current: current.info(),
                previous: previous.map(|p| p.info()),
            })
            .collect(),
    )
}

async fn describe_catalog(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<CatalogInfo>, ApiError> {
    let (current, previous) = state.registry.catalog(&name).map_err(|e| match e {
        Lookup::Loading => loading(&name),
        _ => unknown_catalog(&name),
    })?;
    Ok(Json(CatalogInfo {
        name,
        current: current.info(),
        previous: previous.map(|p| p.info()),
    }))
}

fn version_entry(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<Arc<VersionEntry>, ApiError> {
    state.registry.version(name, version).map_err(|e| match e {
        Lookup::UnknownCatalog => unknown_catalog(name),
        Lookup::Loading => loading(name),
        Lookup::VersionGone { current } => ApiError::new(ErrorCode::VersionGone,
            format!("version {version} of catalog {name:?} is no longer served; the current version is {current}: refetch the description"),
        ),
    })
}

/// Seconds a client is asked to wait for a catalog that is still loading.
const LOADING_RETRY_SECONDS: u32 = 5;

fn loading(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Loading,
        format!("catalog {name:?} is still loading; retry shortly"),
    )
    .retry_after(LOADING_RETRY_SECONDS)
}

fn unknown_catalog(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownCatalog,
        format!("no catalog named {name:?}"),
    )
}

/// An immutable artefact of a version: strong ETag, long caching, 304 on a match.
fn immutable(
    headers: &HeaderMap,
    entry: &VersionEntry,
    kind: &str,
    content_type: &'static str,
    bytes: &[u8],
) -> Response {
    let etag = format!("\"{}-{kind}\"", entry.version().to_hex());
    let cache = "public, max-age=31536000, immutable";
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache.to_string()),
            ],
        )
            .into_response();
    }
    (
        [
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache.to_string()),
            (header::CONTENT_TYPE, content_type.to_string()),
        ],
        bytes.to_vec(),
    )
        .into_response()
}

/// The immutable artefacts of a version, by the last segment of their route.
#[derive(Clone, Copy)]
enum Artefact {
    Description,
    Hint,
    Ids,
    Scales,
}

fn artefact(kind: Artefact) -> axum::routing::MethodRouter<Arc<AppState>> {
    get(
        move |State(s): State<Arc<AppState>>,
              Path((name, version)): Path<(String, String)>,
              headers: HeaderMap| async move {
            let e = version_entry(&s, &name, &version)?;
            let (tag, content_type, bytes): (&str, &'static str, &[u8]) = match kind {
                Artefact::Description => (
                    "description",
                    "application/octet-stream",
                    &e.description_bytes,
                ),
                Artefact::Hint => ("hint", "application/octet-stream", e.served.hint_message()),
                Artefact::Ids => ("ids", "application/json", &e.ids_json),
                Artefact::Scales => ("scales", "application/octet-stream", &e.scales_bytes),
            };
            Ok::<Response, ApiError>(immutable(&headers, &e, tag, content_type, bytes))
        },
    )
}

async fn score(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let entry = match version_entry(&s, &name, &version) {
        Ok(entry) => entry,
        Err(e) => {
            // Read the query before answering, so the client gets the error (typically
            // version_gone: refetch) rather than a connection closed mid-upload.
            drain(body, DRAIN_LIMIT).await;
            return Err(e);
        }
    };
    let limit = entry.served.max_query_bytes() as usize;
    let bytes = read_limited(body, limit).await?;
    // Cheap checks here, so a bad query never takes a place in a batch.
    entry.served.decode_query(&bytes)?;
    match entry.batcher.submit(bytes).await {
        Ok(response) => Ok((
            [(header::CONTENT_TYPE, "application/octet-stream")],
            response.into_bytes(),
        )
            .into_response()),
        Err(SubmitError::Protocol(e)) => Err(e.into()),
        Err(SubmitError::Busy) => {
            s.metrics.record_busy();
            Err(ApiError::new(
                ErrorCode::Busy,
                "too many queries are waiting; retry shortly",
            )
            .retry_after(1))
        }
        Err(SubmitError::Closed) => Err(ApiError::new(
            ErrorCode::VersionGone,
            "this version was dropped; refetch the description",
        )),
    }
}

/// Most bytes of a refused request body read before answering.
const DRAIN_LIMIT: usize = 64 << 20;

/// Read and discard a body, up to `limit` bytes.
async fn drain(body: Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut body = http_body_util::Limited::new(body, limit);
    while let Some(Ok(_)) = body.frame().await {}
}

/// Read a body of at most `limit` bytes. A larger one is read on (and discarded) up to
/// [`DRAIN_LIMIT`] before the 413, so the client sees the answer rather than a reset.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= limit {
                out.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > limit {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body is larger than this endpoint's limit of {limit} bytes"),
        ));
    }
    Ok(Bytes::from(out))
}

/// How a replacement catalog is declared (query string).
#[derive(Deserialize)]
struct ReplaceParams {
    model: Option<String>,
    normalisation: Option<Normalisation>,
    metric: Option<Metric>,
    bits: Option<u32>,
    dimension_scales: Option<bool>,
}

#[derive(Serialize)]
struct Replaced {
    name: String,
    version: String,
    previous: Option<String>,
    items: usize,
    seconds: f64,
}

/// Replace (or create) a catalog from a JSON Lines body streamed in, atomically: the old
/// version keeps serving until the new one is built, and stays answerable for the grace
/// period after.
async fn replace_catalog(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(params): Query<ReplaceParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Replaced>, ApiError> {
    authorize(&s, &headers)?;
    blindscore_common::wire::validate_catalog_id(&name)?;
    let bits = params.bits;
    if bits.is_some_and(|b| !(2..=16).contains(&b)) {
        return Err(ApiError::new(
            ErrorCode::BadParameter,
            "bits must be within 2..=16",
        ));
    }
    let declaration = SpaceDeclaration {
        model: params.model.unwrap_or_else(|| "unspecified".into()),
        normalisation: params.normalisation.unwrap_or(Normalisation::L2),
        metric: params.metric.unwrap_or(Metric::Cosine),
        bits,
        dimension_scales: params.dimension_scales.unwrap_or(false),
    };
    // A catalog that start-up is still building is not replaced under its feet.
    if s.registry.current(&name).is_none() && s.registry.missing(&name) == Lookup::Loading {
        return Err(loading(&name));
    }
    let state = s.clone();
    let previous = s.registry.current(&name).map(|e| e.version().to_hex());
    let limit = s.config.max_upload_bytes;
    // The admin time limit answers the client; this deadline also ends the work, so that a
    // late upload is not installed after its 408 and a stalled one frees its claim.
    let deadline = tokio::time::Instant::now() + s.config.admin_timeout;
    // Stream the body into the parser on a blocking thread, under the upload limit; the
    // stream ends at the deadline (the parser then sees a cut-off body).
    let stream = http_body_util::Limited::new(body, limit as usize);
    let reader = tokio_util::io::StreamReader::new(
        http_body_util::BodyDataStream::new(stream)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .take_until(Box::pin(tokio::time::sleep_until(deadline))),
    );
    let past_deadline = move || {
        (tokio::time::Instant::now() >= deadline).then(|| {
            ApiError::new(
                ErrorCode::Timeout,
                "the replacement took longer than the server's limit; nothing was changed",
            )
        })
    };
    let reader = tokio_util::io::SyncIoBridge::new(reader);
    let started = Instant::now();
    let built = tokio::task::spawn_blocking(move || {
        let Some(guard) = state.registry.begin_build(&name) else {
            return Err(ApiError::new(
                ErrorCode::SwapInProgress,
                "another replacement of this catalog is being built",
            ));
        };
        let items = read_jsonl(
            std::io::BufReader::new(reader),
            declaration.load_bits(),
            declaration.normalisation,
        );
        if let Some(late) = past_deadline() {
            return Err(late);
        }
        let items = items.map_err(|e| {
            let text = e.to_string();
            if text.contains("length limit exceeded") {
                ApiError::new(
                    ErrorCode::BodyTooLarge,
                    format!("the catalog is larger than the upload limit of {limit} bytes"),
                )
            } else {
                ApiError::new(ErrorCode::BadCatalog, text)
            }
        })?;
        // Checked before anything served changes: a bad upload leaves both versions.
        let plan = plan_entry(&name, items, &declaration, &state.config)
            .map_err(|e| ApiError::new(ErrorCode::BadCatalog, e.to_string()))?;
        if let Some(late) = past_deadline() {
            return Err(late);
        }
        if let Some(current) = state.registry.current(&name) {
            if current.version() == plan.version {
                // The same content is the same version: nothing to build, nothing dropped.
                return Ok((name, current));
            }
        }
        guard.make_room();
        let entry = state.build_planned_and_install(plan).map_err(|e| {
            tracing::error!(catalog = %name, error = %e, "a checked catalog failed to build");
            ApiError::new(
                ErrorCode::Internal,
                "the catalog passed its checks but failed to build",
            )
        })?;
        state.metrics.record_swap(process_memory().resident);
        Ok((name, entry))
    })
    .await
    .map_err(|_| ApiError::new(ErrorCode::Internal, "the build failed"))??;
    let (name, entry) = built;
    Ok(Json(Replaced {
        name,
        version: entry.version().to_hex(),
        previous,
        items: entry.served.shape().geometry.items,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.config.admin_token else {
        return Err(ApiError::new(
            ErrorCode::AdminDisabled,
            "set BLINDSCORE_ADMIN_TOKEN to enable the admin endpoints",
        ));
    };
    if token.matches(bearer(headers)) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Unauthorized,
            "a valid bearer token is required",
        ))
    }
}

/// A client error: a status, a stable code and a message, as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(code.status())
                .expect("every error code has a valid HTTP status"),
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                code: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<ProtocolError> for ApiError {
    fn from(e: ProtocolError) -> Self {
        ApiError::new(ErrorCode::for_query_error(&e), e.to_string())
    }
}

use futures_util::{StreamExt as _, TryStreamExt as _};
